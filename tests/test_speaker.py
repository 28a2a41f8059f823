"""Speaker head and equal error rate on synthetic embeddings and constructed score sets."""
import json

import numpy as np
import pytest

from edgepara import speaker
from edgepara.errors import HeadError, ProfileError
from edgepara.profiles import ProfileStore
from edgepara.speaker import DEFAULT_THRESHOLD, SpeakerHead, equal_error_rate

DIM = 32
CARD = {"name": "edgepara-small", "sha256": "a" * 64, "embedding_dim": DIM}
NAMES = ["alice", "bob", "carol"]


@pytest.fixture
def directions():
    """One random unit direction per speaker; in 32-d they are nearly orthogonal."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(len(NAMES), DIM))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.fixture
def profile_dir(tmp_path, directions):
    rng = np.random.default_rng(1)
    store = ProfileStore(tmp_path)
    for name, direction in zip(NAMES, directions):
        store.add(name, direction + 0.1 * rng.normal(size=(3, DIM)), 4.5, CARD)
    return tmp_path


@pytest.fixture
def no_shipped_card(monkeypatch, tmp_path_factory):
    empty = tmp_path_factory.mktemp("heads")
    monkeypatch.setattr(speaker, "heads_dir", lambda: empty)
    return empty


def test_head_looks_like_a_probe_head(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    assert head.name == "speaker"
    assert head.classes == NAMES + ["unknown"]


def test_nearest_centroid_is_identified(profile_dir, directions):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    rng = np.random.default_rng(2)
    for name, direction in zip(NAMES, directions):
        probe = 3.0 * (direction + 0.1 * rng.normal(size=DIM))  # scale must not matter to cosine
        label, confidence = head.label_for(head.probabilities(probe))
        assert label == name
        assert 0.9 < confidence <= 1.0


def test_scores_are_cosines_mapped_to_zero_one(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    probe = np.random.default_rng(3).normal(size=DIM)
    probs = head.probabilities(probe)
    assert list(probs) == head.classes
    for p in head.profiles:
        c = np.asarray(p.centroid)
        cos = probe @ c / (np.linalg.norm(probe) * np.linalg.norm(c))
        assert probs[p.name] == pytest.approx((cos + 1) / 2)
    assert probs["unknown"] == pytest.approx((0.5 + 1) / 2)  # the bar a speaker must reach
    assert all(0.0 <= v <= 1.0 for v in probs.values())


def test_opposite_and_identical_directions_hit_the_ends_of_the_scale(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    centroid = head.profiles[0].centroid_array()
    assert head.probabilities(centroid)["alice"] == pytest.approx(1.0)
    assert head.probabilities(-centroid)["alice"] == pytest.approx(0.0)


def test_a_voice_like_nobody_enrolled_is_unknown(profile_dir, directions):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    stranger = np.random.default_rng(4).normal(size=DIM)
    centroids = np.stack([p.centroid_array() for p in head.profiles])
    # Remove every enrolled direction, leaving a voice orthogonal to all of them (cosine 0 < 0.5).
    q, _ = np.linalg.qr(centroids.T)
    stranger -= q @ (q.T @ stranger)
    probs = head.probabilities(stranger)
    label, confidence = head.label_for(probs)
    assert label == "unknown"
    assert confidence == pytest.approx(1.0 - max(probs[n] for n in NAMES))
    assert confidence == pytest.approx(0.5)


def test_threshold_is_in_cosine_units_and_inclusive(profile_dir, directions):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    just_at = {"alice": (0.5 + 1) / 2, "bob": 0.1, "carol": 0.1}
    just_below = dict(just_at, alice=(0.4999 + 1) / 2)
    assert head.label_for(just_at)[0] == "alice"
    assert head.label_for(just_below)[0] == "unknown"


def test_label_for_needs_every_speaker_score(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    with pytest.raises(HeadError, match="got none for carol"):
        head.label_for({"alice": 0.9, "bob": 0.1})


def test_an_embedding_of_the_wrong_size_is_refused(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    with pytest.raises(HeadError, match=r"expected a 32-d embedding, got shape \(16,\)"):
        head.probabilities(np.ones(16))
    with pytest.raises(HeadError, match="expected a finite embedding"):
        head.probabilities(np.full(DIM, np.nan))


def test_a_silent_all_zero_embedding_is_unknown(profile_dir):
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.5)
    assert head.label_for(head.probabilities(np.zeros(DIM)))[0] == "unknown"


def test_loading_with_no_profiles_says_how_to_enroll(tmp_path):
    with pytest.raises(ProfileError, match=r"got none: run `edgepara enroll NAME FILE…` first"):
        SpeakerHead.load(tmp_path / "empty", CARD)


def test_loading_profiles_of_another_model_is_refused(profile_dir):
    other = dict(CARD, name="edgepara-tiny", sha256="b" * 64)
    with pytest.raises(ProfileError, match="edgepara-small.*edgepara-tiny"):
        SpeakerHead.load(profile_dir, other)


def test_threshold_defaults_to_0_7_without_a_shipped_card(profile_dir, no_shipped_card):
    assert DEFAULT_THRESHOLD == 0.7
    assert SpeakerHead.load(profile_dir, CARD).threshold == 0.7


def shipped_card_path(heads_root):
    """Shipped heads live per model: heads/<model>/speaker.json."""
    folder = heads_root / CARD["name"]
    folder.mkdir(exist_ok=True)
    return folder / "speaker.json"


def test_threshold_default_comes_from_the_shipped_card(profile_dir, no_shipped_card):
    shipped_card_path(no_shipped_card).write_text(json.dumps(
        {"task": "speaker", "threshold": 0.55, "model": "edgepara-small", "model_sha256": "a" * 64, "dim": DIM}))
    assert SpeakerHead.load(profile_dir, CARD).threshold == 0.55
    assert SpeakerHead.load(profile_dir, CARD, threshold=0.3).threshold == 0.3  # an explicit value wins


def test_a_threshold_calibrated_on_another_model_is_refused(profile_dir, no_shipped_card):
    shipped_card_path(no_shipped_card).write_text(json.dumps(
        {"threshold": 0.55, "model": "edgepara-small", "model_sha256": "c" * 64, "dim": DIM}))
    with pytest.raises(HeadError, match="speaker.json: threshold was calibrated on model edgepara-small"):
        SpeakerHead.load(profile_dir, CARD)


@pytest.mark.parametrize("threshold", [1.5, -2, float("nan"), "0.7"])
def test_impossible_thresholds_are_refused(profile_dir, threshold):
    with pytest.raises(ProfileError, match=r"expected threshold as a cosine in \[-1, 1\]"):
        SpeakerHead.load(profile_dir, CARD, threshold=threshold)


def test_a_head_needs_at_least_one_profile():
    with pytest.raises(ProfileError, match="edgepara enroll NAME FILE"):
        SpeakerHead([], threshold=0.7)


# -- equal error rate --------------------------------------------------------------------------------------

def test_perfectly_separable_scores_have_zero_eer_and_a_threshold_between_them():
    scores = [0.9, 0.8, 0.85, 0.1, 0.2, 0.3]
    labels = [1, 1, 1, 0, 0, 0]
    eer, threshold = equal_error_rate(scores, labels)
    assert eer == 0.0
    assert 0.3 < threshold <= 0.8
    assert threshold == pytest.approx(0.55)


def test_identical_score_sets_give_one_half():
    same = np.linspace(-1, 1, 101)
    eer, _ = equal_error_rate(np.concatenate([same, same]), np.r_[np.ones(101), np.zeros(101)])
    assert eer == pytest.approx(0.5, abs=0.01)


def test_scores_from_one_distribution_give_about_one_half():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=4000)
    eer, _ = equal_error_rate(scores, rng.integers(0, 2, size=4000))
    assert eer == pytest.approx(0.5, abs=0.03)


def test_all_equal_scores_give_one_half():
    assert equal_error_rate([0.3] * 6, [1, 0] * 3) == (pytest.approx(0.5), pytest.approx(0.3))


def test_inverted_scores_give_an_eer_of_one():
    eer, _ = equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert eer == pytest.approx(1.0)


def test_gaussian_scores_match_the_analytic_eer():
    # Genuine ~ N(+1, 1), impostor ~ N(-1, 1): equal rates at threshold 0, EER = Phi(-1) = 0.1587.
    rng = np.random.default_rng(6)
    n = 20000
    scores = np.concatenate([rng.normal(1, 1, n), rng.normal(-1, 1, n)])
    eer, threshold = equal_error_rate(scores, np.r_[np.ones(n), np.zeros(n)])
    assert eer == pytest.approx(0.1587, abs=0.006)
    assert threshold == pytest.approx(0.0, abs=0.03)


def test_eer_rates_agree_at_the_returned_threshold():
    rng = np.random.default_rng(7)
    genuine, impostor = rng.normal(0.6, 0.15, 300), rng.normal(0.2, 0.15, 700)
    scores = np.concatenate([genuine, impostor])
    labels = np.r_[np.ones(300, bool), np.zeros(700, bool)]  # booleans work as labels too
    eer, threshold = equal_error_rate(scores, labels)
    false_accept = np.mean(impostor >= threshold)
    false_reject = np.mean(genuine < threshold)
    # One score's worth of step either side of the interpolated crossing.
    assert abs(false_accept - eer) <= 2 / 300 and abs(false_reject - eer) <= 2 / 300


@pytest.mark.parametrize("scores, labels, message", [
    ([0.1, 0.2], [1, 1], "both same-speaker and different-speaker"),
    ([0.1, 0.2], [1, 2], "labels of 0/1"),
    ([0.1, np.nan], [1, 0], "finite scores"),
    ([0.1, 0.2, 0.3], [1, 0], "one length"),
])
def test_eer_refuses_unusable_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        equal_error_rate(scores, labels)


def test_a_model_with_a_speaker_part_is_scored_on_that_part_only(tmp_path, no_shipped_card):
    """Cards with speaker_dims: the head compares only those dimensions; the rest (emotion, room, …) may
    differ freely between enrollment and test without moving the score."""
    rng = np.random.default_rng(3)
    card = dict(CARD, speaker_dims=[24, DIM])
    voices = rng.normal(size=(2, 8))
    store = ProfileStore(tmp_path)
    for name, voice in zip(("alice", "bob"), voices):
        rows = np.concatenate([rng.normal(size=(3, 24)), np.tile(voice, (3, 1))], axis=1)
        store.add(name, rows, 4.5, card)
    head = SpeakerHead.load(tmp_path, card, threshold=0.5)
    probe = np.concatenate([rng.normal(size=24) * 10, voices[1]])  # loud, unrelated first part
    assert head.label_for(head.probabilities(probe))[0] == "bob"
    assert head.cosines(probe)[1] == pytest.approx(1.0, abs=1e-6)
    whole = SpeakerHead.load(tmp_path, CARD, threshold=0.5)  # the same profiles scored on everything
    assert whole.cosines(probe)[1] < 0.5


CURVE = {"false_accept": [0.001, 0.01, 0.1, 0.5], "cosine": [0.8, 0.6, 0.4, 0.1]}


def test_a_false_accept_rate_sets_a_higher_bar_for_more_profiles(profile_dir, no_shipped_card):
    """The shipped calibration: the card's rate through its impostor curve, per profile 1 - (1 - rate)^(1/N)."""
    shipped_card_path(no_shipped_card).write_text(json.dumps(
        {"false_accept": 0.1, "impostor_curve": CURVE, "model": "edgepara-small", "model_sha256": "a" * 64, "dim": DIM}))
    head = SpeakerHead.load(profile_dir, CARD)  # 3 profiles: 1 - 0.9^(1/3) = 0.0345 each
    expected = np.interp(np.log(1 - 0.9 ** (1 / 3)), np.log(CURVE["false_accept"]), CURVE["cosine"])
    assert head.false_accept == 0.1 and head.threshold == pytest.approx(expected)
    assert 0.4 < head.threshold < 0.6
    stricter = SpeakerHead.load(profile_dir, CARD, false_accept=0.01)
    assert stricter.threshold > head.threshold
    fixed = SpeakerHead.load(profile_dir, CARD, threshold=0.3)  # the old cosine unit stays a fixed bar
    assert fixed.threshold == 0.3 and fixed.false_accept is None
    one = speaker.ImpostorCurve.from_card(CURVE, "t")
    assert one.cosine_for(0.1, 1) == pytest.approx(0.4) and one.cosine_for(0.1, 10) > one.cosine_for(0.1, 3)
    assert one.cosine_for(0.0001, 1) == 0.8  # beyond the curve's ends: its end values


