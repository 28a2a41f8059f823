"""Turns per-window head probabilities into Prediction events: live ones (EMA, final=False) after every
window, and one final prediction per head when the utterance ends (final=True)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgeparaError, HeadError
from ..types import Prediction, SpeechEnd, SpeechStart, Window

UNCERTAIN = "uncertain"
DEFAULT_UNCERTAIN_BELOW = 0.4  # for heads that calibrated no threshold of their own

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredWindow:
    """One window after the embedder and the heads: head name -> class -> probability."""

    window: Window
    probs: dict[str, dict[str, float]]
    latency_ms: float = 0.0
    baseline: dict | None = None  # the voice adaptive heads read this window against (Pipeline._score)


@dataclass
class _HeadState:
    ema: np.ndarray | None = None
    total: np.ndarray | None = None
    windows: int = 0
    classes: list[str] = field(default_factory=list)
    baseline: dict | None = None


class Smoother:
    """Per utterance and head. The final prediction is the mean of the utterance's window probabilities,
    not the EMA (which favours the last windows): every window counts once, and it needs nothing but what
    the heads returned, so any head object works. (Offline evaluation applies probes to the mean embedding
    instead; the two agree when the windows agree, and can differ on utterances that change midway.)
    Adaptive heads are the exception: the pipeline gives their final probabilities from the utterance's
    mean embedding, the input they were trained on.
    A head with `label_for(probs) -> (label, confidence)` (e.g. speaker identification, which answers
    "unknown") picks its own label; otherwise the top class, or "uncertain" below `uncertain_below`: when
    that is None, below the head's own calibrated `uncertain_below` (its card), else DEFAULT_UNCERTAIN_BELOW.

    A head may change its classes between windows (a speaker enrolled while listening, a user head that
    learns a class): that head's smoothing restarts at the window with the new classes, so its live and final
    predictions cover the windows since the change; other heads are not affected."""

    def __init__(self, heads=(), smoothing: float = 0.5, uncertain_below: float | None = None):
        if not 0.0 <= smoothing < 1.0:
            raise EdgeparaError(f"expected smoothing in [0, 1) (weight of the previous EMA), got {smoothing!r}")
        if uncertain_below is not None and not 0.0 <= uncertain_below <= 1.0:
            raise EdgeparaError(f"expected uncertain_below in [0, 1], got {uncertain_below!r}")
        self.heads = {head.name: head for head in heads}
        self.smoothing = float(smoothing)
        self.uncertain_below = None if uncertain_below is None else float(uncertain_below)
        self.reset()

    def reset(self) -> None:
        self._utterance: int | None = None
        self._state: dict[str, _HeadState] = {}

    def process(self, item, final_probs: dict[str, dict[str, float]] | None = None) -> list[Prediction]:
        """final_probs (with a SpeechEnd): head -> the final probabilities of heads that score the utterance
        as a whole (adaptive heads read its mean embedding, as they were trained) instead of the windows' mean."""
        if isinstance(item, SpeechStart):
            self._utterance, self._state = item.utterance, {}
            return []
        if isinstance(item, ScoredWindow):
            return self._live(item)
        if isinstance(item, SpeechEnd):
            out = self._final(item, final_probs or {})
            self._utterance, self._state = None, {}
            return out
        return []

    def label(self, head_name: str, probs: dict[str, float]) -> tuple[str, float]:
        head = self.heads.get(head_name)
        if head is not None and hasattr(head, "label_for"):
            label, confidence = head.label_for(probs)
            return str(label), float(confidence)
        top = max(probs, key=probs.get)
        confidence = float(probs[top])
        return (top if confidence >= self.threshold(head_name) else UNCERTAIN), confidence

    def threshold(self, head_name: str) -> float:
        """The top-class probability below which a head's label is "uncertain"."""
        if self.uncertain_below is not None:
            return self.uncertain_below
        own = getattr(self.heads.get(head_name), "uncertain_below", None)
        return DEFAULT_UNCERTAIN_BELOW if own is None else float(own)

    def _live(self, scored: ScoredWindow) -> list[Prediction]:
        out = []
        for head_name, probs in scored.probs.items():
            state = self._state_for(head_name, probs)
            p = np.array([probs[c] for c in state.classes], dtype=np.float64)
            if state.ema is None:
                state.ema, state.total = p.copy(), p.copy()
            else:
                state.ema = self.smoothing * state.ema + (1.0 - self.smoothing) * p
                state.total += p
            state.windows += 1
            if getattr(self.heads.get(head_name), "adaptive", False):
                state.baseline = scored.baseline
            out.append(self._prediction(head_name, state.classes, state.ema, scored.window.t_end,
                                        scored.window.utterance, final=False, latency_ms=scored.latency_ms,
                                        baseline=state.baseline))
        return out

    def _state_for(self, head_name: str, probs) -> _HeadState:
        if not isinstance(probs, Mapping) or not probs:
            raise HeadError(f"head {head_name}: expected probabilities as a non-empty dict of class -> float, "
                            f"got {type(probs).__name__} {str(probs)[:60]}")
        state = self._state.get(head_name)
        if state is not None and set(probs) != set(state.classes):
            logger.info("edgepara: head %s changed its classes from %s to %s in utterance %s; its smoothing "
                        "restarts", head_name, state.classes, list(probs), self._utterance)
            state = None
        if state is None:
            state = self._state[head_name] = _HeadState(classes=list(probs))
        return state

    def _final(self, end: SpeechEnd, final_probs: dict) -> list[Prediction]:
        out = []
        for name, s in self._state.items():
            if not s.windows:
                continue
            p = s.total / s.windows
            if name in final_probs and set(final_probs[name]) == set(s.classes):
                p = np.array([final_probs[name][c] for c in s.classes])
            out.append(self._prediction(name, s.classes, p, end.t, end.utterance, final=True, baseline=s.baseline))
        return out

    def _prediction(self, head_name, classes, p, t, utterance, final, latency_ms=0.0, baseline=None) -> Prediction:
        probs = {c: float(v) for c, v in zip(classes, p)}
        label, confidence = self.label(head_name, probs)
        return Prediction(t=t, utterance=utterance, head=head_name, label=label, confidence=confidence,
                          probs=probs, final=final, latency_ms=latency_ms, baseline=baseline)
