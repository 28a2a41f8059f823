"""Probes on frozen embeddings, under the speaker-independent protocol (docs/benchmarks.md, "Models and measured quality"):
standardise -> logistic regression, C chosen on validation speakers only; accuracy and UAR."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..speaker import equal_error_rate

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class Probe:
    mean: np.ndarray
    std: np.ndarray
    W: np.ndarray  # (dim, classes)
    b: np.ndarray
    classes: list[str]
    C: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        logits = ((X - self.mean) / self.std) @ self.W + self.b
        return np.asarray(self.classes)[np.argmax(logits, axis=1)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std, "W": self.W, "b": self.b}


def scores(y_true, y_pred) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return {"accuracy": float(np.mean(y_true == y_pred)), "uar": float(np.mean(recalls))}


def fit_with_c(X, y, C, classes, seed=0, sample_weight=None) -> Probe:
    from sklearn.linear_model import LogisticRegression

    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000, random_state=seed)
    clf.fit((X - mean) / std, y, sample_weight=sample_weight)
    order = [list(clf.classes_).index(c) for c in classes]
    W, b = clf.coef_, clf.intercept_
    if W.shape[0] == 1:  # binary: sklearn keeps one row; expand to two-class softmax form
        W, b = np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    return Probe(mean.astype(np.float32), std.astype(np.float32), W[order].T.astype(np.float32),
                 b[order].astype(np.float32), list(classes), C)


def fit_probe(X_train, y_train, X_val, y_val, grid=C_GRID) -> Probe:
    """C chosen by validation UAR, then refit on train + validation."""
    classes = sorted(set(y_train) | set(y_val))
    best = max(grid, key=lambda C: scores(y_val, fit_with_c(X_train, y_train, C, classes).predict(X_val))["uar"])
    return fit_with_c(np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val]), best, classes)


def split_protocol(X, y, split) -> dict[str, float]:
    split = np.asarray(split)
    tr, va, te = split == "train", split == "val", split == "test"
    probe = fit_probe(X[tr], y[tr], X[va], y[va])
    return dict(scores(y[te], probe.predict(X[te])), C=probe.C)


def leave_one_speaker_out(X, y, speakers) -> dict[str, float]:
    """Each speaker tested once; C chosen on the next speaker in order (never the test speaker)."""
    speakers = np.asarray(speakers)
    order = sorted(set(speakers))
    y_pred = np.empty(len(y), dtype=object)
    for i, test_speaker in enumerate(order):
        val_speaker = order[(i + 1) % len(order)]
        te, va = speakers == test_speaker, speakers == val_speaker
        tr = ~te & ~va
        y_pred[te] = fit_probe(X[tr], y[tr], X[va], y[va]).predict(X[te])
    return scores(y, y_pred.astype(str))


def verification_trials(X, speakers, n_enroll=3, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of each speaker's centroid (n_enroll random utterances) against every other utterance
    of all the given speakers, and whether each trial is the same speaker."""
    rng = np.random.default_rng(seed)
    speakers = np.asarray(speakers)
    unit = X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-9)
    enrolled, trial_mask = {}, np.ones(len(X), bool)
    for s in sorted(set(speakers)):
        idx = rng.choice(np.flatnonzero(speakers == s), n_enroll, replace=False)
        c = unit[idx].mean(axis=0)
        enrolled[s] = c / np.linalg.norm(c)
        trial_mask[idx] = False
    scores_ = np.concatenate([unit[trial_mask] @ c for c in enrolled.values()])
    same = np.concatenate([speakers[trial_mask] == s for s in enrolled])
    return scores_, same


def verification_eer(X, speakers, n_enroll=3, seed=0) -> tuple[float, float]:
    """(EER, cosine threshold at the EER point) over verification_trials."""
    return equal_error_rate(*verification_trials(X, speakers, n_enroll, seed))


def identification_accuracy(X, speakers, enroll, query=None) -> float:
    """Closed-set speaker identification: each speaker's centroid from the `enroll` rows (unit vectors
    averaged), every `query` row (default: every row not enrolled) assigned to the nearest centroid by cosine."""
    speakers, enroll = np.asarray(speakers), np.asarray(enroll, bool)
    query = ~enroll if query is None else np.asarray(query, bool) & ~enroll
    unit = X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-9)
    names = sorted(set(speakers[enroll]))
    centroids = np.stack([unit[enroll & (speakers == s)].mean(axis=0) for s in names])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-9
    guess = np.asarray(names)[np.argmax(unit[query] @ centroids.T, axis=1)]
    return float(np.mean(guess == speakers[query]))


def first_n_per_speaker(speakers, n: int = 3, eligible=None) -> np.ndarray:
    """Enrollment rows: the first n eligible rows of each speaker (in the given order)."""
    speakers = np.asarray(speakers)
    eligible = np.ones(len(speakers), bool) if eligible is None else np.asarray(eligible, bool)
    enroll = np.zeros(len(speakers), bool)
    for s in set(speakers):
        enroll[np.flatnonzero((speakers == s) & eligible)[:n]] = True
    return enroll


def zero_shot_uar(X_train, y_train, X_val, y_val, X_test, y_test) -> float:
    """Probe fitted on one corpus (C on its validation speakers), UAR on another, no statistics of it used."""
    probe = fit_probe(X_train, y_train, X_val, y_val)
    return scores(y_test, probe.predict(X_test))["uar"]
