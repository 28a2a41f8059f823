"""The live path as a loop over stages: vad -> windower -> embedder + heads -> smoother -> events.

Files, stdin, iterables and microphones all go through the same `process(chunk)`, so offline and live
results agree, and the chunk size never changes them. `Pipeline` is the object an application embeds:
run it on the caller's thread (`run`), on a background thread (`start` / `stop` / `join`), or as a stream
of events for `for` and `async for` (`events`).
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

import numpy as np

from ..errors import EdgeparaError
from ..types import Event, Overflow, SpeakerChange, SpeechEnd, SpeechStart, Window
from .events import Channel, End, EventStream
from .sinks import OutputClosedError
from .smoother import ScoredWindow, Smoother
from .vad import SAMPLE_RATE, VadGate, check_chunk
from .windower import Windower

SILENCE_DBFS = -120.0
DEFAULT_STOP_TIMEOUT_S = 5.0
DEFAULT_MAX_QUEUE = 256

logger = logging.getLogger(__name__)

Callback = Callable[[Event], Any]
ErrorHandler = Callable[[Callback, Event, Exception], Any]
HeadSpec = Union[str, Path, Any]  # a shipped head name, a path to NAME.npz, or a head object


@dataclass
class PipelineStats:
    """What a dashboard shows; updated in place by the thread that drives the pipeline (read it from any
    thread: each field is current, though fields may be one chunk apart)."""

    level_dbfs: float = SILENCE_DBFS  # RMS level of the last chunk
    vad_active: bool = False
    utterance: int | None = None  # the utterance being spoken now, if any
    utterances: int = 0  # finished so far
    windows_embedded: int = 0
    last_latency_ms: float = 0.0  # embedder time of the last window
    median_latency_ms: float = 0.0  # over the last 100 windows
    dropped_samples: int = 0
    audio_seconds: float = 0.0
    callback_errors: int = 0  # exceptions raised by callbacks (each reported, none stopped the stream)
    _latencies: deque = field(default_factory=lambda: deque(maxlen=100), repr=False)

    def add_latency(self, ms: float) -> None:
        self._latencies.append(ms)
        self.windows_embedded += 1
        self.last_latency_ms = ms
        self.median_latency_ms = statistics.median(self._latencies)


def level_dbfs(chunk: np.ndarray) -> float:
    """RMS level of an int16 chunk in dB relative to full scale (SILENCE_DBFS for digital silence)."""
    if len(chunk) == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * np.log10(rms / 32768.0)) if rms > 0 else SILENCE_DBFS


def load_heads(heads: HeadSpec | Iterable[HeadSpec], embedder_card: dict, *, profiles: str | Path | None = None,
               speaker_threshold: float | None = None, speaker_false_accept: float | None = None) -> list:
    """Head names or paths -> head objects checked against the model; objects are used as they are.

    "speaker" is the speaker-identification head, built from the profiles enrolled in `profiles` (default:
    the user's profile directory), deciding at `speaker_false_accept` (the share of strangers' utterances named
    as someone; default: the model's calibrated rate) or at a fixed cosine `speaker_threshold`.
    Every other name is a shipped probe head (emotion, mask, ...), and a path a probe head of your own."""
    from ..heads import ProbeHead
    from ..speaker import SPEAKER_HEAD, load_speaker_head

    if isinstance(heads, (str, bytes)) or hasattr(heads, "__fspath__"):
        heads = (heads,)
    loaded, built_speaker = [], False
    for head in heads:
        if isinstance(head, str) and head == SPEAKER_HEAD:
            built_speaker = True
            head = load_speaker_head(embedder_card, profiles=profiles, threshold=speaker_threshold,
                                     false_accept=speaker_false_accept)
        elif isinstance(head, (str, bytes)) or hasattr(head, "__fspath__"):
            head = ProbeHead.load(str(head), embedder_card)
        elif not (hasattr(head, "name") and callable(getattr(head, "probabilities", None))):
            raise EdgeparaError(f"expected a head name, path, or object with .name and .probabilities(), "
                                f"got {type(head).__name__}")
        loaded.append(head)
    names = [h.name for h in loaded]
    if len(set(names)) != len(names):
        raise EdgeparaError(f"expected distinct head names, got {names}")
    if not built_speaker:  # refuse settings that would otherwise be silently ignored
        given = [k for k, v in (("profiles", profiles), ("speaker_threshold", speaker_threshold),
                                ("speaker_false_accept", speaker_false_accept)) if v is not None]
        if given:
            raise EdgeparaError(f"expected {given[0]}= only with the 'speaker' head, got heads {names}")
    return loaded


def _check_model_agrees(model: str | Path, embedder) -> None:
    """model= and embedder= both name a model: refuse rather than silently run one of them."""
    if str(model) == embedder.name:
        return
    path = getattr(embedder, "path", None)
    candidate = Path(model)
    if path is not None and (candidate.suffix == ".tflite" or candidate.exists()):
        if candidate.with_suffix(".tflite").resolve() == Path(path).resolve():
            return
    raise EdgeparaError(f"expected model= to name the embedder's model {embedder.name!r} (or pass only one "
                        f"of model= and embedder=), got model={str(model)!r}")


@dataclass(eq=False)
class _Run:
    """One pass over one source. Flags are read and written under the pipeline's lock."""

    close_source: bool
    stop: threading.Event = field(default_factory=threading.Event)
    stop_requested_at: float | None = None
    finished: bool = False  # the open utterance has been closed; no chunk is processed after this
    ended: bool = False  # the run is over (closing events sent, the channel told); a new one may start
    thread: threading.Thread | None = None
    error: BaseException | None = None
    channel: "Channel | None" = None


class Pipeline:
    """Audio chunks in, events out: SpeechStart, Prediction (live ones after every window, one final one per
    head after each SpeechEnd), SpeechEnd and Overflow, all with stream timestamps in seconds.

    Build it once (the model and heads load here), then feed it in one of three ways:

    - ``for event in pipeline.run(source)``: on the calling thread.
    - ``pipeline.start(source)`` ... ``pipeline.stop()``: on a background thread; callbacks run on that
      thread. ``join()`` waits for the source to end. ``with pipeline.start(source): ...`` stops on exit.
    - ``async for event in pipeline.events(source)`` (or a plain ``for``): the background thread hands the
      events over through a bounded queue.

    A source is any iterable of 1-D int16 chunks at 16 kHz (see edgepara.stream.source: microphone, file,
    stdin, iterable_source for other rates and dtypes). One source at a time per pipeline.

    Every utterance ends with its SpeechEnd followed by one final prediction per head, whatever ends the
    stream: the source running out, `stop()`, an exception from the source (e.g. a microphone unplugged;
    the error is raised after the closing events), KeyboardInterrupt, or a consumer that abandons the
    iteration (then only the callbacks see the closing events). The source is closed at the end unless
    ``close_source=False``.

    Callbacks get every event in order. One that raises is reported and skipped for that event only: the
    stream and the other callbacks go on. Reported means ``on_error(callback, event, exc)`` when given,
    else one logged warning per callback (later failures only count in ``stats.callback_errors``). The one
    exception that does stop the stream is OutputClosedError (a sink whose reader went away).
    A head or the embedder raising stops the stream: that is a bug or a broken model, not something to
    skip quietly.

    Thread safety: `stop`, `request_stop`, `join`, `add_callback`, `remove_callback`, `running`, `error`
    and reading `stats` are safe from any thread; `request_stop` (and `stop`, which then only requests) also
    from a callback, and `request_stop` from a signal handler.
    `process`, `flush` and `reset` drive the stages and belong to one thread at a time; they refuse to run
    while a background run is active.

    Args:
        model: a shipped model name (e.g. "edgepara-tiny") or a path to NAME.tflite; default "edgepara-small".
            With `embedder`, it must name the embedder's model (or be left out).
        heads: head names ("emotion", "mask", "speaker", ...), paths to your own NAME.npz probe heads, or head
            objects (anything with `.name` and `.probabilities(embedding) -> {class: p}`; a head may change its
            classes between windows, e.g. a speaker enrolled while listening: its smoothing restarts).
        profiles: the speaker profile directory for the "speaker" head (default: the user's data directory).
        speaker_false_accept: the share of strangers' utterances the speaker head may name as an enrolled
            person, e.g. 0.03 (default: the model's calibrated rate); the head sets its cosine bar for the
            number of people enrolled from the model's impostor curve.
        speaker_threshold: a fixed cosine below which the speaker head answers "unknown" instead (the unit of
            edgepara 0.3 and earlier; with many people enrolled it names more strangers).
        vad_aggressiveness, frame_ms, end_hangover_ms, min_speech_ms: the webrtcvad gate (see VadGate).
        max_utterance_s: longer speech is split into utterances of at most this length.
        threads, edgetpu: how the embedder runs (ignored when `embedder` is given).
        smoothing: weight of the previous live prediction in the exponential moving average, in [0, 1).
        uncertain_below: a top-class probability below this gives the label "uncertain" (default: each head's
            own calibrated threshold from its card, else 0.4).
        adaptation: "speaker" (default) reads adaptive heads (emotion, arousal) against the voice's own
            baseline: an enrolled speaker's when the speaker head recognises them, else the stream's, which
            starts again when the voice changes (see edgepara.adaptation); "off" reads them against the
            population prior only. Other heads are not affected.
        adapt_profiles: the speaker head's profiles keep up with their voices: an utterance named with high
            confidence (strangers reach its score a hundred times more rarely than the naming bar allows) moves
            that profile 2 % of the way towards it, never further than cosine 0.95 from what was enrolled, never
            from "unknown" utterances; save_speaker_profiles() writes them (listen: `--adapt-profiles`). Off by
            default: measured, it names a few more enrolled people and lets in more strangers
            (docs/benchmarks.md, "Speaker head").
        callbacks: callables that get each event (e.g. JsonlSink, MqttSink, CallbackSink, a function).
        on_error: called as on_error(callback, event, exception) when a callback raises.
        embedder: a ready edgepara.runtime.Embedder (to share one between pipelines).
    """

    def __init__(self, model: str | Path | None = None, heads: HeadSpec | Iterable[HeadSpec] = ("emotion",), *,
                 profiles: str | Path | None = None, speaker_threshold: float | None = None,
                 speaker_false_accept: float | None = None, vad_aggressiveness: int = 2, frame_ms: int = 30,
                 end_hangover_ms: int = 300,
                 min_speech_ms: int = 200, max_utterance_s: float = 10.0, threads: int = 1,
                 edgetpu: bool = False, smoothing: float = 0.5, uncertain_below: float | None = None,
                 adaptation: str = "speaker", adapt_profiles: bool = False, callbacks: Iterable[Callback] = (),
                 on_error: ErrorHandler | None = None, embedder=None):
        if embedder is None:
            from ..assets import DEFAULT_MODEL
            from ..runtime import Embedder

            embedder = Embedder(DEFAULT_MODEL if model is None else model, threads=threads, edgetpu=edgetpu)
        elif model is not None:
            _check_model_agrees(model, embedder)
        rate = int(getattr(embedder, "sample_rate", embedder.card.get("sample_rate", SAMPLE_RATE)))
        if rate != SAMPLE_RATE:
            raise EdgeparaError(f"expected a {SAMPLE_RATE} Hz model, got {embedder.name} at {rate} Hz")
        if on_error is not None and not callable(on_error):
            raise EdgeparaError(f"expected on_error to be callable, got {type(on_error).__name__}")
        self.embedder = embedder
        self.heads = load_heads(heads, embedder.card, profiles=profiles, speaker_threshold=speaker_threshold,
                                speaker_false_accept=speaker_false_accept)
        self.vad = VadGate(aggressiveness=vad_aggressiveness, frame_ms=frame_ms, end_hangover_ms=end_hangover_ms,
                           min_speech_ms=min_speech_ms)
        self.windower = Windower(embedder.window, embedder.hop, max_utterance_s=max_utterance_s)
        self.smoother = Smoother(self.heads, smoothing=smoothing, uncertain_below=uncertain_below)
        # found once, not per window: the speaker head picks the voice adaptive heads read a window against
        self._speaker = _speaker_head(self.heads)
        self._adaptive_heads = [h for h in self.heads if getattr(h, "adaptive", False)]
        self._band_shape_heads = [h for h in self.heads if getattr(h, "reads_band_shape", False)]
        if self._band_shape_heads and not callable(getattr(embedder, "band_shape", None)):
            raise EdgeparaError(f"expected an embedder with band_shape() for head {self._band_shape_heads[0].name} "
                                f"(it reads the window's spectral shape), got {type(embedder).__name__} without one")
        self.adaptation = _adaptation_for(adaptation, self._speaker, embedder.card)
        if adapt_profiles and self._speaker is None:
            raise EdgeparaError(f"expected adapt_profiles=True only with the 'speaker' head, got heads "
                                f"{[h.name for h in self.heads]}")
        self.adapt_profiles = bool(adapt_profiles)
        self._last_speaker: str | None = None  # the speaker head's last final, for SpeakerChange events
        self.callbacks: list[Callback] = []
        for callback in callbacks:
            self.add_callback(callback)
        self.on_error = on_error
        # RLock: a callback runs under it and may call request_stop() or stats without deadlocking.
        self._lock = threading.RLock()
        self._run: _Run | None = None
        self._warned: set[int] = set()
        self.reset()

    # --- callbacks ----------------------------------------------------------------------------------------

    def add_callback(self, callback: Callback) -> None:
        """Also send every later event to `callback` (safe while running: it sees events from the next one)."""
        if not callable(callback):
            raise EdgeparaError(f"expected a callable callback, got {type(callback).__name__}")
        self.callbacks.append(callback)

    def remove_callback(self, callback: Callback) -> None:
        """Stop sending events to `callback` (safe while running)."""
        try:
            self.callbacks.remove(callback)
        except ValueError:
            raise EdgeparaError(f"expected a callback added to this pipeline, got {callback!r}") from None

    # --- driving the stages by hand -----------------------------------------------------------------------

    def reset(self) -> None:
        """A fresh stream: clock at 0, no utterance open, statistics cleared (an open utterance is dropped
        without events; `flush()` first to close it)."""
        self._refuse_if_running_elsewhere("reset")
        self.vad.reset()
        self.windower.reset()
        self.smoother.reset()
        self.adaptation.reset()
        self._new_utterance()
        self.stats = PipelineStats()
        self._samples = 0
        self._dropped_seen = 0

    def process(self, chunk: np.ndarray) -> list[Event]:
        """One chunk (1-D int16, 16 kHz, any length) -> the events it completes, also sent to the callbacks."""
        self._refuse_if_running_elsewhere("process")
        return self._process(chunk)

    def flush(self) -> list[Event]:
        """End of stream: the open utterance (if any) ends and gets its final predictions."""
        self._refuse_if_running_elsewhere("flush")
        return self._flush()

    def note_dropped(self, total_dropped: int) -> list[Event]:
        """Tell the pipeline how many samples the source has dropped in all; an Overflow event for new ones."""
        new = int(total_dropped) - self._dropped_seen
        if new <= 0:
            return []
        self._dropped_seen = int(total_dropped)
        self.stats.dropped_samples = self._dropped_seen
        return self._publish([Overflow(t=self._samples / SAMPLE_RATE, dropped_samples=new)])

    # --- running over a source ----------------------------------------------------------------------------

    def run(self, source: Iterable[np.ndarray], *, close_source: bool = True) -> Iterator[Event]:
        """Events for a whole source, on the calling thread, then the end-of-stream flush.

        The open utterance is closed (SpeechEnd, then its final predictions) however the loop ends; if the
        source raised or the loop was interrupted (KeyboardInterrupt), the closing events come first and the
        exception after them. `stop()` or `request_stop()` from another thread ends the loop after the
        current chunk. Sources with `dropped_samples` (MicrophoneSource) produce Overflow events. The source
        is closed at the end (a microphone stops) unless close_source=False."""
        return self._run_here(source, close_source)

    def start(self, source: Iterable[np.ndarray], *, close_source: bool = True) -> "Pipeline":
        """Run over `source` on a background thread (named "edgepara-pipeline"); returns at once.

        Callbacks run on that thread, in event order; keep them short (a slow callback delays the audio,
        and a microphone then drops samples: Overflow events). The run ends when the source does, or on
        `stop()`. Returns the pipeline, so ``with pipeline.start(source): ...`` stops it on exit.
        Stream times go on from the previous run, if any (call `reset()` first to start the clock at 0)."""
        self._start(source, close_source, channel=None)
        return self

    def request_stop(self) -> None:
        """Ask the current run to end after the chunk it is on, without waiting. Safe anywhere: another
        thread, a callback, a signal handler. The run then closes the open utterance and ends."""
        run = self._run
        if run is not None and not run.stop.is_set():
            run.stop_requested_at = time.monotonic()
            run.stop.set()

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop the background run and wait for it to close the open utterance (its SpeechEnd and final
        predictions reach the callbacks before this returns).

        If the source gives no chunk within `timeout` seconds (e.g. a stalled pipe), the utterance is
        closed here, on the calling thread, and the background thread is left to finish the source's read.
        Raises the exception that ended the run, if any (e.g. DeviceError from a microphone). Does nothing
        when nothing runs. From a callback it only requests the stop (the thread cannot wait for itself)."""
        run = self._run
        if run is None:
            return
        self.request_stop()
        if run.thread is None or run.thread is threading.current_thread():
            return
        run.thread.join(timeout)
        if run.thread.is_alive():
            self._finish_here(run)
        self._raise_error(run)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background run to end (the source ran out or the run was stopped). True when it
        has ended, False on timeout. Raises the exception that ended the run, if any."""
        run = self._run
        if run is None or run.thread is None:
            return True
        if run.thread is threading.current_thread():
            raise EdgeparaError("expected join() from another thread, got it from a callback on the pipeline's "
                                "own thread (which would wait for itself; use request_stop() there)")
        run.thread.join(timeout)
        if not run.thread.is_alive() or run.ended:
            self._raise_error(run)
            return True
        return False

    @property
    def running(self) -> bool:
        """True from start() (or a run() loop's first event) until the run has closed its stream."""
        run = self._run
        return run is not None and not run.ended

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last run, or None."""
        run = self._run
        return None if run is None else run.error

    def events(self, source: Iterable[np.ndarray], *, max_queue: int = DEFAULT_MAX_QUEUE,
               close_source: bool = True, stop_timeout: float = DEFAULT_STOP_TIMEOUT_S) -> "EventStream":
        """Start a background run over `source` and return its events as an EventStream, for
        ``async for event in ...`` or ``for event in ...``.

        Up to `max_queue` events wait for the consumer; when it falls that far behind, the pipeline waits
        for it (a microphone then drops audio, reported as Overflow events) rather than holding unbounded
        memory. Callbacks still run, on the background thread. The stream ends after the closing events;
        an exception from the source is raised from the iteration after them. See EventStream for
        stopping early."""
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise EdgeparaError(f"expected max_queue as a positive number of events, got {max_queue!r}")
        channel = Channel(max_queue)
        run = self._start(source, close_source, channel=channel)
        return EventStream(run, channel, stop_timeout, finish_here=lambda: self._finish_here(run))

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.stop()
        except Exception:
            if exc_type is None:
                raise
            logger.warning("edgepara: the pipeline's run had also failed", exc_info=True)

    # --- internals ----------------------------------------------------------------------------------------

    def _refuse_if_running_elsewhere(self, what: str) -> None:
        run = self._run
        if run is not None and run.thread is not None and not run.ended \
                and run.thread is not threading.current_thread():
            raise EdgeparaError(f"expected {what}() while no background run is active, got one running: "
                                f"call stop() first")

    def _begin(self, close_source: bool, channel: "Channel | None" = None) -> _Run:
        with self._lock:
            if self._run is not None and not self._run.ended:
                raise EdgeparaError("expected one source at a time, got a second while a run is active: "
                                    "call stop() first (or make a second Pipeline)")
            run = _Run(close_source=close_source, channel=channel)
            self._run = run
            return run

    def _run_here(self, source, close_source: bool) -> Iterator[Event]:
        run = self._begin(close_source)  # at the first next(), so a generator never iterated blocks nothing
        try:
            yield from self._drive(run, source)
        except BaseException as err:
            run.error = None if isinstance(err, GeneratorExit) else err
            raise
        finally:
            self._end(run)

    def _start(self, source, close_source: bool, channel: "Channel | None") -> _Run:
        run = self._begin(close_source, channel)
        run.thread = threading.Thread(target=self._work, args=(run, source), name="edgepara-pipeline",
                                      daemon=True)  # daemon: a source blocked in read() must not hang exit
        run.thread.start()
        return run

    def _work(self, run: _Run, source) -> None:
        try:
            for _ in self._drive(run, source):
                pass
        except BaseException as err:
            run.error = err
            if run.channel is None:  # a channel raises it to its consumer; otherwise nobody may be asking
                logger.warning("edgepara: the pipeline stopped: %s: %s", type(err).__name__, err)
        finally:
            self._end(run)

    def _drive(self, run: _Run, source) -> Iterator[Event]:
        iterator = None
        try:
            iterator = iter(source)  # a microphone starts here
            while not run.stop.is_set():
                try:
                    chunk = next(iterator)
                except StopIteration:
                    break
                with self._lock:
                    if run.finished:  # closed meanwhile by stop() on another thread
                        return
                    events = self.note_dropped(getattr(source, "dropped_samples", 0)) + self._process(chunk)
                yield from events
        except GeneratorExit:  # the consumer went away: the callbacks still get the closing events
            self._finish(run)
            raise
        except BaseException:
            try:
                events = self._finish(run)
            except Exception:  # closing failed as well (e.g. a broken head): the first error matters more
                logger.debug("edgepara: closing the utterance after an error failed", exc_info=True)
                events = []
            yield from events
            raise
        else:
            yield from self._finish(run)
        finally:
            if run.close_source:
                _close(source, iterator)

    def _finish(self, run: _Run) -> list[Event]:
        """Close the open utterance once per run, whichever thread gets here first."""
        with self._lock:
            if run.finished:
                return []
            run.finished = True
            return self._flush()

    def _finish_here(self, run: _Run) -> None:
        """stop() timed out waiting for the source: close the utterance on this thread and end the run."""
        try:
            self._finish(run)
        finally:
            self._end(run)

    def _end(self, run: _Run) -> None:
        with self._lock:
            if run.ended:
                return
            run.ended = True
            run.finished = True
        if run.channel is not None:
            run.channel.put(End(run.error))

    def _raise_error(self, run: _Run) -> None:
        if run.error is not None:
            raise run.error

    def _process(self, chunk) -> list[Event]:
        x = check_chunk(chunk)
        self._samples += len(x)
        self.stats.level_dbfs = level_dbfs(x)
        self.stats.audio_seconds = self._samples / SAMPLE_RATE
        return self._publish(self._after_vad(self.vad.process(x)))

    def _flush(self) -> list[Event]:
        items = self._after_vad(self.vad.flush())
        items += self._after_windower(self.windower.flush())
        return self._publish(items)

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
                self._new_utterance()
            elif isinstance(item, SpeechEnd):
                self.stats.utterances += 1
                out.append(item)
                mean = self._utterance_sum / self._utterance_windows if self._utterance_windows else None
                voice = self._enrolled_voice()
                # adaptive heads' finals read the utterance's mean embedding against the baseline its windows
                # were read against; then the finished utterance joins its voice's baseline
                finals = {} if mean is None else {
                    h.name: h.probabilities(mean, self.adaptation.baseline_for(self._utterance_voice))
                    for h in self._adaptive_heads}
                if self._speaker is not None and self._speaker_voices is not None:  # the utterance's voice
                    finals[self._speaker.name] = self._speaker.utterance_probabilities(self._speaker_voices)
                closing = self.smoother.process(item, final_probs=finals)  # the finals follow their SpeechEnd
                out += closing + self._speaker_change(closing)
                if mean is not None:
                    self.adaptation.end_utterance(mean, voice)
                    if self.adapt_profiles and voice is not None:
                        self._adapt_profile(voice, mean)
                self._new_utterance()
        return out

    def _score(self, window: Window) -> ScoredWindow:
        embedding, ms = self.embedder.timed_embed(window.samples)
        self.stats.add_latency(ms)
        # Heads that read a voice's baseline come last: the speaker head's scores pick the voice.
        shape = self.embedder.band_shape() if self._band_shape_heads else None
        probs = {head.name: head.probabilities(embedding, band_shape=shape) if head in self._band_shape_heads
                 else head.probabilities(embedding) for head in self.heads if head not in self._adaptive_heads}
        baseline = None
        speaker = self._speaker
        if speaker is not None:  # the utterance's voice so far: whom the final names (adaptive heads, profiles)
            voice = speaker.voice(embedding)
            self._speaker_voices = voice if self._speaker_voices is None else self._speaker_voices + voice
        if self._adaptive_heads:
            voice = self._utterance_voice = self._enrolled_voice()
            state = self.adaptation.baseline_for(voice)
            baseline = {"voice": voice or "stream", "utterances": state.n, "adaptation": self.adaptation.mode}
            probs.update({head.name: head.probabilities(embedding, state) for head in self._adaptive_heads})
        e = np.asarray(embedding, np.float64)
        self._utterance_sum = e if self._utterance_sum is None else self._utterance_sum + e
        self._utterance_windows += 1
        return ScoredWindow(window=window, probs={h.name: probs[h.name] for h in self.heads}, latency_ms=ms,
                            baseline=baseline)

    def save_speaker_profiles(self) -> list[str]:
        """Writes what this pipeline learnt about enrolled speakers into their profiles: their baselines
        (save_speaker_baselines) and, with `adapt_profiles`, the adapted centroids (each utterance once).
        Returns the names updated. `edgepara listen` calls it when the stream ends."""
        updated = self.save_speaker_baselines()
        speaker = self._speaker
        if speaker is None or getattr(speaker, "store", None) is None:
            return updated
        for name, units in list(speaker.adapted.items()):
            if units and speaker.store.adapt(name, units, speaker.speaker_dims) is not None and name not in updated:
                updated.append(name)
            del speaker.adapted[name]
        return updated

    def save_speaker_baselines(self) -> list[str]:
        """Writes what the enrolled speakers said since the pipeline was built into their profiles' baselines
        (each once: a second call adds only what came after). Returns the names updated. `edgepara listen`
        calls it when the stream ends."""
        speaker = self._speaker
        if speaker is None or getattr(speaker, "store", None) is None:
            return []
        updated = []
        for name, heard in list(self.adaptation.heard.items()):
            if heard.n and speaker.store.add_to_baseline(name, heard) is not None:
                updated.append(name)
            del self.adaptation.heard[name]
        return updated

    def _speaker_change(self, closing: list) -> list[SpeakerChange]:
        """A SpeakerChange when the speaker head's final for this utterance names someone other than the last
        one did (anything not enrolled counts as "unknown"; unknown after unknown is no change)."""
        from ..profiles import UNKNOWN_SPEAKER as UNKNOWN

        speaker = self._speaker
        if speaker is None:
            return []
        final = next((e for e in closing if getattr(e, "head", None) == speaker.name and getattr(e, "final", False)),
                     None)
        if final is None:
            return []
        now = final.label if final.label in speaker.speakers else UNKNOWN
        previous, self._last_speaker = self._last_speaker, now
        if previous is None or previous == now:
            return []
        return [SpeakerChange(t=final.t, utterance=final.utterance, previous=previous, speaker=now)]

    def _new_utterance(self) -> None:
        """What the adaptation gathers over one utterance: its embeddings' sum, its windows' voices' sum."""
        self._utterance_sum, self._utterance_windows, self._speaker_voices = None, 0, None
        self._utterance_voice = None  # the voice the last window was read against

    def _adapt_profile(self, voice: str, mean: np.ndarray) -> None:
        """`adapt_profiles`: the named speaker's profile moves a bounded step towards this utterance when the
        head named them confidently (the utterance's score, what the final decided on)."""
        from ..speaker import score_to_cosine

        speaker = self._speaker
        score = speaker.utterance_probabilities(self._speaker_voices)[voice]
        speaker.adapt(voice, float(score_to_cosine(score)), mean)

    def _enrolled_voice(self) -> str | None:
        """The enrolled speaker the speaker head names for the utterance so far (as its final prediction
        decides), or None."""
        speaker = self._speaker
        if speaker is None or self._speaker_voices is None:
            return None
        label, _ = speaker.label_for(speaker.utterance_probabilities(self._speaker_voices))
        return label if label in speaker.speakers else None

    def _publish(self, events: list[Event]) -> list[Event]:
        self.stats.vad_active = self.vad.active
        self.stats.utterance = self.windower.utterance
        run = self._run
        channel = run.channel if run is not None and not run.ended else None
        for event in events:
            for callback in tuple(self.callbacks):  # a snapshot: add/remove from another thread is safe
                self._call(callback, event)
            if channel is not None:
                channel.put(event, stop=run.stop)
        return events

    def _call(self, callback: Callback, event: Event) -> None:
        try:
            callback(event)
        except OutputClosedError:
            raise  # the reader of a sink went away: nothing left to stream for
        except Exception as err:
            self.stats.callback_errors += 1
            if self.on_error is not None:
                try:
                    self.on_error(callback, event, err)
                except Exception:
                    logger.exception("edgepara: on_error raised while reporting a callback's error")
            elif id(callback) not in self._warned:
                self._warned.add(id(callback))
                logger.warning("edgepara: callback %s raised %s: %s; the stream goes on (later errors from it "
                               "are only counted in stats.callback_errors)", _describe(callback),
                               type(err).__name__, err)


def _speaker_head(heads: list):
    from ..speaker import SpeakerHead

    return next((h for h in heads if isinstance(h, SpeakerHead)), None)


def _adaptation_for(mode: str, speaker, model_card: dict):
    """The stream's Adaptation, with the enrolled speakers' baselines from their profiles."""
    from ..adaptation import Adaptation

    enrolled = {} if speaker is None else {p.name: p.baseline_state() for p in speaker.profiles}
    return Adaptation(mode, speaker_dims=model_card.get("speaker_dims"), enrolled=enrolled)


def _describe(callback: Callable) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__qualname__


def _close(source, iterator) -> None:
    if iterator is not None and iterator is not source and callable(getattr(iterator, "close", None)):
        iterator.close()  # e.g. MicrophoneSource's own generator, which stops the device in its finally
    close = getattr(source, "close", None)
    if callable(close):
        close()
