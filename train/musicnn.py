"""musicnn (Jordi Pons, ISC licence) ported to Keras 3: the MSD_musicnn tagger and its weights.

musicnn (Pons & Serra, ISMIR 2019 LBD; https://github.com/jordipons/musicnn) tags 3 s of music
with the 50 most frequent Million Song Dataset tags. Its network, ``build_musicnn`` in musicnn's
``models.py`` with 64 mid-end filters and 200 back-end units, is:

- front-end: batch norm of the (frames, 96, 1) input, then five musically motivated branches,
  each a ReLU convolution, a batch norm and a max-pool over all of frequency: two "timbral" ones
  (204 filters of 7 x 38 and 7 x 67 on the input zero-padded by 3 frames in time, 'valid') and
  three "temporal" ones (51 filters of 128 x 1, 64 x 1 and 32 x 1, 'same'); concatenated, 561
  channels per frame;
- mid-end: three 7-frame convolutions of 64 filters (ReLU, then batch norm), the 2nd and 3rd with
  residual connections; the front-end's and the three mid-end outputs are concatenated, 753
  channels per frame;
- back-end: max- and mean-pool over time, interleaved and flattened to 1506 values (``pooled``
  here), batch norm, dropout, a 200-unit ReLU layer and a batch norm (``penultimate``, as
  musicnn's extractor calls it), dropout, and 50 tag logits (taggram = sigmoid of them).

The port is for inference (dropout off, batch norm with its moving statistics and TF1's epsilon
1e-3) and is fully convolutional in time up to the global pooling, so it takes any number of
frames: a 4 s window (251 frames) as well as musicnn's 3 s patches (187 frames). Its mid-end
convolutions are written as (7, 1) convolutions over channels instead of musicnn's
(7, channels) convolutions over a transposed map; the arithmetic is the same.

Weights: ``convert_checkpoint`` reads musicnn's TF1 checkpoint (``musicnn/MSD_musicnn/`` in the
PyPI wheel musicnn 0.1.0) once into Keras layouts, ``python -m edge_genre.train.musicnn convert``
writes them to an ``.npz`` file, and the package ships that file
(``edge_genre/models/musicnn-msd.npz``, see ``edge_genre/models/NOTICE-musicnn.md``), which
``read_weights()`` reads. ``tests/train/test_musicnn.py`` checks the port against the original
network's outputs (``tests/train/data/make_musicnn_reference.py``).

Input units: musicnn's input is ``log10(1 + 10000 * mel)`` of a power mel spectrogram, time-major
(frames, 96). ``musicnn_frontend()`` is that mel in ``edge.frontend`` terms with
``scale="log", log_offset=1e-4``, i.e. ``ln(mel + 1e-4)``, and since
``log10(1 + 1e4 * mel) = (ln(mel + 1e-4) + ln(1e4)) / ln(10)``, ``to_musicnn_input`` applies
``x * LOG10_SCALE + LOG10_OFFSET`` and puts time first.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.config import FrontendConfig
from edge_genre.errors import EdgeGenreError, ModelError

#: The 50 MSD tags, in the order of the network's outputs (musicnn's configuration.MSD_LABELS).
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy")

N_MELS = 96
#: musicnn's training patch: 3 s at 16 kHz with a 256-sample hop.
PATCH_FRAMES = 187
N_TAGS = len(MSD_TAGS)

#: ``log10(1 + 1e4 * mel) = ln(mel + 1e-4) * LOG10_SCALE + LOG10_OFFSET``.
LOG10_SCALE = 1.0 / math.log(10.0)
LOG10_OFFSET = math.log(1e4) / math.log(10.0)  # = 4

#: Front-end branches: (name, filters, kernel (time, freq), padding). Filters and kernels follow
#: musicnn's formulas with num_filt=1.6 and 96 mel bands: int(1.6 * 128) = 204 filters of
#: 7 x int(0.4 * 96) and 7 x int(0.7 * 96) for the timbral branches (on the input zero-padded by
#: 3 frames each side in time), int(1.6 * 32) = 51 filters of 128, 64 and 32 frames for the
#: temporal ones. Each is conv (ReLU) -> batch norm -> max over frequency.
BRANCHES = (("timbral74", 204, (7, 38), "valid"),
            ("timbral77", 204, (7, 67), "valid"),
            ("temporal128", 51, (128, 1), "same"),
            ("temporal64", 51, (64, 1), "same"),
            ("temporal32", 51, (32, 1), "same"))
FRONTEND_CHANNELS = sum(b[1] for b in BRANCHES)  # 561
#: Mid-end: filters of its three 7-frame convolutions (the 2nd and 3rd residual).
MIDEND = (64, 64, 64)
MIDEND_KERNEL = 7
MIDEND_CHANNELS = FRONTEND_CHANNELS + sum(MIDEND)  # 753
POOLED_SIZE = 2 * MIDEND_CHANNELS  # 1506
BACKEND_UNITS = 200

#: Port layer with weights -> musicnn's TF1 layer name (auto-numbered in creation order).
TF1_NAMES = (
    ("musicnn_input_bn", "batch_normalization"),
    ("timbral74_conv", "conv2d"), ("timbral74_bn", "batch_normalization_1"),
    ("timbral77_conv", "conv2d_1"), ("timbral77_bn", "batch_normalization_2"),
    ("temporal128_conv", "conv2d_2"), ("temporal128_bn", "batch_normalization_3"),
    ("temporal64_conv", "conv2d_3"), ("temporal64_bn", "batch_normalization_4"),
    ("temporal32_conv", "conv2d_4"), ("temporal32_bn", "batch_normalization_5"),
    ("midend1_conv", "conv2d_5"), ("midend1_bn", "batch_normalization_6"),
    ("midend2_conv", "conv2d_6"), ("midend2_bn", "batch_normalization_7"),
    ("midend3_conv", "conv2d_7"), ("midend3_bn", "batch_normalization_8"),
    ("backend_pooled_bn", "batch_normalization_9"),
    ("backend_dense", "dense"), ("penultimate", "batch_normalization_10"),
    ("logits", "dense_1"),
)
BN_PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")  # Keras' set_weights order
DENSE_PARAMS = ("kernel", "bias")

#: Name of the shipped weights file in ``edge_genre/models``.
WEIGHTS_FILE = "musicnn-msd.npz"
#: The room-robust copy (``edge_genre.train.accelerate robust-teacher`` on a lent H200,
#: 2026-12-04; see ``NOTICE-musicnn.md``): the teacher of the ``room`` preset.
ROBUST_WEIGHTS_FILE = "musicnn-robust.npz"
#: Names another weights file of this layout for ``read_weights()`` (so for the ``music`` body),
#: e.g. the ``musicnn-robust.npz`` of ``edge_genre.train.accelerate robust-teacher``.
WEIGHTS_ENV = "EDGE_GENRE_MUSICNN_WEIGHTS"


def musicnn_frontend() -> FrontendConfig:
    """musicnn's mel spectrogram in ``edge.frontend`` terms: 16 kHz, 512-point FFT and Hann window,
    256-sample hop, centred frames, power, 96 Slaney mel bands 0-8 kHz with Slaney area
    normalisation (librosa's ``melspectrogram`` defaults, as musicnn's extractor calls it), then
    ``ln(mel + 1e-4)``, no normalisation.

    ``edge.frontend.features(y, cfg)`` returns that as (96, frames, 1), frequency first;
    ``to_musicnn_input`` turns it into the port's input (frames, 96, 1) in musicnn's units
    ``log10(1 + 10000 * mel)``. A 4 s window is 251 frames. musicnn's extractor also rounds the
    mel to float16 before the log, and its librosa resamples with soxr; neither is reproduced.
    """
    return FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=N_MELS,
                          power=2.0, mel_scale="slaney", mel_norm="slaney", center=True,
                          scale="log", log_offset=1e-4, top_db=None, mean=0.0, std=1.0)


def to_musicnn_input(features: np.ndarray, cfg: FrontendConfig | None = None) -> np.ndarray:
    """``edge.frontend`` features (96, frames, 1), or a batch (n, 96, frames, 1), of a
    ``musicnn_frontend()``-like config -> musicnn's input (…, frames, 96, 1), float32.

    Undoes ``cfg``'s normalisation (mean, std), then ``ln(mel + 1e-4) * LOG10_SCALE +
    LOG10_OFFSET = log10(1 + 1e4 * mel)``, and swaps the mel and time axes.
    """
    cfg = cfg or musicnn_frontend()
    if cfg.scale != "log" or not math.isclose(cfg.log_offset, 1e-4) or cfg.resize is not None:
        raise ModelError("musicnn input needs scale='log', log_offset=1e-4 and no resize")
    x = np.asarray(features, dtype=np.float64)
    if x.ndim not in (3, 4) or x.shape[-3] != N_MELS or x.shape[-1] != 1:
        raise ModelError(f"expected features of shape (…, {N_MELS}, frames, 1), got {x.shape}")
    x = (x * cfg.std + cfg.mean) * LOG10_SCALE + LOG10_OFFSET
    return np.swapaxes(x, -3, -2).astype(np.float32)


# ----------------------------------------------------------------------------- weights


@dataclass
class MusicnnWeights:
    """Float32 weights of MSD_musicnn in Keras layouts, keyed ``"<port layer>/<param>"``.

    Convolutions and dense layers have "kernel" and "bias", batch norms "gamma", "beta",
    "moving_mean" and "moving_variance" (see ``TF1_NAMES`` for the layers, ``expected_shapes``
    for the shapes). The mid-end kernels are (7, 1, in, 64): musicnn's (7, in, 1, 64) reshaped.
    """

    arrays: dict[str, np.ndarray]

    def layer(self, name: str) -> list[np.ndarray]:
        """The arrays of one port layer in Keras' ``set_weights`` order."""
        params = BN_PARAMS if _is_bn(name) else DENSE_PARAMS
        return [self.arrays[f"{name}/{p}"] for p in params]

    def count(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))


