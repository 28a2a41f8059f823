"""Per-speaker adaptation: emotion is read against the speaker's own baseline, not the population's.

A `Baseline` is the running mean and spread of one voice's utterance embeddings (each utterance's speech
windows averaged, as the probes are trained). An adaptive head (its card says `"input": "speaker_normalised"`)
sees each window as z = (embedding - mean) / spread of its voice, with the voice's statistics shrunk towards
the population's (shipped in the head as `prior_mean` / `prior_std`) by a prior worth a few utterances:

- cold start: with no speech heard yet, the prior alone is used, i.e. the population's mean and the typical
  within-speaker spread; each finished utterance then moves the baseline towards the voice's own;
- windows are normalised with the statistics as they stood when the utterance began (an utterance never
  normalises itself away), and each finished utterance is added to its voice's baseline afterwards;
- voices: an enrolled speaker whom the speaker head recognises uses their own baseline (stored in their
  profile at `enroll`, updated as they speak); everyone else shares the stream's baseline, which starts again
  from the prior when an utterance's voice plainly does not match the stream's (speaker-part cosine to the
  stream voice's centroid below VOICE_CHANGE_COSINE), so a clearly different speaker is not read against
  the previous one. The bar is deliberately low: one utterance is weak evidence, and each false restart
  throws the baseline away (at the speaker head's own threshold, single-speaker streams restarted often
  enough to lose accuracy; `bench quality` reports the restarts of its live streams). Changes between
  similar voices therefore go unnoticed and their utterances share one baseline; enroll the people who
  matter and the speaker head keeps each one's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import EdgeparaError
from .speaker import speaker_part

ADAPTATION_MODES = ("speaker", "off")
VOICE_CHANGE_COSINE = 0.1
NORMALISED_INPUT = "speaker_normalised"  # head card "input" of a head trained on speaker-normalised embeddings


@dataclass
class Baseline:
    """Running statistics of one voice's utterance embeddings (count, sum, sum of squares; float64)."""

    n: int = 0
    total: np.ndarray | None = None
    squares: np.ndarray | None = None

    def add(self, utterance_embedding: np.ndarray) -> None:
        x = np.asarray(utterance_embedding, np.float64)
        if self.total is None:
            self.total, self.squares = np.zeros_like(x), np.zeros_like(x)
        if x.shape != self.total.shape or not np.all(np.isfinite(x)):
            raise EdgeparaError(f"expected a finite {self.total.shape[0]}-d utterance embedding for the baseline, "
                                f"got shape {x.shape}")
        self.n += 1
        self.total += x
        self.squares += x * x

    def merge(self, other: "Baseline") -> None:
        """Adds another baseline's utterances to this one."""
        if other.n == 0:
            return
        if self.total is None:
            self.total, self.squares = np.zeros_like(other.total), np.zeros_like(other.squares)
        self.n += other.n
        self.total = self.total + other.total
        self.squares = self.squares + other.squares

    def normalise(self, embedding: np.ndarray, prior_mean: np.ndarray, prior_std: np.ndarray,
                  prior_n: float, prior_n_spread: float) -> np.ndarray:
        """(embedding - mean) / spread, with mean and spread shrunk towards the prior."""
        x = np.asarray(embedding, np.float64)
        if self.n == 0 or self.total is None or self.total.shape != x.shape:
            return (x - prior_mean) / prior_std
        own_mean = self.total / self.n
        own_var = np.maximum(self.squares / self.n - own_mean ** 2, 0.0)
        mean = (self.total + prior_n * prior_mean) / (self.n + prior_n)
        var = (self.n * own_var + prior_n_spread * prior_std ** 2) / (self.n + prior_n_spread)
        return (x - mean) / np.sqrt(np.maximum(var, 1e-12))

    def to_dict(self) -> dict:
        """For a profile file: plain lists (JSON)."""
        return {"n": self.n, "sum": [] if self.total is None else [float(v) for v in self.total],
                "sum_squares": [] if self.squares is None else [float(v) for v in self.squares]}

    @classmethod
    def from_dict(cls, data: dict, dim: int) -> "Baseline":
        n, total, squares = data.get("n"), data.get("sum"), data.get("sum_squares")
        if not (type(n) is int and n >= 0 and isinstance(total, list) and isinstance(squares, list)):
            raise EdgeparaError(f"expected a baseline with n, sum and sum_squares, got {sorted(data)[:4]}")
        if n == 0:
            return cls()
        total, squares = np.asarray(total, np.float64), np.asarray(squares, np.float64)
        if total.shape != (dim,) or squares.shape != (dim,) or not (np.all(np.isfinite(total))
                                                                  and np.all(np.isfinite(squares))):
            raise EdgeparaError(f"expected a baseline of {dim} finite values, got {total.shape[0]} and "
                                f"{squares.shape[0]}")
        return cls(n, total, squares)


@dataclass
class Adaptation:
    """The voices of one stream and which one is speaking. `mode` "off" keeps every voice at the prior
    (no adaptation); "speaker" adapts as the module docstring says."""

    mode: str = "speaker"
    speaker_dims: tuple[int, int] | None = None
    change_threshold: float | None = VOICE_CHANGE_COSINE  # None: the stream's baseline never restarts
    enrolled: dict[str, Baseline] = field(default_factory=dict)
    heard: dict[str, Baseline] = field(default_factory=dict)  # enrolled speakers' utterances in this process
    stream: Baseline = field(default_factory=Baseline)
    restarts: int = 0
    _voice_sum: np.ndarray | None = field(default=None, repr=False)  # the stream voice's speaker part

    def __post_init__(self):
        if self.mode not in ADAPTATION_MODES:
            raise EdgeparaError(f"expected adaptation one of {', '.join(ADAPTATION_MODES)}, got {self.mode!r}")

    def reset(self) -> None:
        """A new stream: its own baseline starts from the prior (enrolled speakers keep theirs)."""
        self.stream, self._voice_sum, self.restarts = Baseline(), None, 0

    def baseline_for(self, speaker: str | None) -> Baseline:
        if self.mode == "off":
            return _PRIOR_ONLY
        return self.enrolled.get(speaker, self.stream) if speaker else self.stream

    def end_utterance(self, embedding: np.ndarray, speaker: str | None = None) -> None:
        """One finished utterance (its windows' mean embedding) of `speaker` (an enrolled name, or None)."""
        if self.mode == "off":
            return
        if speaker in self.enrolled:
            self.enrolled[speaker].add(embedding)
            self.heard.setdefault(speaker, Baseline()).add(embedding)
            return
        part = speaker_part(np.asarray(embedding, np.float64), self.speaker_dims)
        if self.change_threshold is not None and self._voice_sum is not None:
            centroid = self._voice_sum / (np.linalg.norm(self._voice_sum) + 1e-12)
            if float(centroid @ part) / (np.linalg.norm(part) + 1e-12) < self.change_threshold:
                self.stream, self._voice_sum = Baseline(), None  # another voice: start again from the prior
                self.restarts += 1
        unit = part / (np.linalg.norm(part) + 1e-12)
        self._voice_sum = unit if self._voice_sum is None else self._voice_sum + unit
        self.stream.add(embedding)


_PRIOR_ONLY = Baseline()
