"""The numpy front-end against librosa, its reference, on real GTZAN audio."""
import dataclasses

import numpy as np
import pytest

from tests.conftest import gtzan_file
from edge_genre.edge import audio, frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig

librosa = pytest.importorskip("librosa")

PAPER = FrontendConfig()  # librosa's defaults, the paper preset's front-end
SCRATCH_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320,
                              n_mels=64, fmin=50, fmax=8000, center=False)
YAMNET_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                             n_mels=64, fmin=125, fmax=7500, power=1.0, mel_scale="htk",
                             mel_norm=None, center=False, scale="log")
#: musicnn's mel (edge_genre.train.musicnn.musicnn_frontend): librosa's melspectrogram defaults
#: at 16 kHz, 512-point FFT, 256 hop, 96 bands, then ln(mel + 1e-4).
MUSICNN_LIKE = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96,
                              scale="log", log_offset=1e-4, top_db=None)
CONFIGS = {"paper": PAPER, "scratch-like": SCRATCH_LIKE, "yamnet-like": YAMNET_LIKE,
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


@pytest.mark.parametrize("name", ["paper", "scratch-like"])
def test_streaming_equals_batch_and_reuses_frames(name):
    cfg = CONFIGS[name]
    win = WindowConfig()
    size, hop = win.window_samples(cfg), win.hop_samples(cfg)
    y = audio.load(gtzan_file("disco.00003"), cfg.sample_rate)[:12 * cfg.sample_rate]
    stream = fe.StreamingFrontend(cfg, size, hop)
    got = []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(y):  # uneven blocks, as a sound card delivers them
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
    assert WindowConfig().hop_samples(SCRATCH_LIKE) == 32000


def _pushed(stream, y, rng, max_push):
    """Push ``y`` in random sizes 1..max_push; (window samples, item) of every window."""
    out, pos = [], 0
    while pos < len(y):
        n = int(rng.integers(1, max_push + 1))
        out += stream.push_windows(y[pos:pos + n])
        pos += n
    return out


SMALL = FrontendConfig(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)
SMALL_UNCENTRED = dataclasses.replace(SMALL, center=False)
#: (front-end, window, hop): the presets' 4 s / 2 s cuts, and small ones that cover the corners.
CUTS = {
    "paper": (PAPER, 88200, 44032), "scratch-like": (SCRATCH_LIKE, 64000, 32000),
    "musicnn-like": (MUSICNN_LIKE, 64000, 32000), "yamnet-like": (YAMNET_LIKE, 64000, 32000),
    "one-frame-hop": (SMALL, 4000, 64),  # nearly every frame shared
    "small": (SMALL, 4000, 1600),
    "hop-not-whole-frames": (SMALL, 4000, 2000),  # nothing shared: every frame per window
    "hop-over-window": (SMALL, 1024, 3072),  # frames between windows are skipped
    "small-uncentred": (SMALL_UNCENTRED, 4000, 1600),
    "hop-over-window-uncentred": (SMALL_UNCENTRED, 1024, 3072),
}
#: Largest push per cut: pushes of a few samples (small windows only: they are slow), a sound
#: card's blocks, several windows at once.
PUSHES = [(name, max_push) for name, (_, size, _) in CUTS.items()
          for max_push in ((7, 900, 70000) if size < 5000 else (900, 70000))]


@pytest.mark.parametrize("name, max_push", PUSHES)
def test_streaming_equals_batch_over_random_push_sizes(name, max_push):
    cfg, size, hop = CUTS[name]
    rng = np.random.default_rng(max_push)
    y = 0.3 * rng.standard_normal(3 * size + 4 * hop + 123)
    stream = fe.StreamingFrontend(cfg, size, hop)
    got = _pushed(stream, y, rng, max_push)
    starts = range(0, len(y) - size + 1, hop)
    assert len(got) == len(starts) >= 3
    expected = fe.features_batch(np.stack([y[s:s + size] for s in starts]), cfg)
    for (window, x), s, want in zip(got, starts, expected):
        np.testing.assert_array_equal(window, y[s:s + size])
        # Bit-identical where measured (numpy's OpenBLAS, x86-64); BLAS may round the mel
        # product differently for a batch of another size, hence the tolerance.
        np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-6)
    # The raw window cut gives the same windows.
    raw = fe.StreamingWindows(size, hop).push(y)
    assert [r.tobytes() for r in raw] == [y[s:s + size].astype(np.float32).tobytes()
                                          for s in starts]


@pytest.mark.parametrize("name", ["paper", "scratch-like", "musicnn-like"])
def test_streaming_hop_computes_only_its_new_frames(name):
    """A hop computes the frames of its new samples (a hop's worth) and a centred front-end's
    zero-padded boundary frames; the rest of the window is the previous window's frames."""
    cfg = CONFIGS[name]
    win = WindowConfig()
    size, hop = win.window_samples(cfg), win.hop_samples(cfg)
    y = np.random.default_rng(1).standard_normal(size + 3 * hop)
    stream = fe.StreamingFrontend(cfg, size, hop)
    assert len(stream.push(y[:size])) == 1
    per_window = cfg.n_frames(size)
    starts = fe.frame_starts(cfg, size)
    boundary = int(np.sum((starts < 0) | (starts + cfg.n_fft > size)))
    assert stream.frames_computed == per_window and stream.frames_reused == 0
    for i in range(3):
        before = stream.frames_computed, stream.frames_reused
        assert len(stream.push(y[size + i * hop:size + (i + 1) * hop])) == 1
        computed = stream.frames_computed - before[0]
        reused = stream.frames_reused - before[1]
        assert computed == hop // cfg.hop_length + boundary
        assert computed + reused == per_window
        assert computed < 0.55 * per_window + boundary


def test_mirrored_ring_holds_the_latest_items_contiguously():
    ring = fe.MirroredRing(5, (2,))
    ring.append(np.arange(8).reshape(4, 2))  # items 0..3
    ring.append(np.arange(8, 14).reshape(3, 2))  # items 4..6: wraps around
    np.testing.assert_array_equal(ring.view(2, 5), np.arange(4, 14).reshape(5, 2))
    with pytest.raises(IndexError):
        ring.view(1, 2)  # item 1 was overwritten
    ring.append(np.zeros((1, 2)), at=9)  # a gap: items 7, 8 are never written
    assert ring.end == 10
    with pytest.raises(ValueError):
        ring.append(np.zeros((6, 2)))  # more than the ring holds
