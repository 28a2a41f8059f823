"""Running the int8 student: picks a TFLite interpreter, checks the model against its card, and turns
a window of int16 audio into a float embedding through the card's frontend."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from .assets import resolve_model
from .errors import EdgeparaError, ModelError
from .frontend import FrontendConfig, LogMel

REQUIRED_CARD_KEYS = ("name", "sha256", "sample_rate", "window_samples", "hop_samples", "frontend",
                      "embedding_dim", "input", "output")

_BACKENDS = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
)


def _import_interpreter():
    import importlib

    failures = []
    for name, module in _BACKENDS:
        try:
            mod = importlib.import_module(module)
            return name, mod.Interpreter, getattr(mod, "load_delegate", None) or getattr(
                getattr(mod, "experimental", None), "load_delegate", None)
        except Exception as err:  # an installed backend can still fail to import (e.g. numpy ABI)
            failures.append(f"{name}: {type(err).__name__}")
    raise EdgeparaError("expected a TFLite interpreter (pip install ai-edge-litert), got none: " + "; ".join(failures))


@contextlib.contextmanager
def _quiet_stderr():
    """LiteRT's C++ side prints an INFO line per interpreter on fd 2; keep the user's terminal clean."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def interpreter_backend() -> str:
    """Which interpreter package runs the models here."""
    return _import_interpreter()[0]


class Embedder:
    """int16 window -> float32 embedding, with the model checked against its card on load."""

    def __init__(self, model: str | Path = "edgepara-small", threads: int = 1, edgetpu: bool = False,
                 notify=None):
        self.path, self.card = resolve_model(str(model))
        self.name = self.card["name"]
        self.backend, interpreter_cls, load_delegate = _import_interpreter()
        self.delegate = "cpu"
        delegates = []
        if edgetpu:
            try:
                delegates = [load_delegate("libedgetpu.so.1")]
                self.delegate = "edgetpu"
            except (OSError, ValueError, TypeError, RuntimeError) as err:
                if notify:
                    notify(f"Edge TPU not available ({type(err).__name__}); running on the CPU")
        try:
            with _quiet_stderr():
                self.interpreter = interpreter_cls(model_path=str(self.path), num_threads=threads,
                                                   experimental_delegates=delegates or None)
                self.interpreter.allocate_tensors()
        except Exception as err:
            raise ModelError(f"expected a loadable TFLite model at {self.path}, got {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        self._check_against_card()
        self.frontend_config = FrontendConfig.from_card(self.card["frontend"])
        self.frontend = LogMel(self.frontend_config)
        self.sample_rate = int(self.card["sample_rate"])
        self.window = int(self.card["window_samples"])
        self.hop = int(self.card["hop_samples"])
        self.dim = int(self.card["embedding_dim"])

    def _check_against_card(self) -> None:
        missing = [k for k in REQUIRED_CARD_KEYS if k not in self.card]
        if missing:
            raise ModelError(f"{self.path.with_suffix('.json').name}: expected card fields {', '.join(missing)}, got none")
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{self.path.name}: expected 1 input and 1 output, got {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        for role, detail in (("input", self._in), ("output", self._out)):
            spec = self.card[role]
            shape = [int(s) for s in detail["shape"]]
            if shape != list(spec["shape"]):
                raise ModelError(f"{self.path.name}: card says {role} shape {spec['shape']}, model has {shape}")
            dtype = np.dtype(detail["dtype"]).name
            if dtype != spec["dtype"]:
                raise ModelError(f"{self.path.name}: card says {role} dtype {spec['dtype']}, model has {dtype}")
        if self.card["output"]["shape"][-1] != self.card["embedding_dim"]:
            raise ModelError(f"{self.path.name}: card embedding_dim {self.card['embedding_dim']} disagrees with output shape {self.card['output']['shape']}")
        dims = self.card.get("speaker_dims")
        if dims is not None and not (isinstance(dims, list) and len(dims) == 2 and all(type(d) is int for d in dims)
                                     and 0 <= dims[0] < dims[1] <= self.card["embedding_dim"]):
            raise ModelError(f"{self.path.with_suffix('.json').name}: expected speaker_dims [start, end] within "
                             f"0..{self.card['embedding_dim']}, got {dims!r}")
        self._in_scale, self._in_zero = self._in["quantization"]
        self._out_scale, self._out_zero = self._out["quantization"]
        for role, (scale, zero) in (("input", self._in["quantization"]), ("output", self._out["quantization"])):
            spec = self.card[role]
            if "scale" in spec and (abs(spec["scale"] - scale) > 1e-6 * abs(scale) or spec.get("zero_point") != zero):
                raise ModelError(f"{self.path.name}: card says {role} quantization ({spec['scale']:.6g}, "
                                 f"{spec.get('zero_point')}), model has ({scale:.6g}, {zero})")
        frontend = FrontendConfig.from_card(self.card["frontend"])
        expected = [1, frontend.n_frames(int(self.card["window_samples"])), frontend.n_mels, 1]
        if expected != list(self.card["input"]["shape"]):
            raise ModelError(f"{self.path.name}: card frontend and window give input {expected}, "
                             f"card input shape is {self.card['input']['shape']}")

    def features(self, window: np.ndarray) -> np.ndarray:
        if len(window) != self.window:
            raise ValueError(f"expected a window of {self.window} samples, got {len(window)}")
        return self.frontend(window)

    def embed(self, window: np.ndarray) -> np.ndarray:
        mel = self.features(window)
        q = np.round(mel / self._in_scale + self._in_zero)
        x = np.clip(q, -128, 127).astype(np.int8).reshape(self._in["shape"])
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"]).reshape(-1).astype(np.float32)
        return (y - self._out_zero) * self._out_scale

    def timed_embed(self, window: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        emb = self.embed(window)
        return emb, (time.perf_counter() - t0) * 1000.0
