"""Terminal dashboard for a running pipeline.

The processing loop calls `update(events)` and `set_stats(stats)`; both only change a little state under a
lock. Drawing happens on rich's own refresh thread (`live()`), which asks `render()` for a fresh view a few
times a second, so a slow terminal never holds up the audio path.

This module holds the state; `dashboard_view` the view, which adapts to the terminal it is drawn on: the
number of probability bars per head and of history rows is chosen to fit the height, and where the width
allows the heads sit side by side, each with its own bars.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.live import Live

from .dashboard_view import DashboardView, PanelCache, PipelineFigures, UtteranceRecord, format_clock
from .stream.pipeline import PipelineStats
from .types import SAMPLE_RATE, Event, Overflow, Prediction, SpeechEnd, SpeechStart, event_from_dict

# ----------------------------------------------------------------------------------------------- state


class CpuMeter:
    """Process CPU time as a percentage of one core, measured between successive samples.

    Samples closer together than `min_interval` return the previous reading: two renders in quick
    succession would otherwise give a noisy figure from a few microseconds of clock.
    """

    def __init__(self, min_interval: float = 0.2):
        self.min_interval = min_interval
        self._last_wall = time.perf_counter()
        self._last_cpu = time.process_time()
        self._percent: float | None = None

    def sample(self) -> float | None:
        wall, cpu = time.perf_counter(), time.process_time()
        elapsed = wall - self._last_wall
        if elapsed >= self.min_interval:
            self._percent = 100.0 * (cpu - self._last_cpu) / elapsed
            self._last_wall, self._last_cpu = wall, cpu
        return self._percent


# ------------------------------------------------------------------------------------------- dashboard


class Dashboard:
    def __init__(
        self,
        model_name: str,
        heads: list[str],
        source_desc: str,
        console: Console | None = None,
        history: int = 8,
        backend: str | None = None,
        sample_rate: int = SAMPLE_RATE,
        class_counts: dict[str, int] | None = None,
        status=None,
    ):
        """`class_counts` (head -> number of classes), when known up front, sizes the layout from the first
        frame, so it does not jump when the first prediction arrives. `status()`, when given, returns a short
        line for the header at each refresh (e.g. the MQTT sink's connection and drop counts)."""
        if history < 0:
            raise ValueError(f"expected history >= 0, got {history}")
        self.model_name = model_name
        self.source_desc = source_desc
        self.backend = backend
        self.console = console or Console()
        self.history = history
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._heads = list(heads)
        self._class_counts: dict[str, int] = dict(class_counts or {})
        self._scrolled_off: list[UtteranceRecord] = []  # finished utterances no longer in the history panel
        self._utterances: OrderedDict[int, UtteranceRecord] = OrderedDict()
        self._current: int | None = None  # the utterance the middle panel shows (live, or last finished)
        self._speech_from_events = False
        self._overflows = 0
        self._dropped_from_events = 0
        self._latest_t = 0.0
        self._latencies: deque[float] = deque(maxlen=64)
        self._stats = None
        self._cpu = CpuMeter()
        self._panels = PanelCache()
        self._status = status

    # --- called from the processing loop: keep cheap ---

    def update(self, events: Iterable[Event | dict] | Event | dict) -> None:
        """Fold pipeline events into the state. Dicts as written by the JSONL sink are read with
        `event_from_dict`, so a log can be replayed; anything else that is not an event is ignored."""
        if isinstance(events, dict | str | Event) or not isinstance(events, Iterable):
            events = [events]  # one event (or one thing to ignore)
        with self._lock:
            for event in events:
                if isinstance(event, dict):
                    event = event_from_dict(event)
                if isinstance(event, Event):
                    self._fold(event)

    def set_stats(self, stats: PipelineStats | None) -> None:
        """Latest `Pipeline.stats`; without them (e.g. replaying a log) the figures come from the events."""
        with self._lock:
            self._stats = stats

    def _fold(self, event: Event) -> None:
        self._latest_t = max(self._latest_t, float(event.t))
        if isinstance(event, SpeechStart):
            self._record(event.utterance, event.t)
            self._current = event.utterance
            self._speech_from_events = True
        elif isinstance(event, SpeechEnd):
            self._record(event.utterance, event.t - event.duration).duration = event.duration
            self._speech_from_events = False
        elif isinstance(event, Prediction):
            record = self._record(event.utterance, event.t)
            record.predictions[event.head] = event
            if event.head not in self._heads:
                self._heads.append(event.head)
            self._class_counts[event.head] = len(event.probs)
            if event.latency_ms:
                self._latencies.append(float(event.latency_ms))
            if self._current is None or event.utterance > self._current:
                self._current = event.utterance
        elif isinstance(event, Overflow):
            self._overflows += 1
            self._dropped_from_events += int(event.dropped_samples)

    def _record(self, number: int, start: float) -> UtteranceRecord:
        record = self._utterances.get(number)
        if record is None:
            record = self._utterances[number] = UtteranceRecord(number, start)
            # Keep the current utterance plus `history` finished ones; late finals may still land in those.
            # The oldest by number goes, so a straggler for a long-gone utterance cannot push out a new one.
            while len(self._utterances) > self.history + 1:
                self._scrolled_off.append(self._utterances.pop(min(self._utterances)))
        return record

    def scrolled_off_lines(self) -> list[str]:
        """One line per utterance that left the history panel, oldest first: printed after the live view ends
        (e.g. `listen --file` in a terminal), so no utterance's result is lost from view."""
        with self._lock:
            records = sorted(self._scrolled_off, key=lambda r: r.number)
        lines = []
        for record in records:
            results = "  ".join(f"{head} {p.label} {p.confidence:.0%}{'' if p.final else ' (live)'}"
                                for head, p in record.predictions.items())
            duration = f"{record.duration:.1f}s" if record.duration is not None else "-"
            lines.append(f"{record.number:4d}  {format_clock(record.start):>7s}  {duration:>5s}  {results or '—'}")
        return lines

    # --- called from the drawing thread ---

    def render(self) -> RenderableType:
        """A renderable snapshot of the current state; it lays itself out for whatever console draws it.
        Each call also samples process CPU use, which is how the footer's CPU figure follows the refresh."""
        cpu_percent = self._cpu.sample()
        with self._lock:
            current = self._utterances.get(self._current) if self._current is not None else None
            current = current.snapshot() if current else None
            finished = [r.snapshot() for r in self._utterances.values() if r.ended]
            heads = list(self._heads)
            class_counts = dict(self._class_counts)
            figures = self._figures(cpu_percent)
        finished.sort(key=lambda record: -record.number)
        return DashboardView(
            model_name=self.model_name,
            backend=self.backend,
            heads=heads,
            class_counts=class_counts,
            source_desc=self.source_desc,
            current=current,
            finished=finished[: self.history],
            history=self.history,
            figures=figures,
            panels=self._panels,
            status=self._status() if self._status else None,
        )

    def _figures(self, cpu_percent: float | None) -> PipelineFigures:
        stats = self._stats
        if stats is None:  # replaying events: what they carry
            latencies = list(self._latencies)
            return PipelineFigures(
                level_dbfs=None,
                vad_active=self._speech_from_events,
                last_latency_ms=latencies[-1] if latencies else None,
                median_latency_ms=statistics.median(latencies) if latencies else None,
                dropped_seconds=self._dropped_from_events / self.sample_rate,
                overflows=self._overflows,
                audio_seconds=self._latest_t,
                windows=None,
                cpu_percent=cpu_percent,
            )
        embedded = stats.windows_embedded > 0
        return PipelineFigures(
            level_dbfs=stats.level_dbfs,
            vad_active=stats.vad_active,
            last_latency_ms=stats.last_latency_ms if embedded else None,
            median_latency_ms=stats.median_latency_ms if embedded else None,
            dropped_seconds=stats.dropped_samples / self.sample_rate,
            overflows=self._overflows,
            audio_seconds=stats.audio_seconds,
            windows=stats.windows_embedded,
            cpu_percent=cpu_percent,
        )

    @contextmanager
    def live(self, refresh_per_second: float = 4, screen: bool = True) -> Iterator["Dashboard"]:
        """Draw on rich's refresh thread while the body runs; `screen=False` keeps the last frame in the
        terminal's scrollback instead of using the alternate screen."""
        with Live(
            console=self.console,
            get_renderable=self.render,
            auto_refresh=True,
            refresh_per_second=refresh_per_second,
            screen=screen,
            transient=False,
        ):
            yield self

