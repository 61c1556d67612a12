"""G.711 companding (ITU-T G.711): μ-law and A-law, 16-bit linear PCM <-> 8-bit codes.

Both laws approximate a logarithm with eight segments of sixteen steps each; the
step doubles from one segment to the next, so quiet sounds keep their detail and
loud ones their range. The codes on the wire are the transmitted octets: μ-law
inverts all bits, A-law inverts the even bits (XOR 0x55), as G.711 specifies.

Encoding works on the 16-bit scale: μ-law uses the top 14 bits (clipped at
32635 before the bias of 132 is added), A-law the top 13 bits. Decoding maps a
code to the middle of its quantization interval on the 16-bit scale. Everything
is vectorized numpy; decoding is a lookup in a 256-entry table, encoding in a
65536-entry one (built once from the segment arithmetic).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]

_ULAW_BIAS = 0x84  # 132: shifts every magnitude so the segment is the top set bit
_ULAW_CLIP = 32635  # 32767 - 132: the largest magnitude that still fits after the bias


def _as_int32(samples: npt.ArrayLike) -> npt.NDArray[np.int32]:
    return np.asarray(samples).astype(np.int32, copy=False)


def _top_bit(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Index of the highest set bit of each positive value (0 for 0 or 1)."""
    safe = np.maximum(values, 1)
    return np.frexp(safe.astype(np.float64))[1].astype(np.int32) - 1


def _ulaw_codes(samples: npt.ArrayLike) -> Codes:
    """μ-law octets computed segment by segment (builds the encoding table)."""
    x = _as_int32(samples)
    sign = np.where(x < 0, 0x80, 0x00).astype(np.int32)
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    # With the bias, magnitude >= 132 > 2**7: the segment is (top bit - 7), 0..7.
    segment = np.clip(_top_bit(magnitude) - 7, 0, 7)
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    code = ~(sign | (segment << 4) | mantissa) & 0xFF
    return code.astype(np.uint8)


def _ulaw_decode_table() -> Int16Array:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_codes(samples: npt.ArrayLike) -> Codes:
    """A-law octets computed segment by segment (builds the encoding table)."""
    x = _as_int32(samples) >> 3  # A-law quantizes 13-bit samples
    positive = x >= 0
    mask = np.where(positive, 0xD5, 0x55).astype(np.int32)  # sign bit set for positive
    magnitude = np.where(positive, x, -x - 1)
    # Segment 0 and 1 share the step of 2 (on the 13-bit scale); from segment 1 up
    # the segment is the top bit of the magnitude minus 4; past segment 7 it clips.
    segment = np.clip(_top_bit(magnitude) - 4, 0, 8)
    segment = np.where(magnitude < 32, 0, segment)
    shift = np.where(segment < 2, 1, segment)
    mantissa = (magnitude >> shift) & 0x0F
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | mantissa)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _alaw_decode_table() -> Int16Array:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    mantissa = (code & 0x0F) << 4
    magnitude = np.where(
        segment == 0,
        mantissa + 8,
        (mantissa + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_TABLE = _ulaw_decode_table()
_ALAW_TABLE = _alaw_decode_table()
#: The code of every 16-bit sample (index: sample + 32768): encoding is one lookup.
_ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32)
_ULAW_CODES = _ulaw_codes(_ALL_SAMPLES)
_ALAW_CODES = _alaw_codes(_ALL_SAMPLES)


#: The same codes indexed by an int16 sample's bits read as uint16 (0..32767, then
#: -32768..-1): an int16 array is encoded without widening or clipping (the common case,
#: 20 ms at a time, where numpy's per-call overhead is most of the work).
_ULAW_BY_BITS = np.roll(_ULAW_CODES, -32768)
_ALAW_BY_BITS = np.roll(_ALAW_CODES, -32768)


def _indices(samples: npt.ArrayLike) -> npt.NDArray[np.int32]:
    return np.clip(_as_int32(samples), -32768, 32767) + 32768


def ulaw_encode(samples: npt.ArrayLike) -> Codes:
    """Encode 16-bit linear samples to μ-law octets (0xFF is +0, 0x7F is -0); beyond
    16 bits they clip."""
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16:
        return _ULAW_BY_BITS[samples.view(np.uint16)]
    return _ULAW_CODES[_indices(samples)]


def alaw_encode(samples: npt.ArrayLike) -> Codes:
    """Encode 16-bit linear samples to A-law octets (even bits inverted, as sent);
    beyond 16 bits they clip."""
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16:
        return _ALAW_BY_BITS[samples.view(np.uint16)]
    return _ALAW_CODES[_indices(samples)]


def _codes(data: bytes | npt.ArrayLike) -> npt.NDArray[np.uint8] | npt.NDArray[np.intp]:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)  # uint8 indexes a 256 table as it is
    return np.asarray(data).astype(np.intp) & 0xFF


def ulaw_decode(data: bytes | npt.ArrayLike) -> Int16Array:
    """Decode μ-law octets (bytes or an array of codes) to 16-bit linear samples."""
    return _ULAW_TABLE[_codes(data)]


def alaw_decode(data: bytes | npt.ArrayLike) -> Int16Array:
    """Decode A-law octets (bytes or an array of codes) to 16-bit linear samples."""
    return _ALAW_TABLE[_codes(data)]
