"""`edgepara write-heads` (speaker, mask, mask_type and emotion heads) and `edgepara bench quality` (all tables,
and --tables students|speaker|emotion) end to end, through the real CLI, on a tiny data root generated here (a few
seconds of synthetic speech per speaker in the manifest layout of ../shared/data), so that they are exercised
without the shared corpora; and their bad-input paths, which must be one line on stderr and a non-zero exit, never
a traceback.

The commands run in a copy of the package with its own models/ and heads/ (the asset folders are found beside the
package), so write-heads and bench never touch the repository's shipped heads or model cards.

The emotion heads need the five labelled emotion corpora (ravdess, emodb, ased_amharic, emospeech_in,
baved_arabic), each with training, validation and test speakers: generated here with one clip per label and
speaker, each label in its own sentence and, RAVDESS's aside, with its emotion's prosody (espeak-ng pitch and
speed). `bench quality --tables emotion` embeds them with every system, the teachers included (Whisper tiny.en
and base through CTranslate2, resemblyzer, openSMILE, speech_embedding): about 40 s on two CPU cores for these
108 clips, so it is covered too. It runs first, as the README orders them, and write-heads fits from its cache.

The full `bench quality` also reads fsdd (spoken digits, split by take), and hears RAVDESS's test actors through
the held-out third of rirs_real and noise_real: generated too (espeak-ng digits; decaying noise bursts as rooms, a
short device response; brown, pink and white noise), no audio copied. Each student gets a float run (a distill
run's folder: the shipped layout with seeded random weights), so every row of results.json is measured: the
teachers, the Whisper layers, the teachers concatenated, eGeMAPS, each student int8 and float. Only two RAVDESS
emotions are repetition 01, the masked set (clean and through four masks, for every system) being the largest:
the full run then takes about 90 s on two loaded CPU cores (the fixture, with --tables students twice, about
140 s). `--tables students` runs on its out folder from a cache without the students' embeddings: their rows are
measured again, in the clean, mask and emotion tables (the same bytes: the embedding is deterministic on CPU,
checked over three re-embeddings), the teachers' kept.

Not covered here: --ablation runs (each is one more float system; the seed and ablation summaries are tested on
made-up rows in test_bench_report.py), and `bench speed|stream|labelling`."""
import csv
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
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
# repetition 01 (the masked set's utterances: clean and through each mask) of two emotions, 02 of the others: the
# masked set is every system's largest in a full bench quality run
RAVDESS_MASK_ITEMS = ("01", "03")
# speechocean762: validation speakers calibrate; test speakers split into children (< 18) and adults
SPEECHOCEAN = (("S0101", "val", 10), ("S0102", "val", 40), ("S0201", "test", 8), ("S0202", "test", 9),
               ("S0203", "test", 30), ("S0204", "test", 35))
EMOSPEECH_USERS = ("Uaaaa0001", "Ubbbb0002")  # validation users, 4 utterances each (3 enroll, >= 1 to query)
EMOSPEECH_TRAIN_USERS = ("Ucccc0003", "Udddd0004")  # labelled training users (the emotion heads fit on them)
# the other labelled emotion corpora: two training speakers, one validation, one test each, every label once
EMODB = (("S03", "train"), ("S08", "train"), ("S12", "val"), ("S15", "test"))
EMODB_EMOTIONS = (("N", "neutral"), ("F", "happiness"), ("T", "sadness"), ("W", "anger"), ("L", "boredom"))
ASED = (("ased01", "train"), ("ased03", "train"), ("ased22", "val"), ("ased02", "test"))
# (file prefix, folder, label, original label, sentence): sentences 01-02 are spoken in every emotion, 03-07 in one
ASED_EMOTIONS = (("n1", "01Neutral", "neutral", "Neutral", "01"), ("f2", "02Fearful", "fearful", "Fearful", "02"),
                 ("h3", "03Happy", "happy", "Happy", "02"), ("S4", "04Sad", "sad", "Sad", "04"),
                 ("a5", "05Angry", "angry", "Angry", "05"))
BAVED = (("baved10", "train"), ("baved11", "train"), ("baved1", "val"), ("baved0", "test"))
BAVED_LEVELS = (("0", "low"), ("1", "neutral"), ("2", "high"))
# an emotion's prosody (espeak-ng pitch offset, speed factor), shared by the corpora so that it carries across
PROSODY = {"neutral": (0, 1.0), "calm": (-6, 0.9), "happy": (15, 1.15), "sad": (-15, 0.8), "angry": (10, 1.3),
           "fearful": (20, 1.2), "boredom": (-10, 0.85), "low": (-15, 0.8), "high": (15, 1.25)}
PROSODY.update(happiness=PROSODY["happy"], sadness=PROSODY["sad"], anger=PROSODY["angry"])
# FSDD (the speaker probe of bench quality): spoken digits split by take as the shared copy splits them (takes 0-4
# test, 5-9 validation, the rest training): three speakers, two digits, one take of each split
FSDD_SPEAKERS = ("george", "jackson", "lucas")
FSDD_DIGITS = ("zero", "one")
FSDD_TAKES = ((0, "test"), (5, "val"), (10, "train"))
# rirs_real and noise_real, generated: a decaying noise burst per room (RT60 in seconds) and a short device
# response; brown, pink and white noise. Every third file in sorted order is held out for bench quality's
# robustness set (data.room_paths / noise_paths): the device response and the studio, and the street noise.
ROOMS = (("device/phone_ir.flac", "device", 0.05), ("openair/chapel.flac", "room", 0.9),
         ("openair/lecture_room.flac", "room", 0.5), ("openair/studio.flac", "room", 0.25))
NOISES = (("berlin_noise/street.flac", "outside; cars", 2.0), ("speech_commands_bg/pink_noise.flac",
                                                             "synthetic_pink_noise", 1.0),
          ("speech_commands_bg/white_noise.flac", "synthetic_white_noise", 0.0))  # (path, label, spectral slope)
MODEL_NAMES = sorted(p.stem for p in (REPO / "models").glob("*.json"))
USE_ESPEAK = shutil.which("espeak-ng") is not None and not os.environ.get("EDGEPARA_TEST_NO_ESPEAK")
ESPEAK_VOICES = [(v, p) for p in (35, 60, 85) for v in ("en+m1", "en+f2", "en+m3", "en+f4", "en+m7", "en+f1")]


