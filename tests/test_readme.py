"""The Python code in README's "Use it from Python" section runs as written (the MQTT block against a real
Mosquitto broker started here, when Mosquitto is installed)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Use it from Python"):]
    section = section[: section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run(code: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), **env})


def test_readme_library_code_runs(tmp_path):
    blocks = python_blocks()
    assert len(blocks) == 2, "expected the library block and the MQTT block"
    r = run(blocks[0], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "emotion" in r.stdout and "utterance 0 ended at" in r.stdout, r.stdout
    assert "['alice'" in r.stdout, r.stdout  # the speaker head names the enrolled speaker


def test_readme_mqtt_code_runs_against_a_real_broker(tmp_path):
    test_mqtt = pytest.importorskip("test_mqtt")
    if test_mqtt.MOSQUITTO is None:
        pytest.skip("Mosquitto is not installed (scripts/setup.sh test installs it)")
    broker = test_mqtt.Broker(tmp_path / "broker").start()
    try:
        subscriber = test_mqtt.Subscriber(broker.port, "edgepara/kitchen/emotion")
        r = run(python_blocks()[1], tmp_path, EDGEPARA_MQTT_URL=broker.url)
        assert r.returncode == 0, r.stderr
        assert "dropped=0" in r.stdout, r.stdout
        received = []
        while not any('"final": true' in payload for _, payload in received):
            received += subscriber.take(1)  # fails the test if nothing more arrives within its timeout
        assert all(topic == "edgepara/kitchen/emotion" for topic, _ in received), received
    finally:
        broker.stop()


def test_the_headline_command_replays_the_demo_without_a_microphone(tmp_path):
    """README's first command, `listen --head emotion --fallback-demo` (sped up with --fast), on a machine with
    no reachable audio input (PulseAudio pointed at nothing): it says so, replays the bundled clip and exits 0;
    without --fallback-demo the same machine is one line and exit 1."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "PULSE_SERVER": "unix:/nonexistent"}
    command = [sys.executable, "-m", "edgepara.cli", "listen", "--head", "emotion", "--no-dashboard", "--fast"]
    r = subprocess.run([*command, "--fallback-demo"], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    if "replaying" not in r.stderr and r.returncode == 0:
        pytest.skip("this machine has a real microphone")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "edgepara: expected an audio input device, got none: plug in a microphone and check `edgepara devices`, "
        "or run on audio with --file PATH or --demo",
        "edgepara: --fallback-demo: replaying the bundled demo clip instead"], r.stderr
    assert [line.split()[1:4] for line in r.stdout.splitlines()] == [
        ["utterance", "0", "emotion:"], ["utterance", "1", "emotion:"], ["utterance", "2", "emotion:"]], r.stdout
    r = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", r.stderr
