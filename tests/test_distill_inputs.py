"""What `distill --data DIR|manifest.csv` takes (which files, with which speaker and label), and what a Ray run asks
of the cluster."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara.errors import EdgeparaError
from edgepara.train.data import user_utterances

DATA = Path(__file__).parent / "data"


def test_a_folder_is_searched_recursively_and_each_files_folder_is_its_speaker(tmp_path):
    (tmp_path / "alice" / "day2").mkdir(parents=True)
    (tmp_path / "bob").mkdir()
    shutil.copy(DATA / "fsdd_3_jackson_0.flac", tmp_path / "alice" / "a.flac")
    shutil.copy(DATA / "fsdd_7_theo_0.flac", tmp_path / "alice" / "day2" / "b.FLAC")  # suffix case ignored
    sf.write(tmp_path / "bob" / "c.ogg", np.zeros(8000, np.int16), 16000, format="OGG", subtype="OPUS")
    sf.write(tmp_path / "top.wav", np.zeros(16000, np.int16), 16000)
    (tmp_path / "bob" / "notes.txt").write_text("not audio")
    (tmp_path / "bob" / "broken.wav").write_bytes(b"RIFF....WAVE")
    found = {u.path.relative_to(tmp_path).as_posix(): u for u in user_utterances(tmp_path)}
    assert set(found) == {"alice/a.flac", "alice/day2/b.FLAC", "bob/c.ogg", "bob/broken.wav", "top.wav"}
    assert found["alice/day2/b.FLAC"].speaker == "alice/day2"
    assert found["top.wav"].speaker == tmp_path.name
    assert found["top.wav"].duration_s == pytest.approx(1.0)
    assert found["bob/broken.wav"].duration_s == 0.0  # listed here, skipped and logged when labelled
    assert all(u.split == "train" and u.dataset == "user" and u.label == "" for u in found.values())


def test_a_manifest_gives_paths_speakers_and_emotion_labels(tmp_path):
    (tmp_path / "clips").mkdir()
    shutil.copy(DATA / "ravdess_A21_angry.flac", tmp_path / "clips" / "x.flac")
    absolute = tmp_path / "elsewhere.flac"
    shutil.copy(DATA / "fsdd_3_jackson_0.flac", absolute)
    (tmp_path / "m.csv").write_text(f"path,speaker,label\nclips/x.flac,kim,angry\n{absolute},,\n")
    first, second = user_utterances(tmp_path / "m.csv")
    assert first.path == tmp_path / "clips" / "x.flac" and first.speaker == "kim" and first.label == "angry"
    assert first.duration_s > 3.0
    assert second.path == absolute and second.speaker == tmp_path.name  # no speaker: the file's folder


def test_a_spreadsheet_export_with_a_bom_and_odd_durations_reads_the_same(tmp_path):
    shutil.copy(DATA / "fsdd_3_jackson_0.flac", tmp_path / "a.flac")
    shutil.copy(DATA / "fsdd_7_theo_0.flac", tmp_path / "b.flac")
    (tmp_path / "m.csv").write_bytes("path,speaker,duration_s\na.flac,kim,n/a\nb.flac,lee,2.5\na.flac,,nan\n"
                                      "a.flac,,inf\n".encode("utf-8-sig"))
    first, second, third, fourth = user_utterances(tmp_path / "m.csv")
    assert first.path == tmp_path / "a.flac" and first.speaker == "kim"
    from_file = sf.info(str(tmp_path / "a.flac")).duration
    assert first.duration_s == third.duration_s == fourth.duration_s == pytest.approx(from_file)
    assert second.duration_s == 2.5


@pytest.mark.parametrize("make, expected", [
    (lambda d: (d / "m.csv").write_text("file,speaker\na.wav,x\n") and d / "m.csv", "expected a 'path' column"),
    (lambda d: d, "expected audio files"),
    (lambda d: (d / "list.txt").write_text("a.wav") and d / "list.txt", "a folder of audio files or a .csv"),
    (lambda d: d / "missing", "a folder of audio files or a .csv"),
])
def test_unusable_data_is_one_line(tmp_path, make, expected):
    with pytest.raises(EdgeparaError, match=expected):
        user_utterances(make(tmp_path))


def test_more_teacher_actors_than_the_cluster_holds_is_refused():
    from edgepara.train.ray_labelling import check_room

    check_room({"CPU": 2.0, "memory": 8 * 1024**3}, 2)
    with pytest.raises(EdgeparaError, match="got 3 for 2 CPUs and 8.0 GiB: at most 2"):
        check_room({"CPU": 2.0, "memory": 8 * 1024**3}, 3)
    with pytest.raises(EdgeparaError, match="at most 1"):
        check_room({"CPU": 16.0, "memory": 3 * 1024**3}, 2)
