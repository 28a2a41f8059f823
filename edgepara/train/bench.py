"""`edgepara bench quality|speed`: every teacher, the teachers concatenated, eGeMAPS and each student
(float and int8) on the same speaker-independent splits, in one run."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import atomic_write, available_models, resolve_model
from ..audio import read_audio
from ..stream.windower import offline_windows
from .data import Utterance, data_root as find_data_root, load_manifest
from .masks import curves_path, load_curves, apply_mask
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
    atomic_write(path, lambda tmp: np.save(tmp, value))
    return value


MASK_TYPES = ("surgical", "CottonJersey2L", "CottonPlain2L", "CottonDenim2L")
HELD_OUT_MASK = "CottonPlain2L"  # never in the mask head's training data; reported separately


@dataclass(frozen=True)
class Item:
    """One utterance as a system hears it: clean, or through a simulated mask (seeded per utterance)."""

    utterance: Utterance
    mask: str | None = None

    def audio(self, curves: dict | None = None) -> np.ndarray:
        audio = read_audio(self.utterance.path)
        if self.mask is None:
            return audio
        seed = int(hashlib.sha1(f"{self.utterance.path.name}|{self.mask}".encode()).hexdigest()[:8], 16)
        return apply_mask(audio, *curves[self.mask], rng=np.random.default_rng(seed))


def mask_items(ravdess: list[Utterance]) -> list[Item]:
    """RAVDESS repetition 1 (720 utterances, all 24 actors), clean and through each of the four masks."""
    first_takes = [u for u in ravdess if u.path.name.split("-")[5] == "01"]
    return [Item(u, m) for m in (None,) + MASK_TYPES for u in first_takes]


def system_embedders(runs: Path, ablation: Path | None) -> dict[str, tuple[str, object, int | None]]:
    """name -> (cache key, factory of `audio -> vector`, size in bytes or None for hand-crafted)."""
    systems = {}
    sizes = teacher_sizes()
    for name in TEACHER_NAMES:
        systems[name] = (name, lambda name=name: _teacher(name), sizes.get(name))
    for model in available_models():
        systems[f"{model} int8"] = int8_system(model)
        _, card = resolve_model(model)
        path = runs / model / "backbone.keras"
        if path.exists():
            systems[f"{model} float"] = (f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p),
                                         card["params"] * 4)
    for variant in sorted(p for p in (ablation.iterdir() if ablation and ablation.is_dir() else []) if p.is_dir()):
        for path in sorted(variant.glob("*/backbone.keras")):
            model = path.parent.name
            systems[f"ablation {variant.name} ({model} float)"] = (
                f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p), None)
    return systems


def int8_system(model: str) -> tuple[str, object, int]:
    _, card = resolve_model(model)
    return f"{model}_int8vad_{card['sha256'][:12]}", lambda: _int8(model), card["bytes"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _teacher(name: str):
    from .teachers import TEACHERS

    return TEACHERS[name]().utterance


def speech_or_all_windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The VAD speech windows the live path and `embed` use; the whole clip when the VAD finds no speech
    (a few very short FSDD digits), so every utterance gets an embedding."""
    from ..embed import recording_windows

    windows, _ = recording_windows(audio, window, hop, use_vad=True)
    if not windows:
        return offline_windows(audio, window, hop)
    return np.stack([w.samples for w in windows])


def _int8(model: str):
    from ..runtime import Embedder

    embedder = Embedder(model)
    return lambda audio: np.mean([embedder.embed(w) for w in speech_or_all_windows(audio, embedder.window, embedder.hop)],
                                 axis=0)


def _float(model: str, path: Path):
    from .distill import log_mels
    from .student import SIZES, build_backbone

    cfg = SIZES[model]
    backbone = build_backbone(cfg)  # rebuilt from code: a saved Lambda layer does not deserialise portably
    backbone.load_weights(path)

    def embed(audio):
        mels = log_mels(speech_or_all_windows(audio, cfg.window_samples, cfg.hop_samples), cfg)[..., None]
        return np.asarray(backbone(mels, training=False)[0]).mean(axis=0)

    return embed


