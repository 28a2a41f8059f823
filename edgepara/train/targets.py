"""Stage 1 of distillation: cut the training audio into the windows the live stream would cut, and label
each window with every teacher.

Teachers see whole recordings (up to 30 s), not lone windows: Whisper's frames inside a window's span are
pooled into that window's targets (so a target has the recording's context, as TRILLsson's teacher had),
and resemblyzer embeds the whole recording (GE2E wants >= 1.6 s; one-second windows gave noisy targets).
Masked copies are labelled from the masked audio, so mask cues stay in the embedding; noise and rooms are
added later, at training time, with targets from the clean audio (see augment.py).

Windows are written in shards (npz) under the cache directory; a shard that exists is never recomputed,
so an interrupted run resumes where it stopped. Progress, throughput and ETA go to `progress.log` there.
A recording that cannot be decoded or holds no speech is skipped, counted, and listed in `skipped.log`.

The stages (decode -> augment -> teachers -> shard) are plain functions, so the same code runs here in a
process pool and as Ray Data stages (`ray_labelling.py`); both write the same shards.
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
from ..audio import audio_file_blocks
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


def decode(clip: Clip) -> np.ndarray:
    """The clip's audio (int16, 16 kHz mono): at most MAX_SECONDS from its start, decoded in blocks so a
    long recording is never held whole (the same samples as the whole file's read, sliced)."""
    start, end = int(round(clip.start_s * 16000)), int(round(clip.start_s * 16000)) + MAX_SECONDS * 16000
    parts, position = [], 0
    for block in audio_file_blocks(clip.path):
        lo, hi = max(start - position, 0), min(end - position, len(block))
        if hi > lo:
            parts.append(block[lo:hi])
        position += len(block)
        if position >= end:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def augment(audio: np.ndarray, clip: Clip, curves: dict, seed: int) -> np.ndarray:
    """The clip's mask, if any (its random draw is a function of the clip, so any worker makes the same)."""
    if not clip.mask:
        return audio
    key = int(hashlib.sha1(f"{seed}|{clip.path}|{clip.start_s}|{clip.mask}".encode()).hexdigest()[:8], 16)
    return apply_mask(audio, *curves[clip.mask], rng=np.random.default_rng(key), n_taps=257)


def clip_name(clip: Clip) -> str:
    return f"{clip.path}@{clip.start_s:g}"


def clip_seconds(clip: Clip, duration_s: float) -> float:
    """Seconds of audio in one clip of a recording lasting duration_s (0 when the duration is unknown)."""
    return float(min(MAX_SECONDS, max(duration_s - clip.start_s, 0.0)))


class Labeller:
    """All teachers, loaded once per worker process."""

    def __init__(self):
        from threadpoolctl import ThreadpoolController

        from .teachers import ResemblyzerTeacher
        from .whisper import WhisperEncoder

        self.blas = ThreadpoolController()  # the loaded BLAS libraries, found once
        self.encoders = {m: WhisperEncoder(m) for m in sorted({m for m, _ in WHISPER_LAYERS})}
        self.speaker = ResemblyzerTeacher()

    def label(self, audio: np.ndarray) -> dict[str, np.ndarray] | None:
        """Targets for every speech window of one recording, or None when the VAD finds no speech."""
        # one BLAS thread while labelling, as in Ray's actors: a multi-threaded BLAS sums the log-mel products in
        # another order, and the fp16 targets then differ by one step between paths; the process keeps its own
        # setting outside labelling
        with self.blas.limit(limits=1, user_api="blas"):
            return self._label(audio)

    def _label(self, audio: np.ndarray) -> dict[str, np.ndarray] | None:
        windows, _ = recording_windows(audio, WINDOW, TRAIN_HOP)
        if not windows:
            return None
        padded, starts = window_starts(audio, windows)
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
                    out["gram"] = cosine_gram(spans, spans)
        out["resemblyzer"] = np.repeat(self.speaker.utterance(recording_speech(windows))[None], len(windows), axis=0)
        return out


def window_starts(audio: np.ndarray, windows) -> tuple[np.ndarray, np.ndarray]:
    """(audio padded to hold the last window, at most 30 s; each window's first sample in it)."""
    starts = np.array([int(round(w.t_start * 16000)) for w in windows])
    end = max(len(audio), int(starts.max()) + WINDOW)
    padded = np.pad(audio, (0, end - len(audio)))[: MAX_SECONDS * 16000]
    return padded, np.minimum(starts, len(padded) - WINDOW)


def cosine_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, T, D) x (n, T, D) -> (n, T, T) cosines of a's frames against b's (a is b: the temporal Gram matrix)."""
    unit_a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-6)
    unit_b = unit_a if b is a else b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-6)
    return np.einsum("ntd,nsd->nts", unit_a, unit_b).astype(np.float16)


def wider_windows(raw: dict[str, np.ndarray], seconds: int) -> dict[str, np.ndarray]:
    """The cache's 1 s windows (hop 0.5 s) as `seconds`-long ones, without relabelling: each window joined with
    the windows 1, 2, ... s after it in the same recording where the speech goes on without a gap (their
    cached audio overlaps by half at every hop), else zeros, as the live windower pads a short utterance.
    Pooled targets (2-D) become the mean over the parts present; Gram targets (n, 50, 50) become
    (n, seconds, 50, 50), all-zero for an absent part (a real Gram matrix has ones on its diagonal);
    everything else keeps the first window's value."""
    audio, clips = raw["audio"], raw["clip"]
    n, half = len(audio), WINDOW // 2
    step = WINDOW // TRAIN_HOP  # cached windows per second
    # follows[i]: window i + 1 continues window i (same recording, overlapping halves equal)
    follows = np.zeros(n, bool)
    follows[:-1] = (clips[1:] == clips[:-1]) & np.all(audio[1:, :half] == audio[:-1, half:], axis=1)
    parts = [np.arange(n)]
    present = [np.ones(n, bool)]
    for k in range(1, seconds):
        j = np.minimum(np.arange(n) + k * step, n - 1)
        ok = present[-1].copy()
        for m in range(step):  # every hop in between continues
            ok &= follows[np.minimum(np.arange(n) + (k - 1) * step + m, n - 1)]
        ok &= np.arange(n) + k * step < n
        parts.append(j)
        present.append(ok)
    weights = np.stack(present, axis=1).astype(np.float32)  # (n, seconds)
    out = {}
    for key, value in raw.items():
        if key == "audio":
            out[key] = np.concatenate([np.where(p[:, None], audio[j], 0) for j, p in zip(parts, present)], axis=1)
        elif value.ndim == 3 and value.shape[1:] == (50, 50):
            out[key] = np.stack([np.where(p[:, None, None], value[j], 0) for j, p in zip(parts, present)], axis=1)
        elif value.ndim == 2 and np.issubdtype(value.dtype, np.floating):
            total = sum(value[j].astype(np.float32) * w[:, None] for j, w in zip(parts, weights.T))
            out[key] = (total / weights.sum(axis=1, keepdims=True)).astype(value.dtype)
        else:
            out[key] = value
    return out


