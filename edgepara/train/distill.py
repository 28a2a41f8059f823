"""`edgepara distill`: teacher targets -> student training (multi-teacher, pooled + Gram losses) ->
int8 export -> checks -> model card. One command, fixed seed, resumable teacher cache."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgeparaError
from ..frontend import LogMel
from .data import data_root as find_data_root, distillation_utterances, load_manifest
from .export import convert_int8, write_json, write_model
from .student import SIZES, StudentConfig, build_backbone, build_trainer, count_params
from .targets import TRAIN_HOP, WINDOW, build_clips, extract_targets, load_targets

LOSSES = ("speech_embedding", "resemblyzer", "egemaps", "gram")
LICENSES = {
    "ravdess": "RAVDESS: CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
    "fsdd": "Free Spoken Digit Dataset: CC BY-SA 4.0",
    "espeak": "espeak-ng synthetic speech generated during training",
}


@dataclass
class DistillConfig:
    sizes: tuple[str, ...] = ("edgepara-tiny", "edgepara-small")
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 2e-3
    n_aug: int = 1
    n_synthetic: int = 400
    seed: int = 0
    losses: tuple[str, ...] = LOSSES
    limit_clips: int | None = None  # tests: a handful of clips
    workers: int = 2

    def __post_init__(self):
        # checked before hours of teacher labelling, not after
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown:
            raise EdgeparaError(f"expected sizes from {', '.join(SIZES)}, got {', '.join(unknown)}")
        bad = [x for x in self.losses if x not in LOSSES]
        if bad or not self.losses:
            raise EdgeparaError(f"expected losses from {', '.join(LOSSES)}, got {', '.join(bad) or 'none'}")


def log_mels(audio: np.ndarray, cfg: StudentConfig) -> np.ndarray:
    frontend = LogMel(cfg.frontend())
    return np.stack([frontend(w) for w in audio]).astype(np.float32)


def standardise(targets: dict) -> tuple[dict, dict]:
    """Per-dimension z-scores, so each teacher's loss has a comparable scale; stats go into the card."""
    pooled = {
        "speech_embedding": targets["se_frames"].mean(axis=1),
        "resemblyzer": targets["resemblyzer"],
        "egemaps": targets["egemaps"],
    }
    stats, out = {}, {}
    for name, x in pooled.items():
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        stats[name] = {"mean": mean.tolist(), "std": std.tolist()}
        out[name] = ((x - mean) / std).astype(np.float32)
    out["gram"] = targets["se_frames"].astype(np.float32)
    return out, stats


def heldout_windows(root: Path, n_files: int = 40) -> np.ndarray:
    """Windows from validation speakers (never trained on) for the int8-vs-float check."""
    from ..audio import read_audio
    from ..stream.windower import offline_windows

    val = [u for u in load_manifest("ravdess", root) if u.split == "val"][:n_files]
    return np.concatenate([offline_windows(read_audio(u.path), WINDOW, TRAIN_HOP) for u in val])


