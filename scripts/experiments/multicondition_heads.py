"""Measurement behind the shipped emotion heads' fit on clean speech (docs/benchmarks.md, "Heads in rooms"), not
part of any shipped command: do the heads keep more in a room when they are also fitted on room copies of their
corpora (multi-condition training)?

  .venv/bin/python scripts/experiments/multicondition_heads.py edgepara-small [--data-root ../shared/data]

Every labelled corpus is embedded (int8, the VAD windows' mean, cached beside `bench quality`'s embeddings) clean,
through a measured training room and real training noise at an SNR drawn from 0-20 dB per utterance, and through a
held-out room and noise at 10 dB (the benchmark's robustness condition; none of those files is heard in training).
The shipped recipe (each voice standardised by its own statistics, every (corpus, class) weighted equally, the
shipped head's C) is fitted on clean speech alone, or with each corpus's room copies as parts of their own (each
copy its own voice: a baseline is gathered in the room a voice speaks in) at a weight of 1, 0.5 or 0.25 of the
clean rows'. UAR on each corpus's test speakers and, for the 4 shared emotions, leave-one-corpus-out (RAVDESS,
EmoDB, ASED), each clean / in held-out rooms. Utterance means with each test voice's own statistics: a faster
reading than the live pipeline's, which starts cold. Then the 8-class RAVDESS head (no adaptation) the same way."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgepara.assets import heads_dir  # noqa: E402
from edgepara.train.bench_sets import room_noise_items  # noqa: E402
from edgepara.train.bench_systems import features, int8_system  # noqa: E402
from edgepara.train.data import data_root as find_data_root  # noqa: E402
from edgepara.train.emotion import (TASKS, Labelled, _stack, balanced_weights, corpus_features,  # noqa: E402
                                    speaker_normalised, task_data)
from edgepara.train.emotion_corpora import HELD_OUT_CORPORA, SET_NAMES, labelled_rows  # noqa: E402
from edgepara.train.probes import fit_probe, fit_with_c, scores  # noqa: E402

ROOM_WEIGHTS = (0.0, 1.0, 0.5, 0.25)


def embeddings(model: str, root: Path, cache: Path, condition: str) -> dict[str, np.ndarray]:
    """Every labelled corpus, clean (the bench's own embeddings) or through rooms ("train" or "eval")."""
    if condition == "clean":
        return corpus_features(int8_system(model), root, cache)
    return {corpus: features(int8_system(model), room_noise_items(labelled_rows(corpus, root), root, condition), cache,
                             f"{set_name}_rooms_{condition}") for corpus, set_name in SET_NAMES.items()}


def with_room_copies(parts: dict[str, Labelled], rooms: dict[str, Labelled]) -> dict[str, Labelled]:
    """Each part's utterances again through rooms, as a part of its own whose speakers are voices of their own."""
    out = dict(parts)
    for corpus, part in parts.items():
        keep = {u.path for u in part.rows}
        copy = rooms[corpus].take(np.array([u.path in keep for u in rooms[corpus].rows]))
        out[corpus + "@rooms"] = Labelled(copy.X, copy.y, np.char.add(copy.speakers.astype(str), "@rooms"),
                                          copy.split, copy.rows)
    return out


def fit(parts: dict[str, Labelled], rooms: dict[str, Labelled], weight: float, classes, C: float):
    if weight:
        parts = with_room_copies(parts, rooms)
    X, y, corpora = _stack(parts, True)
    w = balanced_weights(y, corpora)
    w[np.char.endswith(corpora.astype(str), "@rooms")] *= weight
    return fit_with_c(X, y, C, list(classes), sample_weight=w)


def uar(probe, part: Labelled) -> float:
    return scores(part.y, probe.predict(speaker_normalised(part.X, part.speakers)))["uar"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cache", default="cache/bench")
    args = ap.parse_args()
    root, cache = find_data_root(args.data_root), Path(args.cache)
    X = {c: embeddings(args.model, root, cache, c) for c in ("clean", "train", "eval")}
    for task, (maps, classes) in TASKS.items():
        C = json.loads((heads_dir() / args.model / f"{task}.json").read_text())["C"]
        parts = {k: {c: task_data(task, c, X[k][c], root) for c in maps} for k in X}
        fit_parts = {c: p.take(p.split != "test") for c, p in parts["clean"].items()}
        for weight in ROOM_WEIGHTS:
            probe = fit(fit_parts, parts["train"], weight, classes, C)
            test = {c: [uar(probe, parts[k][c].take(parts[k][c].split == "test")) for k in ("clean", "eval")]
                    for c in maps if np.any(parts["clean"][c].split == "test")}
            line = (f"{args.model} {task}, room copies at weight {weight}: test speakers clean / rooms, mean "
                    f"{np.mean([v[0] for v in test.values()]):.3f} / {np.mean([v[1] for v in test.values()]):.3f} ("
                    + ", ".join(f"{c} {a:.3f} / {b:.3f}" for c, (a, b) in test.items()) + ")")
            if task == "emotion":
                loco = {held: [uar(fit({c: p for c, p in parts["clean"].items() if c != held}, parts["train"], weight,
                                       classes, C), parts[k][held]) for k in ("clean", "eval")]
                        for held in HELD_OUT_CORPORA}
                line += (f"; leave-one-corpus-out mean {np.mean([v[0] for v in loco.values()]):.3f} / "
                         f"{np.mean([v[1] for v in loco.values()]):.3f} ("
                         + ", ".join(f"{c} {a:.3f} / {b:.3f}" for c, (a, b) in loco.items()) + ")")
            print(line, flush=True)
    # RAVDESS's 8 classes: the shipped head's fit (C chosen on actors 17-18), clean or with the room copies
    rows = labelled_rows("ravdess", root)
    y, split = np.array([u.label for u in rows]), np.array([u.split for u in rows])
    tr, va, te = (split == s for s in ("train", "val", "test"))
    clean, rooms, held_out = X["clean"]["ravdess"], X["train"]["ravdess"], X["eval"]["ravdess"]
    for name, probe in (("clean", fit_probe(clean[tr], y[tr], clean[va], y[va])),
                        ("with room copies", fit_probe(np.vstack([clean[tr], rooms[tr]]), np.tile(y[tr], 2),
                                                       np.vstack([clean[va], rooms[va]]), np.tile(y[va], 2)))):
        print(f"{args.model} emotion8, fitted {name}: RAVDESS test actors accuracy clean / rooms "
              f"{scores(y[te], probe.predict(clean[te]))['accuracy']:.3f} / "
              f"{scores(y[te], probe.predict(held_out[te]))['accuracy']:.3f}", flush=True)


if __name__ == "__main__":
    main()
