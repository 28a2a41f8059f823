"""The dashboard folds events into state and draws a tidy view at any terminal size."""
from __future__ import annotations

import dataclasses
import io
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from rich.cells import cell_len
from rich.console import Console

from edgepara.dashboard import CpuMeter, Dashboard
from edgepara.dashboard_view import label_text
from edgepara.stream.pipeline import PipelineStats
from edgepara.types import Overflow, Prediction, SpeechEnd, SpeechStart

HEADS = ["emotion", "speaker", "mask"]
CLASSES = {
    "emotion": ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
    "speaker": ["alice", "bob", "carol", "unknown"],
    "mask": ["none", "surgical", "cloth", "n95"],
}
# (emotion, speaker, mask) per finished utterance; "uncertain"/"unknown" are the smoother's non-answers.
UTTERANCES = [
    ("happy", "alice", "none"),
    ("angry", "bob", "surgical"),
    ("uncertain", "unknown", "cloth"),
    ("sad", "carol", "none"),
    ("neutral", "alice", "n95"),
]


def FakeStats(**overrides) -> PipelineStats:
    """A `Pipeline.stats` in the middle of a run."""
    stats = PipelineStats(level_dbfs=-21.5, vad_active=True, utterance=5, windows_embedded=42,
                          last_latency_ms=4.25, median_latency_ms=3.75, dropped_samples=1600, audio_seconds=21.0)
    return dataclasses.replace(stats, **overrides)


def probabilities(head: str, top: str, confidence: float) -> dict[str, float]:
    others = [c for c in CLASSES[head] if c != top]
    weights = [len(others) - i for i in range(len(others))]
    rest = {c: (1 - confidence) * w / sum(weights) for c, w in zip(others, weights)}
    return {top: confidence, **rest} if top in CLASSES[head] else rest


def predictions(t: float, utterance: int, labels: tuple[str, ...], confidence: float, final: bool):
    for head, label in zip(HEADS, labels):
        # An "uncertain" label keeps the head's real distribution: the bars show what it hesitates between.
        top = label if label in CLASSES[head] else CLASSES[head][2]
        probs = probabilities(head, top, confidence)
        yield Prediction(t, utterance, head, label, confidence, probs, final, latency_ms=3.5 + utterance / 10)


def realistic_events() -> list:
    """Five finished utterances with live then final predictions, an overflow, and a sixth still going."""
    events, t = [], 0.8
    for number, labels in enumerate(UTTERANCES):
        duration = 1.2 + 0.4 * (number % 3)
        events.append(SpeechStart(t, number))
        events += predictions(t + 1.0, number, labels, 0.55, final=False)
        events.append(SpeechEnd(t + duration, number, duration))
        events += predictions(t + duration, number, labels, 0.8, final=True)
        t += duration + 2.0
    events.append(Overflow(t, 1600))
    events.append(SpeechStart(t + 0.5, 5))
    events += predictions(t + 1.5, 5, ("happy", "bob", "none"), 0.62, final=False)
    return events


def make_dashboard(**kwargs) -> Dashboard:
    dashboard = Dashboard("edgepara-small", HEADS, "mic: default @ 48 kHz → 16 kHz", backend="LiteRT", **kwargs)
    events = realistic_events()
    dashboard.update(events)
    assert events[-1].t < 21.0
    dashboard.set_stats(FakeStats(audio_seconds=21.0))
    return dashboard


def draw(dashboard: Dashboard, width: int, height: int) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(dashboard.render())
    return console.export_text().splitlines()


def history_numbers(lines: list[str]) -> list[int]:
    """Utterance numbers of the history rows, top to bottom (a row reads "│  4  0:14.8  1.6s  …")."""
    return [int(m.group(1)) for line in lines if (m := re.match(r"│ +(\d+) +\d+:\d\d\.\d +\d", line))]


