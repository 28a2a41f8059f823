"""The student: log-mel (computed outside, in numpy) -> depthwise-separable CNN -> frame features ->
time-pooled embedding, plus a small speaker embedding beside it. The int8 model outputs both as one
vector, [embedding | speaker]; the card names the speaker part (`speaker_dims`), so the speaker head can
score cosines on the part trained for speakers while the probe heads read the whole vector.

The speaker part has its own last blocks (`speaker_blocks`, branching off the trunk after `shared_blocks`):
with one shared stack, the speaker classifier reshaped every layer toward speaker identity and cost the
embedding about 7 points of RAVDESS emotion (the no-speaker_id ablation of 0.2.0, README).

Training adds one projection per teacher target, a frame projection for Gram matching, and three small
classifiers (training speakers; labelled emotions; a Whisper probe's emotions elsewhere) that never reach the
exported model."""
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
    speaker_dim: int = 0
    # the speaker part's own blocks, after the first `shared_blocks` of `blocks`; () = one shared stack (0.2.0)
    speaker_blocks: tuple[tuple[int, int, int], ...] = ()
    shared_blocks: int = 0
    epochs: int = 12  # the shipped schedule (the larger model gets fewer passes: it learns faster per pass)
    window_samples: int = 16000
    hop_samples: int = 8000

    def __post_init__(self):
        if self.speaker_blocks and not (self.speaker_dim and 0 < self.shared_blocks < len(self.blocks)):
            raise ValueError(f"{self.name}: a speaker branch needs speaker_dim > 0 and 0 < shared_blocks < "
                             f"{len(self.blocks)}, got {self.speaker_dim} and {self.shared_blocks}")

    def frontend(self) -> FrontendConfig:
        return FrontendConfig(n_mels=self.n_mels)

    def n_frames(self) -> int:
        return self.frontend().n_frames(self.window_samples)

    def output_dim(self) -> int:
        return self.embedding_dim + self.speaker_dim

    def speaker_dims(self) -> list[int] | None:
        """The card's `speaker_dims`: where the speaker part sits in the output vector (None without one)."""
        return [self.embedding_dim, self.output_dim()] if self.speaker_dim else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudentConfig":
        d = dict(d)
        for key in ("blocks", "speaker_blocks"):
            d[key] = tuple(tuple(b) for b in d.get(key, ()))
        return cls(**d)


SIZES = {
    "edgepara-tiny": StudentConfig(
        "edgepara-tiny", n_mels=40, stem_channels=32,
        blocks=((48, 1, 2), (64, 2, 2), (96, 1, 1), (128, 2, 2), (160, 1, 1), (160, 1, 1)),
        embedding_dim=128, speaker_dim=64, speaker_blocks=((96, 2, 2), (128, 1, 1)), shared_blocks=3),
    "edgepara-small": StudentConfig(
        "edgepara-small", n_mels=64, stem_channels=48,
        blocks=((64, 1, 2), (96, 2, 2), (128, 1, 1), (192, 2, 2), (256, 1, 1), (256, 1, 1), (384, 1, 2),
                (384, 1, 1)), embedding_dim=192, speaker_dim=64, epochs=8,
        speaker_blocks=((192, 1, 1), (256, 1, 2)), shared_blocks=4),
}


