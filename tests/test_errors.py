"""Bad input of every kind gives one line and the right exit code; the CLI's conventions (exit codes, --version,
help texts, the listen config file, the heads listing); the Edge TPU fallback.

Most cases run the real `edgepara` CLI in a subprocess, as a user would, on the shipped int8 models in the real
LiteRT interpreter. No Coral Edge TPU and no Edge TPU runtime exist here: the fallback without the runtime is
tested for real; with a runtime it is tested against a stand-in libedgetpu.so.1 compiled in tmp_path (it exports
the delegate entry points and reports no device, as the real library does without a Coral plugged in); which
file is loaded when the delegate works is tested on the selection function alone.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgepara.assets import heads_dir, models_dir
from edgepara.errors import EXIT_NO_SPEECH, EXIT_RUNTIME, EXIT_USAGE, HeadError, ModelError, UsageError

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"  # 4.4 s sentence, real speech
CLI = [sys.executable, "-m", "edgepara.cli"]
MODEL = "edgepara-tiny"
TIMEOUT_S = 60


def _env(tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")  # never the user's own profiles
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")  # never the user's own config file
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def run_cli(tmp_path: Path, *args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=tmp_path, env=env or _env(tmp_path), capture_output=True,
                          text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, **kwargs)


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


def assert_one_line_error(result, exit_code: int, *needles: str) -> str:
    """Exit code as given, and stderr exactly one line containing every needle."""
    assert_no_traceback(result.stderr)
    assert result.returncode == exit_code, f"expected exit {exit_code}, got {result.returncode}: {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"expected {needle!r} in: {lines[0]}"
    return lines[0]


def copy_model(folder: Path, name: str = MODEL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for ext in (".tflite", ".json"):
        shutil.copy(models_dir() / f"{name}{ext}", folder / f"{name}{ext}")
    return folder / f"{name}.tflite"


def write_silence(path: Path, seconds: float = 2.0) -> Path:
    sf.write(path, np.zeros(int(16000 * seconds), np.int16), 16000, subtype="PCM_16")
    return path


# --- model cards: wrong types are one line naming the field -------------------------------------------------

CARD_DAMAGE = {
    "hop_length 0": (lambda c: c["frontend"].update(hop_length=0), "frontend.hop_length"),
    "n_fft string": (lambda c: c["frontend"].update(n_fft="512"), "frontend.n_fft"),
    "input null": (lambda c: c.update(input=None), "input"),
    "window null": (lambda c: c.update(window_samples=None), "window_samples"),
    "rate string": (lambda c: c.update(sample_rate="16000"), "sample_rate"),
    "shape of strings": (lambda c: c["input"].update(shape=[1, "97", 40, 1]), "input.shape"),
    "log floor 0": (lambda c: c["frontend"].update(log_floor=0), "frontend.log_floor"),
    "sha256 number": (lambda c: c.update(sha256=5), "sha256"),
    "dim true": (lambda c: c.update(embedding_dim=True), "embedding_dim"),
}


def damaged_model(tmp_path: Path, damage) -> Path:
    path = copy_model(tmp_path / "model")
    card = json.loads(path.with_suffix(".json").read_text())
    damage(card)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("case", list(CARD_DAMAGE))
def test_model_card_of_wrong_type_is_refused_at_load(tmp_path, case):
    from edgepara.runtime import Embedder

    damage, field = CARD_DAMAGE[case]
    with pytest.raises(ModelError, match=rf"edgepara-tiny\.json: {field}: expected .*, got "):
        Embedder(damaged_model(tmp_path, damage))


@pytest.mark.parametrize("case", ["hop_length 0", "n_fft string", "input null"])
def test_model_card_of_wrong_type_is_one_line_in_the_cli(tmp_path, case):
    damage, field = CARD_DAMAGE[case]
    path = damaged_model(tmp_path, damage)
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", path, "--no-dashboard")
    assert_one_line_error(r, EXIT_RUNTIME, "edgepara-tiny.json", field, "expected", "got")


def test_one_model_identity_check_for_heads_and_profiles():
    """Heads, speaker profiles and calibrated thresholds all compare (name, sha256, dim) through assets."""
    from edgepara.assets import check_built_on_model, model_identity
    from edgepara.runtime import Embedder

    card = Embedder(MODEL).card
    name, sha256, dim = model_identity(card)
    check_built_on_model("x", {"model": name, "model_sha256": sha256, "dim": dim}, card)  # same model: fine
    for other in ({"model_sha256": "0" * 64}, {"dim": dim + 1}, {"model": "edgepara-small"}):
        built = {"model": name, "model_sha256": sha256, "dim": dim, **other}
        with pytest.raises(HeadError, match="x: trained on model .* got model edgepara-tiny"):
            check_built_on_model("x", built, card, built="trained")


# --- heads: refused at load, never NaN probabilities later ---------------------------------------------------

def write_head(folder: Path, card_change=None, array_change=None, source: str = "emotion") -> Path:
    """A copy of the tiny model's shipped head with its card or arrays changed (and its card's hash redone, so
    the damage is what gets checked, not the hash)."""
    from edgepara.heads import save_probe

    src = heads_dir() / MODEL / source
    card = json.loads(src.with_suffix(".json").read_text())
    with np.load(src.with_suffix(".npz")) as z:
        arrays = {k: z[k].copy() for k in z.files}
    if card_change:
        card_change(card)
    if array_change:
        array_change(arrays)
    save_probe(folder / "bad_head.npz", card, arrays)
    return folder / "bad_head.npz"


HEAD_DAMAGE = {
    "no classes": (lambda c: c.pop("classes"), None, "expected classes"),
    "classes null": (lambda c: c.update(classes=None), None, "expected classes"),
    "W too short": (None, lambda a: a.update(W=a["W"][:100]), "expected W of shape"),
    "mean too short": (None, lambda a: a.update(mean=a["mean"][:100]), "expected mean of shape"),
    "b too short": (None, lambda a: a.update(b=a["b"][:3]), "expected b of shape"),
    "NaN weight": (None, lambda a: a["W"].__setitem__((0, 0), np.nan), "NaN/inf"),
    "inf bias": (None, lambda a: a["b"].__setitem__(0, np.inf), "NaN/inf"),
    "zero std": (None, lambda a: a["std"].__setitem__(3, 0.0), "std > 0"),
    "W1 without b1": (None, lambda a: a.update(W1=np.ones((192, 16), np.float32)), "W1 and b1"),
}


@pytest.mark.parametrize("case", list(HEAD_DAMAGE))
def test_bad_head_is_refused_at_load(tmp_path, case):
    from edgepara.heads import ProbeHead
    from edgepara.runtime import Embedder

    card_change, array_change, message = HEAD_DAMAGE[case]
    path = write_head(tmp_path, card_change, array_change)
    with pytest.raises(HeadError, match=message):
        ProbeHead.load(str(path), Embedder(MODEL).card)


# the mask heads read the window's band shape beside the embedding (card input "embedding+band_shape")
BAND_SHAPE_DAMAGE = {
    "band_shape_dim missing": (lambda c: c.pop("band_shape_dim"), None, "expected band_shape_dim, an integer >= 1"),
    "band_shape_dim zero": (lambda c: c.update(band_shape_dim=0), None, "expected band_shape_dim, an integer >= 1"),
    "band_shape_dim a string": (lambda c: c.update(band_shape_dim="40"), None, "expected band_shape_dim"),
    "other mel bands": (lambda c: c.update(band_shape_dim=64), None, "expected band shapes of the model's 40 mel bands"),
    "no band-shape weights": (lambda c: c.pop("input"), None, "expected mean of shape \\(192,\\)"),
    "band-shape weights cut": (None, lambda a: a.update(mean=a["mean"][:192]), "expected mean of shape \\(232,\\)"),
}


@pytest.mark.parametrize("case", list(BAND_SHAPE_DAMAGE))
def test_bad_band_shape_head_is_refused_at_load_and_one_line_in_the_cli(tmp_path, case):
    from edgepara.heads import ProbeHead
    from edgepara.runtime import Embedder

    card_change, array_change, message = BAND_SHAPE_DAMAGE[case]
    path = write_head(tmp_path, card_change, array_change, source="mask")
    with pytest.raises(HeadError, match=message):
        ProbeHead.load(str(path), Embedder(MODEL).card)
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", MODEL, "--head", path, "--jsonl", "-",
                "--no-dashboard")
    assert_one_line_error(r, EXIT_RUNTIME, "bad_head")


@pytest.mark.parametrize("case", ["NaN weight", "no classes", "W too short"])
def test_bad_head_is_one_line_in_the_cli_and_no_nan_reaches_the_output(tmp_path, case):
    card_change, array_change, message = HEAD_DAMAGE[case]
    path = write_head(tmp_path, card_change, array_change)
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", MODEL, "--head", path, "--jsonl", "-",
                "--no-dashboard")
    assert_one_line_error(r, EXIT_RUNTIME, "bad_head", message)
    assert "NaN" not in r.stdout and "uncertain" not in r.stdout


def test_every_shipped_head_passes_the_load_checks():
    from edgepara.assets import available_models, shipped_heads
    from edgepara.heads import ProbeHead
    from edgepara.runtime import Embedder

    for model in available_models():
        card = Embedder(model).card
        for head in shipped_heads(model):
            assert ProbeHead.load(head, card).classes


# --- the Edge TPU fallback -----------------------------------------------------------------------------------

def _edgetpu_runtime_here() -> bool:
    from edgepara.runtime import edgetpu_runtime_problem

    return edgetpu_runtime_problem() is None


@pytest.mark.skipif(_edgetpu_runtime_here(), reason="an Edge TPU runtime is installed here")
def test_edgetpu_without_runtime_is_one_line_then_the_cpu(tmp_path):
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", MODEL, "--edgetpu", "--jsonl", "-",
                "--no-dashboard")
    assert r.returncode == 0, r.stderr
    assert_no_traceback(r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    assert "libedgetpu" in lines[0] and "running on the CPU" in lines[0], lines[0]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(e["type"] == "prediction" and e["final"] for e in events)


@pytest.mark.skipif(_edgetpu_runtime_here(), reason="an Edge TPU runtime is installed here")
def test_edgetpu_fallback_in_the_library_is_a_logged_warning(caplog):
    from edgepara.runtime import Embedder

    with caplog.at_level(logging.WARNING, logger="edgepara.runtime"):
        embedder = Embedder(MODEL, edgetpu=True)
    assert embedder.delegate == "cpu" and embedder.model_file == embedder.path
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "running on the CPU" in warnings[0].getMessage()


def test_edgetpu_compiled_model_beside_the_plain_one_is_chosen(tmp_path):
    """Only the selection: without a runtime here, the delegate itself cannot be loaded (see module docstring)."""
    from edgepara.runtime import choose_model_file, edgetpu_model_path

    plain = copy_model(tmp_path)
    assert choose_model_file(plain, False, None) == (plain, None)
    chosen, reason = choose_model_file(plain, True, None)
    assert chosen == plain and "edgetpu_compiler" in reason  # runtime, but nothing compiled
    compiled = edgetpu_model_path(plain)
    assert compiled == tmp_path / "edgepara-tiny_edgetpu.tflite"
    compiled.write_bytes(b"stand-in for edgetpu_compiler's output")
    assert choose_model_file(plain, True, None) == (compiled, None)  # runtime present: the compiled copy
    chosen, reason = choose_model_file(plain, True, "no Edge TPU runtime")
    assert chosen == plain and reason == "no Edge TPU runtime"  # no runtime: the plain model on the CPU


STAND_IN_EDGETPU = r"""
#include <stddef.h>
typedef void (*report_fn)(const char *);
void *tflite_plugin_create_delegate(char **keys, char **values, size_t n, report_fn report) {
    if (report) report("no Edge TPU device found (stand-in library)");
    return NULL;
}
void tflite_plugin_destroy_delegate(void *delegate) {}
"""


@pytest.mark.skipif(shutil.which("cc") is None or sys.platform != "linux", reason="needs a C compiler on Linux")
def test_edgetpu_runtime_without_a_coral_is_one_line_then_the_cpu(tmp_path):
    """A stand-in libedgetpu.so.1 (a mock: no real runtime can be installed here) that reports no device."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "fake.c").write_text(STAND_IN_EDGETPU)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib / "libedgetpu.so.1", lib / "fake.c"], check=True)
    plain = copy_model(tmp_path / "model")
    (tmp_path / "model" / "edgepara-tiny_edgetpu.tflite").write_bytes(b"never loaded: the delegate fails first")
    env = _env(tmp_path, LD_LIBRARY_PATH=str(lib))
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--model", plain, "--edgetpu", "--jsonl", "-", "--no-dashboard",
                env=env)
    assert r.returncode == 0, r.stderr
    assert_no_traceback(r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Edge TPU device found" in lines[0] and "running on the CPU" in lines[0], r.stderr
    assert any(json.loads(line)["type"] == "prediction" for line in r.stdout.splitlines())


# --- closed stdout, unwritable --out, --threads, NaN files -----------------------------------------------

def _close_stdout() -> None:
    os.close(1)


def test_listen_jsonl_to_a_closed_stdout_is_one_line(tmp_path):
    proc = subprocess.run([*CLI, "listen", "--demo", "--fast", "--model", MODEL, "--jsonl", "-"], cwd=tmp_path,
                          env=_env(tmp_path), stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, preexec_fn=_close_stdout)
    assert_one_line_error(proc, EXIT_RUNTIME, "--jsonl", "closed")


def test_listen_printing_to_a_closed_stdout_is_quiet(tmp_path):
    # no --no-dashboard: deciding whether to draw one asks the (closed) stdout whether it is a terminal
    proc = subprocess.run([*CLI, "listen", "--demo", "--fast", "--model", MODEL], cwd=tmp_path,
                          env=_env(tmp_path), stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, preexec_fn=_close_stdout)
    assert_no_traceback(proc.stderr)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="train-head needs scikit-learn (the [train] extra)")


