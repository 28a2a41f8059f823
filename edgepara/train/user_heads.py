"""`edgepara train-head`: a probe on the user's own labelled audio, with the shipped student."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import EdgeparaError
from ..heads import save_probe
from .probes import fit_probe, fit_with_c, scores

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


def read_labelled_audio(data: str | Path) -> list[tuple[Path, str, str | None]]:
    """(path, label, speaker or None) from a folder with one sub-folder per class, or a CSV path,label[,speaker]
    (paths relative to the CSV's folder)."""
    data = Path(data)
    if not data.exists():
        raise EdgeparaError(f"expected a folder of class folders or a CSV file, got nothing at {data}")
    if data.is_dir():
        rows = [(f, d.name, None) for d in sorted(data.iterdir()) if d.is_dir()
                for f in sorted(d.rglob("*")) if f.suffix.lower() in AUDIO_SUFFIXES]
        if not rows:
            raise EdgeparaError(f"expected class sub-folders with audio files in {data}, found none")
        return rows
    rows = []
    try:
        with open(data, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is not text
            records = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise EdgeparaError(f"expected a UTF-8 CSV of path,label[,speaker] at {data}, got unreadable text ({err})") from None
    for i, rec in enumerate(records):
        if not rec or (i == 0 and rec[0].strip().lower() == "path"):
            continue
        if len(rec) < 2:
            raise EdgeparaError(f"{data}:{i + 1}: expected path,label[,speaker], got {','.join(rec)!r}")
        path = Path(rec[0].strip())
        rows.append((path if path.is_absolute() else data.parent / path, rec[1].strip(),
                     rec[2].strip() if len(rec) > 2 and rec[2].strip() else None))
    if not rows:
        raise EdgeparaError(f"expected rows path,label[,speaker] in {data}, found none")
    return rows


def check_classes(labels: list[str], min_per_class: int) -> None:
    counts = Counter(labels)
    if len(counts) < 2:
        raise EdgeparaError(f"expected at least 2 classes, got {len(counts)} ({', '.join(counts)})")
    small = {c: n for c, n in counts.items() if n < min_per_class}
    if small:
        detail = ", ".join(f"{c}: {n}" for c, n in sorted(small.items()))
        raise EdgeparaError(f"expected at least {min_per_class} examples per class (to train and validate), got {detail}")


def validation_split(labels: np.ndarray, speakers: list[str | None], seed: int = 0) -> np.ndarray:
    """Boolean mask of validation rows: whole speakers when every row names one (speaker-disjoint), else
    about a fifth of each class's files (file-disjoint)."""
    rng = np.random.default_rng(seed)
    if all(s is not None for s in speakers) and len(set(speakers)) >= 3:
        names = sorted(set(speakers))
        held = set(rng.permutation(names)[: max(1, len(names) // 5)])
        return np.array([s in held for s in speakers])
    mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        mask[idx[: max(1, len(idx) // 5)]] = True
    return mask


def confusion_table(y_true, y_pred, classes) -> str:
    width = max(8, *(len(c) for c in classes)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(c[:width - 1].rjust(width) for c in classes)]
    for t in classes:
        counts = [int(np.sum((y_true == t) & (y_pred == p))) for p in classes]
        lines.append(t[:width - 1].ljust(width) + "".join(str(n).rjust(width) for n in counts))
    return "\n".join(lines)


def train_user_head(name: str, data, model: str, out=None, min_per_class: int = 5, log=print,
                    command: str = "") -> dict:
    from ..embed import embed_files
    from ..runtime import Embedder

    rows = read_labelled_audio(data)
    labels = np.array([r[1] for r in rows])
    check_classes(list(labels), min_per_class)
    embedder = Embedder(model)
    result = embed_files([r[0] for r in rows], embedder=embedder, progress=f"embedding {len(rows)} files")
    speakers = [r[2] for r in rows]
    val = validation_split(labels, speakers)
    only_in_val = sorted(set(labels[val]) - set(labels[~val]))
    if only_in_val:
        raise EdgeparaError(f"expected every class in the training part of the split, got {', '.join(only_in_val)} "
                            "only in validation (give those classes more speakers, or omit the speaker column)")
    probe = fit_probe(result.embeddings[~val], labels[~val], result.embeddings[val], labels[val])
    # fit_probe refits on train+val with the chosen C; score the choice on a model that never saw val
    held_out = fit_with_c(result.embeddings[~val], labels[~val], probe.C, probe.classes)
    val_pred = held_out.predict(result.embeddings[val])
    val_scores = scores(labels[val], val_pred)
    split_kind = "speaker-disjoint" if all(s is not None for s in speakers) and len(set(speakers)) >= 3 else "file-disjoint"
    log(f"validation ({split_kind}, {int(val.sum())} files): accuracy {val_scores['accuracy']:.3f}, UAR {val_scores['uar']:.3f}")
    log(confusion_table(labels[val], val_pred, probe.classes))
    card = {
        "name": name, "version": "0.1.0", "task": name, "classes": probe.classes, "model": embedder.card["name"],
        "model_sha256": embedder.card["sha256"], "dim": embedder.dim, "kind": "logistic regression (user head)",
        "C": probe.C, "examples": {c: int(n) for c, n in Counter(labels).items()},
        "metrics": {"validation_accuracy": round(val_scores["accuracy"], 4), "validation_uar": round(val_scores["uar"], 4),
                    "validation_split": split_kind, "command": command},
        "data": str(data), "license": "as the user's training data",
    }
    out_path = Path(out) if out else Path(f"{name}.npz")
    card = save_probe(out_path, card, probe.arrays())
    log(f"wrote {out_path.with_suffix('.npz')} and {out_path.with_suffix('.json')} (use: edgepara listen --head {out_path.with_suffix('.npz')})")
    return card
