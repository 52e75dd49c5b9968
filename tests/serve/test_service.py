"""``GenreService`` in process: the classifier pool and the JSON it returns, on real excerpts."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import gtzan_file
from tests.serve.server import default_model  # noqa: F401 (fixture)


def test_pool_of_two_gives_the_same_answers_as_one(default_model):
    from edge_genre.serve.service import GenreService

    one = GenreService(default_model, workers=1)
    two = GenreService(default_model, workers=2)
    assert two.workers == 2 and two.model == one.model
    files = [gtzan_file(t) for t in ("jazz.00002", "metal.00002", "classical.00051", "jazz.00002")]
    expected = [one.classify_bytes(p.read_bytes(), p.name) for p in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda p: two.classify_bytes(p.read_bytes(), p.name), files))
    for a, b in zip(expected, got):
        assert a["genre"] == b["genre"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
        assert [w["genre"] for w in a["window_decisions"]] == \
            [w["genre"] for w in b["window_decisions"]]


def test_limits_and_errors_carry_their_status(default_model):
    from edge_genre.serve.service import ClassifyError, GenreService, Limits

    service = GenreService(default_model, limits=Limits(max_seconds=20))
    path = gtzan_file("jazz.00002")
    with pytest.raises(ClassifyError) as caught:
        service.classify_bytes(path.read_bytes(), path.name)
    assert caught.value.status == 413 and "20 s limit" in caught.value.message
    for data, status in ((b"", 400), (b"RIFF....WAVEjunk", 415), (b"\x00" * 1000, 415)):
        with pytest.raises(ClassifyError) as caught:
            service.classify_bytes(data, "x.wav")
        assert caught.value.status == status, caught.value.message
    with pytest.raises(ValueError):
        Limits(max_upload_bytes=0)
