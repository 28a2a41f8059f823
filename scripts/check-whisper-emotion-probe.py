#!/usr/bin/env python
"""Why the Whisper-probe emotion targets centre each speaker's features (edgepara.train.supervision.
probe_posteriors): fits the probe on the cached Whisper targets of RAVDESS actors 1-12's windows,
scores actors 13-16's windows, and shows which classes it gives the other corpora's windows, with and
without each speaker's mean removed. Needs the teacher cache of `edgepara distill`.
Usage: scripts/check-whisper-emotion-probe.py [CACHE]   (default cache/targets-v3)"""
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from edgepara.train.data import data_root, distillation_utterances
from edgepara.train.distill import standardise, whisper_features
from edgepara.train.supervision import EMOTIONS8 as EMOTIONS, speaker_centred, window_labels
from edgepara.train.targets import load_targets

cache = Path(sys.argv[1] if len(sys.argv) > 1 else "cache/targets-v3")
raw = load_targets(sorted(cache.glob("shard_*.npz")))
utterances = distillation_utterances(data_root(None))
names, speaker = np.unique(raw["speaker"], return_inverse=True)
emotion = window_labels(raw["clip"], utterances)["emotion8"]
targets = standardise(raw, ("whisper",))
X = whisper_features(targets)
labelled = emotion >= 0
actor = np.array([int(re.findall(r"\d+", names[s])[-1]) if labelled[i] else 0 for i, s in enumerate(speaker)])
fit, test = labelled & (actor <= 12), labelled & (actor > 12)
for centred in (False, True):
    Z = speaker_centred(X, speaker) if centred else X
    probe = LogisticRegression(C=0.01, max_iter=500).fit(Z[fit], emotion[fit])
    print(f"{'centred per speaker' if centred else 'uncentred'}: accuracy on windows of RAVDESS actors 13-16 "
          f"{np.mean(probe.predict(Z[test]) == emotion[test]):.3f}; the other corpora's windows are called")
    for source in sorted(set(raw["source"][~labelled])):
        rows = ~labelled & (raw["source"] == source)
        share = np.bincount(probe.predict(Z[rows]), minlength=len(EMOTIONS)) / rows.sum()
        top = np.argsort(share)[::-1][:3]
        print(f"  {source}: " + ", ".join(f"{EMOTIONS[i]} {share[i]:.0%}" for i in top))
