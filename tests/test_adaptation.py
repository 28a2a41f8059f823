"""Per-speaker adaptation: the baseline arithmetic, the voices of a stream, and the shipped adaptive emotion
head through the real pipeline on real speech (cold start, speaker change, an enrolled speaker's baseline)."""
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgepara.adaptation import VOICE_CHANGE_COSINE, Adaptation, Baseline
from edgepara.assets import heads_dir
from edgepara.audio import read_audio
from edgepara.errors import EdgeparaError, HeadError
from edgepara.heads import ProbeHead, save_probe
from edgepara.stream.pipeline import Pipeline
from edgepara.types import Prediction, event_to_dict

DATA = Path(__file__).parent / "data"
DEMO = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"
MODEL = "edgepara-small"


def test_cold_start_is_the_prior_and_each_utterance_moves_towards_the_voice():
    prior_mean, prior_std = np.zeros(4), np.ones(4)
    x = np.array([2.0, 2.0, 2.0, 2.0])
    baseline = Baseline()
    assert np.allclose(baseline.normalise(x, prior_mean, prior_std, 1.0, 3.0), x)  # nothing heard: the prior
    for value in (2.0, 4.0):
        baseline.add(np.full(4, value))
    # mean (2 + 4 + 1 * 0) / 3, spread (2 * var 1 + 3 * 1) / 5
    expected = (x - 2.0) / np.sqrt(1.0)
    assert np.allclose(baseline.normalise(x, prior_mean, prior_std, 1.0, 3.0), expected)
    for i in range(200):  # many utterances around 3: the voice's own statistics win
        baseline.add(np.full(4, 3.0) + (-1) ** i)
    z = baseline.normalise(np.full(4, 3.0), prior_mean, prior_std, 1.0, 3.0)
    assert np.all(np.abs(z) < 0.1)


def test_a_baseline_survives_a_profile_file_and_a_bad_one_is_refused():
    baseline = Baseline()
    baseline.add(np.arange(3.0))
    again = Baseline.from_dict(json.loads(json.dumps(baseline.to_dict())), 3)
    assert again.n == 1 and np.allclose(again.total, [0, 1, 2])
    with pytest.raises(EdgeparaError, match="expected a baseline of 3 finite values"):
        Baseline.from_dict({"n": 1, "sum": [1.0, 2.0], "sum_squares": [1.0, 2.0]}, 3)
    with pytest.raises(EdgeparaError, match="expected a baseline with n"):
        Baseline.from_dict({"n": -1, "sum": [], "sum_squares": []}, 3)


def test_the_stream_voice_restarts_when_another_voice_speaks_and_enrolled_voices_keep_their_own():
    first, second = np.array([1.0, 0.0, 5.0]), np.array([-1.0, 0.2, 7.0])  # speaker part: the first two dims
    adaptation = Adaptation("speaker", speaker_dims=(0, 2), enrolled={"ana": Baseline()})
    for _ in range(3):
        adaptation.end_utterance(first)
    assert adaptation.stream.n == 3 and adaptation.restarts == 0
    adaptation.end_utterance(second)  # cosine -0.98 to the stream's voice
    assert adaptation.restarts == 1 and adaptation.stream.n == 1
    adaptation.end_utterance(first, speaker="ana")
    assert adaptation.enrolled["ana"].n == 1 and adaptation.stream.n == 1
    assert adaptation.baseline_for("ana") is adaptation.enrolled["ana"]
    assert adaptation.baseline_for(None) is adaptation.stream
    off = Adaptation("off")
    off.end_utterance(first)
    assert off.baseline_for(None).n == 0
    with pytest.raises(EdgeparaError, match="expected adaptation one of speaker, off"):
        Adaptation("sometimes")


def _finals(pipeline, clips, head="emotion"):
    out = []
    for clip in clips:
        events = pipeline.process(read_audio(clip)) + pipeline.flush()
        out += [e for e in events if isinstance(e, Prediction) and e.final and e.head == head]
    return out


def test_the_shipped_emotion_head_adapts_from_a_cold_start_on_real_speech():
    head = ProbeHead.load(str(heads_dir() / MODEL / "emotion.npz"))
    assert head.adaptive and head.uncertain_below is not None
    pipeline = Pipeline(MODEL, heads=["emotion", "arousal"])
    clip = DATA / "ravdess_A21_angry.flac"
    finals = _finals(pipeline, [clip, clip, clip])
    counts = [e.baseline["utterances"] for e in finals]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] >= 2  # cold start, then the voice's own
    assert {e.baseline["voice"] for e in finals} == {"stream"}
    assert "baseline" in event_to_dict(finals[0])
    off = Pipeline(MODEL, heads=["emotion"], adaptation="off")
    cold = _finals(off, [clip, clip, clip])
    assert [e.baseline["utterances"] for e in cold] == [0, 0, 0]
    # the same windows (the two streams cut them alike): the first utterance is read against the prior either
    # way, the later ones against the voice's own baseline only with the adaptation
    assert cold[0].probs == pytest.approx(finals[0].probs, abs=1e-6)
    assert cold[-1].probs != pytest.approx(finals[-1].probs, abs=1e-3)
    pipeline.reset()  # a new stream starts cold again
    assert _finals(pipeline, [clip])[0].baseline["utterances"] == 0


