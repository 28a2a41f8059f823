"""The student's layout and its training targets, without teachers: the speaker branch, the recorded layout
that benchmarks rebuild, and the Whisper-probe emotion targets for windows without a label."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from edgepara.train.supervision import probe_posteriors  # noqa: E402
from edgepara.train.distill import SPEAKER_TEACHERS  # noqa: E402
from edgepara.train.student import SIZES, StudentConfig, build_backbone, build_trainer  # noqa: E402


@pytest.mark.parametrize("size", ["edgepara-tiny", "edgepara-small"])
def test_the_speaker_part_has_its_own_last_blocks(size):
    """Speaker losses reach the shared trunk but not the embedding's own blocks, and the reverse."""
    import tensorflow as tf

    cfg = SIZES[size]
    backbone = build_backbone(cfg)
    trainer = build_trainer(backbone, cfg.speaker_dim, {"resemblyzer": 4, "dvector": 4, "whisper_tinyen_b2": 4},
                            SPEAKER_TEACHERS, n_speakers=3)
    x = tf.random.normal((2, cfg.n_frames(), cfg.n_mels, 1))
    general_only = {v.path for v in backbone.trainable_variables if v.path.startswith("embedding/")}
    with tf.GradientTape(persistent=True) as tape:
        out = trainer(x, training=True)
        speaker_loss = sum(tf.reduce_sum(out[k] ** 2) for k in ("speaker_id", "resemblyzer", "dvector"))
        general_loss = tf.reduce_sum(out["whisper_tinyen_b2"] ** 2)

    def touched(loss):  # a slice of the output vector passes exact zeros to the other part, not None
        grads = tape.gradient(loss, backbone.trainable_variables)
        return {v.path for v, g in zip(backbone.trainable_variables, grads) if g is not None and tf.reduce_any(g != 0)}

    speaker_side, general_side = touched(speaker_loss), touched(general_loss)
    shared = speaker_side & general_side
    assert general_only <= general_side - speaker_side
    assert "speaker_embedding/kernel" in speaker_side - general_side
    # the stem and the first shared_blocks separable blocks (2 convolutions each) are shared
    assert len([p for p in shared if p.endswith("kernel")]) == 1 + 2 * cfg.shared_blocks
    assert backbone.outputs[0].shape[-1] == cfg.output_dim()


@pytest.mark.parametrize("size", ["edgepara-tiny", "edgepara-small"])
def test_the_cross_layer_gram_compares_the_last_blocks_input_with_its_output(size):
    """STaR's layer-wise Gram (the gram_cross ablation): cosines of the last general block's input frames against
    its output frames; its gradient reaches that block and the layers before it, and the exported backbone is
    the same graph with it or without it."""
    import keras
    import tensorflow as tf

    from edgepara.train.student import last_block_input

    cfg = SIZES[size]
    backbone = build_backbone(cfg)
    plain = len(backbone.layers)
    trainer = build_trainer(backbone, cfg.speaker_dim, {"whisper_tinyen_b3": 4}, cross_gram=True)
    assert len(backbone.layers) == plain  # the projection of the block's input lives in the trainer only
    block_input = last_block_input(backbone)
    assert block_input.shape[-1] == cfg.blocks[-2][0]  # the channels of the block before the last
    x = tf.random.normal((2, cfg.n_frames(), cfg.n_mels, 1))
    probe = keras.Model(backbone.inputs, [block_input, backbone.outputs[1]])
    before, after = (np.asarray(t) for t in probe(x, training=False))
    out = trainer(x, training=False)
    assert out["gram_cross"].shape == (2, 50, 50)
    # the trainer's value: both sides resampled to 50 frames, projected, unit-normalised, compared across
    projected = [np.asarray(trainer.get_layer(n)(t)) for n, t in (("to_gram_before", before.mean(axis=2)),
                                                                  ("to_gram", after))]
    from edgepara.train.losses import resample_matrix

    aligned = [np.einsum("ts,bsd->btd", resample_matrix(p.shape[1], 50), p) for p in projected]
    unit = [a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-6) for a in aligned]
    np.testing.assert_allclose(np.asarray(out["gram_cross"]), np.einsum("btd,bsd->bts", *unit), atol=1e-4)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum((trainer(x, training=True)["gram_cross"] - 0.5) ** 2)
    grads = tape.gradient(loss, backbone.trainable_variables)
    reached = {v.path for v, g in zip(backbone.trainable_variables, grads) if g is not None and tf.reduce_any(g != 0)}
    assert backbone.layers[1].kernel.path in reached  # down to the stem
    assert not any(p.startswith(("embedding/", "speaker_embedding/")) for p in reached)


