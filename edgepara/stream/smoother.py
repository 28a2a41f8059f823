"""Turns per-window head probabilities into Prediction events: live ones (EMA, final=False) after every
window, and one final prediction per head when the utterance ends (final=True)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgeparaError
from ..types import Prediction, SpeechEnd, SpeechStart, Window

UNCERTAIN = "uncertain"


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
    "unknown") picks its own label; otherwise the top class, or "uncertain" below `uncertain_below`."""

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
            state = self._state.setdefault(head_name, _HeadState(classes=list(probs)))
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

    def _final(self, end: SpeechEnd) -> list[Prediction]:
        return [self._prediction(name, s.classes, s.total / s.windows, end.t, end.utterance, final=True)
                for name, s in self._state.items() if s.windows]

    def _prediction(self, head_name, classes, p, t, utterance, final, latency_ms=0.0) -> Prediction:
        probs = {c: float(v) for c, v in zip(classes, p)}
        label, confidence = self.label(head_name, probs)
        return Prediction(t=t, utterance=utterance, head=head_name, label=label, confidence=confidence,
                          probs=probs, final=final, latency_ms=latency_ms)
