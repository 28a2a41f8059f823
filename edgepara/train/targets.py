"""Stage 1 of distillation: cut the training audio into windows and label each with every teacher.

Windows are written in shards (npz) under the cache directory; a shard that exists is never recomputed,
so an interrupted run resumes where it stopped."""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import atomic_write
from ..audio import read_audio
from ..stream.windower import offline_windows
from .augment import augment
from .data import Utterance
from .masks import curves_path, load_curves

WINDOW = 16000
TRAIN_HOP = 8000
SE_STEP = 2  # speech_embedding frames every 20 ms: a temporal sequence dense enough for Gram matching
SHARD = 400


@dataclass(frozen=True)
class Clip:
    """One training recording, possibly augmented (aug > 0) or synthetic (path is None, text given)."""

    source: str
    path: str | None
    aug: int = 0
    text: str | None = None
    voice: str | None = None


def synthetic_clips(n: int, seed: int) -> list[Clip]:
    """espeak-ng sentences in several languages, voices, speeds and pitches (more speakers, more prosody)."""
    if n <= 0 or shutil.which("espeak-ng") is None:
        return []
    rng = np.random.default_rng(seed)
    words = ("the a one two red blue house river morning never always quickly people music window "
             "garden yesterday tomorrow question answer little happy angry quiet loud really maybe").split()
    langs = ["en", "en-us", "en-gb-scotland", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "hi"]
    variants = ["", "+m1", "+m3", "+f1", "+f2", "+f4", "+klatt", "+croak", "+whisper"]
    clips = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(4, 12))))
        if rng.random() < 0.3:
            text += "?" if rng.random() < 0.5 else "!"
        voice = f"{rng.choice(langs)}{rng.choice(variants)}"
        clips.append(Clip("espeak", None, 0, text, f"{voice}|{int(rng.integers(110, 230))}|{int(rng.integers(20, 90))}"))
    return clips


def render(clip: Clip, mask_curves: dict, seed: int) -> np.ndarray:
    if clip.path is not None:
        audio = read_audio(clip.path)
    else:
        voice, speed, pitch = clip.voice.split("|")
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-p", pitch, "-w", tmp.name, clip.text],
                           check=True, capture_output=True)
            audio = read_audio(tmp.name)
    if clip.aug:
        key = int(hashlib.sha1(f"{seed}|{clip.path}|{clip.text}|{clip.aug}".encode()).hexdigest()[:8], 16)
        audio = augment(audio, np.random.default_rng(key), mask_curves)
    return audio


def build_clips(utterances: list[Utterance], n_aug: int, n_synthetic: int, seed: int) -> list[Clip]:
    base = [Clip(u.dataset, str(u.path)) for u in utterances] + synthetic_clips(n_synthetic, seed)
    return base + [Clip(c.source, c.path, a, c.text, c.voice) for a in range(1, n_aug + 1) for c in base]


def _label_shard(args) -> str:
    shard_path, clips, data_root, seed = args
    from .teachers import EGeMAPSTeacher, ResemblyzerTeacher, SpeechEmbeddingTeacher

    se, rz, eg = SpeechEmbeddingTeacher(), ResemblyzerTeacher(), EGeMAPSTeacher()
    curves = load_curves(str(curves_path(data_root)))
    audio_rows, se_frames, rz_rows, eg_rows, sources = [], [], [], [], []
    for clip in clips:
        audio = render(clip, curves, seed)
        for w in offline_windows(audio, WINDOW, TRAIN_HOP):
            audio_rows.append(w)
            se_frames.append(se.frames(w, step=SE_STEP))
            rz_rows.append(rz.utterance(w))
            eg_rows.append(eg.utterance(w))
            sources.append(f"{clip.source}:{clip.aug}")
    # a shard appears whole or not at all
    atomic_write(shard_path, lambda tmp: np.savez(
        tmp, audio=np.stack(audio_rows), se_frames=np.stack(se_frames).astype(np.float32),
        resemblyzer=np.stack(rz_rows), egemaps=np.stack(eg_rows), source=np.array(sources)))
    return shard_path.name


def extract_targets(clips: list[Clip], cache: Path, data_root: Path, seed: int, workers: int = 1,
                    progress=None) -> list[Path]:
    """Label every clip's windows with all teachers; returns the shard files (resumes from the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "clips.json"
    fingerprint = hashlib.sha1(json.dumps([c.__dict__ for c in clips]).encode()).hexdigest()
    if manifest.exists() and json.loads(manifest.read_text())["fingerprint"] != fingerprint:
        raise SystemExit(f"cache {cache} was built from other clips; use another --cache or delete it")
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "n_clips": len(clips), "seed": seed}))
    shards = [cache / f"shard_{i:04d}.npz" for i in range(0, (len(clips) + SHARD - 1) // SHARD)]
    todo = [(p, clips[i * SHARD : (i + 1) * SHARD], data_root, seed) for i, p in enumerate(shards) if not p.exists()]
    if progress:
        progress(len(shards) - len(todo), len(shards))
    if todo:
        ctx = mp.get_context("spawn")  # torch and onnxruntime do not like fork
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_label_shard, todo):
                if progress:
                    progress(1, None)
    return shards


def load_targets(shards: list[Path]) -> dict[str, np.ndarray]:
    parts = [dict(np.load(p)) for p in shards]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
