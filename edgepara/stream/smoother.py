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

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredWindow:
    """One window after the embedder and the heads: head name -> class -> probability."""

    window: Window
    probs: dict[str, dict[str, float]]
    latency_ms: float = 0.0


@dataclass
class _HeadState:
    ema: np.ndarray | None = None
    total: np.ndarray | None = None
    windows: int = 0
    classes: list[str] = field(default_factory=list)


class Smoother:
    """Per utterance and head. The final prediction is the mean of the utterance's window probabilities,
    not the EMA (which favours the last windows): every window counts once, and it needs nothing but what
    the heads returned, so any head object works. (Offline evaluation applies probes to the mean embedding
    instead; the two agree when the windows agree, and can differ on utterances that change midway.)
    A head with `label_for(probs) -> (label, confidence)` (e.g. speaker identification, which answers
    "unknown") picks its own label; otherwise the top class, or "uncertain" below `uncertain_below`.

    A head may change its classes between windows (a speaker enrolled while listening, a user head that
    learns a class): that head's smoothing restarts at the window with the new classes, so its live and final
    predictions cover the windows since the change; other heads are not affected."""

    def __init__(self, heads=(), smoothing: float = 0.5, uncertain_below: float = 0.4):
        if not 0.0 <= smoothing < 1.0:
            raise EdgeparaError(f"expected smoothing in [0, 1) (weight of the previous EMA), got {smoothing!r}")
        if not 0.0 <= uncertain_below <= 1.0:
            raise EdgeparaError(f"expected uncertain_below in [0, 1], got {uncertain_below!r}")
        self.heads = {head.name: head for head in heads}
        self.smoothing = float(smoothing)
        self.uncertain_below = float(uncertain_below)
        self.reset()

    def reset(self) -> None:
        self._utterance: int | None = None
        self._state: dict[str, _HeadState] = {}

    def process(self, item) -> list[Prediction]:
        if isinstance(item, SpeechStart):
            self._utterance, self._state = item.utterance, {}
            return []
        if isinstance(item, ScoredWindow):
            return self._live(item)
        if isinstance(item, SpeechEnd):
            out = self._final(item)
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
        return (top if confidence >= self.uncertain_below else UNCERTAIN), confidence

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
            out.append(self._prediction(head_name, state.classes, state.ema, scored.window.t_end,
                                        scored.window.utterance, final=False, latency_ms=scored.latency_ms))
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

    def _final(self, end: SpeechEnd) -> list[Prediction]:
        return [self._prediction(name, s.classes, s.total / s.windows, end.t, end.utterance, final=True)
                for name, s in self._state.items() if s.windows]

    def _prediction(self, head_name, classes, p, t, utterance, final, latency_ms=0.0) -> Prediction:
        probs = {c: float(v) for c, v in zip(classes, p)}
        label, confidence = self.label(head_name, probs)
        return Prediction(t=t, utterance=utterance, head=head_name, label=label, confidence=confidence,
                          probs=probs, final=final, latency_ms=latency_ms)
