"""Utterance embeddings of audio files through the live path: decode/resample at the boundary, VAD,
the same windows as the stream, the int8 student; one row per file (its speech windows averaged).

Files are streamed: each window is embedded as soon as the windower cuts it and only a running sum is kept,
so memory is bounded by the VAD/windower state, not by the file's length."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .audio import SAMPLE_RATE, audio_file_blocks
from .errors import NoSpeechError
from .stream.vad import SpeechAudio, VadGate
from .stream.windower import Windower, offline_windows, window_starts
from .types import SpeechEnd, SpeechStart, Window


@dataclass
class EmbedResult:
    embeddings: np.ndarray  # (n_files, dim)
    speech_seconds: np.ndarray  # (n_files,)
    window_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    window_file_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    window_t_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    window_t_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def recording_windows(audio: np.ndarray, window: int, hop: int, use_vad: bool = True,
                      vad_aggressiveness: int = 2) -> tuple[list[Window], float]:
    """The windows the live pipeline would embed, and the seconds of speech they came from."""
    if not use_vad:
        starts = window_starts(max(len(audio), 1), window, hop)
        wins = offline_windows(audio, window, hop)
        return ([Window(s / SAMPLE_RATE, (s + window) / SAMPLE_RATE, 0, w) for s, w in zip(starts, wins)],
                len(audio) / SAMPLE_RATE)
    vad = VadGate(aggressiveness=vad_aggressiveness)
    windower = Windower(window, hop)  # the live default, so long recordings are cut as the stream cuts them
    items = vad.process(audio) + vad.flush()
    out = [w for item in items for w in windower.process(item)] + windower.flush()
    speech = sum(e.duration for e in out if getattr(e, "type", None) == "speech_end")
    return [w for w in out if isinstance(w, Window)], speech


def embed_recording(embedder, audio: np.ndarray, use_vad: bool = True) -> tuple[np.ndarray, list[Window], np.ndarray, float]:
    """(mean embedding, windows, window embeddings, speech seconds) of one 16 kHz int16 recording."""
    windows, seconds = recording_windows(audio, embedder.window, embedder.hop, use_vad)
    if not windows:
        raise NoSpeechError(f"expected speech, found none in {len(audio) / SAMPLE_RATE:.1f} s of audio")
    embs = np.stack([embedder.embed(w.samples) for w in windows])
    return embs.mean(axis=0).astype(np.float32), windows, embs, seconds


@dataclass
class StreamEmbedding:
    """What embed_stream found in one recording: the mean embedding of its windows and, if asked, each one."""

    mean: np.ndarray  # (dim,) float32
    n_windows: int
    speech_seconds: float
    audio_seconds: float
    window_embeddings: np.ndarray  # (n, dim) float32; (0, dim) unless keep_windows
    window_t_start: np.ndarray  # (n,) float32
    window_t_end: np.ndarray  # (n,) float32


def _stream_windows(chunks: Iterable[np.ndarray], window: int, hop: int, use_vad: bool, counter: list):
    """Windows (and SpeechEnd events) of a chunk stream, as recording_windows cuts them, one chunk at a time.
    counter[0] accumulates the samples seen."""
    if use_vad:
        vad, windower = VadGate(), Windower(window, hop)
        for chunk in chunks:
            counter[0] += len(chunk)
            for item in vad.process(chunk):
                yield from windower.process(item)
        for item in vad.flush():
            yield from windower.process(item)
        yield from windower.flush()
        return
    # no VAD: the whole recording is one utterance, windowed at window_starts() like offline_windows
    windower = Windower(window, hop, max_utterance_s=None)
    windower.process(SpeechStart(t=0.0, utterance=0))
    for chunk in chunks:
        windower_items = windower.process(SpeechAudio(0, counter[0] / SAMPLE_RATE, chunk))
        counter[0] += len(chunk)
        yield from windower_items
    for item in windower.flush():
        if isinstance(item, Window):  # offline_windows gives every window its full length, padded or not
            item = Window(item.t_start, item.t_start + window / SAMPLE_RATE, item.utterance, item.samples, item.final)
        yield item


def embed_stream(embedder, chunks: Iterable[np.ndarray], use_vad: bool = True,
                 keep_windows: bool = False) -> StreamEmbedding:
    """embed_recording for a stream of 16 kHz int16 chunks, holding only the VAD/windower state and a running
    sum (plus, with keep_windows, one embedding and two times per window)."""
    total, count, seen = None, 0, [0]
    speech = 0.0
    kept, t0, t1 = [], [], []
    for item in _stream_windows(chunks, embedder.window, embedder.hop, use_vad, seen):
        if isinstance(item, SpeechEnd):
            speech += item.duration
            continue
        if not isinstance(item, Window):
            continue
        emb = np.asarray(embedder.embed(item.samples), dtype=np.float32)
        total = emb.astype(np.float64) if total is None else total + emb
        count += 1
        if keep_windows:
            kept.append(emb)
            t0.append(item.t_start)
            t1.append(item.t_end)
    audio_seconds = seen[0] / SAMPLE_RATE
    if not count:
        raise NoSpeechError(f"expected speech, found none in {audio_seconds:.1f} s of audio")
    if not use_vad:
        speech = audio_seconds
    dim = len(total)
    return StreamEmbedding(
        mean=(total / count).astype(np.float32), n_windows=count, speech_seconds=speech, audio_seconds=audio_seconds,
        window_embeddings=np.stack(kept).astype(np.float32) if kept else np.zeros((0, dim), np.float32),
        window_t_start=np.array(t0, np.float32), window_t_end=np.array(t1, np.float32))


def embed_files(files, model: str = "edgepara-small", per_window: bool = False, use_vad: bool = True,
                embedder=None, progress: str | None = None) -> EmbedResult:
    from .runtime import Embedder

    embedder = embedder or Embedder(model)
    files = [Path(f) for f in files]
    rows, speech, win_rows, win_file, win_t0, win_t1 = [], [], [], [], [], []
    iterator = files
    if progress:
        from rich.progress import track

        iterator = track(files, description=progress, transient=True)
    for i, path in enumerate(iterator):
        try:
            found = embed_stream(embedder, audio_file_blocks(path), use_vad, keep_windows=per_window)
        except NoSpeechError as err:
            raise NoSpeechError(f"{path}: {err}") from None
        rows.append(found.mean)
        speech.append(found.speech_seconds)
        if per_window:
            win_rows.append(found.window_embeddings)
            win_file += [i] * found.n_windows
            win_t0 += list(found.window_t_start)
            win_t1 += list(found.window_t_end)
    result = EmbedResult(np.stack(rows).astype(np.float32), np.array(speech, np.float32))
    if per_window:
        result.window_embeddings = np.concatenate(win_rows).astype(np.float32)
        result.window_file_index = np.array(win_file, np.int32)
        result.window_t_start = np.array(win_t0, np.float32)
        result.window_t_end = np.array(win_t1, np.float32)
    return result
