"""`edgepara bench stream --profile`: where one thread's time goes in a long run of the live pipeline.

Each stage's methods are wrapped with a clock on the objects of this one run (the pipeline itself carries no
timing code): reading + resampling a 48 kHz stereo FLAC, VAD, windowing, the numpy log-mel frontend, the int8
interpreter, quantising in and out, heads, smoother, the JSONL sink and the dashboard (state updates plus a
render every 0.25 s of audio, as `listen` draws it). Start-up time to the first prediction and peak RSS are
measured on `edgepara listen` itself, each in a fresh process. Needs no training extra.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from .bench_stream import long_recording, speaker_head_for_bench

FILE_RATE, FILE_CHANNELS = 48000, 2  # what a USB microphone or a phone recording typically gives
RENDER_EVERY_S = 0.25  # the dashboard's refresh period (4 Hz)
# Targets on this machine (issue "On the board"): first prediction, peak RSS of `listen`.
STARTUP_TARGET_S, RSS_TARGET_MB = 1.0, 80.0


class StageClock:
    """CPU time of this process per stage: wrap(obj, "method", "stage") times every call of obj.method.
    CPU time, not wall time, so other programs on a shared machine do not inflate a stage (the pipeline runs
    on one thread here; CPU time also counts work a library hands to helper threads)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()

    def wrap(self, obj, method: str, stage: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.process_time() - t0
                self.calls[stage] += 1

        setattr(obj, method, timed)

    def time(self, stage: str, fn, *args):
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            self.seconds[stage] += time.process_time() - t0
            self.calls[stage] += 1


def write_test_file(audio: np.ndarray, path: Path) -> Path:
    """The 16 kHz recording as a 48 kHz stereo FLAC, so reading includes decoding and resampling."""
    import soundfile as sf
    from scipy.signal import resample_poly

    up = resample_poly(audio.astype(np.float32) / 32768.0, FILE_RATE // 16000, 1).astype(np.float32)
    sf.write(path, np.stack([up, 0.8 * up], axis=1), FILE_RATE, subtype="PCM_16")
    return path


def profile_pipeline(model: str, heads: list[str], path: Path, audio_16k: np.ndarray) -> dict:
    """One pass over the file through the full pipeline, every stage on its own clock."""
    from rich.console import Console

    from .dashboard import Dashboard
    from .runtime import Embedder
    from .stream.pipeline import Pipeline
    from .stream.sinks import JsonlSink
    from .stream.source import file_source

    embedder = Embedder(model, threads=1)
    head_objs = [speaker_head_for_bench(embedder, audio_16k) if h == "speaker" else h for h in heads]
    pipeline = Pipeline(model=model, heads=head_objs, embedder=embedder)
    sink = JsonlSink(os.devnull)
    board = Dashboard(embedder.name, [h.name for h in pipeline.heads], path.name,
                      console=Console(file=io.StringIO(), width=100, height=32, force_terminal=True))
    clock, before = StageClock(), StageClock()
    clock.wrap(pipeline.vad, "process", "vad")
    clock.wrap(pipeline.vad, "flush", "vad")
    clock.wrap(pipeline.windower, "process", "windowing")
    clock.wrap(pipeline.windower, "flush", "windowing")
    clock.wrap(embedder, "embed", "_embed")  # frontend + interpreter + quantising in and out
    clock.wrap(embedder, "features", "frontend")
    clock.wrap(embedder.interpreter, "invoke", "interpreter")
    for head in pipeline.heads:
        clock.wrap(head, "probabilities", "heads")
    clock.wrap(pipeline.smoother, "process", "smoother")
    pipeline.callbacks = [lambda e: clock.time("sinks", sink, e),
                          lambda e: clock.time("dashboard (updates)", board.update, e)]

    source = file_source(path)
    chunks, next_render, finals = iter(source), 0.0, 0
    cpu0 = time.process_time()
    while True:
        chunk = clock.time("read/resample", next, chunks, None)
        if chunk is None:
            break
        events = clock.time("_process", pipeline.process, chunk)
        finals += sum(1 for e in events if getattr(e, "final", False))
        if pipeline.stats.audio_seconds >= next_render:
            clock.time("dashboard (renders)", _render, board, pipeline.stats)
            # The same frame laid out whole, as before the panel cache (0.2.x): before/after in one run.
            before.time("dashboard (renders)", _render, board, pipeline.stats, False)
            next_render += RENDER_EVERY_S
    finals += sum(1 for e in clock.time("_process", pipeline.flush) if getattr(e, "final", False))
    cpu = time.process_time() - cpu0

    s = clock.seconds
    exclusive = dict(s)
    exclusive["quantise in/out"] = s["_embed"] - s["frontend"] - s["interpreter"]
    inside_process = ("vad", "windowing", "_embed", "heads", "smoother", "sinks", "dashboard (updates)")
    exclusive["pipeline bookkeeping"] = s["_process"] - sum(s[k] for k in inside_process)
    for key in ("_embed", "_process"):
        exclusive.pop(key)
    audio_s = pipeline.stats.audio_seconds
    windows = clock.calls["interpreter"]
    calls = dict(clock.calls, **{"quantise in/out": windows, "pipeline bookkeeping": clock.calls["_process"]})
    total = sum(exclusive.values())
    stages = {name: {"seconds": round(sec, 4), "ms_per_audio_second": round(1000 * sec / audio_s, 4),
                     "share_percent": round(100 * sec / total, 1),
                     "calls": calls[name], "ms_per_call": round(1000 * sec / calls[name], 4) if calls[name] else None}
              for name, sec in sorted(exclusive.items(), key=lambda kv: -kv[1])}
    return {"model": model, "heads": heads, "audio_seconds": round(audio_s, 1), "windows": windows,
            "final_predictions": finals, "stages": stages,
            "dashboard_render_ms_mean": {
                "with_panel_cache": round(1000 * s["dashboard (renders)"] / max(1, clock.calls["dashboard (renders)"]), 4),
                "without_panel_cache_as_before": round(
                    1000 * before.seconds["dashboard (renders)"] / max(1, before.calls["dashboard (renders)"]), 4)},
            "sum_of_stages_seconds": round(total, 3), "process_cpu_seconds": round(cpu, 3),
            "percent_of_one_core": round(100 * cpu / audio_s, 2)}


def _render(board, stats, cached: bool = True) -> None:
    board.set_stats(stats)
    view = board.render()
    board.console.print(view if cached else dataclasses.replace(view, panels=None))
    board.console.file.seek(0)
    board.console.file.truncate()


def frontend_before_after(model: str, audio: np.ndarray, repeats: int = 300) -> dict:
    """The live frontend (frames that overlapping windows share are reused) vs computing every window from
    scratch as up to 0.2.x, on the same consecutive windows, interleaved in one run, beside the interpreter."""
    from .frontend import LogMel, OverlappingLogMel
    from .runtime import Embedder

    embedder = Embedder(model, threads=1)
    scratch = LogMel(embedder.frontend_config)
    live = OverlappingLogMel(embedder.frontend_config, embedder.hop)
    starts = list(range(0, len(audio) - embedder.window, embedder.hop))[:repeats]
    timings = {"from_scratch": [], "live_reusing_frames": [], "interpreter_invoke": []}
    worst = 0.0
    for start in starts:  # interleaved, so machine noise hits all three alike
        w = audio[start:start + embedder.window]
        t0 = time.perf_counter()
        a = scratch(w)
        t1 = time.perf_counter()
        b = live(w)
        t2 = time.perf_counter()
        timings["from_scratch"].append(t1 - t0)
        timings["live_reusing_frames"].append(t2 - t1)
        worst = max(worst, float(np.max(np.abs(a - b))))
        embedder.embed(w)  # sets the input tensor; then time the interpreter alone
        t0 = time.perf_counter()
        embedder.interpreter.invoke()
        timings["interpreter_invoke"].append(time.perf_counter() - t0)
    med = {k: round(1000 * statistics.median(v), 4) for k, v in timings.items()}
    return {"median_ms_per_window": med, "windows": len(starts),
            "speedup": round(med["from_scratch"] / med["live_reusing_frames"], 2),
            "frontend_over_interpreter": round(med["live_reusing_frames"] / med["interpreter_invoke"], 3),
            "max_abs_log_mel_difference": worst}


def listen_startup(clip: Path, model: str, runs: int = 5) -> dict:
    """Seconds from starting `edgepara listen --file` to its first prediction line, in fresh processes;
    beside it, a bare `python -c pass` as the reference for this machine's process start-up."""
    exe = [sys.executable, "-m", "edgepara.cli"]
    first, bare = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proc = subprocess.Popen(exe + ["listen", "--file", str(clip), "--jsonl", "-", "--model", model],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            if '"prediction"' in line:
                first.append(time.perf_counter() - t0)
                break
        proc.stdout.close()
        proc.wait()
    if not first:
        return {"error": "no prediction line from listen"}
    median = statistics.median(first)
    return {"first_prediction_s_median": round(median, 3), "runs": [round(x, 3) for x in first],
            "bare_python_start_s_median": round(statistics.median(bare), 3),
            "target_s": STARTUP_TARGET_S, "met": median < STARTUP_TARGET_S}


def listen_peak_rss(path: Path, model: str) -> dict:
    """Peak RSS (MB) of `edgepara listen` over the whole file: the child's VmHWM, read from /proc while it runs.
    Not getrusage: Linux carries a forked child's pre-exec high-water mark (this large process's) into it."""
    out = {}
    for label, cmd in (("file", ["listen", "--file", str(path)]),
                       ("stdin", ["listen", "--stdin", "--rate", str(FILE_RATE), "--channels", str(FILE_CHANNELS)])):
        stdin = None
        if label == "stdin":  # raw PCM, as arecord would pipe it
            import soundfile as sf

            stdin = tempfile.TemporaryFile()
            for block in sf.blocks(str(path), blocksize=FILE_RATE * 10, dtype="int16"):
                stdin.write(block.tobytes())
            stdin.seek(0)
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "edgepara.cli", *cmd, "--jsonl", os.devnull,
                                     "--model", model], stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
            peak_kb = 0
            while proc.poll() is None:
                peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
                time.sleep(0.02)
            stderr.seek(0)
            err = stderr.read().decode(errors="replace").strip().splitlines()
        if stdin is not None:
            stdin.close()
        out[label] = {"peak_rss_mb": round(peak_kb / 1024, 1), "exit": proc.returncode,
                      "error": err[-1] if proc.returncode else None}
    out["target_mb"] = RSS_TARGET_MB
    out["met"] = all(v["peak_rss_mb"] < RSS_TARGET_MB for k, v in out.items() if isinstance(v, dict))
    return out


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):  # the process just ended
        pass
    return 0


def bench_profile(model: str = "edgepara-tiny", heads: str = "emotion", out: Path | None = None,
                  seconds: float = 300.0, data_root=None, command: str = "", log=print) -> dict:
    audio, desc = long_recording(seconds, data_root)
    clip = Path(str(resources.files("edgepara"))) / "data" / "demo.flac"
    with tempfile.TemporaryDirectory(prefix="edgepara-profile-") as tmp:
        path = write_test_file(audio, Path(tmp) / "recording-48k-stereo.flac")
        head_list = [h for h in heads.split(",") if h] or ["emotion"]
        warm_up = write_test_file(audio[: 16000 * 10], Path(tmp) / "warm-up.flac")
        profile_pipeline(model, head_list, warm_up, audio)  # imports, allocations, page cache
        report = {"command": command, "audio": f"{desc}, written as {FILE_RATE} Hz stereo FLAC",
                  "threads": 1, "pipeline": profile_pipeline(model, head_list, path, audio),
                  "frontend_vs_interpreter": frontend_before_after(model, audio),
                  "startup": listen_startup(clip, model), "listen_peak_rss": listen_peak_rss(path, model)}
    p = report["pipeline"]
    log(f"{model}, {p['audio_seconds']} s of audio, {p['windows']} windows, one thread: "
        f"{p['percent_of_one_core']}% of one core")
    log(f"  {'stage (CPU time)':22s} {'ms/audio s':>10s} {'share':>6s} {'calls':>7s} {'ms/call':>8s}")
    for name, st in p["stages"].items():
        per_call = f"{st['ms_per_call']:.4f}" if st["ms_per_call"] is not None else "-"
        log(f"  {name:22s} {st['ms_per_audio_second']:10.4f} {st['share_percent']:5.1f}% {st['calls']:7d} {per_call:>8s}")
    d = p["dashboard_render_ms_mean"]
    log(f"dashboard render {d['with_panel_cache']} ms (without the panel cache: {d['without_panel_cache_as_before']} ms)")
    f = report["frontend_vs_interpreter"]
    m = f["median_ms_per_window"]
    log(f"frontend {m['live_reusing_frames']} ms/window (from scratch: {m['from_scratch']}, {f['speedup']}x), "
        f"interpreter {m['interpreter_invoke']} ms: frontend/interpreter {f['frontend_over_interpreter']}")
    s, r = report["startup"], report["listen_peak_rss"]
    log(f"start-up to first prediction {s.get('first_prediction_s_median')} s (bare python {s.get('bare_python_start_s_median')} s); "
        f"peak RSS of listen: file {r['file']['peak_rss_mb']} MB, stdin {r['stdin']['peak_rss_mb']} MB")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"profile-{model}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
