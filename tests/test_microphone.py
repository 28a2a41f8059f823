"""The real audio-device path: PulseAudio null sink -> its monitor source -> ALSA 'pulse' device ->
PortAudio -> MicrophoneSource -> Pipeline. No mocks: paplay plays speech into the sink while we record.

Needs pulseaudio, pulseaudio-utils (pactl, paplay), libasound2-plugins (ALSA's 'pulse' device) and
libportaudio2. Skipped only when PulseAudio cannot start.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara.audio import read_audio
from edgepara.errors import DeviceError
from edgepara.stream.pipeline import Pipeline
from edgepara.stream.source import MicrophoneSource, list_input_devices
from edgepara.types import Overflow, SpeechEnd, SpeechStart

DATA = Path(__file__).parent / "data"
SR = 16000
SINK = "vmic"


def speech_clip(tmp_dir: Path) -> np.ndarray:
    clips = [read_audio(p) for p in sorted(DATA.glob("*.flac"))]
    if clips:
        return max(clips, key=len)
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs speech: add tests/data/*.flac clips or install espeak-ng (apt install espeak-ng)")
    wav = tmp_dir / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "The quick brown fox jumps over the lazy dog near the river."],
                   check=True, capture_output=True, timeout=30)
    return read_audio(wav)


def pactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)


def wait_for_server(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pactl("info").returncode == 0:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory):
    """A PulseAudio null sink at 16 kHz mono whose monitor is the default source; yields a clip to play."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"PulseAudio cannot start: {', '.join(missing)} not found "
                    f"(apt install pulseaudio pulseaudio-utils)")
    tmp = tmp_path_factory.mktemp("vmic")
    server = None
    already_running = subprocess.run(["pulseaudio", "--check"], capture_output=True).returncode == 0
    if not already_running:  # (`pulseaudio --check`, unlike pactl, never autospawns a server)
        # In the foreground (not --daemonize) so we hold its pid and stop exactly this process. As root it
        # warns "not intended to be run as root" but works as a per-user server (checked on Debian 12);
        # --system would need clients in the pulse-access group and a fixed socket.
        with open(tmp / "pulseaudio.log", "w") as log:
            server = subprocess.Popen(["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--log-target=stderr"],
                                      stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        if not wait_for_server(10):
            server.terminate()
            server.wait(5)
            reason = (tmp / "pulseaudio.log").read_text().strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"PulseAudio cannot start: {reason[0]}")
    loaded = pactl("load-module", "module-null-sink", f"sink_name={SINK}", "rate=16000", "channels=1")
    assert loaded.returncode == 0, f"pactl load-module module-null-sink failed: {loaded.stderr.strip()}"
    previous_source = pactl("get-default-source").stdout.strip()
    pactl("set-default-source", f"{SINK}.monitor")
    clip = speech_clip(tmp)
    wav = tmp / "clip.wav"
    sf.write(wav, np.concatenate([clip, np.zeros(SR // 2, np.int16)]), SR, subtype="PCM_16")
    try:
        yield {"wav": wav, "clip": clip, "server": server}
    finally:
        if server is None or server.poll() is None:  # a dead server has nothing left to unload
            pactl("unload-module", loaded.stdout.strip())
        if server is not None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        elif previous_source:
            pactl("set-default-source", previous_source)


def play(wav: Path) -> subprocess.Popen:
    return subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop(player: subprocess.Popen) -> None:
    if player.poll() is None:
        player.terminate()
    player.wait(5)


def test_sounddevice_sees_the_pulse_device(virtual_mic):
    names = [d.name for d in list_input_devices(rescan=True)]
    assert "pulse" in names, (
        f"PortAudio lists {names}: ALSA's 'pulse' device comes from libasound2-plugins "
        f"(/usr/share/alsa/alsa.conf.d/50-pulseaudio.conf); install it and restart the program")


def test_pipeline_hears_speech_from_the_microphone(virtual_mic):
    pipeline = Pipeline()
    events = []
    with MicrophoneSource(device="pulse", chunk_ms=30) as mic:
        assert mic.device.name == "pulse" and "pulse" in mic.description
        assert mic.wait_until_streaming(5.0), "no audio callback from the 'pulse' device within 5 s"
        player = play(virtual_mic["wav"])
        deadline = time.monotonic() + len(virtual_mic["clip"]) / SR + 10

        def until_deadline():
            for chunk in mic:
                yield chunk
                if time.monotonic() > deadline:
                    return

        try:
            for event in pipeline.run(until_deadline()):
                events.append(event)
                if event.type == "prediction" and event.final:
                    break
        finally:
            stop(player)
    kinds = [(type(e).__name__, round(e.t, 2)) for e in events]
    assert any(isinstance(e, SpeechStart) for e in events), f"no speech heard; events: {kinds}"
    assert any(isinstance(e, SpeechEnd) for e in events), f"speech never ended; events: {kinds}"
    assert events[-1].type == "prediction" and events[-1].final, f"no final prediction; events: {kinds}"
    assert pipeline.stats.windows_embedded >= 1 and pipeline.stats.utterances >= 1, (kinds, pipeline.stats)


def test_microphone_resamples_a_48k_device_to_16k(virtual_mic):
    clip = virtual_mic["clip"]
    captured = []
    with MicrophoneSource(device="pulse", chunk_ms=20, device_rate=48000) as mic:
        assert mic.device_rate == 48000
        assert mic.wait_until_streaming(5.0), "no audio callback from the 'pulse' device within 5 s"
        player = play(virtual_mic["wav"])
        deadline = time.monotonic() + len(clip) / SR + 3
        try:
            for chunk in mic:
                assert chunk.dtype == np.int16 and chunk.ndim == 1
                captured.append(chunk)
                if player.poll() is not None and time.monotonic() > deadline - 2 or time.monotonic() > deadline:
                    break
        finally:
            stop(player)
    audio = np.concatenate(captured).astype(np.float64)
    ref = clip.astype(np.float64)
    assert len(audio) > len(ref), f"captured {len(audio) / SR:.2f} s, the clip is {len(ref) / SR:.2f} s"
    n = 1 << int(np.ceil(np.log2(len(audio) + len(ref))))
    xcorr = np.fft.irfft(np.fft.rfft(audio, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(xcorr[: len(audio)]))
    aligned = audio[lag : lag + len(ref)]
    corr = np.corrcoef(aligned, ref[: len(aligned)])[0, 1]
    assert corr > 0.9, f"recorded audio correlates {corr:.3f} with the clip (lag {lag / SR:.3f} s)"


def _lines(stream) -> queue.Queue:
    """A thread moves a child's output lines into a queue, so the test can wait with a timeout."""
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_event(lines: queue.Queue, kind: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            return None
        event = json.loads(line)
        if event["type"] == kind:
            return event
    return None


def test_listen_survives_a_suspended_process(virtual_mic):
    """`edgepara listen` stopped (SIGSTOP) for 6 s, as a suspended shell job or a board too busy to schedule it,
    goes on hearing speech after SIGCONT instead of ending with 'device unplugged'. PulseAudio keeps what was
    recorded meanwhile, so nothing is lost; any audio that were lost would come as an overflow event."""
    child = subprocess.Popen([sys.executable, "-m", "edgepara.cli", "listen", "--device", "pulse", "--jsonl", "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines = _lines(child.stdout)
    players = []
    try:
        players.append(play(virtual_mic["wav"]))
        first = _next_event(lines, "speech_start", 30)
        assert first is not None, f"listen heard no speech before the stall: {child.poll()}"
        stop(players[-1])
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(6.0)
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(1.0)
        assert child.poll() is None, f"listen ended after the stall: {child.stderr.read().strip()}"
        players.append(play(virtual_mic["wav"]))
        later = _next_event(lines, "speech_start", 30)
        assert later is not None and later["utterance"] > first["utterance"], \
            f"no speech heard after the stall (still running: {child.poll() is None})"
    finally:
        for player in players:
            stop(player)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
    errors = child.stderr.read()
    assert "expected audio" not in errors, errors


def test_a_blocked_consumer_reports_the_dropped_audio(virtual_mic):
    """The consumer thread blocked for 3 s (here: in a pipeline callback) behind a 1 s ring: about 2 s are
    dropped, reported as an Overflow event with their count, and the stream goes on."""
    started, blocked = time.monotonic(), []

    def slow_consumer(event) -> None:
        if not blocked and time.monotonic() - started > 1.0:
            blocked.append(True)
            time.sleep(3.0)

    with MicrophoneSource(device="pulse", chunk_ms=30, ring_seconds=1.0) as mic:
        assert mic.wait_until_streaming(5.0), "no audio callback from the 'pulse' device within 5 s"
        pipeline = Pipeline(callbacks=[slow_consumer])
        player = play(virtual_mic["wav"])  # speech, so that events (and the slow callback) happen
        try:
            events = list(pipeline.run(ForSeconds(mic, 9.0)))
        finally:
            stop(player)
    assert blocked, f"no event reached the callback: {[type(e).__name__ for e in events]}"
    overflows = [e for e in events if isinstance(e, Overflow)]
    dropped = sum(e.dropped_samples for e in overflows)
    assert overflows and 1.5 * SR <= dropped <= 2.6 * SR, (dropped / SR, overflows)
    assert pipeline.stats.dropped_samples == dropped


class ForSeconds:
    """A source's chunks for a while; passes on its dropped_samples, which the pipeline turns into Overflow."""

    def __init__(self, source, seconds: float):
        self.source, self.seconds = source, seconds

    @property
    def dropped_samples(self) -> int:
        return self.source.dropped_samples

    def __iter__(self):
        deadline = time.monotonic() + self.seconds
        for chunk in self.source:
            yield chunk
            if time.monotonic() > deadline:
                return


def test_a_sound_server_source_is_listed_and_picked_by_name(virtual_mic, tmp_path):
    """`edgepara devices` lists the server's sources; `listen --device pulse:NAME` records from that source,
    not the default one: speech plays into a second null sink while the default source stays silent."""
    other = "edgepara_test_other"
    loaded = pactl("load-module", "module-null-sink", f"sink_name={other}", "rate=16000", "channels=1")
    assert loaded.returncode == 0, loaded.stderr
    try:
        devices = subprocess.run([sys.executable, "-m", "edgepara.cli", "devices"], capture_output=True, text=True,
                                 timeout=30)
        assert devices.returncode == 0, devices.stderr
        assert f"pulse:{other}.monitor" in devices.stdout and "monitor of an output" in devices.stdout

        listen = subprocess.Popen([sys.executable, "-m", "edgepara.cli", "listen", "--device", f"pulse:{other}.monitor",
                                   "--jsonl", "-", "--model", "edgepara-tiny"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(3)  # model loaded and the stream running
        player = subprocess.Popen(["paplay", f"--device={other}", str(virtual_mic["wav"])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        player.wait(30)
        time.sleep(1.5)
        listen.send_signal(signal.SIGINT)
        out, err = listen.communicate(timeout=30)
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert any(e["type"] == "speech_start" for e in events), err
        assert any(e["type"] == "prediction" and e["final"] for e in events), err

        bad = subprocess.run([sys.executable, "-m", "edgepara.cli", "listen", "--device", "pulse:no_such_source",
                              "--jsonl", "-"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 1 and "no_such_source" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    finally:
        pactl("unload-module", loaded.stdout.strip())


def test_device_failing_mid_stream_is_a_one_line_device_error(virtual_mic):
    """Runs last: it stops the server (only one this module started) while a stream is open."""
    server = virtual_mic["server"]
    if server is None:
        pytest.skip("PulseAudio was already running here; this test only stops a server it started itself")
    with pytest.raises(DeviceError) as err:
        with MicrophoneSource(device="pulse", chunk_ms=30, stall_timeout_s=2.0) as mic:
            assert mic.wait_until_streaming(5.0), "no audio callback from the 'pulse' device within 5 s"
            for i, _ in enumerate(mic):
                if i == 3:
                    server.kill()
                    server.wait(5)
                assert i < 500, "the stream went on after its server died"
    message = str(err.value)
    assert "\n" not in message and message.startswith("expected audio from 'pulse'"), message
