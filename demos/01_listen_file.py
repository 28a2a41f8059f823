"""Run the live pipeline over an audio file and print its events.

    python demos/01_listen_file.py [AUDIO_FILE] [--realtime]

Without a file it uses a clip from tests/data. --realtime paces the file like a microphone would.
"""
import sys
from pathlib import Path

from edgepara.stream.pipeline import Pipeline
from edgepara.stream.source import file_source

args = [a for a in sys.argv[1:] if not a.startswith("--")]
CLIPS = Path(__file__).resolve().parent.parent / "tests" / "data"
path = Path(args[0]) if args else max(CLIPS.glob("*.flac"), key=lambda p: p.stat().st_size)

pipeline = Pipeline(model="edgepara-small", heads=("emotion",))
for event in pipeline.run(file_source(path, realtime="--realtime" in sys.argv)):
    if event.type == "prediction":
        kind = "final" if event.final else "live "
        print(f"{event.t:7.2f}s  utt {event.utterance}  {kind} {event.head}: {event.label} ({event.confidence:.2f})")
    else:
        print(f"{event.t:7.2f}s  {event.type}  utt {getattr(event, 'utterance', '-')}")
print(f"{pipeline.stats.audio_seconds:.1f} s of audio, {pipeline.stats.windows_embedded} windows, "
      f"median {pipeline.stats.median_latency_ms:.1f} ms per window")
