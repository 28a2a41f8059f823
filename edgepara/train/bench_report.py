"""What `bench quality` reports: retention against the teachers, the seed and ablation summaries, the tables of
results.md and the size/quality plot."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..assets import available_models
from .bench_systems import ablation_name
from .turns import PAUSE_S


def speaker_markdown(report: dict) -> str:
    lines = ["", "Open-set speaker identification at the shipped false-accept rate (live decision: the cosine bar "
                 "for N people enrolled from the model's impostor curve; mean over random draws of who is enrolled): "
                 "enrolled named right / named wrong / strangers called unknown:", "",
             "| model (false-accept rate) | set | N (cosine bar) | named right | named wrong | strangers unknown |",
             "|---|---|---:|---:|---:|---:|"]
    for model, r in report.items():
        if not isinstance(r, dict):
            continue
        for name, by_n in r["open_set"].items():
            for n, v in by_n.items():
                lines.append(f"| {model} ({r['false_accept']}) | {name} | {n[2:]} ({r['thresholds'][n]:.3f}) | "
                             f"{v['named_right']['mean']:.3f} | {v['named_wrong']['mean']:.3f} | "
                             f"{v['strangers_unknown']['mean']:.3f} |")
    lines += ["", "Against seconds of enrollment speech (N = 4; a profile of 1, 2, 3 or 5 utterances; mean seconds of "
                  "speech per profile): enrolled named right / strangers called unknown:", "",
              "| model | set | utterances | seconds | named right | strangers unknown |", "|---|---|---:|---:|---:|---:|"]
    for model, name, by_k in _per_model(report, "by_enrollment_speech"):
        for k, v in by_k.items():
            lines.append(f"| {model} | {name} | {k.split('=')[1]} | {v['enroll_seconds']['mean']:.1f} | "
                         f"{v['named_right']['mean']:.3f} | {v['strangers_unknown']['mean']:.3f} |")
    lines += ["", "A long session with and without `--adapt-profiles` (N = 4 enrolled from 3 utterances, then every other "
                  "utterance of the set in random order, decided one after another; second half of the session; mean "
                  "over draws): enrolled named right / strangers called unknown, and utterances that moved a profile:", "",
              "| model | set | fixed profiles | adapted profiles | utterances adapted |", "|---|---|---:|---:|---:|"]
    for model, name, modes in _per_model(report, "session"):
        fixed, adapted = modes["fixed"], modes["adapted"]
        lines.append(f"| {model} | {name} | {fixed['named_right_second_half']['mean']:.3f} / "
                     f"{fixed['strangers_unknown_second_half']['mean']:.3f} | "
                     f"{adapted['named_right_second_half']['mean']:.3f} / "
                     f"{adapted['strangers_unknown_second_half']['mean']:.3f} | "
                     f"{adapted['adapted_utterances']['mean']:.0f} |")
    lines += ["", "Three enrolled speakers taking turns in one recording (speechocean762 test adults, 4 turns each, the "
                  "speaker always changing; live pipeline; mean over scripts): turns that got an utterance of their "
                  "own, utterances naming the right speaker, speaker_change events per true change:", "",
              "| model | turns | own utterance | named right | changes reported / true |", "|---|---|---:|---:|---:|"]
    for model, overlap, v in _per_model(report, "turn_taking"):
        seconds = float(overlap.removeprefix("overlap_").removesuffix("s"))
        turns = f"overlapping {seconds:g} s" if seconds else f"{PAUSE_S:g} s pauses"
        lines.append(f"| {model} | {turns} | {v['turns_with_own_utterance']['mean']:.3f} | "
                     f"{v['named_right']['mean']:.3f} | {v['changes_reported_per_true_change']['mean']:.3f} |")
    return "\n".join(lines) + "\n"


def _per_model(report: dict, key: str):
    """(model, name, value) for each entry of each model's `key` table (other entries, e.g. the command, skipped)."""
    for model, r in report.items():
        if isinstance(r, dict):
            for name, value in r.get(key, {}).items():
                yield model, name, value


