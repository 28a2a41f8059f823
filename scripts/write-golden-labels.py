#!/usr/bin/env python3
"""Rewrites tests/data/golden_labels.json from the shipped models and heads: the final predictions of
`edgepara listen --file CLIP --jsonl - --model MODEL --head emotion,mask` on the committed clips and the demo.
Run only when a model or head changes on purpose (tests/test_golden.py then checks nothing else moved)."""
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
GOLDEN = DATA / "golden_labels.json"
DEMO = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"

golden = json.loads(GOLDEN.read_text())
finals = {}
for key in sorted(golden["finals"]):
    clip_name, model = key.split()
    clip = DEMO if clip_name == DEMO.name else DATA / clip_name
    r = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", "--file", str(clip), "--jsonl", "-",
                        "--model", model, "--head", "emotion,mask"], capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in r.stdout.splitlines() if '"final": true' in line]
    finals[key] = [[e["utterance"], e["head"], e["label"], round(e["confidence"], 3)] for e in events]
golden["about"] = ("Final predictions of `edgepara listen --file CLIP --jsonl - --model MODEL --head emotion,mask` on "
                   "the committed clips and the bundled demo: [utterance, head, label, confidence]. Written by "
                   "scripts/write-golden-labels.py from the shipped models and heads; regenerate only when a model "
                   "or head changes on purpose.")
golden["finals"] = finals
GOLDEN.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
print(f"wrote {GOLDEN}: {sum(map(len, finals.values()))} final predictions")
