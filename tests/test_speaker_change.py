"""Several people in one stream: three enrolled voices and a stranger taking turns in one recording (a second
of silence between turns), through the real CLI (`enroll`, then `listen --head speaker --jsonl`) on the shipped
model: every utterance gets its own speaker label, and a `speaker_change` event follows the final of each
utterance whose speaker differs from the one before. The voices are espeak-ng's (three distinct synthetic
voices, enrolled from one sentence, heard saying others); the stranger is the committed RAVDESS clip.
Turns that overlap are not split: an utterance the VAD does not cut gets one label."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "edgepara.cli"]
STRANGER = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"
VOICES = {"mika": ["-v", "en+m3"], "fran": ["-v", "en+f4"], "xena": ["-v", "en+f2", "-p", "70"]}
ENROLL = "The quick brown fox jumps over the lazy dog near the river bank today."
SAY = {"mika": "Please call Stella and ask her to bring these things with her from the store.",
       "fran": "Please call Stella and ask her to bring these things with her from the store.",
       "xena": "Please call Stella and ask her to bring these things with her from the store.",
       "mika again": "Six spoons of fresh snow peas, five thick slabs of blue cheese."}


def _speak(voice: list[str], text: str, path: Path) -> np.ndarray:
    from edgepara.audio import read_audio

    subprocess.run(["espeak-ng", *voice, "-w", str(path), text], check=True, capture_output=True)
    return read_audio(path)


def test_three_voices_taking_turns_are_each_named_and_each_change_is_an_event(tmp_path):
    import soundfile as sf

    from edgepara.audio import read_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (scripts/setup.sh test installs it)")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    profiles = tmp_path / "profiles"
    for name, voice in VOICES.items():
        _speak(voice, ENROLL, tmp_path / f"{name}.wav")
        r = subprocess.run([*CLI, "enroll", name, str(tmp_path / f"{name}.wav"), "--profiles", str(profiles)],
                           capture_output=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
    turns = ["stranger", "mika", "fran", "xena", "mika again"]
    silence = np.zeros(16000, np.int16)
    audio = []
    for turn in turns:
        audio += [read_audio(STRANGER) if turn == "stranger" else
                  _speak(VOICES[turn.split()[0]], SAY[turn], tmp_path / "turn.wav"), silence]
    sf.write(tmp_path / "stream.wav", np.concatenate(audio), 16000)
    log = tmp_path / "events.jsonl"
    r = subprocess.run([*CLI, "listen", "--file", str(tmp_path / "stream.wav"), "--head", "speaker", "--profiles",
                        str(profiles), "--jsonl", str(log), "--no-dashboard"], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    finals = [e for e in events if e["type"] == "prediction" and e["final"]]
    assert [e["label"] for e in finals] == ["unknown", "mika", "fran", "xena", "mika"], finals
    changes = [e for e in events if e["type"] == "speaker_change"]
    assert [(e["utterance"], e["previous"], e["speaker"]) for e in changes] == [
        (1, "unknown", "mika"), (2, "mika", "fran"), (3, "fran", "xena"), (4, "xena", "mika")]
    for change in changes:  # each comes right after its utterance's final
        at = events.index(change)
        assert events[at - 1]["type"] == "prediction" and events[at - 1]["utterance"] == change["utterance"]


def test_no_change_between_two_unknown_utterances_nor_within_one_speaker():
    """Two strangers in a row cannot be told apart by the head: no event; the same name twice: none either."""
    from edgepara.stream.pipeline import Pipeline
    from edgepara.types import Prediction, SpeakerChange

    class Head:
        name, speakers = "speaker", ("ann", "bob")

    def final(utterance, label):
        return Prediction(t=float(utterance), utterance=utterance, head="speaker", label=label, confidence=0.9,
                          probs={}, final=True)

    pipeline = Pipeline.__new__(Pipeline)  # only the bookkeeping under test, no model
    pipeline._speaker, pipeline._last_speaker = Head(), None
    got = [pipeline._speaker_change([final(i, label)])
           for i, label in enumerate(["unknown", "uncertain", "ann", "ann", "bob", "unknown"])]
    assert got == [[], [], [SpeakerChange(2.0, 2, "unknown", "ann")], [], [SpeakerChange(4.0, 4, "ann", "bob")],
                   [SpeakerChange(5.0, 5, "bob", "unknown")]]
