"""Finding shipped models and heads, and checking each against its JSON card before use."""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from .errors import HeadError, ModelError

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


def atomic_write(path: Path, save) -> None:
    """`save(tmp)` writes a temporary file beside `path` (same suffix, so numpy adds none), which then
    replaces `path` in one step: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
