"""Outputs never destroy data: exactly the named path is written, never over an input; event logs append
whole lines; a head and its card are written together or not at all; a head name cannot point outside."""
import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgepara.assets import atomic_write
from edgepara.heads import save_probe
from edgepara.stream.sinks import JsonlSink
from edgepara.types import SpeechStart

DATA = Path(__file__).parent / "data"
CLIP = DATA / "fsdd_3_jackson_0.flac"
CLI = [sys.executable, "-m", "edgepara.cli"]


def cli(tmp_path, *args):
    return subprocess.run([*CLI, *map(str, args)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}, stdin=subprocess.DEVNULL)


def one_line_error(r, code: int, *needles):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("name", ["emb", "emb.dat", "emb.npy"])
def test_numpy_outputs_land_on_exactly_the_named_path(tmp_path, name):
    target = tmp_path / name
    atomic_write(target, lambda tmp: np.save(tmp, np.arange(3)))
    assert np.load(target).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing left beside it


def test_embed_writes_the_named_file_and_refuses_to_overwrite_its_input(tmp_path):
    r = cli(tmp_path, "embed", CLIP, "--out", "emb")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "emb").shape[0] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    clip = tmp_path / "y.flac"
    clip.write_bytes(CLIP.read_bytes())
    one_line_error(cli(tmp_path, "embed", clip, "--out", clip), 2, "other than the inputs")
    one_line_error(cli(tmp_path, "embed", clip, "--out", "w.npz", "--per-window", "w"), 2, "two files")
    assert clip.read_bytes() == CLIP.read_bytes()


def test_listen_appends_to_its_event_log(tmp_path):
    for _ in range(2):
        r = cli(tmp_path, "listen", "--file", CLIP, "--head", "mask", "--jsonl", "events.jsonl")
        assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["type"] == "speech_start"]
    assert len(starts) == 2 and starts[0] == starts[1]  # the first run's events are still there


def test_writers_sharing_one_log_interleave_whole_lines(tmp_path):
    path = tmp_path / "shared.jsonl"
    sinks = [JsonlSink(path) for _ in range(4)]

    def write(sink, k):
        for i in range(300):
            sink.write(SpeechStart(t=float(i), utterance=1000 * k + i))

    threads = [threading.Thread(target=write, args=(s, k)) for k, s in enumerate(sinks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sinks:
        s.close()
    lines = path.read_text().splitlines()
    assert sorted(json.loads(line)["utterance"] for line in lines) == sorted(
        1000 * k + i for k in range(4) for i in range(300))


def test_a_head_and_its_card_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    arrays = {"mean": np.zeros(2), "std": np.ones(2), "W": np.zeros((2, 2)), "b": np.zeros(2)}
    first = save_probe(tmp_path / "door.npz", {"classes": ["a", "b"]}, arrays)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.startswith(".door.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        save_probe(tmp_path / "door.npz", {"classes": ["a", "b"]}, dict(arrays, b=np.ones(2)))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the old pair, nothing beside it
    assert json.loads((tmp_path / "door.json").read_text())["sha256"] == first["sha256"]


@pytest.mark.parametrize("name", ["../evil", "sub/evil", ".hidden", "evil.npz", "speaker", ""])
def test_a_head_name_cannot_point_anywhere_else(tmp_path, name):
    (tmp_path / "work").mkdir()
    r = cli(tmp_path / "work", "train-head", name, "--data", tmp_path / "none")
    one_line_error(r, 2, "head name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
