"""Enrolled speaker profiles: one small JSON file per speaker in a user data directory.

A profile keeps the centroid of a speaker's embeddings together with the model that produced them, because
centroids from different models (or from a retrained model with the same name) live in different embedding
spaces and must never be compared. Files are replaced atomically, so a failed write (disk full, power loss)
leaves the previous profile intact.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import ProfileError

MIN_ENROLL_SECONDS = 3.0
UNKNOWN_SPEAKER = "unknown"  # the label for "none of the enrolled speakers", so no profile may take it
PROFILE_FORMAT = "edgepara-speaker-profile"
PROFILE_VERSION = 1
MAX_NAME_LENGTH = 64
# Forbidden on at least one of Linux, macOS or Windows file systems; a name becomes a file name.
_FORBIDDEN_NAME_CHARACTERS = set('/\\:*?"<>|')
_REQUIRED_FIELDS = {"name": str, "centroid": list, "n_utterances": int, "seconds": (int, float),
                    "model": str, "model_sha256": str, "dim": int, "created": str, "updated": str}


@dataclass(frozen=True)
class Profile:
    """One enrolled speaker. `centroid` is the mean of the speaker's L2-normalised embeddings (not itself
    normalised, so that re-enrolling can merge centroids exactly, weighted by `n_utterances`)."""

    name: str
    centroid: list[float]
    n_utterances: int
    seconds: float
    model: str
    model_sha256: str
    dim: int
    created: str
    updated: str

    def centroid_array(self) -> np.ndarray:
        return np.asarray(self.centroid, dtype=np.float64)

    def matches_model(self, model_card: dict) -> bool:
        name, sha256, dim = model_identity(model_card)
        return (self.model, self.model_sha256, self.dim) == (name, sha256, dim)

    def describe_model(self) -> str:
        return describe_model(self.model, self.model_sha256, self.dim)


def default_profile_dir() -> Path:
    """$XDG_DATA_HOME/edgepara/profiles, or ~/.local/share/edgepara/profiles when it is unset."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(data_home) if data_home and os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "edgepara" / "profiles"


def check_enough_speech(seconds: float) -> None:
    """Raises ProfileError unless `seconds` of speech is enough for a stable centroid."""
    _check_seconds(seconds)
    if seconds < MIN_ENROLL_SECONDS:
        # Round "got" down and "more" up so the two always add up to the minimum, as the user reads them.
        got = math.floor(round(seconds * 10, 6)) / 10
        missing = math.ceil(round((MIN_ENROLL_SECONDS - seconds) * 10, 6)) / 10
        raise ProfileError(f"expected at least {MIN_ENROLL_SECONDS:.1f} s of speech to enroll, got {got:.1f} s: "
                           f"record {missing:.1f} s more")


def validate_name(name: str) -> str:
    """Returns the name if it can be a speaker name and a file name on every platform, else ProfileError."""
    if not isinstance(name, str):
        raise ProfileError(f"expected a speaker name as text, got {type(name).__name__}")
    if not name.strip():
        raise ProfileError(f"expected a non-empty speaker name, got {name!r}")
    if name != name.strip():
        raise ProfileError(f"expected a speaker name without leading or trailing spaces, got {name!r}")
    bad = sorted({c for c in name if c in _FORBIDDEN_NAME_CHARACTERS or not c.isprintable()})
    if bad:
        forbidden = "".join(sorted(_FORBIDDEN_NAME_CHARACTERS))
        raise ProfileError(f"expected a speaker name without path separators, {forbidden} or control characters, "
                           f"got {name!r} (contains {''.join(bad)!r})")
    if name.startswith("."):
        # Hidden files are where the store keeps its temporary files; '.' and '..' are directories.
        raise ProfileError(f"expected a speaker name that does not start with '.', got {name!r}")
    # The name plus the temp file's affixes must stay under the usual 255-byte file name limit.
    if len(name) > MAX_NAME_LENGTH or len(name.encode("utf-8")) > 3 * MAX_NAME_LENGTH:
        raise ProfileError(f"expected a speaker name of at most {MAX_NAME_LENGTH} characters "
                           f"({3 * MAX_NAME_LENGTH} bytes in UTF-8), "
                           f"got {len(name)} ({len(name.encode('utf-8'))} bytes)")
    if name.lower() == UNKNOWN_SPEAKER:
        raise ProfileError(f"expected a speaker name other than {UNKNOWN_SPEAKER!r} (the label for no match), "
                           f"got {name!r}")
    return name


