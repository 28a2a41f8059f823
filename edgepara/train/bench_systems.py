"""The systems `bench quality` compares (teachers, Whisper layers, each student int8 and float, ablation runs),
each as `audio -> utterance vector`, with their sizes and their cached embeddings of a set."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..assets import atomic_write, available_models, resolve_model
from ..errors import EdgeparaError
from ..stream.windower import offline_windows
from .bench_sets import Item
from .targets import WHISPER_LAYERS


TEACHER_NAMES = ("speech_embedding", "resemblyzer", "egemaps")
# The Whisper layers the students learn from: one system per model (its blocks' utterance means side by
# side, one encoder pass), reported as one row per layer.
WHISPER_SYSTEMS = {model: tuple(b for m, b in WHISPER_LAYERS if m == model) for model, _ in WHISPER_LAYERS}
DISTILLATION_TEACHERS = tuple(f"whisper {m} b{b}" for m, b in WHISPER_LAYERS) + ("resemblyzer",)


def _cached(cache: Path, key: str, compute) -> np.ndarray:
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    value = compute()
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: np.save(tmp, value))
    return value


def system_embedders(runs: Path, ablation: Path | None) -> dict[str, tuple[str, object, int | None]]:
    """name -> (cache key, factory of `audio -> vector`, size in bytes or None for hand-crafted)."""
    systems = {}
    sizes = teacher_sizes()
    for name in TEACHER_NAMES:
        systems[name] = (name, lambda name=name: _teacher(name), sizes.get(name))
    for model, blocks in WHISPER_SYSTEMS.items():
        systems[f"whisper {model}"] = (f"whisper_{model}_b{'-'.join(map(str, blocks))}",
                                       lambda m=model, b=blocks: _whisper(m, b), sizes.get(f"whisper {model}"))
    for model in available_models():
        systems[f"{model} int8"] = int8_system(model)
        _, card = resolve_model(model)
        path = runs / model / "backbone.keras"
        if path.exists():
            systems[f"{model} float"] = (f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p),
                                         card["params"] * 4)
    for name, model, path in ablation_backbones(ablation):
        systems[name] = (f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p), None)
    return systems


def ablation_backbones(ablation: Path | None) -> list[tuple[str, str, Path]]:
    """(row name, model, backbone path) of each run under a `scripts/ablation.sh` folder (VARIANT/MODEL/)."""
    variants = sorted(p for p in (ablation.iterdir() if ablation and ablation.is_dir() else []) if p.is_dir())
    return [(ablation_name(variant.name, path.parent.name), path.parent.name, path)
            for variant in variants for path in sorted(variant.glob("*/backbone.keras"))]


def system_speaker_dims(ablation: Path | None) -> dict[str, list[int] | None]:
    """The speaker part each student row is scored on: the shipped card's for the shipped models (int8 and float),
    the run's own layout for an ablation run (a variant may change the part's width). Rows absent: the whole vector."""
    dims = {}
    for model in available_models():
        dims[f"{model} int8"] = dims[f"{model} float"] = resolve_model(model)[1].get("speaker_dims")
    for name, model, path in ablation_backbones(ablation):
        dims[name] = run_layout(model, path).speaker_dims()
    return dims


def int8_system(model: str) -> tuple[str, object, int]:
    _, card = resolve_model(model)  # keyed by the card's name and digest: a .tflite path works too
    return f"{card['name']}_int8vad_{card['sha256'][:12]}", lambda: _int8(model), card["bytes"]


def band_shape_system(model: str) -> tuple[str, object, None]:
    """Each utterance's spectral shape as the live pipeline computes it for a band-shape head: the mean over its
    speech windows of frontend.band_shape of the model's own log-mels."""
    _, card = resolve_model(model)
    return f"{card['name']}_bandshapevad_{card['sha256'][:12]}", lambda: _band_shapes(model), None


def _band_shapes(model: str):
    from ..frontend import band_shape
    from ..runtime import Embedder

    embedder = Embedder(model)  # its frontend: the log-mels its embed() computes
    return lambda audio: np.mean([band_shape(embedder.features(w))
                                  for w in speech_or_all_windows(audio, embedder.window, embedder.hop)], axis=0)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _teacher(name: str):
    from .teachers import TEACHERS

    return TEACHERS[name]().utterance


def _whisper(model: str, blocks: tuple[int, ...]):
    from .whisper import WhisperEncoder

    encoder = WhisperEncoder(model)

    def embed(audio):
        frames = encoder.blocks(audio[: 30 * 16000], blocks)
        return np.concatenate([frames[b].mean(axis=0) for b in blocks])

    return embed


def split_whisper_rows(per_system: dict) -> None:
    """'whisper MODEL' (its blocks side by side) -> one 'whisper MODEL bN' row per block."""
    for model, blocks in WHISPER_SYSTEMS.items():
        joined = per_system.pop(f"whisper {model}", None)
        if joined is None:
            continue
        for i, block in enumerate(blocks):
            per_system[f"whisper {model} b{block}"] = {
                ds: X[:, i * X.shape[1] // len(blocks) : (i + 1) * X.shape[1] // len(blocks)] for ds, X in joined.items()}


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


def run_layout(model: str, backbone_path: Path):
    """The student layout a distill run trained (its student.json); runs from before 0.3.0 wrote none and
    have the 0.2.0 layout: the shipped size without a speaker branch."""
    import dataclasses

    from .student import SIZES, StudentConfig

    recorded = backbone_path.parent / "student.json"
    if recorded.exists():
        return StudentConfig.from_dict(json.loads(recorded.read_text()))
    return dataclasses.replace(SIZES[model], speaker_blocks=(), shared_blocks=0)


def _float(model: str, path: Path):
    from .distill import log_mels
    from .student import build_backbone

    cfg = run_layout(model, path)
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

    X = _cached(cache, f"{set_name}_{key}", compute)
    if len(X) != len(items):  # a cache made from another data root (or an older manifest): rows would mismatch
        raise EdgeparaError(f"expected {len(items)} rows ({set_name}'s utterances in the data root) in "
                            f"{cache / f'{set_name}_{key}.npy'}, got {len(X)} (a cache of another data root or "
                            f"manifest: use another --cache, or delete the file)")
    return X


def teacher_sizes() -> dict[str, int]:
    import importlib.util

    sizes = {}
    ow = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    sizes["speech_embedding"] = (ow / "embedding_model.tflite").stat().st_size + (ow / "melspectrogram.tflite").stat().st_size
    rz = Path(importlib.util.find_spec("resemblyzer").origin).parent / "pretrained.pt"
    sizes["resemblyzer"] = rz.stat().st_size
    from .whisper import read_ct2_variables, resolve_model_dir

    for model in WHISPER_SYSTEMS:  # the encoder's weights as shipped (fp16), not the decoder's
        weights = read_ct2_variables(resolve_model_dir(model) / "model.bin")
        sizes[f"whisper {model}"] = int(sum(w.nbytes for w in weights.values()))
    return sizes


def mask_X_rows(mask_X: dict) -> dict:
    """The masked set's features with the Whisper systems split into one row per layer."""
    wrapped = {k: {"m": v} for k, v in mask_X.items()}
    split_whisper_rows(wrapped)
    return {k: v["m"] for k, v in wrapped.items()}


def ablation_name(variant: str, model: str) -> str:
    """The benchmark's row for a `scripts/ablation.sh` run (float)."""
    return f"ablation {variant} ({model} float)"