def assert_fits(lines: list[str], width: int, height: int) -> None:
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, f"expected lines of at most {width} cells, got {too_wide}"
    assert len(lines) <= height, f"expected at most {height} lines, got {len(lines)}"


def test_80x24_shows_the_essentials_and_fits():
    lines = draw(make_dashboard(), 80, 24)
    assert_fits(lines, 80, 24)
    text = "\n".join(lines)
    for expected in ["edgepara-small", "LiteRT", "mic: default", *HEADS, "speech", "-21.5 dBFS",
                     "utterance 5", "live", "happy", "bob", "62%",  # the live utterance
                     "uncertain", "unknown", "angry", "80%",  # history
                     "latency 4.2 ms", "median 3.8 ms", "CPU", "dropped 0.10 s", "audio 0:21.0"]:
        assert expected in text, f"expected {expected!r} in the 80x24 view:\n{text}"


def test_160x48_puts_heads_side_by_side_with_more_bars_and_history():
    lines = draw(make_dashboard(), 160, 48)
    assert_fits(lines, 160, 48)
    text = "\n".join(lines)
    heads_line = next(line for line in lines if "emotion" in line and "speaker" in line and "happy" in line)
    assert "mask" in heads_line and heads_line.count("live") == 3
    assert "surprised" in text  # room for more of the emotion distribution than at 80x24
    assert history_numbers(lines) == [4, 3, 2, 1, 0]
    assert "windows 42" in text


@pytest.mark.parametrize("width,height", [(80, 24), (80, 15), (100, 30), (120, 40), (200, 60), (60, 20)])
def test_fits_any_reasonable_terminal(width, height):
    assert_fits(draw(make_dashboard(), width, height), width, height)


def test_short_terminal_drops_history_rows_before_the_current_utterance():
    tall, short = draw(make_dashboard(), 80, 30), draw(make_dashboard(), 80, 15)
    assert 0 < len(history_numbers(short)) < len(history_numbers(tall))
    head_rows = [line for line in short if re.match(r"│ (emotion|speaker|mask) +\w", line)]
    assert len(head_rows) == 3 and all("live" in line for line in head_rows)


def test_silence_after_an_utterance_shows_its_final_result():
    dashboard = Dashboard("edgepara-tiny", HEADS, "file: clip.wav")
    dashboard.update([e for e in realistic_events() if getattr(e, "utterance", 0) < 5 and e.type != "overflow"])
    dashboard.set_stats(FakeStats(vad_active=False, level_dbfs=-58.0, dropped_samples=0))
    text = "\n".join(draw(dashboard, 80, 24))
    assert "silence" in text and "utterance 4" in text and "final" in text
    assert "dropped 0.00 s" in text


def test_before_any_speech_it_waits_without_stats():
    dashboard = Dashboard("edgepara-tiny", HEADS, "file: clip.wav")
    lines = draw(dashboard, 80, 24)
    assert_fits(lines, 80, 24)
    text = "\n".join(lines)
    assert "waiting for speech" in text and "silence" in text and "latency — ms" in text


def test_history_is_newest_first_bounded_and_takes_late_finals():
    dashboard = Dashboard("m", HEADS, "src", history=3)
    dashboard.update(realistic_events())
    dashboard.update(Prediction(99.0, 4, "mask", "surgical", 0.97, {"surgical": 0.97}, final=True))
    view = dashboard.render()
    assert [record.number for record in view.finished] == [4, 3, 2]
    assert view.finished[0].predictions["mask"].label == "surgical"


