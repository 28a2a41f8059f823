"""The shared-class emotion and arousal heads: how they are fitted, adapted per speaker, given an honest
"uncertain", and measured (leave-one-corpus-out, through the live pipeline).

Recipe (the shipped heads and every figure below use it):
- utterance embeddings (mean of the VAD speech windows), each speaker's standardised by that speaker's own
  mean and spread over all of their speech, whatever the emotion (at run time: edgepara.adaptation);
- logistic regression with every (corpus, class) weighted equally, so no corpus's size or class balance
  decides the prior; C chosen on the validation speakers of the training corpora;
- the population prior for a cold start: the training embeddings' mean and the typical within-speaker spread;
- "uncertain" below the smallest top-class probability at which, leave-one-corpus-out on validation speakers
  through the live pipeline, the labels shown as certain are right at CERTAIN_RATE.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..adaptation import NORMALISED_INPUT
from ..errors import EdgeparaError
from .emotion_corpora import (AROUSAL_CLASSES, AROUSAL_MAPS, EMOTION_CLASSES, EMOTION_MAPS, SET_NAMES,
                              labelled_rows, speaker_ids)
from .probes import Probe, fit_with_c, scores

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
PRIOR_UTTERANCES = 1.0  # the population prior's weight on a voice's mean, in utterances (chosen on streams)
PRIOR_UTTERANCES_SPREAD = 3.0  # ... and on its spread
CERTAIN_RATE = 0.70  # labels shown as certain should be right at least this often
TASKS = {"emotion": (EMOTION_MAPS, EMOTION_CLASSES), "arousal": (AROUSAL_MAPS, AROUSAL_CLASSES)}


@dataclass
class Labelled:
    """One corpus's rows for one task: utterance embeddings, shared labels, speakers, splits, the rows."""

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    split: np.ndarray
    rows: list

    def __len__(self) -> int:
        return len(self.y)

    def take(self, keep: np.ndarray) -> "Labelled":
        return Labelled(self.X[keep], self.y[keep], self.speakers[keep], self.split[keep],
                        [r for r, k in zip(self.rows, keep) if k])


def task_data(task: str, corpus: str, X: np.ndarray, root: Path) -> Labelled:
    """The rows of `corpus` (features X in labelled_rows order) whose label the task's map knows."""
    mapping = TASKS[task][0].get(corpus, {})
    rows = labelled_rows(corpus, root)
    keep = np.array([u.label in mapping for u in rows])
    if mapping and not keep.any():  # e.g. labels spelt otherwise: the task would silently go without the corpus
        raise EdgeparaError(f"expected {task} labels ({', '.join(sorted(mapping))}) in the label column of "
                            f"{root / corpus / 'manifest.csv'}, got only {', '.join(sorted({u.label for u in rows}))}")
    data = Labelled(X, np.array([mapping.get(u.label, "") for u in rows]), speaker_ids(rows),
                    np.array([u.split for u in rows]), rows)
    return data.take(keep)


