"""Enrolled speaker profiles: one small JSON file per speaker in a user data directory.

A profile keeps the centroid of a speaker's embeddings together with the model that produced them, because
centroids from different models (or from a retrained model with the same name) live in different embedding
spaces and must never be compared. Files are replaced atomically, so a failed write (disk full, power loss)
leaves the previous profile intact. Writers (enroll, remove) hold an exclusive lock on DIRECTORY/.lock for their
read-modify-write, so two enrollments of one speaker at once both count. Readers need no lock: they see a whole
old file or a whole new one. A profile file that cannot be read is skipped with a warning, so one bad file does
not take every other speaker down with it; a directory that cannot be read is an error, never "nobody enrolled".
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import shlex
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import assets
from .assets import describe_model
from .errors import ProfileError

try:
    import fcntl
except ImportError:  # Windows: no flock; the targets are Linux and macOS, where it always exists
    fcntl = None

logger = logging.getLogger(__name__)

MIN_ENROLL_SECONDS = 3.0
UNKNOWN_SPEAKER = "unknown"  # the label for "none of the enrolled speakers", so no profile may take it
PROFILE_FORMAT = "edgepara-speaker-profile"
PROFILE_VERSION = 1
MAX_NAME_LENGTH = 64
# Forbidden on at least one of Linux, macOS or Windows file systems; a name becomes a file name.
_FORBIDDEN_NAME_CHARACTERS = set('/\\:*?"<>|')
LOCK_FILE_NAME = ".lock"  # hidden, so it can never be a profile (names may not start with '.')
# Writers hold the lock for a read and one small write; far longer means a stuck process, which is worth saying.
LOCK_TIMEOUT_S = 30.0
_LOCK_POLL_S = 0.05
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
    # running statistics of the enrolled utterances' raw embeddings (adaptation.Baseline.to_dict), the voice's
    # own baseline for adaptive heads; absent in profiles enrolled before edgepara 0.4
    baseline: dict | None = None
    # `listen --adapt-profiles`: the centroid as enrolled (the anchor an adapted centroid stays near) and how many
    # utterances have moved `centroid` since; None / 0 for a profile that never adapted
    enrolled_centroid: list[float] | None = None
    adapted_utterances: int = 0

    def centroid_array(self) -> np.ndarray:
        return np.asarray(self.centroid, dtype=np.float64)

    def anchor_array(self) -> np.ndarray:
        """The centroid as enrolled, before any adaptation."""
        return np.asarray(self.enrolled_centroid if self.enrolled_centroid is not None else self.centroid,
                          dtype=np.float64)

    def baseline_state(self):
        """The profile's adaptation.Baseline (empty when it has none): updated in memory as the speaker talks."""
        from .adaptation import Baseline

        return Baseline() if self.baseline is None else Baseline.from_dict(self.baseline, self.dim)

    def matches_model(self, model_card: dict) -> bool:
        name, sha256, dim = model_identity(model_card)
        return (self.model, self.model_sha256, self.dim) == (name, sha256, dim)

    def describe_model(self) -> str:
        return describe_model(self.model, self.model_sha256, self.dim)


@dataclass(frozen=True)
class SkippedProfile:
    """A profile file in the store that could not be read; `reason` is the one-line error."""

    path: Path
    reason: str

    def warning(self) -> str:
        """One line: what is wrong and how to get rid of the file."""
        name = self.path.name[: -len(".json")]
        try:
            validate_name(name)
            fix = f"`edgepara speakers --remove {shlex.quote(name)}` deletes it"
        except ProfileError:  # a hand-made file name no speaker can have: --remove cannot address it
            fix = "delete the file to get rid of it"
        return f"skipped an unreadable speaker profile: {self.reason}; {fix}"


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
    return assets.model_identity(model_card)


