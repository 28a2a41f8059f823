"""Random, reproducible corruptions that widen the distillation data: the teachers label the corrupted
audio too, so the student learns to follow them under noise, level, speed, room and mask changes."""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, resample_poly

from .masks import apply_mask


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    exponent = rng.choice([0.0, 0.5, 1.0])
    noise = np.fft.irfft(spectrum / f**exponent, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-9)


def _room_impulse(rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path dominates
    return rir / np.sqrt(np.sum(rir**2))


def augment(audio: np.ndarray, rng: np.random.Generator, mask_curves: dict | None = None) -> np.ndarray:
    """int16 -> int16; each corruption is applied with some probability, in a physical order."""
    x = audio.astype(np.float32)
    if mask_curves and rng.random() < 0.3:
        name = rng.choice(sorted(mask_curves))
        x = apply_mask(x.astype(np.int16), *mask_curves[name], rng=rng, n_taps=257).astype(np.float32)
    if rng.random() < 0.4:
        factor = rng.choice([90, 95, 105, 110])  # speed (tempo and pitch) change by resampling
        x = resample_poly(x, 100, factor).astype(np.float32)
    if rng.random() < 0.3:
        x = fftconvolve(x, _room_impulse(rng))[: len(x)].astype(np.float32)
    if rng.random() < 0.5:
        speech_rms = np.sqrt(np.mean(x**2)) + 1e-6
        snr_db = rng.uniform(5.0, 30.0)
        x = x + _coloured_noise(len(x), rng) * speech_rms / 10 ** (snr_db / 20)
    x = x * 10 ** (rng.uniform(-12.0, 6.0) / 20)
    return np.clip(x, -32768, 32767).astype(np.int16)
