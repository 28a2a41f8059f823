"""Resampling and down-mixing at the source boundary: any rate, any channels -> 16 kHz mono int16.

One streaming resampler serves every source (file, stdin, iterable, microphone), so a file read whole, a
file read in blocks and the same audio arriving live give the same samples. Numpy only: importing
scipy.signal would cost ~80 MB of resident memory, more than the rest of the live path together.
"""
from __future__ import annotations

from math import gcd

import numpy as np

from .types import SAMPLE_RATE
from .errors import AudioError


def lowpass_taps(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter scipy.signal.resample_poly designs for up/down (its firwin with a Kaiser
    window, beta 5, 10 zero crossings per side, unit gain at DC), before its gain of `up`."""
    max_rate = max(up, down)
    half = 10 * max_rate
    m = np.arange(2 * half + 1) - half
    h = np.sinc(m / max_rate) / max_rate * np.kaiser(2 * half + 1, 5.0)
    return h / h.sum()


class StreamingResampler:
    """Polyphase FIR resampler that carries its input history between calls.

    The filter is the one scipy.signal.resample_poly designs, and output n sits at input time
    n * in_rate / out_rate, as in resample_poly, so process(a) + process(b) + flush() equals
    resample_poly(a + b) for any split (exactly, in the same dtype). Each output is the same sum of the same
    products in the same order whatever the split, so different block sizes give bit-identical outputs.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE, dtype=np.float64):
        if int(in_rate) <= 0 or int(out_rate) <= 0:
            raise AudioError(f"expected positive sample rates, got {in_rate} Hz -> {out_rate} Hz")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.dtype = np.dtype(dtype)
        g = gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.passthrough = self.up == self.down == 1
        if self.passthrough:
            self._taps, self._half = 1, 0
            self.reset()
            return
        self._half = 10 * max(self.up, self.down)
        # the taps are rounded to the working dtype before the gain, as resample_poly does
        h = lowpass_taps(self.up, self.down).astype(self.dtype) * self.dtype.type(self.up)
        self._taps = -(-len(h) // self.up)  # input samples under the filter for one output
        padded = np.zeros(self._taps * self.up, self.dtype)
        padded[: len(h)] = h
        # _by_age[j, phase] = h[phase + j * up]: the tap applied to the input j samples older than the newest
        self._by_age = padded.reshape(self._taps, self.up).copy()
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self._taps - 1, self.dtype)  # the silence before the stream starts
        self._buf_start = -(self._taps - 1)  # absolute input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    def process(self, x) -> np.ndarray:
        """float samples in -> samples of the working dtype out (fewer or more than in, depending on the ratio).

        Each output is accumulated from its oldest input to its newest, one product at a time in the working
        dtype: the order scipy's upfirdn uses, so float32 input gives resample_poly's float32 result bit for
        bit, whatever the block sizes."""
        x = np.asarray(x, dtype=self.dtype).reshape(-1)
        if self.passthrough:
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        t0 = self._n_out * self.down + self._half  # output position on the up-sampled grid
        count = max(0, -(-(self._n_in * self.up - t0) // self.down))
        t = t0 + self.down * np.arange(count)
        newest = t // self.up - self._buf_start
        phase = t % self.up
        y = np.zeros(count, self.dtype)
        for age in range(self._taps - 1, -1, -1):
            y += self._buf[newest - age] * self._by_age[age, phase]
        self._n_out += count
        keep_from = min(((self._n_out * self.down + self._half) // self.up) - (self._taps - 1), self._n_in)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return y

    def flush(self) -> np.ndarray:
        """The last outputs, which need input past the end (zeros); then ready for a new stream."""
        if self.passthrough:
            return np.zeros(0, self.dtype)
        total = -(-self._n_in * self.up // self.down)
        missing = total - self._n_out
        if missing <= 0:
            self.reset()
            return np.zeros(0, self.dtype)
        last_t = (total - 1) * self.down + self._half
        y = self.process(np.zeros(max(0, last_t // self.up + 1 - self._n_in)))[:missing]
        self.reset()
        return y


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """[-1, 1) floats -> int16, the scaling every source uses, so a file and a stream of it agree."""
    return (np.clip(x, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)


class BoundaryConverter:
    """(n,) or (n, channels) blocks of any numeric dtype at any rate -> int16 mono at out_rate (16 kHz),
    statefully. channel=None down-mixes (mean); an int picks that channel."""

    def __init__(self, rate: int, channels: int = 1, channel: int | None = None, out_rate: int = SAMPLE_RATE):
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 1000 <= rate <= 768000:
            raise AudioError(f"expected a sample rate in Hz between 1000 and 768000, got {rate!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise AudioError(f"expected a channel count >= 1, got {channels!r}")
        if channel is not None and not 0 <= channel < channels:
            raise AudioError(f"expected a channel index in 0..{channels - 1}, got {channel}")
        self.rate, self.channels, self.channel = int(rate), int(channels), channel
        # float32, like the decoded blocks: the same arithmetic as resample_poly on a whole float32 file
        self.resampler = StreamingResampler(self.rate, out_rate, dtype=np.float32)

    def __call__(self, block) -> np.ndarray:
        x = np.asarray(block)
        if x.ndim == 1 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise AudioError(f"expected audio blocks of shape (n, {self.channels}), got {x.shape}")
        if x.dtype.kind not in "iuf":
            raise AudioError(f"expected numeric audio samples, got dtype {x.dtype}")
        if x.dtype == np.int16 and self.resampler.passthrough:  # already past-boundary format: stay exact
            if self.channel is not None or self.channels == 1:
                return np.ascontiguousarray(x[:, self.channel or 0])
        if x.dtype.kind in "iu":
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
        if not np.all(np.isfinite(x)):
            raise AudioError(f"expected finite audio samples, got {int(np.sum(~np.isfinite(x)))} NaN/inf values")
        mono = x.mean(axis=1) if self.channel is None else x[:, self.channel]
        return float_to_int16(self.resampler.process(mono))

    def flush(self) -> np.ndarray:
        return float_to_int16(self.resampler.flush())
