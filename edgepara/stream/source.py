"""Sources: plain iterators of int16 mono 16 kHz chunks (a file, stdin, any iterable, a microphone).

This is the boundary: down-mixing and resampling happen here, once, with a stateful resampler so that
chunk boundaries neither click nor change the output.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE, read_audio
from ..errors import AudioError, DeviceError
from .ring import RingBuffer

DEFAULT_CHUNK = 480  # 30 ms: one webrtcvad frame at the default frame_ms


class StreamingResampler:
    """Polyphase FIR resampler that carries its input history between calls.

    The filter is the one scipy.signal.resample_poly designs (Kaiser-windowed sinc, beta 5, 10 zero
    crossings per side), and output n sits at input time n * in_rate / out_rate, as in resample_poly, so
    process(a) + process(b) + flush() equals resample_poly(a + b) up to float rounding, for any split.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE):
        if int(in_rate) <= 0 or int(out_rate) <= 0:
            raise AudioError(f"expected positive sample rates, got {in_rate} Hz -> {out_rate} Hz")
        from scipy.signal import firwin

        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        g = gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.passthrough = self.up == self.down == 1
        if self.passthrough:
            self._taps, self._half = 1, 0
            self.reset()
            return
        max_rate = max(self.up, self.down)
        self._half = 10 * max_rate
        h = firwin(2 * self._half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self._taps = -(-len(h) // self.up)  # input samples under the filter for one output
        padded = np.zeros(self._taps * self.up)
        padded[: len(h)] = h
        self._phases = padded.reshape(self._taps, self.up).T.copy()  # [phase, k] = h[phase + k * up]
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self._taps - 1)  # the silence before the stream starts
        self._buf_start = -(self._taps - 1)  # absolute input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    def process(self, x) -> np.ndarray:
        """float samples in -> float64 samples out (fewer or more than in, depending on the ratio)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.passthrough:
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        t0 = self._n_out * self.down + self._half  # output position on the up-sampled grid
        count = max(0, -(-(self._n_in * self.up - t0) // self.down))
        t = t0 + self.down * np.arange(count)
        newest = t // self.up - self._buf_start
        idx = newest[:, None] - np.arange(self._taps)[None, :]
        y = (self._buf[idx] * self._phases[t % self.up]).sum(axis=1)
        self._n_out += count
        keep_from = min(((self._n_out * self.down + self._half) // self.up) - (self._taps - 1), self._n_in)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return y

    def flush(self) -> np.ndarray:
        """The last outputs, which need input past the end (zeros); then ready for a new stream."""
        if self.passthrough:
            return np.zeros(0)
        total = -(-self._n_in * self.up // self.down)
        missing = total - self._n_out
        if missing <= 0:
            self.reset()
            return np.zeros(0)
        last_t = (total - 1) * self.down + self._half
        y = self.process(np.zeros(max(0, last_t // self.up + 1 - self._n_in)))[:missing]
        self.reset()
        return y


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """The same scaling as audio.to_mono_int16, so a file and a stream of it give the same samples."""
    return (np.clip(x, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)


class BoundaryConverter:
    """(n,) or (n, channels) blocks of any numeric dtype at any rate -> int16 mono 16 kHz, statefully.
    channel=None down-mixes (mean); an int picks that channel."""

    def __init__(self, rate: int, channels: int = 1, channel: int | None = None):
        if not isinstance(rate, (int, np.integer)) or not 1000 <= rate <= 768000:
            raise AudioError(f"expected a sample rate in Hz between 1000 and 768000, got {rate!r}")
        if not isinstance(channels, (int, np.integer)) or channels < 1:
            raise AudioError(f"expected a channel count >= 1, got {channels!r}")
        if channel is not None and not 0 <= channel < channels:
            raise AudioError(f"expected a channel index in 0..{channels - 1}, got {channel}")
        self.rate, self.channels, self.channel = int(rate), int(channels), channel
        self.resampler = StreamingResampler(self.rate, SAMPLE_RATE)

    def __call__(self, block) -> np.ndarray:
        x = np.asarray(block)
        if x.ndim == 1 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise AudioError(f"expected audio blocks of shape (n, {self.channels}), got {x.shape}")
        if x.dtype.kind not in "iuf":
            raise AudioError(f"expected numeric audio samples, got dtype {x.dtype}")
        if x.dtype == np.int16 and self.resampler.passthrough:  # already past-boundary format: stay exact
            if self.channel is not None or self.channels == 1:
                return np.ascontiguousarray(x[:, self.channel or 0])
        if x.dtype.kind in "iu":
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
        if not np.all(np.isfinite(x)):
            raise AudioError(f"expected finite audio samples, got {int(np.sum(~np.isfinite(x)))} NaN/inf values")
        mono = x.mean(axis=1) if self.channel is None else x[:, self.channel]
        return float_to_int16(self.resampler.process(mono))

    def flush(self) -> np.ndarray:
        return float_to_int16(self.resampler.flush())


def _check_chunk_size(chunk) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk <= 0:
        raise AudioError(f"expected a positive chunk size in samples, got {chunk!r}")
    return int(chunk)


def file_source(path: str | Path, chunk: int = DEFAULT_CHUNK, realtime: bool = False) -> Iterator[np.ndarray]:
    """A wav/flac/ogg file as chunks. Decoding errors are raised here, not on the first next().
    realtime=True paces the chunks at the audio's own speed (to try the live path on a file)."""
    chunk = _check_chunk_size(chunk)
    audio = read_audio(path)

    def chunks():
        t0 = time.monotonic()
        for start in range(0, len(audio), chunk):
            piece = audio[start : start + chunk]
            if realtime:
                delay = t0 + (start + len(piece)) / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield piece

    return chunks()


def stdin_source(rate: int, channels: int = 1, chunk: int = DEFAULT_CHUNK, stream=None) -> Iterator[np.ndarray]:
    """Raw signed 16-bit little-endian PCM (interleaved if several channels) from stdin, or from `stream`
    (any binary file object). Yields 16 kHz mono chunks of about `chunk` samples."""
    chunk = _check_chunk_size(chunk)
    in_rate = BoundaryConverter(rate, channels).rate  # validates rate and channels here, at the boundary
    frame_bytes = 2 * channels
    read_bytes = max(1, -(-chunk * in_rate // SAMPLE_RATE)) * frame_bytes
    stream = stream if stream is not None else sys.stdin.buffer
    read = getattr(stream, "read1", None) or stream.read  # read1: return what a pipe has, keep latency low

    def blocks():
        leftover = b""
        while True:
            data = read(read_bytes)
            if not data:
                break
            data = leftover + data
            whole = len(data) - len(data) % frame_bytes
            leftover = data[whole:]
            if whole:
                yield np.frombuffer(data[:whole], dtype="<i2").reshape(-1, channels)

    return iterable_source(blocks(), rate, channels)


def iterable_source(iterable: Iterable, rate: int = SAMPLE_RATE, channels: int = 1,
                    channel: int | None = None) -> Iterator[np.ndarray]:
    """Any iterable of sample blocks ((n,) or (n, channels); int or float in [-1, 1]) -> 16 kHz int16 mono."""
    converter = BoundaryConverter(rate, channels, channel)

    def chunks():
        for block in iterable:
            out = converter(block)
            if len(out):
                yield out
        tail = converter.flush()
        if len(tail):
            yield tail

    return chunks()


# ---------------------------------------------------------------------------------------------- devices

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


class MicrophoneSource:
    """A sounddevice input stream as an iterator of 16 kHz int16 mono chunks.

    The audio callback only copies into a ring buffer; resampling, down-mixing and everything else runs
    in the consumer's thread. Use as `for chunk in mic` (starts the stream, closes it when the loop ends)
    or as a context manager. `dropped_samples` counts 16 kHz samples lost because the consumer fell behind.
    """

    def __init__(self, device: int | str | None = None, chunk_ms: int = 30, ring_seconds: float = 10.0,
                 channels: int = 1, channel: int | None = None, device_rate: int | None = None,
                 start_timeout_s: float = 5.0, stall_timeout_s: float = 2.0):
        if not 1 <= chunk_ms <= 1000:
            raise DeviceError(f"expected chunk_ms between 1 and 1000, got {chunk_ms!r}")
        if ring_seconds * 1000 < 2 * chunk_ms:
            raise DeviceError(f"expected ring_seconds to hold at least two chunks ({2 * chunk_ms} ms), "
                              f"got {ring_seconds}")
        sd = self._sd = _sounddevice()
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
        return f"{self.device.name!r} (device {self.device.index}, {self.device_rate} Hz{resampled})"

    @property
    def dropped_samples(self) -> int:
        return int(round(self.ring.dropped_samples * SAMPLE_RATE / self.device_rate))

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
        try:
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

    def __iter__(self) -> Iterator[np.ndarray]:
        self.start()
        try:
            timeout = self.start_timeout_s
            while not self._closing:
                block = self.ring.wait_read(self._chunk_frames, timeout=timeout)
                if self._failure:
                    raise DeviceError(f"expected audio from {self.device.name!r}, got a failure: {self._failure}")
                if self._closing:
                    break
                if block is None:
                    raise DeviceError(f"expected audio from {self.device.name!r} within {timeout:.1f} s, got "
                                      f"none (device unplugged, muted at the driver, or busy?)")
                timeout = self.stall_timeout_s
                out = self._converter(block)
                if len(out):
                    yield out
        finally:
            self.close()