def train_student(cfg: StudentConfig, mels: np.ndarray, targets: dict, dc: DistillConfig, log=print):
    import keras

    from .losses import embedding_loss, make_gram_loss

    keras.utils.set_random_seed(dc.seed)
    backbone = build_backbone(cfg)
    teachers = [t for t in ("speech_embedding", "resemblyzer", "egemaps") if t in dc.losses]
    trainer = build_trainer(backbone, teachers=teachers or ("speech_embedding",))
    n_student = int(backbone.outputs[1].shape[1])
    losses = {t: embedding_loss for t in teachers or ("speech_embedding",)}
    weights = {t: 1.0 for t in losses}
    if not teachers:  # Gram-only ablation keeps a zero-weight head so the graph stays the same
        weights["speech_embedding"] = 0.0
    losses["gram"] = make_gram_loss(n_student, targets["gram"].shape[1])
    weights["gram"] = 2.0 if "gram" in dc.losses else 0.0
    steps = dc.epochs * int(np.ceil(len(mels) / dc.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(dc.learning_rate, steps, alpha=0.02)
    trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), loss=losses, loss_weights=weights)
    y = {k: targets[k] for k in losses}
    rng = np.random.default_rng(dc.seed)
    order = rng.permutation(len(mels))
    n_val = max(1, len(mels) // 20)
    val_idx, train_idx = order[:n_val], order[n_val:]
    history = trainer.fit(
        mels[train_idx][..., None], {k: v[train_idx] for k, v in y.items()},
        validation_data=(mels[val_idx][..., None], {k: v[val_idx] for k, v in y.items()}),
        batch_size=dc.batch_size, epochs=dc.epochs, verbose=2, shuffle=True)
    return backbone, {k: float(v[-1]) for k, v in history.history.items()}


def float_embeddings(backbone, mels: np.ndarray) -> np.ndarray:
    return backbone.predict(mels[..., None], batch_size=256, verbose=0)[0]


def int8_embeddings(tflite_path: Path, windows: np.ndarray) -> np.ndarray:
    from ..runtime import Embedder

    embedder = Embedder(tflite_path)
    return np.stack([embedder.embed(w) for w in windows])


def median_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    return float(np.median(cos))


def distill(dc: DistillConfig, cache: Path, models_out: Path, runs: Path, data_root=None, log=print,
            command: str = "") -> list[dict]:
    root = find_data_root(data_root)
    utterances = distillation_utterances(root)
    clips = build_clips(utterances, dc.n_aug, dc.n_synthetic, dc.seed)
    if dc.limit_clips:
        clips = clips[: dc.limit_clips]
    log(f"teacher targets for {len(clips)} clips -> {cache}")
    state = {"done": 0, "total": 0}

    def progress(n, total):
        if total is not None:
            state["total"] = total
        state["done"] += n
        log(f"  shards {state['done']}/{state['total']}")

    shards = extract_targets(clips, cache, root, dc.seed, workers=dc.workers, progress=progress)
    raw = load_targets(shards)
    targets, stats = standardise(raw)
    sources = sorted({s.split(":")[0] for s in raw["source"]})
    log(f"{len(raw['audio'])} windows from {', '.join(sources)}")
    check_windows = heldout_windows(root, n_files=40 if not dc.limit_clips else 4)
    cards = []
    for size in dc.sizes:
        cfg = SIZES[size]
        t0 = time.time()
        mels = log_mels(raw["audio"], cfg)
        backbone, final_losses = train_student(cfg, mels, targets, dc, log)
        train_s = time.time() - t0
        run_dir = runs / size
        run_dir.mkdir(parents=True, exist_ok=True)
        backbone.save(run_dir / "backbone.keras")
        rep = mels[np.random.default_rng(dc.seed).choice(len(mels), min(300, len(mels)), replace=False)]
        tflite = convert_int8(backbone, rep)
        card = {
            "name": size, "version": "0.1.0", "kind": "student",
            "params": count_params(backbone), "sample_rate": 16000,
            "window_samples": cfg.window_samples, "hop_samples": cfg.hop_samples,
            "frontend": cfg.frontend().to_card(), "embedding_dim": cfg.embedding_dim,
            "architecture": cfg.to_dict(),
            "teachers": {
                "speech_embedding": "Google speech_embedding (96-d, from openwakeword 0.5.1), pooled + frame sequence every 20 ms",
                "resemblyzer": "resemblyzer 0.1.4 GE2E speaker encoder (256-d)",
                "egemaps": "openSMILE 2.6.0 eGeMAPSv02 functionals (88-d, standardised)",
            },
            "losses": {k: ("MSE + cosine to pooled target" if k != "gram" else "temporal Gram-matrix MSE vs speech_embedding frames") for k in dc.losses},
            "training_data": {"windows": int(len(raw["audio"])), "sources": sources,
                              "excluded": "RAVDESS actors 17-24 (validation/test), FSDD val/test takes, all of EmoDB (evaluated leave-one-speaker-out)",
                              "augmentation": f"{dc.n_aug} corrupted copy per clip: noise, gain, speed, reverberation, simulated masks"},
            "license": "CC BY-NC-SA 4.0 (derived from RAVDESS; non-commercial use only)",
            "data_licenses": [LICENSES[s] for s in sources if s in LICENSES],
            "training": {"epochs": dc.epochs, "batch_size": dc.batch_size, "seed": dc.seed, "seconds": round(train_s),
                         "final_losses": final_losses},
            "target_stats": "teacher targets standardised per dimension with training means/stds",
            "command": command,
            "metrics": {},
        }
        path, card = write_model(models_out, size, tflite, card)
        float_check = float_embeddings(backbone, log_mels(check_windows, cfg))
        int8_check = int8_embeddings(path, check_windows)
        card["metrics"]["int8_vs_float_median_cosine"] = round(median_cosine(float_check, int8_check), 4)
        card["metrics"]["int8_vs_float_windows"] = int(len(check_windows))
        write_json(path.with_suffix(".json"), card)
        log(f"{size}: {card['params']} params, {card['bytes']} bytes int8, median cosine int8/float "
            f"{card['metrics']['int8_vs_float_median_cosine']}")
        cards.append(card)
    return cards
