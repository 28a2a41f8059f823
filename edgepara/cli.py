"""`edgepara` command line. Every user-facing failure is one line on stderr and a non-zero exit."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .errors import DeviceError, EdgeparaError, MissingExtraError
from .stream.sinks import OutputClosedError

DEFAULT_HEAD = "emotion"


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
    return 0


def cmd_devices(args) -> int:
    from .stream.source import list_input_devices

    devices = list_input_devices()
    if not devices:
        raise EdgeparaError("expected at least one audio input device, found none (plug in a microphone, "
                            "or use `edgepara listen --demo` / `--file PATH`)")
    for d in devices:
        print(d)
    return 0


def _build_pipeline(args):
    from .runtime import Embedder
    from .stream.pipeline import Pipeline

    embedder = Embedder(args.model, threads=args.threads, edgetpu=args.edgetpu, notify=_say)
    names = [h.strip() for h in args.head.split(",") if h.strip()]
    if not names:
        raise EdgeparaError(f"expected one or more heads (e.g. --head emotion,mask,speaker), got {args.head!r}")
    heads = [_speaker_head(args, embedder) if n == "speaker" else n for n in names]
    return Pipeline(model=args.model, heads=heads, embedder=embedder, vad_aggressiveness=args.vad_aggressiveness,
                    uncertain_below=args.uncertain_below)


def _speaker_head(args, embedder):
    """'speaker' is built from the enrolled profiles; every other head name or path is a probe head."""
    from .speaker import SpeakerHead

    return SpeakerHead.load(args.profiles, embedder.card, threshold=args.speaker_threshold)


def _source(args):
    from importlib import resources

    from .stream import source as src

    chosen = [bool(args.file), bool(args.stdin), bool(args.demo)]
    if sum(chosen) > 1:
        raise EdgeparaError("expected one input (--file, --stdin, --demo or a microphone), got several")
    if args.demo:
        demo = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"
        return src.file_source(demo, realtime=not args.fast), f"demo clip {demo.name} (RAVDESS, CC BY-NC-SA 4.0)"
    if args.file:
        return src.file_source(args.file, realtime=args.realtime), f"file {args.file}"
    if args.stdin:
        return src.stdin_source(args.rate, channels=args.channels), f"stdin s16le {args.rate} Hz"
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


def cmd_listen(args) -> int:
    from .stream.sinks import JsonlSink

    pipeline = _build_pipeline(args)
    source, description = _source(args)
    sink = JsonlSink(args.jsonl) if args.jsonl else None
    show_dashboard = not args.no_dashboard and sys.stdout.isatty() and args.jsonl != "-"
    saw_speech = False
    try:
        if show_dashboard:
            from .dashboard import Dashboard
            from .runtime import interpreter_backend

            board = Dashboard(pipeline.embedder.name, [h.name for h in pipeline.heads], description,
                              backend=f"{interpreter_backend()} ({pipeline.embedder.delegate})")
            with board.live(screen=False):
                for event in pipeline.run(source):
                    saw_speech |= event.type == "speech_start"
                    board.update([event])
                    board.set_stats(pipeline.stats)
                    if sink:
                        sink.write(event)
                board.set_stats(pipeline.stats)
        else:
            for event in pipeline.run(source):
                saw_speech |= event.type == "speech_start"
                if sink:
                    sink.write(event)
                else:
                    _print_event(event)
    finally:
        if sink:
            sink.close()
        close = getattr(source, "close", None)
        if close:
            close()
    if not saw_speech and (args.file or args.demo or args.stdin):
        _say(f"edgepara: error: no speech found in {description} (try --vad-aggressiveness 0 or check the input level)")
        return 3
    return 0


def _print_event(event) -> None:
    if event.type == "prediction" and event.final:
        print(f"{event.t:8.2f}s  utterance {event.utterance}  {event.head}: {event.label} ({event.confidence:.2f})",
              flush=True)


def cmd_embed(args) -> int:
    import numpy as np

    from .embed import embed_files

    result = embed_files(args.files, model=args.model, per_window=bool(args.per_window), use_vad=not args.no_vad)
    out = Path(args.out)
    outputs = [(out, ".tmp.npy", lambda tmp: np.save(tmp, result.embeddings))]
    if args.per_window:
        per_window = Path(args.per_window)
        per_window = per_window if per_window.suffix == ".npz" else per_window.with_suffix(".npz")
        outputs.append((per_window, ".tmp.npz", lambda tmp: np.savez(
            tmp, embedding=result.window_embeddings, file_index=result.window_file_index,
            t_start=result.window_t_start, t_end=result.window_t_end)))
    _atomic_save_all(outputs)
    print(f"wrote {out}: {result.embeddings.shape[0]} files x {result.embeddings.shape[1]}-d ({args.model})")
    if args.per_window:
        print(f"wrote {per_window}: {len(result.window_embeddings)} windows")
    return 0


def _atomic_save_all(outputs) -> None:
    """outputs: (path, temporary suffix, save(tmp_path)). Every file is written beside its path first and
    only then moved into place, so a failure leaves all the previous files as they were."""
    staged, current = [], None
    try:
        for path, suffix, save in outputs:
            current = path
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append(path.with_name(path.name + suffix))
            save(staged[-1])
        for (path, _, _), tmp in zip(outputs, staged):
            current = path
            os.replace(tmp, path)
    except OSError as err:
        for tmp in staged:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        raise EdgeparaError(f"expected to write {current}, got {err.strerror or err}") from None


def cmd_distill(args) -> int:
    distill = _train_module("distill")
    sizes = tuple(s.strip() for s in args.sizes.split(","))
    cfg = distill.DistillConfig(sizes=sizes, epochs=args.epochs, seed=args.seed, corrupt_share=args.corrupt_share,
                                limit_clips=args.limit_clips, workers=args.workers,
                                losses=tuple(x.strip() for x in args.losses.split(",")))
    distill.distill(cfg, Path(args.cache), Path(args.out), Path(args.runs), data_root=args.data_root,
                    command=_command_line())
    return 0


def cmd_bench(args) -> int:
    if args.what == "stream":
        from .bench_stream import bench_stream

        bench_stream(model=args.model, heads=args.head, out=Path(args.out),
                     seconds=args.seconds, data_root=args.data_root, command=_command_line())
        return 0
    bench = _train_module("bench")
    if args.what == "quality":
        bench.quality(Path(args.out), Path(args.cache), Path(args.runs), data_root=args.data_root,
                      command=_command_line(), ablation=Path(args.ablation) if args.ablation else None)
        print((Path(args.out) / "results.md").read_text())
        if args.write_heads:
            heads = _train_module("heads")
            from .assets import available_models

            for model in available_models():
                for train in (heads.train_emotion_head, heads.train_mask_head, heads.train_mask_type_head,
                              heads.calibrate_speaker_threshold):
                    train(model, Path(args.cache), data_root=args.data_root, command=_command_line())
    else:
        bench.speed(Path(args.out), command=_command_line())
    return 0


def cmd_enroll(args) -> int:
    from .enroll import enroll

    profile = enroll(args.name, args.files, seconds=args.seconds, model=args.model, profiles=args.profiles,
                     device=args.device)
    print(f"enrolled {profile.name}: {profile.n_utterances} utterances, {profile.seconds:.1f} s of speech")
    return 0


def cmd_speakers(args) -> int:
    from .profiles import ProfileStore

    store = ProfileStore(args.profiles)
    if args.remove:
        store.remove(args.remove)
        print(f"removed {args.remove}")
        return 0
    profiles = store.list()
    if not profiles:
        print(f"no speakers enrolled in {store.directory} (edgepara enroll NAME FILE…)")
    for p in profiles:
        print(f"{p.name}: {p.n_utterances} utterances, {p.seconds:.1f} s, model {p.model}")
    return 0


def cmd_train_head(args) -> int:
    user_heads = _train_module("user_heads", needs=("sklearn",))
    user_heads.train_user_head(args.name, args.data, model=args.model, out=args.out, min_per_class=args.min_per_class,
                               command=_command_line())
    return 0


# --- parser -----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from .assets import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="edgepara", description="Real-time paralinguistics on small devices.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("models", help="list the shipped models and their cards").set_defaults(fn=cmd_models)
    sub.add_parser("devices", help="list audio input devices").set_defaults(fn=cmd_devices)

    listen = sub.add_parser("listen", help="live predictions from a microphone, file or stdin")
    listen.add_argument("--head", default=DEFAULT_HEAD, help="comma-separated heads: emotion, mask, speaker, or .npz paths")
    listen.add_argument("--model", default=DEFAULT_MODEL)
    listen.add_argument("--device", default=None, help="input device name or index (see `edgepara devices`)")
    listen.add_argument("--file", help="a wav/flac/ogg file instead of the microphone")
    listen.add_argument("--realtime", action="store_true", help="play --file at real-time pace")
    listen.add_argument("--stdin", action="store_true", help="raw s16le PCM on stdin (e.g. from arecord)")
    listen.add_argument("--rate", type=int, default=16000, help="sample rate of --stdin audio")
    listen.add_argument("--channels", type=int, default=1, help="channels of --stdin audio")
    listen.add_argument("--demo", action="store_true", help="replay the bundled speech clip (no microphone needed)")
    listen.add_argument("--fallback-demo", action="store_true",
                        help="when no microphone is found, say so and replay the bundled clip")
    listen.add_argument("--fast", action="store_true", help="with --demo: as fast as possible, not real time")
    listen.add_argument("--jsonl", help="write events as JSON lines to PATH, or - for stdout")
    listen.add_argument("--no-dashboard", action="store_true")
    listen.add_argument("--vad-aggressiveness", type=int, default=2, choices=range(4), metavar="0-3")
    listen.add_argument("--threads", type=int, default=1)
    listen.add_argument("--edgetpu", action="store_true", help="use the Coral Edge TPU delegate when present")
    listen.add_argument("--uncertain-below", type=float, default=0.4, help="final label 'uncertain' below this probability")
    listen.add_argument("--profiles", default=None, help="speaker profile directory (default: XDG data dir)")
    listen.add_argument("--speaker-threshold", type=float, default=None, help="cosine below which a speaker is 'unknown'")
    listen.set_defaults(fn=cmd_listen)

    embed = sub.add_parser("embed", help="utterance embeddings of audio files, one row per file")
    embed.add_argument("files", nargs="+")
    embed.add_argument("--model", default=DEFAULT_MODEL)
    embed.add_argument("--out", default="emb.npy")
    embed.add_argument("--per-window", metavar="PATH", help="also write each window's embedding (npz with file index and times)")
    embed.add_argument("--no-vad", action="store_true", help="use every window, not only the speech ones")
    embed.set_defaults(fn=cmd_embed)

    distill = sub.add_parser("distill", help="[train] distil the students from the teachers")
    distill.add_argument("--sizes", default="edgepara-tiny,edgepara-small")
    distill.add_argument("--epochs", type=int, default=None,
                         help="passes over the data (default: each size's shipped schedule, tiny 12, small 8)")
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument("--corrupt-share", type=float, default=0.5,
                         help="share of windows heard through real rooms/noise/gain/Opus each epoch (default 0.5)")
    distill.add_argument("--losses", default="whisper,resemblyzer,gram,speaker_id,emotion",
                         help="any of whisper, resemblyzer, gram, speaker_id, emotion (ablations drop some)")
    distill.add_argument("--limit-clips", type=int, default=None, help="use only the first N recordings (smoke tests)")
    distill.add_argument("--workers", type=int, default=2, help="teacher labelling processes")
    distill.add_argument("--cache", default="cache/targets-v2", help="teacher targets (resumable)")
    distill.add_argument("--out", default="models")
    distill.add_argument("--runs", default="runs")
    distill.add_argument("--data-root", default=None)
    distill.set_defaults(fn=cmd_distill)

    bench = sub.add_parser("bench", help="quality, speed and streaming benchmarks")
    bench.add_argument("what", choices=("quality", "speed", "stream"))
    bench.add_argument("--out", default="bench", help="folder for the reports (default: bench/)")
    bench.add_argument("--cache", default="cache/bench")
    bench.add_argument("--runs", default="runs")
    bench.add_argument("--data-root", default=None)
    bench.add_argument("--model", default="edgepara-tiny", help="bench stream: the model")
    bench.add_argument("--head", default="emotion", help="bench stream: heads")
    bench.add_argument("--seconds", type=float, default=300.0, help="bench stream: audio length")
    bench.add_argument("--ablation", default=None, help="bench quality: a folder of distill runs with other --losses")
    bench.add_argument("--write-heads", action="store_true",
                       help="bench quality: also train every model's emotion and mask heads and speaker threshold")
    bench.set_defaults(fn=cmd_bench)

    enroll = sub.add_parser("enroll", help="enroll a speaker from files or the microphone")
    enroll.add_argument("name")
    enroll.add_argument("files", nargs="*")
    enroll.add_argument("--seconds", type=float, default=None, help="record N seconds from the microphone")
    enroll.add_argument("--device", default=None)
    enroll.add_argument("--model", default=DEFAULT_MODEL)
    enroll.add_argument("--profiles", default=None)
    enroll.set_defaults(fn=cmd_enroll)

    speakers = sub.add_parser("speakers", help="list or remove enrolled speakers")
    speakers.add_argument("--remove", metavar="NAME")
    speakers.add_argument("--profiles", default=None)
    speakers.set_defaults(fn=cmd_speakers)

    th = sub.add_parser("train-head", help="[train] train a probe head on your own labelled audio")
    th.add_argument("name")
    th.add_argument("--data", required=True, help="a folder with one sub-folder per class, or a CSV path,label[,speaker]")
    th.add_argument("--model", default=DEFAULT_MODEL)
    th.add_argument("--out", default=None, help="output .npz (default: ./NAME.npz)")
    th.add_argument("--min-per-class", type=int, default=5)
    th.set_defaults(fn=cmd_train_head)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except OutputClosedError as err:  # the JSONL reader went away: stop quietly
        return err.exit_code
    except EdgeparaError as err:
        _say(f"edgepara: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        _say("edgepara: stopped")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly; Python would otherwise complain at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.errno == 28:  # ENOSPC
            _say(f"edgepara: error: expected free disk space, got a full disk ({err.filename or ''})")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
