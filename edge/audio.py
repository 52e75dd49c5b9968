"""Reading audio files with numpy alone, and making them model-ready (mono, model rate).

WAV (PCM 8/16/24/32-bit, IEEE float, WAVE_FORMAT_EXTENSIBLE) and Sun/NeXT ``.au`` (GTZAN's
original format: mu-law, PCM, float) are parsed in numpy (``edge.native_formats``), so a Pi needs
no audio library. Other
formats (FLAC, OGG, MP3) are read through ``soundfile`` when it is installed.

Every failure is an ``AudioError`` with a message that names the file and the problem; no other
exception escapes ``decode`` for any bytes (a seeded header-fuzz test holds it to that).

Hostile headers are bounded: sample rates outside 1 kHz to 384 kHz (``resample.MIN_RATE`` and
``MAX_RATE``) and more than ``MAX_CHANNELS`` channels are refused, sample formats other than
8/16/24/32-bit PCM, 32/64-bit float and G.711 are refused, and what a decoder allocates follows
the bytes actually present (a RIFF chunk size or frame count in a header is never trusted): at
most a few times the file's size for the native formats; formats read through ``soundfile`` are
read block by block rather than into an array sized by the header.

Samples outside [-1, 1] (float files can hold any value, 1e30 or inf) are clipped to it and
NaN/inf become 0, with one warning per file on the ``edge_genre`` logger (stderr in the CLI):
such a file is classified, not refused, but the user hears that something was wrong with it.

Long files: ``open_stream(path)`` reads a file block by block (``AudioStream``: float32 mono
blocks, the file's rate) without holding it in memory: WAV and .au through the same header
parsers as ``decode`` (the samples' byte range is located once, then read ``block_frames`` at a
time), other formats through ``soundfile``'s block reading on the open file (compressed audio is
decoded a block at a time). The blocks, concatenated, are exactly ``to_mono(read(path).samples)``,
and a file that ``decode`` refuses is refused with the same message. ``Classifier.classify_file``
reads this way, so its memory does not follow the file's length. ``open_bytes`` does the same
for a file held in memory (an upload), and can stop at a length limit.

Only regular files are read: a device, a FIFO or a socket named as a file is refused at once
with one line (``/dev/zero`` never ends, a FIFO without a writer never starts).
"""
from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edge_genre.edge.native_formats import (MAX_CHANNELS, _au_layout, _check_channels,  # noqa: F401
                                            _check_rate, _Layout, _Unsupported, _wav_layout)
from edge_genre.edge.resample import resample
from edge_genre.errors import AudioError, AudioTooLong

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Peak below which a signal is treated as digital silence (about -90 dBFS).
SILENCE_PEAK = 3e-5
#: Frames read at once from formats decoded through soundfile.
_SF_BLOCK = 1 << 16
#: Frames per block that ``open_stream`` yields by default (about 3 s at 22.05 kHz).
BLOCK_FRAMES = 1 << 16
#: Most bytes of samples ``open_stream`` reads at once, whatever the frame size.
_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 samples in [-1, 1] of shape (frames, channels), and their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


# ----------------------------------------------------------------------------- decoders


def _bytes_reader(data) -> Callable[[int, int], bytes]:
    view = memoryview(data)
    return lambda pos, n: bytes(view[pos:pos + n])


def _decode_layout(data: bytes, layout: _Layout) -> Audio:
    view = memoryview(data)  # the samples as a view: nothing is copied before conversion
    samples = layout.convert(view[layout.offset:layout.offset + layout.length])
    return Audio(samples, layout.rate)


def _read_wav(data: bytes) -> Audio:
    return _decode_layout(data, _wav_layout(_bytes_reader(data), len(data)))


def _read_au(data: bytes) -> Audio:
    return _decode_layout(data, _au_layout(_bytes_reader(data), len(data)))


def _read_with_soundfile(data: bytes, name: str) -> Audio:
    rate, channels, blocks, close = _soundfile_blocks(io.BytesIO(data), name, _SF_BLOCK)
    try:
        parts = list(blocks)
    finally:
        close()
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), dtype=np.float32)
    return Audio(samples, rate)


