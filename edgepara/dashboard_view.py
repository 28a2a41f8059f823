"""The dashboard's view: a frozen snapshot of the state (`DashboardView`) that lays itself out for the terminal
it is drawn on, and the small renderables it is made of. No state and no threads here: `dashboard.Dashboard`
folds events into its state and asks for a new view at each refresh.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.segment import Segment, SegmentLines
from rich.table import Table
from rich.text import Text

from .types import Prediction

DIMMED_LABELS = frozenset({"uncertain", "unknown"})
HEAD_STYLES = ("magenta", "cyan", "yellow", "green", "blue", "bright_red")
LEVEL_FLOOR_DBFS = -60.0

# Heads go side by side when each gets a column this wide and room for this many bars.
HEAD_COLUMN_MIN_WIDTH = 40
MIN_BARS_SIDE_BY_SIDE = 3
MAX_BARS_SIDE_BY_SIDE = 8
MAX_BARS_STACKED = 4



# --------------------------------------------------------------------------------------------- records


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
    status: str | None = None  # a sink's line for the header (MQTT), if any

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
        if self.status:
            title.append("  " + self.status, "bold red" if " dropped " in f" {self.status} " else "dim")
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
            baseline = next((p.baseline for p in record.predictions.values() if p.baseline), None)
            if baseline:  # what the adaptive heads read this utterance against
                title.append(f" · vs {describe_baseline(baseline)}", "dim")
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


def describe_baseline(baseline: dict) -> str:
    """e.g. "population (cold start)", "stream, 4 utt.", "alice, 12 utt." for an adaptive head's prediction."""
    if baseline.get("adaptation") == "off" or not baseline.get("utterances"):
        return "population" + ("" if baseline.get("adaptation") == "off" else " (cold start)")
    return f"{baseline.get('voice', 'stream')}, {baseline['utterances']} utt."


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
