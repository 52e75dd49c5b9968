"""Fixtures shared by the training tests."""
from __future__ import annotations

import pytest

from tests.conftest import YAMNET_TFLITE


@pytest.fixture(scope="session")
def yamnet_weights():
    """YAMNet's weights read from ../shared's TFLite file (read once per session)."""
    from edge_genre.train import yamnet as Y

    if not YAMNET_TFLITE.is_file():
        pytest.fail(f"YAMNet TFLite file not found at {YAMNET_TFLITE}")
    return Y.read_tflite_weights(YAMNET_TFLITE)


@pytest.fixture(scope="session")
def room_bank_cache(tmp_path_factory):
    """A cache folder holding the room-augmentation bank at 16 kHz, computed once a session (it
    takes tens of seconds): jobs in other processes read it with ``--room-cache``."""
    from edge_genre.train.roomsim import ROOM_AUGMENT

    cache = tmp_path_factory.mktemp("room-cache")
    ROOM_AUGMENT.bank.impulse_responses(16000, cache)
    return cache