def features(system: tuple, items: list[Item], cache: Path, set_name: str, curves=None, log=print) -> np.ndarray:
    key, factory, _ = system

    def compute():
        log(f"  {key} on {set_name} ({len(items)} utterances)")
        embed = factory()
        return np.stack([embed(item.audio(curves)) for item in items]).astype(np.float32)

    return _cached(cache, f"{set_name}_{key}", compute)


def evaluate_clean(X: dict[str, np.ndarray], data: dict[str, list]) -> dict:
    rav, emo, fsdd = data["ravdess"], data["emodb"], data["fsdd"]
    test = np.array([u.split == "test" for u in rav])
    return {
        "ravdess_emotion": split_protocol(X["ravdess"], np.array([u.label for u in rav]), [u.split for u in rav]),
        "emodb_emotion": leave_one_speaker_out(X["emodb"], np.array([u.label for u in emo]), [u.speaker for u in emo]),
        "fsdd_speaker": split_protocol(X["fsdd"], np.array([u.speaker for u in fsdd]), [u.split for u in fsdd]),
        "ravdess_verification_eer": verification_eer(X["ravdess"][test], [u.speaker for u, t in zip(rav, test) if t])[0],
    }


def mask_design(items: list[Item]) -> dict[str, np.ndarray]:
    """Row selections for the simulated-mask task. Each training utterance appears clean and through one
    seen mask (chosen per utterance, so classes stay balanced); the held-out mask never enters training."""
    seen = [m for m in MASK_TYPES if m != HELD_OUT_MASK]
    split = np.array([it.utterance.split for it in items])
    mask = np.array([it.mask or "none" for it in items])
    chosen = np.array([seen[int(hashlib.sha1(it.utterance.path.name.encode()).hexdigest(), 16) % len(seen)]
                       for it in items])
    fit_rows = (mask == "none") | (mask == chosen)
    return {
        "label": np.where(mask == "none", "no_mask", "mask"),
        "train": (split == "train") & fit_rows, "val": (split == "val") & fit_rows,
        "test_seen": (split == "test") & fit_rows,
        "test_held_out": (split == "test") & ((mask == "none") | (mask == HELD_OUT_MASK)),
    }


def evaluate_mask(X: np.ndarray, design: dict) -> dict:
    from .probes import fit_probe, scores

    y = design["label"]
    probe = fit_probe(X[design["train"]], y[design["train"]], X[design["val"]], y[design["val"]])
    return {f"{which}": scores(y[design[which]], probe.predict(X[design[which]]))["uar"]
            for which in ("test_seen", "test_held_out")}


def teacher_sizes() -> dict[str, int]:
    import importlib.util

    sizes = {}
    ow = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    sizes["speech_embedding"] = (ow / "embedding_model.tflite").stat().st_size + (ow / "melspectrogram.tflite").stat().st_size
    rz = Path(importlib.util.find_spec("resemblyzer").origin).parent / "pretrained.pt"
    sizes["resemblyzer"] = rz.stat().st_size
    return sizes


def quality(out: Path, cache: Path, runs: Path, data_root=None, log=print, command: str = "",
            ablation: Path | None = None, with_masks: bool = True) -> dict:
    root = find_data_root(data_root)
    data = corpus(root)
    sets = {name: [Item(u) for u in rows] for name, rows in data.items()}
    masked = mask_items(data["ravdess"]) if with_masks else []
    curves = load_curves(str(curves_path(root)))
    systems = system_embedders(runs, ablation)
    per_system = {name: {ds: features(sys_, items, cache, ds, log=log) for ds, items in sets.items()}
                  for name, sys_ in systems.items()}
    per_system["teachers_concat"] = {ds: np.concatenate([per_system[t][ds] for t in TEACHER_NAMES], axis=1)
                                     for ds in sets}
    results = {}
    for name, X in per_system.items():
        log(f"  probes: {name}")
        results[name] = evaluate_clean(X, data)
    if masked:
        design = mask_design(masked)
        mask_X = {name: features(sys_, masked, cache, "ravdess_masked", curves, log)
                  for name, sys_ in systems.items() if not name.startswith("ablation")}
        mask_X["teachers_concat"] = np.concatenate([mask_X[t] for t in TEACHER_NAMES], axis=1)
        for name, X in mask_X.items():
            results[name]["mask_simulated_uar"] = evaluate_mask(X, design)
    sizes = {name: sys_[2] for name, sys_ in systems.items() if sys_[2] is not None}
    sizes["teachers_concat"] = sizes["speech_embedding"] + sizes["resemblyzer"]
    report = {"command": command, "utterances": {k: len(v) for k, v in data.items()},
              "mask_task": {"utterances": len(masked), "held_out_mask": HELD_OUT_MASK,
                            "note": "simulated: clean speech filtered with measured mask attenuation curves"},
              "sizes_bytes": sizes, "results": results, "retention": retention(results)}
    record_in_model_cards(report)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", report)
    (out / "results.md").write_text(markdown_table(report))
    plot(report, out / "size_quality.png")
    return report


