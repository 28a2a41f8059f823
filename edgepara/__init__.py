"""edgepara: real-time paralinguistics (emotion, speaker, face mask) on small devices.

One quantized student network turns each window of speech into an embedding; tiny heads share it.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Pipeline", "EventStream", "PipelineStats", "Embedder", "ProbeHead", "SpeakerHead", "load_speaker_head",
    "ProfileStore", "embed_files", "read_audio",
    "SpeechStart", "SpeechEnd", "Prediction", "Overflow", "SpeakerChange", "EdgeparaError",
]

_LAZY = {
    "Pipeline": "edgepara.stream.pipeline",
    "EventStream": "edgepara.stream.events",
    "PipelineStats": "edgepara.stream.pipeline",
    "Embedder": "edgepara.runtime",
    "ProbeHead": "edgepara.heads",
    "SpeakerHead": "edgepara.speaker",
    "load_speaker_head": "edgepara.speaker",
    "ProfileStore": "edgepara.profiles",
    "embed_files": "edgepara.embed",
    "read_audio": "edgepara.audio",
    "SpeechStart": "edgepara.types",
    "SpeechEnd": "edgepara.types",
    "Prediction": "edgepara.types",
    "Overflow": "edgepara.types",
    "SpeakerChange": "edgepara.types",
    "EdgeparaError": "edgepara.errors",
}


def __getattr__(name: str):
    # Lazy, so `import edgepara` stays cheap and never loads an interpreter or sounddevice it does not need.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgepara' has no attribute {name!r}")
