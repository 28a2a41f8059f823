"""Bounded int16 ring buffer between the audio callback (one producer) and the pipeline (one consumer).

`write` never blocks and never allocates: it runs inside the audio callback. When the consumer falls
behind and the ring is full, the OLDEST audio is dropped and counted. Dropping old audio keeps the
latency bounded by the ring size, so once the consumer catches up its predictions describe what is
being said now rather than something said seconds ago; dropping new audio would instead keep the
pipeline permanently behind by a full ring.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import AudioError


class RingBuffer:
    """(capacity, channels) int16 frames; a short lock guards the indices (the copies are tiny)."""

    def __init__(self, capacity: int, channels: int = 1):
        if int(capacity) <= 0:
            raise ValueError(f"expected a positive ring capacity in frames, got {capacity}")
        if int(channels) <= 0:
            raise ValueError(f"expected at least 1 channel, got {channels}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.int16)
        self._read = 0  # absolute frame counters; index = counter % capacity
        self._write = 0
        self.dropped_samples = 0  # frames lost to overflow since creation (or reset)
        self._woken = False
        self._cond = threading.Condition(threading.Lock())

    def __len__(self) -> int:
        with self._cond:
            return self._write - self._read

    def write(self, frames: np.ndarray) -> int:
        """Copies frames in; returns how many old frames were dropped to make room."""
        x = np.asarray(frames)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise AudioError(f"expected ring frames of shape (n, {self.channels}), got {np.shape(frames)}")
        if x.dtype != np.int16:
            raise AudioError(f"expected int16 ring frames, got {x.dtype}")
        n = len(x)
        if n > self.capacity:  # only the newest capacity frames can survive anyway
            skipped = n - self.capacity
            x, n = x[skipped:], self.capacity
        else:
            skipped = 0
        with self._cond:
            start = self._write % self.capacity
            first = min(n, self.capacity - start)
            self._data[start : start + first] = x[:first]
            self._data[: n - first] = x[first:]
            self._write += n
            overflow = max(0, self._write - self._read - self.capacity)
            self._read += overflow
            dropped = overflow + skipped
            self.dropped_samples += dropped
            self._cond.notify()
        return dropped

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """Everything available (up to max_frames) without waiting; shape (n, channels)."""
        with self._cond:
            return self._take(max_frames)

    def wait_read(self, min_frames: int, timeout: float, max_frames: int | None = None) -> np.ndarray | None:
        """Waits until at least min_frames are there; None on timeout (the caller decides if that is a stall).
        Returns fewer frames (possibly none) when wake() was called meanwhile."""
        min_frames = min(int(min_frames), self.capacity)
        with self._cond:
            ready = self._cond.wait_for(lambda: self._woken or self._write - self._read >= min_frames, timeout)
            self._woken = False
            return self._take(max_frames) if ready else None

    def wake(self) -> None:
        """Wakes a waiting reader (e.g. when the stream stops) so it can look at the stream's state."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self._read = self._write = 0
            self.dropped_samples = 0

    def _take(self, max_frames: int | None) -> np.ndarray:
        n = self._write - self._read
        if max_frames is not None:
            n = min(n, int(max_frames))
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out = np.concatenate([self._data[start : start + first], self._data[: n - first]])
        self._read += n
        return out
