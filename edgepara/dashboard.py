"""Terminal dashboard for a running pipeline.

The processing loop calls `update(events)` and `set_stats(stats)`; both only change a little state under a
lock. Drawing happens on rich's own refresh thread (`live()`), which asks `render()` for a fresh view a few
times a second, so a slow terminal never holds up the audio path.

The view adapts to the terminal it is drawn on: the number of probability bars per head and of history rows
is chosen to fit the height, and where the width allows the heads sit side by side, each with its own bars.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.padding import Padding
from rich.segment import Segment, SegmentLines
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .types import SAMPLE_RATE, Prediction

DIMMED_LABELS = frozenset({"uncertain", "unknown"})
HEAD_STYLES = ("magenta", "cyan", "yellow", "green", "blue", "bright_red")
LEVEL_FLOOR_DBFS = -60.0

# Heads go side by side when each gets a column this wide and room for this many bars.
HEAD_COLUMN_MIN_WIDTH = 40
MIN_BARS_SIDE_BY_SIDE = 3
MAX_BARS_SIDE_BY_SIDE = 8
MAX_BARS_STACKED = 4


# ----------------------------------------------------------------------------------------------- state


@dataclass
class UtteranceRecord:
    number: int
    start: float
    duration: float | None = None  # None while speech goes on
    predictions: dict[str, Prediction] = field(default_factory=dict)  # latest per head

    @property
    def ended(self) -> bool:
        return self.duration is not None

    def snapshot(self) -> "UtteranceRecord":
        return UtteranceRecord(self.number, self.start, self.duration, dict(self.predictions))


@dataclass(frozen=True)
class PipelineFigures:
    """What the footer and meters show, from `Pipeline.stats` where given, else from the events alone."""

    level_dbfs: float | None
    vad_active: bool
    last_latency_ms: float | None
    median_latency_ms: float | None
    dropped_seconds: float
    overflows: int
    audio_seconds: float
    windows: int | None
    cpu_percent: float | None


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
    ):
        """`class_counts` (head -> number of classes), when known up front, sizes the layout from the first
        frame, so it does not jump when the first prediction arrives."""
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

    # --- called from the processing loop: keep cheap ---

    def update(self, events: Iterable | object) -> None:
        """Fold pipeline events into the state. Unknown event types are ignored; dicts as written by the
        JSONL sink (with a "type" key) are accepted too, so a log can be replayed."""
        if isinstance(events, dict) or (not isinstance(events, (list, tuple)) and hasattr(events, "type")):
            events = [events]
        with self._lock:
            for event in events:
                self._fold(_as_event(event))

    def set_stats(self, stats) -> None:
        """Latest `Pipeline.stats` (any object with its attributes; missing ones fall back to events)."""
        with self._lock:
            self._stats = stats

    def _fold(self, event) -> None:
        kind = getattr(event, "type", None)
        t = getattr(event, "t", None)
        if isinstance(t, (int, float)):
            self._latest_t = max(self._latest_t, float(t))
        if kind == "speech_start":
            self._record(event.utterance, event.t)
            self._current = event.utterance
            self._speech_from_events = True
        elif kind == "speech_end":
            self._record(event.utterance, event.t - event.duration).duration = event.duration
            self._speech_from_events = False
        elif kind == "prediction":
            record = self._record(event.utterance, event.t)
            record.predictions[event.head] = event
            if event.head not in self._heads:
                self._heads.append(event.head)
            self._class_counts[event.head] = len(event.probs)
            if event.latency_ms:
                self._latencies.append(float(event.latency_ms))
            if self._current is None or event.utterance > self._current:
                self._current = event.utterance
        elif kind == "overflow":
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
        )

    def _figures(self, cpu_percent: float | None) -> PipelineFigures:
        stats = self._stats
        latencies = list(self._latencies)
        last_latency = getattr(stats, "last_latency_ms", None) or (latencies[-1] if latencies else None)
        median_latency = getattr(stats, "median_latency_ms", None) or (
            statistics.median(latencies) if latencies else None)
        dropped_samples = getattr(stats, "dropped_samples", None)
        if dropped_samples is None:
            dropped_samples = self._dropped_from_events
        return PipelineFigures(
            level_dbfs=getattr(stats, "level_dbfs", None),
            vad_active=bool(getattr(stats, "vad_active", self._speech_from_events)),
            last_latency_ms=last_latency,
            median_latency_ms=median_latency,
            dropped_seconds=dropped_samples / self.sample_rate,
            overflows=self._overflows,
            audio_seconds=max(getattr(stats, "audio_seconds", 0.0) or 0.0, self._latest_t),
            windows=getattr(stats, "windows", getattr(stats, "windows_embedded", None)),
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


def _as_event(event):
    if isinstance(event, dict):
        return SimpleNamespace(**event)
    return event


# ------------------------------------------------------------------------------------------------ view


@dataclass(frozen=True)
class Layout:
    heads_side_by_side: bool
    bars_per_head: int  # probability rows per head, the decided label's included
    history_rows: int


@dataclass(frozen=True)
class DashboardView:
    """A frozen snapshot that lays itself out when drawn: the size is only known then."""

    model_name: str
    backend: str | None
    heads: list[str]
    class_counts: dict[str, int]  # per head, once its first prediction told us
    source_desc: str
    current: UtteranceRecord | None
    finished: list[UtteranceRecord]
    history: int
    figures: PipelineFigures
    panels: "PanelCache | None" = None  # the dashboard's: parts that did not change are not laid out again

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or options.max_height
        layout = self.choose_layout(width, height)
        parts = [self.header(), self.input_panel(width), self.utterance_panel(layout, width, console, options)]
        if layout.history_rows:
            parts.append(self.cached(console, options, "history", (width, layout, tuple(self.heads), self.finished),
                                     lambda: self.history_panel(layout, width), width))
        parts.append(self.footer(width))
        yield Group(*parts)

    def cached(self, console: Console, options: ConsoleOptions, part: str, key, build, width: int) -> RenderableType:
        """`build()`, or its lines from the last frame when `key` is unchanged: rich's table layout is most of
        a frame's cost (`edgepara bench stream --profile`), and these parts change only on new predictions."""
        if self.panels is None:
            return build()
        return self.panels.lines(console, options.update(width=width, height=None), part, key, build)

    # --- sizing ---

    def choose_layout(self, width: int, height: int) -> Layout:
        # Every layout stacks: header (1), input panel (3), utterance panel (2 + body), history panel
        # (2 borders + 1 column header + rows), footer (1). What differs is how the utterance body is cut.
        spare = height - 1 - 3 - 2 - 3 - 1
        heads = self.heads or ["—"]
        if width >= HEAD_COLUMN_MIN_WIDTH * len(heads) + 4:
            rows = min(self.history, max(0, spare - 1 - MIN_BARS_SIDE_BY_SIDE))
            most_classes = max((self.class_counts.get(h, MAX_BARS_SIDE_BY_SIDE) for h in heads))
            bars = min(MAX_BARS_SIDE_BY_SIDE, most_classes, spare - 1 - rows)
            if bars >= MIN_BARS_SIDE_BY_SIDE:
                return Layout(True, bars, rows)
        wanted_rows = min(self.history, 4)  # a few history rows matter more than extra bars
        bars = 1
        while bars < MAX_BARS_STACKED and self.stacked_body_rows(bars + 1) + wanted_rows <= spare:
            bars += 1
        rows = min(self.history, spare - self.stacked_body_rows(bars))
        return Layout(False, bars, max(0, rows))  # no room for rows: drop the history panel

    def rows_for_head(self, head: str, bars: int) -> int:
        return min(bars, max(1, self.class_counts.get(head, bars)))

    def stacked_body_rows(self, bars: int) -> int:
        return sum(self.rows_for_head(head, bars) for head in self.heads) or 1

    # --- panels ---

    def header(self) -> RenderableType:
        title = Text.assemble(" ", ("edgepara", "bold"), "  ", (self.model_name, "bold cyan"))
        if self.backend:
            title.append(f" ({self.backend})", "cyan")
        title.append("  heads ", "dim")
        title.append(", ".join(self.heads) or "none")
        # The source is named in the input panel's title, where it has the width to itself.
        title.no_wrap, title.overflow = True, "ellipsis"
        return Padding(title, (0, 0), style="on grey15", expand=True)

    def input_panel(self, width: int) -> Panel:
        figures = self.figures
        if figures.vad_active:
            vad = Text("● speech", style="bold green")
        else:
            vad = Text("○ silence", style="dim")
        level = figures.level_dbfs
        level_text = Text("— dBFS" if level is None else f"{level:.1f} dBFS")
        # Fixed meter width so the dBFS figure and VAD state stay put on a wide terminal.
        meter_width = max(10, min(60, width - 4 - len("level") - len("-100.0 dBFS") - len("○ silence") - 3))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, width=meter_width)
        grid.add_column(no_wrap=True, justify="right", width=len("-100.0 dBFS"))
        grid.add_column(no_wrap=True)
        grid.add_row(Text("level", style="dim"), LevelMeter(level), level_text, vad)
        title = Text.assemble("input ", ("· ", "dim"), (self.source_desc, "dim"))
        title.truncate(max(10, width - 8), overflow="ellipsis")
        return Panel(grid, title=title, title_align="left", box=box.ROUNDED, border_style="grey50")

    def utterance_panel(self, layout: Layout, width: int, console: Console | None = None,
                        options: ConsoleOptions | None = None) -> Panel:
        record = self.current
        if layout.heads_side_by_side:
            body_rows = 1 + layout.bars_per_head
        else:
            body_rows = self.stacked_body_rows(layout.bars_per_head)
        if record is None:
            body: RenderableType = Text("waiting for speech…", style="dim italic")
            title = Text("utterance")
        else:
            if layout.heads_side_by_side:
                build = lambda: self.head_columns(record, layout)  # noqa: E731
            else:
                build = lambda: self.head_rows(record, layout, width)  # noqa: E731
            if console is None:
                body = build()
            else:  # the body changes with predictions; the title (the clock of a live utterance) more often
                key = (width, layout, tuple(self.heads), tuple(sorted(self.class_counts.items())),
                       tuple(record.predictions.get(h) for h in self.heads))
                body = self.cached(console, options, "utterance body", key, build, width - 4)
            title = Text(f"utterance {record.number}")
            if record.ended:
                title.append(f" · {record.duration:.1f} s", "dim")
                title.append(" · final", "green")
            else:
                title.append(f" · {max(0.0, self.figures.audio_seconds - record.start):.1f} s", "dim")
                title.append(" · live", "bold yellow")
        border = "yellow" if record is not None and not record.ended else "grey50"
        # A fixed height keeps the panels below still while predictions come and go.
        return Panel(body, title=title, title_align="left", height=2 + body_rows, box=box.ROUNDED,
                     border_style=border)

    def head_rows(self, record: UtteranceRecord, layout: Layout, width: int) -> Table:
        """One head under the other: the decided label with its confidence, then the runners-up. With
        room for only one row per head, the runners-up are listed inline instead."""
        inline_runners_up = layout.bars_per_head == 1
        head_width = max([len(h) for h in self.heads] + [4])
        label_width = min(12, max([len(p.label) for p in record.predictions.values()] + [9]))
        inner = width - 4  # panel borders and padding
        fixed = head_width + label_width + 4 + 5 + 4  # + percent, marker and the gaps between columns
        if inline_runners_up:  # the bar shares the room with the runners-up
            bar_width = max(8, min(30, (inner - fixed - 1) // 2))
            runners_up_width = max(0, inner - fixed - 1 - bar_width)
        else:
            bar_width = max(8, min(50, inner - fixed))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, width=head_width)
        grid.add_column(no_wrap=True, overflow="ellipsis", width=label_width)
        grid.add_column(no_wrap=True, width=bar_width)
        grid.add_column(no_wrap=True, justify="right", width=4)
        grid.add_column(no_wrap=True, width=5)
        if inline_runners_up:
            grid.add_column(no_wrap=True, overflow="ellipsis", width=runners_up_width)
        for index, head in enumerate(self.heads):
            style = head_style(index)
            prediction = record.predictions.get(head)
            if prediction is None:
                grid.add_row(Text(head, style=style), Text("…", style="dim"))
                for _ in range(self.rows_for_head(head, layout.bars_per_head) - 1):
                    grid.add_row()
                continue
            runners_up = [(c, p) for c, p in ranked(prediction.probs) if c != prediction.label]
            label_row = [
                Text(head, style=style),
                label_text(prediction.label, style=f"bold {style}"),
                ProbabilityBar(prediction.confidence, style=style),
                Text(f"{prediction.confidence:4.0%}"),
                live_or_final(prediction),
            ]
            if inline_runners_up:
                others = Text(" · ", style="dim").join(
                    Text.assemble(label_text(c, style="dim"), (f" {p:.0%}", "dim")) for c, p in runners_up[:3])
                grid.add_row(*label_row, others)
                continue
            grid.add_row(*label_row)
            rows = self.rows_for_head(head, layout.bars_per_head)
            for name, p in runners_up[: rows - 1]:
                grid.add_row(Text(""), label_text(name, style="dim"), ProbabilityBar(p, style=f"dim {style}"),
                             Text(f"{p:4.0%}", style="dim"))
            for _ in range(rows - 1 - len(runners_up[: rows - 1])):
                grid.add_row()
        return grid

    def head_columns(self, record: UtteranceRecord, layout: Layout) -> Table:
        """Heads side by side, each with its decision on top and its top classes as bars below."""
        columns = Table(box=box.MINIMAL, show_header=False, show_edge=False, expand=True, padding=(0, 1),
                        pad_edge=False)
        for _ in self.heads:
            columns.add_column(ratio=1, no_wrap=True)
        cells = []
        for index, head in enumerate(self.heads):
            style = head_style(index)
            prediction = record.predictions.get(head)
            title = Table.grid(expand=True, padding=(0, 1))
            title.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            title.add_column(no_wrap=True, justify="right")
            if prediction is None:
                title.add_row(Text.assemble((head, f"bold {style}"), ("  …", "dim")))
                cells.append(title)
                continue
            decision = Text.assemble((head, f"bold {style}"), "  ")
            decision.append_text(label_text(prediction.label, style=f"bold {style}"))
            decision.append(f" {prediction.confidence:.0%}")
            title.add_row(decision, live_or_final(prediction))
            bars = Table.grid(expand=True, padding=(0, 1))
            bars.add_column(no_wrap=True, overflow="ellipsis", max_width=12)
            bars.add_column(no_wrap=True, ratio=1)
            bars.add_column(no_wrap=True, justify="right", width=4)
            for name, p in ranked(prediction.probs)[: layout.bars_per_head]:
                chosen = name == prediction.label
                bar_style = style if chosen else f"dim {style}"
                bars.add_row(label_text(name, style=f"bold {style}" if chosen else "dim"),
                             ProbabilityBar(p, style=bar_style),
                             Text(f"{p:4.0%}", style="" if chosen else "dim"))
            cells.append(Group(title, bars))
        columns.add_row(*cells)
        return columns

    def history_panel(self, layout: Layout, width: int) -> Panel:
        # Confidence gets its own aligned column when every head fits; with many heads on a narrow
        # terminal it follows the label in one cell, so the labels keep what room there is.
        label_widths = [max(len(head), 9) for head in self.heads]
        separate_confidence = 16 + sum(w + 6 for w in label_widths) <= width - 4
        # Not expanded: on a wide terminal a label and its confidence should stay close together.
        table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="dim underline")
        table.add_column("#", justify="right", no_wrap=True, min_width=2)
        table.add_column("time", justify="right", no_wrap=True, min_width=6)
        table.add_column("dur", justify="right", no_wrap=True, min_width=4)
        for index, (head, label_width) in enumerate(zip(self.heads, label_widths)):
            header_style = f"underline {head_style(index)}"
            if separate_confidence:
                table.add_column(head, no_wrap=True, overflow="ellipsis", header_style=header_style,
                                 min_width=label_width, max_width=16)
                table.add_column("", no_wrap=True, justify="right", width=4)
            else:
                table.add_column(head, no_wrap=True, overflow="ellipsis", header_style=header_style, min_width=4)
        rows = self.finished[: layout.history_rows]
        for record in rows:
            cells = [Text(str(record.number), style="dim"), Text(format_clock(record.start)),
                     Text(f"{record.duration:.1f}s")]
            for head in self.heads:
                prediction = record.predictions.get(head)
                label = label_text(prediction.label, style="") if prediction else Text("—", style="dim")
                confidence = Text(f"{prediction.confidence:.0%}" if prediction else "", style="dim")
                if prediction and not prediction.final:  # no final verdict reached this head: its last guess
                    label.stylize("italic")
                    confidence.stylize("italic")
                if separate_confidence:
                    cells += [label, confidence]
                else:
                    cells.append(Text.assemble(label, " ", confidence))
            table.add_row(*cells)
        if not rows:
            table.add_row("", Text("none yet", style="dim italic"))
        title = Text("history")
        if self.finished:
            title.append(f" · last {len(rows)}", "dim")
        # A fixed height keeps the footer still while the history fills up.
        return Panel(table, title=title, title_align="left", height=3 + max(1, layout.history_rows),
                     box=box.ROUNDED, border_style="grey50")

    def footer(self, width: int) -> Text:
        figures = self.figures

        def ms(value: float | None) -> str:
            return "—" if value is None else f"{value:.1f}"

        cpu = "—" if figures.cpu_percent is None else f"{figures.cpu_percent:.0f}%"
        dropped_style = "bold red" if figures.dropped_seconds > 0 else ""
        overflows = f" ({figures.overflows}×)" if figures.overflows else ""
        long_parts = [
            Text.assemble(("latency ", "dim"), f"{ms(figures.last_latency_ms)} ms",
                          ("  median ", "dim"), f"{ms(figures.median_latency_ms)} ms"),
            Text.assemble(("CPU ", "dim"), cpu),
            Text.assemble(("dropped ", "dim"), (f"{figures.dropped_seconds:.2f} s{overflows}", dropped_style)),
            Text.assemble(("audio ", "dim"), format_clock(figures.audio_seconds)),
        ]
        if figures.windows is not None:
            long_parts.append(Text.assemble(("windows ", "dim"), str(figures.windows)))
        short_latency = f"{ms(figures.last_latency_ms)}/{ms(figures.median_latency_ms)} ms"
        short_parts = [
            Text.assemble(("lat ", "dim"), short_latency, (" last/med", "dim")),
            Text.assemble(("CPU ", "dim"), cpu),
            Text.assemble(("drop ", "dim"), (f"{figures.dropped_seconds:.2f} s{overflows}", dropped_style)),
            Text.assemble(("audio ", "dim"), format_clock(figures.audio_seconds)),
        ]
        shortest_parts = [Text.assemble(("lat ", "dim"), short_latency), *short_parts[1:]]
        for parts in (long_parts, long_parts[:4], short_parts, shortest_parts):
            line = Text(" ")
            for index, part in enumerate(parts):
                if index:
                    line.append(" │ ", "grey50")
                line.append_text(part)
            if line.cell_len <= width:
                break
        line.no_wrap, line.overflow = True, "ellipsis"
        return line