def record_in_model_cards(report: dict) -> None:
    """Each shipped model's card carries its own benchmark rows and the command that measured them."""
    for model in available_models():
        path, card = resolve_model(model)
        int8, flt = report["results"].get(f"{model} int8"), report["results"].get(f"{model} float")
        if int8 is None:
            continue
        card["metrics"]["quality_int8"] = int8
        if flt is not None:
            card["metrics"]["quality_float"] = flt
        card["metrics"]["retention_vs_teachers_concat"] = report["retention"].get(f"{model} int8")
        card["metrics"]["quality_command"] = report["command"]
        card["metrics"]["protocol"] = ("utterance embedding = mean of the VAD speech windows; standardise + logistic "
                                       "regression, C on validation speakers; RAVDESS test actors 19-24, EmoDB "
                                       "leave-one-speaker-out, FSDD by take; mask task simulated")
        write_json(path.with_suffix(".json"), card)


TASKS = (("ravdess_emotion", "accuracy"), ("ravdess_emotion", "uar"), ("emodb_emotion", "accuracy"),
         ("emodb_emotion", "uar"), ("fsdd_speaker", "accuracy"), ("mask_simulated_uar", "test_held_out"))


def _score(r: dict, task: str, metric: str):
    return r.get(task, {}).get(metric)


def retention(results: dict) -> dict:
    """Student score / concatenated-teacher score per task; for verification, EER difference to the best
    teacher in points (lower EER is better)."""
    ref = results["teachers_concat"]
    best_eer = min(results[t]["ravdess_verification_eer"] for t in TEACHER_NAMES)
    out = {}
    for system, r in results.items():
        if "edgepara" not in system:
            continue
        row = {f"{t}.{m}": round(_score(r, t, m) / _score(ref, t, m), 3)
               for t, m in TASKS if _score(r, t, m) is not None and _score(ref, t, m)}
        row["verification_eer_minus_best_teacher_points"] = round(100 * (r["ravdess_verification_eer"] - best_eer), 1)
        out[system] = row
    return out


def markdown_table(report: dict) -> str:
    head = ("| system | size | RAVDESS acc | RAVDESS UAR | EmoDB acc | EmoDB UAR | FSDD speaker acc | "
            "mask UAR, held-out type (simulated) | RAVDESS verification EER |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for system, r in report["results"].items():
        size = report["sizes_bytes"].get(system)
        size_s = ("hand-crafted" if system == "egemaps" else "" if size is None
                  else f"{size / 1e6:.2f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB")
        cells = [("-" if _score(r, t, m) is None else f"{_score(r, t, m):.3f}") for t, m in TASKS]
        rows.append(f"| {system} | {size_s} | " + " | ".join(cells) + f" | {r['ravdess_verification_eer']:.3f} |")
    names = [f"{t}.{m}" for t, m in TASKS] + ["verification_eer_minus_best_teacher_points"]
    ret = ["", "Retention (student score / concatenated-teacher score; EER: points above the best teacher):", "",
           "| system | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for system, r in report["retention"].items():
        ret.append(f"| {system} | " + " | ".join(str(r.get(n, "-")) for n in names) + " |")
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
            if system == "egemaps":
                ax.axhline(r[task][metric], ls="--", color="grey", lw=1)
                ax.text(2e4, r[task][metric], " eGeMAPS", va="bottom", fontsize=8, color="grey")
                continue
            if size is None:
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
