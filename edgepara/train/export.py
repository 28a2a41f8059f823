"""Full-integer int8 TFLite export, its checks (op types, tensor dtypes, int8-vs-float agreement) and the card."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..assets import atomic_write, sha256_file

ALLOWED_TENSOR_DTYPES = {"int8", "int32"}


def convert_int8(backbone, representative: np.ndarray) -> bytes:
    """The exported vector ([embedding | speaker]) only, batch 1, int8 in and out; calibrated on training
    windows' log-mels."""
    import keras
    import tensorflow as tf

    # A batch-1 input makes every shape static (Edge TPU compilers and LiteRT both prefer it).
    inp = keras.Input(tuple(backbone.inputs[0].shape[1:]), batch_size=1, name="logmel")
    embedding_model = keras.Model(inp, backbone(inp)[0])
    converter = tf.lite.TFLiteConverter.from_keras_model(embedding_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([r[None, ..., None].astype(np.float32)] for r in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def inspect_tflite(path: Path) -> dict:
    """Op names and tensor dtypes, read with the same interpreter the runtime uses."""
    from ..runtime import _import_interpreter

    backend, interpreter_cls, _ = _import_interpreter()
    module = __import__(interpreter_cls.__module__, fromlist=["OpResolverType"])
    # Without the default XNNPACK delegate, so the graph's own ops are listed (not one DELEGATE node).
    it = interpreter_cls(model_path=str(path),
                         experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ops = sorted({op["op_name"] for op in it._get_ops_details()})
    dtypes = sorted({np.dtype(t["dtype"]).name for t in it.get_tensor_details()})
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    return {
        "ops": ops,
        "tensor_dtypes": dtypes,
        "input": {"shape": [int(s) for s in inp["shape"]], "dtype": np.dtype(inp["dtype"]).name,
                  "scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1])},
        "output": {"shape": [int(s) for s in out["shape"]], "dtype": np.dtype(out["dtype"]).name,
                   "scale": float(out["quantization"][0]), "zero_point": int(out["quantization"][1])},
    }


def write_model(out_dir: Path, name: str, tflite: bytes, card: dict) -> tuple[Path, dict]:
    """Writes NAME.tflite and NAME.json atomically (temp file + rename), the card completed from the file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.tflite"
    atomic_write(path, lambda tmp: tmp.write_bytes(tflite))
    info = inspect_tflite(path)
    bad = set(info["tensor_dtypes"]) - ALLOWED_TENSOR_DTYPES
    if bad:
        raise RuntimeError(f"{name}: expected only int8/int32 tensors, got {sorted(bad)}")
    card = dict(card, file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size,
                input=info["input"], output=info["output"], ops=info["ops"], tensor_dtypes=info["tensor_dtypes"])
    write_json(out_dir / f"{name}.json", card)
    return path, card


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))