def test_a_recorded_layout_round_trips_and_old_runs_rebuild_as_one_stack(tmp_path):
    from edgepara.train.bench_systems import run_layout

    cfg = SIZES["edgepara-tiny"]
    assert StudentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    (tmp_path / "student.json").write_text(json.dumps(cfg.to_dict()))
    assert run_layout("edgepara-tiny", tmp_path / "backbone.keras") == cfg
    old = run_layout("edgepara-tiny", tmp_path / "elsewhere" / "backbone.keras")
    assert old == dataclasses.replace(cfg, speaker_blocks=(), shared_blocks=0)
    assert build_backbone(old).outputs[0].shape[-1] == cfg.output_dim()


def test_whisper_emotion_targets_go_to_unlabelled_windows_and_ignore_each_speakers_offset():
    """Speaker B's windows sit far from speaker A's (a recording condition), but their emotion directions are
    the same: centred per speaker, the probe fitted on A's labels reads B's emotions, not B's offset."""
    rng = np.random.default_rng(0)
    n, dim = 200, 12
    directions = rng.standard_normal((3, dim)) * 2
    emotion_a = rng.integers(0, 3, n)
    emotion_b = rng.integers(0, 3, n)
    offset_b = directions[0] * 3  # B's offset would otherwise look like emotion 0
    X = np.concatenate([directions[emotion_a], directions[emotion_b] + offset_b]) + rng.standard_normal((2 * n, dim))
    speakers = np.repeat([0, 1], n)
    labels = np.concatenate([emotion_a, -np.ones(n, int)])
    posteriors = probe_posteriors(X, speakers, labels, 4)
    assert posteriors.shape == (2 * n, 4)
    assert np.all(posteriors[:, 3] == 0)  # a class nobody is labelled with gets no probability
    assert np.all(posteriors[:n] == 0)  # labelled windows learn from their labels
    np.testing.assert_allclose(posteriors[n:].sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(posteriors[n:].argmax(axis=1) == emotion_b) > 0.9
    # one class labelled, or nothing unlabelled: no targets (and no error)
    assert not probe_posteriors(X, speakers, np.where(labels >= 0, 1, -1), 4).any()
    assert not probe_posteriors(X, speakers, np.concatenate([emotion_a, emotion_b]), 4).any()


def test_the_cli_trains_the_shipped_losses_by_default():
    """The CLI spells the losses out (it never imports training code): the same lists as distill's."""
    from edgepara.cli import DISTILL_EXTRA_LOSSES, DISTILL_LOSSES
    from edgepara.train.distill import LOSSES, SHIPPED_LOSSES

    assert tuple(DISTILL_LOSSES.split(",")) == SHIPPED_LOSSES
    assert tuple(DISTILL_LOSSES.split(",") + DISTILL_EXTRA_LOSSES.split(",")) == LOSSES
    # and so does the ablation script, whose no-LOSS variants drop one from that list
    script = (Path(__file__).parent.parent / "scripts" / "ablation.sh").read_text()
    assert f'all="{DISTILL_LOSSES}"' in script


def test_a_speaker_branch_needs_a_speaker_part_and_a_trunk():
    with pytest.raises(ValueError, match="speaker branch"):
        dataclasses.replace(SIZES["edgepara-tiny"], shared_blocks=6)
    with pytest.raises(ValueError, match="speaker branch"):
        dataclasses.replace(SIZES["edgepara-tiny"], speaker_dim=0)


def test_the_margin_loss_takes_the_margin_off_the_true_class_only():
    """CosFace on cosine logits: the loss of a window is the cross-entropy of scale * (cosines - margin at its
    speaker); no margin gives the plain scaled softmax; a window without a speaker (-1) adds nothing."""
    import keras.ops as K

    from edgepara.train.losses import margin_class_loss

    cosines = np.array([[0.9, 0.2, 0.1], [0.3, 0.4, 0.5], [0.5, 0.5, 0.5]], np.float32)
    labels = np.array([0, 2, -1], np.int32)

    def expected(margin):
        z = 30.0 * (cosines - margin * np.eye(3)[np.maximum(labels, 0)])
        ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(3), np.maximum(labels, 0)]
        return ce * (labels >= 0)

    for margin in (0.0, 0.2):
        got = K.convert_to_numpy(margin_class_loss(30.0, margin)(labels, cosines))
        assert np.allclose(got, expected(margin), rtol=1e-4, atol=1e-4)
    assert np.all(expected(0.2)[:2] > expected(0.0)[:2])


def test_the_cosine_speaker_classifier_reads_only_angles():
    """With --speaker-margin the speaker logits are cosines: bounded by 1 whatever the class directions' length."""
    cfg = SIZES["edgepara-tiny"]
    backbone = build_backbone(cfg)
    trainer = build_trainer(backbone, cfg.speaker_dim, {}, n_speakers=5, cosine_speakers=True)
    layer = trainer.get_layer("to_speaker_id")
    layer.directions.assign(layer.directions * 50.0)
    out = trainer(np.random.default_rng(0).normal(size=(2, *backbone.inputs[0].shape[1:])).astype(np.float32))
    cos = np.asarray(out["speaker_id"])
    assert cos.shape == (2, 5) and np.all(np.abs(cos) <= 1.0 + 1e-5)


