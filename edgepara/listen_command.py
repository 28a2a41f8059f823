"""`edgepara listen`: the live path from the command line (source, pipeline, sinks, dashboard), stopped cleanly
on Ctrl-C/SIGTERM with the open utterance's finals kept. Loaded by cli.py only for `listen`."""
from __future__ import annotations

import sys
from pathlib import Path

from .cli import _say, _version
from .errors import INTERRUPTED, DeviceError, EdgeparaError, NoSpeechError, UsageError


def _build_pipeline(args):
    from .runtime import Embedder
    from .stream.pipeline import Pipeline

    embedder = Embedder(args.model, threads=args.threads, edgetpu=args.edgetpu,
                        notify=lambda message: _say(f"edgepara: {message}"))
    names = [h.strip() for h in args.head.split(",") if h.strip()]
    if not names:
        raise UsageError(f"expected one or more heads (e.g. --head emotion,mask,speaker), got {args.head!r}")
    # The library builds the speaker head from the enrolled profiles; --profiles, --speaker-false-accept and
    # --speaker-threshold only mean something with it, so they are passed only then (the library refuses them
    # otherwise).
    if args.speaker_threshold is not None and args.speaker_false_accept is not None:
        raise UsageError(f"expected --speaker-false-accept or --speaker-threshold, got both "
                         f"({args.speaker_false_accept} and {args.speaker_threshold})")
    if args.adapt_profiles and "speaker" not in names:
        raise UsageError(f"expected --adapt-profiles with the speaker head (--head …,speaker), got --head {args.head}")
    speaker = {"profiles": args.profiles, "speaker_threshold": args.speaker_threshold,
               "speaker_false_accept": args.speaker_false_accept,
               "adapt_profiles": bool(args.adapt_profiles)} if "speaker" in names else {}
    return Pipeline(model=args.model, heads=names, embedder=embedder, vad_aggressiveness=args.vad_aggressiveness,
                    uncertain_below=args.uncertain_below, adaptation=args.adaptation, **speaker)


STOP_TIMEOUT_S = 2.0  # after Ctrl-C/SIGTERM, how long a silent source (a stalled pipe) may delay the flush


class _StopOnSignals:
    """While listening, Ctrl-C (SIGINT) and SIGTERM ask the stream to stop instead of killing the loop, so the
    open utterance still gets its speech_end and final predictions; the command then exits 128 + signal.
    A second signal quits at once (KeyboardInterrupt). Only the main thread can install signal handlers.
    A source with `interrupt()` (the Wyoming source, which may be waiting to reconnect) is also told to end at once,
    so the stop does not wait STOP_TIMEOUT_S for a chunk that is not coming."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, stream, source=None):
        self.stream, self.received, self._previous = stream, None, {}
        self._interrupt = getattr(source, "interrupt", None)

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.stream.request_stop()
        if self._interrupt is not None:
            self._interrupt()

    def __enter__(self) -> "_StopOnSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                signum = getattr(signal, name)
                self._previous[signum] = signal.signal(signum, self._handle)
        if INTERRUPTED:  # a Ctrl-C while starting that Python dropped (launch.py noted it): stop as asked
            self.received = INTERRUPTED[-1]
            self.stream.request_stop()
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _source(args):
    from importlib import resources

    from .stream import source as src

    chosen = [bool(args.file), bool(args.stdin), bool(args.demo), bool(args.wyoming)]
    if sum(chosen) > 1:
        raise UsageError("expected one input (--file, --stdin, --demo, --wyoming or a microphone), got several")
    if args.demo:
        demo = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"
        return src.file_source(demo, realtime=not args.fast), f"demo clip {demo.name} (RAVDESS, CC BY-NC-SA 4.0)"
    if args.file:
        return src.file_source(args.file, realtime=args.realtime), f"file {args.file}"
    if args.stdin:
        # Unbuffered: the pipeline's thread may still be blocked reading a stalled pipe when Ctrl-C/SIGTERM
        # ends the command, and a read blocked inside sys.stdin's buffer would hold a lock that interpreter
        # shutdown needs (a fatal error at exit); the raw descriptor has no such lock.
        raw = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
        # a WAV/FLAC header on stdin overrides --rate/--channels (stdin_source looks at the first bytes)
        return src.stdin_source(args.rate, channels=args.channels, stream=raw), "stdin"
    if args.wyoming:  # connects now: an address with no Wyoming microphone behind it fails in one line
        wyoming = src.wyoming_source(args.wyoming, notify=lambda message: _say(f"edgepara: wyoming: {message}"))
        return wyoming, wyoming.description
    try:
        mic = src.MicrophoneSource(device=args.device)
    except DeviceError as err:
        if not args.fallback_demo or args.device is not None:
            raise
        _say(f"edgepara: {err}")
        _say("edgepara: --fallback-demo: replaying the bundled demo clip instead")
        args.demo = True
        return _source(args)
    return mic, f"microphone {mic.description}"


MQTT_OPTIONS = ("mqtt_prefix", "mqtt_device", "mqtt_qos", "mqtt_ca", "mqtt_config", "mqtt_queue", "mqtt_discovery",
                "mqtt_discovery_remove")


def _discovery_settings(args, pipeline=None):
    """Home Assistant discovery for --mqtt-discovery [PREFIX] / --mqtt-discovery-remove, or None. The heads are
    the pipeline's; without one (removing), their names are read off --head without loading the model."""
    if args.mqtt_discovery is None and not args.mqtt_discovery_remove:
        return None
    from .stream.ha_discovery import DEFAULT_DISCOVERY_PREFIX, DiscoveryHead, DiscoverySettings

    if pipeline is not None:
        # an enum sensor (its labels offered in automations) for heads whose labels are their classes
        heads = tuple(DiscoveryHead(h.name, None if hasattr(h, "label_for") else tuple(getattr(h, "classes", ()))
                                    or None) for h in pipeline.heads)
        model = pipeline.embedder.name
    else:
        heads, model = tuple(_head_names(args)), None
    return DiscoverySettings(prefix=args.mqtt_discovery or DEFAULT_DISCOVERY_PREFIX, heads=heads, model=model,
                             version=_version(), remove=bool(args.mqtt_discovery_remove))


