"""`edgepara enroll`: a speaker profile from files or a microphone recording."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .assets import DEFAULT_MODEL
from .errors import ProfileError, UsageError
from .profiles import ProfileStore, validate_name


def check_record_seconds(value) -> float:
    """`--seconds` as a float: a positive, finite number (text as typed on the command line, or a number)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"expected a positive finite number of seconds to record (--seconds), got {value!r}")
    return seconds


def record_microphone(seconds: float, device=None) -> np.ndarray:
    from .stream.source import MicrophoneSource

    mic = MicrophoneSource(device=device)
    chunks, need = [], int(seconds * 16000)
    deadline = time.monotonic() + seconds + 5.0
    try:
        for chunk in mic:
            chunks.append(chunk)
            if sum(len(c) for c in chunks) >= need or time.monotonic() > deadline:
                break
    finally:
        mic.close()
    return np.concatenate(chunks)[:need] if chunks else np.zeros(0, np.int16)


def enroll(name: str, files: list[str], seconds: float | None = None, model: str = DEFAULT_MODEL,
           profiles=None, device=None):
    from .embed import embed_files
    from .runtime import Embedder

    store = ProfileStore(profiles)
    validate_name(name)  # before the model loads and the audio is embedded, not after
    if seconds is not None:
        seconds = check_record_seconds(seconds)
    elif not files:
        raise ProfileError("expected audio files or --seconds N to record from the microphone, got neither")
    embedder = Embedder(model)
    if seconds:
        import tempfile

        import soundfile as sf

        audio = record_microphone(seconds, device)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "enroll.wav"
            sf.write(path, audio, 16000, subtype="PCM_16")
            result = embed_files([path], embedder=embedder)
    else:
        result = embed_files(files, embedder=embedder)
    # the store checks the minimum on the profile's total, so a short clip can top up an existing speaker
    return store.add(name, result.embeddings, float(result.speech_seconds.sum()), embedder.card)
