"""Reading audio files with numpy alone, and making them model-ready (mono, model rate).

WAV (PCM 8/16/24/32-bit, IEEE float, WAVE_FORMAT_EXTENSIBLE) and Sun/NeXT ``.au`` (GTZAN's
original format: mu-law, PCM, float) are parsed here, so a Pi needs no audio library. Other
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
reads this way, so its memory does not follow the file's length.
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

from edge_genre.edge.resample import check_rate, resample
from edge_genre.errors import AudioError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Peak below which a signal is treated as digital silence (about -90 dBFS).
SILENCE_PEAK = 3e-5
#: Most channels a file may declare (libsndfile's limit too).
MAX_CHANNELS = 1024
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


class _Unsupported(ValueError):
    """A header that declares something this decoder refuses: the message stands on its own."""


def _check_channels(channels: int) -> None:
    if channels < 1:
        raise ValueError("the header declares no channels")
    if channels > MAX_CHANNELS:
        raise _Unsupported(f"{channels} channels declared; at most {MAX_CHANNELS} are supported")


def _pcm_to_float(raw, bits: int, channels: int, big_endian: bool, signed: bool = True,
                  is_float: bool = False) -> np.ndarray:
    """(frames, channels) float32 from whole frames of ``raw``; a partial last frame is dropped."""
    if is_float and bits not in (32, 64):
        raise _Unsupported(f"{bits}-bit float samples are not supported: 32 and 64-bit are")
    if not is_float and bits not in (8, 16, 24, 32):
        raise _Unsupported(f"{bits}-bit PCM samples are not supported: 8, 16, 24 and 32-bit are")
    _check_channels(channels)
    order = ">" if big_endian else "<"
    width = bits // 8
    count = (len(raw) // (width * channels)) * channels  # samples in whole frames
    if is_float:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, then clipped
            data = np.frombuffer(raw, dtype=f"{order}f{width}", count=count).astype(np.float32)
    elif bits == 8:
        data = np.frombuffer(raw, dtype=np.int8 if signed else np.uint8, count=count).astype(np.float32)
        if not signed:
            data -= 128.0
        data *= 1.0 / 128.0
    elif bits == 24:
        # Each sample into the top three bytes of an int32, then an arithmetic shift: sign-extended.
        b = np.frombuffer(raw, dtype=np.uint8, count=3 * count).reshape(-1, 3)
        wide = np.zeros((count, 4), dtype=np.uint8)
        wide[:, 1:] = b[:, ::-1] if big_endian else b
        ints = wide.view("<i4").reshape(-1)
        ints >>= 8
        data = ints.astype(np.float32)
        data *= 1.0 / float(1 << 23)
    else:  # 16 or 32
        data = np.frombuffer(raw, dtype=f"{order}i{width}", count=count).astype(np.float32)
        data *= 1.0 / float(1 << (bits - 1))
    return data.reshape(-1, channels)


def _codes_to_frames(raw, channels: int, mu_law: bool) -> np.ndarray:
    """G.711 bytes (one per sample) to (frames, channels) float32."""
    _check_channels(channels)
    count = (len(raw) // channels) * channels
    codes = np.frombuffer(raw, dtype=np.uint8, count=count)
    return (_MU_LAW if mu_law else _A_LAW)[codes].reshape(-1, channels)


@dataclass(frozen=True)
class _Layout:
    """Where a WAV or .au file's samples lie and how to decode them.

    ``offset``/``length``: the byte range of the samples actually present (a size in the header
    is clamped to the file); ``convert`` turns whole frames of those bytes into (frames,
    channels) float32 (a partial last frame is dropped)."""

    rate: int
    channels: int
    offset: int
    length: int
    frame_bytes: int
    convert: Callable


def _bytes_reader(data) -> Callable[[int, int], bytes]:
    view = memoryview(data)
    return lambda pos, n: bytes(view[pos:pos + n])


def _pcm_layout(rate, channels, offset, length, bits, big_endian, signed=True, is_float=False):
    convert = partial(_pcm_to_float, bits=bits, channels=channels, big_endian=big_endian,
                      signed=signed, is_float=is_float)
    convert(b"")  # the bit depth and channel count are checked before any sample is read
    return _Layout(int(rate), channels, offset, length, channels * (bits // 8), convert)


def _codes_layout(rate, channels, offset, length, mu_law):
    convert = partial(_codes_to_frames, channels=channels, mu_law=mu_law)
    convert(b"")
    return _Layout(int(rate), channels, offset, length, channels, convert)


def _wav_layout(read: Callable[[int, int], bytes], size: int) -> _Layout:
    """Parse a RIFF/WAVE header through ``read(pos, n)`` (bytes, shorter at the end of a file of
    ``size`` bytes): only the chunk headers and the format chunk are read."""
    head = read(0, 12)
    if size < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    big = head[:4] == b"RIFX"
    e = ">" if big else "<"
    # Chunk bodies are never read whole: a claimed size never copies or allocates.
    pos, fmt, fmt_len, payload = 12, None, 0, None
    while pos + 8 <= size:
        header = read(pos, 8)
        cid = header[:4]
        claimed = struct.unpack(e + "I", header[4:8])[0]
        present = min(claimed, size - pos - 8)  # a truncated file keeps what is there
        if cid == b"fmt ":
            fmt, fmt_len = read(pos + 8, min(present, 64)), present
        elif cid == b"data":
            payload = (pos + 8, present)
            break
        pos += 8 + claimed + (claimed & 1)
    if fmt is None or fmt_len < 16:
        raise ValueError("WAV file has no format chunk")
    if payload is None:
        raise ValueError("WAV file has no data chunk")
    tag, channels, rate, _, _, bits = struct.unpack(e + "HHIIHH", fmt[:16])
    if tag == 0xFFFE and fmt_len >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
        tag = struct.unpack(e + "H", fmt[24:26])[0]
    if channels < 1 or rate < 1:
        raise ValueError("WAV header has no channels or no sample rate")
    _check_rate(rate)
    offset, length = payload
    if tag == 1:
        return _pcm_layout(rate, channels, offset, length, bits, big, signed=bits > 8)
    if tag == 3:
        return _pcm_layout(rate, channels, offset, length, bits, big, is_float=True)
    if tag in (6, 7):
        return _codes_layout(rate, channels, offset, length, mu_law=tag == 7)
    raise ValueError(f"WAV encoding {tag} is not supported (PCM, float, A-law and mu-law are)")


def _decode_layout(data: bytes, layout: _Layout) -> Audio:
    view = memoryview(data)  # the samples as a view: nothing is copied before conversion
    samples = layout.convert(view[layout.offset:layout.offset + layout.length])
    return Audio(samples, layout.rate)


def _read_wav(data: bytes) -> Audio:
    return _decode_layout(data, _wav_layout(_bytes_reader(data), len(data)))


def _g711(codes: np.ndarray, mu_law: bool) -> np.ndarray:
    codes = codes.astype(np.int32)
    if mu_law:
        u = ~codes & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = ((mantissa << 3) + 0x84) << exponent
        value = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    else:
        a = codes ^ 0x55
        sign = a & 0x80
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
        value = np.where(sign != 0, magnitude, -magnitude)
    return value.astype(np.float32) / 32768.0


#: Every G.711 code decoded once: decoding a file is then one table lookup per byte.
_MU_LAW = _g711(np.arange(256), mu_law=True)
_A_LAW = _g711(np.arange(256), mu_law=False)


def _check_rate(rate: int) -> None:
    """The resampler's accepted range (``resample.check_rate``), as a header refusal."""
    try:
        check_rate(rate)
    except ValueError as exc:
        raise _Unsupported(str(exc)) from None


