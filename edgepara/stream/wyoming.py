"""A Wyoming microphone service as a source: the audio of a Home Assistant voice satellite, as 16 kHz int16 mono.

Wyoming (the protocol of Home Assistant's voice services) sends events over TCP. Each is one JSON header line,
{"type": ..., "data": {...}, "data_length": N, "payload_length": M}, then N bytes of JSON merged into "data", then
M bytes of payload. A microphone service (e.g. wyoming-mic-external, which wyoming-satellite reads with --mic-uri)
needs no request: on connecting it sends audio-start (rate, width, channels) and then audio-chunk events, each
with its format and PCM in the payload. This source sends a `describe` first anyway (Wyoming services answer it
or ignore it), so that a service that does not speak Wyoming, such as a web server, answers with something that
is not a header line at once instead of waiting in silence.

How the stream goes on:
- any rate, width (1 to 4 bytes; 1 is unsigned, as in WAV) and channel count, each chunk as announced; a change
  of format mid-stream flushes the old converter and starts a new one;
- audio-stop ends the stream, as the end of a file does;
- a connection lost without audio-stop (closed, reset, or silent for stall_timeout_s) is retried with
  exponential backoff (reconnect_min_s doubling up to reconnect_max_s, +-20 % jitter) for as long as it takes;
  the audio missed meanwhile is counted in `dropped_samples`, which the pipeline reports as an Overflow event,
  as it does for a microphone that stalled;
- the first connection must succeed and bring audio within start_timeout_s, or the constructor raises a one-line
  DeviceError: a wrong address fails at once instead of retrying forever. A peer that does not speak Wyoming
  raises one at any time.

Why the framing is written here (about a hundred lines on the standard library) and not taken from the `wyoming`
package: its synchronous reader returns None both at the end of a stream and for a line that is not JSON, so
"not a Wyoming service" could not be told from "connection closed"; it reads header lines of any length; and its
blocking reads on a file object cannot be interrupted by the timeouts that detect a stalled service and let
close() end a wait. The package's own server is what the tests run this source against.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import urlsplit

import numpy as np

from ..errors import AudioError, DeviceError, EdgeparaError, UsageError
from ..resample import BoundaryConverter
from ..types import SAMPLE_RATE
from .source import DEFAULT_CHUNK, _check_chunk_size, rechunk

__all__ = ["WyomingSource", "wyoming_source", "parse_wyoming_url", "WyomingAddress"]

POLL_S = 0.25  # how often a blocked read looks whether close() was called
CONNECT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 5.0  # from connecting to the first audio event
STALL_TIMEOUT_S = 5.0  # no event for this long while streaming: the connection is treated as lost
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
MAX_LINE_BYTES = 1 << 16  # a header line: a few hundred bytes in practice
MAX_DATA_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 25  # 32 MiB: over a second of 8 channels of 32-bit audio at 768 kHz
WIDTHS = (1, 2, 3, 4)

log = logging.getLogger("edgepara.wyoming")


@dataclass(frozen=True)
class WyomingAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_wyoming_url(url: str) -> WyomingAddress:
    """tcp://HOST:PORT (Wyoming has no default port; a microphone service often listens on 10600)."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise UsageError(f"expected a Wyoming URL like tcp://HOST:PORT, got {text!r} (bad port)") from None
    if parts.scheme != "tcp":
        raise UsageError(f"expected a Wyoming URL like tcp://HOST:PORT, got {text!r}")
    if not parts.hostname or "@" in parts.netloc:
        raise UsageError(f"expected a host in the Wyoming URL (tcp://HOST:PORT), got {text!r}")
    if port is None or port == 0:
        raise UsageError(f"expected a port in the Wyoming URL (tcp://HOST:PORT, e.g. tcp://satellite.local:10600), "
                         f"got {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"expected a Wyoming URL without a path or query (tcp://HOST:PORT), got {text!r}")
    return WyomingAddress(parts.hostname, port)


class _Unreachable(Exception):
    """No connection could be made (refused, unknown host, timed out)."""


class _Lost(Exception):
    """An open connection ended without audio-stop (closed, reset, or silent too long)."""


class _Silent(_Lost):
    """Nothing arrived by the deadline."""


class _Closing(Exception):
    """close() was called while a read waited."""


class _NotWyoming(DeviceError):
    """The peer sent something that is not a Wyoming event."""


class _NoAudio(DeviceError):
    """The peer speaks Wyoming but sent no audio in time after connecting."""


def _reason(err: OSError) -> str:
    if isinstance(err, socket.gaierror):
        return f"an unknown host ({err.strerror or err})"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    return (err.strerror or type(err).__name__).lower()


class _Connection:
    """One TCP connection, read as Wyoming events. Reads wait POLL_S at a time, so close() ends them."""

    def __init__(self, address: WyomingAddress, connect_timeout_s: float, closing: threading.Event):
        self.address, self.closing = address, closing
        try:
            self.sock = socket.create_connection((address.host, address.port), timeout=connect_timeout_s)
        except OSError as err:
            raise _Unreachable(_reason(err)) from None
        self.sock.settimeout(POLL_S)
        self.buffer = bytearray()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked on another thread
        except OSError:
            pass
        self.sock.close()

    def send(self, kind: str, data: dict | None = None) -> None:
        header: dict = {"type": kind}
        body = json.dumps(data).encode() if data else b""
        if body:
            header["data_length"] = len(body)
        try:
            self.sock.sendall(json.dumps(header).encode() + b"\n" + body)
        except OSError as err:
            raise _Lost(_reason(err)) from None

    def event(self, deadline: float) -> tuple[str, dict, bytes]:
        """The next event as (type, data, payload); _Lost when the connection ends or nothing comes by deadline."""
        line = self._line(deadline)
        while not line.strip():  # tolerate blank lines between events
            line = self._line(deadline)
        try:
            header = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: deeply nested brackets
            header = None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise self._not_wyoming(f"got {_snippet(line)}")
        data = header.get("data") or {}
        data_length, payload_length = (header.get(k) or 0 for k in ("data_length", "payload_length"))
        for name, value, limit in (("data_length", data_length, MAX_DATA_BYTES),
                                   ("payload_length", payload_length, MAX_PAYLOAD_BYTES)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise self._not_wyoming(f"got {name} {value!r} (0 to {limit} expected)")
        if data_length:
            try:
                extra = json.loads(self._exactly(data_length, deadline))
            except (ValueError, RecursionError):
                extra = None
            if not isinstance(extra, dict) or not isinstance(data, dict):
                raise self._not_wyoming(f"got {header['type']} data that is not a JSON object")
            data = {**data, **extra}
        if not isinstance(data, dict):
            raise self._not_wyoming(f"got {header['type']} data that is not a JSON object")
        return header["type"], data, self._exactly(payload_length, deadline) if payload_length else b""

    def _not_wyoming(self, what: str) -> DeviceError:
        return _NotWyoming(f"expected Wyoming events from {self.address.url}, {what}: is it a Wyoming "
                           "microphone service?")

    def _line(self, deadline: float) -> bytes:
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > MAX_LINE_BYTES:
                raise self._not_wyoming(f"got over {MAX_LINE_BYTES} bytes without a line break, starting "
                                        f"{_snippet(bytes(self.buffer))}")
            start = len(self.buffer)
            self._receive(deadline)

    def _exactly(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            self._receive(deadline)
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def _receive(self, deadline: float) -> None:
        while True:
            if self.closing.is_set():
                raise _Closing
            try:
                more = self.sock.recv(1 << 16)
            except socket.timeout:
                if time.monotonic() >= deadline:
                    raise _Silent("nothing received in time") from None
                continue
            except OSError as err:
                if self.closing.is_set():
                    raise _Closing from None
                raise _Lost(_reason(err)) from None
            if not more:
                if self.closing.is_set():
                    raise _Closing
                raise _Lost("closed by the service")
            self.buffer += more
            return


def _snippet(data: bytes) -> str:
    text = data[:48].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > 48 else ""))


@dataclass(frozen=True)
class _Format:
    rate: int
    width: int
    channels: int

    def describe(self) -> str:
        return f"{self.rate} Hz, {self.width * 8}-bit, {self.channels} ch"


def _pcm_frames(data: bytes, fmt: _Format) -> tuple[np.ndarray, bytes]:
    """Whole frames of little-endian PCM as an (n, channels) integer array, and the bytes of a partial frame."""
    frame = fmt.width * fmt.channels
    whole = len(data) - len(data) % frame
    raw, rest = data[:whole], data[whole:]
    if fmt.width == 1:  # unsigned, centred on 128, as in WAV (and as the wyoming package converts it)
        x = (np.frombuffer(raw, np.uint8) ^ 0x80).view(np.int8)
    elif fmt.width == 2:
        x = np.frombuffer(raw, "<i2")
    elif fmt.width == 3:  # into the top three bytes of an int32: the same scale as 32-bit audio
        x = np.zeros((whole // 3, 4), np.uint8)
        x[:, 1:] = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        x = x.view("<i4").ravel()
    else:
        x = np.frombuffer(raw, "<i4")
    return x.reshape(-1, fmt.channels), rest


class WyomingSource:
    """Audio from a Wyoming microphone service at `url` (tcp://HOST:PORT), as 16 kHz int16 mono chunks of `chunk`
    samples. Connects at once: a service that cannot be reached, sends no audio within start_timeout_s, or does not
    speak Wyoming raises a one-line DeviceError here. Iterate it once; the stream ends at audio-stop or close().
    A lost connection is retried (see the module's docstring); `dropped_samples` counts the 16 kHz samples missed,
    and `notify` (default: a logged warning) hears of each loss and reconnection."""

    def __init__(self, url: str, chunk: int = DEFAULT_CHUNK, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 start_timeout_s: float = START_TIMEOUT_S, stall_timeout_s: float = STALL_TIMEOUT_S,
                 reconnect_min_s: float = RECONNECT_MIN_S, reconnect_max_s: float = RECONNECT_MAX_S,
                 notify: Callable[[str], None] | None = None):
        self.address = url if isinstance(url, WyomingAddress) else parse_wyoming_url(url)
        self.chunk = _check_chunk_size(chunk)
        timeouts = {"connect_timeout_s": connect_timeout_s, "start_timeout_s": start_timeout_s,
                    "stall_timeout_s": stall_timeout_s, "reconnect_min_s": reconnect_min_s,
                    "reconnect_max_s": reconnect_max_s}
        bad = {k: v for k, v in timeouts.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0}
        if bad or reconnect_max_s < reconnect_min_s:
            raise EdgeparaError(f"expected positive timeouts with reconnect_max_s >= reconnect_min_s, got "
                                f"{', '.join(f'{k}={v!r}' for k, v in (bad or timeouts).items())}")
        self.connect_timeout_s, self.start_timeout_s = float(connect_timeout_s), float(start_timeout_s)
        self.stall_timeout_s = float(stall_timeout_s)
        self.reconnect_min_s, self.reconnect_max_s = float(reconnect_min_s), float(reconnect_max_s)
        self._notify = notify or (lambda message: log.warning("edgepara: wyoming: %s", message))
        self._closing = threading.Event()
        self._dropped = 0
        self.reconnects = 0
        self._iterated = False
        self._ended = False  # audio-stop came
        self._last_audio_at: float | None = None
        self._down_since: float | None = None  # when the audio stopped coming, while reconnecting
        self._format: _Format | None = None  # the last one announced (audio-start) or used (audio-chunk)
        self._connection: _Connection | None = None
        self._pending: list = []  # events _open read before the stream began
        try:
            self._connection, self._pending = self._open()
        except _Unreachable as err:
            raise DeviceError(f"expected a Wyoming microphone service at {self.address.url}, got {err}") from None
        except _Lost as err:
            raise DeviceError(f"expected audio from the Wyoming service at {self.address.url}, got none before the "
                              f"connection ended ({err})") from None

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def dropped_samples(self) -> int:
        """16 kHz samples the service sent while we were not connected (the pipeline's Overflow events)."""
        return self._dropped

    @property
    def description(self) -> str:
        fmt = self._format
        if fmt is None:
            return f"Wyoming service {self.url}"
        resampled = "" if fmt.rate == SAMPLE_RATE and fmt.channels == 1 else f", as {SAMPLE_RATE} Hz mono"
        return f"Wyoming service {self.url} ({fmt.describe()}{resampled})"

    def close(self) -> None:
        """Ends the stream (also from another thread: a waiting read or reconnection returns at once)."""
        self._closing.set()
        connection = self._connection
        if connection is not None:
            connection.close()

    def interrupt(self) -> None:
        """close(), by the name `edgepara listen` calls on Ctrl-C/SIGTERM: it only sets an event and shuts the socket,
        so it is safe in a signal handler, and the stream ends at once even while it waits to reconnect."""
        self.close()

    def __enter__(self) -> "WyomingSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iterated:
            raise EdgeparaError(f"expected to iterate a WyomingSource once, got a second iteration of {self.url} "
                                "(make a new source to connect again)")
        self._iterated = True
        return self._chunks()

    # --- connecting -------------------------------------------------------------------------------------------

    def _open(self) -> tuple[_Connection, list]:
        """A connection whose first audio event (audio-start/-chunk/-stop) has arrived; returns it with the events
        read so far. _Unreachable or _Lost when that fails; DeviceError when the peer does not speak Wyoming."""
        connection = _Connection(self.address, self.connect_timeout_s, self._closing)
        self._connection = connection
        try:
            connection.send("describe")
            deadline = time.monotonic() + self.start_timeout_s
            seen = []
            while True:
                try:
                    kind, data, payload = connection.event(deadline)
                except _Silent:
                    others = f"only {', '.join(dict.fromkeys(seen))} events" if seen else "nothing"
                    raise _NoAudio(f"expected audio from the Wyoming service at {self.address.url} within "
                                   f"{self.start_timeout_s:g} s of connecting, got {others} (is it a microphone "
                                   "service? a satellite's own port does not stream audio)") from None
                if kind in ("audio-start", "audio-chunk"):
                    self._format = self._format_of(data)  # checked now; and the description can name it
                if kind.startswith("audio-"):
                    return connection, [(kind, data, payload)]
                seen.append(kind)
                self._answer(connection, kind, data)
        except BaseException:
            connection.close()
            raise

    def _reconnect(self) -> _Connection | None:
        """Tries again, with backoff, until it connects (returns the connection) or close() is called (None)."""
        delay = self.reconnect_min_s
        while True:
            if self._closing.wait(delay * random.uniform(0.8, 1.2)):  # jitter: a house of sources not in step
                return None
            try:
                connection, self._pending = self._open()
                return connection
            except (_Unreachable, _Lost, _NoAudio) as err:  # not _NotWyoming: another program took the port
                log.debug("edgepara: wyoming: reconnecting to %s failed: %s", self.url, err)
            except _Closing:
                return None
            delay = min(delay * 2, self.reconnect_max_s)

    @staticmethod
    def _answer(connection: _Connection, kind: str, data: dict) -> None:
        if kind == "ping":  # a Wyoming peer checking we are alive
            connection.send("pong", {"text": data.get("text")} if data.get("text") is not None else None)

    # --- streaming --------------------------------------------------------------------------------------------

    def _chunks(self) -> Iterator[np.ndarray]:
        try:
            while not self._closing.is_set():
                # rechunked per connection: the piece before a gap is not held back until audio comes again
                yield from rechunk(self._blocks(self._connection), self.chunk)
                if self._ended or self._closing.is_set():
                    return
                self._connection = self._reconnect()
                if self._connection is None:
                    return
        finally:
            self.close()

    def _blocks(self, connection: _Connection) -> Iterator[np.ndarray]:
        """int16 16 kHz mono blocks of one connection, until audio-stop, close() or the connection is lost."""
        converter, fmt, leftover = None, None, b""
        try:
            while True:
                if self._pending:
                    kind, data, payload = self._pending.pop(0)
                else:
                    kind, data, payload = connection.event(time.monotonic() + self.stall_timeout_s)
                if kind == "audio-stop":
                    self._ended = True
                    break
                if kind not in ("audio-start", "audio-chunk"):
                    self._answer(connection, kind, data)
                    continue
                new = self._format_of(data)
                self._format = new
                if new != fmt:  # the first audio, or a change of format: the old converter's tail first
                    if converter is not None:
                        tail = converter.flush()
                        if len(tail):
                            yield tail
                    converter, fmt, leftover = self._converter(new), new, b""
                if kind == "audio-start" or not payload:
                    continue
                frames, leftover = _pcm_frames(leftover + payload, fmt)
                self._arrived(len(frames) / fmt.rate)
                try:
                    out = converter(frames)
                except AudioError as err:
                    raise DeviceError(f"expected usable audio from {self.url}, got {err}") from None
                if len(out):
                    yield out
        except _Silent:
            self._lost(f"nothing received for {self.stall_timeout_s:g} s")
        except _Lost as err:
            self._lost(str(err))
        except _Closing:
            return
        if converter is not None:
            tail = converter.flush()
            if len(tail):
                yield tail

    def _format_of(self, data: dict) -> _Format:
        known = self._format
        values = {}
        for key in ("rate", "width", "channels"):
            value = data.get(key, getattr(known, key, None))
            if isinstance(value, bool) or not isinstance(value, int):
                raise DeviceError(f"expected audio events from {self.url} with an integer {key}, got {value!r}")
            values[key] = value
        if values["width"] not in WIDTHS:
            raise DeviceError(f"expected audio from {self.url} with a sample width of 1, 2, 3 or 4 bytes, got "
                              f"{values['width']}")
        return _Format(**values)

    def _converter(self, fmt: _Format) -> BoundaryConverter:
        try:
            return BoundaryConverter(fmt.rate, fmt.channels)
        except AudioError as err:
            raise DeviceError(f"expected usable audio from {self.url}, got {err}") from None

    def _arrived(self, seconds: float) -> None:
        now = time.monotonic()
        if self._down_since is not None:  # the first audio after a reconnection: it began `seconds` ago
            gap = max(0.0, now - seconds - self._down_since)
            self._dropped += int(round(gap * SAMPLE_RATE))
            self.reconnects += 1
            self._notify(f"reconnected to {self.url}; {gap:.1f} s of audio missed")
            self._down_since = None
        self._last_audio_at = now

    def _lost(self, reason: str) -> None:
        self._connection.close()
        self._down_since = self._last_audio_at if self._last_audio_at is not None else time.monotonic()
        self._notify(f"lost the connection to {self.url} ({reason}); reconnecting")


def wyoming_source(url: str, chunk: int = DEFAULT_CHUNK, **options) -> WyomingSource:
    """A Wyoming microphone service (tcp://HOST:PORT) as 16 kHz int16 mono chunks of `chunk` samples; see
    WyomingSource for the options (timeouts, backoff, notify)."""
    return WyomingSource(url, chunk, **options)
