"""The Keras port of musicnn's MSD network against the original, on real GTZAN audio.

The reference (``data/musicnn_reference.npz``) holds the ORIGINAL TF1 network's outputs on nine
input patches of three GTZAN excerpts: six of 187 frames (musicnn's 3 s) and three of 251
(our 4 s window). ``data/make_musicnn_reference.py`` made it once, outside the suite; its
docstring says how, and why its log is taken in float32 (musicnn's extractor overflows float16).

Tolerances, and why they are what they are:
- Port vs original on the same input patches (float32 both, different kernels): each output's
  worst absolute difference stays below 1e-4 of that output's largest magnitude, and the taggram
  within 1e-5 (measured, 187 / 251 frames: pooled 2.4e-6 / 1.1e-6 of its scale, i.e. 2.6e-4 /
  1.1e-4 absolute; penultimate 9e-7 / 8e-7; logits 4e-7 / 3e-7; taggram 3e-7 / 4e-7 absolute).
- Our numpy front-end + ``to_musicnn_input`` vs the reference input, on the SAME audio (librosa's
  16 kHz resampling, as the original): < 1e-3 in log10 units; what remains is musicnn's float16
  rounding of the mel (measured 2.1e-4).
- End to end (our loader and resampler, our front-end on the window alone, the port) vs the
  original: the same top 3 tags in the same order, taggram within 0.05, penultimate cosine > 0.99
  (measured 0.022 and 0.996). The gap is our resampler (Kaiser-windowed sinc rolled off at 0.945 x
  Nyquist, vs librosa's soxr), which changes only the top mel bands, 91-95 (7.3-8 kHz), and the
  window's own zero padding at its first and last frames (the reference patches are cut from the
  whole file's spectrogram).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import gtzan_file
from edge_genre.edge import audio
from edge_genre.edge import frontend as fe
from edge_genre.errors import ModelError
from edge_genre.train import musicnn as M

REFERENCE = Path(__file__).parent / "data" / "musicnn_reference.npz"
LENGTHS = (187, 251)
#: Port vs original: worst |difference| / largest |reference| per output.
PORT_REL_TOL = 1e-4
PORT_TAGGRAM_ATOL = 1e-5
#: Front-end vs musicnn's input on the same audio, in log10(1 + 1e4 mel) units.
FRONTEND_ATOL = 1e-3
#: End to end (our resampler and window): taggram and penultimate.
E2E_TAGGRAM_ATOL = 0.05
E2E_MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def weights() -> M.MusicnnWeights:
    return M.read_weights()


def _pooled(reference, n):
    """musicnn's tmp_pool flattened: max and mean interleaved."""
    return np.stack([reference[f"max_pool{n}"], reference[f"mean_pool{n}"]], -1).reshape(
        len(reference[f"max_pool{n}"]), -1)


def test_frontend_settings():
    cfg = M.musicnn_frontend()
    assert (cfg.sample_rate, cfg.n_fft, cfg.window_length, cfg.hop_length, cfg.n_mels) == (
        16000, 512, 512, 256, 96)
    assert (cfg.power, cfg.mel_scale, cfg.mel_norm, cfg.center, cfg.scale, cfg.log_offset,
            cfg.top_db, cfg.mean, cfg.std) == (2.0, "slaney", "slaney", True, "log", 1e-4,
                                               None, 0.0, 1.0)
    assert cfg.n_frames(4 * 16000) == 251
    # ln(mel + 1e-4) -> log10(1 + 1e4 mel), time first
    mel = np.array([0.0, 1e-6, 0.3, 7.0, 500.0])
    feats = np.log(mel + 1e-4)[None, :, None] * np.ones((96, 1, 1))
    x = M.to_musicnn_input(feats)
    assert x.shape == (5, 96, 1)
    np.testing.assert_allclose(x[:, 0, 0], np.log10(1 + 1e4 * mel), rtol=1e-6, atol=1e-6)
    assert M.LOG10_OFFSET == pytest.approx(4.0)
    with pytest.raises(ModelError):
        M.to_musicnn_input(np.zeros((64, 10, 1)))


def test_shipped_weights_read_back(weights):
    shapes = M.expected_shapes()
    assert set(weights.arrays) == set(shapes) and len(shapes) == 64
    for key, shape in shapes.items():
        assert weights.arrays[key].shape == shape and weights.arrays[key].dtype == np.float32
        assert np.isfinite(weights.arrays[key]).all(), key
    assert weights.arrays["timbral74_conv/kernel"].shape == (7, 38, 1, 204)
    assert weights.arrays["timbral77_conv/kernel"].shape == (7, 67, 1, 204)
    assert weights.arrays["midend1_conv/kernel"].shape == (7, 1, 561, 64)
    assert weights.arrays["backend_dense/kernel"].shape == (1506, 200)
    assert weights.arrays["logits/kernel"].shape == (200, 50)
    assert weights.count() == 792_079
    assert len(M.MSD_TAGS) == 50 and M.MSD_TAGS[:3] == ("rock", "pop", "alternative")
    assert M.default_weights_path().name == "musicnn-msd.npz"


