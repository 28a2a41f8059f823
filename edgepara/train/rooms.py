"""Simulated rooms for the students' corruption: random shoebox rooms by the image-source method
(pyroomacoustics), so the student hears thousands of rooms, not only the handful of measured ones (whose
held-out third stays out of training for the robustness benchmark).

Each room: length 2.5-12 m, width 2.5-10 m, height 2.2-4.5 m; a reverberation time of 0.15-1.2 s turned into
wall absorption and reflection order by Sabine's formula; the talker at 1.0-1.9 m height and the microphone at
0.5-1.8 m, anywhere at least 0.4 m from the walls and 0.3 m from each other. Drawn from a seeded generator,
so the same seed gives the same rooms.
"""
from __future__ import annotations

import numpy as np

N_ROOMS = 2000
RATE = 16000
MAX_ORDER = 50  # caps the image-source reflection order of the most reverberant rooms (time), not their RT60


def _position(rng: np.random.Generator, dims: np.ndarray, height: tuple[float, float]) -> np.ndarray:
    margin = 0.4
    return np.array([rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin),
                     rng.uniform(height[0], min(height[1], dims[2] - margin))])


def simulated_room(rng: np.random.Generator) -> np.ndarray:
    """One room's impulse response (float32, 16 kHz), from the talker to the microphone."""
    import pyroomacoustics as pra

    while True:
        dims = rng.uniform([2.5, 2.5, 2.2], [12.0, 10.0, 4.5])
        rt60 = rng.uniform(0.15, 1.2)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # a room too large for so short a reverberation: draw another
            continue
        talker = _position(rng, dims, (1.0, 1.9))
        microphone = _position(rng, dims, (0.5, 1.8))
        if np.linalg.norm(talker - microphone) < 0.3:
            continue
        room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=min(max_order, MAX_ORDER))
        room.add_source(talker)
        room.add_microphone(microphone)
        room.compute_rir()
        return np.asarray(room.rir[0][0], np.float32)


def simulated_rooms(n: int = N_ROOMS, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 2])
    return [simulated_room(rng) for _ in range(n)]
