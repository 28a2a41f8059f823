"""The recipe behind the shipped emotion and arousal heads (edgepara/train/emotion.py), on generated data:
per-speaker normalisation, corpus/class weighting, the cold-start prior, the "uncertain" threshold, and
label maps that never force a corpus's label into a class it does not have."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from edgepara.train.emotion import (Labelled, balanced_weights, choose_threshold, fit_recipe, head_from_probe,
                                    speaker_normalised)
from edgepara.train.emotion_corpora import AROUSAL_CLASSES, AROUSAL_MAPS, EMOTION_CLASSES, EMOTION_MAPS


def test_label_maps_only_name_the_tasks_own_classes():
    for maps, classes in ((EMOTION_MAPS, EMOTION_CLASSES), (AROUSAL_MAPS, AROUSAL_CLASSES)):
        for corpus, mapping in maps.items():
            assert set(mapping.values()) <= set(classes), corpus
    assert "disgust" not in AROUSAL_MAPS["ravdess"] and "fearful" not in EMOTION_MAPS["ravdess"]


def test_each_speaker_is_standardised_by_their_own_statistics(rng):
    X = np.concatenate([rng.normal(5, 2, (30, 3)), rng.normal(-3, 0.5, (20, 3))])
    speakers = np.array(["a"] * 30 + ["b"] * 20)
    Z = speaker_normalised(X, speakers)
    for s in "ab":
        assert np.allclose(Z[speakers == s].mean(axis=0), 0, atol=1e-5)
        assert np.allclose(Z[speakers == s].std(axis=0), 1, atol=1e-3)


def test_every_corpus_and_class_weighs_the_same():
    y = np.array(["happy"] * 90 + ["sad"] * 10 + ["happy"] * 5)
    corpora = np.array(["big"] * 100 + ["small"] * 5)
    w = balanced_weights(y, corpora)
    totals = {(c, k): w[(corpora == c) & (y == k)].sum() for c, k in set(zip(corpora, y))}
    assert np.allclose(list(totals.values()), list(totals.values())[0])
    assert w.mean() == pytest.approx(1.0)


def _corpus(rng, name, n_speakers=6, per_class=8):
    """Speakers with their own offsets; classes separated along dimension 0, relative to the speaker."""
    X, y, spk, split = [], [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, 5, 4)
        for k, label in enumerate(("happy", "sad")):
            X.append(offset + rng.normal(0, 0.3, (per_class, 4)) + np.array([2.0 * k, 0, 0, 0]))
            y += [label] * per_class
            spk += [f"{name}:{s}"] * per_class
            split += ["val" if s == 0 else "train"] * per_class
    return Labelled(np.concatenate(X), np.array(y), np.array(spk), np.array(split), [None] * len(y))


def test_the_recipe_learns_against_each_speakers_baseline_and_ships_a_prior(rng):
    parts = {"a": _corpus(rng, "a"), "b": _corpus(rng, "b")}
    probe = fit_recipe(parts, ("happy", "sad"))
    held_out = _corpus(rng, "c")
    Z = speaker_normalised(held_out.X, held_out.speakers)
    assert np.mean(probe.predict(Z) == held_out.y) > 0.95
    raw = fit_recipe(parts, ("happy", "sad"), normalise=False)
    assert np.mean(raw.predict(held_out.X) == held_out.y) < 0.9  # speaker offsets swamp the cue without it
    head, arrays, card = head_from_probe("emotion", probe, {"uncertain_below": 0.5})
    assert head.adaptive and card["input"] == "speaker_normalised" and set(arrays) >= {"prior_mean", "prior_std"}
    all_raw = np.concatenate([p.X for p in parts.values()])
    assert np.allclose(probe.prior_mean, all_raw.mean(axis=0))


def test_the_threshold_is_the_lowest_that_keeps_shown_labels_right_at_the_rate():
    confident = [{"happy": 0.9, "sad": 0.1}] * 40  # right
    unsure = [{"happy": 0.55, "sad": 0.45}] * 40  # a quarter right
    finals = confident + unsure + [None] * 5  # no speech: never shown
    y = np.array(["happy"] * 40 + ["happy"] * 10 + ["sad"] * 30 + ["sad"] * 5)  # all shown: 50 of 80 right
    assert choose_threshold(finals, y, rate=0.70) == pytest.approx(0.56)
    assert choose_threshold(finals, y, rate=0.60) == pytest.approx(0.30)