def _head_names(args) -> list[str]:
    """The names --head gives its heads (a head file's card may name it otherwise than its file)."""
    from .heads import ProbeHead
    from .speaker import SPEAKER_HEAD

    specs = [h.strip() for h in args.head.split(",") if h.strip()]
    if not specs:
        raise UsageError(f"expected one or more heads (e.g. --head emotion,mask,speaker), got {args.head!r}")
    return [spec if spec == SPEAKER_HEAD else ProbeHead.load(spec).name for spec in specs]


def _remove_discovery(args) -> int:
    """--mqtt-discovery-remove: empty retained configs for this device's speaking sensor, the sensors of the
    heads --head names and any other config the broker holds for the device (MqttSink finds those), which
    removes them from Home Assistant; nothing is listened to."""
    mqtt = _mqtt_sink(args)
    if mqtt is None:  # --mqtt-discovery-remove alone: _mqtt_sink refused it already; kept for clarity
        return 0
    topics = mqtt.discovery_topics
    if mqtt.close():
        raise EdgeparaError(f"expected {mqtt.address.url} to acknowledge the removal of {len(topics)} Home "
                            f"Assistant discovery configs, got no acknowledgement for some; run it again")
    print(f"cleared {len(topics)} Home Assistant discovery configs of device {mqtt.device!r} (their entities "
          f"are removed): {', '.join(topics)}", flush=True)
    return 0


def _mqtt_sink(args, pipeline=None):
    """The MQTT sink for `listen --mqtt URL`, or None. Credentials come only from the environment or
    --mqtt-config, never from the command line (visible to every user in `ps`)."""
    if not args.mqtt:
        given = [o for o in MQTT_OPTIONS if getattr(args, o) is not None]
        if given:
            raise UsageError(f"expected --mqtt URL with --{given[0].replace('_', '-')}, got no --mqtt")
        return None
    from .stream.mqtt import DEFAULT_PREFIX, DEFAULT_QOS, MqttSink

    return MqttSink(args.mqtt, prefix=args.mqtt_prefix or DEFAULT_PREFIX, device=args.mqtt_device,
                    qos=DEFAULT_QOS if args.mqtt_qos is None else args.mqtt_qos, ca_file=args.mqtt_ca,
                    config=args.mqtt_config, queue_size=args.mqtt_queue,
                    notify=lambda message: _say(f"edgepara: mqtt: {message}"),
                    discovery=_discovery_settings(args, pipeline))


