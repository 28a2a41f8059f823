"""The labelled emotion corpora and how their labels map onto the shared classes and onto arousal.

Every corpus keeps its own labels in its manifest; a label takes part in a task only where it has a
counterpart there (a label with none, e.g. RAVDESS's disgust for arousal, is left out, never forced).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeparaError
from .data import Utterance, load_manifest

# The classes every categorical corpus carries (emospeech_in has no "sad"; it joins on the other three).
EMOTION_CLASSES = ("neutral", "happy", "sad", "angry")
EMOTION_MAPS = {
    "ravdess": {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"},
    "emodb": {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry"},
    "ased_amharic": {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"},
    "emospeech_in": {"calm": "neutral", "happy": "happy", "angry": "angry"},
}

AROUSAL_CLASSES = ("low", "neutral", "high")
# Categories by their place on the arousal axis (Russell's circumplex): sad, bored and RAVDESS's acted "calm"
# (instructed to be subdued) are low; angry, happy, fearful, surprised high. Disgust sits between and is left
# out. emospeech_in's "calm" is users' self-reported everyday voice on their phones: neutral, not low.
AROUSAL_MAPS = {
    "ravdess": {"neutral": "neutral", "calm": "low", "sad": "low", "happy": "high", "angry": "high",
                "fearful": "high", "surprised": "high"},
    "emodb": {"neutral": "neutral", "boredom": "low", "sadness": "low", "happiness": "high", "anger": "high",
              "fear": "high"},
    "ased_amharic": {"neutral": "neutral", "sad": "low", "happy": "high", "angry": "high", "fearful": "high"},
    "emospeech_in": {"calm": "neutral", "happy": "high", "angry": "high", "fearful": "high"},
    "baved_arabic": {"low": "low", "neutral": "neutral", "high": "high"},  # its three expressed levels
}

# Corpora whose scores are reported leave-one-corpus-out (emospeech_in only trains: its labels are
# self-reported and it has no "sad").
HELD_OUT_CORPORA = ("ravdess", "emodb", "ased_amharic")
# The cache name of each corpus's labelled rows (RAVDESS and EmoDB whole: the very sets `bench quality` embeds).
SET_NAMES = {"ravdess": "ravdess", "emodb": "emodb", "ased_amharic": "ased_amharic",
             "emospeech_in": "emospeech_in_labelled", "baved_arabic": "baved_arabic"}


def labelled_rows(corpus: str, root: Path) -> list[Utterance]:
    """The labelled rows of a corpus, all of them (the order features are cached in; RAVDESS and EmoDB are
    the very sets `bench quality` embeds). Each task then keeps the rows its map knows."""
    rows = [u for u in load_manifest(corpus, root) if u.label]
    if not rows:
        raise EdgeparaError(f"expected labelled rows in {root / corpus / 'manifest.csv'}, got none")
    if corpus == "emospeech_in":  # no test split: its val users are its held-out speakers
        rows = [Utterance(u.dataset, u.path, u.label, u.speaker, "test" if u.split == "val" else u.split,
                          u.duration_s) for u in rows]
    return rows


def ased_sentence(u: Utterance) -> str:
    """ASED's sentence number (01-07; 01-02 are spoken in every emotion) from its file name n1-SS-..."""
    return Path(u.path).name.split("-")[1]


def speaker_ids(rows: list[Utterance]) -> np.ndarray:
    return np.array([f"{u.dataset}:{u.speaker}" for u in rows])
