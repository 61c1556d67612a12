"""The RTP relay: two legs of a call anchored in the switch, datagrams forwarded between them.

Each leg (A: the caller's phone, B: the callee's) owns an RTP and an RTCP socket from the
`PortAllocator`. What phone A sends to leg A's ports leaves from leg B's ports to phone B,
and back. Pass-through (both legs on the same codec and payload numbers) forwards the
datagram untouched; otherwise a per-direction table rewrites the payload type byte and,
between PCMU and PCMA, the payload through a 256-byte `bytes.translate` table
(`media.g711_tables`). Sequence numbers, timestamps and SSRC are kept either way.

Hot path. Sockets are plain non-blocking sockets watched with `loop.add_reader`, and each
wakeup reads one datagram with `recvfrom` (level-triggered readiness calls again if more
are queued): one source comparison, three counter updates, one `sendto`, through socket
methods bound once per channel. Measured on the 2-core dev VM (600 one-way streams at
50 packets/s, relay CPU from rusage): a uvloop `DatagramProtocol` doing the same work costs
16-18 µs per packet against 13.7-13.9 µs here, the difference all in user time (uvloop's
transport dispatch and address checks). The floor is the two system calls: a bare
`recvfrom` + `sendto` pair costs ~7.5 µs on that VM, `readable` adds ~1 µs, and the rest is
epoll wakeups, which amortize as the load grows. A drain loop (`recvfrom` until
`BlockingIOError`) measured 16.8-18.7 µs against 14.6-14.8 µs in the same runs: at 50
packets/s per socket a wakeup rarely finds a second datagram, and the exception ending
every drain costs more than the wakeup it saves. One shared inner epoll registered once
with the loop (one uvloop dispatch per wakeup, a Python loop over the ready sockets) saved
~5% with bursty senders but nothing with evenly spread ones (16.2-16.9 against 14.8-16.6
µs per packet at 500 calls, benchmarks/relay.py), so each socket keeps its own reader.

Latching (symmetric RTP, RFC 4961, for phones behind NAT). Until a channel is *locked*
it accepts a packet from any source and sends back to the latest source it saw; it locks
  - at once when a packet arrives from the address the SDP gave (the phone is reachable
    where it said: nothing else may take the stream over), or
  - `latch_window` seconds (default 3) after it first latched onto another address.
Once locked, packets from any other source are dropped and counted. A new SDP address
(`set_remote`, e.g. a re-INVITE from a phone that moved) reopens learning. The window is
a loop timer, so the hot path never reads the clock for latching.

Media timeout. When no RTP has been accepted on a leg for `timeout` seconds, `on_timeout`
is called once with that leg's name ("a" or "b"; the one silent longest if both are), and
the B2BUA hangs the call up. While either leg is on hold (`hold(leg, True)`) the timeout
is not armed; resuming re-arms it with a fresh period.

Taps and injected media, paid for only by the calls that use them. A leg's RTP channel
calls its `tap` (None on most calls: one comparison per packet) with every accepted
datagram; `add_tap` stacks several (a recorder, a feature-code watcher from
`watch_digits`) behind that one slot. Music on hold (media.moh) sends its own stream to
a phone with `Leg.send` from that leg's socket, and `mute` points the other phone's
channel at a sink whose remote is None, so the hot path drops its packets through the
`remote is None` check it makes anyway.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from media.errors import MediaError
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.ports import PortAllocator, PortPair
from media.rtp import payload_offset
from media.sdp import AudioStream, Codec
from media.telephone_event import TelephoneEventReceiver

log = logging.getLogger(__name__)

LegName = Literal["a", "b"]
Address = tuple[str, int]
Tap = Callable[[bytes], None]
PayloadMap = dict[int, tuple[int, bytes | None]]  # pt in -> (pt out, payload table or None)

MAX_DATAGRAM = 2048


def other_leg(leg: LegName) -> LegName:
    """The leg facing the other phone."""
    return "b" if leg == "a" else "a"


DEFAULT_LATCH_WINDOW = 3.0
_TABLES = {("pcmu", "pcma"): ULAW_TO_ALAW, ("pcma", "pcmu"): ALAW_TO_ULAW}


@dataclass(frozen=True, slots=True)
class LegStats:
    """Counters of one leg, as received from its phone (RTCP counted apart)."""

    packets: int
    octets: int
    rtcp_packets: int
    dropped: int
    last_packet: float | None  # time.monotonic() of the last accepted RTP packet


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


class _Channel:
    """One socket of a leg (RTP or RTCP): its latch state, counters, where packets go."""

    __slots__ = (
        "dropped", "expected", "handle", "kind", "last", "leg", "locked", "mapping", "octets",
        "out", "packets", "recvfrom", "remote", "sendto", "sock", "source", "tap",
    )  # fmt: skip

    def __init__(self, leg: Leg, kind: str, sock: socket.socket) -> None:
        self.leg = leg
        self.kind = kind
        self.sock = sock
        self.recvfrom = sock.recvfrom  # bound once: the hot path makes no method objects
        self.sendto = sock.sendto
        self.out: _Channel = self
        self.expected: Address | None = None  # where the SDP said the phone is
        self.remote: Address | None = None  # where we send to the phone
        self.source: Address | None = None  # the source accepted without a second look
        self.locked = False
        self.handle: asyncio.TimerHandle | None = None
        self.mapping: PayloadMap | None = None
        self.packets = 0
        self.octets = 0
        self.dropped = 0
        self.last: float | None = None
        self.tap: Callable[[bytes], None] | None = None  # a recorder, when recording

    def set_expected(self, address: Address | None) -> None:
        if address == self.expected:
            return
        self.expected = self.remote = address
        self.source = None
        self.locked = False
        self._cancel_window()

    def readable(self) -> None:
        """The hot path: one datagram in, one out."""
        try:
            data, source = self.recvfrom(MAX_DATAGRAM)
        except OSError:  # nothing queued, or an ICMP error reported on the socket
            return
        if source != self.source and not self._accept(source):
            return
        self.packets += 1
        self.octets += len(data)
        self.last = _monotonic()
        if self.tap is not None:
            self.tap(data)
        out = self.out
        remote = out.remote
        if remote is None:
            return
        if self.mapping is not None:
            try:
                data = rewrite_packet(data, self.mapping)
            except MediaError:
                self.dropped += 1
                return
        try:
            out.sendto(data, remote)
        except OSError:  # buffer full, unreachable: RTP is loss-tolerant
            self.dropped += 1

    def _accept(self, source: Address) -> bool:
        """The slow path for a packet from a source not latched yet: latch or drop."""
        if self.locked:
            self.dropped += 1
            return False
        self.source = self.remote = source
        if source == self.expected:
            self.locked = True
            self._cancel_window()
            log.debug("%s leg %s %s locked on its SDP address %s", self.leg.session.name,
                      self.leg.name, self.kind, source)  # fmt: skip
        else:
            log.info("%s leg %s %s latched to %s (SDP said %s)", self.leg.session.name,
                     self.leg.name, self.kind, source, self.expected)  # fmt: skip
            if self.handle is None:
                self.handle = self.leg.session.loop.call_later(
                    self.leg.session.latch_window, self._lock
                )
        return True

    def _lock(self) -> None:
        self.handle = None
        self.locked = True
        log.debug("%s leg %s %s locked on %s", self.leg.session.name, self.leg.name, self.kind,
                  self.source)  # fmt: skip

    def _cancel_window(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


_monotonic = time.monotonic


class Leg:
    """One side of a relayed call: the ports its phone sends to, its counters."""

    __slots__ = ("held", "name", "pair", "rtcp", "rtp", "session", "sink", "stream", "taps")

    def __init__(self, session: RelaySession, name: LegName, pair: PortPair) -> None:
        self.session = session
        self.name: LegName = name
        self.pair = pair
        self.rtp = _Channel(self, "rtp", pair.rtp)
        self.rtcp = _Channel(self, "rtcp", pair.rtcp)
        # Where the other phone's RTP goes while this leg is muted: no reader, remote None.
        self.sink = _Channel(self, "sink", pair.rtp)
        self.stream: AudioStream | None = None
        self.held = False
        self.taps: list[Tap] = []

    def send(self, data: bytes) -> bool:
        """Send one datagram of the switch's own (music on hold) to this leg's phone, from
        this leg's RTP socket; False when there is nowhere to send it or it failed."""
        remote = self.rtp.remote
        if remote is None or self.session.closed:
            return False
        try:
            self.rtp.sendto(data, remote)
        except OSError:
            return False
        return True

    @property
    def host(self) -> str:
        """The relay address this leg's phone must send to (for c=)."""
        return self.pair.host

    @property
    def port(self) -> int:
        """The RTP port this leg's phone must send to (for m=); RTCP is port + 1."""
        return self.pair.rtp_port

    @property
    def remote(self) -> Address | None:
        """Where RTP for this leg's phone goes now: the SDP address, or the latched source."""
        return self.rtp.remote

    @property
    def last_packet(self) -> float | None:
        """`time.monotonic()` of the last RTP packet accepted from this leg's phone."""
        return self.rtp.last

    @property
    def stats(self) -> LegStats:
        rtp, rtcp = self.rtp, self.rtcp
        return LegStats(rtp.packets, rtp.octets, rtcp.packets, rtp.dropped + rtcp.dropped,
                        rtp.last)  # fmt: skip