def test_a_rate_and_a_cosine_together_are_refused(profile_dir, no_shipped_card):
    with pytest.raises(ProfileError, match="expected a cosine threshold or a false-accept rate, got both"):
        SpeakerHead.load(profile_dir, CARD, threshold=0.5, false_accept=0.03)


def test_a_rate_without_a_curve_says_what_is_missing(profile_dir, no_shipped_card):
    with pytest.raises(HeadError, match="impostor curve for edgepara-small"):
        SpeakerHead.load(profile_dir, CARD, false_accept=0.03)


@pytest.mark.parametrize("curve", [{"false_accept": [0.1, 0.01], "cosine": [0.5, 0.6]},
                                   {"false_accept": [0.01, 0.1], "cosine": [0.5, 0.6]},
                                   {"false_accept": [0.01], "cosine": [0.5]}, {"cosine": [0.5, 0.4]}, [1, 2]])
def test_a_tampered_impostor_curve_is_refused_in_one_line(profile_dir, no_shipped_card, curve):
    shipped_card_path(no_shipped_card).write_text(json.dumps(
        {"impostor_curve": curve, "model": "edgepara-small", "model_sha256": "a" * 64, "dim": DIM}))
    with pytest.raises(HeadError, match="speaker.json: expected"):
        SpeakerHead.load(profile_dir, CARD)


