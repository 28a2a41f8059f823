"""Events flowing out of the pipeline. Times are stream seconds from the first sample."""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import get_args

import numpy as np

# Past the source boundary (decoding, down-mixing, resampling) all audio is 16 kHz mono int16.
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SpeechStart:
    t: float
    utterance: int
    type: str = "speech_start"


@dataclass(frozen=True)
class SpeechEnd:
    t: float
    utterance: int
    duration: float
    type: str = "speech_end"


@dataclass(frozen=True)
class Window:
    """One model window of speech audio (int16, 16 kHz) inside an utterance."""

    t_start: float
    t_end: float
    utterance: int
    samples: np.ndarray
    final: bool = False  # the flush at speech end


@dataclass(frozen=True)
class EmbeddedWindow:
    window: Window
    embedding: np.ndarray
    latency_ms: float


@dataclass(frozen=True)
class Prediction:
    t: float
    utterance: int
    head: str
    label: str
    confidence: float
    probs: dict[str, float]
    final: bool
    latency_ms: float = 0.0
    # adaptive heads: the voice the embedding was read against ("stream" or an enrolled name) and how many of
    # its utterances the baseline holds (0: the population prior, a cold start); None for other heads
    baseline: dict | None = None
    type: str = "prediction"


@dataclass(frozen=True)
class Overflow:
    """Audio was dropped because the ring buffer was full."""

    t: float
    dropped_samples: int
    type: str = "overflow"


@dataclass(frozen=True)
class SpeakerChange:
    """The speaker head's final names someone other than the previous utterance's did: who spoke before and
    who speaks now, each an enrolled name or "unknown". It follows that utterance's final predictions. Two
    "unknown" utterances in a row are no change: the head cannot tell two strangers apart."""

    t: float
    utterance: int
    previous: str
    speaker: str
    type: str = "speaker_change"


Event = SpeechStart | SpeechEnd | Prediction | Overflow | SpeakerChange


def event_to_dict(event) -> dict:
    d = asdict(event)
    if d.get("baseline", 0) is None:  # only adaptive heads' predictions carry one
        del d["baseline"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


_EVENT_TYPES = {cls.type: cls for cls in get_args(Event)}


def event_from_dict(d: dict) -> Event | None:
    """The event a JSONL (or MQTT) line describes, as written by `event_to_dict`; None for a line of another
    type (e.g. a future event kind) or one missing a field its type needs (a line cut short), so a log can
    be replayed by code that knows only these."""
    cls = _EVENT_TYPES.get(d.get("type"))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    if not required <= d.keys():
        return None
    return cls(**{k: v for k, v in d.items() if k in names})
