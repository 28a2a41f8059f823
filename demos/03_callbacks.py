"""Callbacks and sinks: every event goes to each callback; JsonlSink writes one JSON object per line.

    python demos/03_callbacks.py [AUDIO_FILE] > events.jsonl
"""
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edgepara.audio import read_audio
from edgepara.stream.pipeline import Pipeline
from edgepara.stream.sinks import CallbackSink, JsonlSink, OutputClosedError
from edgepara.stream.source import iterable_source

CLIPS = Path(__file__).resolve().parent.parent / "tests" / "data"
path = Path(sys.argv[1]) if len(sys.argv) > 1 else max(CLIPS.glob("*.flac"), key=lambda p: p.stat().st_size)
audio = read_audio(path)

counts = Counter()
finals = []


def on_final(event):
    if event.final:
        finals.append((event.utterance, event.head, event.label))


pipeline = Pipeline(callbacks=[
    JsonlSink("-"),                                    # JSON lines on stdout
    lambda event: counts.update([event.type]),         # any callable works
    CallbackSink(on_final, kinds=("prediction",)),     # only predictions reach on_final
])

# Any iterable of blocks is a source; here the audio arrives in uneven pieces, as from a network.
pieces = np.array_split(audio, [1000, 5000, 5200, 20000])
try:
    for _ in pipeline.run(iterable_source(pieces, rate=16000)):
        pass
except OutputClosedError:  # e.g. piped into `head`: stop quietly
    sys.exit(0)
print(f"events: {dict(counts)}; finals: {finals}", file=sys.stderr)
