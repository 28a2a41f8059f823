"""Finding shipped models and heads, and checking each against its JSON card before use."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

from .errors import EdgeparaError, HeadError, ModelError, UsageError

DEFAULT_MODEL = "edgepara-small"


def _asset_dir(kind: str) -> Path:
    """Installed wheel: edgepara/_assets/<kind>; source tree / editable install: <repo>/<kind>."""
    packaged = Path(str(resources.files("edgepara"))) / "_assets" / kind
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / kind


def models_dir() -> Path:
    return _asset_dir("models")


def heads_dir() -> Path:
    return _asset_dir("heads")


def atomic_write(path: Path, save, mode: int = 0o644) -> None:
    """The project's one way to write a file: `save(tmp)` writes a temporary file beside `path` (same suffix,
    so numpy adds none), which is flushed to disk and then replaces `path` in one step, and the rename itself
    is made durable. Readers see the old file or the new one, never a partial one, also after a power cut;
    a failure (a full disk) leaves the old file as it was. `mode`: the new file's permissions."""
    atomic_write_all([(Path(path), save)], mode)


def atomic_write_all(outputs, mode: int = 0o644) -> None:
    """Several files, all or nothing: outputs is [(path, save(tmp_path))]; every file is written and synced
    beside its path first, and only then are they moved into place."""
    staged = []
    try:
        for path, save in outputs:
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
            os.close(fd)
            staged.append((path, Path(tmp)))
            save(Path(tmp))
            _take_numpy_spill(Path(tmp))
            os.chmod(tmp, mode)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())  # the data must be on disk before the rename makes it the file
        for path, tmp in staged:
            os.replace(tmp, path)
        for directory in {path.parent for path, _ in staged}:
            fsync_directory(directory)
    finally:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
            for spill in NUMPY_SUFFIXES:
                Path(f"{tmp}{spill}").unlink(missing_ok=True)


NUMPY_SUFFIXES = (".npy", ".npz")


def _take_numpy_spill(tmp: Path) -> None:
    """np.save / np.savez append their suffix to a path without it (`--out emb`, `--out y.wav`): what they
    wrote is then TMP.npy, not TMP. That file is the output: it takes TMP's place, so exactly the named path
    is written, whatever its suffix."""
    for suffix in NUMPY_SUFFIXES:
        spill = Path(f"{tmp}{suffix}")
        if spill.exists():
            os.replace(spill, tmp)


def fsync_directory(directory: Path) -> None:
    """Makes a rename or unlink in `directory` durable across power loss (skipped where not possible)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_card(card_path: Path, error=ModelError) -> dict:
    if not card_path.exists():
        raise error(f"expected a card beside the file, got no {card_path}")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"expected a JSON card in {card_path}, got unparsable text ({err.msg if hasattr(err, 'msg') else err})") from None
    if not isinstance(card, dict):
        raise error(f"expected a JSON object in {card_path}, got {type(card).__name__}")
    return card


def verify_file(path: Path, card: dict, error=ModelError) -> None:
    """Size and sha256 must match the card: a truncated or tampered file is refused before it is parsed."""
    if not path.exists():
        raise error(f"expected the file {path} named by its card, got nothing there")
    size = path.stat().st_size
    if "bytes" in card and size != card["bytes"]:
        raise error(f"{path.name}: expected {card['bytes']} bytes (card), got {size} (truncated or replaced?)")
    digest = sha256_file(path)
    if digest != card.get("sha256"):
        raise error(f"{path.name}: expected sha256 {str(card.get('sha256'))[:12]}… (card), got {digest[:12]}… (tampered or replaced)")


def available_models() -> list[str]:
    return sorted(p.stem for p in models_dir().glob("*.json"))


def shipped_heads(model: str) -> list[str]:
    """Names of the probe heads shipped for one model (heads/MODEL/NAME.npz); 'speaker' is not among them:
    it is built from enrolled profiles (its calibrated threshold, if shipped, is heads/MODEL/speaker.json)."""
    return sorted(p.stem for p in (heads_dir() / model).glob("*.npz"))


def resolve_model(name_or_path: str) -> tuple[Path, dict]:
    """A shipped model name (edgepara-tiny) or a path to NAME.tflite with NAME.json beside it."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".tflite" or candidate.exists():
        tflite = candidate if candidate.suffix == ".tflite" else candidate.with_suffix(".tflite")
    else:
        tflite = models_dir() / f"{name_or_path}.tflite"
        if not tflite.with_suffix(".json").exists():
            known = ", ".join(available_models()) or "none installed"
            raise ModelError(f"expected a model name ({known}) or a .tflite path, got {name_or_path!r}")
    card = read_card(tflite.with_suffix(".json"))
    validate_model_card(card, tflite.with_suffix(".json").name)
    verify_file(tflite, card)
    return tflite, card


