"""Open-set identification as the live speaker head decides it (edgepara/train/open_set.py), on generated
speakers: strangers come out "unknown" above the bar, the rates add up, and the impostor curve calibrates a
false-accept rate that holds for 1, 4 and 10 enrolled people."""
import numpy as np
import pytest

from edgepara.speaker import ImpostorCurve
from edgepara.train.open_set import draw_decisions, impostor_curve, rates


def _speakers(rng, n_speakers=12, utterances=8, windows=3, dim=8, spread=0.35):
    """Each speaker a direction; their windows scattered around it."""
    W, spk = [], []
    for s in range(n_speakers):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        for _ in range(utterances):
            W.append(centre + rng.normal(0, spread, (windows, dim)))
            spk.append(f"s{s}")
    return W, np.array(spk)


def test_rates_add_up_and_strangers_need_a_high_enough_bar(rng):
    W, spk = _speakers(rng)
    decisions = draw_decisions(W, spk, None, 4, draws=30)
    low, high = rates(decisions, -1.0), rates(decisions, 0.99)
    assert low["strangers_unknown"]["mean"] == 0.0 and low["enrolled_unknown"]["mean"] == 0.0  # everyone named
    assert high["strangers_unknown"]["mean"] == 1.0 and high["named_right"]["mean"] == 0.0  # nobody named
    middle = rates(decisions, 0.6)
    total = sum(middle[k]["mean"] for k in ("named_right", "named_wrong", "enrolled_unknown"))
    assert total == pytest.approx(1.0, abs=1e-3)  # each rounded to 4 places
    assert middle["named_right"]["mean"] > 0.8 and middle["strangers_unknown"]["mean"] > 0.8


def test_the_impostor_curve_keeps_the_asked_share_of_strangers_out_for_any_number_enrolled(rng):
    """Calibrated on one set of generated speakers, applied to another: with the bar the head derives for N
    profiles, strangers are named about as often as asked whether 1, 4 or 10 people are enrolled; a fixed
    bar (the one-profile value) names more strangers as N grows."""
    calibration_w, calibration_spk = _speakers(rng, n_speakers=40, spread=0.5)
    curve = ImpostorCurve.from_card(impostor_curve(calibration_w, calibration_spk, None, draws=200), "test")
    test_w, test_spk = _speakers(rng, n_speakers=40, spread=0.5)
    rate = 0.05
    named, named_at_fixed_bar = {}, {}
    for n in (1, 4, 10):
        decisions = draw_decisions(test_w, test_spk, None, n, draws=60)
        named[n] = 1 - rates(decisions, curve.cosine_for(rate, n))["strangers_unknown"]["mean"]
        named_at_fixed_bar[n] = 1 - rates(decisions, curve.cosine_for(rate, 1))["strangers_unknown"]["mean"]
    assert all(abs(v - rate) < 0.03 for v in named.values()), named
    assert named_at_fixed_bar[10] > 2 * rate, named_at_fixed_bar
    assert curve.cosine_for(rate, 1) < curve.cosine_for(rate, 4) < curve.cosine_for(rate, 10)


def test_enrollment_draws_only_from_the_candidates_and_the_allowed_utterances(rng):
    W, spk = _speakers(rng, n_speakers=6)
    allowed = np.arange(len(spk)) % 8 < 3  # the first three utterances of each speaker
    candidates = np.array(["s0", "s1", "s2"])
    for d in draw_decisions(W, spk, None, 2, draws=20, enroll_from=allowed, candidates=candidates):
        enrolled = set(d["truth"][d["enrolled"]])
        assert enrolled <= set(candidates)
        assert len(d["truth"]) == len(spk) - 3 * len(enrolled)  # exactly the enrollment utterances left out


def test_bigger_profiles_mean_more_enrollment_speech_and_fewer_misses(rng):
    """The accuracy-against-enrollment-speech rows: a profile of k utterances leaves k of each enrolled speaker
    out of the queries, records its seconds of speech (3 windows = 2.0 s each here), and names people more
    reliably as k grows (noisy windows average out)."""
    W, spk = _speakers(rng, spread=0.9)
    by_k = {}
    for k in (1, 5):
        decisions = draw_decisions(W, spk, None, 4, draws=40, enroll_utterances=k)
        assert all(len(d["truth"]) == len(spk) - 4 * k for d in decisions)
        by_k[k] = rates(decisions, 0.3)
        assert by_k[k]["enroll_seconds"]["mean"] == pytest.approx(2.0 * k)
    assert by_k[5]["named_right"]["mean"] > by_k[1]["named_right"]["mean"] + 0.05
