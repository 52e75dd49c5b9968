"""The numpy front-end against librosa, its reference, on real GTZAN audio."""
import dataclasses

import numpy as np
import pytest

from tests.conftest import gtzan_file
from edge_genre.edge import audio, frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig

librosa = pytest.importorskip("librosa")

PAPER = FrontendConfig()  # librosa's defaults, the paper preset's front-end
EDGE_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320,
                           n_mels=64, fmin=50, fmax=8000, center=False)
YAMNET_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                             n_mels=64, fmin=125, fmax=7500, power=1.0, mel_scale="htk",
                             mel_norm=None, center=False, scale="log")
#: musicnn's mel (edge_genre.train.musicnn.musicnn_frontend): librosa's melspectrogram defaults
#: at 16 kHz, 512-point FFT, 256 hop, 96 bands, then ln(mel + 1e-4).
MUSICNN_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96,
                              scale="log", log_offset=1e-4, top_db=None)
CONFIGS = {"paper": PAPER, "edge-like": EDGE_LIKE, "yamnet-like": YAMNET_LIKE,
           "musicnn-like": MUSICNN_LIKE}

#: Worst difference allowed between our dB log-mel and librosa's, in dB.
MAX_DB_DIFF = 1e-3


def librosa_log_mel(y, cfg):
    m = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
        hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        power=cfg.power, htk=cfg.mel_scale == "htk", norm=cfg.mel_norm, center=cfg.center)
    if cfg.scale == "log":
        return np.log(m + cfg.log_offset)
    return librosa.power_to_db(m, ref=np.max if cfg.ref == "max" else cfg.ref, amin=cfg.amin,
                               top_db=cfg.top_db)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("track", ["blues.00000", "classical.00003", "metal.00002", "jazz.00003"])
def test_log_mel_matches_librosa_on_gtzan(name, track):
    cfg = CONFIGS[name]
    y = audio.load(gtzan_file(track), cfg.sample_rate)
    window = y[5 * cfg.sample_rate: 9 * cfg.sample_rate]
    ours, ref = fe.log_mel(window, cfg), librosa_log_mel(window, cfg)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref).max()
    print(f"{name} {track}: max |ours - librosa| = {diff:.2e}")
    assert diff < MAX_DB_DIFF


def test_mel_filterbank_matches_librosa():
    for cfg in CONFIGS.values():
        ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                  fmin=cfg.fmin, fmax=cfg.fmax, htk=cfg.mel_scale == "htk",
                                  norm=cfg.mel_norm)
        np.testing.assert_allclose(fe.mel_filterbank(cfg), ref, rtol=1e-5, atol=1e-7)


def test_paper_features_shape_and_resize():
    cfg = dataclasses.replace(PAPER, resize=(256, 256))
    y = audio.load(gtzan_file("pop.00000"), cfg.sample_rate)[:4 * cfg.sample_rate]
    x = fe.features(y, cfg)
    assert x.shape == (256, 256, 1) and x.dtype == np.float32
    assert cfg.feature_shape(len(y)) == x.shape
    # dB with ref=max: the loudest bin is 0 dB and the floor is top_db below it; bilinear
    # resizing blends the single 0 dB peak with its neighbours, so the maximum lands just below.
    assert -6.0 < x.max() <= 0.0 and x.min() >= -80.0 - 1e-3


def test_resize_matches_half_pixel_bilinear():
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = fe.resize_bilinear(img, (6, 8))
    assert out.shape == (6, 8)
    assert out[0, 0] == img[0, 0] and out[-1, -1] == img[-1, -1]
    np.testing.assert_allclose(fe.resize_bilinear(img, (3, 4)), img)


@pytest.mark.parametrize("name", ["paper", "edge-like"])
def test_streaming_equals_batch_and_reuses_frames(name):
    cfg = CONFIGS[name]
    win = WindowConfig()
    size, hop = win.window_samples(cfg), win.hop_samples(cfg)
    y = audio.load(gtzan_file("disco.00003"), cfg.sample_rate)[:12 * cfg.sample_rate]
    stream = fe.StreamingFrontend(cfg, size, hop)
    got = []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(y):  # uneven chunks, as a sound card delivers them
        n = int(rng.integers(100, 5000))
        got += stream.push(y[pos:pos + n])
        pos += n
    expected = [fe.features(y[s:s + size], cfg) for s in range(0, len(y) - size + 1, hop)]
    assert len(got) == len(expected) >= 4
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # After the first window, only about a hop's worth of frames is new per window.
    per_window = cfg.n_frames(size)
    assert stream.frames_reused > 0.4 * per_window * (len(got) - 1)
    assert stream.frames_computed < per_window + (len(got) - 1) * (0.6 * per_window + 8)


def test_config_round_trip_and_validation():
    for cfg in CONFIGS.values():
        assert FrontendConfig.from_dict(cfg.to_dict()) == cfg
    from edge_genre.errors import ModelError
    with pytest.raises(ModelError):
        FrontendConfig(mel_scale="bark")
    with pytest.raises(ModelError):
        FrontendConfig.from_dict({**PAPER.to_dict(), "dither": 1})
    with pytest.raises(ModelError):
        FrontendConfig(fmax=30000)


def test_window_hop_is_whole_frames():
    assert WindowConfig().hop_samples(PAPER) % PAPER.hop_length == 0
    assert WindowConfig().hop_samples(EDGE_LIKE) == 32000
