"""Log-mel frontend in numpy.

It runs outside the model on purpose: an in-graph STFT stays float and would block a fully integer
model (and the Edge TPU). Every parameter comes from the model card's "frontend" section.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 60.0
    f_max: float = 7600.0
    log_floor: float = 1e-4

    @classmethod
    def from_card(cls, card_frontend: dict) -> "FrontendConfig":
        """Every field must be in the card: a silent default here would feed the model other features."""
        fields = list(cls.__dataclass_fields__)
        missing = [k for k in fields if k not in card_frontend]
        if missing:
            from .errors import ModelError

            raise ModelError(f"expected frontend fields {', '.join(missing)} in the model card, got none")
        return cls(**{k: card_frontend[k] for k in fields})

    def to_card(self) -> dict:
        return asdict(self)

    def n_frames(self, n_samples: int) -> int:
        return 1 + (n_samples - self.n_fft) // self.hop_length


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Triangular HTK-mel filters, shape (n_mels, n_fft // 2 + 1), peak 1 (no area normalisation)."""
    fft_hz = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


class LogMel:
    """int16 or float audio (one window) -> float32 log-mel, shape (n_frames, n_mels)."""

    def __init__(self, cfg: FrontendConfig):
        self.cfg = cfg
        # Periodic Hann of win_length, centred in an n_fft frame (the usual STFT convention).
        n = np.arange(cfg.win_length)
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / cfg.win_length)
        pad = (cfg.n_fft - cfg.win_length) // 2
        self.window = np.zeros(cfg.n_fft, dtype=np.float32)
        self.window[pad : pad + cfg.win_length] = hann
        self.filters_t = mel_filterbank(cfg).T.copy()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio)
        n_frames = self.cfg.n_frames(len(x))
        if n_frames < 1:
            raise ValueError(f"expected at least {self.cfg.n_fft} samples, got {len(x)}")
        return self._frames(x, 0, n_frames)

    def _frames(self, x: np.ndarray, first: int, end: int) -> np.ndarray:
        """Log-mel of frames first..end-1 of x."""
        hop, n_fft = self.cfg.hop_length, self.cfg.n_fft
        samples = np.ascontiguousarray(x[first * hop : (end - 1) * hop + n_fft], dtype=np.float32)
        if x.dtype == np.int16:
            samples /= 32768.0
        frames = as_strided(samples, shape=(end - first, n_fft), strides=(hop * 4, 4), writeable=False)
        spectrum = np.fft.rfft(frames * self.window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return np.log(power @ self.filters_t + self.cfg.log_floor).astype(np.float32)


class OverlappingLogMel(LogMel):
    """LogMel for a stream of windows that overlap by `window - hop` samples (the live pipeline's windows).
    When a window starts `hop` samples after the previous one and repeats its samples, the frames they share
    are copied instead of computed again: with 1 s windows every 0.5 s, half the work. Any other window
    (the first, a shifted final one) is computed whole. Not thread-safe: one per stream."""

    def __init__(self, cfg: FrontendConfig, hop: int):
        super().__init__(cfg)
        self.hop = int(hop)
        self._reusable = self.hop > 0 and self.hop % cfg.hop_length == 0
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio)
        out = None
        prev = self._previous
        if self._reusable and prev is not None and len(prev[0]) == len(x) and prev[0].dtype == x.dtype \
                and len(x) > self.hop and np.array_equal(x[: len(x) - self.hop], prev[0][self.hop :]):
            shift = self.hop // self.cfg.hop_length
            n_frames = len(prev[1])
            if shift < n_frames:
                out = np.empty_like(prev[1])
                out[: n_frames - shift] = prev[1][shift:]
                out[n_frames - shift :] = self._frames(x, n_frames - shift, n_frames)
        if out is None:
            out = super().__call__(x)
        self._previous = (x.copy(), out)
        return out.copy()


def band_shape(mel: np.ndarray) -> np.ndarray:
    """A window's spectral shape: its mean log-mel per band less the mean over the bands, so loudness drops out.
    A face mask's loss of high frequencies shows here; the student, taught to hear through rooms and codecs,
    keeps little of it (the mask head reads both)."""
    bands = np.asarray(mel, np.float32).mean(axis=0)
    return bands - bands.mean()