def _synthetic_voice(seed: int, sentence: int, seconds: float = 2.0, style=None) -> np.ndarray:
    """Speech-shaped sound when espeak-ng is missing: a harmonic source at the voice's pitch through two
    formant resonators, in syllable-rate bursts (enough for the VAD and for voices to differ)."""
    from scipy.signal import lfilter

    voice = np.random.default_rng(seed)
    f0, formants = voice.uniform(90, 300), (voice.uniform(350, 900), voice.uniform(1100, 2600))
    pitch, speed = (0, 1.0) if style is None else style
    f0, tilt = f0 * 2 ** (pitch / 20), 1 - pitch / 40  # an aroused voice: higher and brighter
    rng = np.random.default_rng(1000 * seed + sentence)
    t = np.arange(int(seconds * SR)) / SR * speed
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)))) / SR
    source = sum(np.sin(k * phase) / k ** tilt for k in range(1, 30))
    y = source.copy()
    for fc in formants:
        r, th = np.exp(-np.pi * 120 / SR), 2 * np.pi * fc / SR
        y += 3 * lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], source)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3.5, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.5
    envelope[: SR // 5] = envelope[-SR // 5:] = 0
    y = y * envelope + rng.normal(0, 0.01, len(t))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _say(voice: int, sentence: int, path: Path, scratch: Path, style: tuple[int, float] | None = None,
         text: str | None = None) -> float:
    """Writes one utterance of `voice` to `path` (FLAC, or Ogg Opus for .opus, as the shared copy stores it);
    `style` (pitch offset, speed factor) acts an emotion's prosody; `text` (a short word, e.g. an FSDD digit)
    is said instead of sentence number `sentence`, or, without espeak-ng, makes the clip short."""
    import soundfile as sf
    from scipy.signal import resample_poly

    if USE_ESPEAK:
        name, pitch = ESPEAK_VOICES[voice % len(ESPEAK_VOICES)]
        wav = scratch / "say.wav"
        extra = [] if style is None else ["-s", str(round(175 * style[1]))]
        pitch = pitch if style is None else min(99, max(0, pitch + style[0]))
        subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), *extra, "-w", str(wav),
                        text or SENTENCES[sentence]], check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
        audio = resample_poly(audio, SR, rate).astype(np.float32) if rate != SR else audio
    else:
        audio = _synthetic_voice(voice, sentence, seconds=2.0 if text is None else 0.8, style=style)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".opus":
        sf.write(path, audio, SR, format="OGG", subtype="OPUS")
    else:
        sf.write(path, audio, SR)
    return len(audio) / SR


def _write_manifest(path: Path, header: str, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        writer.writerows(rows)


def _make_data_root(root: Path, scratch: Path) -> None:
    """ravdess, speechocean762 (with ages), emospeech_in (with a background clip, which is skipped) and mask
    curves: exactly what write-heads speaker/mask/mask_type and the speaker tables read; the other labelled
    emotion corpora, for write-heads emotion and the emotion tables; and fsdd, rirs_real and noise_real, which
    only a full bench quality reads."""
    import soundfile as sf

    opus = "OGG" in sf.available_formats() and "OPUS" in sf.available_subtypes("OGG")
    ext = ".opus" if opus else ".flac"
    voice = 0
    rows = []
    for actor in RAVDESS_ACTORS:
        for i, (code, label) in enumerate(RAVDESS_EMOTIONS):
            take = "01" if code in RAVDESS_MASK_ITEMS else "02"
            name = f"Actor_{actor:02d}/03-01-{code}-01-01-{take}-{actor:02d}.flac"
            seconds = _say(voice, i, root / "ravdess" / name, scratch)
            rows.append([name, label, f"A{actor:02d}", f"{seconds:.3f}", "train", "M", "normal", "01", take])
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
    for user in EMOSPEECH_TRAIN_USERS:
        for i, label in enumerate(("calm", "angry", "fearful", "happy")):
            name = f"speech/web/kw-safe-{label}-{user}{ext}"
            seconds = _say(voice, i, root / "emospeech_in" / name, scratch, PROSODY[label])
            rows.append([name, label, user, f"{seconds:.3f}", "train", "speech", "kw", "safe", "web", "-20", name])
        voice += 1
    background = root / "emospeech_in" / f"background/room{ext}"
    background.parent.mkdir(parents=True)
    sf.write(background, np.random.default_rng(0).normal(0, 0.01, SR).astype(np.float32), SR,
             **({"format": "OGG", "subtype": "OPUS"} if opus else {}))
    rows.append([f"background/room{ext}", "", "", "1.000", "train", "background", "", "", "", "-40", "room"])
    _write_manifest(root / "emospeech_in" / "manifest.csv",
                    "path,label,speaker,duration_s,split,kind,keyword,environment,location,rms_dbfs,original_name",
                    rows)
    voice = _make_emotion_corpora(root, scratch, ext, voice)
    _make_bench_extras(root, scratch, voice)
    # invented attenuation curves (deeper at high frequencies), one per mask type the code knows
    (root / "masks").mkdir()
    curves = {"surgical": -2.0, "CottonJersey2L": -5.0, "CottonPlain2L": -7.0, "CottonDenim2L": -10.0}
    _write_manifest(root / "masks" / "curves.csv", "mask_type,freq_hz,attenuation_db",
                    [[mask, f, f"{depth * min(1.0, f / 6000):.3f}"] for mask, depth in curves.items()
                     for f in (0, 1000, 2000, 4000, 6000, 8000)])


def _make_emotion_corpora(root: Path, scratch: Path, ext: str, voice: int) -> int:
    """emodb, ased_amharic and baved_arabic as their manifests lay them out (file names included: ASED's
    sentence is read from its name), each label spoken with its emotion's prosody. Returns the next voice."""
    rows = []
    for speaker, split in EMODB:
        for i, (letter, label) in enumerate(EMODB_EMOTIONS):
            name = f"wav/{speaker[1:]}a0{i + 1}{letter}a.flac"
            seconds = _say(voice, i, root / "emodb" / name, scratch, PROSODY[label])
            rows.append([name, label, speaker, f"{seconds:.1f}", split, "M", f"a0{i + 1}", "a"])
        voice += 1
    _write_manifest(root / "emodb" / "manifest.csv", "path,label,speaker,duration_s,split,gender,text_id,version",
                    rows)
    rows = []
    for speaker, split in ASED:
        for i, (prefix, folder, label, original, sentence) in enumerate(ASED_EMOTIONS):
            stem = f"{prefix}-{sentence}-01-01-{speaker[4:]}"
            seconds = _say(voice, i, root / "ased_amharic" / folder / f"{stem}{ext}", scratch, PROSODY[label])
            rows.append([f"{folder}/{stem}{ext}", label, speaker, f"{seconds:.3f}", split, original, "F", sentence,
                         "01", "01", "-20.0", f"{stem}.wav"])
        voice += 1
    _write_manifest(root / "ased_amharic" / "manifest.csv", "path,label,speaker,duration_s,split,orig_label,gender,"
                    "sentence,repetition,gender_code_in_name,rms_dbfs,original_name", rows)
    rows = []
    for record, (speaker, split) in enumerate(BAVED):
        for level, label in BAVED_LEVELS:
            stem = f"{speaker[5:]}-m-30-0-{level}-{record * 3 + int(level)}"
            seconds = _say(voice, int(level), root / "baved_arabic" / "0" / f"{stem}{ext}", scratch, PROSODY[label])
            rows.append([f"0/{stem}{ext}", label, speaker, f"{seconds:.3f}", split, f"level{level}", level, "M", "30",
                         "0", "word0", "0", str(record * 3 + int(level)), "-20.0", f"{stem}.wav"])
        voice += 1
    _write_manifest(root / "baved_arabic" / "manifest.csv", "path,label,speaker,duration_s,split,orig_label,"
                    "emotion_level,gender,age,word_id,word,folder_word_id,record_id,rms_dbfs,original_name", rows)
    return voice


def _make_bench_extras(root: Path, scratch: Path, voice: int) -> None:
    """What only a full `bench quality` reads besides: fsdd, and the held-out rooms and noise (rirs_real,
    noise_real) RAVDESS's test actors are heard through, in the layout and columns of the shared copy."""
    import soundfile as sf

    rows = []
    for speaker in FSDD_SPEAKERS:
        for digit, word in enumerate(FSDD_DIGITS):
            for take, split in FSDD_TAKES:
                name = f"recordings/{digit}_{speaker}_{take}.flac"
                seconds = _say(voice, digit + take, root / "fsdd" / name, scratch, text=word)
                rows.append([name, str(digit), speaker, f"{seconds:.3f}", split, str(take)])
        voice += 1
    _write_manifest(root / "fsdd" / "manifest.csv", "path,label,speaker,duration_s,split,index", rows)
    rng = np.random.default_rng(7)
    rows = []
    for name, kind, rt60 in ROOMS:
        t = np.arange(int(max(0.1, 1.2 * rt60) * SR)) / SR
        response = rng.normal(0, 0.3, len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        response[0] = 1.0  # the direct path
        path = root / "rirs_real" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.9 * response / np.abs(response).max()).astype(np.float32), SR)
        rows.append([name, f"generated {kind}", "", f"{len(t) / SR:.3f}", "train", kind, "CC0 1.0", "generated",
                     str(SR), "1", f"{rt60:g}", "0"])
    _write_manifest(root / "rirs_real" / "manifest.csv", "path,label,speaker,duration_s,split,kind,license,credit,"
                    "orig_sr,orig_channels,rt60_est_s,trimmed_samples", rows)
    rows = []
    for name, label, slope in NOISES:  # power falling as 1 / f ** slope
        spectrum = np.fft.rfft(rng.normal(0, 1, 4 * SR))
        spectrum[1:] /= np.arange(1, len(spectrum)) ** (slope / 2)
        spectrum[0] = 0
        noise = np.fft.irfft(spectrum, 4 * SR)
        path = root / "noise_real" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.5 * noise / np.abs(noise).max()).astype(np.float32), SR)
        rows.append([name, label, "", "4.0", "train", "generated", "CC0 1.0", "real" if slope == 2 else "synthetic",
                     str(SR)])
    _write_manifest(root / "noise_real" / "manifest.csv", "path,label,speaker,duration_s,split,source,license,kind,"
                    "orig_sr", rows)


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

    run.env = env  # for a Python step of the tests' own (making the float students' runs)
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
    mask = json.loads((tree / "heads" / model / "mask.json").read_text())
    for metrics in (mask["metrics"], mask["metrics"]["embedding_only"]):
        assert 0 <= metrics["simulated_uar_seen_mask_types"] <= 1 and 0 <= metrics["simulated_uar_held_out_CottonPlain2L"] <= 1
    # both mask heads read each window's band shape beside the embedding (the embedding alone reported beside it)
    model_card = json.loads((tree / "models" / f"{model}.json").read_text())
    for name in ("mask", "mask_type"):
        card = json.loads((tree / "heads" / model / f"{name}.json").read_text())
        assert card["input"] == "embedding+band_shape" and card["band_shape_dim"] == model_card["frontend"]["n_mels"]
        assert card["dim"] == model_card["embedding_dim"] and "embedding_only" in card["metrics"]


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


