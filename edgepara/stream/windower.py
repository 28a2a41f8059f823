"""Cuts speech into model windows; a short or trailing piece is flushed as one zero-padded window."""
from __future__ import annotations

import numpy as np


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start offsets of the windows that cover n_samples: regular hops, plus one window ending at the last
    sample when the hops leave a tail. Audio shorter than a window gets one window at 0 (to be padded)."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def offline_windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """All windows of an utterance, shape (n, window), int16, zero-padded where audio is short."""
    if len(audio) < window:
        audio = np.pad(audio, (0, window - len(audio)))
    return np.stack([audio[s : s + window] for s in window_starts(len(audio), window, hop)])
