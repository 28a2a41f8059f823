"""Running the int8 student: picks a TFLite interpreter, checks the model against its card, and turns
a window of int16 audio into a float embedding through the card's frontend."""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .assets import DEFAULT_MODEL, resolve_model
from .errors import EdgeparaError, ModelError, UsageError
from .frontend import FrontendConfig, OverlappingLogMel, band_shape

log = logging.getLogger(__name__)

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


# --- Edge TPU ---------------------------------------------------------------------------------------------
# The Coral runtime library's file name on each system (what load_delegate would dlopen).
_EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
# The C entry points of an external TFLite delegate; LiteRT's Delegate class calls both.
_DELEGATE_SYMBOLS = ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")


def edgetpu_library_name() -> str:
    return _EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")


def edgetpu_runtime_problem() -> str | None:
    """None when the Edge TPU runtime library loads and exports the delegate entry points, else why not.

    Checked before LiteRT's load_delegate is called: when the library is missing, that call fails half-way
    through constructing its Delegate object, whose __del__ then prints an 'Exception ignored' traceback at
    exit that no try/except can catch."""
    name = edgetpu_library_name()
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return f"no Edge TPU runtime ({name} not found; install libedgetpu)"
    missing = [symbol for symbol in _DELEGATE_SYMBOLS if not hasattr(library, symbol)]
    if missing:
        return f"{name} lacks {', '.join(missing)} (not an Edge TPU runtime)"
    return None


def edgetpu_model_path(model_path: Path) -> Path:
    """Where edgetpu_compiler puts the compiled copy of NAME.tflite: NAME_edgetpu.tflite beside it."""
    return model_path.with_name(f"{model_path.stem}_edgetpu.tflite")


def choose_model_file(model_path: Path, edgetpu_requested: bool, runtime_problem: str | None) -> tuple[Path, str | None]:
    """(file to load, reason it is not the Edge TPU or None) for the card-checked model at model_path.

    The delegate only helps with the compiled copy: on an uncompiled model every op stays on the CPU, so
    without NAME_edgetpu.tflite (or without the runtime) the plain model runs on the CPU without a delegate."""
    if not edgetpu_requested:
        return model_path, None
    if runtime_problem:
        return model_path, runtime_problem
    compiled = edgetpu_model_path(model_path)
    if not compiled.is_file():
        return model_path, f"no {compiled.name} beside the model (compile it with edgetpu_compiler)"
    return compiled, None


def interpreter_backend() -> str:
    """Which interpreter package runs the models here."""
    return _import_interpreter()[0]


class Embedder:
    """int16 window -> float32 embedding, with the model checked against its card on load."""

    def __init__(self, model: str | Path = DEFAULT_MODEL, threads: int = 1, edgetpu: bool = False,
                 notify=None):
        """`notify(message)` gets the one line saying why --edgetpu fell back to the CPU; without it the
        line goes to this module's logger as a warning."""
        if type(threads) is not int or threads < 1:
            raise UsageError(f"expected threads >= 1 (an integer), got {threads!r}")
        self.path, self.card = resolve_model(str(model))
        self.name = self.card["name"]
        self.backend, interpreter_cls, load_delegate = _import_interpreter()
        self.delegate = "cpu"
        self.model_file = self.path  # what the interpreter runs: the card-checked model or its Edge TPU copy
        delegates = []
        if edgetpu:
            self.model_file, problem = choose_model_file(self.path, True, edgetpu_runtime_problem())
            if problem is None:
                try:
                    delegates = [load_delegate(edgetpu_library_name())]
                    self.delegate = "edgetpu"
                except Exception as err:  # e.g. ValueError "Failed to load delegate": runtime but no Coral
                    first_line = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                    problem = f"Edge TPU delegate failed ({first_line})"
                    self.model_file = self.path
            if problem:
                (notify or log.warning)(f"Edge TPU not used: {problem}; running on the CPU")
        try:
            with _quiet_stderr():
                self.interpreter = interpreter_cls(model_path=str(self.model_file), num_threads=threads,
                                                   experimental_delegates=delegates or None)
                self.interpreter.allocate_tensors()
        except Exception as err:
            raise ModelError(f"expected a loadable TFLite model at {self.model_file}, got {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        self._check_against_card()
        self.frontend_config = FrontendConfig.from_card(self.card["frontend"])
        self.frontend = OverlappingLogMel(self.frontend_config, hop=int(self.card["hop_samples"]))
        self.sample_rate = int(self.card["sample_rate"])
        self.window = int(self.card["window_samples"])
        self.hop = int(self.card["hop_samples"])
        self.dim = int(self.card["embedding_dim"])

    def _check_against_card(self) -> None:
        """The interpreter's tensors against the (already validated) card: shapes, dtypes, quantization."""
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{self.model_file.name}: expected 1 input and 1 output, got {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        for role, detail in (("input", self._in), ("output", self._out)):
            spec = self.card[role]
            shape = [int(s) for s in detail["shape"]]
            if shape != list(spec["shape"]):
                raise ModelError(f"{self.model_file.name}: card says {role} shape {spec['shape']}, model has {shape}")
            dtype = np.dtype(detail["dtype"]).name
            if dtype != spec["dtype"]:
                raise ModelError(f"{self.model_file.name}: card says {role} dtype {spec['dtype']}, model has {dtype}")
        if self.card["output"]["shape"][-1] != self.card["embedding_dim"]:
            raise ModelError(f"{self.model_file.name}: card embedding_dim {self.card['embedding_dim']} disagrees with output shape {self.card['output']['shape']}")
        self._in_scale, self._in_zero = self._in["quantization"]
        self._out_scale, self._out_zero = self._out["quantization"]
        for role, (scale, zero) in (("input", self._in["quantization"]), ("output", self._out["quantization"])):
            spec = self.card[role]
            if "scale" in spec and (abs(spec["scale"] - scale) > 1e-6 * abs(scale) or spec.get("zero_point") != zero):
                raise ModelError(f"{self.model_file.name}: card says {role} quantization ({spec['scale']:.6g}, "
                                 f"{spec.get('zero_point')}), model has ({scale:.6g}, {zero})")
        frontend = FrontendConfig.from_card(self.card["frontend"])
        expected = [1, frontend.n_frames(int(self.card["window_samples"])), frontend.n_mels, 1]
        if expected != list(self.card["input"]["shape"]):
            raise ModelError(f"{self.model_file.name}: card frontend and window give input {expected}, "
                             f"card input shape is {self.card['input']['shape']}")

    def features(self, window: np.ndarray) -> np.ndarray:
        if len(window) != self.window:
            raise ValueError(f"expected a window of {self.window} samples, got {len(window)}")
        return self.frontend(window)

    def embed(self, window: np.ndarray) -> np.ndarray:
        mel = self._mel = self.features(window)
        q = np.round(mel / self._in_scale + self._in_zero)
        x = np.clip(q, -128, 127).astype(np.int8).reshape(self._in["shape"])
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"]).reshape(-1).astype(np.float32)
        return (y - self._out_zero) * self._out_scale

    def band_shape(self) -> np.ndarray:
        """The spectral shape (frontend.band_shape) of the window embedded last: what a head with the card input
        "embedding+band_shape" reads beside the embedding, from log-mels already computed."""
        if getattr(self, "_mel", None) is None:
            raise ValueError("expected a window embedded first, got none")
        return band_shape(self._mel)

    def timed_embed(self, window: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        emb = self.embed(window)
        return emb, (time.perf_counter() - t0) * 1000.0
