"""`edgepara bench quality|speed`: every teacher, the teachers concatenated, eGeMAPS and each student
(float and int8) on the same speaker-independent splits, in one run."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..assets import available_models, models_dir, resolve_model
from ..audio import read_audio
from ..stream.windower import offline_windows
from .data import data_root as find_data_root, load_manifest
from .export import write_json
from .probes import leave_one_speaker_out, split_protocol, verification_eer

TEACHER_NAMES = ("speech_embedding", "resemblyzer", "egemaps")


def corpus(root: Path) -> dict[str, list]:
    return {name: load_manifest(name, root) for name in ("ravdess", "emodb", "fsdd")}


def _cached(cache: Path, key: str, compute) -> np.ndarray:
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    value = compute()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), value)
    path.with_suffix(".tmp.npy").rename(path)
    return value


def teacher_features(name: str, utterances, cache: Path, dataset: str, log=print) -> np.ndarray:
    def compute():
        from .teachers import TEACHERS

        teacher = TEACHERS[name]()
        log(f"  {name} on {dataset} ({len(utterances)} files)")
        return np.stack([teacher.utterance(read_audio(u.path)) for u in utterances]).astype(np.float32)

    return _cached(cache, f"{dataset}_{name}", compute)


def int8_features(model: str, utterances, cache: Path, dataset: str) -> np.ndarray:
    from ..runtime import Embedder

    embedder = Embedder(model)

    def compute():
        return np.stack([
            np.mean([embedder.embed(w) for w in offline_windows(read_audio(u.path), embedder.window, embedder.hop)], axis=0)
            for u in utterances])

    return _cached(cache, f"{dataset}_{model}_int8_{embedder.card['sha256'][:12]}", compute)


def float_features(model: str, runs: Path, utterances, cache: Path, dataset: str) -> np.ndarray | None:
    """The float student saved by distill (runs/NAME/backbone.keras); None when it is not there."""
    path = runs / model / "backbone.keras"
    if not path.exists():
        return None
    import hashlib

    key = hashlib.sha256(path.read_bytes()).hexdigest()[:12]

    def compute():
        import keras

        from .distill import log_mels
        from .student import SIZES

        backbone = keras.models.load_model(path, safe_mode=False)
        cfg = SIZES[model]
        out = []
        for u in utterances:
            windows = offline_windows(read_audio(u.path), cfg.window_samples, cfg.hop_samples)
            out.append(backbone.predict(log_mels(windows, cfg)[..., None], verbose=0)[0].mean(axis=0))
        return np.stack(out)

    return _cached(cache, f"{dataset}_{model}_float_{key}", compute)


def evaluate_all(features: dict[str, np.ndarray], data: dict[str, list]) -> dict[str, dict]:
    """features: system -> concatenated rows for ravdess, emodb, fsdd (in corpus order)."""
    sizes = {name: len(rows) for name, rows in data.items()}
    offsets = np.cumsum([0] + list(sizes.values()))
    results = {}
    for system, X in features.items():
        parts = {name: X[offsets[i]:offsets[i + 1]] for i, name in enumerate(sizes)}
        rav, emo, fsdd = data["ravdess"], data["emodb"], data["fsdd"]
        res = {
            "ravdess_emotion": split_protocol(parts["ravdess"], np.array([u.label for u in rav]), [u.split for u in rav]),
            "emodb_emotion": leave_one_speaker_out(parts["emodb"], np.array([u.label for u in emo]), [u.speaker for u in emo]),
            "fsdd_speaker": split_protocol(parts["fsdd"], np.array([u.speaker for u in fsdd]), [u.split for u in fsdd]),
        }
        test = np.array([u.split == "test" for u in rav])
        res["ravdess_verification_eer"] = verification_eer(parts["ravdess"][test], [u.speaker for u, t in zip(rav, test) if t])
        results[system] = res
    return results


def teacher_sizes() -> dict[str, int]:
    import importlib.util

    sizes = {}
    ow = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    sizes["speech_embedding"] = (ow / "embedding_model.tflite").stat().st_size + (ow / "melspectrogram.tflite").stat().st_size
    rz = Path(importlib.util.find_spec("resemblyzer").origin).parent / "pretrained.pt"
    sizes["resemblyzer"] = rz.stat().st_size
    sizes["teachers_concat"] = sizes["speech_embedding"] + sizes["resemblyzer"]
    return sizes


def quality(out: Path, cache: Path, runs: Path, data_root=None, log=print, command: str = "") -> dict:
    root = find_data_root(data_root)
    data = corpus(root)
    everything = [u for rows in data.values() for u in rows]
    features: dict[str, np.ndarray] = {}
    for name in TEACHER_NAMES:
        features[name] = np.concatenate([teacher_features(name, rows, cache, ds, log) for ds, rows in data.items()])
    features["teachers_concat"] = np.concatenate([features[n] for n in TEACHER_NAMES], axis=1)
    sizes = teacher_sizes()
    for model in available_models():
        log(f"  {model} (int8)")
        features[f"{model} int8"] = np.concatenate([int8_features(model, rows, cache, ds) for ds, rows in data.items()])
        sizes[f"{model} int8"] = resolve_model(model)[1]["bytes"]
        float_parts = [float_features(model, runs, rows, cache, ds) for ds, rows in data.items()]
        if all(p is not None for p in float_parts):
            features[f"{model} float"] = np.concatenate(float_parts)
            sizes[f"{model} float"] = resolve_model(model)[1]["params"] * 4
    log(f"probes on {len(everything)} utterances, {len(features)} systems")
    results = evaluate_all(features, data)
    report = {"command": command, "utterances": {k: len(v) for k, v in data.items()}, "sizes_bytes": sizes,
              "results": results, "retention": retention(results)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", report)
    (out / "results.md").write_text(markdown_table(report))
    plot(report, out / "size_quality.png")
    return report


TASKS = (("ravdess_emotion", "accuracy"), ("ravdess_emotion", "uar"), ("emodb_emotion", "accuracy"),
         ("emodb_emotion", "uar"), ("fsdd_speaker", "accuracy"))


def retention(results: dict) -> dict:
    ref = results["teachers_concat"]
    return {system: {f"{task}.{metric}": round(r[task][metric] / ref[task][metric], 3) for task, metric in TASKS}
            for system, r in results.items() if "edgepara" in system}


def markdown_table(report: dict) -> str:
    head = ("| system | size | RAVDESS acc | RAVDESS UAR | EmoDB acc | EmoDB UAR | FSDD spk acc | RAVDESS SV EER |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for system, r in report["results"].items():
        size = report["sizes_bytes"].get(system)
        size_s = "hand-crafted" if size is None else f"{size / 1e6:.2f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB"
        cells = [f"{r[t][m]:.3f}" for t, m in TASKS] + [f"{r['ravdess_verification_eer']:.3f}"]
        rows.append(f"| {system} | {size_s} | " + " | ".join(cells) + " |")
    ret = ["", "Retention (int8 or float student score / concatenated-teacher score):", "",
           "| system | " + " | ".join(f"{t}.{m}" for t, m in TASKS) + " |", "|---|" + "---:|" * len(TASKS)]
    for system, r in report["retention"].items():
        ret.append(f"| {system} | " + " | ".join(f"{v:.3f}" for v in r.values()) + " |")
    return head + "\n".join(rows) + "\n" + "\n".join(ret) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (task, metric) in zip(axes, (("ravdess_emotion", "accuracy"), ("emodb_emotion", "accuracy"),
                                         ("fsdd_speaker", "accuracy"))):
        for system, r in report["results"].items():
            size = report["sizes_bytes"].get(system)
            if size is None:
                ax.axhline(r[task][metric], ls="--", color="grey", lw=1)
                ax.text(2e4, r[task][metric], " eGeMAPS", va="bottom", fontsize=8, color="grey")
                continue
            ax.scatter(size, r[task][metric], color="tab:red" if "edgepara" in system else "tab:blue")
            ax.annotate(system, (size, r[task][metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("model size (bytes)")
        ax.set_title(f"{task} {metric}")
    axes[0].set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def speed(out: Path | None = None, repeats: int = 200, log=print, command: str = "") -> dict:
    """One 1 s window, one thread, after warm-up: students (frontend + int8 model) vs the teachers."""
    from ..runtime import Embedder, interpreter_backend
    from .teachers import EGeMAPSTeacher, ResemblyzerTeacher, SpeechEmbeddingTeacher

    rng = np.random.default_rng(0)
    window = (rng.standard_normal(16000) * 3000).astype(np.int16)
    timings = {}
    se, rz, eg = SpeechEmbeddingTeacher(), ResemblyzerTeacher(), EGeMAPSTeacher()
    timings["speech_embedding"] = _median_ms(lambda: se.frames(window, step=8), max(repeats // 4, 20))
    timings["resemblyzer"] = _median_ms(lambda: rz.utterance(window), max(repeats // 4, 20))
    timings["egemaps"] = _median_ms(lambda: eg.utterance(window), max(repeats // 10, 10))
    for model in available_models():
        embedder = Embedder(model, threads=1)
        timings[model] = _median_ms(lambda: embedder.embed(window), repeats)
        timings[f"{model} frontend"] = _median_ms(lambda: embedder.features(window), repeats)
    reference = timings["speech_embedding"] + timings["resemblyzer"]
    report = {"command": command, "interpreter": interpreter_backend(), "window_s": 1.0, "threads": 1,
              "median_ms": {k: round(v, 4) for k, v in timings.items()},
              "speedup_vs_speech_embedding_plus_resemblyzer": {
                  m: round(reference / timings[m], 1) for m in available_models()}}
    for k, v in report["median_ms"].items():
        log(f"  {k:32s} {v:9.3f} ms")
    for m, r in report["speedup_vs_speech_embedding_plus_resemblyzer"].items():
        log(f"  {m}: {r}x cheaper than speech_embedding + resemblyzer")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "speed.json", report)
    return report