def _is_bn(name: str) -> bool:
    return name.endswith("_bn") or name == "penultimate"


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every array of ``MusicnnWeights``."""
    units = {"musicnn_input_bn": 1, "backend_pooled_bn": POOLED_SIZE,
             "penultimate": BACKEND_UNITS}
    kernels = {}
    for name, filters, kernel, _ in BRANCHES:
        kernels[f"{name}_conv"] = (*kernel, 1, filters)
        units[f"{name}_bn"] = filters
    in_ch = FRONTEND_CHANNELS
    for i, filters in enumerate(MIDEND, 1):
        kernels[f"midend{i}_conv"] = (MIDEND_KERNEL, 1, in_ch, filters)
        units[f"midend{i}_bn"] = filters
        in_ch = filters
    kernels["backend_dense"] = (POOLED_SIZE, BACKEND_UNITS)
    kernels["logits"] = (BACKEND_UNITS, N_TAGS)
    shapes = {}
    for name, _ in TF1_NAMES:
        if _is_bn(name):
            shapes.update({f"{name}/{p}": (units[name],) for p in BN_PARAMS})
        else:
            shapes[f"{name}/kernel"] = kernels[name]
            shapes[f"{name}/bias"] = (kernels[name][-1],)
    return shapes


def _checked(arrays: dict[str, np.ndarray], source: str) -> MusicnnWeights:
    shapes = expected_shapes()
    missing = sorted(set(shapes) - set(arrays))
    if missing:
        raise ModelError(f"{source} is not a musicnn weights file: {len(missing)} arrays "
                         f"missing (e.g. {missing[0]})")
    for key, shape in shapes.items():
        if tuple(arrays[key].shape) != shape:
            raise ModelError(f"{source}: {key} has shape {tuple(arrays[key].shape)}, "
                             f"expected {shape}")
    return MusicnnWeights({k: np.asarray(arrays[k], dtype=np.float32) for k in shapes})


def convert_checkpoint(folder: str | Path) -> MusicnnWeights:
    """Read musicnn's TF1 checkpoint (e.g. ``musicnn/MSD_musicnn/`` of the wheel, whose files are
    ``.index`` and ``.data-00000-of-00001``: the checkpoint prefix is the folder itself) into
    Keras layouts. Only the model's variables are read (not Adam's slots). Needs TensorFlow.
    """
    folder = Path(folder)
    if not (folder / ".index").is_file():
        raise ModelError(f"no musicnn checkpoint in {folder} (expected {folder / '.index'})")
    import tensorflow as tf

    try:
        reader = tf.compat.v1.train.NewCheckpointReader(os.path.join(str(folder), ""))
    except Exception as e:  # noqa: BLE001 - TF raises a variety of errors for bad files
        raise ModelError(f"cannot read the checkpoint in {folder}: {e}") from None
    shapes = reader.get_variable_to_shape_map()
    arrays = {}
    for port, tf1 in TF1_NAMES:
        for param in (BN_PARAMS if _is_bn(port) else DENSE_PARAMS):
            var = f"{tf1}/{param}"
            if var not in shapes:
                raise ModelError(f"{folder}: checkpoint has no variable {var}; not MSD_musicnn?")
            value = np.asarray(reader.get_tensor(var), dtype=np.float32)
            if port.startswith("midend") and param == "kernel":
                k, c, one, f = value.shape  # (7, in, 1, out) -> (7, 1, in, out), same order
                value = value.reshape(k, one, c, f)
            arrays[f"{port}/{param}"] = value
    return _checked(arrays, str(folder))


def convert_wheel(wheel: str | Path, model: str = "MSD_musicnn") -> MusicnnWeights:
    """``convert_checkpoint`` on the checkpoint inside musicnn's wheel (or sdist-like zip)."""
    prefix = f"musicnn/{model}/"
    try:
        with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
            members = [m for m in zf.namelist()
                       if m.startswith(prefix) and m[len(prefix):] in (
                           ".index", ".data-00000-of-00001")]
            if len(members) != 2:
                raise ModelError(f"{wheel} has no {prefix} checkpoint")
            for m in members:
                (Path(tmp) / Path(m).name).write_bytes(zf.read(m))
            return convert_checkpoint(tmp)
    except (OSError, zipfile.BadZipFile) as e:
        raise ModelError(f"cannot read {wheel}: {e}") from None


