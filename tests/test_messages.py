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


def test_a_link_that_loops_is_not_called_missing(tmp_path):
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    r = run(tmp_path, "listen", "--file", tmp_path / "a.wav", "--no-dashboard")
    assert r.returncode == 1 and b"symbolic link that loops or points nowhere" in r.stderr, r.stderr


def test_a_file_name_that_is_not_utf8_opens(tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.flac")
    with open(name, "wb") as f:
        f.write((Path(__file__).parent / "data" / "fsdd_3_jackson_0.flac").read_bytes())
    r = subprocess.run([*CLI, "listen", "--file", name, "--no-dashboard", "--head", "mask"], cwd=tmp_path,
                       capture_output=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 0 and b"mask" in r.stdout, r.stderr


def test_a_spreadsheets_byte_order_mark_does_not_hide_the_header(tmp_path):
    import pytest

    pytest.importorskip("sklearn")
    from edgepara.train.user_heads import read_labelled_audio

    csv = tmp_path / "labels.csv"
    csv.write_text("\ufeffpath,label\na.wav,door\nb.wav,bell\n", encoding="utf-8")
    assert [(p.name, label) for p, label, _ in read_labelled_audio(csv)] == [("a.wav", "door"), ("b.wav", "bell")]


def test_too_little_memory_to_load_is_one_line_not_a_traceback(tmp_path):
    """Under a small `ulimit -v` the libraries fail to load at different points (numpy's shared objects, a
    module's code, a thread): each is one line and exit 1, through the console command's own entry point."""
    failed = 0
    for kib in (50_000, 100_000, 150_000, 250_000):
        r = subprocess.run(["bash", "-c", f'ulimit -v {kib}; exec "$0" -m edgepara.launch listen --demo '
                                          f'--no-dashboard', sys.executable],
                           cwd=tmp_path, capture_output=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
        err = r.stderr.decode()
        assert "Traceback" not in err, (kib, err)
        if r.returncode:
            failed += 1
            assert r.returncode == 1 and err.strip().startswith("edgepara: error: expected"), (kib, err)
            assert len(err.strip().splitlines()) == 1, (kib, err)
    assert failed, "no limit was tight enough to test anything"


def test_ctrl_c_while_starting_is_stopped_not_a_traceback(tmp_path):
    """Ctrl-C at any moment of the first ~half second (imports, parser, model load, the stream's start) ends
    with "edgepara: stopped" and exit 130, through the console command's entry point. Before any of edgepara's
    code runs, the interpreter's own start-up is not ours to change: the signal's default action (no output,
    a shell reports 130 too), or Python's own traceback from importing site, runpy or our module's file, with
    no frame of ours."""
    import signal
    import time

    for i in range(14):
        p = subprocess.Popen([sys.executable, "-m", "edgepara.launch", "listen", "--demo", "--no-dashboard"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
                             # as from a terminal: a suite run as a background job would pass SIGINT on ignored
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(0.03 * (i + 1))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        err = err.decode().strip()
        # in the interpreter's own start-up, before any line of ours ran (site, runpy, or runpy still loading
        # our module): no output, or its own traceback ending in KeyboardInterrupt with no frame of ours
        before_us = "edgepara" not in err and p.returncode in (1, -signal.SIGINT) \
            and (not err or err.endswith("KeyboardInterrupt"))
        assert (p.returncode, err) == (130, "edgepara: stopped") or before_us, (0.03 * (i + 1), p.returncode, err)


def test_a_full_disk_behind_standard_output_is_named(tmp_path):
    """Files edgepara opens name themselves when the disk is full; output redirected to a full disk (here
    /dev/full, which answers every write with ENOSPC) names standard output and where it goes."""
    with open("/dev/full", "wb") as full:
        r = subprocess.run([*CLI, "listen", "--demo", "--fast", "--no-dashboard"], cwd=tmp_path, stdout=full,
                           stderr=subprocess.PIPE, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and err == "edgepara: error: expected free disk space, got a full disk writing " \
                                       "standard output (/dev/full)", err


def test_silence_on_stdin_exits_with_the_literal_3(tmp_path):
    """README: exit code 3 when the audio decoded fine but held no speech (raw PCM from the CLI's --rate and
    --channels: 3 s of 8 kHz stereo silence)."""
    r = run(tmp_path, "listen", "--stdin", "--rate", "8000", "--channels", "2", "--no-dashboard",
            stdin=bytes(3 * 8000 * 2 * 2))
    err = r.stderr.decode().strip()
    assert r.returncode == 3 and err.startswith("edgepara: error: no speech found in stdin"), err
    assert len(err.splitlines()) == 1