class RelaySession:
    """The media of one bridged call: legs `a` and `b`, each with ports from `allocator`.

    Create it inside the running loop; the readers are registered at once, so packets
    that arrive before the remote SDP is known are counted (and latch) but not forwarded.

    Raises:
        PortsExhaustedError: the allocator has no two free pairs.
    """

    def __init__(
        self,
        allocator: PortAllocator,
        *,
        name: str = "relay",
        timeout: float | None = None,
        on_timeout: Callable[[LegName], None] | None = None,
        latch_window: float = DEFAULT_LATCH_WINDOW,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.name = name  # e.g. the Call-ID, for log lines
        self.latch_window = latch_window
        self.timeout = timeout
        self._on_timeout = on_timeout
        self._allocator = allocator
        self._watch: asyncio.TimerHandle | None = None
        self._fired = False
        self._recording: dict[LegName, Tap] | None = None
        self.closed = False
        first = allocator.allocate()
        try:
            second = allocator.allocate()
        except MediaError:
            allocator.release(first)
            raise
        self.a = Leg(self, "a", first)
        self.b = Leg(self, "b", second)
        self.a.rtp.out, self.b.rtp.out = self.b.rtp, self.a.rtp
        self.a.rtcp.out, self.b.rtcp.out = self.b.rtcp, self.a.rtcp
        for channel in self._channels():
            self.loop.add_reader(channel.sock.fileno(), channel.readable)
        self._started = _monotonic()
        self._arm(self._started)

    def leg(self, name: LegName) -> Leg:
        """Leg `a` or `b`."""
        return self.a if name == "a" else self.b

    def set_remote(self, name: LegName, stream: AudioStream) -> None:
        """What leg `name`'s phone announced in its SDP: where to send, which codec.

        A changed address reopens latching; codecs are checked against the other leg's.

        Raises:
            MediaError: the two legs' codecs cannot be bridged (not equal, not PCMU/PCMA).
        """
        leg, other = self.leg(name), self.leg("b" if name == "a" else "a")
        if other.stream is not None:
            to_other = payload_map(stream, other.stream)
            from_other = payload_map(other.stream, stream)
        else:
            to_other = from_other = None
        leg.stream = stream
        leg.rtp.set_expected((stream.host, stream.port) if stream.port else None)
        leg.rtcp.set_expected((stream.host, stream.rtcp_port) if stream.port else None)
        leg.rtp.mapping, other.rtp.mapping = to_other, from_other
        log.debug("%s leg %s remote %s:%s %s", self.name, name, stream.host, stream.port,
                  stream.codec.name)  # fmt: skip

    def add_tap(self, name: LegName, tap: Tap) -> None:
        """Hand every RTP datagram accepted from leg `name`'s phone to `tap` as well."""
        leg = self.leg(name)
        leg.taps.append(tap)
        self._set_tap(leg)

    def remove_tap(self, name: LegName, tap: Tap) -> None:
        """Undo `add_tap` (a tap not added is ignored)."""
        leg = self.leg(name)
        if tap in leg.taps:
            leg.taps.remove(tap)
            self._set_tap(leg)

    @staticmethod
    def _set_tap(leg: Leg) -> None:
        taps = tuple(leg.taps)
        if not taps:
            leg.rtp.tap = None
        elif len(taps) == 1:
            leg.rtp.tap = taps[0]
        else:

            def fan_out(data: bytes) -> None:
                for tap in taps:
                    tap(data)

            leg.rtp.tap = fan_out

    def record(self, tap: Callable[[LegName, bytes], None] | None) -> None:
        """Hand every accepted RTP datagram of both legs to `tap` (None stops it)."""
        for leg in (self.a, self.b):
            if self._recording is not None:
                self.remove_tap(leg.name, self._recording[leg.name])
        self._recording = None
        if tap is not None:
            taps: dict[LegName, Tap] = {
                "a": lambda data: tap("a", data),
                "b": lambda data: tap("b", data),
            }
            self._recording = taps
            for name, leg_tap in taps.items():
                self.add_tap(name, leg_tap)

    def watch_digits(self, name: LegName, on_digit: Callable[[str], None]) -> Tap:
        """Call `on_digit` with each DTMF digit leg `name`'s phone sends as RFC 4733
        telephone-events (once per digit, when it ends); the packets are still forwarded.
        Returns the tap, for `remove_tap`."""
        leg = self.leg(name)
        receiver = TelephoneEventReceiver()

        def tap(data: bytes) -> None:
            stream = leg.stream
            if stream is None or len(data) < 12 or data[1] & 0x7F != stream.telephone_event:
                return
            try:
                offset = payload_offset(data)
                digits = receiver.feed(
                    data[offset:], int.from_bytes(data[4:8], "big"), bool(data[1] & 0x80)
                )
            except MediaError:
                return
            for digit in digits:
                on_digit(digit.digit)

        self.add_tap(name, tap)
        return tap

    def mute(self, name: LegName, on: bool) -> None:
        """Stop (or resume) forwarding the other phone's RTP to leg `name`'s phone, while
        the switch sends that phone a stream of its own (music on hold)."""
        leg = self.leg(name)
        self.leg(other_leg(name)).rtp.out = leg.sink if on else leg.rtp

    def hold(self, name: LegName, on: bool) -> None:
        """Mark leg `name` on hold (its phone may stop sending) or resumed.

        While either leg is held the media timeout is not armed; on resume it restarts.
        """
        self.leg(name).held = on
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if not (self.a.held or self.b.held):
            self._started = _monotonic()  # a fresh period for both legs
            self._arm(self._started)

    def close(self) -> None:
        """Stop forwarding, cancel timers and give the ports back (a second call is a no-op)."""
        if self.closed:
            return
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for channel in self._channels():
            channel._cancel_window()
            self.loop.remove_reader(channel.sock.fileno())
        self._allocator.release(self.a.pair)
        self._allocator.release(self.b.pair)
        log.debug("%s relay closed: a %s, b %s", self.name, self.a.stats, self.b.stats)

    def _channels(self) -> tuple[_Channel, ...]:
        return (self.a.rtp, self.a.rtcp, self.b.rtp, self.b.rtcp)

    def _deadline(self, leg: Leg) -> float:
        assert self.timeout is not None
        last = leg.last_packet
        return max(last if last is not None else self._started, self._started) + self.timeout

    def _arm(self, now: float) -> None:
        if self.timeout is None or self._fired or self.closed or self.a.held or self.b.held:
            return
        due = min(self._deadline(self.a), self._deadline(self.b))
        self._watch = self.loop.call_later(max(due - now, 0.0), self._check)

    def _check(self) -> None:
        self._watch = None
        now = _monotonic()
        leg = min((self.a, self.b), key=self._deadline)  # the one silent the longest
        if now < self._deadline(leg):
            self._arm(now)
            return
        self._fired = True
        log.info("%s media timeout on leg %s: no RTP for %ss", self.name, leg.name, self.timeout)
        if self._on_timeout is not None:
            self._on_timeout(leg.name)
