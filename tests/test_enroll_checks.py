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
