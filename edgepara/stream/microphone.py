"""PortAudio input devices and MicrophoneSource: a live input stream as 16 kHz int16 mono chunks.

The audio callback only copies into a ring buffer and notes when audio arrived; resampling, down-mixing
and everything else run in the consumer's thread. A stall of the process (suspended, starved of CPU) is not
the end of the stream: audio the device never delivered is counted as dropped (the pipeline turns it into
an Overflow event) and the stream goes on. It ends when PortAudio reports an error or stops the stream,
or when no audio arrives for stall_timeout_s of time in which this process was running.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..types import SAMPLE_RATE
from ..errors import DeviceError
from ..resample import BoundaryConverter
from .ring import RingBuffer

@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool

    def __str__(self) -> str:
        mark = "  (default)" if self.is_default else ""
        return f"{self.index:3d}  {self.name}  [{self.hostapi}, {self.channels} ch, {self.default_rate:.0f} Hz]{mark}"


POLL_S = 0.25  # how often a waiting reader looks at the stream's state
POLL_SLACK_S = 0.1
_open_streams = 0  # PortAudio may only be re-initialised (to see new devices) while none is open


def _sounddevice():
    try:
        import sounddevice
    except OSError as err:  # the Python package is there but libportaudio is not
        raise DeviceError(f"expected the PortAudio library (Debian/Ubuntu/Raspberry Pi OS: sudo apt install "
                          f"libportaudio2; macOS: brew install portaudio), got: {err}") from None
    return sounddevice


def _rescan(sd) -> None:
    """sounddevice lists the devices PortAudio saw when it started; restart it to see ones added since
    (e.g. a PulseAudio server started after import)."""
    if _open_streams == 0 and hasattr(sd, "_terminate") and hasattr(sd, "_initialize"):
        sd._terminate()
        sd._initialize()


def list_input_devices(rescan: bool = False) -> list[InputDevice]:
    sd = _sounddevice()
    if rescan:
        _rescan(sd)
    hostapis = sd.query_hostapis()
    default_in = _default_input_index(sd)
    return [InputDevice(index=i, name=d["name"], hostapi=hostapis[d["hostapi"]]["name"],
                        channels=int(d["max_input_channels"]), default_rate=float(d["default_samplerate"]),
                        is_default=i == default_in)
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def _default_input_index(sd) -> int | None:
    try:
        index = sd.default.device[0]
        index = int(index) if index is not None else -1
        if index < 0:
            index = int(sd.query_hostapis(sd.default.hostapi)["default_input_device"])
    except Exception:  # no host API / no default: treated as "no default input"
        return None
    return index if index >= 0 else None


SERVER_PREFIX = "pulse:"  # --device pulse:NAME picks a PulseAudio/PipeWire source by its name


@dataclass(frozen=True)
class ServerSource:
    """A source of the PulseAudio (or PipeWire-pulse) sound server: what `pactl list sources` shows."""

    name: str
    description: str
    is_monitor: bool  # the sound going to an output, not a microphone

    def __str__(self) -> str:
        kind = "  (monitor of an output)" if self.is_monitor else ""
        return f"{SERVER_PREFIX}{self.name}  [{self.description}]{kind}"


def list_server_sources() -> list[ServerSource]:
    """The sound server's sources, by asking it with pactl; empty when there is no pactl or no server."""
    import json
    import shutil
    import subprocess

    if shutil.which("pactl") is None:
        return []
    try:
        r = subprocess.run(["pactl", "--format=json", "list", "sources"], capture_output=True, text=True,
                           timeout=5)
        sources = json.loads(r.stdout) if r.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    def is_monitor(source: dict) -> bool:  # pactl 16 names the monitored sink in "monitor_source"
        properties = source.get("properties") if isinstance(source.get("properties"), dict) else {}
        return properties.get("device.class") == "monitor" or source.get("monitor_source") not in (None, "", "n/a")

    return [ServerSource(str(s.get("name", "")), str(s.get("description", "")), is_monitor(s))
            for s in sources if isinstance(s, dict) and s.get("name")]


