"""Corruptions the student hears while its targets stay those of the clean audio, so the embedding learns
to ignore the room, the background, the level and the codec: measured room responses, real background
noise, gain, and an Opus round trip (the held-out third of rooms and noise, among them the phone's device
response, is kept for the robustness benchmark). Masks are not here: masked audio is
labelled by the teachers from the masked signal (targets.py), so mask cues stay in the embedding."""
from __future__ import annotations

import io

import numpy as np
from scipy.signal import fftconvolve

from ..audio import read_audio


class Corruptor:
    """Reproducible corruption of 16 kHz int16 windows with real noise and rooms read once."""

    def __init__(self, noise_files, room_files, p_room: float = 0.5, p_noise: float = 0.6, p_codec: float = 0.15,
                 snr_db: tuple[float, float] = (0.0, 20.0), gain_db: tuple[float, float] = (-18.0, 6.0)):
        self.noises = [n.astype(np.float32) for n in (read_audio(p) for p in noise_files) if len(n) > 16000]
        self.rooms = [self._room(read_audio(p)) for p in room_files]
        self.p_room, self.p_noise, self.p_codec = p_room, p_noise, p_codec
        self.snr_db, self.gain_db = snr_db, gain_db

    @staticmethod
    def _room(rir: np.ndarray) -> np.ndarray:
        h = rir.astype(np.float32)
        h = h[int(np.argmax(np.abs(h))):]  # start at the direct path, so speech is not delayed
        return h / (np.sqrt(np.sum(h**2)) + 1e-9)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = audio.astype(np.float32)
        level = np.sqrt(np.mean(x**2)) + 1e-6
        if self.rooms and rng.random() < self.p_room:
            x = fftconvolve(x, self.rooms[rng.integers(len(self.rooms))])[: len(x)].astype(np.float32)
            x *= level / (np.sqrt(np.mean(x**2)) + 1e-6)
        if self.noises and rng.random() < self.p_noise:
            noise = self.noises[rng.integers(len(self.noises))]
            start = rng.integers(0, len(noise) - len(x)) if len(noise) > len(x) else 0
            segment = np.resize(noise[start : start + len(x)], len(x))
            x = x + noise_at_snr(segment, level, rng.uniform(*self.snr_db))
        x = x * 10 ** (rng.uniform(*self.gain_db) / 20)
        x = np.clip(x, -32768, 32767)
        if rng.random() < self.p_codec:
            x = opus_round_trip(x.astype(np.int16)).astype(np.float32)
        return x.astype(np.int16)


def opus_round_trip(audio: np.ndarray) -> np.ndarray:
    """Encode to Ogg Opus and decode again (libsndfile's default bit rate), as phone recordings arrive."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="OGG", subtype="OPUS")
    buf.seek(0)
    decoded, _ = sf.read(buf, dtype="int16")
    return np.resize(decoded, len(audio))


def noise_at_snr(segment: np.ndarray, speech_level: float, snr_db: float) -> np.ndarray:
    """The noise segment scaled so that speech of RMS `speech_level` sits snr_db above it."""
    return segment * speech_level / (np.sqrt(np.mean(segment**2)) + 1e-6) / 10 ** (snr_db / 20)


def add_noise_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """int16 speech plus noise scaled to snr_db relative to the speech's RMS (noise looped to length)."""
    x = speech.astype(np.float32)
    y = x + noise_at_snr(np.resize(noise.astype(np.float32), len(x)), np.sqrt(np.mean(x**2)) + 1e-6, snr_db)
    return np.clip(y, -32768, 32767).astype(np.int16)
