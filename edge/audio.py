"""Reading audio files with numpy alone, and making them model-ready (mono, model rate).

WAV (PCM 8/16/24/32-bit, IEEE float, WAVE_FORMAT_EXTENSIBLE) and Sun/NeXT ``.au`` (GTZAN's
original format: mu-law, PCM, float) are parsed here, so a Pi needs no audio library. Other
formats (FLAC, OGG, MP3) are read through ``soundfile`` when it is installed.

Every failure is an ``AudioError`` with a message that names the file and the problem.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.resample import resample
from edge_genre.errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Peak below which a signal is treated as digital silence (about -90 dBFS).
SILENCE_PEAK = 3e-5


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 samples in [-1, 1] of shape (frames, channels), and their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


# ----------------------------------------------------------------------------- decoders


def _pcm_to_float(raw: bytes, bits: int, channels: int, big_endian: bool, signed: bool = True,
                  is_float: bool = False) -> np.ndarray:
    order = ">" if big_endian else "<"
    width = bits // 8
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if is_float:
        data = np.frombuffer(raw, dtype=f"{order}f{width}").astype(np.float32)
    elif bits == 8:
        data = np.frombuffer(raw, dtype=np.uint8 if not signed else np.int8).astype(np.float32)
        data = (data - 128.0) / 128.0 if not signed else data / 128.0
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        if big_endian:
            b = b[:, ::-1]
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif bits in (16, 32):
        data = np.frombuffer(raw, dtype=f"{order}i{width}").astype(np.float32) / float(1 << (bits - 1))
    else:
        raise ValueError(f"{bits}-bit samples are not supported")
    return data.reshape(-1, channels)


def _read_wav(data: bytes) -> Audio:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    big = data[:4] == b"RIFX"
    e = ">" if big else "<"
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack(e + "I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
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
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
        tag = struct.unpack(e + "H", fmt[24:26])[0]
    if channels < 1 or rate < 1:
        raise ValueError("WAV header has no channels or no sample rate")
    if tag == 1:
        samples = _pcm_to_float(payload, bits, channels, big, signed=bits > 8)
    elif tag == 3:
        samples = _pcm_to_float(payload, bits, channels, big, is_float=True)
    elif tag in (6, 7):
        samples = _g711(np.frombuffer(payload, dtype=np.uint8), mu_law=tag == 7).reshape(-1, channels)
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


_AU_ENCODINGS = {2: (8, False), 3: (16, False), 4: (24, False), 5: (32, False), 6: (32, True),
                 7: (64, True)}


def _read_au(data: bytes) -> Audio:
    if len(data) < 24 or data[:4] != b".snd":
        raise ValueError("not a Sun/NeXT .au file")
    offset, size, encoding, rate, channels = struct.unpack(">IIIII", data[4:24])
    if channels < 1 or rate < 1:
        raise ValueError(".au header has no channels or no sample rate")
    payload = data[offset:] if size == 0xFFFFFFFF else data[offset:offset + size]
    if encoding == 1:
        samples = _g711(np.frombuffer(payload, dtype=np.uint8), mu_law=True).reshape(-1, channels)
    elif encoding == 27:
        samples = _g711(np.frombuffer(payload, dtype=np.uint8), mu_law=False).reshape(-1, channels)
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
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return Audio(samples, int(rate))


def decode(data: bytes, name: str = "<audio>") -> Audio:
    """Decode the bytes of an audio file (WAV, AU natively; others via soundfile)."""
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
    except (ValueError, struct.error) as exc:
        raise AudioError(f"{name}: cannot decode audio ({exc})") from None
    if audio.samples.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    if not np.all(np.isfinite(audio.samples)):
        audio = Audio(np.nan_to_num(audio.samples, nan=0.0, posinf=0.0, neginf=0.0), audio.sample_rate)
    return audio


def read(path: str | Path) -> Audio:
    """Read an audio file as it is (all channels, its own rate)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not an audio file") from None
    except OSError as exc:
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
