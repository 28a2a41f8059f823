"""`bench quality`'s emotion tables: the shared classes leave-one-corpus-out for every system, raw and
normalised per speaker; ASED (5 classes) and BAVED (arousal) speaker-independent; and the shipped recipe
through the live pipeline with its adaptation, with the coverage and accuracy of the labels it shows as
certain. The shipped emotion and arousal heads are fitted here too (`live_tables` returns them to
`write-heads`), so what ships is what was measured."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeparaError
from .emotion import (CERTAIN_RATE, TASKS, Labelled, choose_threshold, fit_recipe, head_from_probe, live_finals,
                      live_scores, speaker_normalised, task_data)
from .emotion_corpora import EMOTION_MAPS, HELD_OUT_CORPORA, ased_sentence
from .probes import fit_probe, scores

LIVE_MODES = ("speaker", "off")


def _loco_parts(task: str, X: dict, root: Path, held: str) -> dict[str, Labelled]:
    return {c: task_data(task, c, X[c], root) for c in EMOTION_MAPS if c != held}


def _sentences_01_02(data: Labelled) -> np.ndarray:
    return np.array([ased_sentence(u) in ("01", "02") for u in data.rows])


def _require_splits(data: Labelled, corpus: str, root: Path, splits: tuple[str, ...], task: str) -> None:
    """A table measured on a corpus's test speakers (or fitted on its training ones) needs them: one line naming
    the manifest, not an empty mean or a probe error."""
    for split in splits:
        if not np.any(data.split == split):
            raise EdgeparaError(f"expected speakers in split '{split}' with {task} labels in "
                                f"{root / corpus / 'manifest.csv'}, got none")


def _mean_of(table: dict) -> float:
    return round(float(np.mean([table[c] for c in HELD_OUT_CORPORA])), 4)


def probe_tables(X: dict[str, np.ndarray], root: Path) -> dict:
    """One system: leave-one-corpus-out UAR in the 4 shared classes (raw and per-speaker normalised), ASED
    5-class and BAVED arousal on their test speakers (C on their validation speakers)."""
    out = {}
    for normalise, name in ((False, "raw"), (True, "speaker_normalised")):
        loco = {}
        for held in HELD_OUT_CORPORA:
            probe = fit_recipe(_loco_parts("emotion", X, root, held), TASKS["emotion"][1], normalise=normalise)
            data = task_data("emotion", held, X[held], root)
            Z = speaker_normalised(data.X, data.speakers) if normalise else data.X
            predicted = probe.predict(Z)
            loco[held] = round(scores(data.y, predicted)["uar"], 4)
            if held == "ased_amharic":
                keep = _sentences_01_02(data)
                loco["ased_amharic_sentences_01_02"] = round(scores(data.y[keep], predicted[keep])["uar"], 4)
        loco["mean"] = _mean_of(loco)
        out[f"loco_uar_{name}"] = loco
        for key, corpus, labels in (("ased_4class_uar", "ased_amharic", "emotion"),
                                    ("ased_5class_uar", "ased_amharic", "own"),
                                    ("baved_arousal_uar", "baved_arabic", "arousal")):
            rows = (task_data(labels, corpus, X[corpus], root) if labels != "own" else _own_labels(corpus, X, root))
            _require_splits(rows, corpus, root, ("train", "val", "test"), "emotion" if labels == "own" else labels)
            Z = speaker_normalised(rows.X, rows.speakers) if normalise else rows.X
            tr, va, te = (rows.split == s for s in ("train", "val", "test"))
            probe = fit_probe(Z[tr], rows.y[tr], Z[va], rows.y[va])
            predicted = probe.predict(Z[te])
            out.setdefault(key, {})[name] = round(scores(rows.y[te], predicted)["uar"], 4)
            if corpus == "ased_amharic":  # sentences 03-07 each belong to one emotion: words could give it away
                keep = _sentences_01_02(rows)[te]
                out.setdefault(key.replace("_uar", "_sentences_01_02_uar"), {})[name] = round(
                    scores(rows.y[te][keep], predicted[keep])["uar"], 4)
    return out


def _own_labels(corpus: str, X: dict, root: Path) -> Labelled:
    from .emotion_corpora import labelled_rows, speaker_ids

    rows = labelled_rows(corpus, root)
    return Labelled(X[corpus], np.array([u.label for u in rows]), speaker_ids(rows), np.array([u.split for u in rows]),
                    rows)


def live_tables(model: str, X: dict[str, np.ndarray], root: Path, log=print) -> tuple[dict, dict]:
    """The shipped recipe through the live pipeline on one model. Returns (report, the fitted shipped heads:
    name -> (probe, card fields)). Leave-one-corpus-out: a head fitted on all speakers of the other corpora,
    each held-out speaker one stream, with the adaptation and without (`off`: the population prior only).
    The threshold for "uncertain" is chosen on the held-out corpora's validation speakers and reported on
    their test speakers. Shipped heads: fitted on the training and validation speakers of every corpus,
    reported on each corpus's test speakers, clean and through held-out rooms and noise (10 dB SNR). Fitted on
    clean speech only: room copies of the corpora in the fit lifted each corpus's own test speakers in rooms but
    cost leave-one-corpus-out transfer, clean and in rooms (scripts/experiments/multicondition_heads.py)."""
    from ..runtime import Embedder

    for held in HELD_OUT_CORPORA:  # the certain labels are reported on each held-out corpus's test speakers
        _require_splits(task_data("emotion", held, X[held], root), held, root, ("test",), "emotion")
    embedder = Embedder(model)
    uar = {mode: {} for mode in LIVE_MODES}
    restarts, loco_finals = dict.fromkeys(LIVE_MODES, 0), {}
    for held in HELD_OUT_CORPORA:
        head, _, _ = head_from_probe("emotion", fit_recipe(_loco_parts("emotion", X, root, held), TASKS["emotion"][1]))
        data = task_data("emotion", held, X[held], root)
        for mode, (finals, n) in live_finals(embedder, head, data, modes=LIVE_MODES).items():
            restarts[mode] += n
            uar[mode][held] = live_scores(finals, data.y)["uar"]
            if held == "ased_amharic":
                keep = _sentences_01_02(data)
                uar[mode]["ased_amharic_sentences_01_02"] = live_scores(
                    [f for f, k in zip(finals, keep) if k], data.y[keep])["uar"]
            if mode == "speaker":
                loco_finals[held] = (data, finals)
    report = {}
    for mode in LIVE_MODES:
        uar[mode]["mean"] = _mean_of(uar[mode])
        uar[mode]["stream_voice_restarts"] = restarts[mode]
        report[f"loco_live_uar_adaptation_{mode}"] = uar[mode]
        log(f"  live LOCO ({model}, adaptation {mode}): {uar[mode]}")
    # the strictest of the held-out corpora's own thresholds: pooled, the largest validation set (ASED's) set it
    # for all, and shown labels were right 48-65 % of the time on the others' test speakers
    threshold = max(choose_threshold([f for f, s in zip(finals, data.split) if s == "val"], data.y[data.split == "val"])
                    for data, finals in loco_finals.values())
    report["uncertain_below"] = threshold
    report["certain_loco_test_speakers"] = {
        held: live_scores([f for f, s in zip(finals, data.split) if s == "test"], data.y[data.split == "test"],
                          threshold)
        for held, (data, finals) in loco_finals.items()}
    heads = {}
    for task in TASKS:
        parts = {c: task_data(task, c, X[c], root) for c in TASKS[task][0]}
        fit_parts = {c: p.take(p.split != "test") for c, p in parts.items()}
        probe = fit_recipe(fit_parts, TASKS[task][1])
        if task == "arousal":  # its threshold from the validation speakers, through a fit on the training ones
            val_probe = fit_recipe({c: p.take(p.split == "train") for c, p in parts.items()}, TASKS[task][1], C=probe.C)
            val_head, _, _ = head_from_probe(task, val_probe)
            finals, ys = [], []
            for c, p in parts.items():
                v = p.take(p.split == "val")
                finals += live_finals(embedder, val_head, v)["speaker"][0]
                ys += list(v.y)
            task_threshold = choose_threshold(finals, np.array(ys))
        else:
            task_threshold = threshold
        head, _, _ = head_from_probe(task, probe, {"uncertain_below": task_threshold})
        test_speakers = _test_speakers_live(embedder, head, parts, root, task_threshold)
        report[f"shipped_{task}_test_speakers"] = test_speakers
        rooms = report[f"shipped_{task}_test_speakers_rooms"] = _test_speakers_live(
            embedder, head, parts, root, task_threshold, rooms=True)
        metrics = {"test_speakers_live": test_speakers, "test_speakers_rooms_live": rooms, "C": probe.C}
        heads[task] = (probe, {"uncertain_below": task_threshold, "metrics": metrics})
        log(f"  shipped {task} head ({model}), test speakers through the live pipeline: {test_speakers}; through "
            f"held-out rooms and noise: {rooms}")
    return report, heads


def _test_speakers_live(embedder, head, parts: dict[str, Labelled], root: Path, threshold: float,
                        rooms: bool = False) -> dict:
    """Each corpus's test speakers through the live pipeline: clean, or through held-out rooms and noise."""
    from .bench_sets import room_noise_items

    out = {}
    for corpus, part in parts.items():
        test = part.take(part.split == "test")
        if len(test):
            items = room_noise_items(test.rows, root, "eval") if rooms else None
            out[corpus] = live_scores(live_finals(embedder, head, test, items=items)["speaker"][0], test.y, threshold)
    return out