def model_identity(model_card: dict) -> tuple[str, str, int]:
    """(name, sha256, embedding_dim) of a model card; these three decide whether embeddings are comparable."""
    if not isinstance(model_card, dict):
        raise ProfileError(f"expected a model card (dict), got {type(model_card).__name__}")
    missing = [k for k in ("name", "sha256", "embedding_dim") if k not in model_card]
    if missing:
        raise ProfileError(f"expected a model card with name, sha256 and embedding_dim, "
                           f"got one missing {', '.join(missing)}")
    return str(model_card["name"]), str(model_card["sha256"]), int(model_card["embedding_dim"])


def describe_model(name: str, sha256: str, dim: int) -> str:
    return f"{name} (sha256 {sha256[:12]}…, {dim}-d)"


class ProfileStore:
    """Speaker profiles as DIRECTORY/NAME.json. Directory and files are private to the user (0700/0600):
    a voice centroid is biometric data."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_profile_dir()

    def path_for(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.json"

    # -- reading ---------------------------------------------------------------------------------------

    def list(self) -> list[Profile]:
        """All profiles, sorted by name. A missing directory is an empty store."""
        if not self.directory.exists():
            return []
        if not self.directory.is_dir():
            raise ProfileError(f"expected a directory of speaker profiles at {self.directory}, got a file")
        try:
            # Temporary files are '.NAME.json.XXXX.tmp', so '*.json' never picks up a half-written one.
            paths = sorted(p for p in self.directory.glob("*.json") if not p.name.startswith("."))
        except OSError as err:
            raise ProfileError(f"expected a readable profile directory {self.directory}, "
                               f"got {err.strerror or err}") from None
        return sorted((self._read(path) for path in paths), key=lambda p: p.name)

    def get(self, name: str) -> Profile | None:
        path = self.path_for(name)
        if not path.exists():
            return None
        profile = self._read(path)
        if profile.name != name:
            # Case-insensitive file systems (macOS, Windows) map 'Alice.json' onto an existing 'alice.json'.
            raise ProfileError(f"expected a speaker name this file system can tell apart from the enrolled "
                               f"{profile.name!r}, got {name!r}")
        return profile

    def load_for_model(self, model_card: dict) -> list[Profile]:
        """All profiles, refusing the store if any was enrolled with a different model (or model version)."""
        name, sha256, dim = model_identity(model_card)
        profiles = self.list()
        foreign = [p for p in profiles if not p.matches_model(model_card)]
        if foreign:
            first = foreign[0]
            others = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise ProfileError(
                f"speaker profile {first.name!r}{others} was enrolled with model {first.describe_model()}, "
                f"got model {describe_model(name, sha256, dim)}: remove it, then enroll it again with this model "
                f"(`edgepara enroll {first.name} FILE…`)")
        return profiles

    def _read(self, path: Path) -> Profile:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ProfileError(f"expected a JSON speaker profile in {path}, "
                               f"got bytes that are not UTF-8 text") from None
        except OSError as err:
            raise ProfileError(f"expected a readable speaker profile at {path}, got {err.strerror or err}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ProfileError(f"expected a JSON speaker profile in {path}, got unparsable text "
                               f"({err.msg} at line {err.lineno} column {err.colno})") from None
        return _profile_from_json(data, path)

    # -- writing ---------------------------------------------------------------------------------------

    def add(self, name: str, embeddings: np.ndarray, seconds: float, model_card: dict) -> Profile:
        """Enrolls `name` from `embeddings` (n, dim): one row per utterance (or window) of their speech,
        `seconds` of speech in all. Enrolling an existing name merges: the new centroid is the mean over all
        rows ever enrolled, i.e. the old and new centroids weighted by their utterance counts. The total speech
        must reach MIN_ENROLL_SECONDS."""
        validate_name(name)
        model, sha256, dim = model_identity(model_card)
        _check_seconds(seconds)
        unit = _unit_rows(embeddings, dim)
        existing = self.get(name)
        now = _now()
        if existing is None:
            check_enough_speech(seconds)
            profile = Profile(name, unit.mean(axis=0).tolist(), len(unit), float(seconds), model, sha256, dim, now, now)
        else:
            if not existing.matches_model(model_card):
                raise ProfileError(
                    f"speaker {name!r} was enrolled with model {existing.describe_model()}, got embeddings from "
                    f"model {describe_model(model, sha256, dim)}: centroids of two models cannot be merged; "
                    f"remove {name!r} first to re-enroll with this model")
            n_total = existing.n_utterances + len(unit)
            total_seconds = existing.seconds + float(seconds)
            check_enough_speech(total_seconds)
            merged = (existing.centroid_array() * existing.n_utterances + unit.sum(axis=0)) / n_total
            profile = Profile(name, merged.tolist(), n_total, total_seconds, model, sha256, dim, existing.created, now)
        self._write(profile)
        return profile

    def remove(self, name: str) -> None:
        path = self.path_for(name)
        if self.get(name) is None:
            known = ", ".join(p.name for p in self.list()) or "none enrolled"
            raise ProfileError(f"expected an enrolled speaker name ({known}), got {name!r}")
        try:
            path.unlink()
        except OSError as err:
            raise ProfileError(f"could not remove {path}: {err.strerror or err}") from None
        _fsync_directory(self.directory)

    def _write(self, profile: Profile) -> None:
        path = self.path_for(profile.name)
        payload = json.dumps({"format": PROFILE_FORMAT, "version": PROFILE_VERSION, **asdict(profile)}, indent=1)
        data = (payload + "\n").encode("utf-8")
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _atomic_write(path, data)
        except OSError as err:
            reason = err.strerror or str(err) or errno.errorcode.get(err.errno, "OSError")
            raise ProfileError(f"could not save speaker profile {profile.name!r} to {path}: {reason}; "
                               f"any previous profile is unchanged") from None


# -- helpers -------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_seconds(seconds) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise ProfileError(f"expected a non-negative number of seconds of speech, got {seconds!r}")


def _unit_rows(embeddings, dim: int) -> np.ndarray:
    """(n, dim) embeddings scaled to unit length, so every utterance counts equally in the centroid
    whatever its loudness or the embedding's norm."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
        raise ProfileError(f"expected embeddings of shape (n ≥ 1, {dim}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ProfileError("expected finite embeddings, got NaN or infinity")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ProfileError(f"expected non-zero embeddings, got {int(np.sum(norms == 0))} all-zero row(s)")
    return x / norms


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)  # may write less than asked; loop until done or an OSError (ENOSPC)
        view = view[written:]


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory + fsync + os.replace: readers see the old file or the new one,
    never a partial one, and a failure before the replace leaves the old file untouched."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)  # the data must be on disk before the rename makes it the profile
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Makes a rename or unlink durable across power loss; not possible on Windows, where it is skipped."""
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


def _profile_from_json(data, path: Path) -> Profile:
    def bad(what: str) -> ProfileError:
        return ProfileError(f"expected a JSON speaker profile in {path}, got {what}")

    if not isinstance(data, dict):
        raise bad(f"a JSON {type(data).__name__}")
    if data.get("format") != PROFILE_FORMAT:
        raise bad(f"an object with format {data.get('format')!r} instead of {PROFILE_FORMAT!r}")
    if data.get("version") != PROFILE_VERSION:
        raise bad(f"format version {data.get('version')!r}, this edgepara reads version {PROFILE_VERSION}")
    missing = sorted(set(_REQUIRED_FIELDS) - set(data))
    if missing:
        raise bad(f"an object missing {', '.join(missing)}")
    for field, kind in _REQUIRED_FIELDS.items():
        value = data[field]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad(f"{field} of type {type(value).__name__}")
    centroid = data["centroid"]
    if len(centroid) != data["dim"] or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) for v in centroid):
        raise bad(f"a centroid that is not {data['dim']} finite numbers")
    if data["n_utterances"] < 1:
        raise bad(f"n_utterances {data['n_utterances']}")
    if path.stem != data["name"] and path.stem.casefold() != data["name"].casefold():
        raise bad(f"the name {data['name']!r} in a file named {path.name}")
    return Profile(data["name"], [float(v) for v in centroid], data["n_utterances"], float(data["seconds"]),
                   data["model"], data["model_sha256"], data["dim"], data["created"], data["updated"])
