"""Speaker identification head: cosine similarity of an embedding to each enrolled speaker's centroid.

Scores are cosines mapped to [0, 1] as (cos + 1) / 2, so they sit beside the probe heads' probabilities on
the same scale (and can be smoothed the same way); they are similarities, not probabilities, and need not sum
to one. The threshold stays in cosine units, the unit in which equal_error_rate reports it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .assets import check_built_on_model, heads_dir, read_card
from .errors import HeadError, ProfileError
from .profiles import UNKNOWN_SPEAKER, Profile, ProfileStore, describe_model, model_identity

DEFAULT_THRESHOLD = 0.7  # cosine; used when no shipped heads/speaker.json calibrates one
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


class SpeakerHead:
    """Nearest enrolled centroid by cosine; 'unknown' when even the nearest is below `threshold` (cosine)."""

    def __init__(self, profiles: list[Profile], threshold: float, name: str = "speaker",
                 speaker_dims: tuple[int, int] | None = None):
        if not profiles:
            raise ProfileError("expected at least one enrolled speaker, got none: run `edgepara enroll NAME FILE…`")
        _check_threshold(threshold, "threshold")
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
        centroids = speaker_part(np.stack([p.centroid_array() for p in profiles]), speaker_dims)
        self._unit_centroids = centroids / (np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12)

    @classmethod
    def load(cls, profile_dir: str | Path | None, embedder_card: dict, threshold: float | None = None,
             name: str = "speaker") -> "SpeakerHead":
        """Profiles enrolled with `embedder_card`'s model (profiles from another model are refused). The
        threshold defaults to the shipped heads/speaker.json's "threshold", else DEFAULT_THRESHOLD."""
        store = ProfileStore(profile_dir)
        profiles = store.load_for_model(embedder_card)
        if not profiles:
            raise ProfileError(f"expected at least one enrolled speaker in {store.directory}, got none: "
                               f"run `edgepara enroll NAME FILE…` first")
        if threshold is None:
            threshold = shipped_threshold(embedder_card)
        head = cls(profiles, threshold, name=name, speaker_dims=embedder_card.get("speaker_dims"))
        head.store = store  # where the adaptation writes back what enrolled speakers said (Pipeline)
        return head

    def cosines(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine of `embedding` to each enrolled centroid, in `self.speakers` order."""
        e = np.asarray(embedding, dtype=np.float64)
        if e.ndim != 1 or e.shape[0] != self.dim:
            raise HeadError(f"head {self.name}: expected a {self.dim}-d embedding, got shape {e.shape}")
        if not np.all(np.isfinite(e)):
            raise HeadError(f"head {self.name}: expected a finite embedding, got NaN or infinity")
        e = speaker_part(e, self.speaker_dims)
        norm = np.linalg.norm(e)
        if norm == 0:
            # Silence can embed to zero: it resembles nobody, which cosine 0 says without dividing by zero.
            return np.zeros(len(self.speakers))
        return np.clip(self._unit_centroids @ (e / norm), -1.0, 1.0)

    def probabilities(self, embedding: np.ndarray) -> dict[str, float]:
        """{speaker: (cos + 1) / 2} for each enrolled speaker, plus 'unknown': (threshold + 1) / 2, the bar a
        speaker's score must reach. Keeping the bar as a class lets label_for work on smoothed scores too."""
        scores = cosine_to_score(self.cosines(embedding))
        out = {speaker: float(s) for speaker, s in zip(self.speakers, scores)}
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
                      name: str = SPEAKER_HEAD) -> SpeakerHead:
    """The speaker-identification head for a model: every profile enrolled with that model in `profiles`
    (default: the user's profile directory, see ProfileStore), and `threshold` as a cosine (default: the
    model's calibrated threshold). What Pipeline(heads=["speaker"]) and `edgepara listen --head speaker` use.
    Raises ProfileError (one line) when no speaker is enrolled for the model."""
    return SpeakerHead.load(profiles, embedder_card, threshold=threshold, name=name)


def shipped_threshold(embedder_card: dict | None = None) -> float:
    """The cosine threshold calibrated in heads/speaker.json, or DEFAULT_THRESHOLD when none is shipped.
    A threshold calibrated on another model is refused rather than silently applied."""
    card_path = (heads_dir() / embedder_card["name"] if embedder_card else heads_dir()) / SPEAKER_HEAD_CARD
    if not card_path.exists():
        return DEFAULT_THRESHOLD
    card = read_card(card_path, HeadError)
    if "threshold" not in card:
        return DEFAULT_THRESHOLD
    threshold = card["threshold"]
    _check_threshold(threshold, f"{card_path.name} threshold", HeadError)
    if embedder_card is not None and "model" in card:
        _, sha256, dim = model_identity(embedder_card)
        check_built_on_model(card_path.name, {"model": card.get("model"), "model_sha256": card.get("model_sha256", sha256),
                                              "dim": card.get("dim", dim)}, embedder_card, error=HeadError,
                             built="threshold was calibrated", advice="pass an explicit threshold")
    return float(threshold)


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


def _check_threshold(threshold, what: str, error=ProfileError) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
        raise error(f"expected {what} as a cosine in [-1, 1], got {threshold!r}")
