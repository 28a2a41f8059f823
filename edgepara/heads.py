"""Probe heads on the shared embedding (.npz weights + JSON card); a head built for another model is refused.
Speaker identification from enrolled profiles lives in speaker.py."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .adaptation import NORMALISED_INPUT, Baseline
from .assets import atomic_write_all, check_built_on_model, resolve_head
from .errors import HeadError


BAND_SHAPE_INPUT = "embedding+band_shape"  # head card "input": the embedding, then the window's band shape


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


class ProbeHead:
    """Standardise, then logistic regression (W, b) or a one-hidden-layer MLP (W1, b1, W, b).

    An adaptive head (arrays prior_mean and prior_std; card "input": "speaker_normalised") was trained on
    embeddings normalised by each speaker's own statistics: it reads each embedding against a voice's
    Baseline (edgepara.adaptation), the population prior when none is given. A head whose card "input" is
    "embedding+band_shape" reads the window's spectral shape beside the embedding (`band_shape`, the
    Embedder's band_shape() of the same window). Its card may also carry the "uncertain_below" threshold
    calibrated for it."""

    def __init__(self, name: str, classes: list[str], mean, std, W, b, W1=None, b1=None, card=None,
                 prior_mean=None, prior_std=None):
        self.name, self.classes, self.card = name, list(classes), card or {}
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.W, self.b = np.asarray(W, np.float32), np.asarray(b, np.float32)
        self.W1 = None if W1 is None else np.asarray(W1, np.float32)
        self.b1 = None if b1 is None else np.asarray(b1, np.float32)
        self.reads_band_shape = self.card.get("input") == BAND_SHAPE_INPUT
        self.band_shape_dim = int(self.card["band_shape_dim"]) if self.reads_band_shape else 0
        self.dim = len(self.mean) - self.band_shape_dim  # the embedding's
        self.adaptive = prior_mean is not None
        if self.adaptive:
            self.prior_mean = np.asarray(prior_mean, np.float64)
            self.prior_std = np.asarray(prior_std, np.float64)
            prior = self.card.get("adaptation", {})
            self.prior_n = float(prior.get("prior_utterances", 1.0))
            self.prior_n_spread = float(prior.get("prior_utterances_spread", 3.0))
        threshold = self.card.get("uncertain_below")
        self.uncertain_below = float(threshold) if isinstance(threshold, (int, float)) and not isinstance(
            threshold, bool) and 0.0 <= threshold <= 1.0 else None

    @classmethod
    def load(cls, name_or_path: str, embedder_card: dict | None = None) -> "ProbeHead":
        """Loads and checks a head: its card, every array's shape against the others and the card, finite
        weights, and (given the model's card) that it was trained on that model. A bad head is refused here,
        at load, never turned into NaN probabilities later."""
        path, card = resolve_head(name_or_path, **({"model": embedder_card["name"]} if embedder_card else {}))
        classes = validate_head_card(card, path.with_suffix(".json").name)
        if embedder_card is not None:  # the most useful thing to hear first: which model to retrain it for
            check_head_matches_model(path.name, card, embedder_card)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as err:
            raise HeadError(f"expected a head .npz at {path}, could not read it ({type(err).__name__})") from None
        bands = band_shape_dim(card, path.with_suffix(".json").name, embedder_card)
        check_head_arrays(arrays, len(classes), None if card.get("dim") is None else card["dim"] + bands, path.name)
        adaptive = card.get("input") == NORMALISED_INPUT
        if adaptive != ("prior_mean" in arrays and "prior_std" in arrays):
            raise HeadError(f"{path.name}: expected arrays prior_mean and prior_std exactly when the card's input "
                            f"is {NORMALISED_INPUT!r}, got input {card.get('input')!r} and arrays {sorted(arrays)}")
        known = {"mean", "std", "W", "b", "W1", "b1", "prior_mean", "prior_std"}
        return cls(card.get("name", path.stem), classes, **{k: v for k, v in arrays.items() if k in known}, card=card)

    def probabilities(self, embedding: np.ndarray, baseline: Baseline | None = None,
                      band_shape: np.ndarray | None = None) -> dict[str, float]:
        if embedding.shape[-1] != self.dim:
            raise HeadError(f"head {self.name}: expected a {self.dim}-d embedding, got {embedding.shape[-1]}-d")
        if self.reads_band_shape:
            if band_shape is None or np.shape(band_shape)[-1] != self.band_shape_dim:
                found = "none" if band_shape is None else f"{np.shape(band_shape)[-1]} values"
                raise HeadError(f"head {self.name}: expected the window's band shape too ({self.band_shape_dim} "
                                f"values, Embedder.band_shape()), got {found}")
            embedding = np.concatenate([embedding, band_shape])
        if self.adaptive:
            embedding = (baseline or Baseline()).normalise(embedding, self.prior_mean, self.prior_std, self.prior_n,
                                                           self.prior_n_spread)
        x = (embedding - self.mean) / self.std
        if self.W1 is not None:
            x = np.maximum(x @ self.W1 + self.b1, 0.0)
        p = softmax(x @ self.W + self.b)
        return {c: float(v) for c, v in zip(self.classes, p)}


HEAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def validate_head_name(name: str) -> str:
    """A head's name becomes NAME.npz / NAME.json and a `--head` word: letters, digits, '_' and '-', not
    starting with '-', at most 64 characters, so no path (`../evil` must not write outside the folder) and no
    suffix; and not "speaker" (that word names the enrolled-speaker head)."""
    from .errors import UsageError

    if not isinstance(name, str) or not HEAD_NAME.fullmatch(name):
        raise UsageError(f"expected a head name of letters, digits, '_' and '-' (up to 64, no path or suffix), "
                         f"got {name!r}")
    if name == "speaker":
        raise UsageError("expected a head name other than 'speaker' (the enrolled-speaker head), got 'speaker'")
    return name


def check_head_matches_model(head_file: str, head_card: dict, model_card: dict) -> None:
    check_built_on_model(head_file, head_card, model_card, built="head was trained",
                         advice="retrain the head for this model")


def validate_head_card(card: dict, where: str) -> list[str]:
    """The card fields a probe needs; returns its classes. `where` names the card file."""
    classes = card.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)):
        found = "no classes field" if "classes" not in card else f"{classes!r}"[:60]
        raise HeadError(f"{where}: expected classes, a list of at least 2 class names, got {found}")
    if len(set(classes)) != len(classes):
        raise HeadError(f"{where}: expected distinct class names, got {classes}")
    dim = card.get("dim")
    if dim is not None and not (type(dim) is int and dim >= 1):
        raise HeadError(f"{where}: expected dim, an integer >= 1, got {dim!r}")
    return list(classes)


def band_shape_dim(card: dict, where: str, model_card: dict | None = None) -> int:
    """How many band-shape values a head reads after the embedding: the card's band_shape_dim when its input is
    "embedding+band_shape" (the model's mel bands, checked when the model's card is given), else 0."""
    if card.get("input") != BAND_SHAPE_INPUT:
        return 0
    bands = card.get("band_shape_dim")
    if not (type(bands) is int and bands >= 1):
        raise HeadError(f"{where}: expected band_shape_dim, an integer >= 1, with input {BAND_SHAPE_INPUT!r}, got "
                        f"{bands!r}")
    n_mels = (model_card or {}).get("frontend", {}).get("n_mels", bands)
    if bands != n_mels:
        raise HeadError(f"{where}: expected band shapes of the model's {n_mels} mel bands, got {bands}; retrain the "
                        "head for this model")
    return bands


def check_head_arrays(arrays: dict[str, np.ndarray], n_classes: int, dim: int | None, where: str) -> None:
    """Shapes of a probe's arrays agree with each other, the class count and the card's dim; all finite, and
    std > 0 (it divides)."""
    missing = {"mean", "std", "W", "b"} - set(arrays)
    if missing:
        raise HeadError(f"{where}: expected arrays mean, std, W, b; missing {sorted(missing)}")
    if ("W1" in arrays) != ("b1" in arrays):
        raise HeadError(f"{where}: expected W1 and b1 together (hidden layer), got only {'W1' if 'W1' in arrays else 'b1'}")
    d = dim if dim is not None else arrays["mean"].size
    hidden = arrays["W1"].shape[-1] if "W1" in arrays and arrays["W1"].ndim == 2 else None
    expected = {"mean": (d,), "std": (d,), "W": (hidden if "W1" in arrays else d, n_classes), "b": (n_classes,)}
    if "W1" in arrays:
        expected.update(W1=(d, hidden), b1=(hidden,))
    for key in ("prior_mean", "prior_std"):  # an adaptive head's population prior
        if key in arrays:
            expected[key] = (d,)
    for key, shape in expected.items():
        if tuple(arrays[key].shape) != shape:
            raise HeadError(f"{where}: expected {key} of shape {shape} ({d}-d embedding, {n_classes} classes), "
                            f"got {tuple(arrays[key].shape)}")
    for key in expected:
        values = arrays[key]
        if values.dtype.kind not in "fiu":
            raise HeadError(f"{where}: expected numeric {key}, got dtype {values.dtype}")
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise HeadError(f"{where}: expected finite weights, got {bad} NaN/inf values in {key}")
    for key in ("std", "prior_std"):
        if key in arrays and np.any(arrays[key] <= 0):
            raise HeadError(f"{where}: expected {key} > 0 everywhere (it divides), got "
                            f"{int(np.sum(arrays[key] <= 0))} values <= 0")


def save_probe(path: Path, card: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Writes NAME.npz and NAME.json (no pickles), both or neither (a full disk leaves the previous pair as it
    was, never a head without its card); the card gets the npz's size and sha256."""
    import hashlib
    import io
    import json

    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    data = buffer.getvalue()
    card = dict(card, file=path.name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    text = json.dumps(card, indent=2) + "\n"
    atomic_write_all([(path, lambda tmp: tmp.write_bytes(data)),
                      (path.with_suffix(".json"), lambda tmp: tmp.write_text(text))])
    return card
