"""`edgepara distill` end to end on a handful of committed clips: real teachers, real training, real int8
export, checked in the real interpreter. The full training is a documented command, not this test."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("openwakeword")
pytest.importorskip("resemblyzer")
pytest.importorskip("opensmile")

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tiny_data_root(tmp_path):
    """A data root shaped like ../shared/data, made of the test clips."""
    root = tmp_path / "data"
    (root / "ravdess").mkdir(parents=True)
    (root / "fsdd").mkdir()
    (root / "masks").mkdir()
    shutil.copy(DATA / "ravdess_A21_angry.flac", root / "ravdess" / "train.flac")
    shutil.copy(DATA / "ravdess_A21_angry.flac", root / "ravdess" / "val.flac")
    (root / "ravdess" / "manifest.csv").write_text(
        "path,label,speaker,duration_s,split\ntrain.flac,angry,A01,4.4,train\nval.flac,angry,A17,4.4,val\n")
    for clip in ("fsdd_3_jackson_0.flac", "fsdd_7_theo_0.flac"):
        shutil.copy(DATA / clip, root / "fsdd" / clip)
    (root / "fsdd" / "manifest.csv").write_text(
        "path,label,speaker,duration_s,split\nfsdd_3_jackson_0.flac,3,jackson,0.5,train\n"
        "fsdd_7_theo_0.flac,7,theo,0.4,train\n")
    shutil.copy(DATA / "mask_curves.csv", root / "masks" / "curves.csv")
    return root


def test_distill_end_to_end(tmp_path, tiny_data_root):
    from edgepara.runtime import Embedder
    from edgepara.train.distill import DistillConfig, distill
    from edgepara.train.export import inspect_tflite

    cfg = DistillConfig(sizes=("edgepara-test",), epochs=2, batch_size=4, n_aug=1, n_synthetic=0, workers=1)
    cards = distill(cfg, tmp_path / "cache", tmp_path / "models", tmp_path / "runs", data_root=tiny_data_root,
                    log=lambda *_: None, command="pytest")
    card = json.loads((tmp_path / "models" / "edgepara-test.json").read_text())
    assert card == json.loads(json.dumps(cards[0]))  # the card on disk is what distill returned
    assert card["training_data"]["windows"] > 6  # the clips, their corrupted copies, several windows each
    info = inspect_tflite(tmp_path / "models" / "edgepara-test.tflite")
    assert set(info["tensor_dtypes"]) <= {"int8", "int32"}
    assert 0.0 < card["metrics"]["int8_vs_float_median_cosine"] <= 1.0
    emb = Embedder(tmp_path / "models" / "edgepara-test.tflite").embed(np.zeros(16000, np.int16))
    assert emb.shape == (card["embedding_dim"],)
    assert (tmp_path / "runs" / "edgepara-test" / "backbone.keras").exists()
    # resumable: a second run reuses the cached teacher shards instead of recomputing them
    shards = sorted((tmp_path / "cache").glob("shard_*.npz"))
    mtimes = [p.stat().st_mtime for p in shards]
    distill(cfg, tmp_path / "cache", tmp_path / "models", tmp_path / "runs", data_root=tiny_data_root,
            log=lambda *_: None)
    assert [p.stat().st_mtime for p in shards] == mtimes