def separable_block(x, channels: int, t_stride: int, f_stride: int):
    from keras import layers

    # TensorFlow's CPU DepthwiseConv2D trains only with equal strides; unequal ones move to the 1x1
    # convolution after it (the same subsampling; CONV_2D takes any strides in LiteRT and on the Edge TPU)
    equal = t_stride == f_stride
    x = layers.DepthwiseConv2D(3, strides=(t_stride, f_stride) if equal else 1, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(channels, 1, strides=1 if equal else (t_stride, f_stride), use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0)(x)


def build_backbone(cfg: StudentConfig):
    """Keras model: (n_frames, n_mels, 1) -> [[embedding | speaker embedding], frames (T', C)]."""
    import keras
    from keras import layers

    inp = keras.Input((cfg.n_frames(), cfg.n_mels, 1), name="logmel")
    x = layers.Conv2D(cfg.stem_channels, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    split = cfg.shared_blocks if cfg.speaker_blocks else len(cfg.blocks)
    for block in cfg.blocks[:split]:
        x = separable_block(x, *block)
    trunk = x
    for block in cfg.blocks[split:]:
        x = separable_block(x, *block)
    frames = layers.Lambda(lambda t: keras.ops.mean(t, axis=2), name="frames")(x)  # pool frequency
    pooled = layers.GlobalAveragePooling1D()(frames)
    if not cfg.speaker_blocks:
        # one layer for both parts: the exported graph stays CONV_2D/DEPTHWISE_CONV_2D/MEAN/FULLY_CONNECTED
        vector = layers.Dense(cfg.output_dim(), name="embedding")(pooled)
        return keras.Model(inp, [vector, frames], name=cfg.name.replace("-", "_"))
    s = trunk
    for block in cfg.speaker_blocks:
        s = separable_block(s, *block)
    general = layers.Dense(cfg.embedding_dim, name="embedding")(pooled)
    speaker = layers.Dense(cfg.speaker_dim, name="speaker_embedding")(layers.GlobalAveragePooling2D()(s))
    # one output vector (a CONCATENATION in the int8 graph), so the runtime and the heads see one layout
    vector = layers.Concatenate(name="embedding_and_speaker")([general, speaker])
    return keras.Model(inp, [vector, frames], name=cfg.name.replace("-", "_"))


def backbone_parts(backbone, speaker_dim: int):
    """(embedding, speaker embedding or None, frames) tensors on top of a backbone's outputs."""
    from keras import layers

    vector, frames = backbone.outputs
    if not speaker_dim:
        return vector, None, frames
    cut = int(vector.shape[-1]) - speaker_dim
    return (layers.Lambda(lambda v: v[:, :cut], name="general")(vector),
            layers.Lambda(lambda v: v[:, cut:], name="speaker_part")(vector), frames)


def build_trainer(backbone, speaker_dim: int, targets: dict[str, int], speaker_teachers: tuple[str, ...] = (),
                  n_speakers: int = 0, classes: dict[str, int] | None = None, gram_dim: int = 96,
                  cosine_speakers: bool = False, cross_gram: bool = False):
    """Heads for training only: a linear projection per pooled target (from the speaker part for the
    `speaker_teachers`, else from the embedding), frames -> gram_dim for Gram matching, a softmax over training speakers
    on the unit-normalised speaker part (with `cosine_speakers` a cosine classifier, for a margin loss), and a
    linear classifier from the embedding for each of `classes` (task -> number of classes: the labelled tasks and
    the Whisper probe's soft emotion targets). With `cross_gram`, also the layer-wise Gram matrix of the last
    general block's input frames (projected to gram_dim) against its output frames, for STaR's cross-layer loss."""
    import keras
    from keras import layers

    embedding, speaker, frames = backbone_parts(backbone, speaker_dim)
    outputs = {}
    for name, dim in targets.items():
        source = speaker if name in speaker_teachers and speaker is not None else embedding
        outputs[name] = layers.Dense(dim, name=f"to_{name}")(source)
    outputs["gram"] = layers.Dense(gram_dim, name="to_gram")(frames)
    if cross_gram:
        from .losses import make_cross_gram

        block_input = last_block_input(backbone)
        pooled = layers.Lambda(lambda t: keras.ops.mean(t, axis=2), name="frames_before")(block_input)  # frequency
        projected = layers.Dense(gram_dim, name="to_gram_before")(pooled)
        outputs["gram_cross"] = layers.Lambda(
            make_cross_gram(int(pooled.shape[1]), int(frames.shape[1]), 50), name="gram_cross")([projected, outputs["gram"]])
    if n_speakers:
        unit = layers.UnitNormalization()(speaker if speaker is not None else embedding)
        outputs["speaker_id"] = (CosineLogits(n_speakers, name="to_speaker_id")(unit) if cosine_speakers else
                                 layers.Dense(n_speakers, name="to_speaker_id")(layers.Rescaling(16.0)(unit)))
    for name, n in (classes or {}).items():
        outputs[name] = layers.Dense(n, name=f"to_{name}")(embedding)
    return keras.Model(backbone.inputs, outputs, name="trainer")


def last_block_input(backbone):
    """The input of the general stack's last block: what its depthwise convolution reads, found by walking back
    from the frequency pooling named "frames" through that block's layers."""
    import keras

    tensor = backbone.get_layer("frames").input
    for _ in range(6):  # separable_block: depthwise, norm, ReLU, 1x1 convolution, norm, ReLU
        layer = tensor._keras_history.operation
        tensor = layer.input
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return tensor
    raise ValueError("expected a separable block (depthwise convolution first) before the frames' pooling")


def CosineLogits(n: int, name: str):
    """Cosines between a unit input and n learned class directions (no bias): the logits of an additive-margin
    softmax (CosFace), whose loss (losses.margin_class_loss) scales them and takes a margin off the true class."""
    import keras

    class _CosineLogits(keras.layers.Layer):
        def build(self, input_shape):
            self.directions = self.add_weight(shape=(int(input_shape[-1]), n), initializer="glorot_uniform",
                                              name="directions")

        def call(self, x):
            return keras.ops.matmul(x, self.directions / (keras.ops.norm(self.directions, axis=0, keepdims=True)
                                                          + 1e-12))

    return _CosineLogits(name=name)


def count_params(model) -> int:
    return int(sum(int(w.numpy().size) for w in model.weights if "moving" not in w.path))
