"""Error messages say what happened in the user's terms: how far a damaged file decoded, and no internal
object names."""
import os
import re
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "edgepara.cli"]
CLIP = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"


def run(tmp_path, *args, stdin=None):
    return subprocess.run([*CLI, *map(str, args)], cwd=tmp_path, capture_output=True, timeout=120, input=stdin,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})


def test_a_truncated_file_says_how_far_it_decoded(tmp_path):
    damaged = tmp_path / "cut.flac"
    damaged.write_bytes(CLIP.read_bytes()[:30000])
    r = run(tmp_path, "listen", "--file", damaged, "--no-dashboard")
    error = r.stderr.decode().strip().splitlines()[-1]
    assert r.returncode == 1 and "could not decode" in error, error
    seconds = float(re.search(r"after (-?[0-9.]+) s", error).group(1))
    assert seconds > 0.5, error  # it had decoded about a second, and said -0.0 s before


def test_garbage_on_stdin_is_described_without_internal_names(tmp_path):
    r = run(tmp_path, "listen", "--stdin", "--no-dashboard", stdin=b"fLaC" + bytes(range(256)) * 8)
    error = r.stderr.decode()
    assert r.returncode == 1 and "expected a decodable FLAC stream on stdin" in error, error
    assert "object at 0x" not in error and "<" not in error, error


def test_a_piped_wav_that_states_its_size_streams_as_it_arrives(tmp_path):
    """The header says how long the file is, but the pipe has delivered only its first second: the source
    gives that second now, not when the pipe closes (a decoder reading ahead for the whole size did)."""
    import io
    import threading

    import numpy as np
    import soundfile as sf

    from edgepara.audio import read_audio
    from edgepara.stream.source import stdin_source

    audio = read_audio(CLIP)
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16000, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    r, w = os.pipe()
    os.write(w, wav[:44 + 32000])  # the header and the first second
    reader = os.fdopen(r, "rb", buffering=0)
    got = []

    def consume():
        for chunk in stdin_source(16000, stream=reader):
            got.append(chunk)
            if sum(map(len, got)) >= 8000:
                return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive() and sum(map(len, got)) >= 8000  # half a second out while the pipe is still open
    np.testing.assert_array_equal(np.concatenate(got)[:8000], audio[:8000])
    os.close(w)
