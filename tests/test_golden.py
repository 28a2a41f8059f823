"""Golden test: the committed clips and the bundled demo through `edgepara listen --jsonl` give the final
labels recorded in tests/data/golden_labels.json (the shipped int8 models, real LiteRT, real webrtcvad), so a
change anywhere on the live path that changes what users see shows up here."""
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "golden_labels.json").read_text())["finals"]
DEMO = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_listen_gives_the_recorded_final_labels(key):
    clip_name, model = key.split()
    clip = DEMO if clip_name == DEMO.name else DATA / clip_name
    r = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", "--file", str(clip), "--jsonl", "-",
                        "--model", model, "--head", "emotion,mask"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    finals = [json.loads(line) for line in r.stdout.splitlines() if '"final": true' in line]
    got = [[e["utterance"], e["head"], e["label"]] for e in finals]
    assert got == [g[:3] for g in GOLDEN[key]]
    for e, g in zip(finals, GOLDEN[key]):
        assert e["confidence"] == pytest.approx(g[3], abs=0.01), (e, g)
