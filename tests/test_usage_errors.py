"""A table of bad command-line and config values, run through the real CLI: each is a usage error (exit 2),
one line `edgepara: error: …` naming the option, before any work starts, and nothing is written. A new option
with a range belongs in this table."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "edgepara.cli"]
CLIP = Path(__file__).parent / "data" / "fsdd_3_jackson_0.flac"

BAD = [
    (["listen", "--stdin", "--rate", "0"], "--rate"),
    (["listen", "--stdin", "--channels", "0"], "--channels"),
    (["listen", "--file", CLIP, "--uncertain-below", "2"], "--uncertain-below"),
    (["listen", "--file", CLIP, "--uncertain-below", "nan"], "--uncertain-below"),
    (["listen", "--file", CLIP, "--speaker-threshold", "5"], "--speaker-threshold"),
    (["listen", "--file", CLIP, "--speaker-threshold", "nan"], "--speaker-threshold"),
    (["listen", "--file", CLIP, "--speaker-false-accept", "0"], "--speaker-false-accept"),
    (["listen", "--file", CLIP, "--speaker-false-accept", "0.9"], "--speaker-false-accept"),
    (["listen", "--file", CLIP, "--head", "speaker", "--speaker-false-accept", "0.03", "--speaker-threshold", "0.5"],
     "--speaker-false-accept or --speaker-threshold"),
    (["write-heads", "--heads", "voice"], "--heads"),
    (["listen", "--file", CLIP, "--head", "emotion", "--adapt-profiles"], "--adapt-profiles"),
    (["listen", "--file", CLIP, "--adaptation", "sometimes"], "--adaptation"),
    (["listen", "--file", CLIP, "--mqtt", "bogus://host"], "--mqtt"),
    (["listen", "--file", CLIP, "--mqtt", ""], "--mqtt"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-queue", "0"], "--mqtt-queue"),
    (["listen", "--file", CLIP, "--threads", "0"], "--threads"),
    (["listen", "--wyoming", "http://satellite:10600"], "--wyoming"),
    (["listen", "--wyoming", "tcp://satellite"], "--wyoming"),
    (["listen", "--wyoming", "tcp://satellite:70000"], "--wyoming"),
    (["listen", "--file", CLIP, "--wyoming", "tcp://127.0.0.1:10600"], "--wyoming"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-prefix", "a" * 2000], "--mqtt-prefix"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-prefix", "a/#"], "--mqtt-prefix"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-device", "robot\x01"], "--mqtt-device"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-device", "a/b"], "--mqtt-device"),
    (["listen", "--file", CLIP, "--mqtt-discovery"], "--mqtt-discovery"),
    (["listen", "--file", CLIP, "--mqtt-discovery-remove"], "--mqtt-discovery-remove"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-discovery", "home/+"], "--mqtt-discovery"),
    (["listen", "--file", CLIP, "--mqtt", "mqtt://localhost", "--mqtt-discovery", "$SYS"], "--mqtt-discovery"),
    (["enroll", "bad/name", CLIP], "name"),
    (["enroll", "alice"], "--seconds"),
    (["enroll", "alice", "--seconds", "-1"], "--seconds"),
    (["speakers", "--remove", "../x"], "--remove"),
    (["train-head", "../evil", "--data", "d"], "head name"),
    (["train-head", "door", "--data", "d", "--min-per-class", "0"], "--min-per-class"),
    (["bench", "stream", "--seconds", "5"], "--seconds"),
    (["bench", "stream", "--seconds", "nan"], "--seconds"),
    (["bench", "labelling", "--workers", "abc"], "--workers"),
    (["bench", "labelling", "--clips", "0"], "--clips"),
    (["bench", "quality", "--ablation", "/nonexistent-folder"], "--ablation"),
    (["write-heads", "--cache", "/nonexistent-folder"], "--cache"),
    (["distill", "--limit-clips", "-1"], "--limit-clips"),
    (["distill", "--corrupt-share", "2"], "--corrupt-share"),
    (["distill", "--epochs", "0"], "--epochs"),
    (["distill", "--workers", "0"], "--workers"),
    (["distill", "--sizes", "huge"], "sizes"),
    (["distill", "--losses", "nope"], "losses"),
    (["distill", "--language-temperature", "nan"], "--language-temperature"),
    (["distill", "--simulated-rooms", "-1"], "--simulated-rooms"),
    (["distill", "--leave-out", "emodb"], "leave out"),
    (["distill", "--speaker-margin", "1.5"], "speaker margin"),
    (["distill", "--speaker-margin", "nan"], "speaker margin"),
    (["distill", "--context-s", "5"], "--context-s"),
    (["distill", "--speaker-dim", "8"], "speaker part of 16 to 256"),
    (["distill", "--context-s", "2", "--losses", "whisper,gram_cross"], "context of 1, 2 or 3 s"),
]
BAD_CONFIG = [
    ('uncertain-below = 2', "uncertain-below"),
    ('speaker-threshold = nan', "speaker-threshold"),
    ('speaker-false-accept = 0.9', "speaker-false-accept"),
    ('adaptation = "sometimes"', "adaptation"),
    ('rate = 0', "rate"),
    ('mqtt = "bogus://x"', "mqtt"),
    ('mqtt-discovery = "a//b"', "mqtt-discovery"),
    ('mqtt-discovery = 3', "mqtt-discovery"),
    ('mqtt-discovery-remove = true', "unknown key"),  # a one-off action, not a setting
    ('wyoming = "tcp://satellite"', "wyoming"),
]


def run(tmp_path, *args):
    return subprocess.run([*CLI, *map(str, args)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"),
                               "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, stdin=subprocess.DEVNULL)


def assert_usage_error(r, needle):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error: ") and "Traceback" not in r.stderr, r.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needle", BAD, ids=[" ".join(map(str, a)).replace(str(CLIP), "CLIP") for a, _ in BAD])
def test_a_bad_value_is_a_usage_error_before_any_work(tmp_path, args, needle):
    assert_usage_error(run(tmp_path, *args), needle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "xdg") == []  # nothing written


@pytest.mark.parametrize("line, needle", BAD_CONFIG)
def test_a_bad_config_value_is_a_usage_error(tmp_path, line, needle):
    config = tmp_path / "c.toml"
    config.write_text(f"[listen]\n{line}\n")
    assert_usage_error(run(tmp_path, "listen", "--config", config, "--file", CLIP), needle)


def test_help_lists_every_exit_code_readme_promises(tmp_path):
    r = run(tmp_path, "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for code in ("0 ok", "1 runtime error", "2 usage error", "3 no speech", "130 interrupted", "143 terminated",
                 "141 output reader"):
        assert code in text, code
