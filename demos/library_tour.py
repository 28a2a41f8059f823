"""edgepara inside an app: a background thread with callbacks, async iteration, and the speaker head.

    python demos/library_tour.py            (about 10 s; uses the clip bundled with the package)

Swap file_source(CLIP, realtime=True) for MicrophoneSource() to do the same live.
"""
import asyncio
import tempfile
import time
from importlib import resources
from pathlib import Path

from edgepara import Pipeline
from edgepara.enroll import enroll
from edgepara.stream.source import file_source

CLIP = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"  # RAVDESS, CC BY-NC-SA 4.0


# 1. On a background thread. Callbacks run on that thread, one event at a time: keep them short.
def on_event(event):
    if event.type == "speech_end":
        print(f"  speech_end at {event.t:.2f} s ({event.duration:.2f} s of speech)")
    elif event.type == "prediction" and event.final:
        print(f"  utterance {event.utterance}: {event.head} = {event.label} ({event.confidence:.2f})")


def on_error(callback, event, error):  # a callback that raises is reported here; the stream goes on
    print(f"  {callback.__name__} failed on {event.type}: {error}")


pipeline = Pipeline(heads=["emotion", "mask"], callbacks=[on_event], on_error=on_error)
print("start/stop: 3 s of the clip at real-time pace, then stop() in mid-sentence")
with pipeline.start(file_source(CLIP, realtime=True)):
    time.sleep(3.0)  # the app does its own work meanwhile
# Leaving `with` called pipeline.stop(): the open utterance still got its speech_end and final predictions.
pipeline.remove_callback(on_event)
pipeline.reset()  # stream clock back to 0 for the next source


# 2. async for: the same events, handed over from the background thread through a bounded queue.
async def main():
    async for event in pipeline.events(file_source(CLIP)):
        if event.type == "prediction" and event.final:
            print(f"  [{event.t:5.2f} s] {event.head}: {event.label}")

print("async for, the whole clip:")
asyncio.run(main())


# 3. The speaker head: enroll someone (files or a microphone recording), then name "speaker" as a head.
with tempfile.TemporaryDirectory() as profiles:
    enroll("alice", [str(CLIP)], model="edgepara-tiny", profiles=profiles)
    speakers = Pipeline(model="edgepara-tiny", heads=["speaker"], profiles=profiles)  # speaker_threshold=...
    print("speaker head:")
    for event in speakers.run(file_source(CLIP)):
        if event.type == "prediction" and event.final:
            print(f"  utterance {event.utterance}: {event.label} ({event.confidence:.2f})")
