"""Distillation losses: TRILLsson-style pooled-embedding matching and STaR-style temporal Gram matching."""
from __future__ import annotations

import numpy as np


def embedding_loss(y_true, y_pred):
    """MSE on standardised teacher targets plus cosine distance (scale-free direction matching)."""
    import keras.ops as K

    mse = K.mean(K.square(y_true - y_pred), axis=-1)
    cos = K.sum(y_true * y_pred, axis=-1) / (K.norm(y_true, axis=-1) * K.norm(y_pred, axis=-1) + 1e-6)
    return mse + (1.0 - cos)


def resample_matrix(n_from: int, n_to: int) -> np.ndarray:
    """(n_to, n_from) linear interpolation, aligning the student's frame grid to the teacher's."""
    positions = np.linspace(0, n_from - 1, n_to)
    m = np.zeros((n_to, n_from), dtype=np.float32)
    lo = np.floor(positions).astype(int)
    hi = np.minimum(lo + 1, n_from - 1)
    frac = positions - lo
    m[np.arange(n_to), lo] += 1 - frac
    m[np.arange(n_to), hi] += frac
    return m


def cosines(a, b):
    """(B, T, D) x (B, S, D) -> (B, T, S): cosines of a's frames against b's (b is a: the temporal Gram matrix)."""
    import keras.ops as K

    unit_a = a / (K.norm(a, axis=-1, keepdims=True) + 1e-6)
    unit_b = unit_a if b is a else b / (K.norm(b, axis=-1, keepdims=True) + 1e-6)
    return K.einsum("btd,bsd->bts", unit_a, unit_b)


def gram(frames):
    """Frame x frame cosine similarity, (B, T, D) -> (B, T, T)."""
    return cosines(frames, frames)


def make_gram_loss(n_student_frames: int, n_teacher_frames: int, seconds: int = 1):
    """Loss between a teacher's Gram matrix (B, T, T), precomputed when labelling, and the student's frames
    (B, T', D) resampled to the teacher's T frames. With `seconds` > 1 (a wider context built from 1 s targets,
    targets.wider_windows) the teacher gives one (T, T) block per second, (B, seconds, T, T): the student's
    frames are resampled to seconds x T and matched block by block on the diagonal, skipping all-zero blocks
    (no speech there)."""
    import keras.ops as K

    align = K.convert_to_tensor(resample_matrix(n_student_frames, n_teacher_frames * seconds))

    def gram_loss(teacher_gram, student_frames):
        aligned = K.einsum("ts,bsd->btd", align, student_frames)
        if seconds == 1:
            return K.mean(K.square(K.cast(teacher_gram, "float32") - gram(aligned)), axis=(1, 2))
        seconds_apart = K.reshape(aligned, (-1, n_teacher_frames, aligned.shape[-1]))  # one row per second
        student = K.reshape(gram(seconds_apart), (-1, seconds, n_teacher_frames, n_teacher_frames))
        teacher = K.cast(teacher_gram, "float32")
        present = K.cast(K.mean(K.abs(teacher), axis=(2, 3)) > 0, "float32")  # (B, seconds)
        per_block = K.mean(K.square(teacher - student), axis=(2, 3))
        return K.sum(per_block * present, axis=1) / K.maximum(K.sum(present, axis=1), 1.0)

    return gram_loss


def make_cross_gram(n_in_frames: int, n_out_frames: int, n_teacher_frames: int):
    """[input frames (B, T1, D), output frames (B, T2, D)] -> (B, T, T) cosines of the input's frames against
    the output's, both resampled to the teacher's T frames: STaR's layer-wise temporal Gram matrix."""
    import keras.ops as K

    align_in = K.convert_to_tensor(resample_matrix(n_in_frames, n_teacher_frames))
    align_out = K.convert_to_tensor(resample_matrix(n_out_frames, n_teacher_frames))

    def cross_gram(pair):
        inputs, outputs = (K.einsum("ts,bsd->btd", align, x) for align, x in zip((align_in, align_out), pair))
        return cosines(inputs, outputs)

    return cross_gram


def gram_mse(teacher_gram, student_gram):
    import keras.ops as K

    return K.mean(K.square(K.cast(teacher_gram, "float32") - student_gram), axis=(1, 2))


def masked_class_loss(labels, logits):
    """Sparse cross-entropy that ignores label -1 (windows without that label)."""
    import keras.ops as K

    labels = K.reshape(K.cast(labels, "int32"), (-1,))
    known = K.cast(labels >= 0, "float32")
    ce = K.sparse_categorical_crossentropy(K.maximum(labels, 0), logits, from_logits=True)
    return ce * known


def margin_class_loss(scale: float, margin: float):
    """Additive-margin softmax (CosFace) on cosine logits: the true class's cosine must beat the others by
    `margin` before the loss lets go, which pulls each speaker's windows together and pushes speakers apart in
    angle, the unit the speaker head decides in. Label -1 (no speaker) adds nothing."""
    import keras.ops as K

    def loss(labels, cosines):
        labels = K.reshape(K.cast(labels, "int32"), (-1,))
        true = K.one_hot(K.maximum(labels, 0), K.shape(cosines)[-1])
        return masked_class_loss(labels, scale * (cosines - margin * true))

    return loss


def soft_class_loss(probabilities, logits):
    """Cross-entropy to a teacher's class probabilities; rows of zeros (no soft target) add nothing."""
    import keras.ops as K

    return -K.sum(K.cast(probabilities, "float32") * K.log_softmax(logits, axis=-1), axis=-1)
