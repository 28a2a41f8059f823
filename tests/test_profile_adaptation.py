"""`listen --adapt-profiles`: a confidently named utterance moves its speaker's profile a bounded step; the bound
holds however many utterances push; nothing moves for "unknown" or without the option; the store keeps the
enrolled centroid as the anchor and enrolling again starts afresh. The last tests run the real CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from edgepara.audio import read_audio
from edgepara.errors import ProfileError
from edgepara.profiles import ADAPT_RATE, ANCHOR_COSINE, ProfileStore, adapted_centroid
from edgepara.speaker import SpeakerHead

DIM = 16
CARD = {"name": "edgepara-small", "sha256": "a" * 64, "embedding_dim": DIM}
CLI = [sys.executable, "-m", "edgepara.cli"]
CLIP = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x)


def cosine(a, b):
    return float(unit(a) @ unit(b))


def test_a_step_moves_the_centroid_towards_the_utterance_by_the_adaptation_rate():
    rng = np.random.default_rng(0)
    anchor = unit(rng.normal(size=DIM)) * 0.8  # enrolled centroids are means of unit vectors: shorter than 1
    voice = unit(anchor + 0.1 * rng.normal(size=DIM))
    new = adapted_centroid(anchor, anchor, voice)
    assert np.allclose(new, (1 - ADAPT_RATE) * anchor + ADAPT_RATE * 0.8 * voice)
    assert cosine(new, voice) > cosine(anchor, voice)


def test_another_persons_voice_cannot_pull_a_profile_past_the_bound():
    """Ten thousand confident-looking utterances of someone else: the profile stops at ANCHOR_COSINE of what was
    enrolled, and further pushes are refused."""
    rng = np.random.default_rng(1)
    anchor = unit(rng.normal(size=DIM))
    other = unit(rng.normal(size=DIM))
    centroid, refused = anchor.copy(), 0
    for _ in range(10_000):
        new = adapted_centroid(centroid, anchor, other)
        if new is None:
            refused += 1
        else:
            centroid = new
    assert cosine(centroid, anchor) >= ANCHOR_COSINE
    assert cosine(centroid, other) < 0.6 and refused > 9_000


def test_the_bound_is_on_the_speaker_part_the_head_scores():
    """Dimensions 8-15 are the speaker part: a push that only changes the other dimensions is never refused,
    one that turns the speaker part is stopped at the bound there."""
    anchor = np.r_[np.ones(8), np.eye(8)[0]]
    elsewhere = unit(np.r_[-np.ones(8), np.eye(8)[0]])  # the speaker part points the same way
    turning = unit(np.r_[np.ones(8), np.eye(8)[1]])  # the speaker part points elsewhere
    centroid, moved = anchor.copy(), 0
    for _ in range(500):
        new = adapted_centroid(centroid, anchor, elsewhere, speaker_dims=(8, 16))
        assert new is not None
        centroid = new
    assert cosine(centroid[:8], anchor[:8]) < 0  # the other dimensions went all the way
    centroid = anchor.copy()
    for _ in range(500):
        new = adapted_centroid(centroid, anchor, turning, speaker_dims=(8, 16))
        centroid, moved = (centroid, moved) if new is None else (new, moved + 1)
    assert ANCHOR_COSINE <= cosine(centroid[8:], anchor[8:]) < ANCHOR_COSINE + 0.01 and moved < 500


def _enrolled(tmp_path, names=("ana", "ben")):
    store = ProfileStore(tmp_path / "p")
    rng = np.random.default_rng(2)
    directions = {n: unit(rng.normal(size=DIM)) for n in names}
    for n, d in directions.items():
        store.add(n, d + 0.05 * rng.normal(size=(3, DIM)), 4.5, CARD)
    return store, directions


def test_the_head_adapts_only_confident_names(tmp_path):
    store, directions = _enrolled(tmp_path)
    head = SpeakerHead(store.load_for_model(CARD), threshold=0.3)
    assert head.confident_bar == pytest.approx(0.4)
    before = head.cosines(directions["ana"]).copy()
    assert not head.adapt("ana", 0.35, directions["ana"])  # named, but not confidently
    assert not head.adapt("unknown", 0.99, directions["ana"]) and not head.adapt("zoe", 0.99, directions["ana"])
    assert head.adapted == {} and np.allclose(head.cosines(directions["ana"]), before)
    assert head.adapt("ana", 0.9, directions["ana"])
    assert len(head.adapted["ana"]) == 1 and head.cosines(directions["ana"])[0] > before[0]


def test_the_store_saves_an_adapted_centroid_with_its_anchor_and_enrolling_again_starts_afresh(tmp_path):
    store, directions = _enrolled(tmp_path)
    enrolled = store.get("ana")
    adapted = store.adapt("ana", [directions["ana"]] * 3)
    assert adapted.adapted_utterances == 3 and adapted.enrolled_centroid == enrolled.centroid
    assert adapted.centroid != enrolled.centroid
    on_disk = json.loads(store.path_for("ana").read_text())
    assert on_disk["adapted_utterances"] == 3 and on_disk["enrolled_centroid"] == enrolled.centroid
    assert oct(store.path_for("ana").stat().st_mode & 0o777) == "0o600"
    assert store.adapt("ana", [np.ones(DIM + 1)]) is None  # another model's embedding: nothing written
    assert store.adapt("nobody", [directions["ana"]]) is None
    again = store.add("ana", directions["ana"] + np.zeros((3, DIM)), 3.0, CARD)
    assert again.adapted_utterances == 0 and again.enrolled_centroid is None
    expected = (np.asarray(enrolled.centroid) * 3 + 3 * directions["ana"]) / 6  # from the enrolled centroid
    assert np.allclose(again.centroid, expected)


@pytest.mark.parametrize("anchor", [[0.0] * DIM, [1.0] * (DIM - 1), "x", [float("nan")] * DIM])
def test_a_tampered_anchor_is_refused_in_one_line(tmp_path, anchor):
    store, _ = _enrolled(tmp_path, names=("ana",))
    data = json.loads(store.path_for("ana").read_text())
    store.path_for("ana").write_text(json.dumps(dict(data, enrolled_centroid=anchor)).replace("NaN", "NaN"))
    with pytest.raises(ProfileError, match="enrolled_centroid"):
        store.get("ana")


# -- through the real CLI -----------------------------------------------------------------------------------

def _run(tmp_path, *args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})


def test_listen_adapt_profiles_moves_the_named_speakers_profile_and_only_then(tmp_path):
    r = _run(tmp_path, "enroll", "ana", CLIP, "--profiles", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "p" / "ana.json"
    enrolled = json.loads(path.read_text())
    stranger = tmp_path / "stranger.wav"  # her sentence a third higher: a voice the head calls "unknown"
    sf.write(stranger, resample_poly(read_audio(CLIP).astype(np.float64), 3, 4).astype(np.int16), 16000)

    for args in (("--file", CLIP), ("--file", stranger, "--adapt-profiles")):
        r = _run(tmp_path, "listen", "--head", "speaker", "--profiles", tmp_path / "p", "--jsonl", "-", *args)
        assert r.returncode == 0, r.stderr
        assert json.loads(path.read_text())["centroid"] == enrolled["centroid"], args  # nothing moved
    labels = [json.loads(line)["label"] for line in r.stdout.splitlines() if '"final": true' in line]
    assert labels and set(labels) == {"unknown"}

    r = _run(tmp_path, "listen", "--head", "speaker", "--profiles", tmp_path / "p", "--jsonl", "-", "--file", CLIP,
             "--adapt-profiles")
    assert r.returncode == 0, r.stderr
    adapted = json.loads(path.read_text())
    assert adapted["adapted_utterances"] >= 1 and adapted["enrolled_centroid"] == enrolled["centroid"]
    assert adapted["centroid"] != enrolled["centroid"]
    assert cosine(adapted["centroid"], enrolled["centroid"]) > 0.99  # one utterance: a small step
