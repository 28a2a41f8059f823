"""Benchmark protocol pieces on constructed data: identification, enrollment choice, zero-shot transfer,
the live speaker score used for threshold calibration, and the held-out noise/room split."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")


def _voices(n_speakers=4, per=6, dim=16, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_speakers, dim))
    speakers = np.repeat([f"s{i}" for i in range(n_speakers)], per)
    X = centres[np.repeat(np.arange(n_speakers), per)] + noise * rng.normal(size=(n_speakers * per, dim))
    return X, speakers


def test_identification_uses_only_the_query_rows():
    from edgepara.train.probes import first_n_per_speaker, identification_accuracy

    X, speakers = _voices()
    enroll = first_n_per_speaker(speakers, 3)
    assert enroll.sum() == 12 and all(enroll[speakers == s].sum() == 3 for s in set(speakers))
    assert identification_accuracy(X, speakers, enroll) == 1.0
    wrong = X.copy()
    wrong[5] = X[0 + 6 * 2]  # one query row sounds like speaker s2
    assert identification_accuracy(wrong, speakers, enroll) == pytest.approx(11 / 12)
    only = np.zeros(len(X), bool)
    only[5] = True
    assert identification_accuracy(wrong, speakers, enroll, query=only) == 0.0


def test_enrollment_takes_only_eligible_rows():
    from edgepara.train.probes import first_n_per_speaker

    speakers = np.array(["a"] * 5 + ["b"] * 5)
    eligible = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    enroll = first_n_per_speaker(speakers, 3, eligible)
    assert enroll.tolist() == [0, 1, 1, 0, 1, 1, 1, 0, 1, 0]


def test_zero_shot_probe_sees_nothing_of_the_target_corpus():
    from edgepara.train.probes import zero_shot_uar

    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b"], 40)
    X = rng.normal(size=(80, 4)) + (y == "b")[:, None] * 3.0
    shifted = X + 100.0  # another corpus with another offset: no statistics of it may be used
    assert zero_shot_uar(X[::2], y[::2], X[1::2], y[1::2], X, y) == 1.0
    assert zero_shot_uar(X[::2], y[::2], X[1::2], y[1::2], shifted, y) == 0.5


def test_live_speaker_score_ignores_the_other_part():
    from edgepara.speaker import equal_error_rate
    from edgepara.train.heads import live_speaker_trials

    rng = np.random.default_rng(2)
    X, speakers = _voices(dim=8, noise=0.05)
    windows = [np.concatenate([rng.normal(size=(3, 8)) * 5, np.tile(x, (3, 1))], axis=1) for x in X]
    card = {"speaker_dims": [8, 16]}
    scores, same = live_speaker_trials(windows, speakers, card)
    assert len(scores) == (len(X) - 12) * 4 and same.sum() == len(X) - 12
    assert equal_error_rate(scores, same)[0] == 0.0
    whole, same_whole = live_speaker_trials(windows, speakers, {})
    assert equal_error_rate(whole, same_whole)[0] > 0.0  # the loud first part hides the voice


def test_robustness_noise_and_rooms_are_held_out_of_training(tmp_path):
    from edgepara.train.data import noise_paths, room_paths

    for folder, n in (("noise_real", 7), ("rirs_real", 5)):
        (tmp_path / folder).mkdir()
        rows = [f"f{i}.flac,x,,1.0,train" for i in range(n)]
        (tmp_path / folder / "manifest.csv").write_text("path,label,speaker,duration_s,split\n" + "\n".join(rows) + "\n")
    (tmp_path / "emospeech_in").mkdir()
    (tmp_path / "emospeech_in" / "manifest.csv").write_text(
        "path,label,speaker,duration_s,split,kind\nbg.opus,,,3,train,background\ns.opus,calm,U1,3,train,speech\n")
    for get, n in ((noise_paths, 7), (room_paths, 5)):
        train, held = set(get(tmp_path, "train")), set(get(tmp_path, "eval"))
        assert not train & held and held
    assert Path(tmp_path / "emospeech_in" / "bg.opus") in noise_paths(tmp_path, "train")
    assert len(noise_paths(tmp_path, "eval")) == 3 and len(room_paths(tmp_path, "eval")) == 2