# ------------------------------------------------------------------------------------------ primitives


def ranked(probs: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(probs.items(), key=lambda item: -item[1])


def live_or_final(prediction: Prediction) -> Text:
    return Text("final", style="green") if prediction.final else Text("live", style="yellow")


def head_style(index: int) -> str:
    return HEAD_STYLES[index % len(HEAD_STYLES)]


def label_text(label: str, style: str) -> Text:
    # "uncertain"/"unknown" are non-answers: keep them from drawing the eye.
    return Text(label, style="dim italic" if label in DIMMED_LABELS else style)


def format_clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}:{secs:04.1f}"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{int(secs):02d}"


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar_cells(fraction: float, width: int) -> tuple[str, str]:
    """The filled part (with an eighth-block tip for sub-cell resolution) and the empty part of a bar."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, tip = divmod(eighths, 8)
    filled = "█" * full + (EIGHTHS[tip] if tip else "")
    return filled, "·" * (width - len(filled))


class ProbabilityBar:
    """A horizontal bar that takes the width its table column gives it."""

    def __init__(self, fraction: float, style: str):
        self.fraction, self.style = fraction, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        filled, empty = bar_cells(self.fraction, options.max_width)
        yield Text.assemble((filled, self.style), (empty, "grey30"), no_wrap=True, end="")


class PanelCache:
    """The rendered lines of each cached part of the view with the key they were drawn for (one per part, so
    memory stays bounded): a part whose key is unchanged is not laid out again."""

    def __init__(self):
        self._parts: dict[str, tuple[object, list[list[Segment]]]] = {}

    def lines(self, console: Console, options: ConsoleOptions, part: str, key, build) -> SegmentLines:
        hit = self._parts.get(part)
        if hit is None or hit[0] != key:
            hit = (key, console.render_lines(build(), options, pad=False))
            self._parts[part] = hit
        return SegmentLines(hit[1], new_lines=True)


class LevelMeter:
    """dBFS meter from LEVEL_FLOOR_DBFS to 0, green / yellow above -18 dBFS / red above -6 dBFS."""

    ZONES = ((-18.0, "green"), (-6.0, "yellow"), (0.0, "red"))

    def __init__(self, level_dbfs: float | None):
        self.level_dbfs = level_dbfs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        level = LEVEL_FLOOR_DBFS if self.level_dbfs is None else self.level_dbfs
        filled, empty = bar_cells((level - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS, width)
        meter = Text(no_wrap=True, end="")
        zone_start = 0
        for zone_top, style in self.ZONES:
            zone_end = round((zone_top - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS * width)
            meter.append(filled[zone_start:zone_end], style)
            zone_start = zone_end
        meter.append(empty, "grey30")
        yield meter