def recording_speech(windows) -> np.ndarray:
    """A recording's speech without overlap, what the speaker teachers embed: every other window (the training
    hop is half a window)."""
    return np.concatenate([w.samples for w in windows[:: WINDOW // TRAIN_HOP]])


def decode_or_reason(clip: Clip) -> tuple[np.ndarray | None, str | None]:
    """(audio, None), or (None, why) for a clip that cannot be decoded or is empty."""
    try:
        audio = decode(clip)
    except EdgeparaError as err:
        return None, f"undecodable: {err}"
    return (audio, None) if len(audio) else (None, "no audio")


def label_clip(labeller: "Labeller", clip: Clip, curves: dict, seed: int) -> tuple[dict | None, str | None]:
    """(targets, None) for a clip with speech; (None, reason) for one that is undecodable or holds none."""
    audio, reason = decode_or_reason(clip)
    if audio is None:
        return None, reason
    return label_audio(labeller, augment(audio, clip, curves, seed))


def label_audio(labeller: "Labeller", audio: np.ndarray) -> tuple[dict | None, str | None]:
    """(targets, None), or (None, "no speech") when the VAD finds none in the (augmented) audio."""
    targets = labeller.label(audio)
    return (targets, None) if targets is not None else (None, "no speech")


def shard_arrays(clips: list[Clip], results: list[tuple[dict | None, str | None]]) -> dict[str, np.ndarray]:
    """One shard's arrays from its clips' results, in clip order: every window's targets and metadata, and
    `skipped` (one "clip<TAB>mask<TAB>reason" per clip without targets)."""
    parts, skipped = [], []
    meta = {"source": [], "speaker": [], "mask": [], "clip": []}
    for clip, (targets, reason) in zip(clips, results):
        if targets is None:
            skipped.append(f"{clip_name(clip)}\t{clip.mask or 'none'}\t{reason}")
            continue
        n = len(targets["audio"])
        parts.append(targets)
        meta["source"] += [clip.source] * n
        meta["speaker"] += [clip.speaker] * n
        meta["mask"] += [clip.mask or "none"] * n
        meta["clip"] += [clip_name(clip)] * n
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    arrays["skipped"] = np.array(skipped, dtype=str)
    return arrays


def write_shard(shard_path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(shard_path, lambda tmp: np.savez(tmp, **arrays))  # a shard appears whole or not at all
    skipped = arrays["skipped"]
    if len(skipped):
        with open(shard_path.parent / "skipped.log", "a") as f:
            f.writelines(f"{shard_path.name}\t{line}\n" for line in skipped)


def _label_shard(args) -> str:
    shard_path, clips, data_root, seed = args
    labeller = _label_shard.labeller = getattr(_label_shard, "labeller", None) or Labeller()
    curves = load_curves(str(curves_path(data_root)))
    write_shard(shard_path, shard_arrays(clips, [label_clip(labeller, c, curves, seed) for c in clips]))
    return shard_path.name


@dataclass
class ShardPlan:
    """The cache's shards for a list of clips, and which of them are still to be labelled."""

    cache: Path
    clips: list[Clip]
    shards: list[Path]
    todo: list[int]  # shard indices without a file yet
    size: int = SHARD  # clips per shard

    def shard_of(self, index: int) -> int:
        return index // self.size

    def indices_of(self, shard: int) -> range:
        return range(shard * self.size, min((shard + 1) * self.size, len(self.clips)))

    def clips_of(self, shard: int) -> list[Clip]:
        return self.clips[shard * self.size : (shard + 1) * self.size]


def plan_shards(clips: list[Clip], cache: Path, seed: int, size: int = SHARD) -> ShardPlan:
    """Check that the cache holds (or will hold) exactly these clips' targets in shards of `size` clips, and
    list what is left."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "clips.json"
    fingerprint = hashlib.sha1(json.dumps([asdict(c) for c in clips] + [list(WHISPER_LAYERS), list(GRAM_LAYER)]).encode()).hexdigest()
    if manifest.exists():
        earlier = json.loads(manifest.read_text())
        if earlier["fingerprint"] != fingerprint or earlier.get("shard_size", SHARD) != size:
            raise EdgeparaError(f"expected the cache {cache} to hold targets of these recordings and teachers, got "
                                "another run's; use another --cache or delete it")
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "n_clips": len(clips), "seed": seed,
                                    "shard_size": size}))
    shards = [cache / f"shard_{i:04d}.npz" for i in range((len(clips) + size - 1) // size)]
    return ShardPlan(cache, clips, shards, [i for i, p in enumerate(shards) if not p.exists()], size)


class Progress:
    """Clips done of all, throughput (clips and audio seconds per second) and ETA, to the log and to
    `progress.log` in the cache. Audio seconds come from the manifests' durations (0 where unknown)."""

    def __init__(self, plan: ShardPlan, durations: dict[str, float], log=print, every_s: float = 0.0):
        self.plan, self.log, self.every_s = plan, log, every_s
        self.seconds = [clip_seconds(c, durations.get(c.path, 0.0)) for c in plan.clips]
        self.done = len(plan.clips) - sum(len(plan.clips_of(i)) for i in plan.todo)
        self.fresh, self.fresh_s = 0, 0.0
        self.t0 = self._last = time.time()

    def add(self, indices: range | list[int], force: bool = False) -> None:
        """Clips (by index) just labelled; reports at most every `every_s` seconds unless forced."""
        self.done += len(indices)
        self.fresh += len(indices)
        self.fresh_s += sum(self.seconds[i] for i in indices)
        if force or time.time() - self._last >= self.every_s:
            self.report()

    def report(self) -> None:
        self._last = time.time()
        elapsed = max(self._last - self.t0, 1e-6)
        rate = self.fresh / elapsed
        left = len(self.plan.clips) - self.done
        eta = "done" if not left else f"ETA {left / rate / 60:.1f} min" if rate > 0 else "ETA unknown yet"
        line = (f"{time.strftime('%H:%M:%S')} clips {self.done}/{len(self.plan.clips)} "
                f"({rate:.2f} clips/s, {self.fresh_s / elapsed:.1f} audio s/s, {eta})")
        self.log(line)
        with open(self.plan.cache / "progress.log", "a") as f:
            f.write(line + "\n")


def extract_targets(clips: list[Clip], cache: Path, data_root: Path, seed: int, workers: int = 1,
                    log=print, durations: dict[str, float] | None = None, shard_size: int = SHARD) -> list[Path]:
    """Label every clip's windows with all teachers; returns the shard files (resumes from the cache)."""
    plan = plan_shards(clips, cache, seed, shard_size)
    progress = Progress(plan, durations or {}, log)
    progress.report()
    todo = [(plan.shards[i], plan.clips_of(i), data_root, seed) for i in plan.todo]
    shard_of = {plan.shards[i].name: i for i in plan.todo}
    if workers <= 1 or len(todo) <= 1:
        for name in map(_label_shard, todo):
            progress.add(plan.indices_of(shard_of[name]), force=True)
    elif todo:
        with mp.get_context("spawn").Pool(workers) as pool:  # torch does not like fork
            for name in pool.imap_unordered(_label_shard, todo):
                progress.add(plan.indices_of(shard_of[name]), force=True)
    report_skipped(plan.shards, log)
    return plan.shards


# Teachers labelled beside the cache's shards, only for a run whose losses use them: adding one never relabels
# (or invalidates) the shards. Each labels one recording's windows as Labeller.label cuts them.
SUPPLEMENTARY = ("dvector", "gram_cross")
CROSS_GRAM_LAYERS = (("tiny.en", GRAM_LAYER[1] - 1), GRAM_LAYER)  # a block's input and output frames (STaR)


class RecordingSpeakerTeacher:
    """A speaker teacher's vector of the recording's speech, repeated on its windows like resemblyzer's."""

    def __init__(self, name: str):
        from .teachers import TEACHERS

        self.teacher = TEACHERS[name]()
        self.shape = (self.teacher.dim,)

    def label(self, audio: np.ndarray, windows) -> np.ndarray:
        return np.repeat(self.teacher.utterance(recording_speech(windows))[None], len(windows), axis=0)


class CrossGramTeacher:
    """STaR's layer-wise temporal Gram matrix: cosines of the Gram block's input frames (the block before it)
    against its output frames, 50 x 50 per window, from the Whisper encoder seeing the whole recording."""

    def __init__(self):
        from .whisper import WhisperEncoder

        (model, self.before), (_, self.after) = CROSS_GRAM_LAYERS
        self.encoder = WhisperEncoder(model)
        self.shape = (50, 50)

    def label(self, audio: np.ndarray, windows) -> np.ndarray:
        padded, starts = window_starts(audio, windows)
        frames = self.encoder.blocks(padded, (self.before, self.after))
        spans = {b: np.stack([frames[b][f : f + 50] for f in starts * 50 // 16000]) for b in frames}
        return cosine_gram(spans[self.before], spans[self.after])


def supplementary_teacher(name: str):
    return CrossGramTeacher() if name == "gram_cross" else RecordingSpeakerTeacher(name)


def supplement_path(shard: Path, teacher: str) -> Path:
    return shard.with_name(f"{shard.stem}.{teacher}.npz")


def _label_supplement(args) -> str:
    """One shard's windows labelled by a supplementary teacher, recording by recording as Labeller.label cuts
    them (same decode, mask and VAD), checked against the shard's window count."""
    shard_path, clips, data_root, seed, teacher_name = args
    teachers = _label_supplement.teachers = getattr(_label_supplement, "teachers", {})
    teacher = teachers.get(teacher_name) or teachers.setdefault(teacher_name, supplementary_teacher(teacher_name))
    curves = load_curves(str(curves_path(data_root)))
    rows = []
    for clip in clips:
        audio, _ = decode_or_reason(clip)
        if audio is None:
            continue
        audio = augment(audio, clip, curves, seed)
        windows, _ = recording_windows(audio, WINDOW, TRAIN_HOP)
        if windows:
            rows.append(teacher.label(audio, windows))
    vectors = np.concatenate(rows) if rows else np.zeros((0, *teacher.shape), np.float32)
    with np.load(shard_path) as shard:
        expected = len(shard["audio"]) if "audio" in shard.files else 0
    if len(vectors) != expected:
        raise EdgeparaError(f"expected {expected} windows for {shard_path.name} from {teacher_name}, got "
                            f"{len(vectors)}: the cache was labelled by other code; delete it or use another --cache")
    out = supplement_path(shard_path, teacher_name)
    atomic_write(out, lambda tmp: np.savez(tmp, **{teacher_name: vectors.astype(np.float16)}))
    return shard_path.name


def extract_supplement(shards: list[Path], clips: list[Clip], teacher: str, data_root: Path, seed: int,
                       workers: int = 1, log=print, shard_size: int = SHARD) -> None:
    """Label the cache's shards with a supplementary teacher (resumes: a shard's file that exists is kept)."""
    todo = [(path, clips[i * shard_size : (i + 1) * shard_size], data_root, seed, teacher)
            for i, path in enumerate(shards) if not supplement_path(path, teacher).exists()]
    if not todo:
        return
    log(f"{teacher} targets for {len(todo)} of {len(shards)} shards")
    t0, done = time.time(), 0
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 and len(todo) > 1 else None
    try:
        for _ in (pool.imap_unordered(_label_supplement, todo) if pool else map(_label_supplement, todo)):
            done += 1
            rate = done / max(time.time() - t0, 1e-6)
            log(f"{time.strftime('%H:%M:%S')} {teacher} shards {done}/{len(todo)} "
                f"(ETA {(len(todo) - done) / rate / 60:.1f} min)")
    finally:
        if pool:
            pool.close()
            pool.join()


def report_skipped(shards: list[Path], log=print) -> int:
    """Count (and name the log of) the clips skipped in every shard, this run's and earlier ones'."""
    skipped = 0
    for path in shards:
        with np.load(path) as shard:
            skipped += len(shard["skipped"]) if "skipped" in shard.files else 0
    if skipped:
        log(f"{skipped} clips skipped (undecodable or no speech): listed in {shards[0].parent / 'skipped.log'}")
    return skipped


def _no_speech(shards: list[Path]) -> EdgeparaError:
    return EdgeparaError(f"expected speech in the training recordings, got none in {len(shards)} shards: every "
                         f"recording was undecodable or silent (see skipped.log in the cache)")


def check_some_speech(shards: list[Path]) -> None:
    """Refuses a labelling run in which no recording gave a window of speech (all undecodable or silent)."""
    for path in shards:
        with np.load(path) as shard:
            if "audio" in shard.files:
                return
    raise _no_speech(shards)


def load_targets(shards: list[Path], supplements: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every shard's windows and targets, with those of the named supplementary teachers beside them."""
    parts = []
    for p in shards:
        part = {k: v for k, v in np.load(p).items() if k != "skipped"}
        for teacher in supplements:
            part.update(np.load(supplement_path(p, teacher)).items())
        parts.append(part)
    parts = [p for p in parts if "audio" in p]  # a shard whose clips held no speech is empty
    if not parts:
        raise _no_speech(shards)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
