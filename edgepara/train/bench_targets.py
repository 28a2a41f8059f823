"""The issue targets the students are held to, and what `bench quality` writes into each model card: its rows,
retention, seeds, ablations and the targets met or missed."""
from __future__ import annotations

from ..assets import available_models, resolve_model
from .bench_report import _value, ablation_summary
from .bench_systems import ablation_name
from .export import write_json


def record_emotion_in_model_cards(emotion: dict) -> None:
    for model in available_models():
        path, card = resolve_model(model)
        probes, live = emotion["probes"].get(f"{model} int8"), emotion["live"].get(model)
        if probes is None or live is None:
            continue
        card["metrics"]["emotion_int8"] = {"probe": probes, "live": live, "command": emotion.get("command")}
        card["metrics"]["targets_emotion"] = against_emotion_targets(model, emotion)
        write_json(path.with_suffix(".json"), card)


# Issue targets for the shipped heads through the live pipeline: (small, tiny)
EMOTION_TARGETS = {
    "loco_live_uar_adaptation_speaker.mean": (0.60, 0.55),
    "shipped_arousal_test_speakers.baved_arabic.uar": (0.65, 0.60),
}


# Issue "Students 0.4.0": the students' own emotion probes (int8; small, tiny). ASED held out of everything is
# the probe on a student distilled without ASED audio (`scripts/ablation.sh without-ased_amharic`, float).
STUDENT_EMOTION_TARGETS = {
    "loco_uar_raw.mean": (0.55, 0.50),
    "loco_uar_speaker_normalised.mean": (0.68, 0.62),
    "ased_4class_uar.raw": (0.94, 0.90),
    "baved_arousal_uar.raw": (0.70, 0.65),
}
ASED_HELD_OUT_TARGET = (0.53, 0.50)


def _target_row(value: float, target: float) -> dict:
    return {"value": value, "target": target, "met": value >= target,
            "missed_by": None if value >= target else round(target - value, 4)}


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def against_emotion_targets(model: str, emotion: dict) -> dict:
    live, pick = emotion["live"][model], (0 if model == "edgepara-small" else 1)
    out = {key: _target_row(_dotted(live, key), targets[pick]) for key, targets in EMOTION_TARGETS.items()}
    probes = emotion["probes"].get(f"{model} int8", {})
    for key, targets in STUDENT_EMOTION_TARGETS.items():
        if key.split(".")[0] in probes:
            out[f"probe.{key}"] = _target_row(_dotted(probes, key), targets[pick])
    held_out = emotion["probes"].get(ablation_name("without-ased_amharic", model))
    if held_out:
        out["probe.ased_held_out_of_everything"] = _target_row(held_out["loco_uar_raw"]["ased_amharic"],
                                                               ASED_HELD_OUT_TARGET[pick])
    # a corpus on which no label reached the threshold has no accuracy (None, its coverage 0): the minimum is over
    # the corpora that showed some, and a target no corpus showed a certain label for is not met
    certain = [v["certain_accuracy"] for v in live["certain_loco_test_speakers"].values()
               if v["certain_accuracy"] is not None]
    lowest = min(certain) if certain else None
    out["certain_loco_accuracy_min"] = {"value": lowest, "target": 0.70, "met": lowest is not None and lowest >= 0.70,
                                        "coverage": {k: v["certain_coverage"]
                                                     for k, v in live["certain_loco_test_speakers"].items()}}
    return out


# The student targets: result key -> (higher is better, edgepara-small, edgepara-tiny). EER targets are points
# above resemblyzer's EER on the same trials.
TARGETS = {
    "ravdess_emotion.accuracy": (True, 0.70, 0.65),
    "emodb_emotion.accuracy": (True, 0.77, 0.72),
    "zero_shot_ravdess_to_emodb_uar": (True, 0.60, 0.55),
    "ravdess_speaker_id_across_emotions": (True, 0.85, 0.80),
    "ravdess_verification_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "speechocean762_children_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "speechocean762_adults_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "robustness_rooms_noise_10db.ratio_to_clean": (True, 0.90, 0.90),
    "mask_simulated_uar.test_held_out": (True, 0.85, 0.85),
}


def against_targets(model: str, results: dict) -> dict:
    """Each target with the measured int8 value and whether it is met (or by how much it is missed)."""
    r, rz = results[f"{model} int8"], results["resemblyzer"]
    out = {}
    for key, (higher, small, tiny) in TARGETS.items():
        target = small if model == "edgepara-small" else tiny
        if key.endswith("_minus_resemblyzer_points"):
            eer = key.removesuffix("_minus_resemblyzer_points")
            value = round(100 * (r[eer] - rz[eer]), 1)
        else:
            value = _value(r, key)
            if value is None:  # not measurable (a ratio to a clean accuracy of 0): not met, by no known margin
                out[key] = {"value": None, "target": target, "met": False, "missed_by": None}
                continue
            value = round(value, 3)
        gap = round(value - target if higher else target - value, 3)
        out[key] = {"value": value, "target": target, "met": gap >= 0, "missed_by": None if gap >= 0 else -gap}
    return out


def record_in_model_cards(report: dict) -> None:
    """Each shipped model's card carries its own benchmark rows and the command that measured them."""
    for model in available_models():
        path, card = resolve_model(model)
        int8, flt = report["results"].get(f"{model} int8"), report["results"].get(f"{model} float")
        if int8 is None:
            continue
        card["metrics"]["quality_int8"] = int8
        if flt is not None:
            card["metrics"]["quality_float"] = flt
        else:  # no float run measured (no --runs of it): not an earlier run's row beside this one's
            card["metrics"].pop("quality_float", None)
        card["metrics"]["retention_vs_teachers_concat"] = report["retention"].get(f"{model} int8")
        # the shipped configuration over seeds (float), mean and sd, and the other ablation runs: this report's,
        # or none (a summary an earlier run wrote would otherwise stay beside rows another command measured)
        for key, summary in (("seeds_float", report.get("seeds", {}).get(model)),
                             ("ablation_float", ablation_summary(report["results"], model))):
            if summary:
                card["metrics"][key] = summary
            else:
                card["metrics"].pop(key, None)
        if model in ("edgepara-small", "edgepara-tiny"):
            card["metrics"]["targets"] = against_targets(model, report["results"])
        card["metrics"]["quality_command"] = report.get("students_command") or report["command"]
        card["metrics"]["protocol"] = (
            "utterance embedding = mean of the VAD speech windows; standardise + logistic regression, C on "
            "validation speakers; RAVDESS test actors 19-24, EmoDB leave-one-speaker-out, FSDD by take; speaker "
            "tasks on the card's speaker_dims with 3 enrollment utterances (RAVDESS: neutral/calm, identify the "
            "other emotions); speechocean762 test and emospeech_in val speakers; zero-shot = RAVDESS-trained "
            "probe on EmoDB's 4 shared classes; robustness = held-out rooms + noise at 10 dB; mask task simulated")
        write_json(path.with_suffix(".json"), card)
