"""How `edgepara bench quality` summarises the seed and ablation runs it measured (no training here)."""
import pytest

pytest.importorskip("sklearn")

from edgepara.train.bench_report import (ablation_summary, carried_rows, row_model, seed_summary,  # noqa: E402
                                        unchanged_models)


def _result(ravdess: float, eer: float) -> dict:
    return {"ravdess_emotion": {"accuracy": ravdess, "uar": ravdess}, "ravdess_verification_eer": eer}


RESULTS = {
    "edgepara-tiny float": _result(0.60, 0.14),
    "ablation seed-1 (edgepara-tiny float)": _result(0.58, 0.15),
    "ablation seed-2 (edgepara-tiny float)": _result(0.62, 0.13),
    "ablation no-gram (edgepara-tiny float)": _result(0.61, 0.12),
    "ablation small-epochs-16 (edgepara-small float)": _result(0.66, 0.13),
}


def test_seeds_are_the_shipped_run_and_the_seed_variants_only():
    tiny = seed_summary(RESULTS)["edgepara-tiny"]
    assert tiny["seeds"] == [0, 1, 2]
    assert tiny["ravdess_emotion.accuracy"]["mean"] == pytest.approx(0.60)
    assert tiny["ravdess_emotion.accuracy"]["sd"] == pytest.approx(0.02)
    assert tiny["ravdess_verification_eer"]["values"] == [0.14, 0.15, 0.13]
    assert "edgepara-small" not in seed_summary(RESULTS)  # one run is not a spread


def test_rows_name_their_student():
    assert row_model("edgepara-tiny int8") == row_model("edgepara-tiny float") == "edgepara-tiny"
    assert row_model("ablation tiny-epochs-36-seed-1 (edgepara-tiny float)") == "edgepara-tiny"
    assert row_model("ablation seed-2 (edgepara-small float)") == "edgepara-small"
    assert row_model("whisper base b3") is None and row_model("teachers_concat") is None


def test_rows_name_their_student_as_the_ablation_row_is_spelled():
    from edgepara.train.bench_systems import ablation_name

    assert row_model(ablation_name("without-ased_amharic", "edgepara-small")) == "edgepara-small"
    assert row_model(ablation_name("no-gram-seed-2", "edgepara-tiny")) == "edgepara-tiny"
    assert row_model("ablation no-gram (resemblyzer float)") is None


def _card(sha: str, int8: dict | None = None) -> dict:
    return {"sha256": sha, "metrics": {} if int8 is None else {"quality_int8": int8}}


def test_a_students_run_keeps_the_rows_it_cannot_measure_only_of_models_that_did_not_change():
    """`bench quality --tables students` on a machine without some distill runs: an unchanged model keeps its
    earlier float and ablation rows; a changed model's earlier rows are another recipe's and go."""
    earlier = {**RESULTS, "edgepara-tiny int8": _result(0.59, 0.15), "edgepara-small int8": _result(0.64, 0.13),
               "edgepara-small float": _result(0.65, 0.13), "resemblyzer": _result(0.3, 0.1)}
    now = {"resemblyzer": _result(0.3, 0.1), "edgepara-small int8": _result(0.64, 0.13),
           "edgepara-tiny int8": _result(0.66, 0.14), "edgepara-tiny float": _result(0.67, 0.14)}
    kept = carried_rows(earlier, now, {"edgepara-small"})
    assert set(kept) == {"edgepara-small float", "ablation small-epochs-16 (edgepara-small float)"}
    assert carried_rows(earlier, now, set()) == {}
    # a row measured again is never replaced by the earlier one
    assert "edgepara-small float" not in carried_rows(earlier, {**now, "edgepara-small float": _result(0.1, 0.5)},
                                                      {"edgepara-small"})


def test_a_model_is_unchanged_when_the_earlier_run_recorded_its_digest():
    """Digest recorded: that decides, whatever the rows (a fresh embedding cache can move the last digit). None
    recorded (older reports): the earlier int8 row must equal the one measured now or the one the card carries."""
    earlier = {"results": {"edgepara-small int8": _result(0.64, 0.13), "edgepara-tiny int8": _result(0.59, 0.15)}}
    now = {"edgepara-small int8": _result(0.641, 0.13), "edgepara-tiny int8": _result(0.59, 0.15)}
    cards = {"edgepara-small": _card("aa"), "edgepara-tiny": _card("bb")}
    assert unchanged_models({**earlier, "model_sha256": {"edgepara-small": "aa", "edgepara-tiny": "old"}}, now,
                            cards) == {"edgepara-small"}
    assert unchanged_models(earlier, now, cards) == {"edgepara-tiny"}
    cards["edgepara-small"] = _card("aa", _result(0.64, 0.13))  # the card that the earlier run wrote
    assert unchanged_models(earlier, now, cards) == {"edgepara-small", "edgepara-tiny"}
    assert unchanged_models(earlier, now, {"edgepara-small": _card("cc", _result(0.6, 0.2))}) == set()


