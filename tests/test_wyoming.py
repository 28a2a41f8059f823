"""`listen --wyoming tcp://HOST:PORT`: audio from a Home Assistant voice satellite's microphone service.

The services here are real Wyoming servers, built with the `wyoming` package's own AsyncTcpServer and
AsyncEventHandler (as wyoming-mic-external is): each connection gets audio-start, audio-chunk events of a real
clip, and audio-stop or a hang-up. The CLI runs as a subprocess, as a user runs it."""
from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

pytest.importorskip("wyoming", reason="the Wyoming tests run a real server from the wyoming package "
                                      "(pip install 'edgepara[test]')")
with warnings.catch_warnings():  # wyoming 1.10 imports audioop, deprecated since Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.server import AsyncEventHandler, AsyncTcpServer  # noqa: E402

from edgepara.audio import read_audio  # noqa: E402
from edgepara.listen_command import STOP_TIMEOUT_S  # noqa: E402
from edgepara.errors import DeviceError, UsageError  # noqa: E402
from edgepara.resample import BoundaryConverter  # noqa: E402
from edgepara.stream.source import wyoming_source  # noqa: E402

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"
CLI = [sys.executable, "-m", "edgepara.cli"]
SR = 16000
HANG_UP = "hang up"  # in a script: close the connection without audio-stop
TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audio_events(frames: np.ndarray, rate: int, width: int, per_chunk: int = 1024, start: bool = True) -> list:
    """(n, channels) integer samples -> [audio-start,] audio-chunk, ... as a microphone service sends them."""
    frames = frames.reshape(len(frames), -1)
    channels = frames.shape[1]
    if width == 1:
        raw = (frames.astype(np.int16) + 128).astype(np.uint8).tobytes()  # unsigned 8-bit
    elif width == 3:
        raw = frames.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # 24-bit little-endian
    else:
        raw = frames.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    step = per_chunk * width * channels
    events = [AudioStart(rate=rate, width=width, channels=channels).event()] if start else []
    return events + [AudioChunk(rate=rate, width=width, channels=channels, audio=raw[i : i + step]).event()
                     for i in range(0, len(raw), step)]