def default_weights_path() -> Path:
    """The shipped weights file, ``edge_genre/models/musicnn-msd.npz``."""
    import edge_genre

    return Path(edge_genre.__file__).resolve().parent / "models" / WEIGHTS_FILE


def save_weights(weights: MusicnnWeights, path: str | Path) -> Path:
    """Write the weights to a compressed ``.npz`` (float32, keys as in ``MusicnnWeights``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez_compressed(f, **{k: np.asarray(v, np.float32)
                                  for k, v in weights.arrays.items()})
    return path


def robust_weights_path() -> Path:
    """The shipped room-robust musicnn weights."""
    return default_weights_path().with_name(ROBUST_WEIGHTS_FILE)


def weights_path() -> Path:
    """The file ``read_weights()`` reads: ``$EDGE_GENRE_MUSICNN_WEIGHTS`` when set, else the
    shipped MSD_musicnn weights."""
    other = os.environ.get(WEIGHTS_ENV)
    return Path(other) if other else default_weights_path()


def read_weights(path: str | Path | None = None) -> MusicnnWeights:
    """Read weights written by ``save_weights``; by default ``weights_path()`` (the shipped
    MSD_musicnn weights unless ``$EDGE_GENRE_MUSICNN_WEIGHTS`` names another file).

    Raises ModelError when the file is missing, unreadable or lacks an array of the right shape.
    """
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise ModelError(f"musicnn weights file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # noqa: BLE001 - zip, zlib, format and pickle errors alike
        raise ModelError(f"cannot read musicnn weights {path}: {type(e).__name__}: {e}") from None
    return _checked(arrays, str(path))


# ----------------------------------------------------------------------------- network


def build_backbone(weights: MusicnnWeights | None = None, frames: int | None = None,
                   name: str = "musicnn"):
    """MSD_musicnn as a Keras model, for inference.

    Parameters
    ----------
    weights : from ``read_weights`` / ``convert_checkpoint``; None leaves the layers randomly
        initialised.
    frames : input length in frames (251 for a 4 s window, 187 for musicnn's 3 s), or None for
        any length.

    Input ``musicnn_log_mel``: (frames, 96, 1) float in musicnn's units, ``log10(1 + 1e4 * mel)``,
    time first (``to_musicnn_input`` makes it from our front-end). Outputs, in this order:
    ``pooled`` (1506: max- and mean-pool over time of the 753 mid-end channels, interleaved
    [max_0, mean_0, max_1, ...] as musicnn flattens them; before the back-end's batch norm),
    ``penultimate`` (200: the back-end's batch-normed ReLU layer) and ``logits`` (50 MSD tags;
    the taggram is their sigmoid). Dropout is left out (inference); batch norms use their moving
    statistics.
    """
    import keras
    from keras import layers as L

    inp = keras.Input((frames, N_MELS, 1), name="musicnn_log_mel")
    x = L.BatchNormalization(epsilon=1e-3, name="musicnn_input_bn")(inp)
    padded = L.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    branches = []
    for bname, filters, kernel, padding in BRANCHES:
        src = padded if padding == "valid" else x
        y = L.Conv2D(filters, kernel, padding=padding, activation="relu",
                     name=f"{bname}_conv")(src)
        y = L.BatchNormalization(epsilon=1e-3, name=f"{bname}_bn")(y)
        width = N_MELS - kernel[1] + 1 if padding == "valid" else N_MELS
        branches.append(L.MaxPooling2D((1, width), name=f"{bname}_pool")(y))  # (T, 1, filters)
    front = L.Concatenate(axis=-1, name="frontend_concat")(branches)  # (T, 1, 561)

    mids, y = [front], front
    for i, filters in enumerate(MIDEND, 1):
        h = L.ZeroPadding2D(((MIDEND_KERNEL // 2, MIDEND_KERNEL // 2), (0, 0)),
                            name=f"midend{i}_pad")(y)
        h = L.Conv2D(filters, (MIDEND_KERNEL, 1), activation="relu", name=f"midend{i}_conv")(h)
        h = L.BatchNormalization(epsilon=1e-3, name=f"midend{i}_bn")(h)
        y = h if i == 1 else L.Add(name=f"midend{i}_residual")([h, y])
        mids.append(y)
    feats = L.Concatenate(axis=-1, name="midend_concat")(mids)  # (T, 1, 753)

    mx = L.GlobalMaxPooling2D(name="backend_max_pool")(feats)
    mean = L.GlobalAveragePooling2D(name="backend_mean_pool")(feats)
    mx = L.Reshape((MIDEND_CHANNELS, 1), name="backend_max_column")(mx)
    mean = L.Reshape((MIDEND_CHANNELS, 1), name="backend_mean_column")(mean)
    pooled = L.Flatten(name="pooled")(
        L.Concatenate(axis=-1, name="backend_pool_concat")([mx, mean]))  # (1506,)
    h = L.BatchNormalization(epsilon=1e-3, name="backend_pooled_bn")(pooled)
    h = L.Dense(BACKEND_UNITS, activation="relu", name="backend_dense")(h)
    penultimate = L.BatchNormalization(epsilon=1e-3, name="penultimate")(h)
    logits = L.Dense(N_TAGS, name="logits")(penultimate)
    model = keras.Model(inp, [pooled, penultimate, logits], name=name)
    if weights is not None:
        set_weights(model, weights)
    return model


def set_weights(model, weights: MusicnnWeights) -> None:
    """Copy musicnn weights into a model built by ``build_backbone``."""
    for port, _ in TF1_NAMES:
        model.get_layer(port).set_weights(weights.layer(port))


def taggram(logits: np.ndarray) -> np.ndarray:
    """Tag probabilities from logits (sigmoid), as musicnn's extractor reports them."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def top_tags(logits: np.ndarray, k: int = 5) -> list[str]:
    """The k most likely MSD tags of one logits vector."""
    return [MSD_TAGS[i] for i in np.argsort(-np.asarray(logits))[:k]]


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_genre.train.musicnn",
        description="One-off conversion of musicnn's MSD_musicnn checkpoint to an .npz file.")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="checkpoint folder (or musicnn wheel) -> .npz")
    conv.add_argument("source", help="musicnn/MSD_musicnn/ folder, or musicnn-0.1.0-*.whl")
    conv.add_argument("output", help="the .npz file to write")
    args = parser.parse_args(argv)
    try:
        source = Path(args.source)
        weights = (convert_wheel(source) if source.is_file() and source.suffix in (".whl", ".zip")
                   else convert_checkpoint(source))
        out = save_weights(weights, args.output)
    except EdgeGenreError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"wrote {out}: {len(weights.arrays)} arrays, {weights.count():,} parameters, "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
