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
