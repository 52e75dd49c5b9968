"""The genre in an audio file's own tags (``edge-genre tag --write-tags``), with mutagen.

Where the genre goes: ID3 ``TCON`` for MP3, the Vorbis comment ``GENRE`` for FLAC and Ogg
(Vorbis, Opus, FLAC-in-Ogg), the MP4 atom ``©gen`` for .m4a/.mp4. Other files (WAV, AU, AIFF)
are left alone ("unsupported").

Only the tags change, never the audio: mutagen rewrites the tag region (for Ogg, the comment
header pages; later pages are renumbered, their packets untouched). And the file is never
half-written: the tags are written into a copy beside the file (a hidden name), which is
fsync'ed and renamed over the original (a symbolic link is followed: its target is replaced,
the link stays). A crash leaves the old file or the new one, plus at worst a hidden temporary
file.

An existing genre is kept unless ``overwrite`` (``plan`` says what would happen; the CLI's
``--dry-run`` prints it and writes nothing). mutagen is imported inside the functions: the edge
runtime stays light.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_genre.errors import EdgeGenreError

#: Suffixes whose files carry a genre tag that ``write_genre`` writes.
TAG_SUFFIXES = (".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".m4b")

#: How the GTZAN labels are written into tags (ID3v1's genre names); other labels as they are.
DISPLAY = {"blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco",
           "hiphop": "Hip-Hop", "jazz": "Jazz", "metal": "Metal", "pop": "Pop",
           "reggae": "Reggae", "rock": "Rock"}

MP4_GENRE = "\xa9gen"


class TagError(EdgeGenreError):
    """A file whose tags cannot be read or written (the batch goes on)."""


def require() -> None:
    try:
        import mutagen  # noqa: F401
    except ImportError:
        raise EdgeGenreError("--write-tags needs mutagen: pip install mutagen "
                             "(or: pip install 'edge-genre[tags]')") from None


def tag_text(label: str) -> str:
    """A model label as it is written into a tag: ``hiphop`` -> ``Hip-Hop``."""
    return DISPLAY.get(label, label)


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def supported(path) -> bool:
    return Path(path).suffix.lower() in TAG_SUFFIXES


def _open(path):
    """mutagen's object for the file (MP3, FLAC, OggVorbis, OggOpus, MP4, ...)."""
    import mutagen

    try:
        f = mutagen.File(path)
    except Exception as exc:  # noqa: BLE001 - mutagen raises many types for bad files
        raise TagError(_message(exc)) from None
    if f is None:
        raise TagError("not a file type with tags that mutagen knows")
    return f


def _message(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _kind(f) -> str:
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3FileType
    from mutagen.mp4 import MP4
    from mutagen.ogg import OggFileType

    if isinstance(f, MP4):
        return "mp4"
    if isinstance(f, ID3FileType):
        return "id3"
    if isinstance(f, (FLAC, OggFileType)):
        return "vorbis"
    raise TagError(f"{type(f).__name__} files are not tagged here")


def read_genres(path) -> list[str]:
    """The genre(s) a file's tags hold now (empty when none)."""
    f = _open(path)
    kind = _kind(f)
    if f.tags is None:
        return []
    if kind == "id3":
        return [g for frame in f.tags.getall("TCON") for g in frame.genres if g.strip()]
    if kind == "mp4":
        return [str(g) for g in f.tags.get(MP4_GENRE, []) if str(g).strip()]
    return [g for g in f.tags.get("genre", []) if g.strip()]


@dataclass(frozen=True)
class Change:
    """What writing ``new`` would do: ``write`` (no genre, or a different one with
    ``overwrite``), ``keep`` (a different genre, kept), ``same`` (already there),
    ``unsupported`` (a type without genre tags)."""

    path: str
    old: str | None
    new: str
    action: str


def plan(path, label: str, overwrite: bool = False) -> Change:
    new = tag_text(label)
    if not supported(path):
        return Change(str(path), None, new, "unsupported")
    old = read_genres(path)
    old_text = "; ".join(old) if old else None
    if not old:
        return Change(str(path), None, new, "write")
    if any(_norm(g) == _norm(new) for g in old) and len(old) == 1:
        return Change(str(path), old_text, new, "same")
    return Change(str(path), old_text, new, "write" if overwrite else "keep")


def _set(f, genre: str) -> None:
    kind = _kind(f)
    if kind == "id3":
        from mutagen.id3 import TCON

        if f.tags is None:
            f.add_tags()
        f.tags.setall("TCON", [TCON(encoding=3, text=[genre])])
        version = f.tags.version[1] if f.tags.version[1] in (3, 4) else 4
        f.save(v2_version=version)
    elif kind == "mp4":
        if f.tags is None:
            f.add_tags()
        f.tags[MP4_GENRE] = [genre]
        f.save()
    else:
        if f.tags is None:
            f.add_tags()
        f.tags["genre"] = [genre]
        f.save()


def write_genre(path, genre: str) -> None:
    """Write ``genre`` (already the tag text) as the file's only genre, atomically (copy, tag,
    fsync, rename); the audio data is not touched."""
    import mutagen

    real = Path(os.path.realpath(path))
    tmp = real.with_name(f".{real.stem}.edge-genre-tmp{real.suffix}")
    try:
        shutil.copy2(real, tmp)
        try:
            f = mutagen.File(tmp)
            if f is None:
                raise TagError("not a file type with tags that mutagen knows")
            _set(f, genre)
        except TagError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise TagError(_message(exc)) from None
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, real)
    except OSError as exc:
        raise TagError(exc.strerror or str(exc)) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(real.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
