"""Opt-in: edgepara on 64-bit and 32-bit Raspberry Pi OS (Debian bookworm arm64 / armhf) under qemu.

scripts/check-arm.sh installs the project in an emulated root filesystem exactly as README.md says,
runs `listen --demo`, `embed` and the runtime-only tests there and compares the results with this
machine's. It needs root, network access (Debian mirror, PyPI) and tens of minutes, so it is skipped
unless EDGEPARA_ARM_CHECK=1; run it with

    EDGEPARA_ARM_CHECK=1 scripts/test.sh tests/test_arm_emulated.py -m emulated
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check-arm.sh"

pytestmark = [
    pytest.mark.emulated,
    pytest.mark.skipif(os.environ.get("EDGEPARA_ARM_CHECK") != "1",
                       reason="emulated ARM check is opt-in: set EDGEPARA_ARM_CHECK=1 (needs root, network, ~1 h)"),
]


# armhf is not listed: there the install, the runs and the tests work, but tflite-runtime 2.14 gives window
# embeddings up to 2 int8 steps from LiteRT's and one live (not final) label flips, so the check exits 1
# (see the report in docs/benchmarks.md, "Checked under emulation"). Run `scripts/check-arm.sh armhf` to see it.
@pytest.mark.parametrize("arch", ["arm64"])
def test_check_arm_passes(arch: str) -> None:
    """The script exits 0 only when the install, the runs and the tests on the emulated board worked and
    the labels and embeddings agree with this machine's; its summary must say so too."""
    done = subprocess.run([str(SCRIPT), arch], capture_output=True, text=True, timeout=3 * 3600)
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    assert "RESULT: PASS" in done.stdout, tail
    assert "labels identical" in done.stdout, tail