_AU_ENCODINGS = {2: (8, False), 3: (16, False), 4: (24, False), 5: (32, False), 6: (32, True),
                 7: (64, True)}


def _au_layout(read: Callable[[int, int], bytes], size: int) -> _Layout:
    """Parse a Sun/NeXT .au header through ``read(pos, n)`` (see ``_wav_layout``)."""
    head = read(0, 24)
    if size < 24 or head[:4] != b".snd":
        raise ValueError("not a Sun/NeXT .au file")
    offset, length, encoding, rate, channels = struct.unpack(">IIIII", head[4:24])
    if channels < 1 or rate < 1:
        raise ValueError(".au header has no channels or no sample rate")
    _check_rate(rate)
    start = min(offset, size)
    end = size if length == 0xFFFFFFFF else min(size, offset + length)
    offset, length = start, max(0, end - start)
    if encoding == 1:
        return _codes_layout(rate, channels, offset, length, mu_law=True)
    if encoding == 27:
        return _codes_layout(rate, channels, offset, length, mu_law=False)
    if encoding in _AU_ENCODINGS:
        bits, is_float = _AU_ENCODINGS[encoding]
        return _pcm_layout(rate, channels, offset, length, bits, True, is_float=is_float)
    raise ValueError(f".au encoding {encoding} is not supported")


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
    with _file_errors(path):
        data = path.read_bytes()
    return decode(data, str(path))


