"""`edgepara enroll`: a speaker profile from files or a microphone recording."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .assets import DEFAULT_MODEL
from .errors import EdgeparaError, ProfileError, UsageError
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


# What makes enrollment speech poor, measured per recording: samples at full scale (clipping distorts the voice
# the profile keeps), a loud part (95th percentile of 30 ms frame levels) too low for the voice to stand out
# from the noise floor, and speech filling too little of the recording (the rest is room, not the person).
CLIPPED_SHARE_MAX = 0.001
LOUD_LEVEL_MIN_DBFS = -50.0  # below every corpus here (RAVDESS studio speech: 1st percentile -48 dBFS)
SPEECH_SHARE_MIN = 0.2
_FRAME = 480  # 30 ms at 16 kHz


def recording_quality(path) -> dict:
    """{seconds, clipped_share, loud_level_dbfs} of one file, read block by block (memory stays flat)."""
    from .audio import audio_file_blocks

    samples, clipped, levels, rest = 0, 0, [], np.zeros(0, np.int16)
    for block in audio_file_blocks(path):
        samples += len(block)
        clipped += int(np.count_nonzero(np.abs(block.astype(np.int32)) >= 32767))
        block = np.concatenate([rest, block])
        n = len(block) // _FRAME * _FRAME
        frames = block[:n].astype(np.float64).reshape(-1, _FRAME)
        levels.append(np.sqrt(np.mean(frames ** 2, axis=1)))
        rest = block[n:]
    rms = np.concatenate(levels) if levels else np.zeros(1)
    loud = float(np.percentile(rms, 95)) if len(rms) else 0.0
    return {"seconds": samples / 16000, "clipped_share": clipped / max(samples, 1),
            "loud_level_dbfs": 20 * math.log10(loud / 32768) if loud > 0 else -120.0}


def enrollment_warnings(files, speech_seconds) -> list[str]:
    """One line per recording that is clipped, too quiet, or mostly not speech."""
    out = []
    for path, speech in zip(files, speech_seconds):
        q = recording_quality(path)
        name = Path(path).name
        if q["clipped_share"] > CLIPPED_SHARE_MAX:
            out.append(f"{name}: {q['clipped_share']:.1%} of the samples are clipped (at most "
                       f"{CLIPPED_SHARE_MAX:.1%} expected): record further from the microphone or lower its gain")
        if q["loud_level_dbfs"] < LOUD_LEVEL_MIN_DBFS:
            out.append(f"{name}: the speech peaks at {q['loud_level_dbfs']:.0f} dBFS (at least "
                       f"{LOUD_LEVEL_MIN_DBFS:.0f} expected): speak closer to the microphone or raise its gain")
        if q["seconds"] > 0 and speech / q["seconds"] < SPEECH_SHARE_MIN:
            out.append(f"{name}: speech fills {speech / q['seconds']:.0%} of the recording (at least "
                       f"{SPEECH_SHARE_MIN:.0%} expected): the profile rests on {speech:.1f} s of voice")
    return out


def enroll(name: str, files: list[str], seconds: float | None = None, model: str = DEFAULT_MODEL,
           profiles=None, device=None, warn=None):
    """Enrolls `name` from audio files (or `seconds` recorded from the microphone); `warn(line)` gets one line
    per recording that is clipped, too quiet or mostly not speech (default: logged as warnings)."""
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
            problems = enrollment_warnings([path], result.speech_seconds)
    else:
        result = embed_files(files, embedder=embedder)
        problems = enrollment_warnings(files, result.speech_seconds)
    # the store checks the minimum on the profile's total, so a short clip can top up an existing speaker
    profile = store.add(name, result.embeddings, float(result.speech_seconds.sum()), embedder.card)
    for line in problems + alike_warnings(store.scan()[0], embedder.card, name):  # readable profiles only
        (warn or _log_warning)(line)
    return profile


def alike_warnings(profiles: list, embedder_card: dict, name: str | None = None) -> list[str]:
    """Lines for the enrolled people among `profiles` (a store's readable ones) that the model's speaker head,
    deciding as `listen` does by default, could take for each other (only pairs with `name`); none when that
    head cannot be built (listen says why)."""
    from .speaker import SpeakerHead

    profiles = [p for p in profiles if p.matches_model(embedder_card)]
    try:
        return SpeakerHead.for_model(profiles, embedder_card).alike_warnings(name) if len(profiles) > 1 else []
    except EdgeparaError:
        return []


def _log_warning(line: str) -> None:
    import logging

    logging.getLogger(__name__).warning("edgepara: warning: %s", line)
