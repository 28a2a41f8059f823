"""Flat memory for the commands users run on long recordings, measured on the real CLI processes: the peak
resident memory of `listen --file`, `enroll` and `train-head` on 8 s and on 20 times more audio differs by little
more than the bigger output (the audio is never held whole)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara.audio import read_audio

CLI = [sys.executable, "-m", "edgepara.cli"]
CLIP = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"
SR = 16000
# A 160 s recording at 44.1 kHz stereo, decoded whole, is 28 MB of float32 (56 MB as float64): growth this small
# means the file was streamed.
SLACK_MB = 12.0


# The command runs in a wrapper that reads its own VmHWM (peak resident memory since exec) as it exits. The
# rusage of a waited child is no use here: Linux carries the RSS of the forked copy of pytest, before exec, into it.
MEASURED = """
import atexit, runpy, sys
out, sys.argv = sys.argv[1], ["edgepara"] + sys.argv[2:]
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(out, "w").write(line.split()[1])
atexit.register(peak)
runpy.run_module("edgepara.cli", run_name="__main__")
"""


def peak_rss_mb(args, cwd) -> float:
    """Peak resident set size of the command's process, in MB."""
    out = Path(cwd) / "vmhwm"
    r = subprocess.run([sys.executable, "-c", MEASURED, str(out), *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, timeout=300,
                       env={**os.environ, "XDG_DATA_HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)})
    assert r.returncode == 0, r.stderr
    return int(out.read_text()) / 1024  # kB


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """The clip as 44.1 kHz stereo, twice (about 8 s) and 40 times over (about 160 s), written piece by piece."""
    folder = tmp_path_factory.mktemp("long")
    speech = read_audio(CLIP).astype(np.float64) / 32768.0
    from scipy.signal import resample_poly

    stereo = np.repeat(resample_poly(speech, 441, 160)[:, None], 2, axis=1) * 0.8
    short, long = folder / "short.flac", folder / "long.flac"
    sf.write(short, np.concatenate([stereo, stereo]), 44100, subtype="PCM_16")  # enough speech to enroll
    with sf.SoundFile(long, "w", 44100, 2, subtype="PCM_16") as f:
        for _ in range(40):
            f.write(stereo)
    return short, long


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's /proc")
def test_listen_and_enroll_do_not_grow_with_the_recording(tmp_path, recordings):
    short, long = recordings
    listen = {p: peak_rss_mb(["listen", "--file", p, "--head", "emotion", "--no-dashboard", "--jsonl", tmp_path / "e"],
                             tmp_path) for p in (short, long)}
    assert listen[long] < listen[short] + SLACK_MB, listen
    enroll = {p: peak_rss_mb(["enroll", f"s{i}", p, "--profiles", tmp_path / "profiles"], tmp_path)
              for i, p in enumerate((short, long))}
    assert enroll[long] < enroll[short] + SLACK_MB, enroll


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's /proc")
def test_train_head_does_not_hold_every_file(tmp_path, recordings):
    """A head from 4 files and from 40 (each the long recording's length would be too slow here: the short
    one, 10 times more files)."""
    short, _ = recordings
    peaks = {}
    for n in (4, 40):
        rows = [f"{short},{'a' if i % 2 else 'b'}" for i in range(n)]
        (tmp_path / f"{n}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
        peaks[n] = peak_rss_mb(["train-head", f"h{n}", "--data", tmp_path / f"{n}.csv", "--min-per-class", "2",
                                "--out", tmp_path / f"h{n}.npz"], tmp_path)
    assert peaks[40] < peaks[4] + SLACK_MB, peaks
