"""Model presets: a front-end, a windowing, a network and how to train it, under one name.

- ``paper``: the paper's pipeline as published: librosa-default log-mel of 4 s at 22050 Hz
  (n_fft 2048, hop 512, 128 mels, dB re max, top_db 80) resized bilinearly to 256x256, a 10-conv
  VGG net (5 blocks of two 3x3 'same' convs, 32..512 channels, 2x2 max pooling, dropout 0.3 after
  blocks 3 and 5), Dense 1200, dropout 0.45, softmax; Adam 1e-4, batch 32, 30 epochs, best
  checkpoint on validation accuracy. No augmentation (the paper lists it as future work).
- ``scratch``: a small CNN trained from scratch, designed for a Raspberry Pi: 16 kHz, 64 mels,
  no resize, a depthwise-separable CNN well under 100 M MACs and 500 k parameters per 4 s window,
  int8-friendly layers only (Conv2D, DepthwiseConv2D, batch norm that folds at export, ReLU,
  max/global-average pooling, Dense), trained with on-the-fly augmentation (``augment.py``).
  Called ``edge`` until this release; that name is still read (``DEPRECATED_NAMES``).
- ``transfer``, ``student`` and ``music``: provided by ``edge_genre.train.transfer``, a frozen
  pretrained body and a genre head (YAMNet's whole body; its first 6 layers within the Pi
  budget; musicnn's MSD network, trained on music), imported lazily.

Keras is imported inside the builders, so listing presets stays light.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.errors import ModelError
from edge_genre.train.augment import AugmentConfig
from edge_genre.train.recipe import Preset, TrainConfig


PRESETS = ("paper", "scratch", "transfer", "student", "music", "room")
#: Presets built by ``edge_genre.train.transfer`` (a pretrained body and a head).
TRANSFER_PRESETS = ("transfer", "student", "music", "room")
#: Old preset names still accepted for one release (old -> current): the one place an alias is
#: defined. ``canonical_name`` resolves them; help and choices show only ``PRESETS``.
DEPRECATED_NAMES = {"edge": "scratch"}

#: The Raspberry Pi budget the ``scratch`` and ``student`` presets are designed to (checked by
#: tests/train/test_presets.py).
PI_MAX_MACS = 100_000_000
PI_MAX_PARAMS = 500_000


# ----------------------------------------------------------------------------- paper


PAPER_FRONTEND = FrontendConfig(resize=(256, 256))  # librosa defaults + bilinear 256x256
PAPER_WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)
PAPER_FILTERS = (32, 64, 128, 256, 512)
PAPER_DROPOUT_AFTER = {3: 0.3, 5: 0.3}  # block number -> dropout rate
PAPER_DENSE = 1200
PAPER_DENSE_DROPOUT = 0.45


def build_paper(n_labels: int, input_shape: tuple) -> Any:
    """The paper's 10-conv VGG net, layer by layer."""
    import keras
    from keras import layers as L

    inputs = keras.Input(shape=input_shape, name="logmel")
    x = inputs
    for block, filters in enumerate(PAPER_FILTERS, start=1):
        for j in (1, 2):
            x = L.Conv2D(filters, 3, padding="same", activation="relu",
                         name=f"block{block}_conv{j}")(x)
        x = L.MaxPooling2D(2, name=f"block{block}_pool")(x)
        if block in PAPER_DROPOUT_AFTER:
            x = L.Dropout(PAPER_DROPOUT_AFTER[block], name=f"block{block}_dropout")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(PAPER_DENSE, activation="relu", name="dense")(x)
    x = L.Dropout(PAPER_DENSE_DROPOUT, name="dense_dropout")(x)
    outputs = L.Dense(n_labels, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="paper_vgg")


PAPER = Preset(
    name="paper",
    frontend=PAPER_FRONTEND,
    window=PAPER_WINDOW,
    train=TrainConfig(epochs=30, batch_size=32, learning_rate=1e-4, optimizer="adam",
                      selection="val_accuracy"),
    builder=build_paper,
    description="paper pipeline: 128-mel dB at 22050 Hz resized to 256x256, 10-conv VGG, "
                "Dense 1200; Adam 1e-4, batch 32, 30 epochs, best val accuracy",
)


