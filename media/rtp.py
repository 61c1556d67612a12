"""The few RTP (RFC 3550) header facts the relay needs, on raw datagrams.

The relay never builds packet objects: it reads the payload type in byte 1, finds where
the payload starts, and rewrites those bytes in place of a full parse. `RtpHeader` is for
tests, the benchmark driver and diagnostics, not for the hot path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media.errors import MediaError

RTP_VERSION = 2
MIN_HEADER = 12
_FIXED = struct.Struct("!BBHII")


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram is RTCP rather than RTP (RFC 5761 §4: packet types 192..223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_type(data: bytes) -> int:
    """The 7-bit payload type of an RTP datagram (the marker bit masked off)."""
    return data[1] & 0x7F


def payload_offset(data: bytes) -> int:
    """Where the payload of an RTP datagram starts: after CSRCs and the header extension.

    Raises:
        MediaError: not an RTP version 2 packet, or shorter than its header says.
    """
    if len(data) < MIN_HEADER or data[0] >> 6 != RTP_VERSION:
        raise MediaError("not an RTP version 2 packet")
    offset = MIN_HEADER + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # X bit: a 4-byte extension header, then `length` 32-bit words
        if len(data) < offset + 4:
            raise MediaError("RTP header extension truncated")
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    if offset > len(data):
        raise MediaError("RTP header longer than the packet")
    return offset


def with_payload_type(data: bytes, pt: int) -> bytes:
    """The same datagram with another payload type (marker bit, seq, timestamp, SSRC kept)."""
    return data[:1] + bytes(((data[1] & 0x80) | pt,)) + data[2:]


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fixed RTP header (RFC 3550 §5.1) of one packet, without CSRCs or extension."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpHeader:
        """Read the fixed header of an RTP datagram.

        Raises:
            MediaError: not an RTP version 2 packet.
        """
        if len(data) < MIN_HEADER or data[0] >> 6 != RTP_VERSION:
            raise MediaError("not an RTP version 2 packet")
        _, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        return cls(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80))

    def __bytes__(self) -> bytes:
        second = (0x80 if self.marker else 0) | self.payload_type
        return _FIXED.pack(RTP_VERSION << 6, second, self.sequence, self.timestamp, self.ssrc)
