"""Speaker profile store: synthetic embeddings only, no model needed."""
import errno
import json
import os
import stat
import sys

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


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


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
def test_a_corrupt_profile_is_a_one_line_error_naming_the_file(store, content, detail):
    store.directory.mkdir(parents=True)
    path = store.directory / "bob.json"
    path.write_bytes(content)
    for read in (store.list, lambda: store.load_for_model(SMALL)):
        with pytest.raises(ProfileError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"expected a JSON speaker profile in {path}, got ")
        assert detail in message and "\n" not in message


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
