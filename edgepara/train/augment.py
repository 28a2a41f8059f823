"""Corruptions the student hears while its targets stay those of the clean audio, so the embedding learns
to ignore the room, the background, the level and the codec: measured and simulated room responses (rooms.py),
real background noise or babble of other training speakers, gain, and an Opus round trip (the held-out third
of measured rooms and noise, among them the phone's device response, is kept for the robustness benchmark). Masks are not here: masked audio is
labelled by the teachers from the masked signal (targets.py), so mask cues stay in the embedding."""
from __future__ import annotations

import io

import numpy as np
from scipy.signal import fftconvolve

from ..audio import read_audio


class Corruptor:
    """Reproducible corruption of 16 kHz int16 windows with real noise and rooms read once.

    A room, when one is applied, is a measured one with probability p_measured (else one of `simulated_rooms`,
    if given). Background, when added, is babble with probability p_babble (if `babble` windows are given: 3-6
    windows of speakers other than the corrupted window's, summed at random levels), else real noise."""

    def __init__(self, noise_files, room_files, p_room: float = 0.5, p_noise: float = 0.6, p_codec: float = 0.15,
                 snr_db: tuple[float, float] = (0.0, 20.0), gain_db: tuple[float, float] = (-18.0, 6.0),
                 simulated_rooms=(), p_measured: float = 0.3, babble: tuple[np.ndarray, np.ndarray] | None = None,
                 p_babble: float = 0.35):
        self.noises = [n.astype(np.float32) for n in (read_audio(p) for p in noise_files) if len(n) > 16000]
        self.rooms = [self._room(read_audio(p)) for p in room_files]
        self.simulated = [self._room(h) for h in simulated_rooms]
        self.p_room, self.p_noise, self.p_codec = p_room, p_noise, p_codec
        self.p_measured, self.p_babble = p_measured if simulated_rooms else 1.0, p_babble if babble is not None else 0.0
        self.babble_windows, self.babble_speakers = babble if babble is not None else (None, None)
        self.snr_db, self.gain_db = snr_db, gain_db

    @staticmethod
    def _room(rir: np.ndarray) -> np.ndarray:
        h = rir.astype(np.float32)
        h = h[int(np.argmax(np.abs(h))):]  # start at the direct path, so speech is not delayed
        return h / (np.sqrt(np.sum(h**2)) + 1e-9)

    def _babble(self, n: int, speaker, rng: np.random.Generator) -> np.ndarray:
        """3-6 random windows of speakers other than `speaker`, each at its own level, summed (silence when
        no other speaker turns up in a few draws)."""
        wanted, picks = int(rng.integers(3, 7)), []
        for _ in range(10 * wanted):
            i = int(rng.integers(len(self.babble_windows)))
            if self.babble_speakers[i] != speaker and i not in picks:
                picks.append(i)
                if len(picks) == wanted:
                    break
        if not picks:
            return np.zeros(n, np.float32)
        talkers = self.babble_windows[picks].astype(np.float32)
        talkers /= np.sqrt(np.mean(talkers**2, axis=1, keepdims=True)) + 1e-6
        mix = (talkers * rng.uniform(0.3, 1.0, (len(talkers), 1))).sum(axis=0)
        return np.resize(mix, n)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, speaker=None) -> np.ndarray:
        """`speaker`: the window's speaker, whom the babble must not contain."""
        x = audio.astype(np.float32)
        level = np.sqrt(np.mean(x**2)) + 1e-6
        if (self.rooms or self.simulated) and rng.random() < self.p_room:
            bank = self.rooms if not self.simulated or (self.rooms and rng.random() < self.p_measured) else self.simulated
            x = fftconvolve(x, bank[rng.integers(len(bank))])[: len(x)].astype(np.float32)
            x *= level / (np.sqrt(np.mean(x**2)) + 1e-6)
        if (self.noises or self.p_babble) and rng.random() < self.p_noise:
            if self.p_babble and (not self.noises or rng.random() < self.p_babble):
                segment = self._babble(len(x), speaker, rng)
            else:
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