def test_each_ablation_variant_runs_the_distill_it_names(tmp_path):
    """scripts/ablation.sh in a scratch copy whose `edgepara` only prints its arguments: the variants and their
    seeds give the distill command lines the benchmark's rows are named after."""
    import os
    import stat
    import subprocess

    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "ablation.sh"
    script.write_text((Path(__file__).parent.parent / "scripts" / "ablation.sh").read_text())
    fake = tmp_path / ".venv" / "bin" / "edgepara"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def commands(*variants):
        r = subprocess.run(["bash", str(script), *variants], capture_output=True, text=True, env=dict(os.environ))
        return r.returncode, [line for line in r.stdout.splitlines() if line.startswith("distill")], r.stderr

    rc, lines, _ = commands("no-gram-seed-2", "speaker-margin", "without-baved_arabic-seed-1", "seed-1")
    assert rc == 0
    assert "--losses whisper,resemblyzer,speaker_id,emotion,emotion8,arousal,whisper_emotion --seed 2" in lines[0]
    assert lines[0].endswith("--out runs/ablation/no-gram-seed-2/models --runs runs/ablation/no-gram-seed-2")
    assert "--seed 0 --speaker-margin 0.2" in lines[1]
    assert "--seed 1 --leave-out baved_arabic" in lines[2]
    assert [line.split()[2] for line in lines[3:]] == ["edgepara-tiny", "edgepara-small"]  # seeds: both sizes
    rc, lines, _ = commands("with-gram-cross", "context-2s-seed-1")
    assert rc == 0 and "arousal,whisper_emotion,gram_cross --seed 0" in lines[0]
    assert "--seed 1 --context-s 2" in lines[1] and "edgepara-tiny" in lines[1]
    rc, lines, _ = commands("speaker-dim-128")
    assert rc == 0 and "--seed 0 --speaker-dim 128" in lines[0] and "edgepara-tiny" in lines[0]
    rc, lines, err = commands("no-such-loss-seed-1")
    assert rc == 2 and not lines and "unknown loss in no-such-loss" in err
    # parts joined with + apply in turn: data options add up, losses come off the list one after another
    rc, lines, _ = commands("no-language-balance+corrupt-share-0.75", "language-temperature-0.75-seed-1",
                            "no-arousal+no-gram+without-ased_amharic")
    assert rc == 0 and len(lines) == 4
    assert "--seed 0 --language-temperature 1 --corrupt-share 0.75 --out" in lines[0]
    assert lines[0].endswith("--runs runs/ablation/no-language-balance+corrupt-share-0.75")
    assert "--seed 1 --language-temperature 0.75 --out" in lines[1]
    no_arousal_no_gram = "whisper,resemblyzer,speaker_id,emotion,emotion8,whisper_emotion"
    assert f"--losses {no_arousal_no_gram} --seed 0 --leave-out ased_amharic" in lines[2]
    assert [line.split()[2] for line in lines[2:]] == ["edgepara-tiny", "edgepara-small"]  # ASED's transfer: both
    rc, lines, err = commands("no-gram+no-gram")
    assert rc == 2 and not lines and "unknown loss in no-gram" in err
    rc, lines, err = commands("no-babble+louder")
    assert rc == 2 and not lines and "unknown variant louder" in err


def test_the_gram_loss_over_a_wider_context_matches_each_second_and_skips_absent_ones():
    """With 2 s windows the teacher gives one 50 x 50 Gram block per second; a block of zeros (no speech in that
    second) adds nothing, and matching blocks give zero loss."""
    from edgepara.train.losses import gram, make_gram_loss

    rng = np.random.default_rng(0)
    frames = rng.standard_normal((1, 100, 8)).astype(np.float32)
    loss = make_gram_loss(100, 50, seconds=2)
    blocks = np.asarray(gram(frames.reshape(2, 50, 8)))[None]  # (1, 2, 50, 50): the student's own blocks
    assert float(np.asarray(loss(blocks, frames))[0]) == pytest.approx(0.0, abs=1e-6)
    first_only = blocks.copy()
    first_only[0, 1] = 0.0
    assert float(np.asarray(loss(first_only, frames))[0]) == pytest.approx(0.0, abs=1e-6)
    wrong = blocks.copy()
    wrong[0, 0] = np.eye(50)
    expected = np.mean((np.eye(50) - blocks[0, 0]) ** 2) / 2  # one of two present blocks is off
    assert float(np.asarray(loss(wrong, frames))[0]) == pytest.approx(expected, rel=1e-4)
