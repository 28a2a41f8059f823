"""Streaming stages on real speech (committed clips in tests/data, else generated with espeak-ng)."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from edgepara.audio import read_audio
from edgepara.errors import AudioError, DeviceError, EdgeparaError, NoSpeechError
from edgepara.runtime import Embedder
from edgepara.embed import embed_recording
from edgepara.stream.pipeline import Pipeline
from edgepara.stream.ring import RingBuffer
from edgepara.stream.sinks import JsonlSink, OutputClosedError
from edgepara.stream.smoother import ScoredWindow, Smoother
from edgepara.stream.source import (MicrophoneSource, StreamingResampler, file_source, iterable_source,
                                    stdin_source)
from edgepara.stream.vad import SpeechAudio, VadGate
from edgepara.stream.windower import Windower, offline_windows, window_starts
from edgepara.types import SpeechEnd, SpeechStart, Window

DATA = Path(__file__).parent / "data"
SR = 16000
GAP_S = 1.5
SENTENCES = ("The quick brown fox jumps over the lazy dog near the river bank.",
             "I am so happy to see you again, it has been a very long time.")


def speech_clips(tmp_dir: Path) -> list[np.ndarray]:
    """Two speech clips, int16 16 kHz: committed ones if present, else espeak-ng's."""
    clips = sorted((read_audio(p) for p in sorted(DATA.glob("*.flac"))), key=len, reverse=True)[:2]
    if clips:
        return clips if len(clips) == 2 else clips * 2
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs speech: add tests/data/*.flac clips or install espeak-ng (apt install espeak-ng)")
    clips = []
    for i, text in enumerate(SENTENCES):
        wav = tmp_dir / f"espeak{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True, timeout=30)
        clips.append(read_audio(wav))
    return clips


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.int16)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two utterances separated by a clear gap, as a wav file and as samples, with the gap's position."""
    tmp = tmp_path_factory.mktemp("speech")
    a, b = speech_clips(tmp)
    audio = np.concatenate([silence(0.5), a, silence(GAP_S), b, silence(0.8)])
    path = tmp / "two_utterances.wav"
    sf.write(path, audio, SR, subtype="PCM_16")
    gap_middle = (0.5 * SR + len(a) + GAP_S * SR / 2) / SR
    return {"path": path, "audio": audio, "gap_middle": gap_middle, "duration": len(audio) / SR}


@pytest.fixture(scope="module")
def embedder():
    return Embedder("edgepara-small")


def comparable(events) -> list[dict]:
    """Events without the embedder's timing, which varies from run to run."""
    from edgepara.stream.sinks import event_to_json

    return [{k: v for k, v in event_to_json(e).items() if k != "latency_ms"} for e in events]


def assert_one_line(err: Exception) -> None:
    message = str(err)
    assert "\n" not in message and "expected" in message, message


# ------------------------------------------------------------------------------------------- pipeline

def test_chunk_size_does_not_change_events(speech, embedder):
    pipeline = Pipeline(embedder=embedder)
    runs = {}
    for chunk in (160, 480, 4000):
        pipeline.reset()
        runs[chunk] = comparable(pipeline.run(file_source(speech["path"], chunk=chunk)))
    assert runs[160] == runs[480] == runs[4000]
    types = [e["type"] for e in runs[480]]
    assert "speech_start" in types and "speech_end" in types
    assert any(e["type"] == "prediction" and e["final"] for e in runs[480])


def test_vad_separates_utterances_at_the_gap(speech, embedder):
    events = list(Pipeline(embedder=embedder).run(file_source(speech["path"])))
    starts = [e for e in events if isinstance(e, SpeechStart)]
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert len(starts) == len(ends) >= 2
    assert [e.utterance for e in starts] == [e.utterance for e in ends] == list(range(len(starts)))
    for start, end in zip(starts, ends):
        assert start.t < end.t <= speech["duration"]
        assert not start.t < speech["gap_middle"] < end.t, "an utterance spans the silent gap"
    assert starts[0].t < speech["gap_middle"] < starts[-1].t


def test_min_speech_ms_drops_short_utterances_without_events(speech):
    audio = speech["audio"]
    assert any(isinstance(e, SpeechStart) for e in VadGate().process(audio))
    strict = VadGate(min_speech_ms=int(speech["duration"] * 1000) + 1000)
    assert strict.process(audio) + strict.flush() == []


def test_every_utterance_gets_one_final_prediction_per_head(speech, embedder):
    events = list(Pipeline(embedder=embedder).run(file_source(speech["path"], chunk=4000)))
    utterances = [e.utterance for e in events if isinstance(e, SpeechEnd)]
    finals = [e for e in events if e.type == "prediction" and e.final]
    assert sorted((e.utterance, e.head) for e in finals) == [(u, "emotion") for u in utterances]
    for e in finals:
        assert abs(sum(e.probs.values()) - 1.0) < 1e-4 and 0.0 <= e.confidence <= 1.0


def test_stream_end_closes_an_open_utterance(speech, embedder):
    cut = speech["audio"][: int(speech["gap_middle"] * SR) - int(0.9 * SR)]  # stop mid-speech
    pipeline = Pipeline(embedder=embedder)
    events = list(pipeline.run(iterable_source([cut])))
    assert isinstance(events[0], SpeechStart)
    assert any(isinstance(e, SpeechEnd) for e in events)
    assert events[-1].type == "prediction" and events[-1].final
    assert pipeline.stats.utterances == 1 and pipeline.stats.windows_embedded >= 1
    assert pipeline.stats.audio_seconds == pytest.approx(len(cut) / SR)


def test_head_with_label_for_picks_its_own_label(speech, embedder):
    class Speaker:  # what the speaker-identification head looks like to the pipeline
        name, classes = "speaker", ["alice", "bob"]

        def probabilities(self, embedding):
            return {"alice": 0.55, "bob": 0.45}

        def label_for(self, probs):
            return "unknown", 0.2

    seen = []
    pipeline = Pipeline(embedder=embedder, heads=(Speaker(),), callbacks=[seen.append])
    events = list(pipeline.run(file_source(speech["path"], chunk=4000)))
    predictions = [e for e in events if e.type == "prediction"]
    assert predictions and all(e.label == "unknown" and e.confidence == 0.2 for e in predictions)
    assert seen == events


def test_smoother_ema_mean_and_uncertain():
    smoother = Smoother(smoothing=0.5, uncertain_below=0.5)
    window = Window(t_start=0.0, t_end=1.0, utterance=0, samples=np.zeros(4, np.int16))
    smoother.process(SpeechStart(t=0.0, utterance=0))
    smoother.process(ScoredWindow(window, {"h": {"a": 0.9, "b": 0.1}}))
    live = smoother.process(ScoredWindow(window, {"h": {"a": 0.1, "b": 0.9}}))[0]
    assert live.probs == pytest.approx({"a": 0.5, "b": 0.5}) and not live.final
    smoother.process(ScoredWindow(window, {"h": {"a": 0.2, "b": 0.8}}))
    final = smoother.process(SpeechEnd(t=1.0, utterance=0, duration=1.0))[0]
    assert final.final and final.probs == pytest.approx({"a": 0.4, "b": 0.6})  # mean, not the EMA
    assert final.label == "b" and final.confidence == pytest.approx(0.6)
    smoother.process(SpeechStart(t=2.0, utterance=1))
    smoother.process(ScoredWindow(window, {"h": {"a": 0.48, "b": 0.49, "c": 0.03}}))
    assert smoother.process(SpeechEnd(t=3.0, utterance=1, duration=1.0))[0].label == "uncertain"


def test_utterance_embedding_matches_live_windows(speech, embedder):
    audio = speech["audio"]
    emb, windows, _, _ = embed_recording(embedder, audio)
    assert emb.shape == (embedder.dim,) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
    vad, windower, live = VadGate(), Windower(embedder.window, embedder.hop, max_utterance_s=None), []
    for i in range(0, len(audio), 480):
        for item in vad.process(audio[i : i + 480]):
            live += [w.samples for w in windower.process(item) if isinstance(w, Window)]
    live += [w.samples for item in vad.flush() for w in windower.process(item) if isinstance(w, Window)]
    offline = [w.samples for w in windows]
    assert len(live) == len(offline) and all(np.array_equal(a, b) for a, b in zip(live, offline))


def test_no_speech_is_a_one_line_error(embedder):
    with pytest.raises(NoSpeechError, match=r"expected speech, found none in 1\.5 s of audio") as err:
        embed_recording(embedder, silence(1.5))
    assert_one_line(err.value)


# --------------------------------------------------------------------------------------------- stages

def test_ring_overflow_drops_oldest_and_counts():
    ring = RingBuffer(100)
    data = np.arange(250, dtype=np.int16)
    assert ring.write(data[:60]) == 0
    assert ring.write(data[60:120]) == 20
    assert ring.dropped_samples == 20 and len(ring) == 100
    assert np.array_equal(ring.read()[:, 0], data[20:120])
    assert ring.write(data) == 150  # larger than the ring: only the newest 100 survive
    assert ring.dropped_samples == 170
    assert np.array_equal(ring.read(max_frames=30)[:, 0], data[150:180])
    assert np.array_equal(ring.read()[:, 0], data[180:250])
    assert ring.wait_read(1, timeout=0.01) is None


def test_ring_one_producer_one_consumer_threads():
    ring = RingBuffer(256)
    blocks, block = 400, 32
    received = []

    def produce():
        for i in range(blocks):
            ring.write(np.arange(i * block, (i + 1) * block, dtype=np.int16)[:, None])
        ring.wake()

    producer = threading.Thread(target=produce)
    producer.start()
    while producer.is_alive() or len(ring):
        got = ring.wait_read(1, timeout=0.05)
        if got is not None:
            received.append(got[:, 0])
    producer.join()
    got = np.concatenate(received)
    assert len(got) + ring.dropped_samples == blocks * block
    assert np.all(np.diff(got) > 0)  # in order, nothing read twice


def test_windower_short_utterance_gets_one_padded_final_window():
    windower = Windower(window=16000, hop=8000)
    audio = np.arange(1, 6401, dtype=np.int16)
    out = windower.process(SpeechStart(t=1.0, utterance=7))
    out += windower.process(SpeechAudio(utterance=7, t_start=1.0, samples=audio))
    out += windower.process(SpeechEnd(t=1.4, utterance=7, duration=0.4))
    windows = [w for w in out if isinstance(w, Window)]
    assert len(windows) == 1 and windows[0].final
    w = windows[0]
    assert len(w.samples) == 16000 and np.array_equal(w.samples[:6400], audio) and not w.samples[6400:].any()
    assert (w.t_start, w.t_end) == pytest.approx((1.0, 1.4))
    assert [type(e).__name__ for e in out] == ["SpeechStart", "Window", "SpeechEnd"]
    assert out[-1].duration == pytest.approx(0.4) and out[0].utterance == out[-1].utterance == 0


@pytest.mark.parametrize("n", [16000, 16001, 23999, 24000, 37000, 40000])
def test_windower_matches_window_starts(n):
    rng = np.random.default_rng(n)
    audio = rng.integers(-3000, 3000, n).astype(np.int16)
    windower = Windower(window=16000, hop=8000, max_utterance_s=None)
    out = windower.process(SpeechStart(t=0.0, utterance=0))
    i = 0
    while i < n:
        step = int(rng.integers(1, 5000))
        out += windower.process(SpeechAudio(0, i / SR, audio[i : i + step]))
        i += step
    out += windower.process(SpeechEnd(t=n / SR, utterance=0, duration=n / SR))
    windows = [w for w in out if isinstance(w, Window)]
    assert [round(w.t_start * SR) for w in windows] == window_starts(n, 16000, 8000)
    assert np.array_equal(np.stack([w.samples for w in windows]), offline_windows(audio, 16000, 8000))


def test_windower_splits_long_speech_at_max_utterance():
    windower = Windower(window=16000, hop=8000, max_utterance_s=2.0)
    out = windower.process(SpeechStart(t=0.0, utterance=0))
    for i in range(0, 5 * SR, 3000):
        out += windower.process(SpeechAudio(0, i / SR, np.ones(min(3000, 5 * SR - i), np.int16)))
    out += windower.process(SpeechEnd(t=5.0, utterance=0, duration=5.0))
    ends = [e for e in out if isinstance(e, SpeechEnd)]
    starts = [e for e in out if isinstance(e, SpeechStart)]
    assert [e.utterance for e in starts] == [e.utterance for e in ends] == [0, 1, 2]
    assert [e.duration for e in ends] == pytest.approx([2.0, 2.0, 1.0])
    assert [e.t for e in starts] == pytest.approx([0.0, 2.0, 4.0])
    for u in range(3):
        assert any(isinstance(w, Window) and w.utterance == u for w in out)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_resampler_chunked_equals_whole(rate):
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate) * 0.2
    resampler = StreamingResampler(rate, SR)
    whole = np.concatenate([resampler.process(x), resampler.flush()])
    pieces, i = [], 0
    while i < len(x):
        step = int(rng.integers(1, 2500))
        pieces.append(resampler.process(x[i : i + step]))
        i += step
    chunked = np.concatenate(pieces + [resampler.flush()])
    assert len(whole) == len(chunked) == SR
    np.testing.assert_allclose(chunked, whole, atol=1e-12)
    np.testing.assert_allclose(whole, resample_poly(x, resampler.up, resampler.down), atol=1e-9)


def test_stdin_and_iterable_sources_convert_at_the_boundary():
    rng = np.random.default_rng(1)
    stereo = (rng.standard_normal((48000, 2)) * 3000).astype(np.int16)
    from_stdin = np.concatenate(list(stdin_source(48000, channels=2, chunk=333, stream=io.BytesIO(stereo.tobytes()))))
    from_blocks = np.concatenate(list(iterable_source(np.array_split(stereo, 7), rate=48000, channels=2)))
    assert from_stdin.dtype == np.int16 and len(from_stdin) == 16000
    assert np.array_equal(from_stdin, from_blocks)
    mono16k = stereo[:, 0].copy()
    assert np.array_equal(np.concatenate(list(iterable_source([mono16k[:100], mono16k[100:]]))), mono16k)


def test_jsonl_lines_parse(speech, embedder, tmp_path):
    out = tmp_path / "events.jsonl"
    with JsonlSink(out) as sink:
        events = list(Pipeline(embedder=embedder, callbacks=[sink]).run(file_source(speech["path"], chunk=4000)))
    lines = out.read_text().splitlines()
    assert len(lines) == len(events) > 0
    records = [json.loads(line) for line in lines]
    predictions = [r for r in records if r["type"] == "prediction"]
    assert predictions
    for r in predictions:
        assert {"type", "t", "head", "label", "probs", "final", "confidence", "utterance"} <= set(r)
    assert {r["type"] for r in records} >= {"speech_start", "speech_end", "prediction"}


def test_jsonl_closed_stdout_pipe_ends_quietly():
    child = (
        "import sys, time\n"
        "from edgepara.stream.sinks import JsonlSink, OutputClosedError\n"
        "from edgepara.types import SpeechStart\n"
        "sink = JsonlSink('-')\n"
        "deadline = time.monotonic() + 20\n"
        "try:\n"
        "    while time.monotonic() < deadline:\n"
        "        sink(SpeechStart(t=0.0, utterance=0))\n"
        "except OutputClosedError as err:\n"
        "    sys.exit(err.exit_code)\n"
        "sys.exit(5)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(100)  # it is writing; now go away like `head` does
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == OutputClosedError.exit_code, stderr.decode()
    assert stderr == b""


# ----------------------------------------------------------------------------------------- bad inputs

def test_bad_inputs_raise_one_line_errors(tmp_path, embedder):
    cases = [
        (AudioError, lambda: VadGate(sample_rate=8000)),
        (EdgeparaError, lambda: VadGate(aggressiveness=5)),
        (EdgeparaError, lambda: VadGate(frame_ms=25)),
        (AudioError, lambda: VadGate().process(np.zeros(480, np.float32))),
        (AudioError, lambda: Pipeline(embedder=embedder).process(np.zeros((480, 2), np.int16))),
        (AudioError, lambda: file_source(tmp_path / "missing.wav")),
        (AudioError, lambda: stdin_source(0)),
        (AudioError, lambda: file_source(tmp_path, chunk=480)),
        (AudioError, lambda: file_source(tmp_path / "x.wav", chunk=0)),
        (EdgeparaError, lambda: Pipeline(embedder=embedder, max_utterance_s=0.5)),
        (EdgeparaError, lambda: Pipeline(embedder=embedder, heads=(42,))),
    ]
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.int16), SR)
    zero_bytes = tmp_path / "zero.flac"
    zero_bytes.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)))
    cases += [(AudioError, lambda p=p: file_source(p)) for p in (empty, zero_bytes, corrupt)]
    for error, call in cases:
        with pytest.raises(error) as err:
            call()
        assert_one_line(err.value)


def test_unknown_microphone_is_a_one_line_device_error():
    with pytest.raises(DeviceError) as err:
        MicrophoneSource(device="no-such-device-edgepara")
    assert_one_line(err.value)
