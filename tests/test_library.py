"""Pipeline as a library that robot and IoT apps embed: a background thread (start / stop / join), async
iteration, callbacks that may fail, the speaker head built by the library, and the promise that every
utterance gets its speech_end and final prediction however the stream stops (stop(), a source that fails,
KeyboardInterrupt, an abandoned consumer, Ctrl-C or SIGTERM to the CLI).

Everything is real: the shipped int8 models through LiteRT, webrtcvad, the committed clips, a PulseAudio
null-sink microphone, and the CLI in subprocesses. The only stand-ins are tiny sources and heads written
here to fail or stall on purpose, since a real device cannot be told to fail at a chosen moment (the
microphone test that does kill its real server is below too).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara import Pipeline
from edgepara.audio import read_audio
from edgepara.enroll import enroll
from edgepara.errors import DeviceError, EdgeparaError, HeadError, ProfileError
from edgepara.runtime import Embedder
from edgepara.stream.smoother import ScoredWindow, Smoother
from edgepara.stream.source import MicrophoneSource, file_source
from edgepara.types import Prediction, SpeechEnd, SpeechStart, Window

from test_microphone import play, stop as stop_player, virtual_mic  # noqa: F401  (a pytest fixture)

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"  # 4.4 s; speech from about 0.5 s to 3.7 s
SR = 16000
TIMEOUT_S = 60
WORKER = "edgepara-pipeline"
# Speaker tests enroll with the tiny model, as tests/test_cli.py does.
SPEAKER_MODEL = "edgepara-tiny"


@pytest.fixture(scope="module")
def embedder():
    return Embedder("edgepara-small")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> dict:
    """The committed clips end to end (several utterances), as a wav file and as samples."""
    parts = [read_audio(DATA / name) for name in
             ("ravdess_A21_angry.flac", "fsdd_3_jackson_0.flac", "fsdd_7_theo_0.flac", "ravdess_A21_angry.flac")]
    audio = np.concatenate(parts)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, audio, SR, subtype="PCM_16")
    return {"path": path, "audio": audio}


class ClosableSource:
    """A chunk source that says whether it was closed, and can stall (block) or fail after some chunks."""

    def __init__(self, audio: np.ndarray, chunk: int = 480, stall_after_s: float | None = None,
                 fail_after_s: float | None = None, error: BaseException | None = None):
        self.audio, self.chunk = audio, chunk
        self.stall_after = None if stall_after_s is None else int(stall_after_s * SR)
        self.fail_after = None if fail_after_s is None else int(fail_after_s * SR)
        self.error = error
        self.closed = 0
        self.release = threading.Event()  # a stalled source gives its next chunk once this is set
        self.stalled = threading.Event()

    def __iter__(self):
        for start in range(0, len(self.audio), self.chunk):
            if self.stall_after is not None and start >= self.stall_after and not self.release.is_set():
                self.stalled.set()
                self.release.wait(TIMEOUT_S)
            if self.fail_after is not None and start >= self.fail_after:
                raise self.error
            yield self.audio[start : start + self.chunk]

    def close(self) -> None:
        self.closed += 1


class Recorder:
    """A callback that keeps the events and the threads they arrived on."""

    def __init__(self):
        self.events, self.threads = [], set()
        self.speech_started = threading.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)
        if isinstance(event, SpeechStart):
            self.speech_started.set()


def comparable(events) -> list[dict]:
    from edgepara.stream.sinks import event_to_json

    return [{k: v for k, v in event_to_json(e).items() if k != "latency_ms"} for e in events]


def assert_closed_properly(events, heads=("emotion",)) -> None:
    """Every utterance that started has a SpeechEnd, then exactly one final prediction per head, and the
    events end with those."""
    starts = [e.utterance for e in events if isinstance(e, SpeechStart)]
    ends = [e.utterance for e in events if isinstance(e, SpeechEnd)]
    assert starts and starts == ends, [(type(e).__name__, getattr(e, "utterance", None)) for e in events]
    for u in starts:
        end_at = next(i for i, e in enumerate(events) if isinstance(e, SpeechEnd) and e.utterance == u)
        finals = [e for e in events if isinstance(e, Prediction) and e.final and e.utterance == u]
        assert sorted(e.head for e in finals) == sorted(heads), (u, finals)
        assert all(events.index(f) > end_at for f in finals), "a final prediction came before its speech_end"
    last = starts[-1]
    assert all(isinstance(e, Prediction) and e.final and e.utterance == last for e in events[-len(heads):])


# ------------------------------------------------------------------------------- background thread, file

def test_start_then_stop_mid_utterance_closes_it_on_the_worker_thread(embedder):
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    source = file_source(CLIP, realtime=True)
    assert pipeline.start(source) is pipeline and pipeline.running
    assert recorder.speech_started.wait(TIMEOUT_S), "no speech_start from a real-time file"
    time.sleep(0.3)
    t0 = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - t0 < 2.0, "stop() waited for far more than one chunk"
    assert not pipeline.running and pipeline.error is None
    assert_closed_properly(recorder.events)
    end = next(e for e in recorder.events if isinstance(e, SpeechEnd))
    assert end.t < 3.0, f"the utterance ran to its natural end ({end.t:.2f} s) instead of being stopped"
    assert recorder.threads == {WORKER}, recorder.threads
    assert source.gi_frame is None, "the file source was left open"  # a closed generator has no frame
    assert pipeline.join(0) is True


def test_start_join_runs_to_the_end_and_matches_run(embedder, long_clip):
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    with pipeline.start(file_source(long_clip["path"], chunk=1600)):
        assert pipeline.join(TIMEOUT_S), "the background run did not finish"
    background = list(recorder.events)
    assert_closed_properly(background)
    assert sum(isinstance(e, SpeechEnd) for e in background) >= 2
    pipeline.reset()
    on_caller = list(pipeline.run(file_source(long_clip["path"], chunk=1600)))
    assert comparable(background) == comparable(on_caller)


def test_one_source_at_a_time_and_a_restart_after_stop(embedder):
    pipeline = Pipeline(embedder=embedder)
    pipeline.start(file_source(CLIP, realtime=True))
    with pytest.raises(EdgeparaError, match="expected one source at a time"):
        pipeline.start(file_source(CLIP))
    with pytest.raises(EdgeparaError, match="no background run is active"):
        pipeline.process(np.zeros(480, np.int16))
    pipeline.stop()
    pipeline.start(file_source(CLIP))
    assert pipeline.join(TIMEOUT_S)


def test_close_source_default_and_opt_out(embedder):
    audio = read_audio(CLIP)
    closed_by_default = ClosableSource(audio)
    left_open = ClosableSource(audio)
    pipeline = Pipeline(embedder=embedder)
    list(pipeline.run(closed_by_default))
    list(pipeline.run(left_open, close_source=False))
    pipeline.start(ClosableSource(audio, chunk=4000), close_source=False).join(TIMEOUT_S)
    assert closed_by_default.closed == 1 and left_open.closed == 0


def test_stop_when_the_source_stalls_closes_the_utterance_on_the_caller(embedder):
    source = ClosableSource(read_audio(CLIP), stall_after_s=1.8)  # mid-speech, then nothing arrives
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    pipeline.start(source)
    assert source.stalled.wait(TIMEOUT_S)
    t0 = time.monotonic()
    pipeline.stop(timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    assert_closed_properly(recorder.events)
    assert threading.current_thread().name in recorder.threads  # the closing events came from here
    n = len(recorder.events)
    source.release.set()  # the source finally answers: the old worker must not process it
    assert pipeline.join(TIMEOUT_S)
    time.sleep(0.2)
    assert len(recorder.events) == n and source.closed == 1


def test_source_failure_mid_utterance_closes_it_then_raises(embedder):
    audio = read_audio(CLIP)
    failure = DeviceError("expected audio from 'test', got a failure: unplugged")
    events = []
    with pytest.raises(DeviceError, match="unplugged"):
        for event in Pipeline(embedder=embedder).run(ClosableSource(audio, fail_after_s=2.0, error=failure)):
            events.append(event)
    assert_closed_properly(events)

    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    pipeline.start(ClosableSource(audio, fail_after_s=2.0, error=failure))
    with pytest.raises(DeviceError, match="unplugged"):
        pipeline.join(TIMEOUT_S)
    assert pipeline.error is failure
    assert_closed_properly(recorder.events)


def test_keyboard_interrupt_inside_run_still_closes_the_utterance(embedder):
    source = ClosableSource(read_audio(CLIP), fail_after_s=2.0, error=KeyboardInterrupt())
    events = []
    with pytest.raises(KeyboardInterrupt):
        for event in Pipeline(embedder=embedder).run(source):
            events.append(event)
    assert_closed_properly(events)
    assert source.closed == 1


def test_abandoned_run_loop_still_closes_for_the_callbacks(embedder):
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    loop = pipeline.run(file_source(CLIP))
    for event in loop:
        if isinstance(event, SpeechStart):
            break
    loop.close()
    assert_closed_properly(recorder.events)
    assert not pipeline.running


def test_context_manager_stops_on_exit(embedder):
    recorder = Recorder()
    with Pipeline(embedder=embedder, callbacks=[recorder]) as pipeline:
        pipeline.start(file_source(CLIP, realtime=True))
        assert recorder.speech_started.wait(TIMEOUT_S)
    assert not pipeline.running
    assert_closed_properly(recorder.events)


# ------------------------------------------------------------------------------------------- callbacks

def test_a_raising_callback_does_not_stop_the_stream_or_the_others(embedder, caplog):
    before, after = Recorder(), Recorder()

    def broken(event):
        raise ValueError(f"cannot handle {event.type}")

    pipeline = Pipeline(embedder=embedder, callbacks=[before, broken, after])
    with caplog.at_level(logging.WARNING, logger="edgepara"):
        pipeline.start(file_source(CLIP))
        assert pipeline.join(TIMEOUT_S)
    assert before.events and comparable(before.events) == comparable(after.events)
    assert_closed_properly(after.events)
    assert pipeline.stats.callback_errors == len(after.events)
    warnings = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert len(warnings) == 1 and "ValueError" in warnings[0] and "goes on" in warnings[0], warnings


def test_on_error_gets_each_failure(embedder):
    failures = []

    def broken(event):
        if isinstance(event, Prediction):
            raise RuntimeError("no network")

    pipeline = Pipeline(embedder=embedder, callbacks=[broken],
                        on_error=lambda callback, event, err: failures.append((callback, event, err)))
    events = list(pipeline.run(file_source(CLIP)))
    predictions = [e for e in events if isinstance(e, Prediction)]
    assert [f[1] for f in failures] == predictions
    assert all(f[0] is broken and isinstance(f[2], RuntimeError) for f in failures)


def test_callbacks_added_and_removed_while_running(embedder):
    late = Recorder()
    pipeline = Pipeline(embedder=embedder)
    pipeline.start(file_source(CLIP, realtime=True))
    pipeline.add_callback(late)
    assert late.speech_started.wait(TIMEOUT_S)
    pipeline.remove_callback(late)
    n = len(late.events)
    pipeline.stop()
    assert len(late.events) == n
    with pytest.raises(EdgeparaError, match="expected a callback added"):
        pipeline.remove_callback(late)


# ------------------------------------------------------------------------------------------------ async

def test_async_iteration_gives_the_same_events_as_run(embedder, long_clip):
    pipeline = Pipeline(embedder=embedder)

    async def collect():
        return [event async for event in pipeline.events(file_source(long_clip["path"]), max_queue=4)]

    from_async = asyncio.run(collect())
    pipeline.reset()
    assert comparable(from_async) == comparable(pipeline.run(file_source(long_clip["path"])))
    assert_closed_properly(from_async)


def test_async_consumer_keeps_the_loop_free_and_stops_early(embedder):
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    source = file_source(CLIP, realtime=True)
    ticks = []

    async def ticker():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    async def consume():
        tick = asyncio.create_task(ticker())
        got = []
        async with pipeline.events(source) as events:
            async for event in events:
                got.append(event)
                if isinstance(event, SpeechStart):
                    break
        tick.cancel()
        return got

    got = asyncio.run(consume())
    assert isinstance(got[-1], SpeechStart)
    assert len(ticks) >= 5, "the event loop was blocked while waiting for events"
    assert not pipeline.running and source.gi_frame is None
    assert_closed_properly(recorder.events)  # the callbacks still got the closing events


def test_async_iteration_raises_the_source_error_after_the_closing_events(embedder):
    failure = DeviceError("expected audio from 'test', got a failure: unplugged")
    got = []

    async def consume():
        async for event in Pipeline(embedder=embedder).events(
                ClosableSource(read_audio(CLIP), fail_after_s=2.0, error=failure)):
            got.append(event)

    with pytest.raises(DeviceError, match="unplugged"):
        asyncio.run(consume())
    assert_closed_properly(got)


def test_breaking_out_of_events_stops_the_run(embedder):
    recorder = Recorder()
    pipeline = Pipeline(embedder=embedder, callbacks=[recorder])
    source = file_source(CLIP, realtime=True)
    for event in pipeline.events(source):  # the stream object is dropped right after the loop
        if isinstance(event, SpeechStart):
            break
    assert pipeline.join(TIMEOUT_S) and not pipeline.running
    assert source.gi_frame is None
    assert_closed_properly(recorder.events)


def test_a_callback_can_stop_the_pipeline(embedder):
    pipeline = Pipeline(embedder=embedder)
    seen = []

    def stop_at_first_prediction(event):
        seen.append(event)
        if isinstance(event, Prediction) and not event.final:
            pipeline.stop()  # from the pipeline's own thread: a request, it cannot wait for itself
            with pytest.raises(EdgeparaError, match="expected join\\(\\) from another thread"):
                pipeline.join()

    pipeline.add_callback(stop_at_first_prediction)
    pipeline.start(file_source(CLIP))
    assert pipeline.join(TIMEOUT_S)
    first_live = next(e for e in seen if isinstance(e, Prediction))
    end = next(e for e in seen if isinstance(e, SpeechEnd))
    assert end.t - first_live.t < 0.1, "chunks went on being processed after the stop request"
    assert_closed_properly(seen)


def test_bad_max_queue_is_one_line(embedder):
    with pytest.raises(EdgeparaError, match="expected max_queue"):
        Pipeline(embedder=embedder).events(file_source(CLIP), max_queue=0)


# ---------------------------------------------------------------------------------- heads and the model

def test_speaker_head_built_by_the_library(tmp_path):
    profile = enroll("alice", [str(CLIP)], model=SPEAKER_MODEL, profiles=tmp_path)
    assert profile.name == "alice"
    pipeline = Pipeline(model=SPEAKER_MODEL, heads=["emotion", "speaker"], profiles=tmp_path,
                        speaker_threshold=0.5)
    assert [h.name for h in pipeline.heads] == ["emotion", "speaker"]
    finals = [e for e in pipeline.run(file_source(CLIP)) if isinstance(e, Prediction) and e.final]
    speaker = [e for e in finals if e.head == "speaker"]
    assert speaker and all(e.label == "alice" for e in speaker), speaker  # her own enrollment clip
    strict = Pipeline(model=SPEAKER_MODEL, heads=["speaker"], profiles=tmp_path, speaker_threshold=1.0)
    labels = {e.label for e in strict.run(file_source(CLIP)) if isinstance(e, Prediction) and e.final}
    assert labels == {"unknown"}, "speaker_threshold did not reach the head"
    default = Pipeline(model=SPEAKER_MODEL, heads=["speaker"], profiles=tmp_path).heads[0]
    loose = Pipeline(model=SPEAKER_MODEL, heads=["speaker"], profiles=tmp_path, speaker_false_accept=0.5).heads[0]
    assert default.false_accept == 0.03 and loose.false_accept == 0.5  # the shipped rate, or the one asked for
    assert loose.threshold < default.threshold


def test_speaker_head_errors_are_one_line(tmp_path):
    with pytest.raises(ProfileError, match="expected at least one enrolled speaker") as err:
        Pipeline(model=SPEAKER_MODEL, heads=["speaker"], profiles=tmp_path / "empty")
    assert "\n" not in str(err.value)
    with pytest.raises(EdgeparaError, match="expected profiles= only with the 'speaker' head"):
        Pipeline(model=SPEAKER_MODEL, heads=["emotion"], profiles=tmp_path)
    with pytest.raises(EdgeparaError, match="expected speaker_threshold= only with the 'speaker' head"):
        Pipeline(model=SPEAKER_MODEL, heads=["emotion"], speaker_threshold=0.5)


def test_model_and_embedder_must_agree():
    tiny = Embedder("edgepara-tiny")
    with pytest.raises(EdgeparaError) as err:
        Pipeline(model="edgepara-small", embedder=tiny)
    message = str(err.value)
    assert "\n" not in message and "expected model=" in message and "edgepara-tiny" in message, message
    assert Pipeline(model="edgepara-tiny", embedder=tiny).embedder is tiny
    assert Pipeline(model=str(tiny.path), embedder=tiny).embedder is tiny
    assert Pipeline(embedder=tiny).embedder is tiny


class GrowingHead:
    """A user head that learns a class after a few windows (like a speaker enrolled while listening)."""

    name = "doorbell"

    def __init__(self, grow_after: int):
        self.grow_after, self.calls = grow_after, 0

    def probabilities(self, embedding):
        self.calls += 1
        if self.calls <= self.grow_after:
            return {"ring": 0.3, "silence": 0.7}
        return {"ring": 0.2, "knock": 0.6, "silence": 0.2}


def test_head_whose_classes_change_mid_stream_restarts_its_smoothing(embedder):
    head = GrowingHead(grow_after=2)
    events = list(Pipeline(embedder=embedder, heads=["emotion", head]).run(file_source(CLIP)))
    doorbell = [e for e in events if isinstance(e, Prediction) and e.head == "doorbell"]
    live = [e for e in doorbell if not e.final]
    assert len(live) > 2
    assert all(set(e.probs) == {"ring", "silence"} for e in live[:2])
    assert all(set(e.probs) == {"ring", "knock", "silence"} for e in live[2:])
    assert live[2].probs == pytest.approx({"ring": 0.2, "knock": 0.6, "silence": 0.2})  # no mixing of old state
    final = [e for e in doorbell if e.final]
    assert len(final) == 1 and final[0].label == "knock"
    assert_closed_properly(events, heads=("emotion", "doorbell"))


def test_smoother_classes_change_and_bad_probabilities():
    def scored(probs, t):
        window = Window(t_start=t, t_end=t + 1.0, utterance=0, samples=np.zeros(16000, np.int16))
        return ScoredWindow(window=window, probs={"h": probs})

    smoother = Smoother()
    smoother.process(SpeechStart(t=0.0, utterance=0))
    smoother.process(scored({"a": 0.9, "b": 0.1}, 0.0))
    smoother.process(scored({"b": 0.2, "a": 0.8}, 0.5))  # same classes in another order: still one state
    changed = smoother.process(scored({"a": 0.1, "c": 0.9}, 1.0))
    assert changed[0].probs == pytest.approx({"a": 0.1, "c": 0.9})
    final = smoother.process(SpeechEnd(t=2.0, utterance=0, duration=2.0))
    assert final[0].label == "c" and final[0].probs == pytest.approx({"a": 0.1, "c": 0.9})
    smoother.process(SpeechStart(t=3.0, utterance=1))
    with pytest.raises(HeadError, match="head h: expected probabilities as a non-empty dict"):
        smoother.process(scored({}, 3.0))


# ------------------------------------------------------------------------------------- real microphone

def test_start_stop_with_a_real_microphone(virtual_mic):  # noqa: F811
    recorder = Recorder()
    pipeline = Pipeline(callbacks=[recorder])
    mic = MicrophoneSource(device="pulse", chunk_ms=30)
    assert mic.wait_until_streaming(5.0), "no audio callback from the 'pulse' device within 5 s"
    pipeline.start(mic)
    player = play(virtual_mic["wav"])
    try:
        assert recorder.speech_started.wait(15), "no speech heard from the virtual microphone"
        time.sleep(0.5)
        pipeline.stop()
    finally:
        stop_player(player)
    assert_closed_properly(recorder.events)
    assert recorder.threads == {WORKER}
    assert mic._stream is None, "the microphone was left recording"  # what close() clears


def test_device_failure_mid_utterance_closes_it_then_raises(virtual_mic):  # noqa: F811
    """Runs last in this module: it kills the PulseAudio server (only one this module started)."""
    server = virtual_mic["server"]
    if server is None:
        pytest.skip("PulseAudio was already running here; this test only stops a server it started itself")
    recorder = Recorder()
    pipeline = Pipeline(callbacks=[recorder])
    mic = MicrophoneSource(device="pulse", chunk_ms=30, stall_timeout_s=1.0)
    assert mic.wait_until_streaming(5.0)
    pipeline.start(mic)
    player = play(virtual_mic["wav"])
    try:
        assert recorder.speech_started.wait(15), "no speech heard from the virtual microphone"
        time.sleep(0.3)
        server.kill()
        server.wait(5)
        with pytest.raises(DeviceError) as err:
            pipeline.join(TIMEOUT_S)
    finally:
        stop_player(player)
    assert "\n" not in str(err.value) and "expected audio from 'pulse'" in str(err.value)
    assert_closed_properly(recorder.events)


# ----------------------------------------------------------------------------------- CLI: Ctrl-C, SIGTERM

def natural_events(path: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", "--file", str(path), "--jsonl", "-",
                          "--no-dashboard"], capture_output=True, text=True, timeout=TIMEOUT_S,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_signal_mid_utterance_flushes_the_open_utterance(tmp_path, long_clip, signum):
    natural = natural_events(long_clip["path"])
    natural_end = {e["utterance"]: e["t"] for e in natural if e["type"] == "speech_end"}
    out = tmp_path / "events.jsonl"
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    proc = subprocess.Popen([sys.executable, "-m", "edgepara.cli", "listen", "--file", str(long_clip["path"]),
                             "--realtime", "--jsonl", str(out), "--no-dashboard"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # the first utterance has started and not ended
            seen = [json.loads(line) for line in (out.read_text() if out.exists() else "").splitlines()]
            if any(e["type"] == "speech_start" for e in seen):
                break
            assert proc.poll() is None, f"exited early ({proc.returncode}): {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no speech_start in time"
            time.sleep(0.02)
        assert not any(e["type"] == "speech_end" for e in seen), "the utterance ended before the signal"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, (proc.returncode, stderr)
    assert "Traceback" not in stderr and stderr.strip() == "edgepara: stopped", stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    starts = [e["utterance"] for e in events if e["type"] == "speech_start"]
    ends = [e for e in events if e["type"] == "speech_end"]
    assert starts == [e["utterance"] for e in ends] == [0], events
    assert ends[0]["t"] < natural_end[0] - 0.5, "the utterance was not cut by the signal"
    assert events[-1]["type"] == "prediction" and events[-1]["final"] and events[-1]["utterance"] == 0
    assert events.index(ends[0]) == len(events) - 2


def test_cli_sigterm_while_stdin_stalls_mid_utterance(tmp_path):
    """A pipe that stops sending (the writer hangs) must not keep the open utterance from closing."""
    speech = read_audio(CLIP)[: int(2.0 * SR)]  # cut mid-sentence, and then nothing more arrives
    out, err = tmp_path / "events.jsonl", tmp_path / "stderr.txt"
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "edgepara.cli", "listen", "--stdin", "--jsonl", str(out),
                                 "--no-dashboard"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        proc.stdin.write(speech.tobytes())
        proc.stdin.flush()  # and the pipe stays open, silent
        deadline = time.monotonic() + TIMEOUT_S
        while not (out.exists() and '"speech_start"' in out.read_text()):
            assert proc.poll() is None, f"exited early ({proc.returncode}): {err.read_text()}"
            assert time.monotonic() < deadline, "no speech_start in time"
            time.sleep(0.02)
        time.sleep(0.5)  # let the pipeline read everything there is, so that it is blocked in read()
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM, err.read_text()
        assert time.monotonic() - t0 < 10, "the stop waited for the stalled pipe"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    assert err.read_text().strip() == "edgepara: stopped", err.read_text()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["type"] for e in events if e["type"] != "prediction"] == ["speech_start", "speech_end"], events
    assert events[-1]["type"] == "prediction" and events[-1]["final"], events[-1]


def test_library_tour_demo_runs(tmp_path):
    demo = Path(__file__).parent.parent / "demos" / "library_tour.py"
    r = subprocess.run([sys.executable, str(demo)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg")))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("speech_end at" in line for line in lines), r.stdout  # stop() closed the open utterance
    assert sum(": alice (" in line for line in lines) >= 1, r.stdout