def test_the_report_names_the_rows_it_kept():
    from edgepara.train.bench_report import markdown_table

    results = {"edgepara-small float": _result(0.65, 0.13), "resemblyzer": _result(0.3, 0.1)}
    report = {"results": results, "sizes_bytes": {}, "teachers_concat": ["resemblyzer"], "retention": {}}
    assert "Rows kept" not in markdown_table(report)
    assert "earlier run (the model did not change; its distill runs are not on the machine that measured the " \
           "others): edgepara-small float" in markdown_table({**report, "rows_kept": ["edgepara-small float"]})


def test_ablations_are_every_other_variant_of_that_model():
    tiny = ablation_summary(RESULTS, "edgepara-tiny")
    assert list(tiny) == ["no-gram"]
    assert tiny["no-gram"] == {"ravdess_emotion.accuracy": 0.61, "ravdess_emotion.uar": 0.61,
                               "ravdess_verification_eer": 0.12}
    assert list(ablation_summary(RESULTS, "edgepara-small")) == ["small-epochs-16"]


def test_the_emotion_tables_and_targets_come_from_the_committed_run():
    """bench/results.json's emotion report (written by `bench quality --tables emotion`) renders, and the
    targets on the cards are computed from it."""
    import json
    from pathlib import Path

    from edgepara.train.bench_targets import against_emotion_targets
    from edgepara.train.emotion_bench import markdown

    report = json.loads((Path(__file__).resolve().parents[1] / "bench" / "results.json").read_text())["emotion"]
    text = markdown(report)
    for system in report["probes"]:
        assert f"| {system} |" in text
    small = against_emotion_targets("edgepara-small", report)
    live = report["live"]["edgepara-small"]["loco_live_uar_adaptation_speaker"]["mean"]
    assert small["loco_live_uar_adaptation_speaker.mean"]["value"] == live
    assert small["loco_live_uar_adaptation_speaker.mean"]["met"] == (live >= 0.60)


def test_the_open_set_table_renders_from_the_committed_run():
    import json
    from pathlib import Path

    from edgepara.train.bench_report import speaker_markdown

    report = json.loads((Path(__file__).resolve().parents[1] / "bench" / "results.json").read_text())
    text = speaker_markdown(report["speaker_open_set"])
    card = json.loads((Path(__file__).resolve().parents[1] / "heads" / "edgepara-small" / "speaker.json").read_text())
    adults = card["metrics"]["open_set_identification"]["speechocean762_test_adults"]["N=4"]
    bar = card["metrics"]["cosine_bar"]["N=4"]
    assert f"| edgepara-small ({card['false_accept']}) | speechocean762_test_adults | 4 ({bar:.3f}) | " \
           f"{adults['named_right']['mean']:.3f} |" in text  # the bench and the card agree


def test_the_ablation_table_puts_each_variant_beside_the_shipped_run():
    """results.md's seeds-and-ablations table: the shipped run first, then every variant of that model, the emotion
    probes' columns where `--tables emotion` measured them and a dash where not."""
    from edgepara.train.bench_report import ablation_markdown

    probes = {"ablation no-gram (edgepara-tiny float)": {"loco_uar_raw": {"mean": 0.5, "ased_amharic": 0.7},
                                                        "loco_uar_speaker_normalised": {"mean": 0.6},
                                                        "baved_arousal_uar": {"raw": 0.65}}}
    lines = ablation_markdown({"results": RESULTS, "emotion": {"probes": probes}}).splitlines()
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| shipped configuration, seed 0", "| no-gram", "| seed-1", "| seed-2",
                                                 "| shipped configuration, seeds 0, 1, 2 (mean ± sd)"]
    assert rows[1] == "| no-gram | 0.610 | – | – | – | 0.120 | – / – | 0.500 / 0.600 | 0.700 | 0.650 |"
    assert rows[0].endswith("| 0.140 | – / – | – / – | – | – |")
    assert ablation_markdown({"results": {"edgepara-tiny float": _result(0.6, 0.1)}}) == ""  # no variants, no table
    spreads = [r for r in rows if "mean ± sd" in r]
    assert spreads == ["| shipped configuration, seeds 0, 1, 2 (mean ± sd) | 0.600 ± 0.020 | – | – | – | 0.140 ± 0.010 "
                       "| – / – | – / – | – | – |"]  # no-gram has one seed: no spread row


def test_an_ablation_run_over_seeds_gets_its_own_spread():
    """`scripts/ablation.sh no-gram-seed-1 no-gram-seed-2`: no-gram's seeds 0, 1, 2 summarised like the shipped
    configuration's; a seed run whose seed-0 ablation is missing gets no spread row (it would not be over seeds)."""
    from edgepara.train.bench_report import ablation_markdown

    results = dict(RESULTS, **{"ablation no-gram-seed-1 (edgepara-tiny float)": _result(0.65, 0.13),
                               "ablation no-gram-seed-2 (edgepara-tiny float)": _result(0.63, 0.11),
                               "ablation no-babble-seed-1 (edgepara-tiny float)": _result(0.5, 0.2)})
    rows = [line for line in ablation_markdown({"results": results}).splitlines() if "mean ± sd" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| shipped configuration, seeds 0, 1, 2 (mean ± sd)",
                                                 "| no-gram, seeds 0, 1, 2 (mean ± sd)"]
    assert rows[1].split(" | ")[1:2] == ["0.630 ± 0.020"] and "0.120 ± 0.010" in rows[1]
