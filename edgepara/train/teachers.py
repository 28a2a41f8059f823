"""The three teachers, all offline: Google's speech_embedding (shipped inside openwakeword 0.5.1),
resemblyzer's GE2E speaker encoder, and openSMILE eGeMAPSv02 functionals."""
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


TEACHERS = {t.name: t for t in (SpeechEmbeddingTeacher, ResemblyzerTeacher, EGeMAPSTeacher)}
