"""`edgepara bench quality|speed`: every teacher, the teachers concatenated, eGeMAPS and each student
(float and int8) on the same speaker-independent splits, in one run. The parts live beside it: bench_sets,
bench_systems, bench_tasks, bench_report, bench_targets and bench_speed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..assets import available_models, resolve_model
from ..errors import EdgeparaError
from .bench_report import carried_rows, markdown_table, plot, retention, row_model, seed_summary, unchanged_models
from .bench_sets import ROBUST_SNR_DB, evaluation_sets
from .bench_speed import speed  # noqa: F401 (the CLI calls bench.speed)
from .bench_systems import (DISTILLATION_TEACHERS, WHISPER_SYSTEMS, features, mask_X_rows, split_whisper_rows,
                            system_embedders, system_speaker_dims)
from .bench_targets import record_emotion_in_model_cards, record_in_model_cards
from .bench_tasks import clean_row, evaluate_mask, mask_design
from .data import data_root as find_data_root
from .export import write_json
from .masks import HELD_OUT_MASK


def quality(out: Path, cache: Path, runs: Path, data_root=None, log=print, command: str = "",
            ablation: Path | None = None, with_masks: bool = True) -> dict:
    root = find_data_root(data_root)
    ev = evaluation_sets(root, with_masks)
    sets, masked, curves = ev.sets, ev.masked, ev.curves
    systems = system_embedders(runs, ablation)
    per_system = {name: {ds: features(sys_, items, cache, ds, log=log) for ds, items in sets.items()}
                  for name, sys_ in systems.items()}
    split_whisper_rows(per_system)
    per_system["teachers_concat"] = {ds: np.concatenate([per_system[t][ds] for t in DISTILLATION_TEACHERS], axis=1)
                                     for ds in sets}
    dims = system_speaker_dims(ablation)
    results = {name: clean_row(name, X, ev, log, dims.get(name)) for name, X in per_system.items()}
    if masked:
        design = mask_design(masked)
        mask_X = {name: features(sys_, masked, cache, "ravdess_masked", curves, log)
                  for name, sys_ in systems.items() if not name.startswith("ablation")}
        mask_X = mask_X_rows(mask_X)
        mask_X["teachers_concat"] = np.concatenate([mask_X[t] for t in DISTILLATION_TEACHERS], axis=1)
        for name, X in mask_X.items():
            results[name]["mask_simulated_uar"] = evaluate_mask(X, design)
    sizes = {name: sys_[2] for name, sys_ in systems.items() if sys_[2] is not None}
    for model in WHISPER_SYSTEMS:
        for block in WHISPER_SYSTEMS[model]:
            sizes[f"whisper {model} b{block}"] = sizes[f"whisper {model}"]
    sizes["teachers_concat"] = sum(sizes[f"whisper {m}"] for m in WHISPER_SYSTEMS) + sizes["resemblyzer"]
    from .emotion_bench import emotion_quality

    emotion, _ = emotion_quality(systems, root, cache, log)
    speakers_open_set = dict(speaker_open_set(cache, root, log), command=command)
    report = {"command": command, "utterances": {k: len(v) for k, v in sets.items()},
              "mask_task": {"utterances": len(masked), "held_out_mask": HELD_OUT_MASK,
                            "note": "simulated: clean speech filtered with measured mask attenuation curves"},
              "robustness": f"RAVDESS test actors through held-out rirs_real rooms + noise_real noise at "
                            f"{ROBUST_SNR_DB:g} dB SNR (files never heard in distillation)",
              "teachers_concat": list(DISTILLATION_TEACHERS),
              "model_sha256": model_digests(shipped_cards()), "sizes_bytes": sizes, "results": results,
              "retention": retention(results),
              "seeds": seed_summary(results), "emotion": emotion, "speaker_open_set": speakers_open_set}
    record_in_model_cards(report)
    emotion["command"] = command
    record_emotion_in_model_cards(emotion)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", report)
    (out / "results.md").write_text(markdown_table(report))
    plot(report, out / "size_quality.png")
    return report


def tables_only(tables: str, out: Path, cache: Path, runs: Path, data_root=None, log=print,
                command: str = "", ablation: Path | None = None) -> dict:
    """`bench quality --tables students|emotion|speaker`: only those rows or tables, written into the existing
    results.json beside the rest (which a run of the same teachers measured), and into the model cards. students:
    every student row of the clean, mask and emotion tables, the teachers' kept; emotion: the emotion tables of
    every system. The student rows include the `ablation` runs, if given (e.g. the student that never heard ASED)."""
    from .emotion_bench import emotion_quality

    path = out / "results.json"
    if not path.exists():
        raise EdgeparaError(f"expected {path} from a full `edgepara bench quality` run to add the {tables} tables "
                            f"to, got none")
    report = _full_run_report(path, tables)
    root = find_data_root(data_root)
    if tables == "students":
        systems = student_systems(runs, ablation)
        report = student_rows(report, systems, cache, root, ablation, log)
        report["students_command"] = command
        record_in_model_cards(report)
        plot(report, out / "size_quality.png")
        report["emotion"] = student_emotion_rows(report, systems, cache, root, log)
        report["emotion"]["command"] = command
        record_emotion_in_model_cards(report["emotion"])
    elif tables == "emotion":
        report["emotion"], _ = emotion_quality(system_embedders(runs, ablation), root, cache, log)
        report["emotion"]["command"] = command
        record_emotion_in_model_cards(report["emotion"])
    else:
        report["speaker_open_set"] = dict(speaker_open_set(cache, root, log), command=command)
    write_json(path, report)
    (out / "results.md").write_text(markdown_table(report))
    return report


REPORT_KEYS = ("results", "sizes_bytes", "teachers_concat", "retention")


def _full_run_report(path: Path, tables: str) -> dict:
    """A full run's results.json, read before any embedding: one line naming it when it is not one (and, for
    --tables students, when it lacks the teachers' rows the students are compared with)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise EdgeparaError(f"expected the JSON report of a full `edgepara bench quality` run at {path}, got "
                            f"{type(err).__name__}: {err}") from None
    missing = [k for k in REPORT_KEYS if not isinstance(report, dict) or k not in report]
    if missing:
        raise EdgeparaError(f"expected the keys {', '.join(REPORT_KEYS)} of a full `edgepara bench quality` run in "
                            f"{path}, got none named {', '.join(missing)}")
    if tables == "students":
        teachers = [*DISTILLATION_TEACHERS, "teachers_concat"]
        missing = [t for t in teachers if t not in report["results"]]
        if missing:
            raise EdgeparaError(f"expected the teachers' rows of a full `edgepara bench quality` run in {path} "
                                f"(--tables students keeps them), got none for {', '.join(missing)}")
    return report


