"""Listen to a microphone and print a final prediction per utterance. Ctrl+C stops.

    python demos/02_listen_microphone.py [DEVICE]      (a name like "pulse", or an index from `edgepara devices`)
"""
import sys

from edgepara.errors import EdgeparaError
from edgepara.stream.pipeline import Pipeline
from edgepara.stream.source import MicrophoneSource, list_input_devices

device = sys.argv[1] if len(sys.argv) > 1 else None
try:
    print("input devices:", ", ".join(f"{d.index}: {d.name}" for d in list_input_devices()) or "none")
    mic = MicrophoneSource(device=device, chunk_ms=30)
    print(f"listening on {mic.device.name!r} at {mic.device_rate} Hz; speak, Ctrl+C to stop")
    pipeline = Pipeline(heads=("emotion",), end_hangover_ms=400)
    for event in pipeline.run(mic):
        if event.type == "speech_start":
            print(f"[{event.t:6.1f}s] speaking…")
        elif event.type == "prediction" and event.final:
            print(f"[{event.t:6.1f}s] {event.head}: {event.label} ({event.confidence:.2f})")
        elif event.type == "overflow":
            print(f"[{event.t:6.1f}s] dropped {event.dropped_samples} samples (the machine is too slow)")
except KeyboardInterrupt:
    pass
except EdgeparaError as err:  # no device, unknown device, device unplugged: one line, no traceback
    sys.exit(f"error: {err}")
