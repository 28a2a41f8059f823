"""Voice-activity gate: 16 kHz int16 chunks in, speech start/end events and speech audio out.

Follows py-webrtcvad's example collector: while idle, a ring of the last `start_padding_ms` of frames
triggers an utterance when more than `start_ratio` of them are voiced, and the ring becomes the
utterance's pre-roll (webrtcvad flags onsets late). While in speech, unvoiced frames are held back; if
speech resumes they are released, and after `end_hangover_ms` of them the utterance ends at the last
voiced frame, so utterances carry no trailing silence. Utterances shorter than `min_speech_ms` are
dropped without any event.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import AudioError, EdgeparaError
from ..types import SAMPLE_RATE, SpeechEnd, SpeechStart


@dataclass(frozen=True)
class SpeechAudio:
    """A contiguous piece of one utterance's audio (int16, 16 kHz); t_start in stream seconds."""

    utterance: int
    t_start: float
    samples: np.ndarray


def check_chunk(chunk, what: str = "chunk") -> np.ndarray:
    """Past the source boundary audio is 1-D int16 at 16 kHz; anything else is a caller's mistake."""
    x = np.asarray(chunk)
    if x.dtype != np.int16 or x.ndim != 1:
        raise AudioError(
            f"expected a 1-D int16 {what} at 16000 Hz (convert at the source, e.g. audio.to_mono_int16), "
            f"got {x.dtype} with shape {x.shape}")
    return x


class VadGate:
    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30, start_padding_ms: int = 300,
                 start_ratio: float = 0.75, end_hangover_ms: int = 300, min_speech_ms: int = 200,
                 sample_rate: int = SAMPLE_RATE):
        if sample_rate != SAMPLE_RATE:
            raise AudioError(f"expected {SAMPLE_RATE} Hz audio past the source boundary (resample at the "
                             f"source), got {sample_rate} Hz")
        if isinstance(aggressiveness, bool) or aggressiveness not in (0, 1, 2, 3):
            raise EdgeparaError(f"expected VAD aggressiveness 0, 1, 2 or 3, got {aggressiveness!r}")
        if frame_ms not in (10, 20, 30):
            raise EdgeparaError(f"expected a VAD frame of 10, 20 or 30 ms (webrtcvad), got {frame_ms!r}")
        if not 0.0 < start_ratio <= 1.0:
            raise EdgeparaError(f"expected a VAD start ratio in (0, 1], got {start_ratio!r}")
        for name, value in (("start_padding_ms", start_padding_ms), ("end_hangover_ms", end_hangover_ms),
                            ("min_speech_ms", min_speech_ms)):
            if value < 0:
                raise EdgeparaError(f"expected {name} >= 0, got {value!r}")
        self.aggressiveness = int(aggressiveness)
        self.frame_ms = int(frame_ms)
        self.frame = SAMPLE_RATE * self.frame_ms // 1000
        self.start_frames = max(1, -(-int(start_padding_ms) // self.frame_ms))
        self.start_ratio = float(start_ratio)
        self.hangover_frames = max(1, -(-int(end_hangover_ms) // self.frame_ms))
        self.min_speech_frames = -(-int(min_speech_ms) // self.frame_ms)
        self.reset()

    def reset(self) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(self.aggressiveness)  # new object: webrtcvad adapts to noise, keep runs repeatable
        self._partial = np.zeros(0, np.int16)
        self._frames_seen = 0
        self._ring: deque[tuple[np.ndarray, bool]] = deque(maxlen=self.start_frames)
        self._in_speech = False
        self._confirmed = False
        self._utt_start = 0  # frame index
        self._utt_frames = 0  # frames kept in the utterance so far (up to its last voiced frame)
        self._unconfirmed: list[np.ndarray] = []
        self._held: list[np.ndarray] = []  # unvoiced frames after the last voiced one
        self._next_utterance = 0
        self._out: list = []

    @property
    def active(self) -> bool:
        """True while inside a confirmed utterance."""
        return self._in_speech and self._confirmed

    @property
    def utterance(self) -> int | None:
        return self._next_utterance - 1 if self.active else None

    @property
    def samples_seen(self) -> int:
        return self._frames_seen * self.frame + len(self._partial)

    def process(self, chunk) -> list:
        x = check_chunk(chunk)
        if len(self._partial):
            x = np.concatenate([self._partial, x])
        n_frames = len(x) // self.frame
        for i in range(n_frames):
            self._frame(x[i * self.frame : (i + 1) * self.frame])
        self._partial = x[n_frames * self.frame :].copy()
        return self._drain()

    def flush(self) -> list:
        """End of stream: closes an open utterance; a trailing partial frame is too short to judge and is dropped."""
        if self._in_speech:
            self._end_utterance()
        self._partial = np.zeros(0, np.int16)
        self._ring.clear()
        return self._drain()

    def _frame(self, frame: np.ndarray) -> None:
        voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)
        index = self._frames_seen
        self._frames_seen += 1
        if not self._in_speech:
            self._ring.append((frame, voiced))
            if sum(v for _, v in self._ring) > self.start_ratio * self._ring.maxlen:
                self._in_speech, self._confirmed = True, False
                self._utt_start = index - len(self._ring) + 1
                self._unconfirmed = [f for f, _ in self._ring]
                self._utt_frames = len(self._ring)
                self._held = []
                self._ring.clear()
                self._confirm_if_long_enough()
            return
        if not voiced:
            self._held.append(frame)
            if len(self._held) >= self.hangover_frames:
                self._end_utterance()
            return
        kept = self._held + [frame]
        self._held = []
        self._utt_frames += len(kept)
        if self._confirmed:
            self._emit_audio(kept)
        else:
            self._unconfirmed.extend(kept)
            self._confirm_if_long_enough()

    def _confirm_if_long_enough(self) -> None:
        if self._utt_frames < self.min_speech_frames:
            return
        self._confirmed = True
        self._out.append(SpeechStart(t=self._seconds(self._utt_start), utterance=self._next_utterance))
        self._next_utterance += 1
        self._emit_audio(self._unconfirmed)
        self._unconfirmed = []

    def _end_utterance(self) -> None:
        if self._confirmed:
            start, end = self._seconds(self._utt_start), self._seconds(self._utt_start + self._utt_frames)
            self._out.append(SpeechEnd(t=end, utterance=self._next_utterance - 1, duration=round(end - start, 6)))
        self._in_speech = self._confirmed = False
        self._unconfirmed, self._held = [], []

    def _emit_audio(self, frames: list[np.ndarray]) -> None:
        if not frames:
            return
        utterance = self._next_utterance - 1
        last = self._out[-1] if self._out else None
        if isinstance(last, SpeechAudio) and last.utterance == utterance:  # one piece per call, not per frame
            self._out[-1] = SpeechAudio(utterance, last.t_start, np.concatenate([last.samples, *frames]))
        else:
            first = self._utt_start + self._utt_frames - sum(len(f) for f in frames) // self.frame
            self._out.append(SpeechAudio(utterance, self._seconds(first), np.concatenate(frames)))

    def _seconds(self, frame_index: int) -> float:
        return frame_index * self.frame / SAMPLE_RATE

    def _drain(self) -> list:
        out, self._out = self._out, []
        return out