def test_save_read_round_trip_and_errors(weights, tmp_path):
    path = M.save_weights(weights, tmp_path / "w.npz")
    again = M.read_weights(path)
    for key, value in weights.arrays.items():
        np.testing.assert_array_equal(again.arrays[key], value)
    with pytest.raises(ModelError, match="not found"):
        M.read_weights(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot read"):
        M.read_weights(corrupt)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in list(weights.arrays.items())[1:]})
    with pytest.raises(ModelError, match="missing"):
        M.read_weights(partial)
    wrong = dict(weights.arrays, **{"logits/bias": np.zeros(51, np.float32)})
    M.save_weights(M.MusicnnWeights(wrong), tmp_path / "wrong.npz")
    with pytest.raises(ModelError, match="shape"):
        M.read_weights(tmp_path / "wrong.npz")
    with pytest.raises(ModelError):
        M.convert_checkpoint(tmp_path)  # no checkpoint there


@pytest.mark.slow
@pytest.mark.parametrize("n", LENGTHS)
def test_port_matches_original(weights, reference, n):
    model = M.build_backbone(weights, n)
    x = reference[f"x{n}"][..., None]
    pooled, penultimate, logits = model.predict(x, verbose=0)
    assert pooled.shape == (len(x), 1506) and penultimate.shape == (len(x), 200)
    for name, ours, ref in (("pooled", pooled, _pooled(reference, n)),
                            ("penultimate", penultimate, reference[f"penultimate{n}"]),
                            ("logits", logits, reference[f"logits{n}"])):
        worst = np.abs(ours - ref).max() / np.abs(ref).max()
        print(f"{n} frames, {name}: max |diff| / max |ref| = {worst:.1e}")
        assert worst < PORT_REL_TOL, name
    taggram = M.taggram(logits)
    assert np.abs(taggram - reference[f"taggram{n}"]).max() < PORT_TAGGRAM_ATOL
    for ours, ref in zip(taggram, reference[f"taggram{n}"]):
        assert list(np.argsort(-ours)[:5]) == list(np.argsort(-ref)[:5])


@pytest.mark.slow
def test_variable_length_model_and_save_load(weights, reference, tmp_path):
    import keras

    fixed = M.build_backbone(weights, 251)
    free = M.build_backbone(weights)
    x = reference["x251"][:1, :, :, None]
    a, b = fixed.predict(x, verbose=0), free.predict(x, verbose=0)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    short = free.predict(reference["x187"][:1, :, :, None], verbose=0)[2]
    np.testing.assert_allclose(short, reference["logits187"][:1], rtol=1e-4, atol=1e-4)
    assert not any(type(layer).__name__ == "Lambda" for layer in fixed.layers)
    path = tmp_path / "musicnn.keras"
    fixed.save(path)
    loaded = keras.models.load_model(path)  # standard layers only: no custom objects
    for u, v in zip(a, loaded.predict(x, verbose=0)):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_macs_and_params(weights):
    from edge_genre.train import macs

    model = M.build_backbone(weights, 251)
    assert [o.shape[1:] for o in model.outputs] == [(1506,), (200,), (50,)]
    assert list(model.output_names) == ["pooled", "penultimate", "logits"]
    count, params = macs.count(model)
    assert params == 792_079 == model.count_params()
    # 7x38 and 7x67 timbral convolutions dominate: 0.80 + 0.72 of 1.88 GMAC per 4 s window.
    assert count == 1_877_096_432


@pytest.mark.slow
def test_numpy_frontend_reproduces_musicnn_input(reference):
    """Same audio (librosa's load, as the original): our front-end + the affine map is
    musicnn's input up to its float16 rounding of the mel."""
    librosa = pytest.importorskip("librosa")
    cfg = M.musicnn_frontend()
    for n in LENGTHS:
        for track, offset, ref in zip(reference[f"files{n}"], reference[f"offsets{n}"],
                                      reference[f"x{n}"]):
            y, _ = librosa.load(str(gtzan_file(str(track))), sr=16000)
            ours = M.to_musicnn_input(fe.features(y, cfg)[:, offset:offset + n])[..., 0]
            assert np.abs(ours - ref).max() < FRONTEND_ATOL, (track, offset)


@pytest.mark.slow
def test_end_to_end_tags_match_original(weights, reference):
    """Our loader and resampler, our front-end on the window alone, the port: the original's
    tags (see the module docstring for the tolerances)."""
    cfg = M.musicnn_frontend()
    for n in LENGTHS:
        model = M.build_backbone(weights, n)
        batch = []
        for track, offset in zip(reference[f"files{n}"], reference[f"offsets{n}"]):
            y = audio.load(gtzan_file(str(track)), 16000)
            start = int(offset) * cfg.hop_length  # frame `offset` is centred there
            window = y[start:start + (n - 1) * cfg.hop_length + 1]
            assert cfg.n_frames(len(window)) == n
            batch.append(M.to_musicnn_input(fe.features(window, cfg)))
        _, penultimate, logits = model.predict(np.stack(batch), verbose=0)
        taggram = M.taggram(logits)
        ref_pen = reference[f"penultimate{n}"]
        cosine = np.sum(penultimate * ref_pen, 1) / (
            np.linalg.norm(penultimate, axis=1) * np.linalg.norm(ref_pen, axis=1))
        worst = np.abs(taggram - reference[f"taggram{n}"]).max()
        print(f"{n} frames: taggram max |diff| {worst:.3f}, min cosine {cosine.min():.4f}")
        assert worst < E2E_TAGGRAM_ATOL
        assert cosine.min() > E2E_MIN_COSINE
        for ours, ref in zip(taggram, reference[f"taggram{n}"]):
            assert list(np.argsort(-ours)[:3]) == list(np.argsort(-ref)[:3])
