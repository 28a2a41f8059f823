"""Cuts speech into model windows, offline (window_starts/offline_windows) and live (Windower), at the same
starts: regular hops plus one window ending at the last sample; audio shorter than a window is zero-padded."""
from __future__ import annotations

import numpy as np

from ..errors import EdgeparaError
from ..types import SAMPLE_RATE, SpeechEnd, SpeechStart, Window
from .vad import SpeechAudio


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


class Windower:
    """Streaming stage: VAD items in; SpeechStart, Window and SpeechEnd out.

    Windows start at 0, hop, 2*hop, … inside each utterance, and at speech end the tail gets one more
    window, exactly as window_starts() places them offline, so live and offline embeddings agree. The
    windower owns the public utterance numbers: an utterance longer than max_utterance_s is ended there
    (its tail flushed, SpeechEnd) and the rest of the speech continues as the next utterance.
    """

    def __init__(self, window: int, hop: int, max_utterance_s: float | None = 10.0, sample_rate: int = SAMPLE_RATE):
        if window <= 0 or not 0 < hop <= window:
            raise EdgeparaError(f"expected window > 0 and 0 < hop <= window samples, got window={window}, hop={hop}")
        self.window, self.hop, self.sample_rate = int(window), int(hop), int(sample_rate)
        if max_utterance_s is None or max_utterance_s == float("inf"):
            self.max_samples = None
        else:
            self.max_samples = int(round(max_utterance_s * sample_rate))
            if self.max_samples < self.window:
                raise EdgeparaError(f"expected max_utterance_s >= one window ({self.window / sample_rate:.2f} s), "
                                 f"got {max_utterance_s}")
        self.reset()

    def reset(self) -> None:
        self._next_utterance = 0
        self._open = False  # inside an utterance of ours
        self._split_pending = False  # ours ended at max length while the VAD's speech goes on
        self._start_next_at = 0.0
        self._utterance = -1
        self._begin(0.0)

    @property
    def utterance(self) -> int | None:
        return self._utterance if self._open else None

    def process(self, item) -> list:
        if isinstance(item, SpeechStart):
            out = self._close() if self._open else []
            self._split_pending = False
            return out + [self._open_utterance(item.t)]
        if isinstance(item, SpeechAudio):
            return self._add(item)
        if isinstance(item, SpeechEnd):
            self._split_pending = False
            return self._close() if self._open else []
        return [item]

    def flush(self) -> list:
        """End of stream without a SpeechEnd (the VAD's flush normally sends one)."""
        self._split_pending = False
        return self._close() if self._open else []

    def _begin(self, t0: float) -> None:
        self._t0 = t0
        self._buf = np.zeros(0, np.int16)
        self._buf_offset = 0  # utterance sample index of _buf[0]
        self._length = 0
        self._next_start = 0

    def _open_utterance(self, t: float):
        self._utterance = self._next_utterance
        self._next_utterance += 1
        self._open = True
        self._begin(t)
        return SpeechStart(t=t, utterance=self._utterance)

    def _add(self, piece) -> list:
        out = []
        samples = piece.samples
        while len(samples):
            if not self._open:
                if not self._split_pending:
                    return out  # audio outside any utterance: nothing to window
                out.append(self._open_utterance(self._start_next_at))
                self._split_pending = False
            room = len(samples) if self.max_samples is None else self.max_samples - self._length
            take, samples = samples[:room], samples[room:]
            out += self._append(take)
            if self.max_samples is not None and self._length >= self.max_samples:
                out += self._close()
                self._split_pending = True
                self._start_next_at = self._t0 + self._length / self.sample_rate
        return out

    def _append(self, samples: np.ndarray) -> list:
        self._buf = np.concatenate([self._buf, samples])
        self._length += len(samples)
        out = []
        while self._next_start + self.window <= self._length:
            out.append(self._window(self._next_start, final=False))
            self._next_start += self.hop
        # keep what the next regular window or a tail window ending at the last sample can still need
        keep_from = max(0, min(self._next_start, self._length - self.window))
        if keep_from > self._buf_offset:
            self._buf = self._buf[keep_from - self._buf_offset :]
            self._buf_offset = keep_from
        return out

    def _close(self) -> list:
        out = []
        n = self._length
        if 0 < n < self.window:
            out.append(self._window(0, final=True))  # zero-padded, like offline_windows
        elif self._next_start - self.hop + self.window < n:
            out.append(self._window(n - self.window, final=True))
        duration = n / self.sample_rate
        out.append(SpeechEnd(t=self._t0 + duration, utterance=self._utterance, duration=round(duration, 6)))
        self._open = False
        self._begin(self._t0 + duration)
        return out

    def _window(self, start: int, final: bool):
        piece = self._buf[start - self._buf_offset : start - self._buf_offset + self.window]
        end = start + len(piece)
        if len(piece) < self.window:
            piece = np.pad(piece, (0, self.window - len(piece)))
        return Window(t_start=self._t0 + start / self.sample_rate, t_end=self._t0 + end / self.sample_rate,
                      utterance=self._utterance, samples=piece, final=final)
