"""What the labelled corpora teach the students beside their teachers: one label per training window for
each classification task, and soft targets for the windows without one.

Tasks (the heads' classes, `emotion_corpora.py`): `emotion` = the four shared classes (neutral, happy, sad,
angry) on every categorical corpus in the training audio; `emotion8` = RAVDESS's own eight; `arousal` = low /
neutral / high (BAVED's levels and the categories' place on the arousal axis). `whisper_emotion` gives every
window without a shared-class label the posteriors of a probe on the Whisper targets, fitted on the labelled
windows. Audio from `distill --data` is read with RAVDESS's label names (neutral, calm, happy, ...).
"""
from __future__ import annotations

import numpy as np

from .data import Utterance
from .emotion_corpora import AROUSAL_CLASSES, AROUSAL_MAPS, EMOTION_CLASSES, EMOTION_MAPS

EMOTIONS8 = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
TASKS = {"emotion": EMOTION_CLASSES, "emotion8": EMOTIONS8, "arousal": AROUSAL_CLASSES}


def _label_maps(dataset: str) -> dict[str, dict[str, str]]:
    """For each task, this dataset's label -> class (empty: the dataset takes no part in the task)."""
    like = "ravdess" if dataset == "user" else dataset
    return {"emotion": EMOTION_MAPS.get(like, {}),
            "emotion8": {e: e for e in EMOTIONS8} if like == "ravdess" else {},
            "arousal": AROUSAL_MAPS.get(like, {})}


def window_labels(clips: np.ndarray, utterances: list[Utterance]) -> dict[str, np.ndarray]:
    """Per task, the class index of each window (-1: no label for that task). `clips` holds each window's
    clip name (path@start), so masked copies keep their recording's label."""
    by_path = {str(u.path): u for u in utterances if u.label}
    out = {task: np.full(len(clips), -1, np.int32) for task in TASKS}
    for i, clip in enumerate(clips):
        u = by_path.get(str(clip).rsplit("@", 1)[0])
        if u is None:
            continue
        for task, mapping in _label_maps(u.dataset).items():
            if u.label in mapping:
                out[task][i] = TASKS[task].index(mapping[u.label])
    return out


def speaker_centred(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """X with each speaker's mean removed."""
    X = X.copy()
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        X[rows] -= X[rows].mean(axis=0)
    return X


def probe_posteriors(X: np.ndarray, speakers: np.ndarray, labels: np.ndarray, n_classes: int,
                     C: float = 0.01) -> np.ndarray:
    """Soft targets for the windows without a label: a logistic regression on features X of the labelled
    windows, applied to every other window. Each speaker's mean is removed first: uncentred, the probe reads
    the corpus, not the emotion (FSDD's windows mostly "angry" or "happy", the read corpora's "sad" or "calm");
    centred, every corpus gets a similar spread, and a probe fitted on RAVDESS actors 1-12 scores 0.82 instead
    of 0.68 on actors 13-16's windows (scripts/check-whisper-emotion-probe.py). Zeros (no loss) on labelled
    windows, and everywhere when fewer than two classes are labelled."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(labels), n_classes), np.float32)
    labelled = labels >= 0
    if len(np.unique(labels[labelled])) < 2 or labelled.all():
        return out
    Z = speaker_centred(X, speakers)
    probe = LogisticRegression(C=C, max_iter=500).fit(Z[labelled], labels[labelled])
    out[np.ix_(~labelled, probe.classes_)] = probe.predict_proba(Z[~labelled])
    return out