def silent_dataset(root: Path) -> Path:
    """Two classes of silent files: embedding them fails with 'no speech', so an error about --out proves the
    destination was checked before any embedding work."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            write_silence(root / label / f"{i}.wav", 0.5)
    return root


@needs_sklearn
@pytest.mark.parametrize("where", ["under a file", "in /proc"])
def test_train_head_unwritable_out_is_refused_before_embedding(tmp_path, where):
    if where == "in /proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    data = silent_dataset(tmp_path / "data")
    (tmp_path / "regular").write_text("a file, not a folder\n")
    out = tmp_path / "regular" / "head.npz" if where == "under a file" else Path("/proc/edgepara-test/head.npz")
    r = run_cli(tmp_path, "train-head", "mine", "--data", data, "--out", out)
    assert_one_line_error(r, EXIT_RUNTIME, "--out")


@needs_sklearn
def test_train_head_no_speech_has_the_no_speech_code(tmp_path):
    data = silent_dataset(tmp_path / "data")
    r = run_cli(tmp_path, "train-head", "mine", "--data", data, "--out", tmp_path / "head.npz")
    assert_one_line_error(r, EXIT_NO_SPEECH, "speech")


def test_embed_unwritable_out_is_refused(tmp_path):
    (tmp_path / "regular").write_text("a file\n")
    r = run_cli(tmp_path, "embed", CLIP, "--model", MODEL, "--out", tmp_path / "regular" / "emb.npy")
    assert_one_line_error(r, EXIT_RUNTIME, "--out", "regular")


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_bad_threads_is_a_usage_error_naming_the_option(tmp_path, threads):
    r = run_cli(tmp_path, "listen", "--demo", "--fast", "--threads", threads, "--no-dashboard")
    line = assert_one_line_error(r, EXIT_USAGE, "--threads")
    assert "model" not in line.lower()


def test_bad_threads_in_the_library_is_refused():
    from edgepara.runtime import Embedder

    with pytest.raises(UsageError, match="threads >= 1"):
        Embedder(MODEL, threads=0)


def test_nan_file_in_a_batch_is_named(tmp_path):
    bad = tmp_path / "bad.wav"
    samples = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    samples[100] = np.nan
    sf.write(bad, samples, 16000, subtype="FLOAT")
    r = run_cli(tmp_path, "embed", CLIP, bad, "--model", MODEL, "--out", tmp_path / "emb.npy")
    assert_one_line_error(r, EXIT_RUNTIME, "bad.wav", "NaN")
    assert not (tmp_path / "emb.npy").exists()


# --- exit codes ----------------------------------------------------------------------------------------------

def test_no_speech_has_one_exit_code_in_every_command(tmp_path):
    silence = write_silence(tmp_path / "silence.wav")
    for args in (["embed", silence, "--model", MODEL, "--out", tmp_path / "e.npy"],
                 ["enroll", "alice", silence, "--model", MODEL],
                 ["listen", "--file", silence, "--model", MODEL, "--jsonl", "-", "--no-dashboard"]):
        r = run_cli(tmp_path, *args)
        assert_one_line_error(r, EXIT_NO_SPEECH, "speech", "silence.wav")


def test_runtime_and_usage_errors_have_their_codes(tmp_path):
    assert_one_line_error(run_cli(tmp_path, "listen", "--file", CLIP, "--model", "no-such-model",
                                  "--no-dashboard"), EXIT_RUNTIME, "no-such-model")
    assert_one_line_error(run_cli(tmp_path, "listen", "--no-such-option"), EXIT_USAGE, "--no-such-option")
    assert_one_line_error(run_cli(tmp_path, "listen", "--vad-aggressiveness", "9"), EXIT_USAGE,
                          "--vad-aggressiveness")
    assert_one_line_error(run_cli(tmp_path, "listen", "--demo", "--file", CLIP), EXIT_USAGE, "one input")
    assert_one_line_error(run_cli(tmp_path, "listen", "--demo", "--head", ","), EXIT_USAGE, "heads")


def test_help_documents_the_exit_codes(tmp_path):
    for args in ([], ["listen"], ["embed"]):
        r = run_cli(tmp_path, *args, "--help")
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.split())
        assert f"{EXIT_NO_SPEECH} no speech found" in text and f"{EXIT_USAGE} usage error" in text, text


# --- version, help texts, heads listing ------------------------------------------------------------------

def test_version_comes_from_the_package_metadata(tmp_path):
    r = run_cli(tmp_path, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"edgepara {importlib.metadata.version('edgepara')}"


def test_every_option_has_help_and_shows_its_default(tmp_path):
    from edgepara.cli import build_parser
    from edgepara.config import subcommand_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.choices and "listen" in a.choices).choices
    for name in commands:
        for action in subcommand_parser(parser, name)._actions:
            if action.dest == "help":
                continue
            assert action.help, f"edgepara {name} {'/'.join(action.option_strings) or action.dest}: no help text"
    text = " ".join(run_cli(tmp_path, "listen", "--help").stdout.split())
    assert "interpreter threads (default: 1)" in text
    assert "(default: 2)" in text and "(default: edgepara-small)" in text and "Hz (default: 16000)" in text


def test_models_lists_each_models_heads(tmp_path):
    from edgepara.assets import available_models, shipped_heads

    r = run_cli(tmp_path, "models")
    assert r.returncode == 0, r.stderr
    heads_lines = [line for line in r.stdout.splitlines() if line.strip().startswith("heads:")]
    assert len(heads_lines) == len(available_models())
    for model, line in zip(available_models(), heads_lines):
        for head in shipped_heads(model):
            assert head in line, line
        assert "speaker" in line


# --- the listen config file ----------------------------------------------------------------------------------

def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_file_sets_listen_options_and_the_command_line_wins(tmp_path):
    config = write_config(tmp_path / "edgepara.toml",
                          f'[listen]\nmodel = "{MODEL}"\njsonl = "from-config.jsonl"\nno-dashboard = true\n'
                          'vad_aggressiveness = 3\nhead = "no-such-head"\n')
    r = run_cli(tmp_path, "listen", "--config", config, "--file", CLIP)
    assert_one_line_error(r, EXIT_RUNTIME, "no-such-head")  # the config's head was used
    r = run_cli(tmp_path, "listen", "--config", config, "--file", CLIP, "--head", "emotion")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in (tmp_path / "from-config.jsonl").read_text().splitlines()]
    assert {e["head"] for e in events if e["type"] == "prediction"} == {"emotion"}
    r = run_cli(tmp_path, "listen", "--config", config, "--file", CLIP, "--head", "emotion", "--jsonl", "-")
    assert r.returncode == 0 and r.stdout.startswith("{"), r.stderr


def test_config_file_in_the_default_location_is_read(tmp_path):
    write_config(tmp_path / "xdg-config" / "edgepara" / "config.toml", '[listen]\nthreads = 0\n')
    r = run_cli(tmp_path, "listen", "--demo", "--fast", "--no-dashboard")
    assert_one_line_error(r, EXIT_USAGE, "config.toml", "threads", "expected an integer >= 1")


@pytest.mark.parametrize("text, needles", [
    ('[listen]\nvad-agressiveness = 3\n', ["unknown key", "vad-agressiveness", "vad-aggressiveness"]),
    ('[listen]\nvad-aggressiveness = "3"\n', ["vad-aggressiveness", "expected an integer", "'3'"]),
    ('[listen]\nvad-aggressiveness = 7\n', ["vad-aggressiveness", "expected one of 0-3", "7"]),
    ('[listen]\nno-dashboard = 1\n', ["no-dashboard", "true or false", "1"]),
    ('[listen]\nuncertain-below = "high"\n', ["uncertain-below", "expected a number"]),
    ('[listen]\nmodel = 5\n', ["model", "expected a string", "5"]),
    ('[listen]\nthreads = true\n', ["threads", "expected an integer", "True"]),
    ('[listen\nmodel = "x"\n', ["expected valid TOML"]),
    ('[speak]\nmodel = "x"\n', ["expected only a [listen] table", "speak"]),
    ('[listen]\nconfig = "other.toml"\n', ["unknown key", "config"]),
])
def test_bad_config_file_is_one_line_usage_error(tmp_path, text, needles):
    config = write_config(tmp_path / "c.toml", text)
    r = run_cli(tmp_path, "listen", "--config", config, "--demo", "--fast", "--no-dashboard")
    assert_one_line_error(r, EXIT_USAGE, "c.toml", *needles)


def test_missing_config_file_is_one_line(tmp_path):
    r = run_cli(tmp_path, "listen", "--config", tmp_path / "nope.toml", "--demo", "--fast")
    assert_one_line_error(r, EXIT_USAGE, "nope.toml", "no file")


def test_config_values_are_converted_like_the_command_line(tmp_path):
    from edgepara.cli import build_parser
    from edgepara.config import listen_defaults, subcommand_parser

    listen = subcommand_parser(build_parser(), "listen")
    config = write_config(tmp_path / "c.toml", '[listen]\nthreads = 2\nuncertain-below = 1\nfast = true\n'
                                                'speaker_threshold = 0.25\nmodel = "edgepara-tiny"\n')
    assert listen_defaults(listen, str(config)) == {"threads": 2, "uncertain_below": 1, "fast": True,
                                                    "speaker_threshold": 0.25, "model": "edgepara-tiny"}