def test_unknown_and_extra_events_are_ignored_or_kept():
    @dataclass
    class Heartbeat:
        t: float
        type: str = "heartbeat"

    dashboard = make_dashboard()
    dashboard.update([object(), 42, None, "speech", Heartbeat(1.0), {"type": "mystery", "x": 1}])
    dashboard.update(Heartbeat(2.0))  # a lone event, not in a list
    # A head the dashboard was not told about still shows; a dict from a JSONL log replays like the event.
    dashboard.update({"type": "prediction", "t": 31.0, "utterance": 5, "head": "gender", "label": "female",
                      "confidence": 0.7, "probs": {"female": 0.7, "male": 0.3}, "final": False, "latency_ms": 4.0})
    # a line cut short (no label, probs, ...) is not an event: ignored, not a TypeError
    dashboard.update({"type": "prediction", "t": 32.0, "utterance": 6, "head": "accent"})
    text = "\n".join(draw(dashboard, 80, 24))
    assert "gender" in text and "female" in text and "accent" not in text


def test_without_stats_the_figures_come_from_the_events():
    # A replayed log has no Pipeline.stats: speech, latency and drops come from the events themselves.
    dashboard = Dashboard("m", HEADS, "src")
    dashboard.update(realistic_events())
    text = "\n".join(draw(dashboard, 80, 24))
    assert "speech" in text  # from the unfinished SpeechStart
    assert "latency 4.0 ms" in text  # from the predictions' own latency
    assert "dropped 0.10 s (1×)" in text  # from the Overflow event


def test_stats_of_a_pipeline_that_has_embedded_nothing_yet():
    # PipelineStats starts at a -120 dBFS floor with zero latencies: shown as silence and no latency.
    dashboard = Dashboard("m", HEADS, "src")
    dashboard.set_stats(PipelineStats(windows_embedded=0, audio_seconds=0.5))
    lines = draw(dashboard, 160, 48)
    assert_fits(lines, 160, 48)
    text = "\n".join(lines)
    assert "-120.0 dBFS" in text and "silence" in text and "windows 0" in text and "latency — ms" in text
    dashboard.set_stats(dataclasses.replace(PipelineStats(), windows_embedded=7, last_latency_ms=2.5,
                                            median_latency_ms=2.0, level_dbfs=-30.0))
    text = "\n".join(draw(dashboard, 160, 48))
    assert "-30.0 dBFS" in text and "windows 7" in text and "latency 2.5 ms" in text


def test_uncertain_and_unknown_labels_are_dimmed():
    assert "dim" in str(label_text("uncertain", style="bold").style)
    assert "dim" in str(label_text("unknown", style="bold").style)
    assert "dim" not in str(label_text("happy", style="bold").style)


def test_cpu_meter_measures_this_process():
    meter = CpuMeter(min_interval=0.0)
    meter.sample()
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        pass
    assert 0.0 < meter.sample() < 100.0 * 64


def test_live_draws_on_its_own_thread_while_updates_continue():
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    dashboard = Dashboard("edgepara-small", HEADS, "src", console=console)
    with dashboard.live(refresh_per_second=20, screen=False):
        for event in realistic_events():
            dashboard.update([event])
        dashboard.set_stats(FakeStats())
        time.sleep(0.2)
    output = console.file.getvalue()
    assert "utterance 5" in output and "speech" in output