def _server_source(device: str) -> str:
    """`pulse:NAME` -> NAME, checked against the server's sources; the PortAudio device named "pulse" then
    records from it (libpulse reads PULSE_SOURCE when the stream connects)."""
    name = device[len(SERVER_PREFIX):]
    sources = list_server_sources()
    if name not in {s.name for s in sources}:
        listed = ", ".join(s.name for s in sources[:8]) or "none (no PulseAudio/PipeWire server, or no pactl)"
        raise DeviceError(f"expected a sound server source among {listed}; got {name!r} (see `edgepara devices`)")
    return name


@contextmanager
def _pulse_source(name: str | None) -> Iterator[None]:
    """PULSE_SOURCE=name while a stream opens (libpulse reads it when the "pulse" device connects), then as it
    was, so a later stream on plain "pulse" records from the server's default source again."""
    if name is None:
        yield
        return
    previous = os.environ.get("PULSE_SOURCE")
    os.environ["PULSE_SOURCE"] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PULSE_SOURCE", None)
        else:
            os.environ["PULSE_SOURCE"] = previous


def _describe(devices: list[InputDevice]) -> str:
    listed = ", ".join(f"{d.index}: {d.name!r}" for d in devices[:8])
    return listed + (f", … ({len(devices)} in all)" if len(devices) > 8 else "")


def _find_input_device(sd, device) -> InputDevice:
    devices = list_input_devices()
    if not devices:
        raise DeviceError("expected an audio input device, got none: plug in a microphone and check "
                          "`edgepara devices`, or run on audio with --file PATH or --demo")
    if device is None:
        default = _default_input_index(sd)
        return next((d for d in devices if d.index == default), devices[0])
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        match = [d for d in devices if d.index == device]
    elif isinstance(device, str):
        match = [d for d in devices if d.name == device] or \
                [d for d in devices if device.lower() in d.name.lower()]
    else:
        raise DeviceError(f"expected a device name or index, got {type(device).__name__}")
    if len(match) == 1:
        return match[0]
    if not match:
        raise DeviceError(f"expected an input device among {_describe(devices)}; got {device!r} "
                          f"(see `edgepara devices`)")
    raise DeviceError(f"expected one input device matching {device!r}, got {len(match)}: {_describe(match)}")


class ArrivalGaps:
    """Audio the device should have delivered but never did, from when callbacks arrive and what they carry.

    deficit = (wall time since the first callback) * rate - frames received. While audio flows it stays
    near a constant (the latency). When the process stalls and the audio system buffers, the deficit rises
    during the stall and comes back down in the burst that follows: nothing lost. When the audio system
    overruns instead, the deficit stays up by what was lost. So only the deficit's minimum over `settle_s`
    of steady arrivals counts, compared with a baseline that may follow slow clock drift (`drift`,
    relative) but not a jump of `min_gap_s` or more. Runs inside the audio callback: O(1) amortized.
    """

    def __init__(self, rate: int, settle_s: float = 2.0, min_gap_s: float = 0.2, drift: float = 5e-4,
                 pause_s: float = 0.5):
        self.rate, self.settle_s, self.min_gap = float(rate), float(settle_s), float(min_gap_s) * rate
        self.drift, self.pause_s = float(drift), float(pause_s)
        self.lost_frames = 0
        self._t0: float | None = None
        self._received = 0
        self._last_t = 0.0
        self._steady_since = 0.0
        self._window: deque = deque()  # (t, deficit), deficits increasing: the front is the window's minimum
        self._baseline: float | None = None
        self._baseline_t = 0.0

    def update(self, now: float, frames: int) -> None:
        if self._t0 is None:
            self._t0 = self._last_t = self._steady_since = now
        if now - self._last_t > self.pause_s:  # callbacks paused: what follows may be a catch-up burst
            self._steady_since = now
            self._window.clear()
        self._last_t = now
        self._received += frames
        deficit = (now - self._t0) * self.rate - self._received
        while self._window and self._window[-1][1] >= deficit:
            self._window.pop()
        self._window.append((now, deficit))
        while self._window[0][0] < now - self.settle_s:
            self._window.popleft()
        if now - self._steady_since < self.settle_s:
            return  # not yet settle_s of steady arrivals: a burst may still be draining
        settled = self._window[0][1]
        if self._baseline is None:
            self._baseline, self._baseline_t = settled, now
            return
        excess = settled - self._baseline
        if excess >= self.min_gap:
            self.lost_frames += int(round(excess))
            self._baseline = settled
        else:
            step = self.drift * self.rate * (now - self._baseline_t)
            self._baseline += min(max(excess, -step), step)
        self._baseline_t = now


