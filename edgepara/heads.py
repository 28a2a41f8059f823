"""Probe heads on the shared embedding (.npz weights + JSON card); a head built for another model is refused.
Speaker identification from enrolled profiles lives in speaker.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .assets import atomic_write, resolve_head, sha256_file
from .errors import HeadError


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


class ProbeHead:
    """Standardise, then logistic regression (W, b) or a one-hidden-layer MLP (W1, b1, W, b)."""

    def __init__(self, name: str, classes: list[str], mean, std, W, b, W1=None, b1=None, card=None):
        self.name, self.classes, self.card = name, list(classes), card or {}
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.W, self.b = np.asarray(W, np.float32), np.asarray(b, np.float32)
        self.W1 = None if W1 is None else np.asarray(W1, np.float32)
        self.b1 = None if b1 is None else np.asarray(b1, np.float32)
        self.dim = len(self.mean)

    @classmethod
    def load(cls, name_or_path: str, embedder_card: dict | None = None) -> "ProbeHead":
        path, card = resolve_head(name_or_path, **({"model": embedder_card["name"]} if embedder_card else {}))
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as err:
            raise HeadError(f"expected a head .npz at {path}, could not read it ({type(err).__name__})") from None
        missing = {"mean", "std", "W", "b"} - set(arrays)
        if missing:
            raise HeadError(f"{path.name}: expected arrays mean, std, W, b; missing {sorted(missing)}")
        head = cls(card.get("name", path.stem), card["classes"], **arrays, card=card)
        if head.W.shape[-1] != len(head.classes):
            raise HeadError(f"{path.name}: card lists {len(head.classes)} classes, weights give {head.W.shape[-1]}")
        if embedder_card is not None:
            check_head_matches_model(path.name, card, embedder_card)
        return head

    def probabilities(self, embedding: np.ndarray) -> dict[str, float]:
        if embedding.shape[-1] != self.dim:
            raise HeadError(f"head {self.name}: expected a {self.dim}-d embedding, got {embedding.shape[-1]}-d")
        x = (embedding - self.mean) / self.std
        if self.W1 is not None:
            x = np.maximum(x @ self.W1 + self.b1, 0.0)
        p = softmax(x @ self.W + self.b)
        return {c: float(v) for c, v in zip(self.classes, p)}


def check_head_matches_model(head_file: str, head_card: dict, model_card: dict) -> None:
    want = (head_card.get("model"), head_card.get("model_sha256"), head_card.get("dim"))
    have = (model_card["name"], model_card["sha256"], model_card["embedding_dim"])
    if want != have:
        raise HeadError(
            f"{head_file}: head was trained on model {want[0]} (sha256 {str(want[1])[:12]}…, {want[2]}-d), "
            f"got model {have[0]} (sha256 {have[1][:12]}…, {have[2]}-d); retrain the head for this model")


def save_probe(path: Path, card: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Writes NAME.npz and NAME.json (no pickles), atomically; the card gets the npz's size and sha256."""
    import json

    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: np.savez(tmp, **{k: np.asarray(v, np.float32) for k, v in arrays.items()}))
    card = dict(card, file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size)
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
    return card
