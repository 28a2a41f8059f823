"""The systemd unit in deploy/ is valid for systemd (`systemd-analyze verify`, warnings included), and the
command it starts, with the shipped config file, is one that `edgepara listen` accepts and runs."""
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT, CONFIG = ROOT / "deploy" / "edgepara.service", ROOT / "deploy" / "config.toml"
INSTALLED = "/opt/edgepara"


def unit_for_this_checkout(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with /opt/edgepara pointed at this checkout, so verify can see its ExecStart binary."""
    text = (text or UNIT.read_text()).replace(INSTALLED, str(ROOT))
    path = tmp_path / "edgepara.service"
    path.write_text(text)
    return path


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (scripts/setup.sh test installs systemd)")


@needs_systemd
def test_unit_verifies_without_warnings(tmp_path):
    if not (ROOT / ".venv" / "bin" / "edgepara").exists():
        pytest.skip("no .venv/bin/edgepara in this checkout (scripts/setup.sh)")
    r = verify(unit_for_this_checkout(tmp_path))
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt key is only a warning, which the test treats as a failure."""
    r = verify(unit_for_this_checkout(tmp_path, UNIT.read_text().replace("Restart=on-failure", "Restrt=on-failure")))
    assert "Unknown key" in r.stdout + r.stderr


def test_unit_runs_listen_as_a_non_root_audio_user_and_restarts():
    unit = UNIT.read_text()
    assert "User=edgepara" in unit and "SupplementaryGroups=audio" in unit
    assert "Restart=on-failure" in unit and "StandardError=journal" in unit
    assert "PASSWORD" not in unit.split("ExecStart=")[1].splitlines()[0]


def test_the_units_command_and_config_run_listen(tmp_path):
    """ExecStart as written, with the shipped config (the bundled clip in place of the microphone)."""
    exec_start = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == f"{INSTALLED}/.venv/bin/edgepara" and argv[1] == "listen"
    config = tomllib.loads(CONFIG.read_text())
    assert config["listen"]["device"]  # the device is chosen by name
    test_config = tmp_path / "config.toml"
    test_config.write_text(CONFIG.read_text().replace('device = "USB"', "demo = true"))
    events = tmp_path / "events.jsonl"
    argv = [a.replace("/etc/edgepara/config.toml", str(test_config)).replace("/var/lib/edgepara/events.jsonl", str(events))
            for a in argv[2:]]
    r = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", *argv], capture_output=True, text=True,
                       timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    lines = events.read_text().splitlines()
    assert any('"final": true' in line and '"head": "mask"' in line for line in lines), lines[:5]
