"""Shipped models load in the real LiteRT interpreter, are fully integer, and are checked against their cards."""
import json
import shutil

import numpy as np
import pytest

from edgepara.assets import available_models, models_dir, resolve_model
from edgepara.errors import ModelError
from edgepara.heads import ProbeHead
from edgepara.runtime import Embedder, interpreter_backend

SHIPPED = available_models()


def test_both_sizes_are_shipped_within_budget():
    assert {"edgepara-tiny", "edgepara-small"} <= set(SHIPPED)
    assert resolve_model("edgepara-tiny")[1]["bytes"] <= 256 * 1024
    assert resolve_model("edgepara-small")[1]["bytes"] <= 2 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_model_is_fully_integer_in_the_real_interpreter(name):
    from edgepara.train.export import inspect_tflite  # reads the graph without the XNNPACK delegate

    path, card = resolve_model(name)
    info = inspect_tflite(path)
    assert set(info["tensor_dtypes"]) <= {"int8", "int32"}
    assert info["input"]["dtype"] == info["output"]["dtype"] == "int8"
    assert info["input"]["shape"][0] == 1 and info["output"]["shape"] == [1, card["embedding_dim"]]
    assert set(info["ops"]) <= {"CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "RESHAPE", "QUANTIZE"}


@pytest.mark.parametrize("name", SHIPPED)
def test_embedding_is_finite_and_depends_on_input(name, speech_clip):
    from edgepara.audio import read_audio

    embedder = Embedder(name)
    audio = read_audio(speech_clip)
    a = embedder.embed(audio[16000:32000])
    b = embedder.embed(audio[40000:56000])
    assert a.shape == (embedder.dim,) and np.all(np.isfinite(a))
    assert not np.allclose(a, b)
    assert interpreter_backend() in {"ai-edge-litert", "tflite-runtime"}


def _copy_model(tmp_path, name="edgepara-tiny"):
    for ext in (".tflite", ".json"):
        shutil.copy(models_dir() / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return tmp_path / f"{name}.tflite"


def test_tampered_model_is_refused(tmp_path):
    path = _copy_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="expected sha256 .* got"):
        Embedder(path)


def test_truncated_model_is_refused(tmp_path):
    path = _copy_model(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="expected .* bytes"):
        Embedder(path)


def test_missing_model_file_is_refused(tmp_path):
    path = _copy_model(tmp_path)
    path.unlink()
    with pytest.raises(ModelError, match="got nothing there"):
        Embedder(path)


def test_card_dimension_disagreeing_with_model_is_refused(tmp_path):
    path = _copy_model(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["embedding_dim"] += 1
    card["output"]["shape"][-1] += 1
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="output shape"):
        Embedder(path)


@pytest.mark.parametrize("dims", [[0, 10_000], [5, 5], "64", [1.5, 3]])
def test_card_with_a_bad_speaker_part_is_refused(tmp_path, dims):
    path = _copy_model(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["speaker_dims"] = dims
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="expected speaker_dims"):
        Embedder(path)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ModelError, match="edgepara-small"):
        Embedder("edgepara-huge")


def test_head_for_another_model_is_refused():
    from edgepara.assets import heads_dir
    from edgepara.errors import HeadError

    tiny = Embedder("edgepara-tiny")
    with pytest.raises(HeadError, match="trained on model edgepara-small .* got model edgepara-tiny"):
        ProbeHead.load(str(heads_dir() / "edgepara-small" / "emotion.npz"), tiny.card)


def test_card_missing_frontend_fields_is_refused(tmp_path):
    path = _copy_model(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    del card["frontend"]["n_mels"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="expected frontend fields n_mels"):
        Embedder(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_head_loads_for_its_model(name, speech_clip):
    from edgepara.assets import heads_dir
    from edgepara.audio import read_audio
    from edgepara.speaker import shipped_threshold

    embedder = Embedder(name)
    heads = sorted(p.stem for p in (heads_dir() / name).glob("*.npz"))
    assert {"emotion", "mask", "mask_type"} <= set(heads)
    emb = embedder.embed(read_audio(speech_clip)[16000:32000])
    for head_name in heads:
        head = ProbeHead.load(head_name, embedder.card)
        probs = head.probabilities(emb, band_shape=embedder.band_shape()) if head.reads_band_shape else \
            head.probabilities(emb)
        assert set(probs) == set(head.classes) and abs(sum(probs.values()) - 1) < 1e-5
    assert -1.0 <= shipped_threshold(embedder.card) <= 1.0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_passes_the_card_checks(name):
    from edgepara.assets import validate_model_card

    card = json.loads((models_dir() / f"{name}.json").read_text())
    validate_model_card(card, f"{name}.json")  # raises ModelError naming the field otherwise


def test_head_trained_on_another_file_of_the_same_model_is_refused(tmp_path):
    """Same model name and dimension, other weights (sha256): the embeddings are not comparable."""
    from edgepara.assets import heads_dir
    from edgepara.errors import HeadError
    from edgepara.heads import save_probe

    src = heads_dir() / "edgepara-tiny" / "emotion"
    card = json.loads(src.with_suffix(".json").read_text())
    card["model_sha256"] = "0" * 64
    with np.load(src.with_suffix(".npz")) as z:
        save_probe(tmp_path / "emotion.npz", card, {k: z[k] for k in z.files})
    with pytest.raises(HeadError, match="trained on model edgepara-tiny \\(sha256 000000000000"):
        ProbeHead.load(str(tmp_path / "emotion.npz"), Embedder("edgepara-tiny").card)


def test_a_band_shape_head_needs_the_windows_band_shape_and_the_models_mel_bands(tmp_path, speech_clip):
    """The shipped mask head reads the window's spectral shape beside the embedding: called without it, or
    built for a frontend with other mel bands, it says so in one line instead of computing from the wrong input."""
    from edgepara.assets import heads_dir
    from edgepara.audio import read_audio
    from edgepara.errors import EdgeparaError, HeadError
    from edgepara.heads import save_probe
    from edgepara.stream.pipeline import Pipeline

    embedder = Embedder("edgepara-tiny")
    head = ProbeHead.load("mask", embedder.card)
    assert head.reads_band_shape and head.dim == embedder.dim and head.band_shape_dim == 40
    emb = embedder.embed(read_audio(speech_clip)[16000:32000])
    with pytest.raises(HeadError, match="expected the window's band shape too \\(40 values"):
        head.probabilities(emb)
    assert set(head.probabilities(emb, band_shape=embedder.band_shape())) == {"mask", "no_mask"}
    head_path = heads_dir() / "edgepara-tiny" / "mask.npz"
    with np.load(head_path) as z:
        arrays = {k: z[k] for k in z.files}
    card = json.loads(head_path.with_suffix(".json").read_text())
    save_probe(tmp_path / "mask.npz", dict(card, band_shape_dim=64), arrays)
    with pytest.raises(HeadError, match="expected band shapes of the model's 40 mel bands, got 64"):
        ProbeHead.load(str(tmp_path / "mask.npz"), embedder.card)

    class EmbedderWithoutBandShape:  # a library user's own embedder
        card, window, hop, name, sample_rate = embedder.card, embedder.window, embedder.hop, "mine", 16000

        def timed_embed(self, window):
            return embedder.embed(window), 0.0

    with pytest.raises(EdgeparaError, match="expected an embedder with band_shape\\(\\) for head mask"):
        Pipeline(heads=["mask"], embedder=EmbedderWithoutBandShape())
