"""Face-mask simulator: filter clean speech with measured attenuation curves (simulated, not recorded)."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve, firwin2

from ..types import SAMPLE_RATE
MASK_TYPES = ("surgical", "CottonJersey2L", "CottonPlain2L", "CottonDenim2L")
HELD_OUT_MASK = "CottonPlain2L"  # never in the mask head's training data, nor heard in distillation
N_TAPS = 1025  # long enough to follow the 315 Hz spacing of the curve points within 1 dB


def curves_path(root: Path) -> Path:
    return Path(root) / "masks" / "curves.csv"


@lru_cache(maxsize=4)
def load_curves(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mask_type -> (freq_hz, attenuation_db), sorted by frequency."""
    table: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            table.setdefault(row["mask_type"], []).append((float(row["freq_hz"]), float(row["attenuation_db"])))
    return {k: (np.array([p[0] for p in v]), np.array([p[1] for p in v])) for k, v in ((k, sorted(v)) for k, v in table.items())}


def design_filter(freq_hz: np.ndarray, atten_db: np.ndarray, n_taps: int = N_TAPS) -> np.ndarray:
    """Linear-phase FIR whose gain follows the curve, interpolated in dB, holding the last value to Nyquist."""
    grid = np.linspace(0.0, SAMPLE_RATE / 2, 513)
    gain_db = np.interp(grid, freq_hz, atten_db)  # np.interp holds the end values outside the points
    return firwin2(n_taps, grid, 10.0 ** (gain_db / 20.0), fs=SAMPLE_RATE)


def apply_mask(audio: np.ndarray, freq_hz: np.ndarray, atten_db: np.ndarray,
               rng: np.random.Generator | None = None, level_jitter: float = 0.2, point_jitter_db: float = 1.0,
               n_taps: int = N_TAPS) -> np.ndarray:
    """Filter int16 audio through one mask curve. With rng, the curve's depth and each point vary a little,
    because real masks and fits differ from the measured one. Returns int16, time-aligned with the input."""
    db = atten_db.copy()
    if rng is not None:
        db = db * (1.0 + rng.uniform(-level_jitter, level_jitter)) + rng.normal(0.0, point_jitter_db, db.shape) * (db < 0)
        db = np.minimum(db, 0.0)
    taps = design_filter(freq_hz, db, n_taps)
    x = audio.astype(np.float32)
    y = fftconvolve(x, taps)[(n_taps - 1) // 2 : (n_taps - 1) // 2 + len(x)]
    return np.clip(y, -32768, 32767).astype(np.int16)