def draw_styled(dashboard: Dashboard, width: int, height: int, cached: bool = True) -> str:
    """The frame with its colours (ANSI), so a stale cached part would show even where the text agrees."""
    console = Console(record=True, width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    view = dashboard.render()
    if not cached:
        view = dataclasses.replace(view, panels=None)
    console.print(view)
    return console.export_text(styles=True)


@pytest.mark.parametrize("width,height", [(80, 24), (160, 48)])
def test_cached_parts_draw_exactly_what_a_fresh_layout_draws(width, height):
    """Parts that did not change are reused from the last frame; every frame must still be the one a full
    layout gives, also right after a new prediction, a new utterance and a resize."""
    dashboard = make_dashboard()
    dashboard._cpu = SimpleNamespace(sample=lambda: 25.0)  # the one figure that changes from frame to frame
    for _ in range(2):
        assert draw_styled(dashboard, width, height) == draw_styled(dashboard, width, height, cached=False)
    more = [SpeechEnd(21.5, 5, 2.0), *predictions(21.5, 5, ("angry", "carol", "cloth"), 0.9, final=True),
            SpeechStart(23.0, 6), *predictions(24.0, 6, ("sad", "alice", "none"), 0.5, final=False)]
    for event in more:
        dashboard.update(event)
        assert draw_styled(dashboard, width, height) == draw_styled(dashboard, width, height, cached=False)
    assert draw_styled(dashboard, width - 20, height - 4) == draw_styled(dashboard, width - 20, height - 4, cached=False)


def test_layout_does_not_jump_at_the_first_prediction():
    """With the heads' class counts given up front (a binary mask head, three enrolled speakers), the frame
    before any prediction has its panels where the frame after the first prediction has them; without them
    the layout is sized by a guess and jumps."""
    heads = ["emotion", "speaker", "mask"]

    def frames(class_counts):
        board = Dashboard("edgepara-small", heads, "mic", class_counts=class_counts)
        board.set_stats(FakeStats(audio_seconds=1.0))
        board.update(SpeechStart(0.5, 0))
        before = draw(board, 80, 30)
        board.update([Prediction(1.5, 0, "emotion", "happy", 0.6, probabilities("emotion", "happy", 0.6), False),
                      Prediction(1.5, 0, "speaker", "bob", 0.9, {"bob": 0.9, "al": 0.05, "unknown": 0.05}, False),
                      Prediction(1.5, 0, "mask", "none", 0.9, {"none": 0.9, "masked": 0.1}, False)])
        return before, draw(board, 80, 30)

    def borders(lines):
        return [i for i, line in enumerate(lines) if line.startswith(("╭", "╰"))]

    before, after = frames({"emotion": 8, "speaker": 3, "mask": 2})
    assert borders(before) == borders(after)
    before, after = frames(None)
    assert borders(before) != borders(after), "the check above would not see a jump"


def test_utterances_that_leave_the_history_are_kept_for_the_end():
    board = Dashboard("edgepara-small", HEADS, "talk.flac", history=2)
    board.update(realistic_events())  # five finished utterances and a sixth going on
    lines = board.scrolled_off_lines()
    assert [int(line.split()[0]) for line in lines] == [0, 1, 2]  # 3 and 4 are still in the panel
    assert "emotion happy 80%" in lines[0] and "mask none" in lines[0]


def test_a_sinks_status_line_shows_in_the_header_and_losses_stand_out():
    status = {"line": "MQTT connected · queued 0"}
    board = Dashboard("edgepara-small", HEADS, "mic", status=lambda: status["line"])
    board.set_stats(FakeStats())
    assert "MQTT connected · queued 0" in draw(board, 160, 40)[0]
    status["line"] = "MQTT reconnecting · queued 12 · dropped 3"
    assert "MQTT reconnecting · queued 12 · dropped 3" in draw(board, 160, 40)[0]
    assert "1;31" in draw_styled(board, 160, 40).splitlines()[0]  # bold red once something was dropped


def test_the_utterance_says_what_the_adaptive_heads_read_it_against():
    dashboard = Dashboard("edgepara-small", ["emotion", "mask"], "file: clip.wav")
    dashboard.update([SpeechStart(0.0, 0), Prediction(1.0, 0, "emotion", "happy", 0.6, probabilities("emotion", "happy", 0.6),
                                                      False, baseline={"voice": "ana", "utterances": 7,
                                                                       "adaptation": "speaker"})])
    assert "vs ana, 7 utt." in "\n".join(draw(dashboard, 100, 30))
    dashboard.update([SpeechEnd(2.0, 0, 2.0), SpeechStart(3.0, 1),
                      Prediction(4.0, 1, "emotion", "sad", 0.6, probabilities("emotion", "sad", 0.6), False,
                                 baseline={"voice": "stream", "utterances": 0, "adaptation": "speaker"})])
    assert "vs population (cold start)" in "\n".join(draw(dashboard, 100, 30))
