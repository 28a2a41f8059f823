"""What the 0.4.0 students train on, part by part: languages balanced per epoch, labels of every labelled corpus
mapped onto the shared tasks, simulated rooms, babble that never holds the window's own speaker."""
from pathlib import Path

import numpy as np
import pytest

from edgepara.train.balance import language_shares, sampling_probabilities, window_languages
from edgepara.train.data import Utterance
from edgepara.train.supervision import TASKS, window_labels


def test_temperature_sampling_lifts_small_languages_without_flattening_them():
    languages = np.array(["English"] * 900 + ["Amharic"] * 90 + ["Swahili"] * 10)
    p = sampling_probabilities(languages, 0.5)
    assert p.sum() == pytest.approx(1.0)
    shares = language_shares(languages, p)
    # windows 90 % / 9 % / 1 %; drawn in proportion to sqrt(count): 30 / 9.5 / 3.2
    assert shares["English"]["windows"] == 0.9
    assert shares["English"]["drawn"] == pytest.approx(30 / (30 + 90**0.5 + 10**0.5), abs=1e-3)
    assert shares["Swahili"]["drawn"] > 0.07
    # every window of a language equally likely; temperature 1 draws them as they come
    assert len(np.unique(p[languages == "Amharic"])) == 1
    np.testing.assert_allclose(sampling_probabilities(languages, 1.0), 1 / len(languages))


def test_windows_get_their_language_from_the_set_or_the_multilingual_manifest(tmp_path):
    (tmp_path / "multilingual_speech").mkdir()
    (tmp_path / "multilingual_speech" / "manifest.csv").write_text(
        "path,label,speaker,duration_s,split,language\nswahili/a.opus,,s1,3.0,train,swh Swahili\n")
    clip = f"{tmp_path / 'multilingual_speech' / 'swahili' / 'a.opus'}@0"
    languages = window_languages(np.array(["ravdess", "ased_amharic", "multilingual_speech", "user"]),
                                 np.array(["x@0", "y@0", clip, "z@0"]), tmp_path)
    assert languages.tolist() == ["English", "Amharic", "Swahili", "user"]


def test_each_corpus_labels_the_tasks_it_has_a_counterpart_in():
    rows = [Utterance("ravdess", Path("r/calm.flac"), "calm", "A01", "train"),
            Utterance("ravdess", Path("r/disgust.flac"), "disgust", "A01", "train"),
            Utterance("ased_amharic", Path("a/sad.opus"), "sad", "ased01", "train"),
            Utterance("ased_amharic", Path("a/fear.opus"), "fearful", "ased01", "train"),
            Utterance("baved_arabic", Path("b/low.opus"), "low", "baved1", "train"),
            Utterance("emospeech_in", Path("e/calm.opus"), "calm", "U1", "train"),
            Utterance("speechocean762", Path("s/a.opus"), "", "S1", "train")]
    clips = np.array([f"{u.path}@0" for u in rows] + ["a/sad.opus@30"])  # a second 30 s piece of one recording
    labels = window_labels(clips, rows)
    name = {task: [TASKS[task][i] if i >= 0 else None for i in labels[task]] for task in TASKS}
    # RAVDESS's acted calm is neutral among the shared classes but low arousal; emospeech_in's everyday calm is
    # neutral on both; disgust has no shared class and no arousal; fearful is only an arousal label
    assert name["emotion"] == ["neutral", None, "sad", None, None, "neutral", None, "sad"]
    assert name["emotion8"] == ["calm", "disgust", None, None, None, None, None, None]
    assert name["arousal"] == ["low", None, "low", "high", "low", "neutral", None, "low"]


def test_simulated_rooms_are_reproducible_and_reverberant():
    pytest.importorskip("pyroomacoustics")
    from edgepara.train.rooms import simulated_rooms

    rooms = simulated_rooms(6, seed=3)
    again = simulated_rooms(6, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(rooms, again))
    assert not np.array_equal(rooms[0], simulated_rooms(1, seed=4)[0])
    for h in rooms:
        energy = np.cumsum(h[int(np.argmax(np.abs(h))):] ** 2)
        assert energy[-1] > 0 and np.argmax(energy > 0.99 * energy[-1]) > 0.02 * 16000  # a tail, not a click


def test_babble_is_made_of_other_speakers_only():
    from edgepara.train.augment import Corruptor

    windows = np.zeros((8, 16000), np.int16)
    windows[:4] = 1000  # speaker "a": a constant; the others' windows are tones
    t = np.arange(16000) / 16000
    for i in range(4, 8):
        windows[i] = (8000 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype(np.int16)
    speakers = np.array(["a"] * 4 + ["b", "c", "d", "e"])
    corrupt = Corruptor([], [], p_room=0.0, p_noise=1.0, p_codec=0.0, gain_db=(0.0, 0.0),
                        babble=(windows, speakers), snr_db=(0.0, 0.0))
    speech = (3000 * np.sin(2 * np.pi * 150 * t)).astype(np.int16)
    for seed in range(5):
        out = corrupt(speech, np.random.default_rng(seed), "a").astype(np.float32) - speech
        spectrum = np.abs(np.fft.rfft(out))
        assert spectrum[0] < 1e-3 * spectrum.max()  # no trace of speaker a's constant
        assert np.sum(spectrum[[700, 800, 900, 1000, 1100]] > 0.05 * spectrum.max()) >= 3  # 3-6 other talkers
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(speech.astype(np.float32) ** 2)), rel=0.05)
