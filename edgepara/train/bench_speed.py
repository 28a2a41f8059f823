"""`edgepara bench speed`: one 1 s window on one thread, the students against the teachers, and an estimate of
the students' cost on a Raspberry Pi 3."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..assets import available_models, resolve_model
from .export import write_json
from .targets import WHISPER_LAYERS


def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


# openWakeWord's README: "a single core of a Raspberry Pi 3 can run 15-20 openWakeWord models simultaneously in
# real-time". Its shared features (melspectrogram every 80 ms + one speech_embedding per 80 ms) plus those heads
# therefore cost at most one Pi 3 core-second per second of audio.
OWW_PI3_CORE_SECONDS_PER_AUDIO_SECOND_AT_MOST = 1.0
OWW_STEP_S = 0.08
FRILL_PIXEL1_MS_PER_EMBEDDING = 8.5  # published (FRILL paper), for comparison only


def pi3_estimate(timings: dict, repeats: int) -> dict:
    """An ESTIMATE, not a measurement: the x86/Pi 3 slowdown is bounded by openWakeWord's published Pi 3 figure
    and its own models timed here with the same interpreter, one thread; applied to our students' measured
    time per window it bounds their Pi 3 cost. Assumes our int8 ops slow down no more than its float ones."""
    import importlib.util

    from ..runtime import _import_interpreter
    from ..tflite_model import multiply_accumulates

    models = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    interpreter_cls = _import_interpreter()[1]
    mel = interpreter_cls(model_path=str(models / "melspectrogram.tflite"), num_threads=1)
    mel.resize_tensor_input(mel.get_input_details()[0]["index"], [1, 1280 + 480])  # 80 ms + the STFT overlap
    mel.allocate_tensors()
    emb = interpreter_cls(model_path=str(models / "embedding_model.tflite"), num_threads=1)
    emb.allocate_tensors()
    rng = np.random.default_rng(0)
    for it in (mel, emb):
        detail = it.get_input_details()[0]
        it.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(np.float32))
    step_ms = _median_ms(mel.invoke, repeats) + _median_ms(emb.invoke, repeats)
    oww_ms_per_audio_s = step_ms / OWW_STEP_S
    slowdown = 1000.0 * OWW_PI3_CORE_SECONDS_PER_AUDIO_SECOND_AT_MOST / oww_ms_per_audio_s
    students = {}
    for model in available_models():
        path, card = resolve_model(model)
        windows_per_s = card["sample_rate"] / card["hop_samples"]
        x86_ms_per_s = timings[model] * windows_per_s
        students[model] = {
            "macs_per_window": multiply_accumulates(path), "windows_per_speech_second": windows_per_s,
            "x86_ms_per_speech_second": round(x86_ms_per_s, 3),
            "percent_of_one_pi3_core_at_most": round(x86_ms_per_s * slowdown / 10.0, 1)}
    return {"label": "ESTIMATE from openWakeWord's published Pi 3 figure, not measured on a Pi",
            "openwakeword_x86_ms_per_audio_second": round(oww_ms_per_audio_s, 3),
            "openwakeword_embedding_macs_per_step": multiply_accumulates(models / "embedding_model.tflite"),
            "pi3_over_x86_slowdown_at_most": round(slowdown, 1), "students": students,
            "published_for_comparison": {"frill_pixel1_ms_per_embedding": FRILL_PIXEL1_MS_PER_EMBEDDING}}


def speed(out: Path | None = None, repeats: int = 200, log=print, command: str = "") -> dict:
    """One 1 s window, one thread, after warm-up: students (frontend + int8 model) vs the teachers. The
    Whisper-base teacher runs as far as the deepest block the students learn from, on the same 1 s window (so
    per second of audio, both at 1 s windows every 0.5 s, the ratio is the same as per window)."""
    from ..runtime import Embedder, interpreter_backend
    from .teachers import EGeMAPSTeacher, ResemblyzerTeacher, SpeechEmbeddingTeacher
    from .whisper import WhisperEncoder

    rng = np.random.default_rng(0)
    window = (rng.standard_normal(16000) * 3000).astype(np.int16)
    timings = {}
    se, rz, eg = SpeechEmbeddingTeacher(), ResemblyzerTeacher(), EGeMAPSTeacher()
    timings["speech_embedding"] = _median_ms(lambda: se.frames(window, step=8), max(repeats // 4, 20))
    timings["resemblyzer"] = _median_ms(lambda: rz.utterance(window), max(repeats // 4, 20))
    timings["egemaps"] = _median_ms(lambda: eg.utterance(window), max(repeats // 10, 10))
    base_block = max(b for m, b in WHISPER_LAYERS if m == "base")
    whisper_base, whisper_row = WhisperEncoder("base", threads=1), f"whisper base to block {base_block}"
    timings[whisper_row] = _median_ms(lambda: whisper_base.blocks(window, (base_block,)), max(repeats // 10, 10))
    for model in available_models():
        embedder = Embedder(model, threads=1)
        timings[model] = _median_ms(lambda: embedder.embed(window), repeats)
        timings[f"{model} frontend"] = _median_ms(lambda: embedder.features(window), repeats)
    reference = timings["speech_embedding"] + timings["resemblyzer"]
    report = {"command": command, "interpreter": interpreter_backend(), "window_s": 1.0, "threads": 1,
              "median_ms": {k: round(v, 4) for k, v in timings.items()},
              "speedup_vs_speech_embedding_plus_resemblyzer": {
                  m: round(reference / timings[m], 1) for m in available_models()},
              f"speedup_vs_whisper_base_to_block_{base_block}": {
                  m: round(timings[whisper_row] / timings[m], 1) for m in available_models()},
              "raspberry_pi_3_estimate": pi3_estimate(timings, repeats)}
    for k, v in report["median_ms"].items():
        log(f"  {k:32s} {v:9.3f} ms")
    for m, r in report["speedup_vs_speech_embedding_plus_resemblyzer"].items():
        log(f"  {m}: {r}x cheaper than speech_embedding + resemblyzer, "
            f"{report[f'speedup_vs_whisper_base_to_block_{base_block}'][m]}x than Whisper base to block {base_block}")
    pi = report["raspberry_pi_3_estimate"]
    for m, e in pi["students"].items():
        log(f"  ESTIMATE {m} on one Pi 3 core: at most {e['percent_of_one_pi3_core_at_most']}% while speech goes on "
            f"({e['macs_per_window'] / 1e6:.1f} M MACs per window)")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "speed.json", report)
    return report
