"""Languages in the distillation audio, and how often each epoch draws them.

English (RAVDESS, FSDD, speechocean762, emospeech_in) is most of the training windows; students distilled on
it copied their teachers on English and little beyond (issue "Students 0.4.0"). Each epoch therefore draws its
windows with temperature sampling over languages, as multilingual speech models are trained: a language with
n windows is drawn with probability proportional to n ** TEMPERATURE (0.5), every window of one language
equally likely, with replacement, as many windows per epoch as there are training windows.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TEMPERATURE = 0.5
LANGUAGE_OF_SET = {"ravdess": "English", "fsdd": "English", "speechocean762": "English", "emospeech_in": "English",
                   "yoruba_ogunlao": "Yoruba", "suba_africanvoices": "Suba", "ased_amharic": "Amharic",
                   "baved_arabic": "Arabic"}
MULTILINGUAL = "multilingual_speech"  # one folder, a language per recording (its manifest's `language` column)


def multilingual_languages(root: Path) -> dict[str, str]:
    """Recording path -> language name for the multilingual set (empty when the root has none)."""
    manifest = root / MULTILINGUAL / "manifest.csv"
    if not manifest.exists():
        return {}
    with open(manifest, newline="") as f:
        return {str(root / MULTILINGUAL / r["path"]): r["language"].split(" ", 1)[-1] for r in csv.DictReader(f)}


def window_languages(sources: np.ndarray, clips: np.ndarray, root: Path) -> np.ndarray:
    """The language of each training window (a --data run's windows are all "user": one group)."""
    by_path = multilingual_languages(root)
    return np.array([by_path.get(str(clip).rsplit("@", 1)[0], "unknown") if source == MULTILINGUAL
                     else LANGUAGE_OF_SET.get(str(source), str(source)) for source, clip in zip(sources, clips)])


def sampling_probabilities(languages: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Per window, the probability of being drawn: languages in proportion to (their window count) ** temperature
    (1.0: as they come), split evenly among each language's windows."""
    names, index, counts = np.unique(languages, return_inverse=True, return_counts=True)
    language_share = counts.astype(np.float64) ** temperature
    language_share /= language_share.sum()
    return language_share[index] / counts[index]


def language_shares(languages: np.ndarray, probabilities: np.ndarray) -> dict[str, dict[str, float]]:
    """For the card: each language's share of the windows and of the draws."""
    return {str(name): {"windows": round(float(np.mean(languages == name)), 4),
                        "drawn": round(float(probabilities[languages == name].sum() / probabilities.sum()), 4)}
            for name in np.unique(languages)}