def _soundfile_message(exc: Exception) -> str:
    """soundfile's message without the source it names: ours is a BytesIO or an open file,
    whose repr (``<_io.BytesIO object at 0x...>``) means nothing to a user; the caller adds the
    file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"^Error opening <.*?>: ", "", text).strip() or type(exc).__name__


def decode(data: bytes, name: str = "<audio>") -> Audio:
    """Decode the bytes of an audio file (WAV, AU natively; others via soundfile).

    Raises AudioError, and nothing else, for bytes that are not usable audio (``name`` starts
    its message). Samples outside [-1, 1] are clipped and NaN/inf set to 0, with a warning."""
    if len(data) == 0:
        raise AudioError(f"{name}: the file is empty")
    with _audio_errors(name):
        if data[:4] in (b"RIFF", b"RIFX"):
            audio = _read_wav(data)
        elif data[:4] == b".snd":
            audio = _read_au(data)
        else:
            audio = _read_with_soundfile(data, name)
    if audio.samples.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    _sanitize(audio.samples, name)
    return audio


@contextmanager
def _audio_errors(name: str):
    """Every decoding failure as one AudioError that starts with ``name``."""
    try:
        yield
    except AudioError:
        raise
    except _Unsupported as exc:
        raise AudioError(f"{name}: {exc}") from None
    except (ValueError, struct.error) as exc:
        raise AudioError(f"{name}: cannot decode audio ({exc})") from None
    except MemoryError:
        raise AudioError(f"{name}: too large to decode in this machine's memory") from None


def _clean(samples: np.ndarray) -> tuple[int, int]:
    """In place: NaN/inf to 0 and everything else clipped to [-1, 1]; (non-finite, clipped)."""
    lo, hi = samples.min(), samples.max()  # NaN propagates to both
    if np.isfinite(lo) and np.isfinite(hi) and lo >= -1.0 and hi <= 1.0:
        return 0, 0
    nonfinite = int(np.count_nonzero(~np.isfinite(samples)))
    if nonfinite:
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    over = int(np.count_nonzero(samples > 1.0) + np.count_nonzero(samples < -1.0))
    np.clip(samples, -1.0, 1.0, out=samples)
    return nonfinite, over


def _sanitize(samples: np.ndarray, name: str) -> None:
    """In place: NaN/inf to 0 and everything else clipped to [-1, 1], with one warning."""
    _warn_cleaned(name, *_clean(samples))


def _warn_cleaned(name: str, nonfinite: int, over: int) -> None:
    if not (nonfinite or over):
        return
    what = []
    if nonfinite:
        what.append(f"{nonfinite} non-finite sample(s) (NaN/inf) set to 0")
    if over:
        what.append(f"{over} sample(s) outside [-1, 1] clipped")
    log.warning("%s: %s", name, "; ".join(what))


@contextmanager
def _file_errors(path: Path):
    """OSError from opening or reading ``path`` as one AudioError that names it."""
    try:
        yield
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(f"{path}: broken symbolic link (its target does not exist)") from None
        raise AudioError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not an audio file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(f"{path}: symbolic link loop") from None
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read(path: str | Path) -> Audio:
    """Read an audio file as it is (all channels, its own rate)."""
    path = Path(path)
    f, _ = _open_regular(path)
    with f, _file_errors(path):
        data = f.read()
    return decode(data, str(path))


_NOT_REGULAR = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def _check_regular(path: Path, mode: int) -> None:
    """Refuse what is not a regular file: a device or a pipe has no size to bound a read by
    and may never end (``/dev/zero``) or never start (a FIFO with no writer)."""
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _NOT_REGULAR if test(mode)), "not a regular file")
        raise AudioError(f"{path}: is {kind}, not a regular file: save the audio to a file and "
                         "give that")


def _open_regular(path: Path):
    """(binary file object, size) of a regular file; AudioError for anything else, without
    blocking: the path is checked before it is opened (opening a FIFO waits for a writer, opening
    a device can act), and the open file again (the path may have changed in between)."""
    with _file_errors(path):
        _check_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        with _file_errors(path):
            info = os.fstat(fd)
            _check_regular(path, info.st_mode)
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, info.st_size


# ----------------------------------------------------------------------------- block reading


class AudioStream:
    """An audio file read block by block: iterate it for float32 mono blocks at ``sample_rate``.

    Made by ``open_stream``; the header has been read and checked by then (a file that
    ``decode`` refuses is refused there with the same AudioError, or, for formats read through
    soundfile, at the block where decoding fails). Iterating yields 1-D float32 blocks of at
    most ``block_frames`` frames, channels averaged, cleaned as ``decode`` cleans (NaN/inf to 0,
    clipped to [-1, 1], one warning per file once the file is read); their concatenation is
    ``to_mono(read(path).samples)``. Memory: one block, whatever the file's length.

    With ``max_seconds``, audio longer than that is refused with ``AudioTooLong``: by
    ``open_stream``/``open_bytes`` (from a WAV's or .au's size, or by decoding a compressed file
    up to the limit, a block at a time: a small file that expands to hours is never decoded
    whole), and again while iterating.

    Attributes: ``name`` (the path as given), ``sample_rate``, ``channels``, ``frames`` (frames
    yielded so far), ``too_long`` (stopped at ``max_seconds``), ``failed`` (iterating raised an
    AudioError: the file could not be decoded, or was too long). Close it (or use ``with``) to
    close the file; iterating to the end does too.
    """

    def __init__(self, name: str, sample_rate: int, channels: int, blocks: Iterator[np.ndarray],
                 closer: Callable[[], None], max_seconds: float | None = None):
        self.name, self.sample_rate, self.channels = name, int(sample_rate), int(channels)
        self.frames = 0
        self.max_seconds = max_seconds
        self.too_long = self.failed = False
        self._blocks, self._closer = blocks, closer
        self._counts = [0, 0]  # non-finite samples zeroed, samples clipped

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            for block in self._blocks:
                if not len(block):
                    continue
                with _audio_errors(self.name):
                    nonfinite, over = _clean(block)
                self._counts[0] += nonfinite
                self._counts[1] += over
                self.frames += len(block)
                if self.max_seconds is not None:
                    _check_length(self.name, self.frames, self.sample_rate, self.max_seconds)
                yield to_mono(block)
            if self.frames == 0:
                raise AudioError(f"{self.name}: the file holds no audio samples")
            _warn_cleaned(self.name, *self._counts)
        except AudioError as exc:
            self.failed, self.too_long = True, isinstance(exc, AudioTooLong)
            raise
        finally:
            self.close()

    @property
    def duration(self) -> float:
        """Seconds yielded so far (the file's length once it has been read to the end)."""
        return self.frames / self.sample_rate

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_stream(path: str | Path, block_frames: int = BLOCK_FRAMES,
                max_seconds: float | None = None) -> AudioStream:
    """Open an audio file for reading block by block (see ``AudioStream``).

    Raises AudioError, as ``read`` does, for a file that cannot be opened or whose header is
    refused, and for anything but a regular file (a device, a FIFO, a socket: one line, at once,
    never a read that does not end). ``max_seconds``: see ``AudioStream``."""
    if block_frames < 1:
        raise ValueError("block_frames must be at least 1")
    path = Path(path)
    f, size = _open_regular(path)
    try:
        return _stream_of(f, str(path), path, size, block_frames, max_seconds)
    except BaseException:
        f.close()
        raise


def open_bytes(data: bytes, name: str = "<audio>", block_frames: int = BLOCK_FRAMES,
               max_seconds: float | None = None) -> AudioStream:
    """``open_stream`` for the bytes of a file held in memory (an upload): the samples are
    decoded a block at a time, so what a compressed file expands to is never held whole, and
    with ``max_seconds`` decoding stops as soon as the audio passes it."""
    if block_frames < 1:
        raise ValueError("block_frames must be at least 1")
    if len(data) == 0:
        raise AudioError(f"{name}: the file is empty")
    return _stream_of(io.BytesIO(data), name, Path(name), len(data), block_frames, max_seconds)


def _stream_of(f, name: str, path: Path, size: int, block_frames: int,
               max_seconds: float | None) -> AudioStream:
    if size == 0:
        raise AudioError(f"{name}: the file is empty")
    with _file_errors(path):
        magic = f.read(4)
    if magic in (b"RIFF", b"RIFX", b".snd"):
        read_at = partial(_read_at, f, path)
        with _audio_errors(name):
            layout = (_wav_layout if magic != b".snd" else _au_layout)(read_at, size)
        if layout.length < layout.frame_bytes:
            raise AudioError(f"{name}: the file holds no audio samples")
        if max_seconds is not None:  # the samples are all there: their length is known
            _check_length(name, layout.length // layout.frame_bytes, layout.rate, max_seconds)
        blocks = _native_blocks(f, path, layout, block_frames)
        return AudioStream(name, layout.rate, layout.channels, blocks, f.close, max_seconds)
    if max_seconds is not None:
        # A compressed file's length is known only by decoding it (a header's frame count is
        # not trusted): decode and count, a block at a time, and stop as soon as it is too long,
        # so that refusing a bomb costs the decoding of max_seconds, not the front-end and model.
        f.seek(0)
        rate, _, blocks, close = _soundfile_blocks(f, name, _SF_BLOCK)
        try:
            frames = 0
            for block in blocks:
                frames += len(block)
                _check_length(name, frames, rate, max_seconds)
        finally:
            close()
        f.seek(0)
    return _soundfile_stream(f, name, block_frames, max_seconds)


def _check_length(name: str, frames: int, rate: int, max_seconds: float) -> None:
    if frames > int(max_seconds * rate):  # duration > max_seconds
        raise AudioTooLong(f"{name}: more than {max_seconds:g} s of audio, longer than the limit")


def _read_at(f, path: Path, pos: int, n: int) -> bytes:
    with _file_errors(path):
        f.seek(pos)
        return f.read(n)


def _native_blocks(f, path: Path, layout: _Layout, block_frames: int) -> Iterator[np.ndarray]:
    """The samples of a WAV or .au file, ``block_frames`` frames (at most ``_BLOCK_BYTES``
    bytes) at a time."""
    frames = max(1, min(block_frames, _BLOCK_BYTES // layout.frame_bytes))
    step = frames * layout.frame_bytes
    pos, end = layout.offset, layout.offset + layout.length
    with _file_errors(path):
        f.seek(pos)
    while pos < end:
        with _file_errors(path):
            raw = f.read(min(step, end - pos))
        if not raw:  # the file shrank while being read: say how much of it was heard
            done = (pos - layout.offset) // layout.frame_bytes / layout.rate
            whole = layout.length // layout.frame_bytes / layout.rate
            log.warning("%s: the file ended while it was being read (truncated?): only the "
                        "first %.1f s of its %.1f s were read", path, done, whole)
            break
        pos += len(raw)
        yield layout.convert(raw)


def _soundfile_stream(f, name: str, block_frames: int,
                      max_seconds: float | None = None) -> AudioStream:
    f.seek(0)
    rate, channels, blocks, close_sf = _soundfile_blocks(f, name, block_frames)

    def close() -> None:
        try:
            close_sf()
        finally:
            f.close()

    return AudioStream(name, rate, channels, blocks, close, max_seconds)


def _soundfile_blocks(source, name: str, block_frames: int):
    """Open ``source`` (a file object) with soundfile and check its header: (rate, channels,
    an iterator of (frames, channels) float32 blocks of at most ``block_frames`` frames, close).
    Block by block, because the frame count in a header is not trusted to size an array. Errors
    are AudioErrors that start with ``name``."""
    try:
        import soundfile
    except ImportError:
        raise AudioError(f"{name}: this format needs the 'soundfile' package "
                         "(pip install soundfile); WAV and .au need nothing") from None
    with _audio_errors(name):
        try:
            sf = soundfile.SoundFile(source)
        except MemoryError:
            raise
        except Exception as exc:  # soundfile raises several types for corrupt input
            raise ValueError(_soundfile_message(exc)) from None
        try:
            rate, channels = int(sf.samplerate), int(sf.channels)
            _check_channels(channels)
            _check_rate(rate)
        except BaseException:
            sf.close()
            raise

    def blocks() -> Iterator[np.ndarray]:
        frames = max(1, min(block_frames, _SF_BLOCK))
        while True:
            with _audio_errors(name):
                try:
                    block = sf.read(frames, dtype="float32", always_2d=True)
                except MemoryError:
                    raise
                except Exception as exc:  # noqa: BLE001 - corrupt input, several types
                    raise ValueError(_soundfile_message(exc)) from None
            if not len(block):
                return
            yield block

    return rate, channels, blocks(), sf.close


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of (frames, channels) audio; 1-D input is returned as it is."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def prepare(audio: Audio, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate``."""
    return resample(to_mono(audio.samples), audio.sample_rate, sample_rate).astype(np.float32)


def load(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a file and return mono float32 samples at ``sample_rate``."""
    return prepare(read(path), sample_rate)


def is_silent(y: np.ndarray, peak: float = SILENCE_PEAK) -> bool:
    return y.size == 0 or float(np.max(np.abs(y))) < peak


def rms_dbfs(y: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    if y.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
