"""WAV and Sun/NeXT .au in numpy: their headers, and their samples as float32 frames.

``edge.audio`` reads files with these; they are apart so that it stays a readable size. A header
is parsed through a ``read(pos, n)`` function (bytes of a file in memory or on disk), and only its
chunk headers and format chunk are read: a size claimed in a header never allocates or copies
(what is present is used). Sample formats: 8/16/24/32-bit PCM, 32/64-bit float, G.711 (A-law,
mu-law: 8-bit codes). Refusals are ``_Unsupported`` (the message stands on its own) or
``ValueError``; ``edge.audio`` turns them into AudioErrors that name the file.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from edge_genre.edge.resample import check_rate

#: Most channels a file may declare (libsndfile's limit too).
MAX_CHANNELS = 1024

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
        if bits != 8:  # G.711 codes are bytes: any other width is a mislabelled file
            raise _Unsupported(f"{'mu' if tag == 7 else 'A'}-law WAV declares {bits}-bit samples; "
                               "G.711 samples are 8-bit")
        return _codes_layout(rate, channels, offset, length, mu_law=tag == 7)
    raise ValueError(f"WAV encoding {tag} is not supported (PCM, float, A-law and mu-law are)")


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