def resolve_head(name_or_path: str, model: str = DEFAULT_MODEL) -> tuple[Path, dict]:
    """A shipped head name (heads/MODEL/NAME.npz, e.g. emotion) or a path to NAME.npz with NAME.json beside it.
    Shipped heads are kept per model because a probe only fits the embedding it was trained on."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".npz", ".json") or candidate.exists():
        npz = candidate.with_suffix(".npz")
    else:
        npz = heads_dir() / model / f"{name_or_path}.npz"
        if not npz.with_suffix(".json").exists():
            known = sorted(p.stem for p in (heads_dir() / model).glob("*.npz"))
            elsewhere = sorted(p.parent.name for p in heads_dir().glob(f"*/{name_or_path}.npz"))
            hint = f"; {name_or_path!r} ships for {', '.join(elsewhere)}" if elsewhere else ""
            raise HeadError(f"expected a head name for model {model} ({', '.join(known + ['speaker'])}) "
                            f"or a .npz path, got {name_or_path!r}{hint}")
    card = read_card(npz.with_suffix(".json"), HeadError)
    verify_file(npz, card, HeadError)
    return npz, card


# --- model cards ------------------------------------------------------------------------------------------
# A card is checked once, here, where it is read: past this point code may index it without guarding, and a
# wrong type surfaces as one line naming the field instead of a TypeError deep in the frontend.

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _describe(value) -> str:
    """A card value as JSON spells it (null, true, "512"), cut short: the error line stays one line."""
    text = json.dumps(value, default=lambda v: type(v).__name__)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive_int(value) -> bool:
    return type(value) is int and value >= 1  # bool is an int subclass; true/false is not a count


def _number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _need(ok: bool, where: str, field: str, expected: str, value) -> None:
    if not ok:
        raise ModelError(f"{where}: {field}: expected {expected}, got {_describe(value)}")


def _validate_tensor_spec(spec, where: str, role: str) -> None:
    _need(isinstance(spec, dict), where, role, "an object with shape and dtype", spec)
    shape = spec.get("shape")
    _need(isinstance(shape, list) and len(shape) >= 1 and all(_positive_int(s) for s in shape), where,
          f"{role}.shape", "a list of positive integers", shape)
    _need(isinstance(spec.get("dtype"), str), where, f"{role}.dtype", "a dtype name such as \"int8\"", spec.get("dtype"))
    if "scale" in spec:
        _need(_number(spec["scale"]) and spec["scale"] > 0, where, f"{role}.scale", "a positive number", spec["scale"])
    if "zero_point" in spec:
        _need(type(spec["zero_point"]) is int, where, f"{role}.zero_point", "an integer", spec["zero_point"])


def _validate_frontend(frontend, where: str, sample_rate: int, window: int) -> None:
    _need(isinstance(frontend, dict), where, "frontend", "an object of log-mel parameters", frontend)
    for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
        if key in frontend:  # missing fields are named by FrontendConfig.from_card, all at once
            _need(_positive_int(frontend[key]), where, f"frontend.{key}", "an integer >= 1", frontend[key])
    for key in ("f_min", "f_max", "log_floor"):
        if key in frontend:
            _need(_number(frontend[key]) and frontend[key] >= 0, where, f"frontend.{key}", "a number >= 0",
                  frontend[key])
    get = frontend.get
    if "sample_rate" in frontend:
        _need(get("sample_rate") == sample_rate, where, "frontend.sample_rate", f"the card's sample_rate {sample_rate}",
              get("sample_rate"))
    if "n_fft" in frontend and "win_length" in frontend:
        _need(get("win_length") <= get("n_fft"), where, "frontend.win_length", f"at most n_fft ({get('n_fft')})",
              get("win_length"))
    if "n_fft" in frontend:
        _need(get("n_fft") <= window, where, "frontend.n_fft", f"at most window_samples ({window})", get("n_fft"))
    if "f_min" in frontend and "f_max" in frontend:
        _need(get("f_min") < get("f_max") <= sample_rate / 2, where, "frontend.f_max",
              f"above f_min ({get('f_min')}) and at most half the sample rate ({sample_rate / 2:g})", get("f_max"))
    if "log_floor" in frontend:
        _need(get("log_floor") > 0, where, "frontend.log_floor", "a number > 0 (the log of 0 is -inf)", get("log_floor"))


def validate_model_card(card: dict, where: str) -> None:
    """Every field the runtime reads has the right type and a sane value; `where` names the card file."""
    required = ("name", "sha256", "bytes", "sample_rate", "window_samples", "hop_samples", "frontend",
                "embedding_dim", "input", "output")
    missing = [k for k in required if k not in card]
    if missing:
        raise ModelError(f"{where}: expected card fields {', '.join(missing)}, got none")
    _need(isinstance(card["name"], str) and card["name"] != "", where, "name", "a non-empty string", card["name"])
    _need(isinstance(card["sha256"], str) and _SHA256.fullmatch(card["sha256"]) is not None, where, "sha256",
          "64 lowercase hex digits", card["sha256"])
    for key in ("bytes", "sample_rate", "window_samples", "hop_samples", "embedding_dim"):
        _need(_positive_int(card[key]), where, key, "an integer >= 1", card[key])
    _validate_frontend(card["frontend"], where, card["sample_rate"], card["window_samples"])
    _validate_tensor_spec(card["input"], where, "input")
    _validate_tensor_spec(card["output"], where, "output")
    dims = card.get("speaker_dims")
    if dims is not None:
        if not (isinstance(dims, list) and len(dims) == 2 and all(type(d) is int for d in dims)
                and 0 <= dims[0] < dims[1] <= card["embedding_dim"]):
            raise ModelError(f"{where}: expected speaker_dims [start, end] within 0..{card['embedding_dim']}, "
                             f"got {_describe(dims)}")


# --- model identity ---------------------------------------------------------------------------------------
# Embeddings are comparable only between models with the same name, file hash and dimension. Heads, speaker
# profiles and calibrated thresholds each record the model they were built on; they are all checked here.

def model_identity(model_card: dict) -> tuple[str, str, int]:
    """(name, sha256, embedding_dim) of a (validated) model card."""
    return str(model_card["name"]), str(model_card["sha256"]), int(model_card["embedding_dim"])


def built_on_identity(artifact_card: dict) -> tuple:
    """(model, model_sha256, dim) that a head, profile or calibration card says it was built on."""
    return artifact_card.get("model"), artifact_card.get("model_sha256"), artifact_card.get("dim")


def describe_model(name, sha256, dim) -> str:
    return f"{name} (sha256 {str(sha256)[:12]}…, {dim}-d)"


def check_built_on_model(artifact: str, artifact_card: dict, model_card: dict, *, error=HeadError,
                         built: str = "trained", advice: str = "retrain the head for this model") -> None:
    """Refuses an artifact (head, profile, threshold) made on another model than the one loaded."""
    want, have = built_on_identity(artifact_card), model_identity(model_card)
    if want != have:
        raise error(f"{artifact}: {built} on model {describe_model(*want)}, got model {describe_model(*have)}; "
                    f"{advice}")


# --- output paths -----------------------------------------------------------------------------------------

def check_writable_destination(path: str | Path, option: str, inputs=()) -> Path:
    """Refuses an output path that cannot be written, before any long work is done for it: its nearest
    existing folder must be a folder in which a file can be created (tried for real: permissions alone miss
    read-only mounts and pseudo file systems such as /proc). An output that is one of the `inputs` (the same
    file, by any name) is a usage error: writing it would destroy what is being read."""
    path = Path(path)
    for source in inputs:
        try:
            same = path.exists() and Path(source).exists() and os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise UsageError(f"{option}: expected an output path other than the inputs, got {path}, which is the "
                             f"input {source}")
    if path.is_dir():
        raise EdgeparaError(f"{option}: expected a file path, got the folder {path}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise EdgeparaError(f"{option}: expected a folder to write {path} in, got the file {folder}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgepara-write-test-"):
            pass
    except OSError as err:
        raise EdgeparaError(f"{option}: expected a folder where {path} can be written, got {folder}, where "
                            f"creating a file fails ({err.strerror or type(err).__name__})") from None
    return path
