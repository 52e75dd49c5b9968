"""The MAC/parameter counter on a model small enough to count by hand."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.train import macs  # noqa: E402


def test_hand_counted_model():
    import keras
    from keras import layers as L

    i = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same")(i)                    # 8*8 * 4 * (3*3*3)   = 6912
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)   # 4*4 * 4 * 3*3       = 576
    x = L.SeparableConv2D(5, 3, padding="same")(x)           # 4*4*4*9 + 4*4*4*5   = 896
    x = L.BatchNormalization()(x)                            # 0 MACs, 4*5 params
    x = L.GlobalAveragePooling2D()(x)
    o = L.Dense(2)(x)                                        # 5*2                 = 10
    model = keras.Model(i, o)
    n_macs, n_params = macs.count(model)
    assert n_macs == 6912 + 576 + 896 + 10
    # conv 3*9*4+4, depthwise 4*9+4, separable 4*9+4*5+5, batch norm 4*5, dense 5*2+2
    assert n_params == 112 + 40 + 61 + 20 + 12 == model.count_params()
    assert macs.bn_params(model) == 20
    table = macs.format_table(model)
    assert "8,394" in table and "total" in table


def test_dense_on_sequence_counts_every_position():
    import keras
    from keras import layers as L

    i = keras.Input((7, 3))
    model = keras.Model(i, L.Dense(4)(i))
    assert macs.count(model) == (7 * 3 * 4, 16)
