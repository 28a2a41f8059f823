"""The staged speech corpora (../shared/data by default) and their speaker-independent splits."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeparaError

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Evaluation protocol (docs/benchmarks.md, "Models and measured quality"): RAVDESS test actors 19-24, validation 17-18. EmoDB is evaluated
# leave-one-speaker-out, so every EmoDB speaker is a test speaker: EmoDB never enters distillation.
RAVDESS_TEST = {f"A{i:02d}" for i in range(19, 25)}
RAVDESS_VAL = {"A17", "A18"}
DATASETS = ("ravdess", "emodb", "fsdd")
# Speech the students learn from (only each set's training speakers / takes): English, Yoruba, Suba, Amharic,
# Arabic and the multilingual readings (Mboshi, Swahili, Kinyarwanda and nine more languages). EmoDB never enters.
DISTILLATION_SETS = ("ravdess", "fsdd", "speechocean762", "emospeech_in", "yoruba_ogunlao", "suba_africanvoices",
                     "ased_amharic", "baved_arabic", "multilingual_speech")


@dataclass(frozen=True)
class Utterance:
    dataset: str
    path: Path
    label: str
    speaker: str
    split: str
    duration_s: float = 0.0


def data_root(root: str | os.PathLike | None = None) -> Path:
    path = Path(root or os.environ.get("EDGEPARA_DATA") or DEFAULT_DATA_ROOT)
    if not (path / "ravdess" / "manifest.csv").exists():
        raise EdgeparaError(
            f"expected the speech data root with ravdess/, emodb/, fsdd/ manifests, got {path} "
            "(set --data-root or EDGEPARA_DATA)"
        )
    return path


MANIFEST_COLUMNS = ("path", "label", "speaker", "split")


def read_manifest_rows(dataset: str, root: Path, columns: tuple[str, ...] = MANIFEST_COLUMNS) -> list[dict]:
    """The rows of DATASET/manifest.csv under `root`; a missing file, or one without `columns`, is one line
    naming the file (the benchmarks and write-heads read several corpora: a data root lacking one says which)."""
    path = root / dataset / "manifest.csv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except FileNotFoundError:
        raise EdgeparaError(f"expected the {dataset} corpus at {path} (see ../shared/data/README), got no such "
                            f"file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EdgeparaError(f"expected a readable CSV manifest at {path}, got {err}") from None
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise EdgeparaError(f"expected columns {', '.join(columns)} in {path}, got none named {', '.join(missing)}")
    return rows


def load_manifest(dataset: str, root: Path) -> list[Utterance]:
    folder = root / dataset
    utterances = []
    for line, row in enumerate(read_manifest_rows(dataset, root), start=2):
        if row.get("kind") == "background":  # emospeech_in's phone background clips: noise, not speech
            continue
        split = row["split"]
        if dataset == "ravdess":  # enforce the protocol rather than trusting the suggestion column
            split = "test" if row["speaker"] in RAVDESS_TEST else "val" if row["speaker"] in RAVDESS_VAL else "train"
        try:
            duration = float(row.get("duration_s") or 0.0)
        except ValueError:
            raise EdgeparaError(f"expected a number of seconds in the duration_s column of {folder / 'manifest.csv'}, "
                                f"got {row['duration_s']!r} on line {line}") from None
        utterances.append(Utterance(dataset, folder / row["path"], row["label"], row["speaker"], split, duration))
    return utterances


def distillation_utterances(root: Path, sets: tuple[str, ...] = DISTILLATION_SETS) -> list[Utterance]:
    """Unlabelled audio the students learn from: never a speaker or take used for evaluation (RAVDESS
    17-24, FSDD val/test takes, speechocean762 and emospeech_in val/test speakers, all of EmoDB)."""
    missing = [s for s in sets if not (root / s / "manifest.csv").exists()]
    if missing:
        raise EdgeparaError(f"expected {', '.join(f'{s}/manifest.csv' for s in missing)} under {root}, got none")
    return [u for s in sets for u in load_manifest(s, root) if u.split == "train"]


# What soundfile (libsndfile) decodes; Opus inside Ogg included.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")


def user_utterances(spec: str | os.PathLike) -> list[Utterance]:
    """Any audio to distil from (`distill --data`): a folder, searched recursively for audio files (a file's
    speaker is its folder, relative to the top), or a CSV manifest with a `path` column (relative to the
    manifest's folder or absolute) and optional `speaker`, `label` (an emotion, used where it is one of the
    eight) and `duration_s` columns. Durations not given are read from the file headers (0 if unreadable:
    such a file is skipped and listed at labelling time)."""
    import soundfile as sf

    spec = Path(spec).resolve()  # absolute: Ray workers do not share the driver's working folder
    if spec.is_dir():
        files = sorted(p for p in spec.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        rows = [{"path": p, "speaker": spec.name if p.parent == spec else p.parent.relative_to(spec).as_posix()}
                for p in files]
    elif spec.is_file() and spec.suffix.lower() == ".csv":
        with open(spec, newline="", encoding="utf-8-sig") as f:  # spreadsheet exports start with a BOM
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise EdgeparaError(f"expected a 'path' column in {spec}, got {', '.join(reader.fieldnames or []) or 'none'}")
            rows = [{**r, "path": spec.parent / r["path"]} for r in reader if r.get("path")]
    else:
        raise EdgeparaError(f"expected --data to be a folder of audio files or a .csv manifest, got {spec}")
    if not rows:
        raise EdgeparaError(f"expected audio files ({', '.join(AUDIO_SUFFIXES)}) in {spec}, got none")
    utterances = []
    for row in rows:
        try:
            duration = float(row.get("duration_s") or 0.0)
        except ValueError:  # not a number: read it from the file instead
            duration = 0.0
        if not math.isfinite(duration) or duration <= 0:
            try:
                info = sf.info(str(row["path"]))
                duration = info.frames / info.samplerate
            except Exception:  # undecodable: labelling skips and lists it
                duration = 0.0
        speaker = row.get("speaker") or row["path"].parent.name
        utterances.append(Utterance("user", Path(row["path"]), row.get("label") or "", speaker, "train",
                                    float(duration)))
    return utterances


def _held_out(paths: list[Path], part: str) -> list[Path]:
    """Every third file (sorted) is kept for the robustness benchmark and never heard in training."""
    if part not in ("train", "eval"):
        raise EdgeparaError(f"expected part 'train' or 'eval', got {part!r}")
    return [p for i, p in enumerate(sorted(paths)) if (i % 3 == 0) == (part == "eval")]


def noise_paths(root: Path, part: str = "train") -> list[Path]:
    """Real background noise: noise_real (two thirds for training, a third for evaluation), plus
    emospeech_in's phone background clips for training."""
    paths = _held_out(_recordings("noise_real", root), part)
    if part == "train":
        paths += [root / "emospeech_in" / r["path"] for r in read_manifest_rows("emospeech_in", root, ("path",))
                  if r.get("kind") == "background"]
    return paths


def room_paths(root: Path, part: str = "train") -> list[Path]:
    """Measured room impulse responses (and one phone's device response), split as noise_paths splits."""
    return _held_out(_recordings("rirs_real", root), part)


def _recordings(dataset: str, root: Path) -> list[Path]:
    """The files DATASET/manifest.csv lists (rooms or noise); a missing manifest, or one without a path column,
    is one line naming it."""
    return [root / dataset / r["path"] for r in read_manifest_rows(dataset, root, ("path",))]