@pytest.mark.parametrize("rate", [0, 1, -0.1, float("nan"), "0.03"])
def test_impossible_false_accept_rates_are_refused(profile_dir, no_shipped_card, rate):
    shipped_card_path(no_shipped_card).write_text(json.dumps(
        {"impostor_curve": CURVE, "model": "edgepara-small", "model_sha256": "a" * 64, "dim": DIM}))
    with pytest.raises(ProfileError, match=r"expected false-accept rate as a share of strangers in \(0, 1\)"):
        SpeakerHead.load(profile_dir, CARD, false_accept=rate)


def test_the_final_decides_on_the_utterances_voice_not_the_mean_of_its_window_cosines(profile_dir, directions):
    """Three windows of alice and one odd window (a cough, a door): the windows' cosines average 0.75, below the
    bar, but the utterance's voice (its unit windows summed, then normalised) stays alice's at about 0.95."""
    head = SpeakerHead.load(profile_dir, CARD, threshold=0.85)
    alice = head._unit_centroids[0]
    odd = np.random.default_rng(7).normal(size=DIM)
    odd -= (odd @ alice) * alice  # at right angles to alice's profile
    windows = [alice, alice, alice, odd]
    mean_cosine = np.mean([head.cosines(w)[0] for w in windows])
    assert mean_cosine == pytest.approx(0.75, abs=1e-6)
    voices = sum(head.voice(w) for w in windows)
    probs = head.utterance_probabilities(voices)
    assert speaker.score_to_cosine(probs["alice"]) == pytest.approx(3 / np.sqrt(10), abs=1e-6)
    assert head.label_for(probs)[0] == "alice"
    assert head.label_for(head.utterance_probabilities(np.zeros(DIM)))[0] == "unknown"  # no speech, nobody


