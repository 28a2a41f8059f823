"""Speaker profile store: synthetic embeddings for the store itself; the `edgepara enroll` / `speakers` /
`listen --head speaker` end-to-end tests run the real CLI in subprocesses with the shipped tiny model."""
import errno
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgepara import profiles
from edgepara.errors import ProfileError
from edgepara.profiles import MIN_ENROLL_SECONDS, ProfileStore, check_enough_speech, default_profile_dir

DIM = 16
SMALL = {"name": "edgepara-small", "sha256": "a" * 64, "embedding_dim": DIM}
TINY = {"name": "edgepara-tiny", "sha256": "b" * 64, "embedding_dim": 8}


@pytest.fixture
def store(tmp_path):
    return ProfileStore(tmp_path / "profiles")


def embeddings(n, seed=0, dim=DIM):
    return np.random.default_rng(seed).normal(size=(n, dim))


def unit_mean(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).mean(axis=0)


LOCK_FILE = ".lock"  # written out, not imported, so these tests still run (and fail) against a store without one


def files_in(directory):
    """Everything in the store but its lock file, which stays once a writer has made it."""
    return sorted(p.name for p in directory.iterdir() if p.name != LOCK_FILE)


# -- where the store lives ---------------------------------------------------------------------------------

def test_default_directory_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_profile_dir() == tmp_path / "edgepara" / "profiles"
    assert ProfileStore().directory == tmp_path / "edgepara" / "profiles"


