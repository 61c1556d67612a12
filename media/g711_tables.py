"""Byte-to-byte G.711 μ-law <-> A-law conversion tables, for `bytes.translate`.

Relaying PCMU to PCMA needs no audio arithmetic per packet: each 8-bit code word of one
law maps to exactly one code word of the other, so a 256-byte table and `bytes.translate`
convert a 160-byte payload in well under a microsecond. The tables are computed here
once, with plain integer code, by decoding each code word to linear PCM (ITU-T G.711
Tables 1 and 2, 16-bit scale) and encoding the result with the other law.
"""

from __future__ import annotations

_ULAW_BIAS = 33  # 0x84 on the 16-bit scale, 33 on the 14-bit one the encoder works in
_ULAW_CLIP = 8159


def ulaw_decode(code: int) -> int:
    """Linear 16-bit sample of one μ-law code word (0..255)."""
    u = ~code & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - magnitude if u & 0x80 else magnitude - 0x84


def ulaw_encode(sample: int) -> int:
    """μ-law code word of one linear 16-bit sample (clipped to the law's range)."""
    value = sample >> 2  # 14-bit
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, _ULAW_CLIP) + _ULAW_BIAS
    segment = max(value.bit_length() - 6, 0)
    if segment > 7:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def alaw_decode(code: int) -> int:
    """Linear 16-bit sample of one A-law code word (0..255)."""
    a = code ^ 0x55  # even bits are inverted on the line
    segment = (a & 0x70) >> 4
    magnitude = ((a & 0x0F) << 4) + 8
    if segment:
        magnitude = (magnitude + 0x100) << (segment - 1)
    return magnitude if a & 0x80 else -magnitude


def alaw_encode(sample: int) -> int:
    """A-law code word of one linear 16-bit sample (clipped to the law's range)."""
    value = sample >> 3  # 13-bit
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    segment = max(value.bit_length() - 5, 0)
    if segment > 7:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


ULAW_TO_ALAW: bytes = bytes(alaw_encode(ulaw_decode(c)) for c in range(256))
"""`payload.translate(ULAW_TO_ALAW)` turns a PCMU payload into PCMA."""

ALAW_TO_ULAW: bytes = bytes(ulaw_encode(alaw_decode(c)) for c in range(256))
"""`payload.translate(ALAW_TO_ULAW)` turns a PCMA payload into PCMU."""
