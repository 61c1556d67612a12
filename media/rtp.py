"""The few RTP (RFC 3550) header facts the relay needs, on raw datagrams: payload type
rewriting between two legs' codecs (`payload_map`, `rewrite_packet`) and one continuous
outgoing stream per leg (`StreamContinuity`).

The relay never builds packet objects: it reads the payload type in byte 1, finds where
the payload starts, and rewrites those bytes in place of a full parse. `RtpHeader` is for
tests, the benchmark driver and diagnostics, not for the hot path.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from media.errors import MediaError
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.sdp import AudioStream, Codec

RTP_VERSION = 2
MIN_HEADER = 12
_FIXED = struct.Struct("!BBHII")
_TABLES = {("pcmu", "pcma"): ULAW_TO_ALAW, ("pcma", "pcmu"): ALAW_TO_ULAW}
PayloadMap = dict[int, tuple[int, bytes | None]]  # pt in -> (pt out, payload table or None)


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


_SEQ_TS_SSRC = struct.Struct("!HII")
_OWN = -1  # `StreamContinuity` source id of the switch's own packets (never an SSRC)


class StreamContinuity:
    """One outgoing RTP stream toward a phone, whatever feeds it (RFC 3550 §5.1, §8).

    A phone that hears the other phone, then the switch's music on hold, then the other
    phone again must see one SSRC with sequence numbers going on by one and timestamps
    that keep time: baresip 1.0 discards everything after the SSRC and timestamps jump
    back. This keeps the SSRC, sequence number and timestamp last sent, rewrites relayed
    packets onto them (offsets fixed at each change of source; the marker bit set on the
    first packet of a new source, RFC 3551 §4.1 "talkspurt") and stamps the switch's own
    packets. Pure: the caller passes the clock (`now`, seconds) and the RTP clock `rate`.
    """

    __slots__ = ("_seq_off", "_source", "_ts_off", "at", "rate", "seq", "ssrc", "ts")

    def __init__(self, ssrc: int, seq: int, ts: int, at: float, rate: int = 8000) -> None:
        self.ssrc = ssrc
        self.seq = seq  # the last sequence number sent
        self.ts = ts  # the last timestamp sent
        self.at = at  # when it was sent
        self.rate = rate
        self._source: int | None = None  # SSRC being relayed now, _OWN, or None (nothing yet)
        self._seq_off = 0
        self._ts_off = 0

    @classmethod
    def following(cls, last: bytes | None, at: float, rate: int = 8000) -> StreamContinuity:
        """Continue the stream whose last packet sent was `last` (None or not RTP: start a
        fresh one with random SSRC, sequence number and timestamp, RFC 3550 §5.1)."""
        if last is not None and len(last) >= MIN_HEADER and last[0] >> 6 == RTP_VERSION:
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(last, 2)
            stream = cls(ssrc, seq, ts, at, rate)
            stream._source = ssrc  # the same source goes on unchanged
            return stream
        return cls(secrets.randbits(32), secrets.randbits(16), secrets.randbits(32), at, rate)

    def _gap(self, now: float, minimum: int) -> int:
        """Timestamp units to advance at a change of source: the time since the last
        packet, at least one packet's worth."""
        return max(minimum, round((now - self.at) * self.rate))

    def relayed(self, data: bytes, now: float, samples: int = 160) -> bytes:
        """A relayed RTP datagram rewritten onto this stream (non-RTP data unchanged)."""
        if len(data) < MIN_HEADER or data[0] >> 6 != RTP_VERSION:
            return data
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        second = data[1]
        if ssrc != self._source:  # a new source: continue from what was sent last
            self._source = ssrc
            self._seq_off = (self.seq + 1 - seq) & 0xFFFF
            self._ts_off = (self.ts + self._gap(now, samples) - ts) & 0xFFFFFFFF
            second |= 0x80
        self.seq = (seq + self._seq_off) & 0xFFFF
        self.ts = (ts + self._ts_off) & 0xFFFFFFFF
        self.at = now
        head = bytes((data[0], second)) + _SEQ_TS_SSRC.pack(self.seq, self.ts, self.ssrc)
        return head + data[12:]

    def own(self, payload_type: int, now: float, samples: int) -> bytes:
        """The 12-byte header (no CSRC) of the switch's own next packet, `samples` after the
        previous own packet (after a relayed one: the time since it, at least `samples`)."""
        marker = 0
        if self._source != _OWN:
            self._source = _OWN
            step = self._gap(now, samples)
            marker = 0x80
        else:
            step = samples
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + step) & 0xFFFFFFFF
        self.at = now
        return _FIXED.pack(RTP_VERSION << 6, marker | payload_type, self.seq, self.ts, self.ssrc)


def transcodable(source: Codec, target: Codec) -> bool:
    """Whether the relay can carry `source` audio to a phone that takes `target`."""
    return source.key == target.key or (source.key, target.key) in _TABLES


def payload_map(source: AudioStream, target: AudioStream) -> PayloadMap | None:
    """How packets sent by the `source` phone are rewritten for the `target` phone.

    None means pass-through: same codec and payload type numbers. Payload types not in the
    map (comfort noise, a codec that was offered but not chosen) pass unchanged.

    Raises:
        MediaError: the two codecs differ and are not PCMU/PCMA.
    """
    src, dst = source.codec, target.codec
    if not transcodable(src, dst):
        raise MediaError(f"cannot transcode {src.name}/{src.clock_rate} to {dst.name}")
    table = _TABLES.get((src.key, dst.key))
    mapping: PayloadMap = {}
    if table is not None or src.payload_type != dst.payload_type:
        mapping[src.payload_type] = (dst.payload_type, table)
    event_in, event_out = source.telephone_event, target.telephone_event
    if event_in is not None and event_out is not None and event_in != event_out:
        mapping[event_in] = (event_out, None)
    return mapping or None


def rewrite_packet(data: bytes, mapping: PayloadMap) -> bytes:
    """One RTP datagram with its payload type (and G.711 law) changed per `mapping`.

    Raises:
        MediaError: not an RTP packet, or shorter than its header.
    """
    entry = mapping.get(data[1] & 0x7F) if len(data) > 1 else None
    if entry is None:
        return data
    pt, table = entry
    head = data[:1] + bytes(((data[1] & 0x80) | pt,))
    if table is None:
        return head + data[2:]
    offset = 12 if data[0] == 0x80 else payload_offset(data)  # 0x80: no CSRC, no extension
    if len(data) < offset:
        raise MediaError("RTP packet shorter than its header")
    return head + data[2:offset] + data[offset:].translate(table)
