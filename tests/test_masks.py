"""The mask simulator's filter must reproduce the measured attenuation curve at every measured frequency.

Measured with pure tones: a tone of f Hz lasting exactly one second holds a whole number of cycles, so its
complex amplitude is one DFT bin with no leakage, and the output/input ratio at that bin is the filter's gain.
"""
from pathlib import Path

import numpy as np
import pytest

from edgepara.train.masks import N_TAPS, SAMPLE_RATE, apply_mask, load_curves

CURVES = Path(__file__).parent / "data" / "mask_curves.csv"
SHARED_CURVES = Path(__file__).resolve().parents[2] / "shared" / "data" / "masks" / "curves.csv"
TOLERANCE_DB = 1.0
TONE_AMPLITUDE = 10000  # loud enough that int16 rounding of a -19 dB output is negligible, far from clipping


def curve_points():
    return [(mask, float(f), float(db))
            for mask, (freqs, dbs) in load_curves(str(CURVES)).items()
            for f, db in zip(freqs, dbs) if f > 0]  # 0 Hz is DC: a tone cannot probe it


def gain_db_at(mask_type: str, freq_hz: float) -> float:
    freqs, dbs = load_curves(str(CURVES))[mask_type]
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    tone = np.round(TONE_AMPLITUDE * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    filtered = apply_mask(tone, freqs, dbs, rng=None)
    # The middle second: whole cycles, and more than N_TAPS samples from either end, so no edge transients.
    middle = slice(SAMPLE_RATE // 2, SAMPLE_RATE // 2 + SAMPLE_RATE)
    assert N_TAPS < SAMPLE_RATE // 2
    probe = np.exp(-2j * np.pi * freq_hz * t[middle])
    amplitude_in = abs(tone[middle].astype(np.float64) @ probe)
    amplitude_out = abs(filtered[middle].astype(np.float64) @ probe)
    return 20 * np.log10(amplitude_out / amplitude_in)


def test_the_table_covers_four_masks_at_twelve_frequencies():
    curves = load_curves(str(CURVES))
    assert sorted(curves) == ["CottonDenim2L", "CottonJersey2L", "CottonPlain2L", "surgical"]
    assert all(len(freqs) == 13 and freqs[0] == 0 for freqs, _ in curves.values())


@pytest.mark.parametrize("mask_type, freq_hz, expected_db", curve_points(),
                         ids=[f"{m}-{f:.0f}Hz" for m, f, _ in curve_points()])
def test_filter_gain_matches_the_curve_within_1_db(mask_type, freq_hz, expected_db):
    measured = gain_db_at(mask_type, freq_hz)
    assert abs(measured - expected_db) <= TOLERANCE_DB, (
        f"{mask_type} at {freq_hz:.0f} Hz: expected {expected_db:.2f} dB ± {TOLERANCE_DB}, got {measured:.2f} dB")


def test_the_output_stays_aligned_with_the_input():
    freqs, dbs = load_curves(str(CURVES))["surgical"]
    impulse = np.zeros(4000, np.int16)
    impulse[2000] = 20000
    filtered = apply_mask(impulse, freqs, dbs, rng=None)
    assert len(filtered) == len(impulse)
    assert int(np.argmax(np.abs(filtered))) == 2000  # linear-phase delay removed


@pytest.mark.skipif(not SHARED_CURVES.exists(), reason="../shared is not checked out beside this clone")
def test_the_committed_copy_matches_the_shared_curves():
    assert CURVES.read_bytes() == SHARED_CURVES.read_bytes()


@pytest.mark.parametrize("every_seen_type", [False, True], ids=["bench protocol", "shipped head"])
def test_mask_designs_keep_the_held_out_type_out_and_the_classes_even(every_seen_type):
    """The benchmark fits each system on one seen mask per utterance; the shipped head on every seen mask, its
    clean rows repeated to weigh the same. Neither lets the held-out type into fitting or choosing C."""
    from edgepara.train.bench_sets import Item
    from edgepara.train.bench_tasks import mask_design
    from edgepara.train.data import Utterance
    from edgepara.train.masks import HELD_OUT_MASK, MASK_TYPES

    utterances = [Utterance("ravdess", Path(f"03-01-01-01-01-01-{a:02d}_{i}.flac"), "neutral", f"A{a:02d}", split, 3.0)
                  for a, split in ((1, "train"), (2, "train"), (17, "val"), (19, "test")) for i in range(6)]
    items = [Item(u, m) for m in (None,) + MASK_TYPES for u in utterances]
    design = mask_design(items, every_seen_type=every_seen_type)
    masks = np.array([it.mask or "none" for it in items])
    splits = np.array([it.utterance.split for it in items])
    for fit in ("train", "val"):
        rows = design[fit]
        assert set(splits[rows]) == {fit} and HELD_OUT_MASK not in set(masks[rows])
        labels = design["label"][rows]
        assert np.sum(labels == "mask") == np.sum(labels == "no_mask") > 0
        seen_used = set(masks[rows]) - {"none"}
        assert seen_used == ({m for m in MASK_TYPES if m != HELD_OUT_MASK} if every_seen_type else seen_used)
        if not every_seen_type:  # one mask per utterance
            assert len(rows) == len(set(rows)) == 2 * np.sum((splits == fit) & (masks == "none"))
    held_out = design["test_held_out"]
    assert set(masks[held_out]) == {"none", HELD_OUT_MASK} and set(splits[held_out]) == {"test"}