def speaker_normalised(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each speaker's embeddings standardised by that speaker's own mean and spread."""
    Z = np.empty_like(X, dtype=np.float64)
    for s in np.unique(speakers):
        i = speakers == s
        Z[i] = (X[i] - X[i].mean(axis=0)) / (X[i].std(axis=0) + 1e-6)
    return Z.astype(np.float32)


def balanced_weights(y: np.ndarray, corpora: np.ndarray) -> np.ndarray:
    """Sample weights that give every (corpus, class) the same total weight; mean 1."""
    w = np.ones(len(y))
    for key in set(zip(corpora, y)):
        i = (corpora == key[0]) & (y == key[1])
        w[i] = 1.0 / i.sum()
    return w * len(w) / w.sum()


def _stack(parts: dict[str, Labelled], normalise: bool):
    X = np.concatenate([speaker_normalised(p.X, p.speakers) if normalise else p.X for p in parts.values()])
    y = np.concatenate([p.y for p in parts.values()])
    corpora = np.concatenate([[c] * len(p) for c, p in parts.items()])
    return X, y, corpora


def _manifests(parts: dict) -> str:
    return ", ".join(f"{c}/manifest.csv" for c in parts)


def _require_classes(y: np.ndarray, classes, parts: dict) -> None:
    """A class that no row to fit on carries cannot be fitted: one line naming the manifests, not a probe error."""
    missing = [c for c in classes if c not in set(y)]
    if missing:
        raise EdgeparaError(f"expected training rows labelled {', '.join(missing)} (or a label mapped to it) in "
                            f"{_manifests(parts)}, got none")


def fit_recipe(parts: dict[str, Labelled], classes, normalise: bool = True, C: float | None = None) -> Probe:
    """The recipe's probe on `parts` (all their rows). C, when not given, is chosen by UAR on the parts'
    validation speakers with a fit on their training speakers."""
    if C is None:
        train = {c: p.take(p.split == "train") for c, p in parts.items()}
        val = {c: p.take(p.split == "val") for c, p in parts.items() if np.any(p.split == "val")}
        if not val:
            raise EdgeparaError(f"expected validation speakers (split 'val') in at least one of {_manifests(parts)} "
                                f"to choose C on, got none")
        Xt, yt, ct = _stack(train, normalise)
        _require_classes(yt, classes, parts)
        Xv, yv, _ = _stack(val, normalise)
        C = max(C_GRID, key=lambda c: scores(yv, fit_with_c(Xt, yt, c, list(classes),
                                                            sample_weight=balanced_weights(yt, ct)).predict(Xv))["uar"])
    X, y, corpora = _stack(parts, normalise)
    _require_classes(y, classes, parts)
    probe = fit_with_c(X, y, C, list(classes), sample_weight=balanced_weights(y, corpora))
    if normalise:  # the cold-start prior: population mean, typical within-speaker spread
        raw = np.concatenate([p.X for p in parts.values()])
        speakers = np.concatenate([p.speakers for p in parts.values()])
        probe.prior_mean = raw.mean(axis=0)
        probe.prior_std = np.sqrt(np.mean([raw[speakers == s].var(axis=0) for s in np.unique(speakers)], axis=0)) + 1e-6
    return probe


def head_from_probe(name: str, probe: Probe, card: dict | None = None):
    """A runtime ProbeHead of a fitted probe (what `write-heads` saves, and what the live measurements run)."""
    from ..heads import ProbeHead

    arrays = probe.arrays()
    card = dict(card or {}, name=name, classes=probe.classes)
    if getattr(probe, "prior_mean", None) is not None:
        arrays.update(prior_mean=probe.prior_mean, prior_std=probe.prior_std)
        card.update(input=NORMALISED_INPUT, adaptation={"prior_utterances": PRIOR_UTTERANCES,
                                                        "prior_utterances_spread": PRIOR_UTTERANCES_SPREAD})
    return ProbeHead(name, probe.classes, card=card, **arrays), arrays, card


def live_finals(embedder, head, data: Labelled, modes=("speaker",), seed: int = 0,
                items: list | None = None) -> dict[str, tuple[list, int]]:
    """Each row's final prediction from `head` through the live pipeline (VAD, windows, int8 student,
    adaptation, smoother), for each adaptation mode in `modes`: one stream per speaker, the speaker's
    utterances in a seeded random order, each utterance followed by the end of speech; each clip is decoded
    once and fed to one pipeline per mode (`items`, one per row: as those bench Items hear it, e.g. through a
    room). A row whose audio gives several utterances gets their mean probabilities; one with no speech gets
    None. Returns mode -> (finals, how often a stream's voice restarted)."""
    from ..audio import read_audio
    from ..stream.pipeline import Pipeline
    from ..types import Prediction

    pipelines = {mode: Pipeline(heads=[head], embedder=embedder, adaptation=mode, uncertain_below=0.0)
                 for mode in modes}
    rng = np.random.default_rng(seed)
    out = {mode: [None] * len(data) for mode in modes}
    restarts = dict.fromkeys(modes, 0)
    for speaker in np.unique(data.speakers):
        for pipeline in pipelines.values():
            pipeline.reset()
        for i in rng.permutation(np.flatnonzero(data.speakers == speaker)):
            audio = read_audio(data.rows[i].path) if items is None else items[i].audio()
            for mode, pipeline in pipelines.items():
                events = pipeline.process(audio) + pipeline.flush()
                finals = [e.probs for e in events if isinstance(e, Prediction) and e.final and e.head == head.name]
                if finals:
                    out[mode][i] = {c: float(np.mean([f[c] for f in finals])) for c in head.classes}
        for mode, pipeline in pipelines.items():
            restarts[mode] += pipeline.adaptation.restarts
    return {mode: (out[mode], restarts[mode]) for mode in modes}


def live_scores(finals: list, y: np.ndarray, threshold: float | None = None) -> dict:
    """UAR and accuracy of the final labels (no speech counts as wrong), and with a threshold the coverage
    and accuracy of the labels shown as certain."""
    predicted = np.array(["" if f is None else max(f, key=f.get) for f in finals])
    out = {k: round(v, 4) for k, v in scores(y, predicted).items()}
    if threshold is not None:
        confident = np.array([f is not None and max(f.values()) >= threshold for f in finals])
        out["certain_coverage"] = round(float(confident.mean()), 4)
        out["certain_accuracy"] = round(float(np.mean(predicted[confident] == y[confident])), 4) \
            if confident.any() else None
    return out


def choose_threshold(finals: list, y: np.ndarray, rate: float = CERTAIN_RATE) -> float:
    """The smallest top-class probability at which the labels at or above it are right at `rate` (the
    highest candidate when none reaches it)."""
    top = np.array([max(f.values()) if f else 0.0 for f in finals])
    right = np.array([f is not None and max(f, key=f.get) == label for f, label in zip(finals, y)])
    candidates = np.round(np.arange(0.30, 0.96, 0.01), 2)
    for t in candidates:
        shown = top >= t
        if shown.sum() >= 20 and right[shown].mean() >= rate:
            return float(t)
    return float(candidates[-1])


def corpus_features(system: tuple, root: Path, cache: Path, log=print) -> dict[str, np.ndarray]:
    """One system's utterance embeddings of every labelled corpus (cached beside `bench quality`'s)."""
    from .bench_sets import Item
    from .bench_systems import features

    rows = {corpus: labelled_rows(corpus, root) for corpus in SET_NAMES}  # every manifest read before any embedding
    return {corpus: features(system, [Item(u) for u in rows[corpus]], cache, set_name, log=log)
            for corpus, set_name in SET_NAMES.items()}
