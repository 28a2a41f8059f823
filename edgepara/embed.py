"""Utterance embeddings of audio files through the live path: decode/resample at the boundary, VAD,
the same windows as the stream, the int8 student; one row per file (its speech windows averaged)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, read_audio
from .errors import NoSpeechError
from .stream.vad import VadGate
from .stream.windower import Windower, offline_windows, window_starts
from .types import Window


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
            mean, windows, embs, seconds = embed_recording(embedder, read_audio(path), use_vad)
        except NoSpeechError as err:
            raise NoSpeechError(f"{path}: {err}") from None
        rows.append(mean)
        speech.append(seconds)
        if per_window:
            win_rows.append(embs)
            win_file += [i] * len(windows)
            win_t0 += [w.t_start for w in windows]
            win_t1 += [w.t_end for w in windows]
    result = EmbedResult(np.stack(rows).astype(np.float32), np.array(speech, np.float32))
    if per_window:
        result.window_embeddings = np.concatenate(win_rows).astype(np.float32)
        result.window_file_index = np.array(win_file, np.int32)
        result.window_t_start = np.array(win_t0, np.float32)
        result.window_t_end = np.array(win_t1, np.float32)
    return result