class ProfileStore:
    """Speaker profiles as DIRECTORY/NAME.json. Directory and files are private to the user (0700/0600):
    a voice centroid is biometric data."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_profile_dir()

    def path_for(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.json"

    # -- reading ---------------------------------------------------------------------------------------

    def list(self) -> list[Profile]:
        """All readable profiles, sorted by name; each unreadable profile file is logged as a warning and
        skipped. A missing directory is an empty store; one that cannot be read raises ProfileError."""
        profiles, skipped = self.scan()
        for bad in skipped:  # the prefix every edgepara warning carries, also through a library's logging
            logger.warning("edgepara: warning: %s", bad.warning())
        return profiles

    def scan(self) -> tuple[list[Profile], list[SkippedProfile]]:
        """(readable profiles sorted by name, unreadable profile files), logging nothing: for callers that
        report the skipped files themselves."""
        profiles, skipped = [], []
        for path in self._profile_paths():
            try:
                profiles.append(self._read(path))
            except ProfileError as err:
                skipped.append(SkippedProfile(path, str(err)))
        return sorted(profiles, key=lambda p: p.name), skipped

    def get(self, name: str) -> Profile | None:
        """The profile called `name`, None if there is none; ProfileError if its file cannot be read."""
        path = self.path_for(name)
        if not self._directory_exists() or not os.path.lexists(path):
            return None
        return _same_name(self._read(path), name)

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

    def _directory_exists(self) -> bool:
        """True for a listable directory, False when there is nothing at the path yet (an empty store).
        Anything else raises: reading an unusable directory as "nobody enrolled" would hide the problem."""
        directory = self.directory
        expected = f"expected a directory of speaker profiles at {directory}"
        try:
            info = os.stat(directory)
        except FileNotFoundError:
            if os.path.islink(directory):
                raise ProfileError(f"{expected}, got a symbolic link to {os.readlink(directory)}, "
                                   f"which does not exist") from None
            return False
        except NotADirectoryError:
            raise ProfileError(f"{expected}, got a path through the file {_first_non_directory(directory)}") from None
        except OSError as err:
            raise ProfileError(f"{expected}, got {err.strerror or err}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise ProfileError(f"{expected}, got {_describe_kind(info.st_mode)}")
        if not os.access(directory, os.R_OK | os.X_OK):
            raise ProfileError(f"expected a readable directory of speaker profiles at {directory}, got one with "
                               f"permissions {stat.filemode(info.st_mode)}")
        return True

    def _profile_paths(self) -> list[Path]:
        if not self._directory_exists():
            return []
        try:
            names = os.listdir(self.directory)
        except OSError as err:
            raise ProfileError(f"expected a readable directory of speaker profiles at {self.directory}, "
                               f"got {err.strerror or err}") from None
        # Temporary files ('.NAME.json.XXXX.tmp') and the lock file start with '.', which no name may.
        return sorted(self.directory / n for n in names if n.endswith(".json") and not n.startswith("."))

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
            # Some decoder messages already end in ' at' ("Invalid control character at").
            raise ProfileError(f"expected a JSON speaker profile in {path}, got unparsable text "
                               f"({err.msg.removesuffix(' at')} at line {err.lineno} column {err.colno})") from None
        try:
            return _profile_from_json(data, path)
        except ProfileError:
            raise
        except Exception as err:  # any shape the checks did not foresee: still one line naming the file
            raise ProfileError(f"expected a JSON speaker profile in {path}, got one that cannot be used "
                               f"({type(err).__name__}: {str(err)[:80]})") from None

    # -- writing ---------------------------------------------------------------------------------------

    def add(self, name: str, embeddings: np.ndarray, seconds: float, model_card: dict) -> Profile:
        """Enrolls `name` from `embeddings` (n, dim): one row per utterance (or window) of their speech,
        `seconds` of speech in all. Enrolling an existing name merges: the new centroid is the mean over all
        rows ever enrolled, i.e. the old and new centroids weighted by their utterance counts. The total speech
        must reach MIN_ENROLL_SECONDS. Holds the store's lock from reading the old profile to writing the new
        one, so a concurrent enrollment of the same name waits instead of being overwritten."""
        validate_name(name)
        model, sha256, dim = model_identity(model_card)
        _check_seconds(seconds)
        unit = _unit_rows(embeddings, dim)
        with self._locked():
            profile = self._merged(name, unit, float(seconds), model_card)
            baseline = profile.baseline_state()  # the enrolled utterances become the voice's baseline
            for row in np.asarray(embeddings, np.float64):
                baseline.add(row)
            profile = replace(profile, baseline=baseline.to_dict())
            self._write(profile)
        return profile

    def _merged(self, name: str, unit: np.ndarray, seconds: float, model_card: dict) -> Profile:
        model, sha256, dim = model_identity(model_card)
        path = self.path_for(name)
        try:
            existing = self._read(path) if os.path.lexists(path) else None
        except ProfileError as err:
            # Not overwritten silently: it may be a newer edgepara's format, or something worth a look first.
            raise ProfileError(f"{err}; `edgepara speakers --remove {shlex.quote(name)}` deletes it, "
                               f"then enroll again") from None
        if existing is not None:
            _same_name(existing, name)
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
            # from the centroid as enrolled: enrolling again starts adaptation afresh from all enrolled speech
            merged = (existing.anchor_array() * existing.n_utterances + unit.sum(axis=0)) / n_total
            profile = Profile(name, merged.tolist(), n_total, total_seconds, model, sha256, dim, existing.created, now,
                              existing.baseline)
        return profile

    def add_to_baseline(self, name: str, heard) -> Profile | None:
        """Adds `heard` (an adaptation.Baseline of utterances heard since the profile was loaded) to the
        stored baseline of `name`, under the lock, so an enrollment meanwhile is kept. None when the speaker
        has been removed (or enrolled with another model) meanwhile: nothing of theirs to update."""
        with self._locked():
            profile = self.get(name)
            if profile is None or (heard.total is not None and len(heard.total) != profile.dim):
                return None  # removed, or enrolled again with another model, meanwhile
            baseline = profile.baseline_state()
            baseline.merge(heard)
            profile = replace(profile, baseline=baseline.to_dict(), updated=_now())
            self._write(profile)
        return profile

    def adapt(self, name: str, utterances: list[np.ndarray], speaker_dims=None) -> Profile | None:
        """Moves `name`'s stored centroid towards each of `utterances` (unit embeddings of utterances the speaker
        head named as them with high confidence) by `adapted_centroid`'s bounded step, under the lock, from the
        profile as it is on disk now. None when the speaker was removed (or enrolled with another model)
        meanwhile, or no utterance moved the centroid."""
        with self._locked():
            profile = self.get(name)
            if profile is None or any(len(u) != profile.dim for u in utterances):
                return None
            centroid, anchor, moved = profile.centroid_array(), profile.anchor_array(), 0
            for unit in utterances:
                new = adapted_centroid(centroid, anchor, unit, speaker_dims)
                if new is not None:
                    centroid, moved = new, moved + 1
            if not moved:
                return None
            profile = replace(profile, centroid=centroid.tolist(), enrolled_centroid=anchor.tolist(),
                              adapted_utterances=profile.adapted_utterances + moved, updated=_now())
            self._write(profile)
        return profile

    def remove(self, name: str) -> None:
        """Deletes `name`'s profile, also when its file cannot be read (that is how a corrupt one goes)."""
        path = self.path_for(name)
        if not self._directory_exists():
            raise ProfileError(f"expected an enrolled speaker name (none enrolled), got {name!r}")
        with self._locked():
            if not os.path.lexists(path):
                known = ", ".join(p.name for p in self.scan()[0]) or "none enrolled"
                raise ProfileError(f"expected an enrolled speaker name ({known}), got {name!r}")
            try:
                profile = self._read(path)
            except ProfileError:
                profile = None
            if profile is not None:
                _same_name(profile, name)
            try:
                path.unlink()
            except OSError as err:
                raise ProfileError(f"could not remove {path}: {err.strerror or err}") from None
            assets.fsync_directory(self.directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Creates the directory if needed and holds an exclusive flock on DIRECTORY/.lock. The lock file
        stays: deleting it while another process waits on it would hand out two locks."""
        lock_path = self.directory / LOCK_FILE_NAME
        try:
            if not self._directory_exists():
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise ProfileError(f"expected to create and lock {lock_path}, got {err.strerror or err}") from None
        try:
            _acquire_lock(fd, lock_path)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _write(self, profile: Profile) -> None:
        path = self.path_for(profile.name)
        payload = json.dumps({"format": PROFILE_FORMAT, "version": PROFILE_VERSION, **asdict(profile)}, indent=1)
        data = (payload + "\n").encode("utf-8")
        try:
            assets.atomic_write(path, lambda tmp: _write_file(tmp, data), mode=0o600)  # biometric: owner only
        except OSError as err:
            reason = err.strerror or str(err) or errno.errorcode.get(err.errno, "OSError")
            raise ProfileError(f"could not save speaker profile {profile.name!r} to {path}: {reason}; "
                               f"any previous profile is unchanged") from None


# -- adaptation ----------------------------------------------------------------------------------------

# The strictest of the settings measured (bench quality --tables speaker, session rows): looser ones named a few
# more enrolled people and let in many more strangers on acted and phone speech.
ADAPT_RATE = 0.02  # an utterance's weight in an adapted centroid: about 35 utterances move it half way
ANCHOR_COSINE = 0.95  # an adapted centroid's speaker part stays at least this close to the enrolled one


def adapted_centroid(centroid: np.ndarray, anchor: np.ndarray, unit: np.ndarray, speaker_dims=None) -> np.ndarray | None:
    """`centroid` moved ADAPT_RATE of the way towards the unit utterance embedding `unit` (at the centroid's
    own scale), or None when that would take its speaker part (what the head scores) below ANCHOR_COSINE of the
    enrolled `anchor`'s: the bound that keeps a profile from drifting to another person, however many
    utterances push it."""
    centroid = np.asarray(centroid, np.float64)
    unit = np.asarray(unit, np.float64)
    new = (1.0 - ADAPT_RATE) * centroid + ADAPT_RATE * np.linalg.norm(centroid) * unit
    a, b = np.asarray(anchor, np.float64), new
    if speaker_dims:
        a, b = a[speaker_dims[0]:speaker_dims[1]], b[speaker_dims[0]:speaker_dims[1]]
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    return new if cosine >= ANCHOR_COSINE else None


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


def _acquire_lock(fd: int, lock_path: Path, timeout_s: float | None = None) -> None:
    """Exclusive flock on `fd`, waiting up to `timeout_s` (default LOCK_TIMEOUT_S) for another writer."""
    if fcntl is None:
        return
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            # Polled rather than blocking, so a stuck writer ends in a message instead of a silent hang.
            if time.monotonic() >= deadline:
                raise ProfileError(f"expected to lock the speaker profile store within {timeout_s:.0f} s, got "
                                   f"{lock_path} held by another process (another `edgepara enroll` or "
                                   f"`edgepara speakers --remove` still running?)") from None
            time.sleep(_LOCK_POLL_S)
        except OSError as err:
            raise ProfileError(f"expected to lock {lock_path}, got {err.strerror or err}") from None


def _same_name(profile: Profile, name: str) -> Profile:
    if profile.name != name:
        # Case-insensitive file systems (macOS, Windows) map 'Alice.json' onto an existing 'alice.json'.
        raise ProfileError(f"expected a speaker name this file system can tell apart from the enrolled "
                           f"{profile.name!r}, got {name!r}")
    return profile


def _first_non_directory(path: Path) -> Path:
    """The first component of `path`, from the root down, that exists but is not a directory."""
    for candidate in [*reversed(path.parents), path]:
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return candidate
    return path


def _describe_kind(mode: int) -> str:
    kinds = [(stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    return next((text for test, text in kinds if test(mode)), f"something of mode {stat.filemode(mode)}")


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked; loop until done or an OSError (ENOSPC)
            view = view[os.write(fd, view):]
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
                                              and abs(v) <= 1e6 and math.isfinite(v) for v in centroid):
        raise bad(f"a centroid that is not {data['dim']} finite numbers of a sane size")
    if data["n_utterances"] < 1:
        raise bad(f"n_utterances {data['n_utterances']}")
    if path.stem != data["name"] and path.stem.casefold() != data["name"].casefold():
        raise bad(f"the name {data['name']!r} in a file named {path.name}")
    # an all-zero centroid resembles nobody and cannot be normalised: it cannot come from enrollment
    if not any(centroid):
        raise bad("an all-zero centroid")
    baseline = data.get("baseline")
    if baseline is not None:
        from .adaptation import Baseline
        from .errors import EdgeparaError

        try:
            Baseline.from_dict(baseline if isinstance(baseline, dict) else {}, data["dim"])
        except EdgeparaError as err:
            raise bad(f"an unreadable baseline ({err})") from None
    anchor, adapted = data.get("enrolled_centroid"), data.get("adapted_utterances", 0)
    if anchor is not None and (not isinstance(anchor, list) or len(anchor) != data["dim"] or not any(anchor)
                               or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and abs(v) <= 1e6 and math.isfinite(v) for v in anchor)):
        raise bad(f"an enrolled_centroid that is not {data['dim']} finite numbers, not all zero")
    if not isinstance(adapted, int) or isinstance(adapted, bool) or adapted < 0:
        raise bad(f"adapted_utterances {adapted!r}")
    return Profile(data["name"], [float(v) for v in centroid], data["n_utterances"], float(data["seconds"]),
                   data["model"], data["model_sha256"], data["dim"], data["created"], data["updated"], baseline,
                   None if anchor is None else [float(v) for v in anchor], adapted)
