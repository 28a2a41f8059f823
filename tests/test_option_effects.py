"""Each `listen` option changes what the real CLI does (not only its range check): a test fails if the CLI
stops passing the option on."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara.audio import read_audio

CLI = [sys.executable, "-m", "edgepara.cli"]
DATA = Path(__file__).parent / "data"


def events(tmp_path, *args):
    r = subprocess.run([*CLI, "listen", "--jsonl", "-", *map(str, args)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path),
                                                    "XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def speech_in_hiss(tmp_path_factory) -> Path:
    """3 s of steady hiss, a sentence, 3 s of hiss: how much of the hiss counts as speech is the VAD's call."""
    speech = read_audio(DATA / "ravdess_A21_angry.flac").astype(np.float64)
    hiss = np.random.default_rng(0).normal(0, 300, 3 * 16000)
    path = tmp_path_factory.mktemp("hiss") / "speech_in_hiss.wav"
    sf.write(path, np.concatenate([hiss, speech, hiss]).clip(-32768, 32767).astype(np.int16), 16000, subtype="PCM_16")
    return path


def test_vad_aggressiveness_decides_how_much_hiss_is_speech(tmp_path, speech_in_hiss):
    def speech_seconds(level):
        return sum(e["duration"] for e in events(tmp_path, "--file", speech_in_hiss, "--head", "mask",
                                                 "--vad-aggressiveness", level) if e["type"] == "speech_end")

    assert speech_seconds(0) > speech_seconds(3) + 1.0


def test_uncertain_below_decides_which_labels_are_shown(tmp_path):
    def labels(*extra):
        return {e["label"] for e in events(tmp_path, "--demo", "--fast", "--head", "emotion", *extra)
                if e["type"] == "prediction" and e["final"]}

    assert "uncertain" not in labels("--uncertain-below", "0")
    assert labels("--uncertain-below", "1") == {"uncertain"}


def test_speaker_threshold_decides_who_is_unknown(tmp_path):
    clip = DATA / "ravdess_A21_angry.flac"
    r = subprocess.run([*CLI, "enroll", "ana", clip, "--profiles", tmp_path / "p"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr

    def label(threshold):
        finals = [e for e in events(tmp_path, "--file", clip, "--head", "speaker", "--profiles", tmp_path / "p",
                                    "--speaker-threshold", threshold) if e["type"] == "prediction" and e["final"]]
        return finals[-1]["label"]

    assert label("0.0") == "ana" and label("1.0") == "unknown"


def test_speaker_false_accept_decides_how_readily_a_stranger_is_named(tmp_path):
    """Ana enrolled; a stranger whose voice resembles hers (her sentence resampled to 5/4 of its pitch and
    tempo) speaks. A permissive rate (half of all strangers named) sets a low bar and names him as ana; a strict
    one (1 in 1000) a bar above his score: "unknown". Ana's own words clear both."""
    from scipy.signal import resample_poly

    clip = DATA / "ravdess_A21_angry.flac"
    r = subprocess.run([*CLI, "enroll", "ana", clip, "--profiles", tmp_path / "p"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    stranger = tmp_path / "stranger.wav"
    sf.write(stranger, resample_poly(read_audio(clip).astype(np.float64), 4, 5).astype(np.int16), 16000)

    def label(path, rate):
        finals = [e for e in events(tmp_path, "--file", path, "--head", "speaker", "--profiles", tmp_path / "p",
                                    "--speaker-false-accept", rate) if e["type"] == "prediction" and e["final"]]
        return finals[-1]["label"]

    assert label(stranger, "0.5") == "ana"
    assert label(stranger, "0.001") == "unknown"
    assert label(clip, "0.001") == "ana"