def test_default_directory_without_xdg_is_under_local_share(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_profile_dir() == tmp_path / ".local" / "share" / "edgepara" / "profiles"


def test_relative_xdg_data_home_is_ignored_as_the_spec_says(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_profile_dir() == tmp_path / ".local" / "share" / "edgepara" / "profiles"


def test_missing_directory_is_an_empty_store(store):
    assert store.list() == []
    assert store.load_for_model(SMALL) == []


# -- add / list / remove -----------------------------------------------------------------------------------

def test_add_stores_everything_a_profile_needs(store):
    x = embeddings(4)
    profile = store.add("alice", x, seconds=6.5, model_card=SMALL)
    assert (profile.name, profile.n_utterances, profile.seconds) == ("alice", 4, 6.5)
    assert (profile.model, profile.model_sha256, profile.dim) == ("edgepara-small", "a" * 64, DIM)
    np.testing.assert_allclose(profile.centroid, unit_mean(x))
    assert profile.created == profile.updated
    assert store.list() == [profile]  # survives the JSON round trip exactly
    on_disk = json.loads((store.directory / "alice.json").read_text())
    assert on_disk["name"] == "alice" and len(on_disk["centroid"]) == DIM


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_profiles_are_private_to_the_user(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    assert stat.S_IMODE((store.directory / "alice.json").stat().st_mode) == 0o600


def test_list_is_sorted_by_name(store):
    for seed, name in enumerate(["carol", "alice", "bob"]):
        store.add(name, embeddings(3, seed), 4.0, SMALL)
    assert [p.name for p in store.list()] == ["alice", "bob", "carol"]


def test_remove_deletes_the_profile(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    store.add("bob", embeddings(3, 1), 4.0, SMALL)
    store.remove("alice")
    assert [p.name for p in store.list()] == ["bob"]
    assert files_in(store.directory) == ["bob.json"]


def test_removing_an_unknown_name_says_who_is_enrolled(store):
    store.add("bob", embeddings(3), 4.0, SMALL)
    with pytest.raises(ProfileError, match=r"expected an enrolled speaker name \(bob\), got 'alice'"):
        store.remove("alice")


def test_reenrolling_merges_into_the_weighted_centroid(store):
    first, second = embeddings(3, seed=1), embeddings(5, seed=2)
    created = store.add("alice", first, 4.0, SMALL).created
    merged = store.add("alice", second, 2.5, SMALL)
    # Weighted by utterance count, the merge equals enrolling all eight utterances at once.
    np.testing.assert_allclose(merged.centroid, unit_mean(np.vstack([first, second])), atol=1e-12)
    assert (merged.n_utterances, merged.seconds, merged.created) == (8, 6.5, created)
    assert merged.updated >= merged.created
    assert store.list() == [merged]


def test_embedding_scale_does_not_weight_the_centroid(store):
    x = embeddings(2)
    louder = x * np.array([[1.0], [1000.0]])
    np.testing.assert_allclose(store.add("a", x, 4.0, SMALL).centroid, store.add("b", louder, 4.0, SMALL).centroid)


def test_reenrolling_with_another_model_is_refused(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    with pytest.raises(ProfileError, match="edgepara-small.*edgepara-tiny"):
        store.add("alice", embeddings(3, dim=8), 4.0, TINY)


@pytest.mark.parametrize("bad, shape_text", [
    (np.zeros((0, DIM)), r"\(0, 16\)"),
    (np.zeros(DIM), r"\(16,\)"),
    (np.zeros((3, 8)), r"\(3, 8\)"),
])
def test_embeddings_of_the_wrong_shape_are_refused(store, bad, shape_text):
    with pytest.raises(ProfileError, match=r"expected embeddings of shape \(n ≥ 1, 16\), got " + shape_text):
        store.add("alice", bad, 4.0, SMALL)


def test_nan_or_zero_embeddings_are_refused(store):
    x = embeddings(3)
    x[1, 2] = np.nan
    with pytest.raises(ProfileError, match="expected finite embeddings"):
        store.add("alice", x, 4.0, SMALL)
    with pytest.raises(ProfileError, match="expected non-zero embeddings, got 1 all-zero row"):
        store.add("alice", np.vstack([embeddings(2), np.zeros(DIM)]), 4.0, SMALL)
    assert not store.directory.exists() or files_in(store.directory) == []


def test_a_model_card_without_identity_is_refused(store):
    with pytest.raises(ProfileError, match="missing sha256"):
        store.add("alice", embeddings(3), 4.0, {"name": "m", "embedding_dim": DIM})


# -- atomic writes -----------------------------------------------------------------------------------------

def disk_fills_after_first_chunk(monkeypatch):
    """Lets the first os.write put half its bytes on disk, then fails every write with ENOSPC."""
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(profiles.os, "write", write)
    return calls


def test_a_failing_write_leaves_the_old_profile_intact(store, monkeypatch):
    store.add("alice", embeddings(3), 4.0, SMALL)
    path = store.directory / "alice.json"
    before = path.read_bytes()
    calls = disk_fills_after_first_chunk(monkeypatch)
    with pytest.raises(ProfileError, match="could not save speaker profile 'alice'.*No space left on device"):
        store.add("alice", embeddings(3, seed=9), 4.0, SMALL)
    monkeypatch.undo()
    assert len(calls) == 2  # the failure happened mid-file, after a partial write
    assert path.read_bytes() == before
    assert files_in(store.directory) == ["alice.json"]  # no temp file left behind
    assert store.list()[0].n_utterances == 3


def test_a_failing_first_enrollment_leaves_no_file(store, monkeypatch):
    store.add("bob", embeddings(3), 4.0, SMALL)
    disk_fills_after_first_chunk(monkeypatch)
    with pytest.raises(ProfileError, match="No space left on device"):
        store.add("alice", embeddings(3), 4.0, SMALL)
    monkeypatch.undo()
    assert files_in(store.directory) == ["bob.json"]


def test_leftover_temp_files_are_not_read_as_profiles(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    (store.directory / ".alice.json.x1y2.tmp").write_text('{"half a')
    assert [p.name for p in store.list()] == ["alice"]


# -- corrupt files -----------------------------------------------------------------------------------------

def valid_profile_json():
    return {"format": "edgepara-speaker-profile", "version": 1, "name": "bob", "centroid": [0.5] * DIM,
            "n_utterances": 3, "seconds": 4.0, "model": "edgepara-small", "model_sha256": "a" * 64, "dim": DIM,
            "created": "2026-01-01T00:00:00+00:00", "updated": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("content, detail", [
    (b'{"name": "bob", "centr', "unparsable text"),
    (b"", "unparsable text"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"[1, 2, 3]", "a JSON list"),
    (json.dumps({"hello": "world"}).encode(), "format None"),
    (json.dumps({k: v for k, v in valid_profile_json().items() if k != "centroid"}).encode(), "missing centroid"),
    (json.dumps(dict(valid_profile_json(), centroid=[0.5] * 3)).encode(), "not 16 finite numbers"),
    (json.dumps(dict(valid_profile_json(), n_utterances="3")).encode(), "n_utterances of type str"),
    (json.dumps(dict(valid_profile_json(), version=2)).encode(), "format version 2"),
    (json.dumps(dict(valid_profile_json(), name="carol")).encode(), "'carol' in a file named bob.json"),
])
def test_a_corrupt_profile_is_skipped_with_a_one_line_warning_naming_the_file(store, content, detail, caplog):
    store.add("alice", embeddings(3), 4.0, SMALL)
    path = store.directory / "bob.json"
    path.write_bytes(content)
    for read in (store.list, lambda: store.load_for_model(SMALL)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edgepara.profiles"):
            assert [p.name for p in read()] == ["alice"]  # the good profile still loads
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("edgepara: warning: skipped an unreadable speaker profile: ")
        assert f"expected a JSON speaker profile in {path}, got " in warnings[0]
        assert detail in warnings[0] and "\n" not in warnings[0]
        assert "`edgepara speakers --remove bob` deletes it" in warnings[0]
    profiles_, skipped = store.scan()
    assert [p.name for p in profiles_] == ["alice"] and [s.path for s in skipped] == [path]
    # Asked for by name, the bad file is still an error (one line), not a silent "no such speaker".
    with pytest.raises(ProfileError) as caught:
        store.get("bob")
    assert str(caught.value).startswith(f"expected a JSON speaker profile in {path}, got ")
    assert "\n" not in str(caught.value)


def test_the_valid_hand_written_profile_is_accepted(store):
    store.directory.mkdir(parents=True)
    (store.directory / "bob.json").write_text(json.dumps(valid_profile_json()))
    assert store.list()[0].name == "bob"


# -- model mismatch ----------------------------------------------------------------------------------------

def test_profiles_from_another_model_are_refused_naming_both(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    store.add("bob", embeddings(3, 1), 4.0, SMALL)
    tiny_card = dict(TINY)
    with pytest.raises(ProfileError) as caught:
        store.load_for_model(tiny_card)
    message = str(caught.value)
    assert "'alice' (and 1 more) was enrolled with model edgepara-small" in message
    assert "got model edgepara-tiny" in message and "\n" not in message


def test_a_retrained_model_with_the_same_name_is_refused(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    retrained = dict(SMALL, sha256="c" * 64)
    with pytest.raises(ProfileError, match=r"sha256 aaaaaaaaaaaa….*sha256 cccccccccccc…"):
        store.load_for_model(retrained)


def test_profiles_from_the_same_model_load(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    assert [p.name for p in store.load_for_model(SMALL)] == ["alice"]


# -- names -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "   ", "a/b", "../evil", "a\\b", ".", "..", ".hidden", "unknown", "Unknown",
                                  " alice", "alice ", "a\nb", "a\x00b", "c:d", "x" * 65, "é" * 64 * 2])
def test_unusable_names_are_refused(store, name):
    with pytest.raises(ProfileError, match="expected .*speaker name"):
        store.add(name, embeddings(3), 4.0, SMALL)
    assert not store.directory.exists() or files_in(store.directory) == []
    assert not (store.directory.parent / "evil.json").exists()


@pytest.mark.parametrize("name", ["Dr. Smith", "José", "李雷", "speaker_01", "x" * 64])
def test_ordinary_names_are_accepted(store, name):
    store.add(name, embeddings(3), 4.0, SMALL)
    assert [p.name for p in store.list()] == [name]


# -- enough speech -----------------------------------------------------------------------------------------

def test_enough_speech_message_says_how_much_more_to_record():
    with pytest.raises(ProfileError) as caught:
        check_enough_speech(1.2)
    assert str(caught.value) == "expected at least 3.0 s of speech to enroll, got 1.2 s: record 1.8 s more"


@pytest.mark.parametrize("seconds, got, more", [(2.96, "2.9", "0.1"), (2.3, "2.3", "0.7"), (0.0, "0.0", "3.0")])
def test_got_and_more_always_add_up_to_the_minimum(seconds, got, more):
    with pytest.raises(ProfileError, match=f"got {got} s: record {more} s more"):
        check_enough_speech(seconds)


@pytest.mark.parametrize("seconds", [MIN_ENROLL_SECONDS, 3.01, 60])
def test_enough_speech_passes(seconds):
    check_enough_speech(seconds)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf"), "3", None])
def test_impossible_durations_are_refused(seconds):
    with pytest.raises(ProfileError, match="expected a non-negative number of seconds"):
        check_enough_speech(seconds)


def test_add_refuses_too_little_speech_and_writes_nothing(store):
    with pytest.raises(ProfileError, match="record 2.0 s more"):
        store.add("alice", embeddings(2), 1.0, SMALL)
    assert store.list() == []


def test_a_short_top_up_of_an_existing_profile_is_fine(store):
    store.add("alice", embeddings(3), 3.0, SMALL)
    assert store.add("alice", embeddings(1, 5), 0.5, SMALL).seconds == 3.5


# -- one bad profile does not take the others down --------------------------------------------------------

def write_corrupt(directory, name="carol"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text('{"format": "edgepara-speaker-profile", "name": ')
    return path


def test_remove_deletes_a_corrupt_profile(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    write_corrupt(store.directory)
    store.remove("carol")
    assert files_in(store.directory) == ["alice.json"]
    assert [p.name for p in store.list()] == ["alice"]


def test_remove_deletes_a_dangling_link_in_place_of_a_profile(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    (store.directory / "carol.json").symlink_to(store.directory / "nowhere.json")
    assert [s.path.name for s in store.scan()[1]] == ["carol.json"]
    store.remove("carol")
    assert files_in(store.directory) == ["alice.json"]


def test_enrolling_over_a_corrupt_profile_is_refused_and_says_how_to_remove_it(store):
    path = write_corrupt(store.directory)
    before = path.read_bytes()
    with pytest.raises(ProfileError) as caught:
        store.add("carol", embeddings(3), 4.0, SMALL)
    message = str(caught.value)
    assert message.startswith(f"expected a JSON speaker profile in {path}, got unparsable text")
    assert "`edgepara speakers --remove carol` deletes it" in message and "\n" not in message
    assert path.read_bytes() == before


def test_a_skipped_file_no_name_can_have_is_pointed_at_for_deletion(store):
    store.directory.mkdir(parents=True)
    (store.directory / "unknown.json").write_text("{}")  # 'unknown' is reserved, so --remove cannot take it
    (skipped,) = store.scan()[1]
    assert skipped.warning().endswith("delete the file to get rid of it")


def test_the_json_error_detail_reads_once(store):
    path = write_corrupt(store.directory)
    path.write_text('{"format": "edgepara-sp\n')  # a raw newline: "Invalid control character at"
    (skipped,) = store.scan()[1]
    assert "Invalid control character at line 1" in skipped.reason and " at at " not in skipped.reason


# -- an unusable directory is an error, never "nobody enrolled" --------------------------------------------

def file_in_place_of_the_directory(tmp_path):
    (tmp_path / "profiles").write_text("not a directory")
    return tmp_path / "profiles", "got a file"


def file_in_place_of_a_parent(tmp_path):
    (tmp_path / "data").write_text("not a directory")
    return tmp_path / "data" / "profiles", f"got a path through the file {tmp_path / 'data'}"


def symlink_loop(tmp_path):
    (tmp_path / "profiles").symlink_to(tmp_path / "profiles")
    return tmp_path / "profiles", "got Too many levels of symbolic links"


def dangling_symlink(tmp_path):
    # e.g. a profile directory on a drive that is not mounted: enrolling must not go elsewhere silently.
    (tmp_path / "profiles").symlink_to(tmp_path / "unmounted" / "profiles")
    return tmp_path / "profiles", "which does not exist"


def named_pipe(tmp_path):
    os.mkfifo(tmp_path / "profiles")
    return tmp_path / "profiles", "got a named pipe"


UNUSABLE_DIRECTORIES = [file_in_place_of_the_directory, file_in_place_of_a_parent, symlink_loop, dangling_symlink,
                        pytest.param(named_pipe, marks=pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX"))]


@pytest.mark.parametrize("make", UNUSABLE_DIRECTORIES)
def test_an_unusable_directory_is_refused_by_every_operation(tmp_path, make):
    directory, detail = make(tmp_path)
    store = ProfileStore(directory)
    for operation in (store.list, store.scan, lambda: store.load_for_model(SMALL), lambda: store.get("alice"),
                      lambda: store.add("alice", embeddings(3), 4.0, SMALL), lambda: store.remove("alice")):
        with pytest.raises(ProfileError) as caught:
            operation()
        message = str(caught.value)
        assert message.startswith(f"expected a directory of speaker profiles at {directory}, "), message
        assert detail in message and "\n" not in message


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="root reads a mode-000 directory anyway (these tests run as root here); the cases "
                           "above fail for root too")
def test_a_directory_without_read_permission_is_refused(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    store.directory.chmod(0o000)
    try:
        with pytest.raises(ProfileError, match="expected a readable directory of speaker profiles at .*d---------"):
            store.list()
    finally:
        store.directory.chmod(0o700)


# -- the write lock ----------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_writers_take_a_private_lock_file_that_is_never_a_profile(store):
    store.add("alice", embeddings(3), 4.0, SMALL)
    lock = store.directory / LOCK_FILE
    assert lock.is_file() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert [p.name for p in store.list()] == ["alice"] and store.scan()[1] == []


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_writer_waits_for_the_lock_and_says_so_when_it_never_comes(store, monkeypatch):
    store.add("alice", embeddings(3), 4.0, SMALL)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store.directory / LOCK_FILE)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(profiles, "LOCK_TIMEOUT_S", 0.5)
        started = time.monotonic()
        with pytest.raises(ProfileError, match=r"expected to lock the speaker profile store within 0 s, got "
                                               r".*\.lock held by another process"):
            store.add("alice", embeddings(2, 1), 1.0, SMALL)
        assert time.monotonic() - started >= 0.5  # it waited before giving up
        with pytest.raises(ProfileError, match="held by another process"):
            store.remove("alice")
    finally:
        holder.kill()
        holder.wait()
    assert store.get("alice").n_utterances == 3  # neither the add nor the remove happened
    store.remove("alice")  # the lock died with its holder


ADD_MANY = """
import sys
import numpy as np
from edgepara.profiles import ProfileStore
directory, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
card = {"name": "edgepara-small", "sha256": "a" * 64, "embedding_dim": 16}
rng = np.random.default_rng(seed)
for _ in range(count):
    ProfileStore(directory).add("alice", rng.normal(size=(1, 16)), 3.0, card)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_concurrent_writers_lose_no_utterances(store):
    """Four real processes re-enroll one speaker at once, many times over; every utterance must count.
    (Without the lock the read-modify-write interleaves and most runs lose some; the deterministic version
    of this race is the CLI test below.)"""
    writers, each = 4, 25
    procs = [subprocess.Popen([sys.executable, "-c", ADD_MANY, str(store.directory), str(seed), str(each)],
                              stderr=subprocess.PIPE, text=True) for seed in range(writers)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    profile = store.get("alice")
    assert (profile.n_utterances, profile.seconds) == (writers * each, 3.0 * writers * each)


# -- the command line: enroll / speakers / listen ----------------------------------------------------------

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"  # about 3.2 s of speech: one utterance, enough to enroll alone
CLIP_SECONDS = 3.2
# Enrolment needs non-zero embeddings; the tiny model is trained and gives them.
SPEAKER_MODEL = "edgepara-tiny"
CLI_TIMEOUT_S = 60


def cli_env(tmp_path):
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # never touch the user's own speaker profiles
    return env


def run_cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "edgepara.cli", *map(str, args)], cwd=tmp_path,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def stderr_lines(result):
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *needles, exit_code=None):
    assert result.returncode != 0, f"expected a failure, got exit 0: {result.stdout}"
    if exit_code is not None:
        assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("edgepara: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def enroll_alice(tmp_path, profiles_dir):
    r = run_cli(tmp_path, "enroll", "alice", CLIP, "--model", SPEAKER_MODEL, "--profiles", profiles_dir)
    assert r.returncode == 0, r.stderr


def test_cli_lists_listens_and_removes_beside_a_corrupt_profile(tmp_path):
    profiles_dir = tmp_path / "profiles"
    enroll_alice(tmp_path, profiles_dir)
    carol = write_corrupt(profiles_dir)

    r = run_cli(tmp_path, "speakers", "--profiles", profiles_dir)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["alice"], r.stdout
    (warning,) = stderr_lines(r)
    assert warning.startswith("edgepara: warning: ") and str(carol) in warning
    assert "`edgepara speakers --remove carol` deletes it" in warning

    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", SPEAKER_MODEL, "--head", "speaker",
                "--profiles", profiles_dir, "--jsonl", "-", "--no-dashboard")
    assert r.returncode == 0, r.stderr
    (warning,) = stderr_lines(r)  # the library's logged warning, one line
    assert str(carol) in warning
    events = [json.loads(line) for line in r.stdout.splitlines()]
    speaker = [e for e in events if e["type"] == "prediction" and e["head"] == "speaker"]
    assert speaker and all(set(e["probs"]) == {"alice", "unknown"} for e in speaker), events

    r = run_cli(tmp_path, "speakers", "--remove", "carol", "--profiles", profiles_dir)
    assert r.returncode == 0, r.stderr
    assert "removed carol" in r.stdout and not carol.exists()
    r = run_cli(tmp_path, "speakers", "--profiles", profiles_dir)
    assert r.returncode == 0 and stderr_lines(r) == [] and r.stdout.startswith("alice:"), (r.stdout, r.stderr)


@pytest.mark.parametrize("make", [file_in_place_of_the_directory, file_in_place_of_a_parent, dangling_symlink])
def test_cli_refuses_an_unusable_profile_directory(tmp_path, make):
    directory, detail = make(tmp_path)
    for args in (("speakers",), ("speakers", "--remove", "alice"),
                 ("enroll", "alice", CLIP, "--model", SPEAKER_MODEL),
                 ("listen", "--file", CLIP, "--model", SPEAKER_MODEL, "--head", "speaker", "--jsonl", "-",
                  "--no-dashboard")):
        r = run_cli(tmp_path, *args, "--profiles", directory)
        assert_one_line_error(r, f"expected a directory of speaker profiles at {directory}", detail)
        assert "no speakers enrolled" not in r.stdout


PAUSED_ENROLL = """
import os, sys, time
from pathlib import Path
from edgepara import profiles
from edgepara.cli import main

markers, role, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
if role == "first":
    # Test hook: pause between reading the old profile and replacing it, the window two writers race in.
    real_replace = os.replace
    def paused_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("alice.json"):
            (markers / "first-writing").touch()
            deadline = time.monotonic() + 60
            while not (markers / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = paused_replace
else:
    # Test hook: only says when the embedding is done and the profile store is about to be written.
    real_add = profiles.ProfileStore.add
    def add(self, *args, **kwargs):
        (markers / "second-adding").touch()
        return real_add(self, *args, **kwargs)
    profiles.ProfileStore.add = add
sys.exit(main(argv))
"""


def wait_for(path, proc, timeout_s=CLI_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"exited {proc.returncode} before {path.name}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {path.name} within {timeout_s} s"
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_two_enrollments_of_one_name_at_once_both_count(tmp_path):
    """Two real `edgepara enroll alice` processes. The first is paused (a test hook, above) inside its
    read-modify-write; the second must wait for it rather than read the old profile, and in the end the
    profile holds both runs' utterances."""
    profiles_dir, markers = tmp_path / "profiles", tmp_path / "markers"
    markers.mkdir()
    enroll_alice(tmp_path, profiles_dir)  # the profile both runs will merge into
    argv = ["enroll", "alice", CLIP, "--model", SPEAKER_MODEL, "--profiles", profiles_dir]

    def start(role):
        return subprocess.Popen([sys.executable, "-c", PAUSED_ENROLL, markers, role, *argv], cwd=tmp_path,
                                env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    first = start("first")
    try:
        wait_for(markers / "first-writing", first)
        second = start("second")
        try:
            wait_for(markers / "second-adding", second)
            time.sleep(1.0)  # plenty for an unlocked second run to read, merge and write
            second_waited = second.poll() is None
            (markers / "release").touch()
            results = [proc.communicate(timeout=CLI_TIMEOUT_S) for proc in (first, second)]
        finally:
            second.kill()
    finally:
        (markers / "release").touch()
        first.kill()
    for proc, (stdout, stderr) in zip((first, second), results):
        assert proc.returncode == 0, stderr
        assert "enrolled alice" in stdout
    profile = ProfileStore(profiles_dir).get("alice")
    assert profile.n_utterances == 3, "one enrollment's utterances were lost"
    assert profile.seconds == pytest.approx(3 * CLIP_SECONDS, abs=0.15)
    assert second_waited, "the second enrollment did not wait for the first one's write"


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "-0.0", "abc", "", "=-inf", "=-5", "=nan"])
def test_enroll_refuses_seconds_that_are_not_a_positive_finite_number(tmp_path, value):
    # '=VALUE' is passed as --seconds=VALUE: argparse reads a bare '-inf' as an option, not as a value.
    seconds = [f"--seconds{value}"] if value.startswith("=") else ["--seconds", value]
    value = value.removeprefix("=")
    profiles_dir = tmp_path / "profiles"
    r = run_cli(tmp_path, "enroll", "bob", *seconds, "--model", SPEAKER_MODEL, "--profiles", profiles_dir)
    assert_one_line_error(r, "expected a positive finite number of seconds to record (--seconds)", repr(value),
                          exit_code=2)
    assert not profiles_dir.exists()


@pytest.mark.parametrize("value, expected", [("2.5", 2.5), (3, 3.0), (0.25, 0.25)])
def test_record_seconds_accepts_positive_numbers(value, expected):
    from edgepara.enroll import check_record_seconds

    assert check_record_seconds(value) == expected


@pytest.mark.parametrize("value", [True, None, float("nan"), 0, -1.0, [3]])
def test_record_seconds_refuses_the_rest(value):
    from edgepara.enroll import check_record_seconds
    from edgepara.errors import UsageError

    with pytest.raises(UsageError, match="expected a positive finite number of seconds"):
        check_record_seconds(value)


@pytest.mark.parametrize("order", [
    ("enroll", "alice", CLIP, CLIP, "--model", SPEAKER_MODEL, "--profiles", "{dir}"),  # files first
    ("enroll", "alice", "--profiles", "{dir}", "--model", SPEAKER_MODEL, CLIP, CLIP),  # options first
    ("enroll", "alice", CLIP, "--profiles", "{dir}", CLIP, "--model", SPEAKER_MODEL),  # mixed
    ("enroll", "--profiles", "{dir}", "alice", "--model", SPEAKER_MODEL, "--", CLIP, CLIP),  # after --
])
def test_enroll_takes_files_before_or_after_options(tmp_path, order):
    profiles_dir = tmp_path / "profiles"
    r = run_cli(tmp_path, *[str(profiles_dir) if a == "{dir}" else a for a in order])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("enrolled alice: 2 utterances"), r.stdout  # both files counted
    assert ProfileStore(profiles_dir).get("alice").n_utterances == 2


def test_enroll_still_refuses_an_unknown_option_among_the_files(tmp_path):
    r = run_cli(tmp_path, "enroll", "alice", "--profiles", tmp_path / "profiles", "--bogus", CLIP)
    assert r.returncode == 2
    assert "unrecognized arguments: --bogus" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "profiles").exists()


@pytest.mark.parametrize("centroid, detail", [
    ([0.0] * DIM, "all-zero centroid"),
    ([1e308] * DIM, "sane size"),
    ([10 ** 400] + [0.5] * (DIM - 1), "sane size"),
])
def test_a_centroid_no_enrollment_can_make_is_skipped_in_one_line(store, centroid, detail):
    store.directory.mkdir(parents=True)
    (store.directory / "bob.json").write_text(json.dumps(dict(valid_profile_json(), centroid=centroid)))
    profiles, skipped = store.scan()
    assert profiles == [] and len(skipped) == 1 and detail in skipped[0].reason


def _without_root_powers() -> list[str]:
    """A command prefix under which even root obeys file modes (its capabilities to override them dropped), so
    the permission cases run where the suite runs as root; nothing for other users."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop the file-mode override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_listing_a_profile_directory_without_permission_is_one_line_through_the_cli(store, tmp_path):
    """README: a profile directory the user may not read is one line, also from the command line (the real CLI,
    as a user without the right to read it)."""
    store.add("alice", embeddings(3), 4.0, SMALL)
    store.directory.chmod(0o000)
    try:
        r = subprocess.run([*_without_root_powers(), sys.executable, "-m", "edgepara.cli", "speakers", "--profiles",
                            str(store.directory)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        store.directory.chmod(0o700)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("edgepara: error: expected a readable directory of speaker profiles at "), lines[0]
