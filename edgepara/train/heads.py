"""Training the shipped heads on the default student's int8 embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..assets import heads_dir, resolve_model
from ..heads import save_probe
from .bench import int8_features
from .data import data_root as find_data_root, load_manifest
from .probes import fit_probe, scores


def train_emotion_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                       command: str = "") -> dict:
    """RAVDESS 8 classes; C chosen on actors 17-18, fit on 1-18, scored on test actors 19-24."""
    root = find_data_root(data_root)
    rows = load_manifest("ravdess", root)
    X = int8_features(model, rows, cache, "ravdess")
    y = np.array([u.label for u in rows])
    split = np.array([u.split for u in rows])
    probe = fit_probe(X[split == "train"], y[split == "train"], X[split == "val"], y[split == "val"])
    test = scores(y[split == "test"], probe.predict(X[split == "test"]))
    _, model_card = resolve_model(model)
    card = {
        "name": "emotion", "version": "0.1.0", "task": "emotion (RAVDESS 8 classes, acted North-American English)",
        "classes": probe.classes, "model": model_card["name"], "model_sha256": model_card["sha256"],
        "dim": model_card["embedding_dim"], "kind": "logistic regression on standardised utterance embeddings",
        "C": probe.C,
        "metrics": {"ravdess_test_accuracy": round(test["accuracy"], 4), "ravdess_test_uar": round(test["uar"], 4),
                    "split": "fit on actors 01-18 (C chosen on 17-18), tested on actors 19-24 (speaker-independent)",
                    "command": command},
        "data": "RAVDESS speech (Livingstone & Russo 2018)",
        "license": "CC BY-NC-SA 4.0 (trained on RAVDESS; non-commercial use only)",
    }
    card = save_probe((out_dir or heads_dir()) / "emotion.npz", card, probe.arrays())
    log(f"emotion head: test accuracy {test['accuracy']:.3f}, UAR {test['uar']:.3f} on {model}")
    return card