# --- emotion: `bench quality --tables emotion`, then `write-heads --heads emotion` ------------------------------

EMOTION_FILES = ("emotion.npz", "emotion.json", "arousal.npz", "arousal.json", "emotion8.npz", "emotion8.json")


def _emotion_files(tree: Path) -> dict:
    return {f"{model}/{name}": (tree / "heads" / model / name).read_bytes() for model in MODEL_NAMES
            for name in EMOTION_FILES}


@pytest.fixture(scope="module")
def emotion_written(world):
    """As the README orders them: `bench quality --tables emotion` (every system's probe tables and each model's
    live tables; it caches the utterance embeddings of the five labelled corpora), then `write-heads --heads
    emotion` once with a fresh cache (everything embedded again), then twice with the same command line from
    bench's cache (the heads left in the copy are the last run's)."""
    base, tree, root, run = world
    before = _heads_digest()
    out, cache = base / "out-emotion", base / "emotion-cache"
    out.mkdir()
    # the tables a full `bench quality` run wrote before (a stub row): --tables emotion adds to them
    (out / "results.json").write_text(json.dumps({"command": "edgepara bench quality (stub)",
                                                  "results": {"stub system": {}}, "sizes_bytes": {},
                                                  "teachers_concat": ["stub teacher"], "retention": {}}))
    bench = run("bench", "quality", "--tables", "emotion", "--out", out, "--cache", cache, "--runs",
                base / "no-runs", "--data-root", root, timeout=600)
    assert bench.returncode == 0, bench.stderr[-3000:]
    (base / "emotion-cache-fresh").mkdir()
    fresh = run("write-heads", "--heads", "emotion", "--cache", base / "emotion-cache-fresh", "--data-root", root)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    fresh_files = _emotion_files(tree)
    command = ("write-heads", "--heads", "emotion", "--cache", cache, "--data-root", root)
    first = run(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    written = _emotion_files(tree)
    again = run(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _heads_digest() == before, "the repository's shipped heads changed"
    # the model cards: none names this test's folders (a digest would also catch the benchmark runs that may write
    # the repository's cards while the tests run)
    assert _mentions(base) == [], "the repository's model cards got this test's results"
    return {"bench": bench, "out": out, "fresh": fresh, "fresh_files": fresh_files, "first": first,
            "written": written, "again": again, "rewritten": _emotion_files(tree)}


def _rates(table: dict) -> None:
    """A live_scores row: accuracy and UAR, and where a threshold applies the certain labels' coverage and
    accuracy (none when no label was shown as certain)."""
    assert 0 <= table["accuracy"] <= 1 and 0 <= table["uar"] <= 1
    if "certain_coverage" in table:
        assert 0 <= table["certain_coverage"] <= 1
        assert (table["certain_accuracy"] is None) == (table["certain_coverage"] == 0)
        assert table["certain_accuracy"] is None or 0 <= table["certain_accuracy"] <= 1


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_write_heads_trains_the_emotion_heads_from_generated_corpora(world, emotion_written, model):
    from edgepara.heads import ProbeHead
    from edgepara.train.emotion import C_GRID
    from edgepara.train.emotion_corpora import (AROUSAL_CLASSES, AROUSAL_MAPS, EMOTION_CLASSES, EMOTION_MAPS,
                                                HELD_OUT_CORPORA)
    from edgepara.train.probes import C_GRID as PROBE_C_GRID

    _, tree, root, _ = world
    model_card = json.loads((tree / "models" / f"{model}.json").read_text())
    command = f"edgepara write-heads --heads emotion --cache {world[0] / 'emotion-cache'} --data-root {root}"
    cards = {}
    for name, classes in (("emotion", list(EMOTION_CLASSES)), ("arousal", list(AROUSAL_CLASSES)),
                          ("emotion8", sorted(label for _, label in RAVDESS_EMOTIONS))):
        npz = tree / "heads" / model / f"{name}.npz"
        card = cards[name] = json.loads(npz.with_suffix(".json").read_text())
        assert card["classes"] == classes and card["name"] == name
        assert (card["model"], card["model_sha256"], card["dim"]) == (
            model_card["name"], model_card["sha256"], model_card["embedding_dim"])
        assert card["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest() and card["bytes"] == npz.stat().st_size
        assert card["C"] in (PROBE_C_GRID if name == "emotion8" else C_GRID) and card["metrics"]["command"] == command
        # loadable and checked against its model, as listen loads it
        head = ProbeHead.load(str(npz), model_card)
        assert list(head.classes) == classes
    for name, maps, classes in (("emotion", EMOTION_MAPS, EMOTION_CLASSES), ("arousal", AROUSAL_MAPS,
                                                                             AROUSAL_CLASSES)):
        card = cards[name]
        # adapted per speaker: the population prior ships in the head; "uncertain" below a chosen bar
        assert card["input"] == "speaker_normalised" and set(card["adaptation"]) == {"prior_utterances",
                                                                                     "prior_utterances_spread"}
        with np.load(tree / "heads" / model / f"{name}.npz") as z:
            assert z["prior_mean"].shape == z["prior_std"].shape == (model_card["embedding_dim"],)
            assert np.all(z["prior_std"] > 0)
        assert 0.30 <= card["uncertain_below"] <= 0.95
        assert card["label_maps"] == maps and card["C"] in C_GRID and card["metrics"]["C"] == card["C"]
        assert all(corpus in card["data"] for corpus in ("RAVDESS", "EmoDB", "ASED", "EmoSpeech"))
        # measured through the live pipeline on each corpus's test speakers (emospeech_in: its validation users)
        test = card["metrics"]["test_speakers_live"]
        assert set(test) == set(maps)
        for table in test.values():
            _rates(table)
        # and measured through held-out rooms and noise
        rooms = card["metrics"]["test_speakers_rooms_live"]
        assert set(rooms) == set(test) and "held-out rooms" in card["metrics"]["split"]
        for table in rooms.values():
            _rates(table)
        if USE_ESPEAK:  # the spoken emotions differ in prosody and each corpus speaks one sentence per label:
            # learnable (the synthetic voices' RAVDESS emotions differ in nothing, and two training speakers per
            # corpus are too few to learn their small pitch shifts)
            assert np.mean([t["uar"] for t in test.values()]) > 1.5 / len(classes), test
    loco = cards["emotion"]["metrics"]["leave_one_corpus_out_live"]
    assert loco["uncertain_below"] == cards["emotion"]["uncertain_below"]
    for mode in ("speaker", "off"):
        uar = loco[f"loco_live_uar_adaptation_{mode}"]
        assert set(uar) == {*HELD_OUT_CORPORA, "ased_amharic_sentences_01_02", "mean", "stream_voice_restarts"}
        assert all(0 <= uar[c] <= 1 for c in HELD_OUT_CORPORA) and uar["stream_voice_restarts"] >= 0
        assert uar["mean"] == round(float(np.mean([uar[c] for c in HELD_OUT_CORPORA])), 4)
    assert set(loco["certain_loco_test_speakers"]) == set(HELD_OUT_CORPORA)
    for table in loco["certain_loco_test_speakers"].values():
        _rates(table)
    assert "leave_one_corpus_out_live" not in cards["arousal"]["metrics"]
    # RAVDESS's own classes: no adaptation, fitted on actors 1-18 and tested on 19-22
    assert "input" not in cards["emotion8"] and "label_maps" not in cards["emotion8"]
    _rates(cards["emotion8"]["metrics"]["ravdess_test_actors"])
    _rates(cards["emotion8"]["metrics"]["ravdess_test_actors_rooms_noise_10db"])
    if USE_ESPEAK:  # one sentence per RAVDESS emotion
        assert cards["emotion8"]["metrics"]["ravdess_test_actors"]["uar"] > 1.5 / len(RAVDESS_EMOTIONS)
    # what ships is what bench quality measured: the same recipe, the same cached embeddings, the same figures
    live = model_card["metrics"]["emotion_int8"]["live"]
    assert loco == {k: v for k, v in live.items() if k.startswith(("loco_live", "certain", "uncertain"))}
    for name in ("emotion", "arousal"):
        assert cards[name]["metrics"]["test_speakers_live"] == live[f"shipped_{name}_test_speakers"]


def test_write_heads_emotion_is_deterministic_and_reads_the_bench_cache(world, emotion_written):
    runs = emotion_written
    # the int8 embeddings of the five corpora came from the cache bench quality filled...
    assert "_int8vad_" in runs["bench"].stdout and "_int8vad_" not in runs["first"].stdout + runs["again"].stdout
    # ...and a second run with the same command line writes the very same bytes
    assert runs["rewritten"] == runs["written"]
    # with a fresh cache everything is embedded again, and the heads come out the same: only the recorded
    # command line (its --cache) differs
    assert "_int8vad_" in runs["fresh"].stdout
    for key, data in runs["fresh_files"].items():
        if key.endswith(".npz"):
            assert data == runs["written"][key], key
        else:
            fresh, first = json.loads(data), json.loads(runs["written"][key])
            assert fresh["metrics"].pop("command").endswith("emotion-cache-fresh --data-root " + str(world[2]))
            first["metrics"].pop("command")
            assert fresh == first, key


def test_bench_emotion_tables_run_on_generated_corpora(world, emotion_written):
    from edgepara.train.bench_systems import TEACHER_NAMES, WHISPER_SYSTEMS
    from edgepara.train.emotion_corpora import HELD_OUT_CORPORA

    _, tree, _, _ = world
    bench, out = emotion_written["bench"], emotion_written["out"]
    report = json.loads((out / "results.json").read_text())
    assert "stub system" in report["results"]  # the earlier tables are kept
    emotion = report["emotion"]
    assert emotion["command"].startswith("edgepara bench quality --tables emotion")
    # every system's probes: the teachers, each Whisper layer the students learn from, each student int8
    systems = {*TEACHER_NAMES, *(f"whisper {m} b{b}" for m, blocks in WHISPER_SYSTEMS.items() for b in blocks),
               *(f"{model} int8" for model in MODEL_NAMES)}
    assert set(emotion["probes"]) == systems
    for probes in emotion["probes"].values():
        for kind in ("raw", "speaker_normalised"):
            loco = probes[f"loco_uar_{kind}"]
            assert set(loco) == {*HELD_OUT_CORPORA, "ased_amharic_sentences_01_02", "mean"}
            assert all(0 <= v <= 1 for v in loco.values())
        for key in ("ased_4class_uar", "ased_4class_sentences_01_02_uar", "ased_5class_uar", "baved_arousal_uar"):
            assert set(probes[key]) == {"raw", "speaker_normalised"}
            assert all(0 <= v <= 1 for v in probes[key].values())
    assert set(emotion["live"]) == set(MODEL_NAMES)
    markdown = (out / "results.md").read_text()
    assert markdown in bench.stdout  # the command prints the report it wrote
    for model in MODEL_NAMES:
        live = emotion["live"][model]
        on = live["loco_live_uar_adaptation_speaker"]
        assert f"| {model} | {on['ravdess']:.3f} / " in markdown
        # the shipped heads through held-out rooms and noise, beside their clean figures
        for task in ("emotion", "arousal"):
            clean, rooms = live[f"shipped_{task}_test_speakers"], live[f"shipped_{task}_test_speakers_rooms"]
            assert set(clean) == set(rooms) and all(0 <= t["uar"] <= 1 for t in rooms.values())
            [row] = [line for line in markdown.splitlines() if line.startswith(f"| {model} | {task} | ")]
            assert f" {clean['ravdess']['uar']:.3f} / {rooms['ravdess']['uar']:.3f} |" in row
        # the model card records the tables and the targets (none of the held-out corpora may have shown a label
        # as certain: the lowest accuracy is then over those that did)
        card = json.loads((tree / "models" / f"{model}.json").read_text())
        assert card["metrics"]["emotion_int8"] == {"probe": emotion["probes"][f"{model} int8"], "live": live,
                                                   "command": emotion["command"]}
        shown = [t["certain_accuracy"] for t in live["certain_loco_test_speakers"].values()
                 if t["certain_accuracy"] is not None]
        lowest = card["metrics"]["targets_emotion"]["certain_loco_accuracy_min"]
        assert lowest["value"] == (min(shown) if shown else None)
        assert lowest["met"] == (bool(shown) and min(shown) >= 0.70)


# --- the full run: `bench quality` (every table), then `bench quality --tables students` ----------------------

# a distill run's folder for each student (runs/MODEL/backbone.keras and student.json, as `edgepara distill` saves
# them): the shipped layout with seeded random weights, so that bench quality has a float row per student (the
# seed and ablation summaries of --ablation runs are left to test_bench_report.py: each run costs a float system)
MAKE_RUNS = """
import json, sys
from pathlib import Path
import keras
from edgepara.train.student import SIZES, build_backbone
for seed, folder in enumerate(sys.argv[1:]):
    folder = Path(folder)
    keras.utils.set_random_seed(seed)
    cfg = SIZES[folder.name]
    folder.mkdir(parents=True)
    build_backbone(cfg).save(folder / "backbone.keras")
    (folder / "student.json").write_text(json.dumps(cfg.to_dict()))
"""
TEACHER_ROWS = ("speech_embedding", "resemblyzer", "egemaps", "teachers_concat")
RESULT_KEYS = {"ravdess_emotion", "robustness_rooms_noise_10db", "emodb_emotion", "fsdd_speaker",
               "ravdess_verification_eer", "ravdess_speaker_id_across_emotions", "zero_shot_ravdess_to_emodb_uar",
               "speechocean762_children_eer", "speechocean762_children_speaker_id", "speechocean762_adults_eer",
               "speechocean762_adults_speaker_id", "emospeech_in_eer", "emospeech_in_speaker_id"}


def _is_student(system: str) -> bool:
    return system.startswith("edgepara")


def _cards(tree: Path) -> dict:
    return {model: json.loads((tree / "models" / f"{model}.json").read_text()) for model in MODEL_NAMES}


def _outputs(out: Path, tree: Path) -> dict:
    return {"json": (out / "results.json").read_bytes(), "md": (out / "results.md").read_text(),
            "png": (out / "size_quality.png").read_bytes(), "cards": _cards(tree)}


def _mentions(base: Path) -> list:
    """The repository's own models/, heads/ and bench/ files that name this test's folder (every command the
    bench or write-heads records names its --out or --cache): none may. A digest before and after would also
    catch the long benchmark jobs that may run beside the tests and write there."""
    return [str(p) for name in ("models", "heads", "bench") for p in sorted((REPO / name).rglob("*"))
            if p.is_file() and p.suffix in (".json", ".md") and str(base).encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def full_run(world):
    """`bench quality` (every table) on the generated root, with a float run of each student; then `--tables
    students` on the same out folder, from a cache without the students' embeddings (so that their rows are
    measured again and the teachers' are not), twice."""
    base, tree, root, run = world
    runs = base / "runs"
    made = subprocess.run([sys.executable, "-c", MAKE_RUNS, *(runs / model for model in MODEL_NAMES)], cwd=tree,
                          env=run.env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    cards_before, heads_before = _cards(tree), _heads_digest()
    out, cache = base / "out-full", base / "full-cache"
    started = time.monotonic()
    full = run("bench", "quality", "--out", out, "--cache", cache, "--runs", runs, "--data-root", root,
               timeout=900)
    seconds = {"full": time.monotonic() - started}
    assert full.returncode == 0, full.stderr[-3000:]
    after_full = _outputs(out, tree)
    students_cache = base / "students-cache"
    shutil.copytree(cache, students_cache, ignore=shutil.ignore_patterns("*_int8vad_*", "*_floatvad_*"))
    command = ("bench", "quality", "--tables", "students", "--out", out, "--cache", students_cache, "--runs", runs,
               "--data-root", root)
    started = time.monotonic()
    students = run(*command, timeout=600)
    seconds["students"] = time.monotonic() - started
    print(f"bench quality (all tables): {seconds['full']:.0f} s, --tables students: {seconds['students']:.0f} s")
    assert students.returncode == 0, students.stderr[-3000:]
    after_students = _outputs(out, tree)
    again = run(*command, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    after_again = _outputs(out, tree)  # before the next run writes the cards again
    # a machine without the distill runs: the float rows cannot be measured, the models did not change
    out_kept = base / "out-kept"
    shutil.copytree(out, out_kept)
    kept = run("bench", "quality", "--tables", "students", "--out", out_kept, "--cache", students_cache, "--runs",
               base / "no-runs", "--data-root", root, timeout=600)
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert _heads_digest() == heads_before, "the repository's shipped heads changed"
    assert _mentions(base) == [], "the repository's models/, heads/ or bench/ got this test's results"
    return {"full": full, "students": students, "again": again, "out": out, "cards_before": cards_before,
            "kept": json.loads((out_kept / "results.json").read_text()), "kept_log": kept.stdout,
            "after_full": after_full, "after_students": after_students, "after_again": after_again,
            "seconds": seconds}


def _check_row(system: str, row: dict) -> None:
    """One system's bench quality row: the documented metrics, each a rate in [0, 1] (an EER included)."""
    from edgepara.train.probes import C_GRID

    assert set(row) == RESULT_KEYS | {"mask_simulated_uar"}, system
    for key in ("ravdess_emotion", "emodb_emotion", "fsdd_speaker"):
        assert 0 <= row[key]["accuracy"] <= 1 and 0 <= row[key]["uar"] <= 1, (system, key)
    for key in ("ravdess_emotion", "fsdd_speaker"):  # C chosen on the validation speakers / takes
        assert row[key]["C"] in C_GRID, (system, key)
    robust = row["robustness_rooms_noise_10db"]
    assert 0 <= robust["accuracy"] <= 1
    clean = row["ravdess_emotion"]["accuracy"]
    assert robust["ratio_to_clean"] == (robust["accuracy"] / clean if clean else None), system
    for key in RESULT_KEYS - {"ravdess_emotion", "robustness_rooms_noise_10db", "emodb_emotion", "fsdd_speaker"}:
        assert isinstance(row[key], float) and 0 <= row[key] <= 1, (system, key)
    if "mask_simulated_uar" in row:
        assert set(row["mask_simulated_uar"]) == {"test_seen", "test_held_out"}
        assert all(0 <= v <= 1 for v in row["mask_simulated_uar"].values()), system


def test_bench_quality_measures_every_system_on_every_set(world, full_run):
    from edgepara.train.bench_systems import WHISPER_SYSTEMS

    _, _, root, _ = world
    report = json.loads(full_run["after_full"]["json"])
    students = {f"{model} {kind}" for model in MODEL_NAMES for kind in ("int8", "float")}
    whisper = {f"whisper {m} b{b}" for m, blocks in WHISPER_SYSTEMS.items() for b in blocks}
    assert set(report["results"]) == {*TEACHER_ROWS, *whisper, *students}
    for system, row in report["results"].items():
        _check_row(system, row)
    assert report["command"] == (f"edgepara bench quality --out {full_run['out']} --cache {world[0] / 'full-cache'} "
                                 f"--runs {world[0] / 'runs'} --data-root {root}")
    n_ravdess = len(RAVDESS_ACTORS) * len(RAVDESS_EMOTIONS)
    assert report["utterances"] == {
        "ravdess": n_ravdess, "emodb": len(EMODB) * len(EMODB_EMOTIONS),
        "fsdd": len(FSDD_SPEAKERS) * len(FSDD_DIGITS) * len(FSDD_TAKES),
        "speechocean762": 4 * sum(split == "test" for _, split, _ in SPEECHOCEAN),
        "emospeech_in": 4 * len(EMOSPEECH_USERS),
        "ravdess_robust": 4 * len(RAVDESS_EMOTIONS)}  # the test actors, through the held-out rooms and noise
    # repetition 01 of every actor, clean and through each of the four masks
    assert report["mask_task"]["utterances"] == 5 * len(RAVDESS_ACTORS) * len(RAVDESS_MASK_ITEMS)
    # the sizes: each network's bytes (the float students' parameters as float32), eGeMAPS hand-crafted
    cards = full_run["cards_before"]
    for model in MODEL_NAMES:
        assert report["sizes_bytes"][f"{model} int8"] == cards[model]["bytes"]
        assert report["sizes_bytes"][f"{model} float"] == 4 * cards[model]["params"]
    assert "egemaps" not in report["sizes_bytes"]
    sizes = report["sizes_bytes"]
    assert sizes["teachers_concat"] == sum(sizes[f"whisper {m}"] for m in WHISPER_SYSTEMS) + sizes["resemblyzer"]
    # retention: each student (int8, float) against the teachers concatenated, its EERs against resemblyzer's
    assert set(report["retention"]) == students
    for system, retained in report["retention"].items():
        for key, value in retained.items():
            if key.endswith("_minus_resemblyzer_points"):
                eer = key.removesuffix("_minus_resemblyzer_points")
                assert value == round(100 * (report["results"][system][eer] - report["results"]["resemblyzer"][eer]), 1)
            else:
                assert value >= 0
    assert report["seeds"] == {}  # one seed of each student (seed 0, the float run): no spread to report
    # the emotion and open-set speaker tables of the same run, every system's probes included
    assert set(report["emotion"]["probes"]) == set(report["results"]) - {"teachers_concat"}
    assert set(report["emotion"]["live"]) == set(MODEL_NAMES) and report["emotion"]["command"] == report["command"]
    assert set(report["speaker_open_set"]) == {*MODEL_NAMES, "command"}


def test_bench_quality_writes_the_report_the_plot_and_the_model_cards(world, full_run):
    from edgepara.train.bench_targets import against_targets

    _, tree, _, _ = world
    report, after = json.loads(full_run["after_full"]["json"]), full_run["after_full"]
    markdown = after["md"]
    assert markdown in full_run["full"].stdout  # the command prints the report it wrote
    for system, row in report["results"].items():
        assert f"| {system} | " in markdown
    assert f"| edgepara-tiny float | {4 * full_run['cards_before']['edgepara-tiny']['params'] / 1e3:.0f} KB | " \
           f"{report['results']['edgepara-tiny float']['ravdess_emotion']['accuracy']:.3f} |" in markdown
    assert "Seeds (shipped configuration, float" not in markdown
    assert "Open-set speaker identification" in markdown and "Emotion, 4 shared classes" in markdown
    assert after["png"].startswith(b"\x89PNG\r\n\x1a\n") and len(after["png"]) > 10_000
    for model in MODEL_NAMES:
        card, before = after["cards"][model], full_run["cards_before"][model]
        # the card records what the bench measured of it, and nothing else changed
        metrics = card["metrics"]
        assert metrics["quality_int8"] == report["results"][f"{model} int8"]
        assert metrics["quality_float"] == report["results"][f"{model} float"]
        assert metrics["retention_vs_teachers_concat"] == report["retention"][f"{model} int8"]
        assert metrics["targets"] == against_targets(model, report["results"])
        assert metrics["quality_command"] == report["command"]
        assert metrics["emotion_int8"] == {"probe": report["emotion"]["probes"][f"{model} int8"],
                                           "live": report["emotion"]["live"][model], "command": report["command"]}
        # this run measured no seeds nor ablations: the summaries an earlier run wrote into the shipped card
        # (edgepara-tiny's) must not stay beside rows another command measured
        assert "seeds_float" not in metrics and "ablation_float" not in metrics
        assert {k: v for k, v in card.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
        unchanged = set(before["metrics"]) - {"quality_int8", "quality_float", "retention_vs_teachers_concat",
                                              "targets", "quality_command", "protocol", "emotion_int8",
                                              "targets_emotion", "seeds_float", "ablation_float"}
        assert {k: metrics[k] for k in unchanged} == {k: before["metrics"][k] for k in unchanged}
    # in the copy: the repository's cards are another run's
    assert all(json.loads((REPO / "models" / f"{m}.json").read_text())["metrics"]["quality_command"]
               != report["command"] for m in MODEL_NAMES)


def test_bench_quality_students_keeps_the_teachers_rows_and_measures_the_students_again(world, full_run):
    full, students = json.loads(full_run["after_full"]["json"]), json.loads(full_run["after_students"]["json"])
    # the students' embeddings were computed again (they were not in this cache); the teachers' never were
    log = full_run["students"].stdout
    for model in MODEL_NAMES:
        assert f"{model}_int8vad_" in log and f"{model}_floatvad_" in log
    assert not any(f"  {key}" in log for key in ("speech_embedding on", "resemblyzer on", "egemaps on", "whisper_"))
    # the teachers' rows are the full run's, byte for byte
    def serialised(report: dict, keep) -> dict:
        return {k: json.dumps(v, sort_keys=True) for k, v in report["results"].items() if keep(k)}

    assert serialised(students, lambda k: not _is_student(k)) == serialised(full, lambda k: not _is_student(k))
    assert list(students["results"]) == [k for k in full["results"] if not _is_student(k)] + [
        k for k in full["results"] if _is_student(k)]
    # the students' rows measured again from the same audio with the same code: the same figures
    assert serialised(students, _is_student) == serialised(full, _is_student)
    for key in ("retention", "seeds", "sizes_bytes", "speaker_open_set", "utterances", "command"):
        assert students[key] == full[key], key
    command = students["students_command"]
    assert command.startswith("edgepara bench quality --tables students --out ") and "students-cache" in command
    assert set(students) - set(full) == {"students_command"}  # nothing kept: every student's run is here
    # the emotion tables: the students' probes and the live tables measured again, the same figures; the
    # teachers' probes kept (never embedded, see the log above)
    assert students["emotion"]["command"] == command
    assert {k: v for k, v in students["emotion"].items() if k != "command"} == {
        k: v for k, v in full["emotion"].items() if k != "command"}
    # every card now names the students' command; the figures are the full run's
    for model in MODEL_NAMES:
        card, before = full_run["after_students"]["cards"][model], full_run["after_full"]["cards"][model]
        assert card["metrics"]["quality_command"] == command and before["metrics"]["quality_command"] == full["command"]
        assert card["metrics"]["emotion_int8"]["command"] == command
        assert {k: v for k, v in card["metrics"].items() if k != "quality_command"} == {
            k: v if k != "emotion_int8" else {**v, "command": command}
            for k, v in before["metrics"].items() if k != "quality_command"}
        assert {k: v for k, v in card.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    # the same tables (the teachers' rows now come first)
    assert sorted(full_run["after_students"]["md"].splitlines()) == sorted(full_run["after_full"]["md"].splitlines())
    assert full_run["after_students"]["md"] in full_run["students"].stdout
    # a rerun from the same cache: nothing embedded, the very same bytes
    assert "_int8vad_" not in full_run["again"].stdout and "_floatvad_" not in full_run["again"].stdout
    for key in ("json", "md", "cards"):
        assert full_run["after_again"][key] == full_run["after_students"][key], key


def test_bench_quality_students_keeps_the_float_rows_of_unchanged_models_it_cannot_measure(full_run):
    """No distill runs on this machine: each model's float row is the earlier run's, kept because the full run
    recorded the sha256 of the very model measured again, and the report names the rows it kept."""
    full, kept = json.loads(full_run["after_full"]["json"]), full_run["kept"]
    floats = sorted(f"{model} float" for model in MODEL_NAMES)
    assert kept["model_sha256"] == full["model_sha256"] and set(full["model_sha256"]) == set(MODEL_NAMES)
    assert kept["rows_kept"] == floats and all(f"{model}_floatvad_" not in full_run["kept_log"] for model in MODEL_NAMES)
    assert {k: kept["results"][k] for k in floats} == {k: full["results"][k] for k in floats}
    assert kept["seeds"] == full["seeds"] and kept["retention"] == full["retention"]


def test_a_robustness_ratio_without_a_clean_accuracy_is_none_not_a_crash(full_run):
    """A system that gets no clean RAVDESS test utterance right has no robustness ratio (it was a
    ZeroDivisionError after every embedding): None in its row, "-" in results.md, a target not met."""
    from edgepara.train.bench_report import markdown_table
    from edgepara.train.bench_targets import against_targets

    report = json.loads(full_run["after_full"]["json"])
    row = report["results"]["edgepara-tiny int8"]
    row["ravdess_emotion"]["accuracy"] = 0.0
    row["robustness_rooms_noise_10db"]["ratio_to_clean"] = None
    assert against_targets("edgepara-tiny", report["results"])["robustness_rooms_noise_10db.ratio_to_clean"] == {
        "value": None, "target": 0.90, "met": False, "missed_by": None}
    line = next(x for x in markdown_table(report).splitlines() if x.startswith("| edgepara-tiny int8 | "))
    assert f"| {row['robustness_rooms_noise_10db']['accuracy']:.3f} | - |" in line


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


def _edit_manifest(path: Path, corpus: str, change) -> None:
    """Rewrites CORPUS/manifest.csv with change(rows) (a list of dicts; the header is the first row's keys)."""
    manifest = path / corpus / "manifest.csv"
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = change(list(csv.DictReader(f)))
    _write_manifest(manifest, ",".join(rows[0]), [list(r.values()) for r in rows])


def _no_emodb(path: Path) -> None:
    shutil.rmtree(path / "emodb")


def _baved_no_split_column(path: Path) -> None:
    _edit_manifest(path, "baved_arabic", lambda rows: [{k: v for k, v in r.items() if k != "split"} for r in rows])


def _ased_labels_capitalised(path: Path) -> None:  # as its folder names spell them: no label the maps know
    _edit_manifest(path, "ased_amharic", lambda rows: [{**r, "label": r["label"].capitalize()} for r in rows])


def _emodb_no_test_speakers(path: Path) -> None:
    _edit_manifest(path, "emodb", lambda rows: [{**r, "split": "train" if r["split"] == "test" else r["split"]}
                                                for r in rows])


def _no_sad_to_train_on(path: Path) -> None:  # leave RAVDESS out and no other corpus teaches "sad"
    for corpus in ("emodb", "ased_amharic"):
        _edit_manifest(path, corpus, lambda rows: [r for r in rows if r["label"] not in ("sad", "sadness")])


def _emodb_duration_not_a_number(path: Path) -> None:
    _edit_manifest(path, "emodb", lambda rows: [{**r, "duration_s": "n/a" if i == 3 else r["duration_s"]}
                                                for i, r in enumerate(rows)])


def _missing_audio(path: Path) -> None:
    (path / "ravdess" / "Actor_19" / "03-01-03-01-01-01-19.flac").unlink()


def _silent_clip(path: Path) -> None:
    import soundfile as sf

    sf.write(path / "ravdess" / "Actor_19" / "03-01-03-01-01-01-19.flac", np.zeros(2 * SR, np.float32), SR)


def _no_fsdd(path: Path) -> None:
    shutil.rmtree(path / "fsdd")


def _no_rirs_real(path: Path) -> None:
    shutil.rmtree(path / "rirs_real")


def _no_noise_real(path: Path) -> None:
    shutil.rmtree(path / "noise_real")


def _rirs_real_lists_nothing(path: Path) -> None:  # a header and no rows: no room is held out
    _write_manifest(path / "rirs_real" / "manifest.csv", "path,label,speaker,duration_s,split,kind", [])


def _held_out_room_missing(path: Path) -> None:  # listed, but not on disk: the first robustness item needs it
    (path / "rirs_real" / ROOMS[0][0]).unlink()


def _no_mask_curves(path: Path) -> None:
    (path / "masks" / "curves.csv").unlink()


def _held_out_mask_curve_missing(path: Path) -> None:
    rows = list(csv.DictReader(open(path / "masks" / "curves.csv", newline="")))
    _write_manifest(path / "masks" / "curves.csv", "mask_type,freq_hz,attenuation_db",
                    [list(r.values()) for r in rows if r["mask_type"] != "CottonPlain2L"])


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
] + [pytest.param(case, "write-heads --heads emotion --cache CACHE --data-root ROOT", variant, 1, says)
     for case, variant, says in (
         ("heads-emotion-no-emodb", _no_emodb, "emodb/manifest.csv"),
         ("heads-emotion-no-split-column", _baved_no_split_column, "baved_arabic/manifest.csv, got none named split"),
         ("heads-emotion-unknown-labels", _ased_labels_capitalised, "ased_amharic/manifest.csv, got only Angry"),
         ("heads-emotion-no-test-speakers", _emodb_no_test_speakers, "split 'test' with emotion labels in"),
         ("heads-emotion-no-sad", _no_sad_to_train_on, "training rows labelled sad"),
         ("heads-emotion-bad-duration", _emodb_duration_not_a_number, "duration_s column of"))] + [
    pytest.param("bench-emotion-no-emodb", "bench quality --tables emotion --out OUT --cache CACHE --data-root ROOT",
                 _no_emodb, 1, "emodb/manifest.csv"),
] + [pytest.param(*case) for case in (
    # `bench quality --tables students`: a full run's results.json it keeps the teachers' rows of, read first
    ("bench-students-no-results", "bench quality --tables students --out EMPTY --cache CACHE --data-root ROOT",
     None, 1, "results.json"),
    ("bench-students-no-teacher-rows", "bench quality --tables students --out OUT --cache CACHE --data-root ROOT",
     None, 1, "expected the teachers' rows of a full `edgepara bench quality` run in"),
    ("bench-students-results-not-json", "bench quality --tables students --out BROKEN --cache CACHE "
     "--data-root ROOT", None, 1, "expected the JSON report of a full `edgepara bench quality` run at"),
    ("bench-speaker-results-not-json", "bench quality --tables speaker --out BROKEN --cache CACHE --data-root ROOT",
     None, 1, "results.json, got JSONDecodeError"),
    ("bench-students-no-fsdd", "bench quality --tables students --out FULL --cache CACHE --runs NOWHERE "
     "--data-root ROOT", _no_fsdd, 1, "fsdd/manifest.csv"),
    # the full `bench quality`: what only it reads, checked before any embedding (the held-out files aside)
    ("bench-all-no-fsdd", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT", _no_fsdd, 1,
     "fsdd/manifest.csv"),
    ("bench-all-no-rirs-real", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _no_rirs_real, 1, "rirs_real/manifest.csv (see ../shared/data/README), got no such file"),
    ("bench-all-no-noise-real", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _no_noise_real, 1, "noise_real/manifest.csv (see ../shared/data/README), got no such file"),
    ("bench-all-no-rooms-listed", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _rirs_real_lists_nothing, 1, "rirs_real/manifest.csv (a third of them held out for the robustness set), got none"),
    ("bench-all-held-out-room-missing", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _held_out_room_missing, 1, "no file at"),
    ("bench-all-no-mask-curves", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _no_mask_curves, 1, "masks/curves.csv"),
    ("bench-all-mask-curve-missing", "bench quality --out OUT --cache CACHE --runs NOWHERE --data-root ROOT",
     _held_out_mask_curve_missing, 1, "got none for CottonPlain2L"),
    ("bench-all-cache-is-a-file", "bench quality --out OUT --cache FILE --data-root ROOT", None, 2, "--cache"),
    ("heads-mask-no-mask-curves", "write-heads --heads mask --cache CACHE --data-root ROOT", _no_mask_curves, 1,
     "masks/curves.csv"),
    ("heads-mask-curve-missing", "write-heads --heads mask --cache CACHE --data-root ROOT",
     _held_out_mask_curve_missing, 1, "got none for CottonPlain2L"),
)]


@pytest.mark.parametrize("case, command, variant, code, says", CASES,
                         ids=[c.values[0] for c in CASES])
def test_bad_input_is_one_line(world, tmp_path, case, command, variant, code, says):
    from edgepara.train.bench_systems import DISTILLATION_TEACHERS

    _, _, root, run = world
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"command": "stub", "results": {}, "sizes_bytes": {},
                                                  "teachers_concat": [], "retention": {}}))
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "broken").mkdir()  # a results.json cut short
    (tmp_path / "broken" / "results.json").write_text('{"command": "edgepara bench quality", "results": {')
    full = tmp_path / "full"  # a full run's results.json, its rows stubbed
    full.mkdir()
    (full / "results.json").write_text(json.dumps({"command": "stub", "results": {
        t: {} for t in (*DISTILLATION_TEACHERS, "teachers_concat")}, "sizes_bytes": {}, "teachers_concat": [],
        "retention": {}}))
    values = {"ROOT": _variant(world, case, variant) if variant else root, "CACHE": tmp_path / "cache", "OUT": out,
              "EMPTY": tmp_path / "empty", "FILE": tmp_path / "a-file", "BROKEN": tmp_path / "broken",
              "FULL": full, "NOWHERE": tmp_path / "no-such-folder"}
    r = run(*[values.get(word, word) for word in command.split()])
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == code, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error:") and says in lines[0], r.stderr


def test_write_heads_emotion_refuses_a_cache_of_another_data_root(world, emotion_written):
    """The cached embeddings are rows of a corpus's manifest: a data root with a row fewer must not be read
    against them (it was an IndexError deep in the fit)."""
    base, tree, _, run = world
    cache = base / "emotion-cache"
    before = {p: p.read_bytes() for p in sorted(cache.iterdir())}, _emotion_files(tree)
    root = _variant(world, "emodb-row-fewer", lambda path: _edit_manifest(path, "emodb", lambda rows: rows[:-1]))
    r = run("write-heads", "--heads", "emotion", "--cache", cache, "--data-root", root)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error: expected 19 rows") and "emodb_" in lines[0] \
        and "another data root" in lines[0], r.stderr
    assert ({p: p.read_bytes() for p in sorted(cache.iterdir())}, _emotion_files(tree)) == before


def test_write_heads_speaker_refuses_a_cache_of_another_data_root(world, written):
    """The cached speech windows are rows of the speaker sets' manifests: a data root with a speechocean762
    row fewer is refused in one line naming the cache file, before any fit, and the cache stays as it was."""
    base, tree, _, run = world
    cache = base / "cache"
    before = {p: p.read_bytes() for p in sorted(cache.iterdir())}
    root = _variant(world, "speechocean-row-fewer",
                    lambda path: _edit_manifest(path, "speechocean762", lambda rows: rows[:-1]))
    r = run("write-heads", "--heads", "speaker", "--cache", cache, "--data-root", root)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("edgepara: error: expected") and "_windows_" in lines[0] \
        and "another data root" in lines[0], r.stderr
    assert {p: p.read_bytes() for p in sorted(cache.iterdir())} == before