# ----------------------------------------------------------------------------- block reading


class AudioStream:
    """An audio file read block by block: iterate it for float32 mono blocks at ``sample_rate``.

    Made by ``open_stream``; the header has been read and checked by then (a file that
    ``decode`` refuses is refused there with the same AudioError, or, for formats read through
    soundfile, at the block where decoding fails). Iterating yields 1-D float32 blocks of at
    most ``block_frames`` frames, channels averaged, cleaned as ``decode`` cleans (NaN/inf to 0,
    clipped to [-1, 1], one warning per file once the file is read); their concatenation is
    ``to_mono(read(path).samples)``. Memory: one block, whatever the file's length.

    Attributes: ``name`` (the path as given), ``sample_rate``, ``channels``, ``frames`` (frames
    yielded so far). Close it (or use ``with``) to close the file; iterating to the end does too.
    """

    def __init__(self, name: str, sample_rate: int, channels: int, blocks: Iterator[np.ndarray],
                 closer: Callable[[], None]):
        self.name, self.sample_rate, self.channels = name, int(sample_rate), int(channels)
        self.frames = 0
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
                yield to_mono(block)
            if self.frames == 0:
                raise AudioError(f"{self.name}: the file holds no audio samples")
            _warn_cleaned(self.name, *self._counts)
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


def open_stream(path: str | Path, block_frames: int = BLOCK_FRAMES) -> AudioStream:
    """Open an audio file for reading block by block (see ``AudioStream``).

    Raises AudioError, as ``read`` does, for a file that cannot be opened or whose header is
    refused."""
    if block_frames < 1:
        raise ValueError("block_frames must be at least 1")
    path = Path(path)
    name = str(path)
    with _file_errors(path):
        f = open(path, "rb")
    try:
        with _file_errors(path):
            info = os.fstat(f.fileno())
            regular = stat.S_ISREG(info.st_mode)
            magic = f.read(4) if regular else b""
        if not regular:  # a pipe or a device: no size to locate samples by; read it whole
            with _file_errors(path):
                data = f.read()
            audio = decode(data, name)
            f.close()
            return AudioStream(name, audio.sample_rate, audio.samples.shape[1],
                               _array_blocks(audio.samples, block_frames), lambda: None)
        size = info.st_size
        if size == 0:
            raise AudioError(f"{name}: the file is empty")
        if magic in (b"RIFF", b"RIFX", b".snd"):
            read_at = partial(_read_at, f, path)
            with _audio_errors(name):
                layout = (_wav_layout if magic != b".snd" else _au_layout)(read_at, size)
            if layout.length < layout.frame_bytes:
                raise AudioError(f"{name}: the file holds no audio samples")
            blocks = _native_blocks(f, path, layout, block_frames)
            return AudioStream(name, layout.rate, layout.channels, blocks, f.close)
        return _soundfile_stream(f, name, block_frames)
    except BaseException:
        f.close()
        raise


def _read_at(f, path: Path, pos: int, n: int) -> bytes:
    with _file_errors(path):
        f.seek(pos)
        return f.read(n)


def _array_blocks(samples: np.ndarray, block_frames: int) -> Iterator[np.ndarray]:
    for i in range(0, len(samples), block_frames):
        yield samples[i:i + block_frames]


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
        if not raw:  # the file shrank while being read
            break
        pos += len(raw)
        yield layout.convert(raw)


def _soundfile_stream(f, name: str, block_frames: int) -> AudioStream:
    f.seek(0)
    rate, channels, blocks, close_sf = _soundfile_blocks(f, name, block_frames)

    def close() -> None:
        try:
            close_sf()
        finally:
            f.close()

    return AudioStream(name, rate, channels, blocks, close)


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