def test_the_pipelines_final_is_the_heads_utterance_score(tmp_path):
    """Through the real pipeline on the shipped model and a committed clip: each utterance's final speaker scores
    are the head's utterance_probabilities of the voices of the windows the pipeline embedded (recorded as they
    were embedded), not the mean of the windows' scores."""
    from pathlib import Path

    from edgepara import Pipeline
    from edgepara.embed import embed_files
    from edgepara.runtime import Embedder
    from edgepara.stream.source import file_source

    clip = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"
    embedder = Embedder("edgepara-tiny")
    ProfileStore(tmp_path).add("alice", embed_files([clip], embedder=embedder).embeddings, 3.0, embedder.card)
    pipeline = Pipeline(model="edgepara-tiny", heads=["speaker"], profiles=tmp_path)
    head, seen = pipeline.heads[0], {}
    timed_embed = pipeline.embedder.timed_embed

    def recording(samples):
        embedding, ms = timed_embed(samples)
        seen.setdefault(utterance[0], []).append(embedding)
        return embedding, ms

    pipeline.embedder.timed_embed = recording
    utterance, finals = [None], {}
    for event in pipeline.run(file_source(clip)):
        if event.type == "speech_start":
            utterance[0] = event.utterance
        if event.type == "prediction" and event.final:
            finals[event.utterance] = event.probs
    assert finals and set(finals) == set(seen)
    for u, probs in finals.items():
        expected = head.utterance_probabilities(sum(head.voice(e) for e in seen[u]))
        assert probs == pytest.approx(expected, abs=1e-9)
        windows_mean = np.mean([head.probabilities(e)["alice"] for e in seen[u]])
        if len(seen[u]) > 1:
            assert probs["alice"] > windows_mean  # the voice of consistent windows scores above their mean
