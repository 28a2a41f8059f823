"""The staged speech corpora (../shared/data by default) and their speaker-independent splits."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeparaError

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Evaluation protocol (DESIGN.md): RAVDESS test actors 19-24, validation 17-18. EmoDB is evaluated
# leave-one-speaker-out, so every EmoDB speaker is a test speaker: EmoDB never enters distillation.
RAVDESS_TEST = {f"A{i:02d}" for i in range(19, 25)}
RAVDESS_VAL = {"A17", "A18"}
DATASETS = ("ravdess", "emodb", "fsdd")


@dataclass(frozen=True)
class Utterance:
    dataset: str
    path: Path
    label: str
    speaker: str
    split: str


def data_root(root: str | os.PathLike | None = None) -> Path:
    path = Path(root or os.environ.get("EDGEPARA_DATA") or DEFAULT_DATA_ROOT)
    if not (path / "ravdess" / "manifest.csv").exists():
        raise EdgeparaError(
            f"expected the speech data root with ravdess/, emodb/, fsdd/ manifests, got {path} "
            "(set --data-root or EDGEPARA_DATA)"
        )
    return path


def load_manifest(dataset: str, root: Path) -> list[Utterance]:
    folder = root / dataset
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    utterances = []
    for row in rows:
        split = row["split"]
        if dataset == "ravdess":  # enforce the protocol rather than trusting the suggestion column
            split = "test" if row["speaker"] in RAVDESS_TEST else "val" if row["speaker"] in RAVDESS_VAL else "train"
        utterances.append(Utterance(dataset, folder / row["path"], row["label"], row["speaker"], split))
    return utterances


def distillation_utterances(root: Path) -> list[Utterance]:
    """Unlabelled audio the students learn from: never a speaker or take used for evaluation."""
    ravdess = [u for u in load_manifest("ravdess", root) if u.split == "train"]
    fsdd = [u for u in load_manifest("fsdd", root) if u.split == "train"]
    return ravdess + fsdd
