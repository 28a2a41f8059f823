"""Stage 1 of distillation: cut the training audio into the windows the live stream would cut, and label
each window with every teacher.

Teachers see whole recordings (up to 30 s), not lone windows: Whisper's frames inside a window's span are
pooled into that window's targets (so a target has the recording's context, as TRILLsson's teacher had),
and resemblyzer embeds the whole recording (GE2E wants >= 1.6 s; one-second windows gave noisy targets).
Masked copies are labelled from the masked audio, so mask cues stay in the embedding; noise and rooms are
added later, at training time, with targets from the clean audio (see augment.py).

Windows are written in shards (npz) under the cache directory; a shard that exists is never recomputed,
so an interrupted run resumes where it stopped. Progress, throughput and ETA go to `progress.log` there.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..assets import atomic_write
from ..errors import EdgeparaError
from ..audio import read_audio
from ..embed import recording_windows
from .data import Utterance
from .masks import HELD_OUT_MASK, apply_mask, curves_path, load_curves

WINDOW = 16000
TRAIN_HOP = 8000
MAX_SECONDS = 30  # Whisper's context; longer recordings are cut into 30 s pieces
SHARD = 200
# (model, block) pairs pooled into targets; block 3 was the best layer of both models on validation actors
WHISPER_LAYERS = (("tiny.en", 2), ("tiny.en", 3), ("base", 3), ("base", 4))
GRAM_LAYER = ("tiny.en", 3)  # frame sequence (50 frames/s) for the temporal Gram-matrix loss
MASKED_SHARE = 0.25  # share of recordings that also get one masked copy


def whisper_key(model: str, block: int) -> str:
    return f"whisper_{model.replace('.', '')}_b{block}"


@dataclass(frozen=True)
class Clip:
    """One training recording (or a 30 s piece of it), optionally through a simulated mask."""

    source: str
    path: str
    speaker: str
    start_s: float = 0.0
    mask: str | None = None


def build_clips(utterances: list[Utterance], seed: int, masks: tuple[str, ...]) -> list[Clip]:
    """Every recording once (long ones in 30 s pieces), plus a masked copy of a fixed random share."""
    rng = np.random.default_rng(seed)
    clips = []
    for u in utterances:
        for start in np.arange(0.0, max(u.duration_s, 1e-3), MAX_SECONDS):
            clips.append(Clip(u.dataset, str(u.path), f"{u.dataset}:{u.speaker}", float(start)))
    usable = [m for m in masks if m != HELD_OUT_MASK]
    masked = [Clip(c.source, c.path, c.speaker, c.start_s, str(rng.choice(usable)))
              for c in clips if usable and rng.random() < MASKED_SHARE]
    return clips + masked


def render(clip: Clip, curves: dict, seed: int) -> np.ndarray:
    audio = read_audio(clip.path)
    start = int(clip.start_s * 16000)
    audio = audio[start : start + MAX_SECONDS * 16000]
    if clip.mask:
        key = int(hashlib.sha1(f"{seed}|{clip.path}|{clip.start_s}|{clip.mask}".encode()).hexdigest()[:8], 16)
        audio = apply_mask(audio, *curves[clip.mask], rng=np.random.default_rng(key), n_taps=257)
    return audio


class Labeller:
    """All teachers, loaded once per worker process."""

    def __init__(self):
        from .teachers import ResemblyzerTeacher
        from .whisper import WhisperEncoder

        self.encoders = {m: WhisperEncoder(m) for m in sorted({m for m, _ in WHISPER_LAYERS})}
        self.speaker = ResemblyzerTeacher()

    def label(self, audio: np.ndarray) -> dict[str, np.ndarray] | None:
        """Targets for every speech window of one recording, or None when the VAD finds no speech."""
        windows, _ = recording_windows(audio, WINDOW, TRAIN_HOP)
        if not windows:
            return None
        starts = np.array([int(round(w.t_start * 16000)) for w in windows])
        end = max(len(audio), int(starts.max()) + WINDOW)
        padded = np.pad(audio, (0, end - len(audio)))[: MAX_SECONDS * 16000]
        starts = np.minimum(starts, len(padded) - WINDOW)
        frame0 = starts * 50 // 16000  # Whisper frame of each window's start
        out: dict[str, np.ndarray] = {"audio": np.stack([padded[s : s + WINDOW] for s in starts])}
        for model, encoder in self.encoders.items():
            blocks = sorted({b for m, b in WHISPER_LAYERS + (GRAM_LAYER,) if m == model})
            frames = encoder.blocks(padded, tuple(blocks))
            for block in blocks:
                spans = np.stack([frames[block][f : f + 50] for f in frame0])  # (n, 50, dim)
                if (model, block) in WHISPER_LAYERS:
                    out[whisper_key(model, block)] = spans.mean(axis=1).astype(np.float16)
                if (model, block) == GRAM_LAYER:
                    unit = spans / (np.linalg.norm(spans, axis=-1, keepdims=True) + 1e-6)
                    out["gram"] = np.einsum("ntd,nsd->nts", unit, unit).astype(np.float16)
        speech = np.concatenate([w.samples for w in windows[::2]])  # the recording's speech, without overlap
        out["resemblyzer"] = np.repeat(self.speaker.utterance(speech)[None], len(windows), axis=0)
        return out


def _label_shard(args) -> str:
    shard_path, clips, data_root, seed = args
    labeller = _label_shard.labeller = getattr(_label_shard, "labeller", None) or Labeller()
    curves = load_curves(str(curves_path(data_root)))
    parts, meta = [], {"source": [], "speaker": [], "mask": [], "clip": []}
    for clip in clips:
        targets = labeller.label(render(clip, curves, seed))
        if targets is None:
            continue
        n = len(targets["audio"])
        parts.append(targets)
        meta["source"] += [clip.source] * n
        meta["speaker"] += [clip.speaker] * n
        meta["mask"] += [clip.mask or "none"] * n
        meta["clip"] += [f"{clip.path}@{clip.start_s:g}"] * n
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    atomic_write(shard_path, lambda tmp: np.savez(tmp, **arrays))  # a shard appears whole or not at all
    return shard_path.name


def extract_targets(clips: list[Clip], cache: Path, data_root: Path, seed: int, workers: int = 1,
                    log=print) -> list[Path]:
    """Label every clip's windows with all teachers; returns the shard files (resumes from the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "clips.json"
    fingerprint = hashlib.sha1(json.dumps([asdict(c) for c in clips] + [list(WHISPER_LAYERS), list(GRAM_LAYER)]).encode()).hexdigest()
    if manifest.exists() and json.loads(manifest.read_text())["fingerprint"] != fingerprint:
        raise EdgeparaError(f"expected the cache {cache} to hold targets of these recordings and teachers, got "
                            "another run's; use another --cache or delete it")
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "n_clips": len(clips), "seed": seed}))
    shards = [cache / f"shard_{i:04d}.npz" for i in range((len(clips) + SHARD - 1) // SHARD)]
    todo = [(p, clips[i * SHARD : (i + 1) * SHARD], data_root, seed) for i, p in enumerate(shards) if not p.exists()]
    progress_log = cache / "progress.log"

    def report(done: int, t0: float, fresh: int):
        rate = fresh / max(time.time() - t0, 1e-6)
        eta = (len(shards) - done) / rate if rate > 0 else float("nan")
        line = (f"{time.strftime('%H:%M:%S')} shards {done}/{len(shards)} "
                f"({rate * 60:.2f}/min, ETA {eta / 60:.1f} min)")
        log(line)
        with open(progress_log, "a") as f:
            f.write(line + "\n")

    done, t0 = len(shards) - len(todo), time.time()
    report(done, t0, 0)
    if todo:
        if workers <= 1:
            for i, _ in enumerate(map(_label_shard, todo), 1):
                report(done + i, t0, i)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:  # torch does not like fork
                for i, _ in enumerate(pool.imap_unordered(_label_shard, todo), 1):
                    report(done + i, t0, i)
    return shards


def load_targets(shards: list[Path]) -> dict[str, np.ndarray]:
    parts = [dict(np.load(p)) for p in shards]
    parts = [p for p in parts if "audio" in p]  # a shard whose clips held no speech is empty
    if not parts:
        raise EdgeparaError(f"expected speech in the training recordings, got none in {len(shards)} shards")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