def emotion_quality(systems: dict, root: Path, cache: Path, log=print) -> tuple[dict, dict]:
    """Every system's probe tables, and for each shipped model the live tables. Returns (report, the heads
    fitted per model)."""
    from ..assets import available_models
    from .bench_sets import robust_items
    from .bench_systems import features, split_whisper_rows
    from .data import load_manifest
    from .emotion import corpus_features

    per_system = {name: corpus_features(sys_, root, cache, log) for name, sys_ in systems.items()}
    split_whisper_rows(per_system)
    report = {"probes": {}, "live": {}, "certain_rate": CERTAIN_RATE}
    for name, X in per_system.items():
        report["probes"][name] = probe_tables(X, root)
        log(f"  emotion probes: {name}: {report['probes'][name]['loco_uar_speaker_normalised']}")
    heads = {}
    for model in available_models():
        key = f"{model} int8"
        if key in per_system:
            # the emotion8 head's held-out rooms figure (write-heads) reads them from this cache
            features(systems[key], robust_items(load_manifest("ravdess", root), root), cache, "ravdess_robust", log=log)
            report["live"][model], heads[model] = live_tables(model, per_system[key], root, log)
    return report, heads


def markdown(report: dict) -> str:
    """The emotion tables for results.md."""
    cols = list(HELD_OUT_CORPORA) + ["ased_amharic_sentences_01_02", "mean"]
    lines = ["", "Emotion, 4 shared classes (neutral/calm, happy, sad, angry), leave-one-corpus-out UAR "
                 "(probe on all speakers of the other labelled corpora, emospeech_in included); raw / normalised "
                 "per speaker; ASED (4 shared classes, the same on sentences 01-02 only, 5 classes) and BAVED "
                 "arousal (3 levels) on their test speakers, probe fitted on their training speakers:", "",
             "| system | " + " | ".join(f"{c} raw / norm." for c in cols) + " | ASED 4-class | ASED 4-class s01-02 | "
             "ASED 5-class | BAVED arousal |", "|---|" + "---:|" * (len(cols) + 4)]
    within_keys = ("ased_4class_uar", "ased_4class_sentences_01_02_uar", "ased_5class_uar", "baved_arousal_uar")
    for name, r in report["probes"].items():
        if not all(k in r for k in within_keys):  # a results.json from before these columns
            continue
        cells = [f"{r['loco_uar_raw'][c]:.3f} / {r['loco_uar_speaker_normalised'][c]:.3f}" for c in cols]
        cells += [f"{r[k]['raw']:.3f} / {r[k]['speaker_normalised']:.3f}"
                  for k in within_keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Through the live pipeline (shipped recipe; one stream per speaker, cold start included), "
                  "leave-one-corpus-out UAR with the adaptation on / off:", "",
              "| model | " + " | ".join(cols) + " | voice restarts |", "|---|" + "---:|" * (len(cols) + 1)]
    for model, r in report["live"].items():
        on, off = r["loco_live_uar_adaptation_speaker"], r["loco_live_uar_adaptation_off"]
        lines.append(f"| {model} | " + " | ".join(f"{on[c]:.3f} / {off[c]:.3f}" for c in cols)
                     + f" | {on['stream_voice_restarts']} |")
    lines += ["", f"Labels shown as certain (threshold chosen on validation speakers for {CERTAIN_RATE:.0%} right): "
                  "coverage / accuracy on test speakers:", "",
              "| model | threshold | " + " | ".join(f"LOCO {c}" for c in HELD_OUT_CORPORA)
              + " | shipped emotion head: per corpus | shipped arousal head: per corpus |", "|---|---:|" + "---|" * 5]
    for model, r in report["live"].items():
        loco = [f"{v['certain_coverage']:.2f} / {_fmt(v['certain_accuracy'])}"
                for v in r["certain_loco_test_speakers"].values()]
        shipped = ["; ".join(f"{c} UAR {v['uar']:.3f}, {v['certain_coverage']:.2f} / {_fmt(v['certain_accuracy'])}"
                             for c, v in r[f"shipped_{t}_test_speakers"].items()) for t in TASKS]
        lines.append(f"| {model} | {r['uncertain_below']:.2f} | " + " | ".join(loco + shipped) + " |")
    rooms = [(model, task, r) for model, r in report["live"].items() for task in TASKS
             if f"shipped_{task}_test_speakers_rooms" in r]
    if rooms:
        corpora = sorted({c for _, task, r in rooms for c in r[f"shipped_{task}_test_speakers"]})
        lines += ["", "The shipped heads on each corpus's test speakers (live), clean / through held-out rooms and "
                      "noise at 10 dB: UAR", "",
                  "| model | head | " + " | ".join(corpora) + " |", "|---|---|" + "---:|" * len(corpora)]
        for model, task, r in rooms:
            clean, noisy = r[f"shipped_{task}_test_speakers"], r[f"shipped_{task}_test_speakers_rooms"]
            lines.append(f"| {model} | {task} | " + " | ".join(
                f"{clean[c]['uar']:.3f} / {noisy[c]['uar']:.3f}" if c in clean else "-" for c in corpora) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"