class MicService:
    """A Wyoming microphone service on 127.0.0.1: the n-th connection is sent scripts[n] (the last one again
    after that): events, pauses (a number of seconds) and HANG_UP. Runs its own event loop on a thread."""

    def __init__(self, scripts: list[list], port: int | None = None, answer_describe: bool = False):
        self.scripts, self.port = scripts, port or free_port()
        self.connections, self.received = 0, []
        self.sent_all = threading.Event()  # the last connection's script has been written
        self.answer_describe = answer_describe
        self.loop = asyncio.new_event_loop()
        self.server = AsyncTcpServer("127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.server.start(self._handler))

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def _handler(self, reader, writer):
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        return _ScriptHandler(self, script, reader, writer)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stops listening and drops every connection (a restart, a crash of the satellite's service)."""
        if self.loop.is_running():
            self._call(self.server.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def __enter__(self) -> "MicService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _ScriptHandler(AsyncEventHandler):
    def __init__(self, service: MicService, script: list, *args):
        super().__init__(*args)
        self.service = service
        self.task = asyncio.create_task(self._stream(script))  # a microphone service speaks first

    async def handle_event(self, event) -> bool:
        self.service.received.append(event.type)
        if self.service.answer_describe and Describe.is_type(event.type):
            await self.write_event(Info().event())
        return True

    async def _stream(self, script: list) -> None:
        for item in script:
            if item == HANG_UP:
                self.writer.close()
                break
            if isinstance(item, (int, float)):
                await asyncio.sleep(item)
            else:
                await self.write_event(item)
        self.service.sent_all.set()

    async def disconnect(self) -> None:
        if self.task is not asyncio.current_task():
            self.task.cancel()


def run_cli(*args, timeout=TIMEOUT_S):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def events_of(stdout: str) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in stdout.splitlines()]


def one_error_line(r) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("edgepara: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clip_22k_stereo_32bit(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The clip at 22050 Hz, stereo (the second channel quieter), 32-bit PCM: a WAV file and its int32 frames."""
    speech = read_audio(CLIP).astype(np.float64) / 32768.0
    x = resample_poly(speech, 441, 320)
    stereo = np.stack([x, 0.5 * x], axis=1) * 0.9
    path = tmp_path_factory.mktemp("wyoming") / "clip22k_stereo_32.wav"
    sf.write(path, stereo, 22050, subtype="PCM_32")
    frames, rate = sf.read(path, dtype="int32", always_2d=True)
    assert rate == 22050
    return path, frames


# ------------------------------------------------------------------------------- the same predictions as --file

@pytest.mark.parametrize("fmt", ["16k_mono_16bit", "22k_stereo_32bit"])
def test_listen_on_a_wyoming_microphone_equals_listen_on_the_file(fmt, clip_22k_stereo_32bit):
    if fmt == "16k_mono_16bit":
        path, frames, rate, width = CLIP, read_audio(CLIP), SR, 2
    else:
        (path, frames), rate, width = clip_22k_stereo_32bit, 22050, 4
    with MicService([audio_events(frames, rate, width) + [AudioStop().event()]]) as mic:
        live = run_cli("listen", "--wyoming", mic.url, "--jsonl", "-")
    from_file = run_cli("listen", "--file", path, "--jsonl", "-")
    assert live.returncode == 0 and from_file.returncode == 0, (live.stderr, from_file.stderr)
    assert live.stderr == "", live.stderr
    finals = [e for e in events_of(live.stdout) if e["type"] == "prediction" and e["final"]]
    assert finals and events_of(live.stdout) == events_of(from_file.stdout)
    assert mic.received[:1] == ["describe"]


def test_a_format_change_mid_stream_and_every_width(rng):
    """Each segment is converted as announced, as the same samples through the source boundary would be."""
    segments = [(16000, 2, 1, rng.integers(-20000, 20000, (8000, 1))),
                (22050, 4, 2, rng.integers(-2**30, 2**30, (11025, 2))),
                (8000, 1, 1, rng.integers(-128, 128, (4000, 1))),
                (44100, 3, 2, rng.integers(-2**23, 2**23, (22050, 2)))]
    script, expected = [], []
    for rate, width, channels, ints in segments:
        script += audio_events(ints, rate, width, per_chunk=1000)
        # what the boundary is given for these bytes: int8 for 8-bit, 24-bit in the top of an int32
        as_read = {1: ints.astype(np.int8), 2: ints.astype(np.int16), 3: (ints << 8).astype(np.int32),
                   4: ints.astype(np.int32)}[width]
        converter = BoundaryConverter(rate, channels)
        expected += [converter(as_read), converter.flush()]
    with MicService([script + [AudioStop().event()]]) as mic:
        source = wyoming_source(mic.url, chunk=480)
        assert "16000 Hz, 16-bit, 1 ch" in source.description
        got = np.concatenate(list(source))
    assert np.array_equal(got, np.concatenate(expected)) and source.dropped_samples == 0


# ------------------------------------------------------------------------------------------- reconnecting

def test_a_service_restart_mid_utterance_is_reconnected_and_the_gap_reported(tmp_path):
    speech = read_audio(CLIP)
    split = 2 * SR  # mid-sentence
    first = MicService([audio_events(speech[:split], SR, 2)])
    out = tmp_path / "events.jsonl"
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([*CLI, "listen", "--wyoming", first.url, "--jsonl", str(out)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert first.sent_all.wait(TIMEOUT_S), "the CLI never connected"
        time.sleep(0.2)
        first.stop()  # the service goes away mid-stream, without audio-stop
        down = time.monotonic()
        time.sleep(1.0)
        with MicService([audio_events(speech[split:], SR, 2) + [AudioStop().event()]], port=first.port):
            assert proc.wait(TIMEOUT_S) == 0, (tmp_path / "stderr.txt").read_text()
        back = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0] == f"edgepara: wyoming: lost the connection to {first.url} (closed by the service); reconnecting"
    assert lines[1].startswith(f"edgepara: wyoming: reconnected to {first.url}; "), lines[1]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    overflows = [e for e in events if e["type"] == "overflow"]
    assert len(overflows) == 1, overflows
    gap_s = overflows[0]["dropped_samples"] / SR
    assert 0.9 < gap_s < back - down + 0.5, gap_s  # at least the 1 s the service was down
    assert abs(overflows[0]["t"] - split / SR) < 0.01  # where the audio stopped
    # one utterance across the gap, closed at audio-stop with its final prediction
    assert [e["type"] for e in events if e["type"] in ("speech_start", "speech_end")] == ["speech_start", "speech_end"]
    assert events[-1]["type"] == "prediction" and events[-1]["final"], events[-1]
    assert events[-2]["type"] == "speech_end" and events[-2]["t"] > split / SR + 1.0


def test_a_silent_connection_is_dropped_and_reconnected(rng):
    notes = []
    first = audio_events(rng.integers(-1000, 1000, SR), SR, 2) + [30.0]  # then silence, the socket still open
    second = audio_events(rng.integers(-1000, 1000, SR), SR, 2) + [AudioStop().event()]
    with MicService([first, second]) as mic:
        source = wyoming_source(mic.url, stall_timeout_s=0.5, reconnect_min_s=0.05, notify=notes.append)
        t0 = time.monotonic()
        got = np.concatenate(list(source))
    assert time.monotonic() - t0 < 5 and mic.connections == 2 and source.reconnects == 1
    assert len(got) == 2 * SR and source.dropped_samples > 0.4 * SR, source.dropped_samples
    assert notes[0].endswith("(nothing received for 0.5 s); reconnecting") and "reconnected" in notes[1], notes


def test_sigterm_while_reconnecting_stops_promptly(tmp_path, rng):
    # the first connection hangs up mid-stream, and every one after it at once: the source keeps retrying
    mic = MicService([audio_events(rng.integers(-1000, 1000, SR), SR, 2) + [HANG_UP], [HANG_UP]])
    try:
        with open(tmp_path / "stderr.txt", "w") as err:
            proc = subprocess.Popen([*CLI, "listen", "--wyoming", mic.url, "--jsonl", str(tmp_path / "e.jsonl")],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + TIMEOUT_S
        while "reconnecting" not in (tmp_path / "stderr.txt").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.05)
        time.sleep(0.7)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(15) == 128 + signal.SIGTERM
        assert time.monotonic() - t0 < STOP_TIMEOUT_S, "the stop waited for the reconnection"
    finally:
        mic.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = (tmp_path / "stderr.txt").read_text().splitlines()
    assert lines[-1] == "edgepara: stopped" and not any("Traceback" in line for line in lines), lines


# ------------------------------------------------------------------------------ one line when it cannot work

class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_web_server_is_not_a_wyoming_service():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = run_cli("listen", "--wyoming", f"tcp://127.0.0.1:{server.server_address[1]}", "--no-dashboard")
    finally:
        server.shutdown()
    assert r.returncode == 1, r.stderr
    line = one_error_line(r)
    assert "expected Wyoming events from tcp://127.0.0.1:" in line and "is it a Wyoming microphone service?" in line


def _serve_once(payload: bytes, hold_s: float = 2.0) -> int:
    """A TCP service that sends `payload` to its first client, then keeps the connection open for hold_s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(payload)
                time.sleep(hold_s)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


@pytest.mark.parametrize("payload", [os.urandom(1 << 17), b"\x00" * (1 << 17), b'["not", "an", "event"]\n',
                                     b'{"type": "audio-chunk", "payload_length": -5}\n'],
                         ids=["random bytes", "no line breaks", "json but not an event", "bad length"])
def test_bytes_that_are_not_wyoming_events_are_one_line(payload):
    r = run_cli("listen", "--wyoming", f"tcp://127.0.0.1:{_serve_once(payload)}", "--no-dashboard")
    assert r.returncode == 1, r.stderr
    assert "expected Wyoming events from tcp://127.0.0.1:" in one_error_line(r)


def test_a_refused_connection_is_one_line():
    port = free_port()  # nothing listens there now
    r = run_cli("listen", "--wyoming", f"tcp://127.0.0.1:{port}", "--no-dashboard")
    assert r.returncode == 1, r.stderr
    assert one_error_line(r) == (f"edgepara: error: expected a Wyoming microphone service at tcp://127.0.0.1:{port}, "
                                 "got connection refused")


def test_a_wyoming_service_without_audio_is_one_error():
    with MicService([[]], answer_describe=True) as mic:  # answers describe, streams nothing (not a microphone)
        with pytest.raises(DeviceError) as err:
            wyoming_source(mic.url, start_timeout_s=0.5)
    assert "within 0.5 s of connecting, got only info events" in str(err.value) and "\n" not in str(err.value)
    # and one that hangs up at once
    with MicService([[HANG_UP]]) as mic:
        with pytest.raises(DeviceError, match="got none before the connection ended"):
            wyoming_source(mic.url)


@pytest.mark.parametrize("url", ["http://satellite:10600", "tcp://satellite", "tcp://:10600",
                                 "tcp://satellite:10600/mic", "tcp://satellite:99999"])
def test_bad_urls_are_refused_before_connecting(url):
    with pytest.raises(UsageError, match="tcp://HOST:PORT"):
        wyoming_source(url)


@pytest.mark.parametrize("width", [5, 0])
def test_an_unsupported_sample_width_is_one_line(width):
    """A service announcing 40-bit (or 0-byte) samples: listen stops with one line naming what it supports."""
    start = AudioStart(rate=SR, width=width, channels=1).event()
    chunk = AudioChunk(rate=SR, width=width, channels=1, audio=b"\x00" * 4000).event()
    with MicService([[start, chunk, 1.0]]) as mic:
        r = run_cli("listen", "--wyoming", mic.url, "--no-dashboard", "--jsonl", "-")
    assert r.returncode == 1, r.stderr
    assert f"with a sample width of 1, 2, 3 or 4 bytes, got {width}" in one_error_line(r)