def shipped_cards() -> dict[str, dict]:
    """Each shipped model's card (resolve_model checks its sha256 against the file)."""
    return {model: resolve_model(model)[1] for model in available_models()}


def model_digests(cards: dict[str, dict]) -> dict[str, str]:
    """The sha256 of each model the student rows measured, for a later `--tables students` run (`unchanged_models`)."""
    return {model: card["sha256"] for model, card in cards.items()}


def student_rows(report: dict, systems: dict, cache: Path, root: Path, ablation: Path | None, log=print) -> dict:
    """`--tables students`: the students' rows (int8, float, ablations) recomputed on every set of the full run,
    the teachers' rows (unchanged teachers, same code) kept from it; retention and seeds follow."""
    ev = evaluation_sets(root)
    design = mask_design(ev.masked)
    results = {name: r for name, r in report["results"].items() if row_model(name) is None}
    dims = system_speaker_dims(ablation)
    for name, sys_ in systems.items():
        results[name] = clean_row(name, {ds: features(sys_, items, cache, ds, log=log) for ds, items in ev.sets.items()},
                                  ev, log, dims.get(name))
        if not name.startswith("ablation"):
            results[name]["mask_simulated_uar"] = evaluate_mask(features(sys_, ev.masked, cache, "ravdess_masked",
                                                                          ev.curves, log), design)
        if sys_[2] is not None:
            report["sizes_bytes"][name] = sys_[2]
    cards = shipped_cards()
    kept = carried_rows(report["results"], results, unchanged_models(report, results, cards))
    report["model_sha256"] = model_digests(cards)
    results.update(kept)
    report.pop("rows_kept", None)
    if kept:
        report["rows_kept"] = sorted(kept)  # measured by an earlier run, whose distill runs are not here
        log(f"  kept from the earlier run (model unchanged, run not on this machine): {', '.join(sorted(kept))}")
    report["results"] = results
    report["retention"], report["seeds"] = retention(results), seed_summary(results)
    return report


def student_systems(runs: Path, ablation: Path | None) -> dict:
    return {name: sys_ for name, sys_ in system_embedders(runs, ablation).items() if row_model(name) is not None}


def student_emotion_rows(report: dict, systems: dict, cache: Path, root: Path, log=print) -> dict:
    """`--tables students`' part of the emotion tables: each student's probes and each shipped model's live tables
    measured again; the teachers' probes, and the kept rows' (`report["rows_kept"]`), from the earlier run."""
    from .emotion_bench import emotion_quality

    emotion, _ = emotion_quality(systems, root, cache, log)
    earlier = report.get("emotion", {}).get("probes", {})
    keep = set(report.get("rows_kept", ()))
    probes = {name: p for name, p in earlier.items() if row_model(name) is None}
    probes.update(emotion["probes"])
    probes.update({name: p for name, p in earlier.items() if name in keep})
    return {**report.get("emotion", {}), **emotion, "probes": probes}


def speaker_open_set(cache: Path, root: Path, log=print) -> dict:
    """Each shipped model's open-set identification at its shipped calibration, as the live head decides
    (train/open_set.py: the same sets and draws as the speaker card): the default false-accept rate, turned
    into the cosine bar for each number of people enrolled."""
    from ..speaker import decision_bars, shipped_calibration
    from .open_set import N_ENROLLED, enrollment_table, open_set_table, session_table, speaker_sets
    from .turns import turn_taking

    out = {}
    for model in available_models():
        _, card = resolve_model(model)
        calibration = shipped_calibration(card)
        rate = None if isinstance(calibration, float) else calibration[0]

        def bar(n: int, calibration=calibration) -> float:
            return decision_bars(calibration, n)[0]

        def confident(n: int, calibration=calibration) -> float:
            return decision_bars(calibration, n)[1]

        windows, speakers, sets = speaker_sets(model, cache, root, log)
        out[model] = {"false_accept": rate, "thresholds": {f"N={n}": round(bar(n), 4) for n in N_ENROLLED},
                      "open_set": open_set_table(card, windows, speakers, sets, root, bar),
                      "by_enrollment_speech": enrollment_table(card, windows, speakers, sets, root, bar),
                      "session": session_table(card, windows, speakers, sets, root, bar, confident),
                      "turn_taking": turn_taking(model, root, log=log)}
    return out