def test_a_different_voice_restarts_the_stream_baseline_on_real_speech():
    pipeline = Pipeline(MODEL, heads=["emotion"])
    woman, man = DATA / "ravdess_A21_angry.flac", DATA / "fsdd_7_theo_0.flac"
    _finals(pipeline, [woman, woman, woman])
    assert pipeline.adaptation.restarts == 0
    assert _speaker_cosine(pipeline, woman, man) < VOICE_CHANGE_COSINE  # plainly another voice
    finals = _finals(pipeline, [man])
    assert pipeline.adaptation.restarts == 1 and pipeline.adaptation.stream.n == 1
    pipeline.flush()
    assert _finals(pipeline, [man])[0].baseline["utterances"] == 1  # his own baseline, not hers


def _speaker_cosine(pipeline, a, b) -> float:
    from edgepara.embed import embed_files

    e = embed_files([a, b], embedder=pipeline.embedder).embeddings
    start, end = pipeline.embedder.card["speaker_dims"]
    a_, b_ = e[0, start:end], e[1, start:end]
    return float(a_ @ b_ / np.linalg.norm(a_) / np.linalg.norm(b_))


def test_an_enrolled_speaker_is_read_against_their_own_baseline(tmp_path):
    from edgepara.enroll import enroll

    clip = DATA / "ravdess_A21_angry.flac"
    profile = enroll("ana", [clip, clip], model=MODEL, profiles=tmp_path)
    assert profile.baseline["n"] == 2
    pipeline = Pipeline(MODEL, heads=["emotion", "speaker"], profiles=tmp_path)
    finals = _finals(pipeline, [clip, clip])
    assert [e.baseline for e in finals] == [{"voice": "ana", "utterances": 2, "adaptation": "speaker"},
                                            {"voice": "ana", "utterances": 3, "adaptation": "speaker"}]
    assert pipeline.adaptation.stream.n == 0  # the stream's own baseline stays for everyone else


def test_an_adaptive_head_without_its_prior_is_refused(tmp_path):
    source = heads_dir() / MODEL / "emotion"
    card = json.loads(source.with_suffix(".json").read_text())
    with np.load(source.with_suffix(".npz")) as z:
        arrays = {k: z[k] for k in z.files if k != "prior_std"}
    save_probe(tmp_path / "emotion.npz", card, arrays)  # a card that matches the file, so only the prior is wrong
    with pytest.raises(HeadError, match="expected arrays prior_mean and prior_std"):
        ProbeHead.load(str(tmp_path / "emotion.npz"))


def test_each_head_says_uncertain_below_its_own_threshold_unless_one_is_given():
    from edgepara.stream.smoother import DEFAULT_UNCERTAIN_BELOW, Smoother

    head = ProbeHead.load(str(heads_dir() / MODEL / "emotion.npz"))
    assert Smoother([head]).threshold("emotion") == head.uncertain_below
    assert Smoother([head], uncertain_below=0.2).threshold("emotion") == 0.2
    assert Smoother([]).threshold("emotion") == DEFAULT_UNCERTAIN_BELOW


def test_what_an_enrolled_speaker_says_is_kept_in_their_profile(tmp_path):
    from edgepara.enroll import enroll
    from edgepara.profiles import ProfileStore

    clip = DATA / "ravdess_A21_angry.flac"
    enroll("ana", [clip], model=MODEL, profiles=tmp_path)
    pipeline = Pipeline(MODEL, heads=["emotion", "speaker"], profiles=tmp_path)
    _finals(pipeline, [clip, clip])
    enroll("ana", [clip], model=MODEL, profiles=tmp_path)  # enrolled again meanwhile: both count
    assert pipeline.save_speaker_baselines() == ["ana"]
    assert ProfileStore(tmp_path).get("ana").baseline["n"] == 4
    assert pipeline.save_speaker_baselines() == []  # each utterance is written once
    later = Pipeline(MODEL, heads=["emotion", "speaker"], profiles=tmp_path)
    assert _finals(later, [clip])[0].baseline == {"voice": "ana", "utterances": 4, "adaptation": "speaker"}


def test_listen_shows_emotion_and_arousal_with_the_adaptation_on_or_off(tmp_path):
    import subprocess
    import sys

    def finals(*args):
        r = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", "--demo", "--fast", "--jsonl", "-",
                            "--head", "emotion,arousal", *args], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path, env={**__import__("os").environ, "XDG_CONFIG_HOME": str(tmp_path)})
        assert r.returncode == 0, r.stderr
        return [e for e in map(json.loads, r.stdout.splitlines()) if e["type"] == "prediction" and e["final"]]

    on = finals()
    assert {e["head"] for e in on} == {"emotion", "arousal"}
    assert [e["baseline"]["utterances"] for e in on if e["head"] == "emotion"] == [0, 1, 2]  # the demo's 3 readings
    off = finals("--adaptation", "off")
    assert {e["baseline"]["adaptation"] for e in off} == {"off"}
    (tmp_path / "config.toml").write_text('[listen]\nadaptation = "off"\nuncertain-below = 0.0\n')
    configured = finals("--config", str(tmp_path / "config.toml"))
    assert [e["probs"] for e in configured] == [e["probs"] for e in off]
    assert "uncertain" not in {e["label"] for e in configured}  # 0 given: every label is shown

