"""Files and stdin are decoded and resampled block by block: the same samples and events as reading whole,
memory that does not grow with the length, and WAV/FLAC streams recognised on stdin.

Audio is generated from the committed RAVDESS clip (resampled to 44.1 kHz stereo, PCM_24 FLAC) so that
resampling and down-mixing are both exercised; the reference is the whole-file path the project used before
(soundfile.read of the whole file, channel mean, scipy's resample_poly on float32)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from edgepara.audio import audio_file_blocks, read_audio
from edgepara.embed import embed_files, embed_recording, embed_stream, recording_windows
from edgepara.errors import AudioError
from edgepara.runtime import Embedder
from edgepara.stream.microphone import ArrivalGaps
from edgepara.stream.pipeline import Pipeline
from edgepara.resample import StreamingResampler, lowpass_taps
from edgepara.stream.sinks import event_to_json
from edgepara.stream.source import ForwardReader, file_source, iterable_source, rechunk, stdin_source

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"
SR = 16000
CLI = [sys.executable, "-m", "edgepara.cli"]


def clip_at_44k_stereo(seconds_of_silence: float = 0.7) -> np.ndarray:
    """(n, 2) float32 at 44.1 kHz: the clip, then silence; channel 2 is quieter and carries a little noise."""
    speech = read_audio(CLIP).astype(np.float32) / 32768.0
    x = resample_poly(speech, 441, 160)
    x = np.concatenate([x, np.zeros(int(seconds_of_silence * 44100))])
    noise = 0.003 * np.random.default_rng(0).standard_normal(len(x))
    return np.stack([x, 0.5 * x + noise], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def stereo_flac(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("streaming") / "clip44k_stereo.flac"
    sf.write(path, clip_at_44k_stereo(), 44100, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def embedder():
    return Embedder("edgepara-small")


def whole_file_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The pre-streaming path: (float32 16 kHz samples, int16 samples)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    resampled = resample_poly(data.mean(axis=1), 16000, rate).astype(np.float32)
    return resampled, (np.clip(resampled, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)


def comparable(events) -> list[dict]:
    return [{k: v for k, v in event_to_json(e).items() if k != "latency_ms"} for e in events]


# ------------------------------------------------------------------------------------------ same samples

def test_filter_is_the_one_resample_poly_designs():
    from scipy.signal import firwin

    for up, down in [(160, 441), (1, 3), (2, 1), (160, 147), (1, 2), (1, 6), (8, 11)]:
        max_rate = max(up, down)
        reference = firwin(20 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
        np.testing.assert_allclose(lowpass_taps(up, down), reference, rtol=0, atol=1e-15)
        # rounded to float32 (resample_poly's taps for float32 audio) they are the same numbers
        assert np.array_equal(lowpass_taps(up, down).astype(np.float32), reference.astype(np.float32))


def test_streamed_resampling_matches_the_whole_file_path(stereo_flac):
    data, _ = sf.read(str(stereo_flac), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    reference_float, reference_int16 = whole_file_reference(stereo_flac)
    for block in (1, 333, 4096, 16384, len(mono)):
        resampler = StreamingResampler(44100, SR, dtype=np.float32)
        # block 1: sample by sample through the filter's start-up and well past its length, then in one go
        # (a whole file one sample at a time only repeats the same steps, for a minute and a half)
        starts = list(range(0, 3000, block)) + list(range(3000, len(mono), max(block, 4096)))
        pieces = [resampler.process(mono[i:j]) for i, j in zip(starts, starts[1:] + [len(mono)])]
        streamed = np.concatenate(pieces + [resampler.flush()])
        # the same products summed in the same order as upfirdn: bit for bit, whatever the block size
        assert streamed.dtype == np.float32 and np.array_equal(streamed, reference_float), block
    # in float64 the result is resample_poly's float64 one within rounding
    resampler = StreamingResampler(44100, SR)
    streamed64 = np.concatenate([resampler.process(mono[:5000]), resampler.process(mono[5000:]), resampler.flush()])
    reference64 = resample_poly(mono.astype(np.float64), 160, 441)
    assert np.max(np.abs(streamed64 - reference64)) <= 1e-6 * np.max(np.abs(reference64))
    # int16 through the file reader, at several block sizes: the whole-file path's samples exactly
    for block in (37, 999, 4096, 10**7):  # block 1 is the resampler's case above; here it only costs a minute
        samples = np.concatenate(list(audio_file_blocks(stereo_flac, block)))
        assert np.array_equal(samples, reference_int16), f"block size {block} changed the samples"
    assert np.array_equal(read_audio(stereo_flac), reference_int16)
    assert np.array_equal(read_audio(stereo_flac, block_frames=500), reference_int16)


def test_file_source_gives_exact_chunks_of_the_same_samples(stereo_flac):
    whole = read_audio(stereo_flac)
    for chunk in (160, 480, 4000):
        pieces = list(file_source(stereo_flac, chunk=chunk))
        assert all(len(p) == chunk for p in pieces[:-1]) and 0 < len(pieces[-1]) <= chunk
        assert np.array_equal(np.concatenate(pieces), whole)
    parts = [np.arange(n, dtype=np.int16) for n in (5, 0, 17, 3, 40)]
    assert [len(p) for p in rechunk(parts, 10)] == [10] * 6 + [5]
    assert np.array_equal(np.concatenate(list(rechunk(parts, 10))), np.concatenate(parts))


def test_listen_events_are_those_of_the_whole_file_path(stereo_flac, embedder, tmp_path):
    _, reference_int16 = whole_file_reference(stereo_flac)
    expected = comparable(Pipeline(embedder=embedder).run(iterable_source([reference_int16])))
    assert any(e["type"] == "prediction" for e in expected), "the clip should give predictions"
    for chunk in (160, 4000):
        assert comparable(Pipeline(embedder=embedder).run(file_source(stereo_flac, chunk=chunk))) == expected
    out = tmp_path / "events.jsonl"
    run = subprocess.run([*CLI, "listen", "--file", str(stereo_flac), "--model", "edgepara-small",
                          "--jsonl", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    from_cli = [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in out.read_text().splitlines()]
    assert from_cli == expected


# ------------------------------------------------------------------------------------------- embeddings

def test_streamed_embeddings_equal_the_whole_recording(stereo_flac, embedder):
    _, reference_int16 = whole_file_reference(stereo_flac)
    for use_vad in (True, False):
        mean, windows, embs, seconds = embed_recording(embedder, reference_int16, use_vad=use_vad)
        found = embed_stream(embedder, audio_file_blocks(stereo_flac, 777), use_vad=use_vad, keep_windows=True)
        assert found.n_windows == len(windows)
        np.testing.assert_allclose(found.window_embeddings, embs, rtol=0, atol=0)
        np.testing.assert_allclose(found.mean, mean, rtol=1e-6, atol=1e-6 * np.max(np.abs(mean)))
        assert found.window_t_start == pytest.approx([w.t_start for w in windows])
        if not use_vad:  # offline windows are full length, even the padded ones
            assert found.window_t_end == pytest.approx([w.t_end for w in windows])
        assert found.speech_seconds == pytest.approx(seconds)
    result = embed_files([stereo_flac, CLIP], embedder=embedder, per_window=True)
    assert result.embeddings.shape == (2, embedder.dim)
    np.testing.assert_allclose(result.embeddings[1], embed_recording(embedder, read_audio(CLIP))[0], rtol=1e-6, atol=1e-7)
    assert set(result.window_file_index) == {0, 1}


def test_no_vad_stream_on_audio_shorter_than_a_window(embedder):
    short = read_audio(CLIP)[SR : SR + embedder.window // 3]
    windows, _ = recording_windows(short, embedder.window, embedder.hop, use_vad=False)
    found = embed_stream(embedder, [short[:100], short[100:]], use_vad=False, keep_windows=True)
    assert found.n_windows == len(windows) == 1
    assert found.window_t_end == pytest.approx([windows[0].t_end])
    np.testing.assert_allclose(found.window_embeddings[0], embedder.embed(windows[0].samples))


# ---------------------------------------------------------------------------------------------- memory

def _traced_peak(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_file_length(tmp_path, embedder):
    """numpy reports its buffers to tracemalloc: the peak of reading/embedding a 40 s and a 4 s file agree."""
    stereo = clip_at_44k_stereo(1.0)
    short, long = tmp_path / "short.flac", tmp_path / "long.flac"
    sf.write(short, stereo, 44100, subtype="PCM_16")
    with sf.SoundFile(long, "w", 44100, 2, subtype="PCM_16") as f:
        for _ in range(8):
            f.write(stereo)  # written piece by piece: the test itself never holds the long file
    assert sf.info(str(long)).duration > 35

    def drain(path):
        for _ in file_source(path):
            pass

    peaks = {p: _traced_peak(lambda p=p: drain(p)) for p in (short, long)}
    assert peaks[long] < 8_000_000 and peaks[long] < 1.2 * peaks[short] + 500_000, peaks
    embed_peaks = {p: _traced_peak(lambda p=p: embed_files([p], embedder=embedder)) for p in (short, long)}
    assert embed_peaks[long] < 1.2 * embed_peaks[short] + 500_000, embed_peaks
    # whole-file reading of the long file, for scale: its output alone is 1.3 MB of int16 per 40 s
    assert _traced_peak(lambda: read_audio(long)) > 1_000_000


# ------------------------------------------------------------------------------------------------ stdin

def _encoded(fmt: str, subtype: str, audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _through_a_pipe(payload: bytes, chunk: int = 480) -> np.ndarray:
    """payload written into a real OS pipe by another thread; stdin_source reads the other end."""
    read_fd, write_fd = os.pipe()

    def writer():
        try:
            with os.fdopen(write_fd, "wb") as w:
                for i in range(0, len(payload), 3001):  # odd-sized writes: headers and frames arrive split
                    w.write(payload[i : i + 3001])
        except BrokenPipeError:  # the reader refused the stream and closed its end
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with open(read_fd, "rb", buffering=0) as r:
        assert not r.seekable()
        out = list(stdin_source(16000, chunk=chunk, stream=r))
    thread.join(10)
    return np.concatenate(out)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24")])
def test_audio_files_on_a_piped_stdin_are_decoded(stereo_flac, fmt, subtype):
    stereo = clip_at_44k_stereo()
    payload = _encoded(fmt, subtype, stereo, 44100)
    expected = np.concatenate(list(iterable_source([sf.read(io.BytesIO(payload), dtype="float32")[0]], 44100, 2)))
    assert np.array_equal(_through_a_pipe(payload), expected)
    # the same bytes on a seekable stdin (redirected from a file)
    assert np.array_equal(np.concatenate(list(stdin_source(16000, stream=io.BytesIO(payload)))), expected)


def test_a_wav_stream_of_unknown_length_is_read_to_its_end():
    """Writers that cannot seek back (arecord, ffmpeg to a pipe) put placeholder sizes in the header."""
    audio = (np.sin(np.arange(48000) * 0.05) * 8000).astype(np.int16)
    payload = bytearray(_encoded("WAV", "PCM_16", audio, 16000))
    assert payload[36:40] == b"data"
    payload[4:8] = b"\xff\xff\xff\xff"
    payload[40:44] = b"\xff\xff\xff\xff"
    assert np.array_equal(_through_a_pipe(bytes(payload)), audio)


def test_raw_pcm_on_stdin_is_unchanged():
    audio = (np.random.default_rng(3).standard_normal(20000) * 3000).astype(np.int16)
    assert np.array_equal(_through_a_pipe(audio.tobytes()), audio)


def test_stdin_refusals_are_one_line():
    stereo = clip_at_44k_stereo()
    ogg = _encoded("OGG", "VORBIS", stereo, 44100)
    with pytest.raises(AudioError) as err:
        _through_a_pipe(ogg)
    assert "--file" in str(err.value) and "\n" not in str(err.value)
    # a seekable Ogg (stdin redirected from a file) is decoded
    decoded = np.concatenate(list(stdin_source(16000, stream=io.BytesIO(ogg))))
    assert abs(len(decoded) - len(stereo) * 16000 / 44100) < 2
    broken = b"fLaC" + bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    with pytest.raises(AudioError) as err:
        _through_a_pipe(broken)
    assert "\n" not in str(err.value) and "FLAC" in str(err.value)


def test_forward_reader_never_reads_far_ahead():
    served = []

    def read(n):
        piece = bytes(min(n, 1000))
        served.append(len(piece))
        return piece

    reader = ForwardReader(read, b"RIFF")
    assert reader.read(8) == b"RIFF" + bytes(4)
    reader.seek(1 << 40, 1)  # skipping a data chunk of a live stream: reads as the end, pulls nothing
    before = sum(served)
    assert reader.read(12) == b"" and sum(served) == before
    reader.seek(4, 0)
    assert reader.read(4) == bytes(4)


def test_cli_listen_on_a_piped_flac_equals_listen_on_the_file(stereo_flac, tmp_path):
    args = ["listen", "--model", "edgepara-small", "--jsonl", "-"]
    from_file = subprocess.run([*CLI, *args, "--file", str(stereo_flac)], capture_output=True, text=True, timeout=120)
    with open(stereo_flac, "rb") as f:
        cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
        from_pipe = subprocess.run([*CLI, *args, "--stdin"], stdin=cat.stdout, capture_output=True, text=True,
                                   timeout=120)
        cat.stdout.close()
        cat.wait(10)
    assert from_file.returncode == 0 and from_pipe.returncode == 0, (from_file.stderr, from_pipe.stderr)

    def events(text):
        return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in text.splitlines()]

    assert events(from_pipe.stdout) == events(from_file.stdout) and events(from_file.stdout)


# ------------------------------------------------------------------------------ gaps in a live stream

def _arrivals(gaps: ArrivalGaps, start: float, seconds: float, rate: int = 16000, period: float = 0.01,
              clock: float = 1.0) -> float:
    """Callbacks of `period` seconds of audio for `seconds`; `clock` scales the device's clock (drift)."""
    frames = int(rate * period)
    t = start
    for _ in range(int(seconds / period)):
        t += period / clock
        gaps.update(t, frames)
    return t


