"""Speaker identification head: cosine similarity of an embedding to each enrolled speaker's centroid.

Scores are cosines mapped to [0, 1] as (cos + 1) / 2, so they sit beside the probe heads' probabilities on
the same scale (and can be smoothed the same way); they are similarities, not probabilities, and need not sum
to one.

The decision is calibrated in a unit a user can read: the false-accept rate, the share of strangers'
utterances that get an enrolled person's name. With N profiles a stranger is named when the best of N
impostor scores clears the bar, so a fixed cosine names more strangers with every person enrolled. The shipped
card carries the single-profile impostor curve measured on speakers the model never trained on (cosine at each
false-accept rate); the head turns the asked-for rate into the cosine bar for its own N, from
1 - (1 - rate)^(1/N) per profile. An explicit cosine threshold (the unit of 0.3 and earlier) still works as a
fixed bar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .assets import check_built_on_model, heads_dir, read_card
from .errors import HeadError, ProfileError
from .profiles import UNKNOWN_SPEAKER, Profile, ProfileStore, describe_model, model_identity

DEFAULT_THRESHOLD = 0.7  # cosine; used when no shipped heads/speaker.json calibrates one
DEFAULT_FALSE_ACCEPT = 0.03  # strangers' utterances named as someone, when the card does not say
CONFIDENT_SHARE = 0.01  # profile adaptation: a hundredth of the false-accept rate (see decision_bars)
SPEAKER_HEAD_CARD = "speaker.json"
SPEAKER_HEAD = "speaker"  # the head name that means "identify enrolled speakers" (Pipeline(heads=[...]), --head)


def speaker_part(embeddings: np.ndarray, speaker_dims) -> np.ndarray:
    """The dimensions a model trained for speakers (its card's `speaker_dims`), else the whole embedding."""
    if not speaker_dims:
        return embeddings
    start, end = speaker_dims
    return np.asarray(embeddings)[..., start:end]


def cosine_to_score(cos):
    return (np.asarray(cos, dtype=np.float64) + 1.0) / 2.0


def score_to_cosine(score):
    return np.asarray(score, dtype=np.float64) * 2.0 - 1.0


@dataclass(frozen=True)
class ImpostorCurve:
    """Single-profile impostor scores: `cosines[i]` is the bar that a share `false_accepts[i]` of strangers'
    utterances reach against one profile (false_accepts ascending, cosines descending)."""
    false_accepts: tuple[float, ...]
    cosines: tuple[float, ...]

    @classmethod
    def from_card(cls, curve, where: str, error=HeadError) -> "ImpostorCurve":
        try:
            rates = tuple(float(r) for r in curve["false_accept"])
            cosines = tuple(float(c) for c in curve["cosine"])
        except (TypeError, KeyError, ValueError):
            raise error(f"{where}: expected impostor_curve with lists false_accept and cosine, got {curve!r:.80}") from None
        if len(rates) < 2 or len(rates) != len(cosines) or not all(math.isfinite(v) for v in rates + cosines) \
                or any(b <= a for a, b in zip(rates, rates[1:])) or any(b > a for a, b in zip(cosines, cosines[1:])) \
                or not (0 < rates[0] and rates[-1] < 1) or not all(-1 <= c <= 1 for c in cosines):
            raise error(f"{where}: expected an impostor_curve of rising rates in (0, 1) and falling cosines, "
                        f"got {len(rates)} rates and {len(cosines)} cosines out of order or range")
        return cls(rates, cosines)

    def cosine_for(self, false_accept: float, n_profiles: int) -> float:
        """The cosine bar at which about `false_accept` of strangers' utterances are named as one of
        `n_profiles` people (each profile's share 1 - (1 - rate)^(1/N), treating profiles as independent)."""
        per_profile = 1.0 - (1.0 - false_accept) ** (1.0 / max(1, n_profiles))
        # the curve is close to linear in log(rate); beyond its ends the end values are the best estimate
        x = np.log(np.clip(per_profile, self.false_accepts[0], self.false_accepts[-1]))
        return float(np.interp(x, np.log(self.false_accepts), self.cosines))


class SpeakerHead:
    """Nearest enrolled centroid by cosine; 'unknown' when even the nearest is below the head's cosine bar:
    `threshold` when given (a fixed cosine), else the bar at which `false_accept` of strangers' utterances
    would be named as one of these profiles, from the model's impostor `curve`."""

    def __init__(self, profiles: list[Profile], threshold: float | None = None, name: str = "speaker",
                 speaker_dims: tuple[int, int] | None = None, false_accept: float | None = None,
                 curve: ImpostorCurve | None = None):
        if not profiles:
            raise ProfileError("expected at least one enrolled speaker, got none: run `edgepara enroll NAME FILE…`")
        if (threshold is None) == (false_accept is None):
            raise ProfileError("expected either a cosine threshold or a false-accept rate, got "
                               + ("both" if threshold is not None else "neither"))
        if false_accept is not None:
            _check_false_accept(false_accept, "false-accept rate")
            if curve is None:
                raise ProfileError("expected an impostor curve with a false-accept rate (the model's speaker.json "
                                   "carries one), got none")
        else:
            _check_threshold(threshold, "threshold")
        self.false_accept = None if false_accept is None else float(false_accept)
        threshold, self.confident_bar = decision_bars(
            float(threshold) if false_accept is None else (self.false_accept, curve), len(profiles))
        _check_threshold(threshold, "threshold")  # also the bar a curve gave
        models = {(p.model, p.model_sha256, p.dim) for p in profiles}
        if len(models) > 1:
            described = " and ".join(sorted(describe_model(*m) for m in models)[:2])
            raise ProfileError(f"expected speaker profiles from one model, got profiles from {described}")
        names = [p.name for p in profiles]
        if len(set(names)) != len(names) or UNKNOWN_SPEAKER in names:
            raise ProfileError(f"expected distinct speaker names other than {UNKNOWN_SPEAKER!r}, got {names}")
        self.name = name
        self.store = None
        self.profiles = list(profiles)
        self.speakers = names
        self.classes = names + [UNKNOWN_SPEAKER]
        self.threshold = float(threshold)
        self.dim = profiles[0].dim
        # Profiles keep the whole embedding's centroid; a model with a speaker part is scored on that part only.
        self.speaker_dims = speaker_dims
        self._centroids = np.stack([p.centroid_array() for p in profiles])
        self._anchors = np.stack([p.anchor_array() for p in profiles])
        self._unit_centroids = self._unit_speaker_part(self._centroids)
        self.adapted: dict[str, list[np.ndarray]] = {}  # unit utterance embeddings that moved a profile, to save

    def _unit_speaker_part(self, centroids: np.ndarray) -> np.ndarray:
        part = speaker_part(centroids, self.speaker_dims)
        return part / (np.linalg.norm(part, axis=-1, keepdims=True) + 1e-12)

    def adapt(self, name: str, cosine: float, embedding: np.ndarray) -> bool:
        """Moves `name`'s profile (in memory; ProfileStore.adapt saves it) a bounded step towards an utterance
        they were named for with `cosine` (the final's score) and whose mean embedding is `embedding`: only at
        or above `confident_bar`, never for "unknown", never beyond profiles.ANCHOR_COSINE of what was enrolled.
        True when the profile moved."""
        from .profiles import adapted_centroid

        if name not in self.speakers or not cosine >= self.confident_bar:
            return False
        e = np.asarray(embedding, np.float64)
        norm = np.linalg.norm(e)
        if e.shape != (self.dim,) or not np.isfinite(norm) or norm == 0:
            return False
        i = self.speakers.index(name)
        unit = e / norm
        new = adapted_centroid(self._centroids[i], self._anchors[i], unit, self.speaker_dims)
        if new is None:
            return False
        self._centroids[i] = new
        self._unit_centroids[i] = self._unit_speaker_part(new)
        self.adapted.setdefault(name, []).append(unit)
        return True

    @classmethod
    def load(cls, profile_dir: str | Path | None, embedder_card: dict, threshold: float | None = None,
             name: str = "speaker", false_accept: float | None = None) -> "SpeakerHead":
        """Profiles enrolled with `embedder_card`'s model (profiles from another model are refused). Decides
        at `threshold` (a fixed cosine) when given, else at `false_accept` (default: the shipped
        heads/speaker.json's) through the model's impostor curve; a card without a curve gives its fixed
        "threshold", no card DEFAULT_THRESHOLD."""
        if threshold is not None and false_accept is not None:
            raise ProfileError(f"expected a cosine threshold or a false-accept rate, got both "
                               f"({threshold} and {false_accept})")
        store = ProfileStore(profile_dir)
        profiles = store.load_for_model(embedder_card)
        if not profiles:
            raise ProfileError(f"expected at least one enrolled speaker in {store.directory}, got none: "
                               f"run `edgepara enroll NAME FILE…` first")
        head = cls.for_model(profiles, embedder_card, threshold, name, false_accept)
        head.store = store  # where the adaptation writes back what enrolled speakers said (Pipeline)
        return head

    @classmethod
    def for_model(cls, profiles: list[Profile], embedder_card: dict, threshold: float | None = None,
                  name: str = "speaker", false_accept: float | None = None) -> "SpeakerHead":
        """A head over `profiles` (enrolled with `embedder_card`'s model) deciding as `load` describes."""
        dims = embedder_card.get("speaker_dims")
        if threshold is not None:
            return cls(profiles, threshold, name=name, speaker_dims=dims)
        calibration = shipped_calibration(embedder_card)
        if isinstance(calibration, float):  # no curve: a fixed cosine
            if false_accept is not None:
                raise HeadError(f"expected a speaker.json with an impostor curve for {embedder_card['name']} "
                                f"to decide at a false-accept rate, got none: pass a cosine threshold")
            return cls(profiles, calibration, name=name, speaker_dims=dims)
        default_rate, curve = calibration
        return cls(profiles, name=name, speaker_dims=dims, curve=curve,
                   false_accept=default_rate if false_accept is None else false_accept)

    def alike(self) -> list[tuple[str, str, float]]:
        """Pairs of enrolled people whose profiles are as close as the naming bar: (name, name, cosine). Such a
        pair's utterances are named as the other person 3-29 times as often as other pairs' (measured:
        scripts/experiments/speaker_domains.py)."""
        cos = self._unit_centroids @ self._unit_centroids.T
        return [(self.speakers[i], self.speakers[j], float(cos[i, j]))
                for i in range(len(self.speakers)) for j in range(i + 1, len(self.speakers))
                if cos[i, j] >= self.threshold]

    def alike_warnings(self, involving: str | None = None) -> list[str]:
        """One line per pair of profiles the head could take for each other (only pairs with `involving`)."""
        bar = (f"names from {self.threshold:.2f} with {len(self.speakers)} people enrolled"
               + (f" at a false-accept rate of {self.false_accept:g}" if self.false_accept is not None else ""))
        return [f"{a} and {b} sound alike to the model (cosine {c:.2f} between their profiles; the speaker head "
                f"{bar}): one may be named as the other; enroll each from more speech, recorded where they will "
                f"be heard, or decide at a lower --speaker-false-accept"
                for a, b, c in self.alike() if involving in (None, a, b)]

    def voice(self, embedding: np.ndarray) -> np.ndarray:
        """One window's voice as the head compares it: the unit speaker part (zeros for an all-zero embedding:
        silence can embed to zero, and it resembles nobody)."""
        e = np.asarray(embedding, dtype=np.float64)
        if e.ndim != 1 or e.shape[0] != self.dim:
            raise HeadError(f"head {self.name}: expected a {self.dim}-d embedding, got shape {e.shape}")
        if not np.all(np.isfinite(e)):
            raise HeadError(f"head {self.name}: expected a finite embedding, got NaN or infinity")
        e = speaker_part(e, self.speaker_dims)
        norm = np.linalg.norm(e)
        return e / norm if norm else np.zeros_like(e)

    def cosines(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine of `embedding` (one window) to each enrolled centroid, in `self.speakers` order."""
        return self._cosines_of(self.voice(embedding))

    def _cosines_of(self, voice: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(voice)
        if norm == 0:
            return np.zeros(len(self.speakers))
        return np.clip(self._unit_centroids @ (voice / norm), -1.0, 1.0)

    def probabilities(self, embedding: np.ndarray) -> dict[str, float]:
        """{speaker: (cos + 1) / 2} for each enrolled speaker, plus 'unknown': (threshold + 1) / 2, the bar a
        speaker's score must reach. Keeping the bar as a class lets label_for work on smoothed scores too."""
        return self._scores(self.cosines(embedding))

    def utterance_probabilities(self, voices_sum: np.ndarray) -> dict[str, float]:
        """What the final prediction decides on: the scores of an utterance's voice, the direction of the sum of
        its windows' `voice`s. Measured against averaging the windows' cosines, it separates voices better on
        every set (scripts/experiments/speaker_domains.py --only scoring): one odd window moves it less."""
        return self._scores(self._cosines_of(np.asarray(voices_sum, np.float64)))

    def _scores(self, cosines: np.ndarray) -> dict[str, float]:
        out = {speaker: float(s) for speaker, s in zip(self.speakers, cosine_to_score(cosines))}
        out[UNKNOWN_SPEAKER] = float(cosine_to_score(self.threshold))
        return out

    def label_for(self, probs: dict[str, float]) -> tuple[str, float]:
        """(best enrolled speaker, their score), or ('unknown', 1 - best score) when the best speaker's
        cosine is below the threshold. Ties go to the speaker enrolled first."""
        missing = [s for s in self.speakers if s not in probs]
        if missing:
            raise HeadError(f"head {self.name}: expected scores for {', '.join(self.speakers)}, "
                            f"got none for {', '.join(missing)}")
        best = max(self.speakers, key=lambda s: probs[s])
        best_score = float(probs[best])
        if float(score_to_cosine(best_score)) < self.threshold:
            return UNKNOWN_SPEAKER, 1.0 - best_score
        return best, best_score


def load_speaker_head(embedder_card: dict, profiles: str | Path | None = None, threshold: float | None = None,
                      name: str = SPEAKER_HEAD, false_accept: float | None = None) -> SpeakerHead:
    """The speaker-identification head for a model: every profile enrolled with that model in `profiles`
    (default: the user's profile directory, see ProfileStore), deciding at `false_accept` (the share of
    strangers' utterances named as someone; default: the model's calibrated rate) or at a fixed cosine
    `threshold`. What Pipeline(heads=["speaker"]) and `edgepara listen --head speaker` use.
    Raises ProfileError (one line) when no speaker is enrolled for the model."""
    return SpeakerHead.load(profiles, embedder_card, threshold=threshold, name=name, false_accept=false_accept)


def shipped_calibration(embedder_card: dict | None = None) -> "tuple[float, ImpostorCurve] | float":
    """(default false-accept rate, impostor curve) from heads/speaker.json; a card without a curve gives its
    fixed cosine "threshold", and no card DEFAULT_THRESHOLD. A calibration made on another model is refused
    rather than silently applied."""
    card_path = (heads_dir() / embedder_card["name"] if embedder_card else heads_dir()) / SPEAKER_HEAD_CARD
    if not card_path.exists():
        return DEFAULT_THRESHOLD
    card = read_card(card_path, HeadError)
    if "impostor_curve" not in card and "threshold" not in card:
        return DEFAULT_THRESHOLD
    if embedder_card is not None and "model" in card:
        _, sha256, dim = model_identity(embedder_card)
        check_built_on_model(card_path.name, {"model": card.get("model"), "model_sha256": card.get("model_sha256", sha256),
                                              "dim": card.get("dim", dim)}, embedder_card, error=HeadError,
                             built="threshold was calibrated", advice="pass an explicit threshold")
    if "impostor_curve" in card:
        rate = card.get("false_accept", DEFAULT_FALSE_ACCEPT)
        _check_false_accept(rate, f"{card_path.name} false_accept", HeadError)
        return float(rate), ImpostorCurve.from_card(card["impostor_curve"], card_path.name)
    _check_threshold(card["threshold"], f"{card_path.name} threshold", HeadError)
    return float(card["threshold"])


def decision_bars(calibration: "tuple[float, ImpostorCurve] | float", n_profiles: int) -> tuple[float, float]:
    """(naming bar, confident bar) in cosine for a head with `n_profiles` under `calibration` (a false-accept
    rate with its impostor curve, or a fixed cosine). `listen --adapt-profiles` moves a profile only at the
    confident bar: where strangers reach a hundred times more rarely than the naming bar allows (a fixed cosine:
    0.1 above it)."""
    if isinstance(calibration, float):
        return calibration, min(1.0, calibration + 0.1)
    rate, curve = calibration
    return curve.cosine_for(rate, n_profiles), curve.cosine_for(rate * CONFIDENT_SHARE, n_profiles)


def shipped_threshold(embedder_card: dict | None = None, n_profiles: int = 4) -> float:
    """The cosine bar the shipped calibration sets for `n_profiles` enrolled people."""
    return decision_bars(shipped_calibration(embedder_card), n_profiles)[0]


def equal_error_rate(scores, labels) -> tuple[float, float]:
    """(EER, threshold) for verification scores; labels 1 (or True) = same speaker, accepted when
    score >= threshold. Sweeps every distinct score as a threshold and interpolates linearly between the
    two thresholds where the false-rejection rate overtakes the false-acceptance rate."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"expected 1-d scores and labels of one length, got shapes {scores.shape} and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("expected finite scores, got NaN or infinity")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"expected labels of 0/1 (1 = same speaker), got values {np.unique(labels)[:5].tolist()}")
    same = labels.astype(bool)
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError(f"expected both same-speaker and different-speaker trials, got {len(genuine)} "
                         f"same and {len(impostor)} different")
    # One threshold past the top score, where everything is rejected, closes the sweep.
    thresholds = np.append(np.unique(scores), np.nextafter(scores.max(), np.inf))
    false_accept = (len(impostor) - np.searchsorted(impostor, thresholds, side="left")) / len(impostor)
    false_reject = np.searchsorted(genuine, thresholds, side="left") / len(genuine)
    # At the lowest threshold every impostor is accepted (FAR 1, FRR 0), so the crossing index is >= 1.
    i = int(np.argmax(false_reject >= false_accept))
    gap_before = false_accept[i - 1] - false_reject[i - 1]  # > 0
    gap_after = false_reject[i] - false_accept[i]  # >= 0
    if gap_after == 0:
        # Every threshold in (thresholds[i-1], thresholds[i]] gives equal rates: take the middle, which is
        # the least sensitive choice (e.g. halfway between the classes when they are separable).
        return float(false_accept[i]), float((thresholds[i - 1] + thresholds[i]) / 2)
    fraction = gap_before / (gap_before + gap_after)
    eer = false_accept[i - 1] + fraction * (false_accept[i] - false_accept[i - 1])
    threshold = thresholds[i - 1] + fraction * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def _check_false_accept(rate, what: str, error=ProfileError) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate) or not 0.0 < rate < 1.0:
        raise error(f"expected {what} as a share of strangers in (0, 1), e.g. 0.03, got {rate!r}")


def _check_threshold(threshold, what: str, error=ProfileError) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
        raise error(f"expected {what} as a cosine in [-1, 1], got {threshold!r}")