# (column title, result key, metric or None) of the main table
COLUMNS = (
    ("RAVDESS acc", "ravdess_emotion", "accuracy"),
    ("EmoDB LOSO acc", "emodb_emotion", "accuracy"),
    ("zero-shot RAVDESS→EmoDB UAR", "zero_shot_ravdess_to_emodb_uar", None),
    ("rooms+noise acc", "robustness_rooms_noise_10db", "accuracy"),
    ("rooms+noise / clean", "robustness_rooms_noise_10db", "ratio_to_clean"),
    ("mask UAR held-out (sim.)", "mask_simulated_uar", "test_held_out"),
    ("RAVDESS spk-ID across emotions", "ravdess_speaker_id_across_emotions", None),
    ("RAVDESS EER", "ravdess_verification_eer", None),
    ("speechocean762 EER children / adults", ("speechocean762_children_eer", "speechocean762_adults_eer"), None),
    ("speechocean762 spk-ID children / adults", ("speechocean762_children_speaker_id", "speechocean762_adults_speaker_id"), None),
    ("emospeech_in EER / spk-ID", ("emospeech_in_eer", "emospeech_in_speaker_id"), None),
    ("FSDD spk acc", "fsdd_speaker", "accuracy"),
)
HIGHER_IS_BETTER = ("ravdess_emotion.accuracy", "ravdess_emotion.uar", "emodb_emotion.accuracy",
                    "zero_shot_ravdess_to_emodb_uar", "robustness_rooms_noise_10db.accuracy",
                    "mask_simulated_uar.test_held_out", "ravdess_speaker_id_across_emotions",
                    "speechocean762_adults_speaker_id", "speechocean762_children_speaker_id",
                    "emospeech_in_speaker_id", "fsdd_speaker.accuracy")
EER_KEYS = ("ravdess_verification_eer", "speechocean762_children_eer", "speechocean762_adults_eer", "emospeech_in_eer")


def _value(r: dict, dotted: str):
    key, _, metric = dotted.partition(".")
    value = r.get(key)
    return value.get(metric) if isinstance(value, dict) and metric else (None if isinstance(value, dict) else value)


def retention(results: dict) -> dict:
    """Student score / concatenated-teacher score for each higher-is-better task; for each EER, points above
    resemblyzer (the speaker teacher; lower EER is better)."""
    ref, rz = results["teachers_concat"], results["resemblyzer"]
    out = {}
    for system, r in results.items():
        if "edgepara" not in system:
            continue
        row = {k: round(_value(r, k) / _value(ref, k), 3) for k in HIGHER_IS_BETTER
               if _value(r, k) is not None and _value(ref, k)}
        row.update({f"{k}_minus_resemblyzer_points": round(100 * (r[k] - rz[k]), 1) for k in EER_KEYS})
        out[system] = row
    return out


def _cell(r: dict, key, metric) -> str:
    keys = key if isinstance(key, tuple) else (key,)
    values = [_value(r, f"{k}.{metric}" if metric else k) for k in keys]
    return " / ".join("-" if v is None else f"{v:.3f}" for v in values)


SEED_VARIANT = re.compile(r"seed-(\d+)")  # `scripts/ablation.sh seed-N`: the shipped configuration, seed N
SEED_METRICS = HIGHER_IS_BETTER + ("robustness_rooms_noise_10db.ratio_to_clean",) + EER_KEYS


STUDENT = r"edgepara-[\w.-]+"


def _ablation_row(model: str) -> re.Pattern:
    """`ablation_name`'s row, its variant as group 1 and MODEL (a regex) as group 2."""
    return re.compile(re.escape(ablation_name("VARIANT", "MODEL")).replace("VARIANT", "(.+)").replace("MODEL", f"({model})"))


def ablation_runs(results: dict, model: str) -> dict[str, dict]:
    """variant -> results, for the ablation rows of one model (named by `ablation_name`)."""
    row = _ablation_row(re.escape(model))
    return {match.group(1): r for name, r in results.items() if (match := row.fullmatch(name))}


def row_model(system: str) -> str | None:
    """The student a bench row measures (`MODEL int8|float` or an ablation run of MODEL), None for a teacher."""
    match = re.fullmatch(f"({STUDENT}) (?:int8|float)", system) or _ablation_row(STUDENT).fullmatch(system)
    return match.groups()[-1] if match else None


def unchanged_models(earlier: dict, results: dict, cards: dict) -> set[str]:
    """The shipped models (name -> card) that an earlier report measured and that did not change since: it
    recorded the same sha256; a report that recorded none, when its int8 row equals the one measured again or the
    one the model's card carries (which that report's run wrote). Not the rows alone: the same model measured on
    another machine's fresh embedding cache can differ in the last digit."""
    recorded = earlier.get("model_sha256")
    same = set()
    for model, card in cards.items():
        row = earlier.get("results", {}).get(f"{model} int8")
        if recorded is not None:
            ok = recorded.get(model) == card["sha256"]
        else:
            ok = row is not None and row in (results.get(f"{model} int8"), card["metrics"].get("quality_int8"))
        if ok:
            same.add(model)
    return same