def test_arrival_gaps_count_only_audio_that_never_came():
    rate, period = 16000, 0.01
    frames = int(rate * period)
    steady = ArrivalGaps(rate)
    _arrivals(steady, 0.0, 600.0, clock=1.0001)  # 100 ppm drift over ten minutes: nothing lost
    assert steady.lost_frames == 0

    buffered = ArrivalGaps(rate)
    t = _arrivals(buffered, 0.0, 5.0)
    t += 6.0  # suspended for 6 s; the audio system kept everything and delivers it in a burst
    for _ in range(int(6.0 / period)):
        t += 0.0001
        buffered.update(t, frames)
    _arrivals(buffered, t, 5.0)
    assert buffered.lost_frames == 0

    overrun = ArrivalGaps(rate)
    t = _arrivals(overrun, 0.0, 5.0)
    t += 6.0  # suspended for 6 s; only the last 0.5 s survived in the device's buffer
    for _ in range(int(0.5 / period)):
        t += 0.0001
        overrun.update(t, frames)
    _arrivals(overrun, t, 5.0)
    assert abs(overrun.lost_frames - 5.5 * rate) < 0.05 * rate, overrun.lost_frames


def test_a_named_pipe_as_file_decodes_like_the_file(tmp_path):
    """`--file` on a named pipe (mkfifo, a shell's <(...)): libsndfile's seeking lost the FLAC's sync; now it
    is read as a stream, same samples as the file, and bytes that are not audio are one line."""
    from edgepara.stream.source import file_source

    clip = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"
    fifo = tmp_path / "pipe"
    for payload, expect_audio in ((clip.read_bytes(), True), (os.urandom(3000), False)):
        os.mkfifo(fifo)
        writer = threading.Thread(target=fifo.write_bytes, args=(payload,))
        writer.start()
        try:
            if expect_audio:
                np.testing.assert_array_equal(np.concatenate(list(file_source(fifo))), read_audio(clip))
            else:
                with pytest.raises(AudioError, match=f"expected a WAV or FLAC stream in {fifo}, got bytes of neither"):
                    list(file_source(fifo))
        finally:
            writer.join(10)
            fifo.unlink()