# ----------------------------------------------------------------------------- scratch


SCRATCH_FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320,
                               n_mels=64, fmin=50.0, fmax=8000.0, center=False)
SCRATCH_WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)
#: (output channels, pool after) of the separable blocks that follow the stem.
SCRATCH_STEM = 32
#: (output channels, depthwise stride) of the separable blocks after the stem. Strided depthwise
#: convolutions instead of max pooling: on a CPU, training time goes with the size of the
#: activations more than with MACs, so resolution is cut early (stem and block 1 both stride 2).
SCRATCH_BLOCKS = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2))
SCRATCH_DROPOUT = 0.3
#: Batch-norm moving-average momentum. Keras' 0.99 keeps ~2 % of the initial (0, 1) statistics
#: after 400 steps: with ~50 steps an epoch, inference-mode predictions were constant for the
#: first 7 epochs of a 15-epoch run. 0.9 forgets them within one epoch.
SCRATCH_BN_MOMENTUM = 0.9


def build_scratch(n_labels: int, input_shape: tuple) -> Any:
    """A small MobileNet-style CNN: a 3x3 stride-2 conv stem, five separable blocks (depthwise
    3x3, stride 1 or 2 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU), global average pooling,
    dropout and a softmax Dense. Every op quantises to int8 (BN folds into the convs)."""
    import keras
    from keras import layers as L

    def bn_relu(x, name):
        x = L.BatchNormalization(momentum=SCRATCH_BN_MOMENTUM, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(shape=input_shape, name="logmel")
    x = L.Conv2D(SCRATCH_STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = bn_relu(x, "stem")
    for i, (filters, stride) in enumerate(SCRATCH_BLOCKS, start=1):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              name=f"sep{i}_dw")(x)
        x = bn_relu(x, f"sep{i}_dw")
        x = L.Conv2D(filters, 1, use_bias=False, name=f"sep{i}_pw")(x)
        x = bn_relu(x, f"sep{i}_pw")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(SCRATCH_DROPOUT, name="dropout")(x)
    outputs = L.Dense(n_labels, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="scratch_sepcnn")


SCRATCH = Preset(
    name="scratch",
    frontend=SCRATCH_FRONTEND,
    window=SCRATCH_WINDOW,
    train=TrainConfig(epochs=15, batch_size=32, learning_rate=3e-3, optimizer="adamw",
                      weight_decay=1e-3, lr_schedule="cosine", warmup_epochs=1,
                      label_smoothing=0.05, selection="val_track_accuracy",
                      augment=AugmentConfig()),
    builder=build_scratch,
    description="scratch: 64-mel dB at 16 kHz (no resize), separable CNN, int8-friendly; "
                "AdamW + cosine, on-the-fly augmentation",
)


# ----------------------------------------------------------------------------- registry


_BUILTIN = {"paper": PAPER, "scratch": SCRATCH}


def canonical_name(name: str, note: bool = True) -> str:
    """``name``, or the current name of a deprecated one (``DEPRECATED_NAMES``), then with a
    one-line note on stderr unless ``note`` is False (stdout stays the command's own output).
    Any other name comes back as it is."""
    new = DEPRECATED_NAMES.get(name)
    if new is None:
        return name
    if note:
        print(f"note: preset {name!r} is now called {new!r}; the old name goes in the next "
              "release", file=sys.stderr)
    return new


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (one of ``PRESETS``, or a deprecated name of one)."""
    name = canonical_name(name)
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in TRANSFER_PRESETS:
        return _transfer_preset(name)
    raise ModelError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")


def _transfer_preset(name: str) -> Preset:
    try:
        module = importlib.import_module("edge_genre.train.transfer")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edge_genre"):
            raise ModelError(f"preset {name} is not available in this install") from None
        raise
    return module.preset(name)
