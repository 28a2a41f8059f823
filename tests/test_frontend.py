"""The numpy log-mel frontend against an independent computation (librosa when present, else a direct DFT)."""
import numpy as np
import pytest

from edgepara.audio import read_audio
from edgepara.frontend import FrontendConfig, LogMel, OverlappingLogMel, mel_filterbank


def direct_logmel(x: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Frame-by-frame explicit DFT with an explicit Hann window and triangle filters built in Hz."""
    n = np.arange(cfg.win_length)
    window = np.zeros(cfg.n_fft)
    pad = (cfg.n_fft - cfg.win_length) // 2
    window[pad:pad + cfg.win_length] = np.sin(np.pi * n / cfg.win_length) ** 2  # periodic Hann, other form
    k = np.arange(cfg.n_fft // 2 + 1)[:, None]
    t = np.arange(cfg.n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * t / cfg.n_fft)
    frames = [x[i:i + cfg.n_fft] * window for i in range(0, len(x) - cfg.n_fft + 1, cfg.hop_length)]
    power = np.abs(np.stack(frames) @ dft.T) ** 2
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # natural-log form of the HTK mel scale
    inv = lambda m: 700.0 * (np.exp(m / 1127.0) - 1.0)
    edges = inv(np.linspace(mel(cfg.f_min), mel(cfg.f_max), cfg.n_mels + 2))
    freqs = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    fb = np.zeros((cfg.n_mels, len(freqs)))
    for m in range(cfg.n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(freqs):
            if lo < f <= c:
                fb[m, j] = (f - lo) / (c - lo)
            elif c < f < hi:
                fb[m, j] = (hi - f) / (hi - c)
    return np.log(power @ fb.T + cfg.log_floor)


@pytest.mark.parametrize("n_mels", [40, 64])
def test_logmel_matches_direct_dft(speech_clip, n_mels):
    cfg = FrontendConfig(n_mels=n_mels)
    audio = read_audio(speech_clip)[16000:32000]
    ours = LogMel(cfg)(audio)
    ref = direct_logmel(audio.astype(np.float64) / 32768.0, cfg)
    assert ours.shape == (cfg.n_frames(16000), n_mels) == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_logmel_matches_librosa(speech_clip):
    librosa = pytest.importorskip("librosa")
    cfg = FrontendConfig(n_mels=40)
    audio = read_audio(speech_clip)[8000:24000].astype(np.float32) / 32768.0
    ref = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=cfg.n_fft, win_length=cfg.win_length,
                                         hop_length=cfg.hop_length, center=False, power=2.0, n_mels=cfg.n_mels,
                                         fmin=cfg.f_min, fmax=cfg.f_max, htk=True, norm=None)
    np.testing.assert_allclose(LogMel(cfg)(audio), np.log(ref.T + cfg.log_floor), atol=2e-3)


def test_filterbank_is_triangles_peaking_at_one():
    fb = mel_filterbank(FrontendConfig(n_mels=40))
    assert fb.shape == (40, 257)
    assert np.all(fb >= 0) and np.all(fb.max(axis=1) > 0.5) and np.all(fb <= 1.0)


def test_too_short_audio_is_refused():
    with pytest.raises(ValueError, match="expected at least 512 samples"):
        LogMel(FrontendConfig())(np.zeros(100, np.int16))


def test_overlapping_frontend_equals_the_whole_computation(speech_clip):
    """The live frontend reuses the frames two windows share; every window, including a shifted one, a
    repeated one and one after a gap, must equal the log-mel computed from scratch."""
    cfg = FrontendConfig()
    audio = read_audio(speech_clip)
    whole, live = LogMel(cfg), OverlappingLogMel(cfg, hop=8000)
    starts = [0, 8000, 16000, 24000, 24000, 27200, 35200, 3000, 11000]
    for start in starts:
        window = audio[start:start + 16000]
        np.testing.assert_allclose(live(window), whole(window), rtol=0, atol=1e-5)
    float_window = audio[:16000].astype(np.float32) / 32768.0
    np.testing.assert_allclose(live(float_window), whole(float_window), rtol=0, atol=1e-5)


def test_band_shape_drops_loudness_and_shows_a_lost_top_octave(speech_clip):
    """What the mask head reads beside the embedding: the mean spectrum's shape, not its level."""
    from scipy.signal import butter, sosfilt

    from edgepara.frontend import band_shape

    cfg = FrontendConfig(n_mels=40)
    logmel = LogMel(cfg)
    x = read_audio(speech_clip)[16000:32000].astype(np.float32)
    shape = band_shape(logmel(x))
    assert shape.shape == (40,) and abs(float(shape.mean())) < 1e-4
    np.testing.assert_allclose(band_shape(logmel(x * 0.25)), shape, atol=0.05)  # 12 dB quieter: the same shape
    muffled = band_shape(logmel(sosfilt(butter(4, 3000, fs=16000, output="sos"), x).astype(np.float32)))
    top = mel_filterbank(cfg).argmax(axis=1) * cfg.sample_rate / cfg.n_fft > 4000
    assert muffled[top].mean() < shape[top].mean() - 2.0  # the bands above 4 kHz lost (natural log units)
