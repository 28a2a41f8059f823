"""Enrollment says when a recording is poor: clipped, too quiet, or mostly not speech (one line each)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from edgepara.audio import read_audio
from edgepara.enroll import enrollment_warnings

DATA = Path(__file__).parent / "data"


def test_enroll_says_in_one_line_what_is_wrong_with_a_recording(tmp_path):
    speech = read_audio(DATA / "ravdess_A21_angry.flac").astype(np.float64)
    clipped = np.clip(speech * 40, -32768, 32767).astype(np.int16)
    quiet = (speech / 300).astype(np.int16)
    padded = np.concatenate([np.zeros(16000 * 20, np.int16), speech.astype(np.int16)])  # 20 s of silence first
    files = {}
    for name, audio in (("clipped", clipped), ("quiet", quiet), ("padded", padded), ("clean", speech.astype(np.int16))):
        files[name] = tmp_path / f"{name}.wav"
        sf.write(files[name], audio, 16000, subtype="PCM_16")
    lines = enrollment_warnings(list(files.values()), [3.5, 3.5, 3.5, 3.5])
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert lines[0].startswith("clipped.wav:") and "clipped" in lines[0]
    assert lines[1].startswith("quiet.wav:") and "dBFS" in lines[1]
    assert lines[2].startswith("padded.wav:") and "speech fills" in lines[2]


def test_the_cli_enrolls_and_warns_in_one_line(tmp_path):
    speech = read_audio(DATA / "ravdess_A21_angry.flac").astype(np.float64)
    sf.write(tmp_path / "loud.wav", np.clip(speech * 40, -32768, 32767).astype(np.int16), 16000, subtype="PCM_16")
    r = subprocess.run([sys.executable, "-m", "edgepara.cli", "enroll", "ana", tmp_path / "loud.wav", "--profiles",
                        tmp_path / "profiles"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("edgepara: warning: loud.wav: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "enrolled ana" in r.stdout


def _repeated(clip: str, path: Path, times: int = 10) -> Path:
    """A short committed clip said `times` over with pauses: enough speech for a profile."""
    audio = read_audio(DATA / clip)
    pause = np.zeros(4800, np.int16)
    sf.write(path, np.concatenate([np.concatenate([audio, pause])] * times), 16000, subtype="PCM_16")
    return path


def test_enroll_warns_when_two_profiles_sound_alike_to_the_speaker_head(tmp_path):
    """A profile as close to an enrolled one as the live head's naming bar is one warning line naming both (the
    same voice enrolled twice); a clearly different voice (another speaker's digits against an acted sentence) is
    enrolled without one. Both models, the shipped calibration."""
    jackson = _repeated("fsdd_3_jackson_0.flac", tmp_path / "jackson.wav")
    for model in ("edgepara-small", "edgepara-tiny"):
        profiles = tmp_path / model

        def enroll(name, path):
            r = subprocess.run([sys.executable, "-m", "edgepara.cli", "enroll", name, path, "--model", model,
                                "--profiles", profiles], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
            assert r.returncode == 0 and f"enrolled {name}" in r.stdout, r.stderr
            return r.stderr

        assert enroll("ana", DATA / "ravdess_A21_angry.flac") == ""
        assert enroll("jackson", jackson) == ""
        lines = enroll("ana_again", DATA / "ravdess_A21_angry.flac").splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgepara: warning: ana and ana_again sound alike"), lines
        assert "with 3 people enrolled" in lines[0] and "--speaker-false-accept" in lines[0]
        # `speakers` lists everyone and says the same about the pair
        r = subprocess.run([sys.executable, "-m", "edgepara.cli", "speakers", "--profiles", profiles],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, (r.stdout, r.stderr)
        assert r.stderr.splitlines() == lines, r.stderr
