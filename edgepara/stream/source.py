"""Sources: plain iterators of int16 mono 16 kHz chunks (a file, stdin, any iterable).

This is the boundary: down-mixing and resampling happen here, once, block by block (resample.py), so
memory does not grow with the length of a file or a stream. The microphone lives in stream/microphone.py;
its names are re-exported here, where the README and the demos import them from.
"""
from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE, audio_file_blocks, decoded_blocks
from ..errors import AudioError
from .microphone import InputDevice, MicrophoneSource, list_input_devices
from ..resample import BoundaryConverter, StreamingResampler, float_to_int16

__all__ = ["DEFAULT_CHUNK", "file_source", "stdin_source", "iterable_source", "rechunk", "ForwardReader",
           # re-exported: the README and demos import these from here
           "MicrophoneSource", "InputDevice", "list_input_devices", "StreamingResampler", "BoundaryConverter",
           "float_to_int16", "wyoming_source", "WyomingSource"]

DEFAULT_CHUNK = 480  # 30 ms: one webrtcvad frame at the default frame_ms
AUDIO_MAGIC = {b"RIFF": "WAV", b"RF64": "WAV", b"fLaC": "FLAC", b"OggS": "Ogg"}
DECODED_PIPE_BLOCK_S = 0.25  # read size of FLAC/Ogg/other encoded audio arriving through a pipe
STREAM_HISTORY = 1 << 20  # bytes of a piped file kept for the decoder to seek back over (its header)


