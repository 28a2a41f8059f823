"""The live path as a loop over stages: vad -> windower -> embedder + heads -> smoother -> events.

Files, stdin, iterables and microphones all go through the same `process(chunk)`, so offline and live
results agree, and the chunk size never changes them.
"""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import EdgeparaError
from ..types import Overflow, SpeechEnd, SpeechStart, Window
from .smoother import ScoredWindow, Smoother
from .vad import SAMPLE_RATE, VadGate, check_chunk
from .windower import Windower

SILENCE_DBFS = -120.0


@dataclass
class PipelineStats:
    """What a dashboard shows; updated in place as the pipeline runs."""

    level_dbfs: float = SILENCE_DBFS  # RMS level of the last chunk
    vad_active: bool = False
    utterance: int | None = None  # the utterance being spoken now, if any
    utterances: int = 0  # finished so far
    windows_embedded: int = 0
    last_latency_ms: float = 0.0  # embedder time of the last window
    median_latency_ms: float = 0.0  # over the last 100 windows
    dropped_samples: int = 0
    audio_seconds: float = 0.0
    _latencies: deque = field(default_factory=lambda: deque(maxlen=100), repr=False)

    def add_latency(self, ms: float) -> None:
        self._latencies.append(ms)
        self.windows_embedded += 1
        self.last_latency_ms = ms
        self.median_latency_ms = statistics.median(self._latencies)


def level_dbfs(chunk: np.ndarray) -> float:
    if len(chunk) == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * np.log10(rms / 32768.0)) if rms > 0 else SILENCE_DBFS


def load_heads(heads: Iterable, embedder_card: dict) -> list:
    """Names or paths are loaded as probe heads checked against the model; objects are used as they are."""
    from ..heads import ProbeHead

    if isinstance(heads, str):
        heads = (heads,)
    loaded = []
    for head in heads:
        if isinstance(head, (str, bytes)) or hasattr(head, "__fspath__"):
            head = ProbeHead.load(str(head), embedder_card)
        elif not (hasattr(head, "name") and callable(getattr(head, "probabilities", None))):
            raise EdgeparaError(f"expected a head name, path, or object with .name and .probabilities(), "
                                f"got {type(head).__name__}")
        loaded.append(head)
    names = [h.name for h in loaded]
    if len(set(names)) != len(names):
        raise EdgeparaError(f"expected distinct head names, got {names}")
    return loaded


class Pipeline:
    def __init__(self, model: str = "edgepara-small", heads: Iterable = ("emotion",), *,
                 vad_aggressiveness: int = 2, frame_ms: int = 30, end_hangover_ms: int = 300,
                 min_speech_ms: int = 200, max_utterance_s: float = 10.0, threads: int = 1,
                 edgetpu: bool = False, smoothing: float = 0.5, uncertain_below: float = 0.4,
                 callbacks: Iterable[Callable] = (), embedder=None):
        if embedder is None:
            from ..runtime import Embedder

            embedder = Embedder(model, threads=threads, edgetpu=edgetpu)
        rate = int(getattr(embedder, "sample_rate", embedder.card.get("sample_rate", SAMPLE_RATE)))
        if rate != SAMPLE_RATE:
            raise EdgeparaError(f"expected a {SAMPLE_RATE} Hz model, got {embedder.name} at {rate} Hz")
        self.embedder = embedder
        self.heads = load_heads(heads, embedder.card)
        self.vad = VadGate(aggressiveness=vad_aggressiveness, frame_ms=frame_ms, end_hangover_ms=end_hangover_ms,
                           min_speech_ms=min_speech_ms)
        self.windower = Windower(embedder.window, embedder.hop, max_utterance_s=max_utterance_s)
        self.smoother = Smoother(self.heads, smoothing=smoothing, uncertain_below=uncertain_below)
        self.callbacks = list(callbacks)
        self.reset()

    def reset(self) -> None:
        """A fresh stream: clock at 0, no utterance open, statistics cleared."""
        self.vad.reset()
        self.windower.reset()
        self.smoother.reset()
        self.stats = PipelineStats()
        self._samples = 0
        self._dropped_seen = 0

    def process(self, chunk) -> list:
        x = check_chunk(chunk)
        self._samples += len(x)
        self.stats.level_dbfs = level_dbfs(x)
        self.stats.audio_seconds = self._samples / SAMPLE_RATE
        return self._publish(self._after_vad(self.vad.process(x)))

    def flush(self) -> list:
        """End of stream: the open utterance (if any) ends and gets its final predictions."""
        items = self._after_vad(self.vad.flush())
        items += self._after_windower(self.windower.flush())
        return self._publish(items)

    def note_dropped(self, total_dropped: int) -> list:
        """Tell the pipeline how many samples the source has dropped in all; an Overflow event for new ones."""
        new = int(total_dropped) - self._dropped_seen
        if new <= 0:
            return []
        self._dropped_seen = int(total_dropped)
        self.stats.dropped_samples = self._dropped_seen
        return self._publish([Overflow(t=self._samples / SAMPLE_RATE, dropped_samples=new)])

    def run(self, source: Iterable) -> Iterator:
        """Events for a whole source, then the end-of-stream flush. Closes the source when done or abandoned
        (a microphone stops). Sources with `dropped_samples` (MicrophoneSource) produce Overflow events."""
        try:
            for chunk in source:
                yield from self.note_dropped(getattr(source, "dropped_samples", 0))
                yield from self.process(chunk)
            yield from self.flush()
        finally:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    def _after_vad(self, items: list) -> list:
        out = []
        for item in items:
            out += self._after_windower(self.windower.process(item))
        return out

    def _after_windower(self, items: list) -> list:
        out = []
        for item in items:
            if isinstance(item, Window):
                out += self.smoother.process(self._score(item))
            elif isinstance(item, SpeechStart):
                out.append(item)
                self.smoother.process(item)
            elif isinstance(item, SpeechEnd):
                self.stats.utterances += 1
                out.append(item)
                out += self.smoother.process(item)  # the final predictions follow their SpeechEnd
        return out

    def _score(self, window: Window) -> ScoredWindow:
        embedding, ms = self.embedder.timed_embed(window.samples)
        self.stats.add_latency(ms)
        probs = {head.name: head.probabilities(embedding) for head in self.heads}
        return ScoredWindow(window=window, probs=probs, latency_ms=ms)

    def _publish(self, events: list) -> list:
        self.stats.vad_active = self.vad.active
        self.stats.utterance = self.windower.utterance
        for event in events:
            for callback in self.callbacks:
                callback(event)
        return events
