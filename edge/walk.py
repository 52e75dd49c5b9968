"""The folder walk: the audio files under the paths given, streamed (``predict``, ``tag``).

One rule for every command that takes folders: ``walk``'s docstring. ``train.data`` lists a
dataset's genre folders by its own rules but shares the suffix test (``is_audio_name``).
Nothing heavy at import: the decoder's formats are asked for inside ``library_suffixes``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: Container formats that the decoder (libsndfile) may or may not read.
MAYBE_SUFFIXES = (".m4a", ".aac")


def is_audio_name(name: str, suffixes: tuple[str, ...]) -> bool:
    """Whether a file name's suffix, in any case, is one of ``suffixes`` (lower case)."""
    return os.path.splitext(name)[1].lower() in suffixes


def library_suffixes() -> tuple[str, ...]:
    """Audio file suffixes the walk takes: what ``edge.audio`` reads, and .m4a/.aac when the
    decoder (libsndfile, through soundfile) can read MPEG-4 audio."""
    from edge_genre.edge.audio import AUDIO_EXTENSIONS

    out = tuple(AUDIO_EXTENSIONS)
    try:
        import soundfile

        formats = {k.upper() for k in soundfile.available_formats()}
    except Exception:  # noqa: BLE001 - no soundfile, no libsndfile
        formats = set()
    if formats & {"MP4", "M4A", "AAC"}:
        out += MAYBE_SUFFIXES
    return out


@dataclass
class WalkReport:
    """What the walk met besides tracks."""

    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    undecodable: int = 0  # .m4a/.aac files that this decoder cannot read (left out)


def walk(paths: Iterable[str], suffixes: tuple[str, ...] | None = None,
         report: WalkReport | None = None) -> Iterator[str]:
    """The audio files under ``paths``: the one folder walk, of ``tag`` and ``predict``.

    Streamed: one folder listing at a time, files yielded as they are found.

    - A path given that is not a folder is taken as it is (whatever its name); a folder given,
      or a link to one, is walked.
    - In a folder, names are sorted (code point order) and walked depth first, so the files
      come in the order of their sorted paths. Names starting with "." are skipped: hidden
      files and folders, AppleDouble "._x.mp3" files, our own temporary files.
    - A file is taken when its suffix, in any case, is one of ``suffixes`` (default
      ``library_suffixes()``). A symbolic link to a file is taken; a broken one (dangling, or a
      loop) too, so that the reader says why it cannot be read; a link to a folder is not
      followed (no loops). FIFOs and other special files are not taken (reading one could
      block).
    - Problems are not raised but added to ``report``, in the order met: a path that does not
      exist, a folder that cannot be listed, a folder given that holds no audio files; .m4a and
      .aac files that this decoder cannot read are counted in ``report.undecodable``.
    """
    suffixes = tuple(s.lower() for s in (suffixes or library_suffixes()))
    report = report if report is not None else WalkReport()
    for raw in paths:
        raw = os.fspath(raw)
        if os.path.isdir(raw):
            found = 0
            for p in _walk_dir(raw, suffixes, report):
                found += 1
                yield p
            if not found:
                report.problems.append((raw, "folder holds no audio files"))
        elif os.path.exists(raw) or os.path.islink(raw):
            yield raw
        else:
            report.problems.append((raw, "no such file or folder"))


def _walk_dir(top: str, suffixes: tuple[str, ...], report: WalkReport) -> Iterator[str]:
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        report.problems.append((top, f"cannot list folder ({exc.strerror or exc})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk_dir(entry.path, suffixes, report)
                continue
            if not is_audio_name(entry.name, suffixes):
                if is_audio_name(entry.name, MAYBE_SUFFIXES):
                    report.undecodable += 1
                continue
            if entry.is_symlink():
                # os.path.exists is False for a dangling link and for a loop (ELOOP), which
                # DirEntry.is_file() raises on.
                if not os.path.exists(entry.path) or os.path.isfile(entry.path):
                    yield entry.path
            elif entry.is_file(follow_symlinks=False):
                yield entry.path
        except OSError:
            continue
