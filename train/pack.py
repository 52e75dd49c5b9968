"""Pack a folder-per-genre dataset small enough to travel to a lent accelerator: Opus audio, a manifest.

An accelerator call carries at most 64 MiB with the working tree, so the 161 GTZAN excerpts
(about 100 MB as 16-bit WAV) travel as Opus in OGG, and the machine there has no librosa or
TensorFlow: it decodes the pack with ``soundfile`` (carried as a wheel) through
``edge.audio.load``, which resamples in numpy to each model's rate.

The pack is a folder::

    manifest.json            labels, tracks (file, genre, label, track id, artist), the
                             cross-validation folds, how it was made
    audio/<genre>/<id>.ogg   mono Opus at ``PackConfig.sample_rate``

The rate is 16 kHz by default, musicnn's: Opus codes it in about 110 kB per 30 s excerpt
(libsndfile's default bitrate), 17.7 MB for the 161, which with the wheels and the tracked tree
(about 40 MiB, mostly the shipped models) stays under a device call's 64 MiB. The ``paper``
preset resamples it to its 22050 Hz and so hears no content above 8 kHz (its top 14 of 128 mel
bands stay empty): a known deviation of a run from a pack, said in its record. ``sample_rate``
24000 keeps the paper's whole band at about 140 kB a track where the budget allows, and
``compression`` (libsndfile's level, 0-1; higher is smaller) trades quality for size.

The folds (``splits.cv_folds``, artist-grouped, the same as ``edge-genre evaluate --cv K``) are
computed HERE and written into the manifest, because they need scikit-learn, which the
accelerator machine lacks; ``dataset_folds`` reads them back.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError
from edge_genre.train.data import Dataset, Track

MANIFEST = "manifest.json"
#: Bump when the pack's layout or manifest changes.
PACK_VERSION = 1


@dataclass(frozen=True)
class PackConfig:
    """What ``pack`` reads and writes."""

    data: str  # a folder-per-genre dataset (GTZAN layouts accepted)
    out: str  # the pack folder to write
    sample_rate: int = 16000  # Opus takes 8, 12, 16, 24 or 48 kHz
    compression: float | None = None  # libsndfile's compression level, 0-1 (None: its default)
    limit: int | None = None  # the first N tracks of each genre (for short runs)
    k: int = 5  # folds written into the manifest
    seed: int = 0


OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def is_pack(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def pack(cfg: PackConfig) -> dict:
    """Write the pack; returns its manifest. DataError for a bad dataset or setting."""
    from edge_genre.edge import audio as audio_io
    from edge_genre.errors import AudioError
    from edge_genre.train.data import discover
    from edge_genre.train.splits import cv_folds, describe_grouping

    if cfg.compression is not None and not 0 <= cfg.compression <= 1:
        raise DataError(f"compression is a level from 0 to 1, not {cfg.compression}")
    if cfg.sample_rate not in OPUS_RATES:
        raise DataError(f"Opus takes a rate of {', '.join(map(str, OPUS_RATES))} Hz, "
                        f"not {cfg.sample_rate}")
    try:
        import soundfile as sf
    except ImportError:
        raise DataError("pack needs the 'soundfile' package (pip install soundfile)") from None
    t0 = time.perf_counter()
    ds = discover(cfg.data)
    if cfg.limit:
        ds = ds.subset(int(cfg.limit))
    out = Path(cfg.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    tracks, skipped = [], [[str(p), r] for p, r in ds.skipped]
    for t in ds.tracks:
        try:
            y = audio_io.load(t.path, cfg.sample_rate)
        except AudioError as exc:
            skipped.append([str(t.path), str(exc)])
            continue
        rel = Path("audio") / t.genre / f"{t.track_id}.ogg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        extra = {} if cfg.compression is None else {"compression_level": cfg.compression}
        sf.write(out / rel, y, cfg.sample_rate, format="OGG", subtype="OPUS", **extra)
        tracks.append({"file": rel.as_posix(), "genre": t.genre, "label": t.label,
                       "track_id": t.track_id, "artist": t.artist,
                       "seconds": round(len(y) / cfg.sample_rate, 3)})
    kept = {t["track_id"] for t in tracks}
    ds.tracks = [t for t in ds.tracks if t.track_id in kept]
    folds = [{"index": f.index, "train": [t.track_id for t in f.train],
              "valid": [t.track_id for t in f.valid], "test": [t.track_id for t in f.test]}
             for f in cv_folds(ds, cfg.k, cfg.seed)]
    manifest = {"version": PACK_VERSION, "sample_rate": cfg.sample_rate, "format": "OGG/OPUS",
                "source": str(Path(ds.root).resolve()), "limit_per_genre": cfg.limit,
                "labels": list(ds.labels), "tracks": tracks, "skipped": skipped,
                "cv": {"k": cfg.k, "seed": cfg.seed, "grouping": describe_grouping(ds),
                       "folds": folds},
                "config": asdict(cfg), "seconds": round(time.perf_counter() - t0, 1)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the pack manifest {path}: {exc}") from None
    if manifest.get("version") != PACK_VERSION:
        raise DataError(f"{path}: pack version {manifest.get('version')}, this code reads "
                        f"{PACK_VERSION}; pack the data again")
    return manifest


def read_pack(folder: str | Path) -> Dataset:
    """The pack as a ``Dataset`` whose tracks point at its Opus files (artists kept)."""
    folder = Path(folder)
    m = read_manifest(folder)
    tracks = [Track(folder / t["file"], t["genre"], int(t["label"]), t["track_id"], t["artist"])
              for t in m["tracks"]]
    missing = [str(t.path) for t in tracks if not t.path.is_file()]
    if missing:
        raise DataError(f"pack {folder} lacks {len(missing)} audio files (e.g. {missing[0]})")
    return Dataset(folder / "audio", tuple(m["labels"]), tracks, [], None)


def load_dataset(data: str | Path, limit: int | None = None) -> Dataset:
    """A pack (``manifest.json`` inside) or any dataset folder ``data.discover`` reads."""
    from edge_genre.train.data import discover

    ds = read_pack(data) if is_pack(data) else discover(data)
    return ds.subset(int(limit)) if limit else ds


def dataset_folds(data: str | Path, ds: Dataset, k: int = 5, seed: int = 0):
    """``splits.Fold``s of ``ds``: the pack's own when it is a pack whose folds were made with the
    same k and seed for the same tracks (no scikit-learn needed), else ``splits.cv_folds``.
    Returns (folds, grouping description)."""
    from edge_genre.train.splits import Fold

    if is_pack(data):
        cv = read_manifest(data)["cv"]
        ids = sorted(t.track_id for t in ds.tracks)
        by_id = {t.track_id: t for t in ds.tracks}
        packed = sorted(i for f in cv["folds"][:1] for part in ("train", "valid", "test")
                        for i in f[part])
        if cv["k"] == k and cv["seed"] == seed and packed == ids:
            return ([Fold(f["index"], *[[by_id[i] for i in f[part]]
                                        for part in ("train", "valid", "test")])
                     for f in cv["folds"]], cv["grouping"])
    try:
        from edge_genre.train.splits import cv_folds, describe_grouping
        return cv_folds(ds, k, seed), describe_grouping(ds)
    except ImportError:
        raise DataError("these folds are not in the pack and need scikit-learn: pack with the "
                        "same --limit, k and seed, or install scikit-learn") from None


def pack_size(folder: str | Path) -> int:
    """Bytes of every file under ``folder``."""
    return int(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()))


def level_db(y: np.ndarray) -> float:
    """RMS level in dB re full scale (the round-trip check compares it)."""
    return float(10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-20))