def carried_rows(earlier: dict, results: dict, unchanged: set[str]) -> dict:
    """The student rows of an earlier run that this one could not measure again (their distill runs are not on this
    machine), kept when their model is among the `unchanged`. A changed model's earlier float and ablation rows
    describe another recipe and are dropped."""
    return {name: row for name, row in earlier.items()
            if name not in results and row_model(name) in unchanged}


def seed_summary(results: dict) -> dict:
    """Mean and sd (n - 1) over seeds of each model's shipped configuration, float: seed 0 is the shipped run
    (`MODEL float`), the others are `scripts/ablation.sh seed-N` runs."""
    out = {}
    for model in available_models():
        runs = {0: results.get(f"{model} float")}
        for variant, r in ablation_runs(results, model).items():
            if seed := SEED_VARIANT.fullmatch(variant):
                runs[int(seed.group(1))] = r
        runs = {seed: r for seed, r in sorted(runs.items()) if r is not None}
        if len(runs) < 2:
            continue
        summary = {"seeds": list(runs)}
        for key in SEED_METRICS:
            values = [_value(r, key) for r in runs.values()]
            if all(v is not None for v in values):
                summary[key] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4),
                                "values": [round(float(v), 4) for v in values]}
        out[model] = summary
    return out


def ablation_summary(results: dict, model: str) -> dict:
    """The `scripts/ablation.sh` variants of one model other than its seeds (float, seed 0), on the seed metrics:
    what each loss, teacher or schedule change did, for the card."""
    return {variant: {key: round(float(v), 4) for key in SEED_METRICS if (v := _value(r, key)) is not None}
            for variant, r in ablation_runs(results, model).items() if not SEED_VARIANT.fullmatch(variant)}


ABLATION_COLUMNS = (  # (title, results key or None, emotion-probe key or None): what docs/benchmarks.md reads
    ("RAVDESS 8-class acc", "ravdess_emotion.accuracy", None),
    ("EmoDB 7-class LOSO acc", "emodb_emotion.accuracy", None),
    ("zero-shot RAVDESS→EmoDB UAR", "zero_shot_ravdess_to_emodb_uar", None),
    ("rooms+noise / clean", "robustness_rooms_noise_10db.ratio_to_clean", None),
    ("RAVDESS EER", "ravdess_verification_eer", None),
    ("speechocean762 EER children / adults", ("speechocean762_children_eer", "speechocean762_adults_eer"), None),
    ("LOCO 4-class mean raw / per speaker", None, ("loco_uar_raw.mean", "loco_uar_speaker_normalised.mean")),
    ("ASED LOCO raw", None, ("loco_uar_raw.ased_amharic",)),
    ("BAVED arousal raw", None, ("baved_arousal_uar.raw",)),
)


ABLATION_SEED = re.compile(r"(.+)-seed-(\d+)")  # `scripts/ablation.sh VARIANT-seed-N`: an ablation, seed N