class MicrophoneSource:
    """A sounddevice input stream as an iterator of 16 kHz int16 mono chunks.

    Use as `for chunk in mic` (starts the stream, closes it when the loop ends) or as a context manager.
    `dropped_samples` counts 16 kHz samples lost, both to a full ring (the consumer fell behind) and to
    gaps in what the device delivered (the process was suspended longer than the audio system buffers).
    The stream ends with a DeviceError when PortAudio reports an error or stops, when no audio came within
    start_timeout_s of starting, or when none came for stall_timeout_s of time in which this process ran
    (a suspended or CPU-starved process does not count against it).
    """

    def __init__(self, device: int | str | None = None, chunk_ms: int = 30, ring_seconds: float = 10.0,
                 channels: int = 1, channel: int | None = None, device_rate: int | None = None,
                 start_timeout_s: float = 5.0, stall_timeout_s: float = 5.0):
        if not 1 <= chunk_ms <= 1000:
            raise DeviceError(f"expected chunk_ms between 1 and 1000, got {chunk_ms!r}")
        if ring_seconds * 1000 < 2 * chunk_ms:
            raise DeviceError(f"expected ring_seconds to hold at least two chunks ({2 * chunk_ms} ms), "
                              f"got {ring_seconds}")
        if not start_timeout_s > 0 or not stall_timeout_s > 0:
            raise DeviceError(f"expected positive timeouts, got start_timeout_s={start_timeout_s!r}, "
                              f"stall_timeout_s={stall_timeout_s!r}")
        sd = self._sd = _sounddevice()
        self.server_source = None
        if isinstance(device, str) and device.startswith(SERVER_PREFIX):
            self.server_source = _server_source(device)
            device = "pulse"
        try:
            self.device = _find_input_device(sd, device)
        except DeviceError:
            _rescan(sd)  # the device may have appeared after PortAudio started
            self.device = _find_input_device(sd, device)
        if not 1 <= channels <= self.device.channels:
            raise DeviceError(f"expected 1..{self.device.channels} input channels on {self.device.name!r}, "
                              f"got channels={channels}")
        self.channels = int(channels)
        self.device_rate = self._pick_rate(device_rate)
        self.chunk_ms = int(chunk_ms)
        self._chunk_frames = max(1, self.device_rate * self.chunk_ms // 1000)
        self.ring = RingBuffer(int(ring_seconds * self.device_rate), self.channels)
        self._converter = BoundaryConverter(self.device_rate, self.channels, channel)
        self.start_timeout_s, self.stall_timeout_s = float(start_timeout_s), float(stall_timeout_s)
        self._gaps = ArrivalGaps(self.device_rate)
        self._stream = None
        self._closing = False
        self._failure: str | None = None
        self._first_audio = threading.Event()
        self.status_overflows = 0  # callbacks that reported input_overflow (PortAudio lost data upstream)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def description(self) -> str:
        resampled = "" if self.device_rate == SAMPLE_RATE else f", resampled to {SAMPLE_RATE} Hz"
        source = f" source {self.server_source!r}" if self.server_source else ""
        return f"{self.device.name!r}{source} (device {self.device.index}, {self.device_rate} Hz{resampled})"

    @property
    def dropped_samples(self) -> int:
        lost = self.ring.dropped_samples + self._gaps.lost_frames
        return int(round(lost * SAMPLE_RATE / self.device_rate))

    def _pick_rate(self, forced: int | None) -> int:
        sd, name = self._sd, self.device.name
        candidates = [int(forced)] if forced else [SAMPLE_RATE, int(self.device.default_rate)]
        reasons = []
        for rate in dict.fromkeys(candidates):
            try:
                sd.check_input_settings(device=self.device.index, samplerate=rate, channels=self.channels,
                                        dtype="int16")
                return rate
            except Exception as err:  # PortAudioError or ValueError, depending on the host API
                reasons.append(f"{rate} Hz: {str(err).split('[')[0].strip() or type(err).__name__}")
        wanted = " or ".join(f"{r} Hz" for r in dict.fromkeys(candidates))
        raise DeviceError(f"expected {name!r} to record {self.channels} channel(s) of int16 at {wanted}, "
                          f"got {'; '.join(reasons)}")

    # the callback runs on PortAudio's thread: copy, note the status, return
    def _callback(self, indata, frames, time_info, status) -> None:
        if status:
            if status.input_overflow:
                self.status_overflows += 1
            else:
                self._failure = self._failure or f"stream status {status}"
        self._gaps.update(time.monotonic(), frames)
        self.ring.write(indata)
        self._first_audio.set()

    def _finished(self) -> None:
        if not self._closing:
            self._failure = self._failure or "the stream stopped (device unplugged or taken by another program?)"
        self.ring.wake()

    def start(self) -> "MicrophoneSource":
        global _open_streams
        if self._stream is not None:
            return self
        self._closing, self._failure = False, None
        self._gaps = ArrivalGaps(self.device_rate)
        try:
            with _pulse_source(self.server_source):
                self._stream = self._sd.InputStream(
                    device=self.device.index, samplerate=self.device_rate, channels=self.channels, dtype="int16",
                    callback=self._callback, finished_callback=self._finished)
                _open_streams += 1
                self._stream.start()
        except Exception as err:  # PortAudioError: keep its internals out of the message
            self.close()
            raise DeviceError(f"expected to open {self.device.name!r} at {self.device_rate} Hz, got "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        return self

    def wait_until_streaming(self, timeout_s: float | None = None) -> bool:
        """True once the first audio callback has arrived (PulseAudio can take a second or two)."""
        self.start()
        return self._first_audio.wait(self.start_timeout_s if timeout_s is None else timeout_s)

    def close(self) -> None:
        global _open_streams
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            _open_streams -= 1
            try:
                stream.abort()
                stream.close()
            except Exception:  # a device that is already gone cannot be closed any further
                pass
        self.ring.wake()

    def __enter__(self) -> "MicrophoneSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _alive(self) -> bool:
        stream = self._stream
        try:
            return stream is not None and bool(stream.active)
        except Exception:  # PortAudio can no longer say: the stream is gone
            return False

    def __iter__(self) -> Iterator[np.ndarray]:
        self.start()
        try:
            silent_s = 0.0  # time without audio in which this process was running
            while not self._closing:
                limit = self.stall_timeout_s if self._first_audio.is_set() else self.start_timeout_s
                poll = min(POLL_S, limit)
                t = time.monotonic()
                block = self.ring.wait_read(self._chunk_frames, timeout=poll)
                if self._failure:
                    raise DeviceError(f"expected audio from {self.device.name!r}, got a failure: {self._failure}")
                if self._closing:
                    break
                if block is None:
                    if not self._alive():
                        raise DeviceError(f"expected audio from {self.device.name!r}, got a stopped stream "
                                          f"(device unplugged or taken by another program?)")
                    # A wait that overran its timeout by much means this process was not running (suspended,
                    # starved of CPU): only the time it could have been served counts as silence.
                    silent_s += min(time.monotonic() - t, poll + POLL_SLACK_S)
                    if silent_s >= limit:
                        raise DeviceError(f"expected audio from {self.device.name!r} within {limit:.1f} s, got "
                                          f"none (device unplugged, muted at the driver, or busy?)")
                    continue
                silent_s = 0.0
                out = self._converter(block)
                if len(out):
                    yield out
        finally:
            self.close()
