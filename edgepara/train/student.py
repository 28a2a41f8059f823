"""The student: log-mel (computed outside, in numpy) -> depthwise-separable CNN -> frame features ->
time-pooled embedding. Training adds one projection per teacher and a frame projection for Gram matching."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..frontend import FrontendConfig


@dataclass(frozen=True)
class StudentConfig:
    name: str
    n_mels: int
    stem_channels: int
    # (channels, time stride, frequency stride) per depthwise-separable block
    blocks: tuple[tuple[int, int, int], ...]
    embedding_dim: int
    window_samples: int = 16000
    hop_samples: int = 8000

    def frontend(self) -> FrontendConfig:
        return FrontendConfig(n_mels=self.n_mels)

    def n_frames(self) -> int:
        return self.frontend().n_frames(self.window_samples)

    def to_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "edgepara-tiny": StudentConfig(
        "edgepara-tiny", n_mels=40, stem_channels=24,
        blocks=((32, 1, 2), (48, 2, 2), (64, 1, 1), (96, 2, 2), (128, 1, 1), (128, 1, 1)), embedding_dim=128),
    "edgepara-small": StudentConfig(
        "edgepara-small", n_mels=64, stem_channels=48,
        blocks=((64, 1, 2), (96, 2, 2), (128, 1, 1), (192, 2, 2), (256, 1, 1), (256, 1, 1), (384, 1, 2),
                (384, 1, 1)), embedding_dim=192),
    # for tests: trains in seconds
    "edgepara-test": StudentConfig(
        "edgepara-test", n_mels=40, stem_channels=8, blocks=((16, 2, 2), (24, 2, 2)), embedding_dim=16),
}

TEACHER_DIMS = {"speech_embedding": 96, "resemblyzer": 256, "egemaps": 88}


def build_backbone(cfg: StudentConfig):
    """Keras model: (n_frames, n_mels, 1) -> [embedding (embedding_dim), frame features (T', C)]."""
    import keras
    from keras import layers

    inp = keras.Input((cfg.n_frames(), cfg.n_mels, 1), name="logmel")
    x = layers.Conv2D(cfg.stem_channels, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for channels, t_stride, f_stride in cfg.blocks:
        x = layers.DepthwiseConv2D(3, strides=(t_stride, f_stride), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(channels, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    frames = layers.Lambda(lambda t: keras.ops.mean(t, axis=2), name="frames")(x)  # pool frequency
    pooled = layers.GlobalAveragePooling1D()(frames)
    embedding = layers.Dense(cfg.embedding_dim, name="embedding")(pooled)
    return keras.Model(inp, [embedding, frames], name=cfg.name.replace("-", "_"))


def build_trainer(backbone, teachers=tuple(TEACHER_DIMS), gram_dim: int = 96):
    """Adds one linear projection per teacher on the embedding, and one on the frames for Gram matching."""
    import keras
    from keras import layers

    embedding, frames = backbone.outputs
    outputs = {name: layers.Dense(TEACHER_DIMS[name], name=f"to_{name}")(embedding) for name in teachers}
    outputs["gram"] = layers.Dense(gram_dim, name="to_gram")(frames)
    return keras.Model(backbone.inputs, outputs, name="trainer")


def count_params(model) -> int:
    return int(sum(int(w.numpy().size) for w in model.weights if "moving" not in w.path))