def listen(args) -> int:
    from .stream.sinks import JsonlSink

    if args.mqtt_discovery_remove:  # a one-off: clear the Home Assistant entities, listen to nothing
        return _remove_discovery(args)
    pipeline = _build_pipeline(args)
    mqtt = _mqtt_sink(args, pipeline)  # connects now: a bad URL, broker or password fails before any audio is opened
    if mqtt:
        pipeline.callbacks.append(mqtt)
    if args.jsonl == "-" and sys.stdout is None:  # started with stdout closed (`>&-`): Python sets it to None
        raise EdgeparaError("--jsonl -: expected an open standard output, got a closed one")
    source, description = _source(args)
    sink = JsonlSink(args.jsonl) if args.jsonl else None
    show_dashboard = (not args.no_dashboard and sys.stdout is not None and sys.stdout.isatty()
                      and args.jsonl != "-")
    saw_speech = False
    # On a background thread, so that a signal only asks it to stop and the closing events still come.
    stream = pipeline.events(source, stop_timeout=STOP_TIMEOUT_S)
    signals = _StopOnSignals(stream, source)
    try:
        if show_dashboard:
            from .dashboard import Dashboard
            from .runtime import interpreter_backend

            board = Dashboard(pipeline.embedder.name, [h.name for h in pipeline.heads], description,
                              backend=f"{interpreter_backend()} ({pipeline.embedder.delegate})",
                              class_counts={h.name: len(h.classes) for h in pipeline.heads
                                            if isinstance(getattr(h, "classes", None), (list, tuple))},
                              status=mqtt.status_line if mqtt else None)
            with board.live(screen=False), signals:
                for event in stream:
                    saw_speech |= event.type == "speech_start"
                    board.update([event])
                    board.set_stats(pipeline.stats)
                    if sink:
                        sink.write(event)
                board.set_stats(pipeline.stats)
            earlier = board.scrolled_off_lines()
            if earlier:  # the last frame stays on screen with the newest utterances; these came before them
                print(f"earlier utterances ({len(earlier)}):", *earlier, sep="\n", flush=True)
        else:
            with signals:
                for event in stream:
                    saw_speech |= event.type == "speech_start"
                    if sink:
                        sink.write(event)
                    else:
                        _print_event(event)
    finally:
        stream.stop()  # no-op after the end; on an error here (e.g. closed output) it ends the run and the source
        if sink:
            sink.close()
        if mqtt:
            mqtt.close()  # waits (bounded) for queued final events to be acknowledged; says so if some were not
        _save_profiles(pipeline)
    if signals.received is not None:
        _say("edgepara: stopped")
        return 128 + signals.received
    if not saw_speech and (args.file or args.demo or args.stdin):
        raise NoSpeechError(f"no speech found in {description} (try --vad-aggressiveness 0 or check the input level)")
    return 0


def final_text(event) -> str:
    """A final's label and confidence; an "uncertain" one also names the class it leans to, since a bare
    probability names none ("unknown" speakers never show the nearest enrolled name)."""
    if event.label == "uncertain" and event.probs:
        return f"uncertain (leaning {max(event.probs, key=event.probs.get)}, {event.confidence:.2f})"
    return f"{event.label} ({event.confidence:.2f})"


def _save_profiles(pipeline) -> None:
    """What enrolled speakers said goes into their profiles (baselines; with --adapt-profiles, centroids); a
    store that cannot be written (a full disk, no permission) costs only that update, said in one line."""
    try:
        pipeline.save_speaker_profiles()
    except EdgeparaError as err:
        _say(f"edgepara: warning: speaker profiles not updated: {err}")


def _print_event(event) -> None:
    if event.type == "prediction" and event.final:
        print(f"{event.t:8.2f}s  utterance {event.utterance}  {event.head}: {final_text(event)}", flush=True)
    elif event.type == "speaker_change":
        print(f"{event.t:8.2f}s  utterance {event.utterance}  speaker changed: {event.previous} -> {event.speaker}",
              flush=True)