def ablation_markdown(report: dict, model: str = "edgepara-tiny") -> str:
    """One model's shipped configuration (seed 0, float) beside its `scripts/ablation.sh` runs (seeds and
    ablations), on the clean tables and, where `--tables emotion` has run, the emotion probes; then, for the
    shipped configuration and each ablation run with more than one seed, mean ± sd over its seeds."""
    runs = ablation_runs(report["results"], model)
    if not runs:
        return ""
    probes = report.get("emotion", {}).get("probes", {})
    rows = [("shipped configuration, seed 0", f"{model} float")] + [(v, ablation_name(v, model)) for v in sorted(runs)]

    def values(key: str) -> list[list]:
        r, p = report["results"][key], probes.get(key, {})
        return [[_value(r, k) for k in ((result_keys,) if isinstance(result_keys, str) else result_keys)]
                if result_keys else [_value(p, k) for k in probe_keys]
                for _, result_keys, probe_keys in ABLATION_COLUMNS]

    def single(key: str) -> list[str]:
        return [" / ".join("–" if v is None else f"{v:.3f}" for v in column) for column in values(key)]

    def spread(keys: list[str]) -> list[str]:
        columns = zip(*(values(k) for k in keys))  # per column: one value list per seed
        return [" / ".join("–" if any(v is None for v in seeds) else
                           f"{np.mean(seeds):.3f} ± {np.std(seeds, ddof=1):.3f}" for seeds in zip(*column))
                for column in columns]

    groups = {"shipped configuration": {0: f"{model} float"}}
    for variant in runs:
        if seed := SEED_VARIANT.fullmatch(variant):
            groups["shipped configuration"][int(seed.group(1))] = ablation_name(variant, model)
        elif seeded := ABLATION_SEED.fullmatch(variant):
            base = seeded.group(1)
            if base in runs:
                groups.setdefault(base, {0: ablation_name(base, model)})[int(seeded.group(2))] = \
                    ablation_name(variant, model)
    lines = ["", f"Seeds and ablations ({model}, float; `scripts/ablation.sh VARIANT`, emotion columns from "
                 "`--tables emotion --ablation DIR`):", "",
             f"| {model}, float | " + " | ".join(c[0] for c in ABLATION_COLUMNS) + " |",
             "|---|" + "---:|" * len(ABLATION_COLUMNS)]
    lines += [f"| {label} | " + " | ".join(single(key)) + " |" for label, key in rows]
    lines += [f"| {base}, seeds {', '.join(map(str, sorted(seeds)))} (mean ± sd) | "
              + " | ".join(spread([seeds[s] for s in sorted(seeds)])) + " |"
              for base, seeds in groups.items() if len(seeds) > 1]
    return "\n".join(lines)


def markdown_table(report: dict) -> str:
    lines = ["| system | size | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for system, r in report["results"].items():
        size = report["sizes_bytes"].get(system)
        size_s = ("hand-crafted" if system == "egemaps" else "" if size is None
                  else f"{size / 1e6:.1f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB")
        lines.append(f"| {system} | {size_s} | " + " | ".join(_cell(r, k, m) for _, k, m in COLUMNS) + " |")
    if report.get("rows_kept"):
        lines += ["", "Rows kept from an earlier run (the model did not change; its distill runs are not on the machine "
                      "that measured the others): " + ", ".join(report["rows_kept"])]
    names = list(HIGHER_IS_BETTER) + [f"{k}_minus_resemblyzer_points" for k in EER_KEYS]
    lines += ["", f"Retention (student / teachers concatenated = {' + '.join(report['teachers_concat'])}; "
                  "EER: points above resemblyzer):", "",
              "| system | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for system, r in report["retention"].items():
        lines.append(f"| {system} | " + " | ".join(str(r.get(n, "-")) for n in names) + " |")
    if report.get("emotion"):
        from .emotion_bench import markdown as emotion_markdown

        lines.append(emotion_markdown(report["emotion"]))
    if report.get("speaker_open_set"):
        lines.append(speaker_markdown(report["speaker_open_set"]))
    if report.get("seeds"):
        lines += ["", "Seeds (shipped configuration, float; mean ± sd over the seeds listed):", "",
                  "| model | seeds | " + " | ".join(SEED_METRICS) + " |", "|---|---|" + "---:|" * len(SEED_METRICS)]
        for model, summary in report["seeds"].items():
            cells = [f"{summary[k]['mean']:.3f} ± {summary[k]['sd']:.3f}" if k in summary else "-" for k in SEED_METRICS]
            lines.append(f"| {model} | {', '.join(map(str, summary['seeds']))} | " + " | ".join(cells) + " |")
    lines += [table for model in available_models() if (table := ablation_markdown(report, model))]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (task, metric) in zip(axes, (("ravdess_emotion", "accuracy"), ("emodb_emotion", "accuracy"),
                                         ("fsdd_speaker", "accuracy"))):
        for system, r in report["results"].items():
            size = report["sizes_bytes"].get(system)
            if system == "egemaps":
                ax.axhline(r[task][metric], ls="--", color="grey", lw=1)
                ax.text(2e4, r[task][metric], " eGeMAPS", va="bottom", fontsize=8, color="grey")
                continue
            if size is None:
                continue
            ax.scatter(size, r[task][metric], color="tab:red" if "edgepara" in system else "tab:blue")
            ax.annotate(system, (size, r[task][metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("model size (bytes)")
        ax.set_title(f"{task} {metric}")
    axes[0].set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