def __getattr__(name: str):
    # re-exported lazily: stream/wyoming.py (a Home Assistant satellite's microphone) imports this module
    if name in ("wyoming_source", "WyomingSource"):
        from . import wyoming

        return getattr(wyoming, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_chunk_size(chunk) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk <= 0:
        raise AudioError(f"expected a positive chunk size in samples, got {chunk!r}")
    return int(chunk)


def rechunk(blocks: Iterable[np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    """Blocks of any sizes -> pieces of exactly `chunk` samples (the last one may be shorter)."""
    pending, held = [], 0
    for block in blocks:
        pending.append(block)
        held += len(block)
        if held < chunk:
            continue
        joined = np.concatenate(pending)
        whole = len(joined) - len(joined) % chunk
        yield from (joined[i : i + chunk] for i in range(0, whole, chunk))
        pending, held = [joined[whole:]], len(joined) - whole
    if held:
        yield np.concatenate(pending)


def _paced(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Chunks at the audio's own speed (to try the live path on a file)."""
    t0, sent = time.monotonic(), 0
    for piece in chunks:
        sent += len(piece)
        delay = t0 + sent / SAMPLE_RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield piece


def file_source(path: str | Path, chunk: int = DEFAULT_CHUNK, realtime: bool = False) -> Iterator[np.ndarray]:
    """A wav/flac/ogg file as chunks of `chunk` samples, decoded and resampled as it is read (memory does not
    grow with the file's length). Decoding errors are raised here, not on the first next().
    realtime=True paces the chunks at the audio's own speed (to try the live path on a file)."""
    chunk = _check_chunk_size(chunk)
    if stat.S_ISFIFO(_stat_mode(path)):  # a named pipe (mkfifo, a shell's <(...)): no seeking, read it as stdin is
        chunks = stdin_source(SAMPLE_RATE, 1, chunk, stream=_LazyOpen(path), name=str(path), raw_pcm=False)
    else:
        chunks = rechunk(audio_file_blocks(path), chunk)
    return _paced(chunks) if realtime else chunks


def _stat_mode(path) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:  # missing, a loop, no permission: the decoder's open says which, in its own words
        return 0


class _LazyOpen:
    """A named pipe opened on the first read (opening blocks until a writer comes), unbuffered."""

    def __init__(self, path):
        self.path, self._file = path, None

    def read(self, n: int = -1) -> bytes:
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)
        return self._file.read(n)

    def seekable(self) -> bool:
        return False


def stdin_source(rate: int, channels: int = 1, chunk: int = DEFAULT_CHUNK, stream=None, name: str = "stdin",
                 raw_pcm: bool = True) -> Iterator[np.ndarray]:
    """Audio from stdin, or from `stream` (any binary file object; `name` in messages), as 16 kHz mono
    chunks of `chunk` samples.

    A WAV or FLAC file (recognised by its first bytes) is decoded with its own rate and channels; anything
    else is raw signed 16-bit little-endian PCM at `rate` Hz with `channels` interleaved channels (refused
    when not `raw_pcm`)."""
    chunk = _check_chunk_size(chunk)
    BoundaryConverter(rate, channels)  # validates rate and channels here, at the boundary
    stream = stream if stream is not None else sys.stdin.buffer
    read = getattr(stream, "read1", None) or stream.read  # read1: return what a pipe has, keep latency low

    def chunks():
        # the first bytes are read on the first next(), not here: a live pipe may not have sent any yet
        head = _read_at_least(read, 4)
        kind = AUDIO_MAGIC.get(head[:4])
        if kind == "WAV" and not _seekable(stream):
            pcm, head = _piped_wav_header(read, head)
            if pcm is not None:  # 16-bit PCM, read as it arrives: no decoder reading ahead or seeking on a pipe
                wav_rate, wav_channels, data_bytes = pcm
                data = _raw_pcm_blocks(_limited(read, data_bytes), b"", wav_rate, wav_channels, chunk)
                yield from rechunk(iterable_source(data, wav_rate, wav_channels), chunk)
                return
            # another encoding: libsndfile decodes it, from the bytes read so far
        if kind is not None:
            sound = _open_piped_file(stream, read, head, kind, name)
            # blocks of at least DECODED_PIPE_BLOCK_S: soundfile seeks three times around every read of a stream
            # it thinks seekable, and a FLAC decoder's seek is costly (30 ms blocks made --stdin 4x slower than
            # --file); live microphones come as raw PCM or WAV, which never pass here
            frames = max(_block_frames(chunk, sound.samplerate), int(sound.samplerate * DECODED_PIPE_BLOCK_S))
            blocks = decoded_blocks(sound, f"the {kind} audio on {name}", block_frames=frames)
        elif not raw_pcm:
            raise AudioError(f"expected a WAV or FLAC stream in {name}, got bytes of neither (first {head[:4]!r})")
        else:
            blocks = iterable_source(_raw_pcm_blocks(read, head, rate, channels, chunk), rate, channels)
        yield from rechunk(blocks, chunk)

    return chunks()


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (OSError, ValueError, AttributeError):
        return False


# A data chunk size a streaming writer puts before it knows the length (arecord: 0x7FFFFFFF; others 0 or ~0)
_UNKNOWN_WAV_SIZES = (0, 0x7FFFFFFF, 0xFFFFFFFF)


def _piped_wav_header(read, head: bytes):
    """Reads a piped WAV's header up to its data chunk. Returns ((rate, channels, data bytes or None when
    unbounded), b"") for 16-bit PCM, else (None, every byte read so far) for libsndfile to decode instead."""
    import struct

    consumed = head + _read_at_least(read, 8)
    fmt = None
    while consumed[8:12] == b"WAVE":
        chunk_header = _read_at_least(read, 8)
        consumed += chunk_header
        if len(chunk_header) < 8:
            break
        chunk_id, size = chunk_header[:4], struct.unpack("<I", chunk_header[4:])[0]
        if chunk_id == b"data":
            if fmt is None:
                break
            channels, rate, bits, tag = fmt
            if tag != 1 or bits != 16 or channels < 1 or rate < 1:
                break
            return (rate, channels, None if size in _UNKNOWN_WAV_SIZES else size), b""
        body = _read_at_least(read, size + (size & 1))  # chunks are padded to an even length
        consumed += body
        if chunk_id == b"fmt " and len(body) >= 16:
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (channels, rate, bits, tag)
    return None, consumed


def _limited(read, size: int | None):
    """`read` that ends after `size` bytes (the data chunk; whatever follows it is not audio)."""
    if size is None:
        return read
    left = [size]

    def limited(n: int) -> bytes:
        if left[0] <= 0:
            return b""
        data = read(min(n, left[0]))
        left[0] -= len(data)
        return data

    return limited


def _read_at_least(read, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = read(n - len(data))
        if not more:
            break
        data += more
    return data


def _block_frames(chunk: int, rate: int) -> int:
    return max(1, -(-chunk * rate // SAMPLE_RATE))


def _raw_pcm_blocks(read, head: bytes, rate: int, channels: int, chunk: int) -> Iterator[np.ndarray]:
    frame_bytes = 2 * channels
    read_bytes = _block_frames(chunk, rate) * frame_bytes
    leftover, data = b"", head
    while True:
        data = leftover + data
        whole = len(data) - len(data) % frame_bytes
        leftover = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dtype="<i2").reshape(-1, channels)
        data = read(read_bytes)
        if not data:
            break


def _open_piped_file(stream, read, head: bytes, kind: str, name: str = "stdin"):
    """soundfile.SoundFile on an audio file arriving through a stream. A seekable stream (stdin redirected
    from a file) is decoded as it is; a pipe through ForwardReader, which lets the decoder re-read its
    header but never reads ahead of what it decodes, so a live stream is not buffered whole."""
    import soundfile as sf

    seekable = False
    try:
        seekable = stream.seekable() and stream.seek(-len(head), 1) >= 0
    except (OSError, ValueError, AttributeError):
        seekable = False
    source = stream if seekable else ForwardReader(read, head)
    if kind == "Ogg" and not seekable:
        raise AudioError(f"expected raw s16le PCM, WAV or FLAC on a piped {name}, got Ogg audio, which can only "
                         "be decoded with seeking: use --file PATH of a regular file (or redirect stdin from it)")
    try:
        return sf.SoundFile(source)
    except Exception as err:  # soundfile raises several types for undecodable input
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        # libsndfile names what it opened; for a pipe that is our reader object's repr, which helps nobody
        reason = re.sub(r"^Error opening <[^>]*>: ", "", reason)
        if getattr(source, "refused_seek", False):
            reason = "it needs seeking, which a pipe cannot do: use --file PATH"
        raise AudioError(f"expected a decodable {kind} stream on {name}, got one that could not be opened: "
                         f"{reason}") from None


class ForwardReader:
    """A pipe as the seekable file libsndfile asks for: reads go forward; seeking back is served from the
    last STREAM_HISTORY bytes; a seek ahead only moves the position, and reading far ahead (the decoder
    skipping over a whole data chunk) reads as the end, so a live stream is never read ahead of need.
    The length is unknown: a very large one is reported, and reads end when the pipe does."""

    UNKNOWN_LENGTH = 1 << 62

    def __init__(self, read, head: bytes = b""):
        self._read = read
        self._history = bytearray(head)  # bytes [self._history_start, self._pulled) of the stream
        self._history_start = 0
        self._pulled = len(head)
        self._pos = 0
        self.refused_seek = False

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.UNKNOWN_LENGTH}[whence]
        target = base + offset
        if target < self._history_start:
            self.refused_seek = True  # too far back; libsndfile then reports an error
            return self._pos
        self._pos = target
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 16
        if self._pos > self._pulled + STREAM_HISTORY // 2:
            return b""  # far past what was read: the decoder is probing beyond the data
        while self._pulled < self._pos + n:
            more = self._read(max(self._pos + n - self._pulled, 4096))
            if not more:
                break
            self._history += more
            self._pulled += len(more)
        start = self._pos - self._history_start
        out = bytes(self._history[start : start + n])
        self._pos += len(out)
        excess = len(self._history) - STREAM_HISTORY
        if excess > 0:
            del self._history[:excess]
            self._history_start += excess
        return out

    def write(self, data) -> int:
        raise OSError("read-only stream")


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
