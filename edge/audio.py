"""Reading audio files with numpy alone, and making them model-ready (mono, model rate).

WAV (PCM 8/16/24/32-bit, IEEE float, WAVE_FORMAT_EXTENSIBLE) and Sun/NeXT ``.au`` (GTZAN's
original format: mu-law, PCM, float) are parsed here, so a Pi needs no audio library. Other
formats (FLAC, OGG, MP3) are read through ``soundfile`` when it is installed.

Every failure is an ``AudioError`` with a message that names the file and the problem; no other
exception escapes ``decode`` for any bytes (a seeded header-fuzz test holds it to that).

Hostile headers are bounded: sample rates outside 1 kHz to 384 kHz (``resample.MIN_RATE`` and
``MAX_RATE``) and more than ``MAX_CHANNELS`` channels are refused, sample formats other than
8/16/24/32-bit PCM, 32/64-bit float and G.711 are refused, and what a decoder allocates follows
the bytes actually present (a chunk size or frame count in a header is never trusted): at most
a few times the file's size for the native formats; formats read through ``soundfile`` are
read block by block rather than into an array sized by the header.

Samples outside [-1, 1] (float files can hold any value, 1e30 or inf) are clipped to it and
NaN/inf become 0, with one warning per file on the ``edge_genre`` logger (stderr in the CLI):
such a file is classified, not refused, but the user hears that something was wrong with it.
"""
from __future__ import annotations

import errno
import io
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.resample import MAX_RATE, MIN_RATE, resample
from edge_genre.errors import AudioError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Peak below which a signal is treated as digital silence (about -90 dBFS).
SILENCE_PEAK = 3e-5
#: Most channels a file may declare (libsndfile's limit too).
MAX_CHANNELS = 1024
#: Frames read at once from formats decoded through soundfile.
_SF_BLOCK = 1 << 16


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


def _read_wav(data: bytes) -> Audio:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    big = data[:4] == b"RIFX"
    e = ">" if big else "<"
    view = memoryview(data)  # chunk bodies as views: a claimed size never copies or allocates
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid = bytes(view[pos:pos + 4])
        size = struct.unpack(e + "I", view[pos + 4:pos + 8])[0]
        body = view[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body  # a truncated file keeps what is there
            break
        pos += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise ValueError("WAV file has no format chunk")
    if payload is None:
        raise ValueError("WAV file has no data chunk")
    tag, channels, rate, _, _, bits = struct.unpack(e + "HHIIHH", fmt[:16])
    fmt = bytes(fmt)
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
        tag = struct.unpack(e + "H", fmt[24:26])[0]
    if channels < 1 or rate < 1:
        raise ValueError("WAV header has no channels or no sample rate")
    _check_rate(rate)
    if tag == 1:
        samples = _pcm_to_float(payload, bits, channels, big, signed=bits > 8)
    elif tag == 3:
        samples = _pcm_to_float(payload, bits, channels, big, is_float=True)
    elif tag in (6, 7):
        samples = _codes_to_frames(payload, channels, mu_law=tag == 7)
    else:
        raise ValueError(f"WAV encoding {tag} is not supported (PCM, float, A-law and mu-law are)")
    return Audio(samples, int(rate))


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
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _Unsupported(f"sample rate {rate} Hz is outside the accepted range, "
                           f"{MIN_RATE / 1000:g} kHz to {MAX_RATE / 1000:g} kHz")


_AU_ENCODINGS = {2: (8, False), 3: (16, False), 4: (24, False), 5: (32, False), 6: (32, True),
                 7: (64, True)}


def _read_au(data: bytes) -> Audio:
    if len(data) < 24 or data[:4] != b".snd":
        raise ValueError("not a Sun/NeXT .au file")
    offset, size, encoding, rate, channels = struct.unpack(">IIIII", data[4:24])
    if channels < 1 or rate < 1:
        raise ValueError(".au header has no channels or no sample rate")
    _check_rate(rate)
    view = memoryview(data)
    payload = view[offset:] if size == 0xFFFFFFFF else view[offset:offset + size]
    if encoding == 1:
        samples = _codes_to_frames(payload, channels, mu_law=True)
    elif encoding == 27:
        samples = _codes_to_frames(payload, channels, mu_law=False)
    elif encoding in _AU_ENCODINGS:
        bits, is_float = _AU_ENCODINGS[encoding]
        samples = _pcm_to_float(payload, bits, channels, big_endian=True, is_float=is_float)
    else:
        raise ValueError(f".au encoding {encoding} is not supported")
    return Audio(samples, int(rate))


def _read_with_soundfile(data: bytes, name: str) -> Audio:
    try:
        import soundfile
    except ImportError:
        raise AudioError(f"{name}: this format needs the 'soundfile' package "
                         "(pip install soundfile); WAV and .au need nothing") from None
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            _check_channels(channels)
            _check_rate(rate)
            # Block by block: the frame count in a header is not trusted to size an array.
            parts = []
            while True:
                block = f.read(_SF_BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    break
                parts.append(block)
    except (_Unsupported, MemoryError):
        raise
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise ValueError(_soundfile_message(exc)) from None
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), dtype=np.float32)
    return Audio(samples, rate)


def _soundfile_message(exc: Exception) -> str:
    """soundfile's message without the source it names: ours is a BytesIO, whose repr
    (``<_io.BytesIO object at 0x...>``) means nothing to a user; the caller adds the file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"^Error opening <[^>]*>: ", "", text).strip() or type(exc).__name__


def decode(data: bytes, name: str = "<audio>") -> Audio:
    """Decode the bytes of an audio file (WAV, AU natively; others via soundfile).

    Raises AudioError, and nothing else, for bytes that are not usable audio (``name`` starts
    its message). Samples outside [-1, 1] are clipped and NaN/inf set to 0, with a warning."""
    if len(data) == 0:
        raise AudioError(f"{name}: the file is empty")
    try:
        if data[:4] in (b"RIFF", b"RIFX"):
            audio = _read_wav(data)
        elif data[:4] == b".snd":
            audio = _read_au(data)
        else:
            audio = _read_with_soundfile(data, name)
    except AudioError:
        raise
    except _Unsupported as exc:
        raise AudioError(f"{name}: {exc}") from None
    except (ValueError, struct.error) as exc:
        raise AudioError(f"{name}: cannot decode audio ({exc})") from None
    except MemoryError:
        raise AudioError(f"{name}: too large to decode in this machine's memory") from None
    if audio.samples.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    _sanitize(audio.samples, name)
    return audio


def _sanitize(samples: np.ndarray, name: str) -> None:
    """In place: NaN/inf to 0 and everything else clipped to [-1, 1], with one warning."""
    lo, hi = samples.min(), samples.max()  # NaN propagates to both
    if np.isfinite(lo) and np.isfinite(hi) and lo >= -1.0 and hi <= 1.0:
        return
    nonfinite = int(np.count_nonzero(~np.isfinite(samples)))
    if nonfinite:
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    over = int(np.count_nonzero(samples > 1.0) + np.count_nonzero(samples < -1.0))
    np.clip(samples, -1.0, 1.0, out=samples)
    what = []
    if nonfinite:
        what.append(f"{nonfinite} non-finite sample(s) (NaN/inf) set to 0")
    if over:
        what.append(f"{over} sample(s) outside [-1, 1] clipped")
    log.warning("%s: %s", name, "; ".join(what))


def read(path: str | Path) -> Audio:
    """Read an audio file as it is (all channels, its own rate)."""
    path = Path(path)
    try:
        data = path.read_bytes()
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
    return decode(data, str(path))


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
