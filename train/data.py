"""Folder-per-genre datasets: find the tracks, their labels and (for GTZAN) their artists.

Accepted layouts, labels from folder names, sorted:
- ``<root>/<genre>/*.{wav,au,flac,...}`` (any dataset),
- GTZAN's ``<root>/genres/<genre>/<genre>.000NN.au`` and ``<root>/genres_original/<genre>/...wav``.

Nothing is decoded here; ``features`` decodes and reports bad files.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from edge_genre.edge.audio import AUDIO_EXTENSIONS
from edge_genre.edge.walk import is_audio_name
from edge_genre.errors import DataError

log = logging.getLogger("edge_genre")

#: Files some GTZAN downloads ship broken (jazz.00054.wav does not decode). Skipped with a warning.
KNOWN_CORRUPT = {"jazz.00054": "known-corrupt GTZAN file in some downloads (jazz.00054.wav)"}

#: Where an artist index is looked for when ``artist_index="auto"``, relative to the dataset
#: root and its parents (the layout of ../shared/data: gtzan-mini/genres beside gtzan-splits).
ARTIST_INDEX_NAMES = ("artist_title_index.txt", "gtzan-splits/artist_title_index.txt")


@dataclass(frozen=True)
class Track:
    """One audio file of the dataset."""

    path: Path
    genre: str
    label: int  # index into Dataset.labels
    track_id: str  # file stem, e.g. 'blues.00000'
    artist: str | None = None

    @property
    def group(self) -> str:
        """What must stay on one side of a split: the artist when known, else the track."""
        return f"artist:{self.artist}" if self.artist else f"track:{self.track_id}"


@dataclass
class Dataset:
    root: Path
    labels: tuple[str, ...]
    tracks: list[Track]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    artist_index: Path | None = None

    def __len__(self) -> int:
        return len(self.tracks)

    def counts(self) -> dict[str, int]:
        out = {g: 0 for g in self.labels}
        for t in self.tracks:
            out[t.genre] += 1
        return out

    def subset(self, limit_per_genre: int) -> "Dataset":
        """The first ``limit_per_genre`` tracks of each genre (for short runs)."""
        seen: dict[str, int] = {}
        kept = []
        for t in self.tracks:
            if seen.get(t.genre, 0) < limit_per_genre:
                kept.append(t)
                seen[t.genre] = seen.get(t.genre, 0) + 1
        return Dataset(self.root, self.labels, kept, list(self.skipped), self.artist_index)

    def fingerprint(self) -> str:
        """SHA-256 over the tracks' labels and file contents: the run record's data hash."""
        h = hashlib.sha256()
        for t in self.tracks:
            h.update(f"{t.genre}/{t.path.name}\0".encode())
            h.update(file_digest(t.path).encode())
        return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def genre_root(root: Path) -> Path:
    """The folder whose subfolders are the genres (resolves GTZAN's two layouts)."""
    for name in ("genres", "genres_original"):
        if (root / name).is_dir():
            return root / name
    return root


def read_artist_index(path: Path) -> dict[str, str]:
    """Sturm's GTZAN index (``file ::: artist ::: title``) -> {track_id: artist}. Blank artists are
    left out (those tracks are grouped alone)."""
    artists = {}
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read artist index {path}: {exc.strerror or exc}") from None
    for line in lines:
        if line.startswith("#") or ":::" not in line:
            continue
        parts = [p.strip() for p in line.split(":::")]
        if len(parts) >= 2 and parts[1]:
            artists[Path(parts[0]).stem] = parts[1]
    return artists


def find_artist_index(root: Path) -> Path | None:
    for base in (root, *list(root.parents)[:3]):
        for name in ARTIST_INDEX_NAMES:
            if (base / name).is_file():
                return base / name
    return None


def discover(root: str | Path, artist_index: str | Path | None = "auto") -> Dataset:
    """Find every audio file under ``root/<genre>/``.

    Parameters
    ----------
    root : dataset folder (or GTZAN's parent folder holding ``genres`` / ``genres_original``).
    artist_index : Sturm-format index, ``"auto"`` to look beside the dataset (only used when file
        names match it), or None for no artists (splits then group by track only).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    base = genre_root(root)
    genres = sorted(d.name for d in base.iterdir()
                    if d.is_dir() and not d.name.startswith(".") and _audio_files(d))
    if len(genres) < 2:
        raise DataError(f"{base} needs at least two genre folders with audio files "
                        f"(<root>/<genre>/*{'|'.join(AUDIO_EXTENSIONS)})")
    tracks, skipped = [], []
    for label, genre in enumerate(genres):
        for path in _audio_files(base / genre):
            if path.stem in KNOWN_CORRUPT:
                log.warning("skipping %s: %s", path, KNOWN_CORRUPT[path.stem])
                skipped.append((path, KNOWN_CORRUPT[path.stem]))
                continue
            tracks.append(Track(path, genre, label, path.stem))
    index_path = find_artist_index(root) if artist_index == "auto" else (
        Path(artist_index) if artist_index else None)
    if index_path is not None:
        artists = read_artist_index(index_path)
        if artist_index == "auto" and not any(t.track_id in artists for t in tracks):
            index_path = None  # an index for another dataset
        else:
            tracks = [Track(t.path, t.genre, t.label, t.track_id, artists.get(t.track_id))
                      for t in tracks]
    # A folder whose every file was skipped gives no label: a class without examples.
    used = sorted({t.genre for t in tracks})
    if used != genres:
        tracks = [Track(t.path, t.genre, used.index(t.genre), t.track_id, t.artist) for t in tracks]
        genres = used
        if len(genres) < 2:
            raise DataError(f"{base} needs at least two genre folders with usable audio files")
    return Dataset(base, tuple(genres), tracks, skipped, index_path)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and is_audio_name(p.name, AUDIO_EXTENSIONS))
