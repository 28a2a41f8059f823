"""`edgepara write-heads` and `edgepara bench quality --tables speaker` end to end, through the real CLI, on a tiny
data root generated here (a few seconds of synthetic speech per speaker in the manifest layout of
../shared/data), so that they are exercised without the shared corpora; and their bad-input paths, which must be
one line on stderr and a non-zero exit, never a traceback.

The commands run in a copy of the package with its own models/ and heads/ (the asset folders are found beside the
package), so write-heads and bench never touch the repository's shipped heads or model cards.

Not covered here: `bench quality` (all tables) and `--tables students|emotion` build every system first, teachers
included (system_embedders reads the Whisper tiny.en/base weights' sizes before any table; the full run embeds
every clip with Whisper, resemblyzer, openSMILE and speech_embedding, minutes on a small CPU) and rewrite the model
cards. `write-heads --heads emotion` needs no teacher but five labelled emotion corpora (ravdess, emodb,
ased_amharic, emospeech_in, baved_arabic, each with its own splits) and the live pipeline per speaker: possible on
generated data, not done here."""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# what `edgepara write-heads` / `bench quality` need (the [train] extra): checked as the CLI checks it, without
# importing TensorFlow into the test process
for _dep in ("tensorflow", "sklearn", "openwakeword", "opensmile", "soundfile", "scipy"):
    if importlib.util.find_spec(_dep) is None:
        pytest.skip(f"needs the [train] extra ({_dep} is missing)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SR = 16000
SENTENCES = ("Open the door and let the cat in.", "It is raining again this morning.",
             "Please bring me a glass of water.", "The train leaves at seven tonight.",
             "We planted roses in the garden.")
RAVDESS_EMOTIONS = (("01", "neutral"), ("02", "calm"), ("03", "happy"), ("04", "sad"), ("05", "angry"))
# actors 01-02 train (the mask heads fit on them), 17-18 validation (speaker calibration), 19-22 test
RAVDESS_ACTORS = (1, 2, 17, 18, 19, 20, 21, 22)
# speechocean762: validation speakers calibrate; test speakers split into children (< 18) and adults
SPEECHOCEAN = (("S0101", "val", 10), ("S0102", "val", 40), ("S0201", "test", 8), ("S0202", "test", 9),
               ("S0203", "test", 30), ("S0204", "test", 35))
EMOSPEECH_USERS = ("Uaaaa0001", "Ubbbb0002")  # validation users, 4 utterances each (3 enroll, >= 1 to query)
MODEL_NAMES = sorted(p.stem for p in (REPO / "models").glob("*.json"))
USE_ESPEAK = shutil.which("espeak-ng") is not None and not os.environ.get("EDGEPARA_TEST_NO_ESPEAK")
ESPEAK_VOICES = [(v, p) for p in (35, 60, 85) for v in ("en+m1", "en+f2", "en+m3", "en+f4", "en+m7", "en+f1")]


def _synthetic_voice(seed: int, sentence: int, seconds: float = 2.0) -> np.ndarray:
    """Speech-shaped sound when espeak-ng is missing: a harmonic source at the voice's pitch through two
    formant resonators, in syllable-rate bursts (enough for the VAD and for voices to differ)."""
    from scipy.signal import lfilter

    voice = np.random.default_rng(seed)
    f0, formants = voice.uniform(90, 300), (voice.uniform(350, 900), voice.uniform(1100, 2600))
    rng = np.random.default_rng(1000 * seed + sentence)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)))) / SR
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    y = source.copy()
    for fc in formants:
        r, th = np.exp(-np.pi * 120 / SR), 2 * np.pi * fc / SR
        y += 3 * lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], source)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3.5, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.5
    envelope[: SR // 5] = envelope[-SR // 5:] = 0
    y = y * envelope + rng.normal(0, 0.01, len(t))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _say(voice: int, sentence: int, path: Path, scratch: Path) -> float:
    """Writes one utterance of `voice` to `path` (FLAC, or Ogg Opus for .opus, as the shared copy stores it)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    if USE_ESPEAK:
        name, pitch = ESPEAK_VOICES[voice % len(ESPEAK_VOICES)]
        wav = scratch / "say.wav"
        subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), "-w", str(wav), SENTENCES[sentence]],
                       check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
        audio = resample_poly(audio, SR, rate).astype(np.float32) if rate != SR else audio
    else:
        audio = _synthetic_voice(voice, sentence)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".opus":
        sf.write(path, audio, SR, format="OGG", subtype="OPUS")
    else:
        sf.write(path, audio, SR)
    return len(audio) / SR


def _write_manifest(path: Path, header: str, rows: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        writer.writerows(rows)


def _make_data_root(root: Path, scratch: Path) -> None:
    """ravdess, speechocean762 (with ages), emospeech_in (with a background clip, which is skipped) and mask
    curves: exactly what write-heads speaker/mask/mask_type and the speaker tables read."""
    import soundfile as sf

    opus = "OGG" in sf.available_formats() and "OPUS" in sf.available_subtypes("OGG")
    ext = ".opus" if opus else ".flac"
    voice = 0
    rows = []
    for actor in RAVDESS_ACTORS:
        for i, (code, label) in enumerate(RAVDESS_EMOTIONS):
            name = f"Actor_{actor:02d}/03-01-{code}-01-01-01-{actor:02d}.flac"  # repetition 01: a mask item
            seconds = _say(voice, i, root / "ravdess" / name, scratch)
            rows.append([name, label, f"A{actor:02d}", f"{seconds:.3f}", "train", "M", "normal", "01", "01"])
        voice += 1
    _write_manifest(root / "ravdess" / "manifest.csv",
                    "path,label,speaker,duration_s,split,gender,intensity,statement,repetition", rows)
    rows = []
    for speaker, split, age in SPEECHOCEAN:
        for i in range(4):
            name = f"WAVE/SPEAKER{speaker[1:]}/{speaker[1:]}{i:04d}{ext}"
            seconds = _say(voice, i, root / "speechocean762" / name, scratch)
            rows.append([name, "", speaker, f"{seconds:.2f}", split, "M", age, SENTENCES[i].upper()])
        voice += 1
    _write_manifest(root / "speechocean762" / "manifest.csv", "path,label,speaker,duration_s,split,gender,age,text",
                    rows)
    rows = []
    for user in EMOSPEECH_USERS:
        for i, label in enumerate(("calm", "angry", "fearful", "happy")):
            name = f"speech/web/kw-safe-{label}-{user}{ext}"
            seconds = _say(voice, i, root / "emospeech_in" / name, scratch)
            rows.append([name, label, user, f"{seconds:.3f}", "val", "speech", "kw", "safe", "web", "-20", name])
        voice += 1
    background = root / "emospeech_in" / f"background/room{ext}"
    background.parent.mkdir(parents=True)
    sf.write(background, np.random.default_rng(0).normal(0, 0.01, SR).astype(np.float32), SR,
             **({"format": "OGG", "subtype": "OPUS"} if opus else {}))
    rows.append([f"background/room{ext}", "", "", "1.000", "train", "background", "", "", "", "-40", "room"])
    _write_manifest(root / "emospeech_in" / "manifest.csv",
                    "path,label,speaker,duration_s,split,kind,keyword,environment,location,rms_dbfs,original_name",
                    rows)
    # invented attenuation curves (deeper at high frequencies), one per mask type the code knows
    (root / "masks").mkdir()
    curves = {"surgical": -2.0, "CottonJersey2L": -5.0, "CottonPlain2L": -7.0, "CottonDenim2L": -10.0}
    _write_manifest(root / "masks" / "curves.csv", "mask_type,freq_hz,attenuation_db",
                    [[mask, f, f"{depth * min(1.0, f / 6000):.3f}"] for mask, depth in curves.items()
                     for f in (0, 1000, 2000, 4000, 6000, 8000)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(a copy of the package with its own models/ and heads/, the generated data root, a run helper)."""
    base = tmp_path_factory.mktemp("bench_e2e")
    tree = base / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("edgepara", "models", "heads"):
        shutil.copytree(REPO / name, tree / name, ignore=ignore)
    (base / "scratch").mkdir()
    _make_data_root(base / "root", base / "scratch")
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEPARA_DATA", "PYTHONPATH")}
    env.update(PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")

    def run(*args, timeout=240):
        r = subprocess.run([sys.executable, "-m", "edgepara.cli", *map(str, args)], cwd=tree, env=env,
                           capture_output=True, text=True, timeout=timeout)
        return r

    return base, tree, base / "root", run


def _heads_digest() -> dict:
    return {str(p.relative_to(REPO)): p.read_bytes() for p in sorted((REPO / "heads").rglob("*")) if p.is_file()}


def _bench_speaker_tables(run, base: Path, root: Path, out: Path):
    out.mkdir()
    # the tables a full `bench quality` run wrote before (a stub row): --tables speaker adds to them
    (out / "results.json").write_text(json.dumps({"command": "edgepara bench quality (stub)",
                                                  "results": {"stub system": {}}, "sizes_bytes": {},
                                                  "teachers_concat": ["stub teacher"], "retention": {}}))
    bench = run("bench", "quality", "--tables", "speaker", "--out", out, "--cache", base / "cache",
                "--data-root", root)
    assert bench.returncode == 0, bench.stderr[-3000:]
    return bench


@pytest.fixture(scope="module")
def written(world):
    """As the README orders them: `bench quality --tables speaker` (it creates the cache of speech windows,
    deciding with the shipped calibration), `write-heads` (speaker threshold and the mask heads, from that
    cache), then the speaker tables again, now with the calibration write-heads wrote."""
    base, tree, root, run = world
    before = _heads_digest()
    first = _bench_speaker_tables(run, base, root, base / "out-shipped")
    heads = run("write-heads", "--heads", "speaker,mask,mask_type", "--cache", base / "cache", "--data-root", root)
    assert heads.returncode == 0, heads.stderr[-3000:]
    bench = _bench_speaker_tables(run, base, root, base / "out")
    assert _heads_digest() == before, "the repository's shipped heads changed"
    return first, heads, bench, base / "out"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_write_heads_calibrates_the_speaker_head_from_generated_corpora(world, written, model):
    _, tree, _, _ = world
    card = json.loads((tree / "heads" / model / "speaker.json").read_text())
    model_card = json.loads((tree / "models" / f"{model}.json").read_text())
    assert (card["model"], card["model_sha256"]) == (model_card["name"], model_card["sha256"])
    curve = card["impostor_curve"]
    fa, cos = np.array(curve["false_accept"]), np.array(curve["cosine"])
    assert len(fa) == len(cos) >= 10
    assert np.all(np.diff(fa) > 0) and fa[0] > 0 and fa[-1] <= 1  # rising false-accept rates
    assert np.all(np.diff(cos) <= 0) and np.all(np.abs(cos) <= 1)  # a stricter bar at a lower rate
    assert 0 < card["false_accept"] < 1
    bars = card["metrics"]["cosine_bar"]
    assert set(bars) == {"N=1", "N=4", "N=10"} and bars["N=1"] <= bars["N=4"] <= bars["N=10"]
    open_set = card["metrics"]["open_set_identification"]
    assert {"ravdess_test_across_emotions", "speechocean762_test_children", "speechocean762_test_adults",
            "emospeech_in_val_phones", "enrolled_speechocean762_strangers_ravdess"} <= set(open_set)
    for name in ("ravdess_test", "speechocean762_test"):
        assert 0 <= card["metrics"][f"{name}_verification_eer"] <= 1


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_write_heads_trains_the_mask_heads_from_generated_corpora(world, written, model):
    from edgepara.heads import ProbeHead

    _, tree, _, _ = world
    for name, classes in (("mask", {"mask", "no_mask"}), ("mask_type", {"none", "surgical", "CottonJersey2L",
                                                                         "CottonDenim2L"})):
        card = json.loads((tree / "heads" / model / f"{name}.json").read_text())
        assert set(card["classes"]) == classes and (tree / "heads" / model / f"{name}.npz").is_file()
        # loadable and checked against its model, as listen loads it
        head = ProbeHead.load(str(tree / "heads" / model / f"{name}.npz"),
                              json.loads((tree / "models" / f"{model}.json").read_text()))
        assert set(head.classes) == classes
    mask = json.loads((tree / "heads" / model / "mask.json").read_text())["metrics"]
    assert 0 <= mask["simulated_uar_seen_mask_types"] <= 1 and 0 <= mask["simulated_uar_held_out_CottonPlain2L"] <= 1


def test_bench_speaker_table_runs_on_the_calibration_write_heads_wrote(world, written):
    _, tree, _, _ = world
    first, heads, bench, out = written
    assert "_windows_" in first.stdout  # the first run embedded the speech windows of each set...
    assert "_windows_" not in heads.stdout + bench.stdout  # ...which write-heads and the second run reused
    report = json.loads((out / "results.json").read_text())
    assert "stub system" in report["results"]  # the earlier tables are kept
    table = report["speaker_open_set"]
    assert table["command"].startswith("edgepara bench quality --tables speaker")
    markdown = (out / "results.md").read_text()
    assert markdown in bench.stdout  # the command prints the report it wrote
    assert "| stub system |" in markdown
    for model in MODEL_NAMES:
        card = json.loads((tree / "heads" / model / "speaker.json").read_text())
        # the bars the bench decided with are the calibration write-heads just wrote into heads/
        assert table[model]["thresholds"] == card["metrics"]["cosine_bar"]
        assert table[model]["false_accept"] == card["false_accept"]
        for group, by_n in table[model]["open_set"].items():
            for n, rates in by_n.items():
                assert 0 <= rates["named_right"]["mean"] <= 1
                assert (f"| {model} ({card['false_accept']}) | {group} | {n[2:]} "
                        f"({table[model]['thresholds'][n]:.3f}) |") in markdown
        assert set(table[model]["session"]) == set(table[model]["open_set"]) - {
            "enrolled_speechocean762_strangers_ravdess"}
        for group in table[model]["by_enrollment_speech"]:
            assert f"| {model} | {group} | 5 |" in markdown


# --- bad input: one line on stderr, a non-zero exit, no traceback ---------------------------------------------

def _variant(world, name: str, change) -> Path:
    """A copy of the generated data root with one thing wrong."""
    base, _, root, _ = world
    path = base / f"root-{name}"
    if not path.exists():
        shutil.copytree(root, path)
        change(path)
    return path


def _no_speechocean(path: Path) -> None:
    shutil.rmtree(path / "speechocean762")


def _no_age_column(path: Path) -> None:
    manifest = path / "speechocean762" / "manifest.csv"
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    _write_manifest(manifest, ",".join(k for k in rows[0] if k != "age"),
                    [[v for k, v in r.items() if k != "age"] for r in rows])


def _missing_audio(path: Path) -> None:
    (path / "ravdess" / "Actor_19" / "03-01-03-01-01-01-19.flac").unlink()


def _silent_clip(path: Path) -> None:
    import soundfile as sf

    sf.write(path / "ravdess" / "Actor_19" / "03-01-03-01-01-01-19.flac", np.zeros(2 * SR, np.float32), SR)


CASES = [pytest.param(*case) for case in (
    # (id, command (ROOT/CACHE/OUT/FILE filled in), data root variant, exit code, part of the message)
    ("bench-no-results", "bench quality --tables speaker --out EMPTY --cache CACHE --data-root ROOT", None, 1,
     "results.json"),
    ("bench-no-data-root", "bench quality --tables speaker --out OUT --cache CACHE --data-root NOWHERE", None, 1,
     "data root"),
    ("heads-no-data-root", "write-heads --heads speaker --cache CACHE --data-root NOWHERE", None, 1, "data root"),
    ("heads-cache-is-a-file", "write-heads --heads speaker --cache FILE --data-root ROOT", None, 2, "--cache"),
    ("heads-unknown-head", "write-heads --heads speaker,bogus --cache CACHE --data-root ROOT", None, 2, "--heads"),
    ("bench-missing-audio", "bench quality --tables speaker --out OUT --cache CACHE --data-root ROOT",
     _missing_audio, 1, "no file at"),
    ("bench-silent-clip", "bench quality --tables speaker --out OUT --cache CACHE --data-root ROOT", _silent_clip, 3,
     "03-01-03-01-01-01-19.flac: expected speech"))] + [
    pytest.param("bench-no-speechocean762",
                 "bench quality --tables speaker --out OUT --cache CACHE --data-root ROOT", _no_speechocean, 1,
                 "speechocean762"),
    pytest.param("heads-no-speechocean762", "write-heads --heads speaker --cache CACHE --data-root ROOT",
                 _no_speechocean, 1, "speechocean762"),
    pytest.param("bench-cache-is-a-file", "bench quality --tables speaker --out OUT --cache FILE --data-root ROOT",
                 None, 2, "--cache"),
    pytest.param("bench-no-age-column", "bench quality --tables speaker --out OUT --cache CACHE --data-root ROOT",
                 _no_age_column, 1, "age"),
]


@pytest.mark.parametrize("case, command, variant, code, says", CASES,
                         ids=[c.values[0] for c in CASES])
def test_bad_input_is_one_line(world, tmp_path, case, command, variant, code, says):
    _, _, root, run = world
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"command": "stub", "results": {}, "sizes_bytes": {},
                                                  "teachers_concat": [], "retention": {}}))
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "cache").mkdir()
    values = {"ROOT": _variant(world, case, variant) if variant else root, "CACHE": tmp_path / "cache", "OUT": out,
              "EMPTY": tmp_path / "empty", "FILE": tmp_path / "a-file",
              "NOWHERE": tmp_path / "no-such-folder"}
    r = run(*[values.get(word, word) for word in command.split()])
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == code, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error:") and says in lines[0], r.stderr
