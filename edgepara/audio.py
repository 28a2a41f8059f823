"""Decoding and format conversion at the source boundary: past this, audio is 16 kHz mono int16."""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000


def to_mono_int16(data: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Down-mix (mean of channels) and resample once; returns int16 mono at target_rate."""
    x = np.asarray(data)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.dtype.kind == "f" else x.astype(np.float32).mean(axis=1)
    elif x.ndim != 1:
        raise AudioError(f"expected mono (n,) or multichannel (n, channels) audio, got shape {x.shape}")
    if x.dtype == np.int16 and rate == target_rate:
        return x
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(np.iinfo(np.asarray(data).dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"expected finite audio samples, got {int(np.sum(~np.isfinite(x)))} NaN/inf values")
    if rate != target_rate:
        from scipy.signal import resample_poly

        g = gcd(int(rate), target_rate)
        x = resample_poly(x, target_rate // g, int(rate) // g).astype(np.float32)
    return (np.clip(x, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)


def read_audio(path: str | Path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any file soundfile can decode (wav, flac, ogg, …) -> int16 mono at target_rate."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"expected an audio file, got no file at {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as err:  # soundfile raises several types for undecodable input
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudioError(f"expected a wav/flac/ogg audio file, could not decode {path}: {reason}") from None
    if data.size == 0:
        raise AudioError(f"expected audio samples, got an empty file: {path}")
    try:
        return to_mono_int16(data, rate, target_rate)
    except AudioError as err:  # name the file: in a batch, "NaN values" alone does not say which one
        raise AudioError(f"{path}: {err}") from None
