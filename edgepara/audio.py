"""Decoding and format conversion at the source boundary: past this, audio is 16 kHz mono int16.

Files are decoded block by block and resampled with the streaming resampler, so memory does not grow with
a file's length, and reading a file whole is the same computation as streaming it (same samples).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import AudioError
from .types import SAMPLE_RATE

__all__ = ["SAMPLE_RATE", "FILE_BLOCK_FRAMES", "to_mono_int16", "open_audio_file", "decoded_blocks",
           "audio_file_blocks", "read_audio"]
FILE_BLOCK_FRAMES = 16384  # frames decoded at a time: ~0.4 s at 44.1 kHz, 128 KB as float32 stereo


def to_mono_int16(data: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Down-mix (mean of channels) and resample once; returns int16 mono at target_rate."""
    from .resample import BoundaryConverter

    x = np.asarray(data)
    if x.ndim not in (1, 2):
        raise AudioError(f"expected mono (n,) or multichannel (n, channels) audio, got shape {x.shape}")
    converter = BoundaryConverter(int(rate), 1 if x.ndim == 1 else x.shape[1], out_rate=target_rate)
    return np.concatenate([converter(x), converter.flush()])


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode's surrogates for bytes that are not UTF-8
        return False


def open_audio_file(path: str | Path):
    """A soundfile.SoundFile open for reading, or a one-line AudioError naming the file."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        if path.is_symlink():  # exists() follows links: a loop or a dangling link is not "no file"
            raise AudioError(f"expected an audio file, got a symbolic link that loops or points nowhere: {path}")
        raise AudioError(f"expected an audio file, got no file at {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")
    try:
        # libsndfile wants a UTF-8 name; a file name that is not valid UTF-8 is opened here and handed over
        sound = sf.SoundFile(str(path) if _utf8(str(path)) else open(path, "rb"))
    except Exception as err:  # soundfile raises several types for undecodable input
        raise AudioError(f"expected a wav/flac/ogg audio file, could not decode {path}: {_first_line(err)}") from None
    if sound.frames == 0:
        sound.close()
        raise AudioError(f"expected audio samples, got an empty file: {path}")
    return sound


def decoded_blocks(sound, name: str, block_frames: int = FILE_BLOCK_FRAMES,
                   target_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """int16 mono blocks at target_rate from an open soundfile.SoundFile (closed when done). Only one block
    of the file and the resampler's filter history are held at a time."""
    from .resample import BoundaryConverter

    converter = BoundaryConverter(sound.samplerate, sound.channels, out_rate=target_rate)
    decoded = 0  # frames read so far (soundfile's tell() is -1 once a seek inside a damaged file failed)
    try:
        while True:
            try:
                block = sound.read(block_frames, dtype="float32", always_2d=True)
            except Exception as err:  # a corrupt frame deep inside the file
                raise AudioError(f"expected decodable audio, could not decode {name} after "
                                 f"{decoded / sound.samplerate:.1f} s: {_first_line(err)}") from None
            if len(block) == 0:
                break
            decoded += len(block)
            try:
                out = converter(block)
            except AudioError as err:  # name the file: in a batch, "NaN values" alone does not say which one
                raise AudioError(f"{name}: {err}") from None
            if len(out):
                yield out
        tail = converter.flush()
        if len(tail):
            yield tail
    finally:
        sound.close()


def audio_file_blocks(path: str | Path, block_frames: int = FILE_BLOCK_FRAMES,
                      target_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """A file as int16 mono blocks at target_rate, decoded and resampled as it is read. The file is opened
    (and bad files refused) here, not on the first next()."""
    if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)) or block_frames <= 0:
        raise AudioError(f"expected a positive block size in frames, got {block_frames!r}")
    return decoded_blocks(open_audio_file(path), str(path), int(block_frames), target_rate)


def read_audio(path: str | Path, target_rate: int = SAMPLE_RATE, block_frames: int = FILE_BLOCK_FRAMES) -> np.ndarray:
    """Any file soundfile can decode (wav, flac, ogg, …) -> int16 mono at target_rate, whole.
    The same blocks as audio_file_blocks, written into one array sized from the file's frame count."""
    blocks = audio_file_blocks(path, block_frames, target_rate)
    sound_frames = _expected_frames(path, target_rate)
    out = np.empty(sound_frames, np.int16)
    filled, extra = 0, []
    for block in blocks:
        room = max(0, sound_frames - filled)
        out[filled : filled + min(room, len(block))] = block[:room]
        filled += len(block)
        if len(block) > room:  # the header undercounted: keep the rest aside
            extra.append(block[room:])
    return np.concatenate([out[: min(filled, sound_frames)], *extra]) if extra or filled < sound_frames else out


def _expected_frames(path: str | Path, target_rate: int) -> int:
    import soundfile as sf

    info = sf.info(str(path))
    return -(-info.frames * target_rate // info.samplerate)
