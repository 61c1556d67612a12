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

Latching (symmetric RTP, RFC 4961, for phones behind NAT), after rtpengine's strict
source and Asterisk's strictrtp (issue 10 §4). A channel accepts, in order of trust:
  - the address its SDP gave: at once, and it locks (nothing else may take over);
  - a source on the host the SDP named or the phone signals from (`set_signalling`: a
    phone behind NAT sends from its public address) after PROBATION packets with one SSRC
    in sequence, and only until the SDP address itself speaks;
  - anyone else the same way, but only when no trusted source was heard for
    `latch_window` seconds (a phone whose media leaves from an unexpected host), and
    never when the SDP address is on the host the phone signals from.
Once latched, packets from any source not more trusted are dropped and counted, and the
first such source is logged once (a hijack attempt). RTCP follows the same rules; a
non-SDP RTCP source must be on the host RTP latched to and carry the SSRC it latched
with. Only a re-INVITE (`set_remote` with a new address) reopens learning. Probation
packets are not forwarded, so an attacker spraying the (random, `media.ports`) relay ports
before the phone speaks injects nothing and hears nothing.

Reflection (issue 10 §6). Until its phone has sent media, a leg sends nothing, unless the
SDP address is on the host the phone signals from: a c= naming some victim gets no music
on hold and no relayed audio. The packet path never raises: send errors (an unreachable
or impossible address) are counted and logged once per channel.

One stream per leg (issue 9 §8). A leg that hears music on hold (`Leg.send_own`) gets a
`StreamContinuity`: the music continues the SSRC, sequence numbers and timestamps of what
the other phone sent it, and from then on the other phone's packets are rewritten onto
that stream (that channel's reader becomes `readable_continuous`). Calls that never had
music on hold keep the plain fast path.

Media timeout. When no RTP has been accepted on a leg for `timeout` seconds, `on_timeout`
is called once with that leg's name ("a" or "b"; the one silent longest if both are), and
the B2BUA hangs the call up. While either leg is on hold (`hold(leg, True)`) the timeout
is not armed; `hold_timeout` (default one hour) after the hold began it fires instead, so
a hold is never endless. Resuming re-arms the media timeout with a fresh period.

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
from media.ports import PortAllocator, PortPair
from media.rtp import (
    PayloadMap,
    StreamContinuity,
    payload_map,
    payload_offset,
    rewrite_packet,
)
from media.sdp import AudioStream
from media.telephone_event import TelephoneEventReceiver

log = logging.getLogger(__name__)

LegName = Literal["a", "b"]
Address = tuple[str, int]
Tap = Callable[[bytes], None]

MAX_DATAGRAM = 2048


def other_leg(leg: LegName) -> LegName:
    """The leg facing the other phone."""
    return "b" if leg == "a" else "a"


DEFAULT_LATCH_WINDOW = 3.0
DEFAULT_HOLD_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class LegStats:
    """Counters of one leg, as received from its phone (RTCP counted apart)."""

    packets: int
    octets: int
    rtcp_packets: int
    dropped: int
    last_packet: float | None  # time.monotonic() of the last accepted RTP packet


PROBATION = 3
"""In-sequence packets with one SSRC a source other than the SDP address must send before
it is latched (Asterisk's strictrtp probation is 4; its packets are dropped meanwhile)."""

# How much a source is trusted, lowest first: a channel latched at one level is taken
# over only by a source of a higher level (strict source otherwise).
_NONE, _ANYONE, _HOST, _EXACT = 0, 1, 2, 3


class _Channel:
    """One socket of a leg (RTP or RTCP): its latch state, counters, where packets go."""

    __slots__ = (
        "candidate", "dropped", "errors", "expected", "head", "kind", "last", "learning_since",
        "leg", "level", "locked", "mapping", "octets", "out", "packets", "recvfrom", "refused",
        "remote", "sendto", "sock", "source", "ssrc", "tap",
    )  # fmt: skip

    def __init__(self, leg: Leg, kind: str, sock: socket.socket) -> None:
        self.leg = leg
        self.kind = kind
        self.sock = sock
        self.recvfrom = sock.recvfrom  # bound once: the hot path makes no method objects
        self.sendto = sock.sendto
        self.out: _Channel = self
        self.expected: Address | None = None  # where the SDP said the phone is
        self.remote: Address | None = None  # where we send to the phone (None: nowhere)
        self.source: Address | None = None  # the source accepted without a second look
        self.level = _NONE  # how the source was latched
        self.locked = False  # latched on the SDP address: nothing else may take over
        self.ssrc: int | None = None  # the SSRC the source was latched with
        self.candidate: tuple[Address, int, int, int] | None = None  # source, ssrc, seq, count
        self.learning_since: float | None = None
        self.refused = False  # a hijack attempt was logged (once per latch)
        self.mapping: PayloadMap | None = None
        self.packets = 0
        self.octets = 0
        self.dropped = 0
        self.errors = 0  # sendto or tap failures (logged once)
        self.last: float | None = None
        self.head: bytes | None = None  # the last datagram accepted (for StreamContinuity)
        self.tap: Callable[[bytes], None] | None = None  # a recorder, when recording

    def set_expected(self, address: Address | None) -> None:
        """The SDP address (a new offer or answer): a changed one reopens learning."""
        if address == self.expected:
            self._update_remote()
            return
        self.expected = address
        self.source = None
        self.level = _NONE
        self.locked = False
        self.ssrc = None
        self.candidate = None
        self.learning_since = None
        self.refused = False
        self._update_remote()

    def _update_remote(self) -> None:
        """Before anything is latched, send only to an SDP address on the host the phone
        signals from (anything else could be a reflection victim, issue 10 §6)."""
        if self.source is None:
            expected = self.expected
            trusted = expected is not None and expected[0] == self.leg.signalling
            self.remote = expected if trusted else None

    def readable(self) -> None:
        """The hot path: one datagram in, one out."""
        try:
            data, source = self.recvfrom(MAX_DATAGRAM)
        except OSError:  # nothing queued, or an ICMP error reported on the socket
            return
        if source != self.source and not self._accept(source, data):
            return
        self.packets += 1
        self.octets += len(data)
        self.last = _monotonic()
        self.head = data
        if self.tap is not None:
            self._tap(data)
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
        except (OSError, OverflowError, ValueError) as exc:  # RTP is loss-tolerant
            self._send_failed(out, remote, exc)

    def readable_continuous(self) -> None:
        """`readable` for a channel whose packets feed a leg that had music on hold: what
        reaches that phone is rewritten onto its one stream (`StreamContinuity`). Only
        such channels pay for it."""
        try:
            data, source = self.recvfrom(MAX_DATAGRAM)
        except OSError:
            return
        if source != self.source and not self._accept(source, data):
            return
        self.packets += 1
        self.octets += len(data)
        now = self.last = _monotonic()
        self.head = data
        if self.tap is not None:
            self._tap(data)
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
        stream = out.leg.continuity
        if stream is not None and out is out.leg.rtp:
            data = stream.relayed(data, now)
        try:
            out.sendto(data, remote)
        except (OSError, OverflowError, ValueError) as exc:
            self._send_failed(out, remote, exc)

    def _tap(self, data: bytes) -> None:
        assert self.tap is not None
        try:
            self.tap(data)
        except Exception:  # a recorder's bug must not become one traceback per packet
            self.errors += 1
            if self.errors == 1:
                log.exception("%s leg %s %s: tap failed (logged once)", self.leg.session.name,
                              self.leg.name, self.kind)  # fmt: skip

    def _send_failed(self, out: _Channel, remote: Address, exc: Exception) -> None:
        self.dropped += 1
        self.errors += 1
        if self.errors == 1:
            log.warning("%s leg %s %s: cannot send to %s: %s (logged once; counted)",
                        self.leg.session.name, out.leg.name, out.kind, remote, exc)  # fmt: skip

    def _accept(self, source: Address, data: bytes) -> bool:
        """The slow path for a packet from a source not latched: latch, learn or drop.

        The SDP address always wins and locks; a source on the host the phone announced
        or signals from (a NAT) comes next, anyone else last and only when the phone has
        not been heard for `latch_window` seconds (never when the SDP address is on the
        signalling host); each needs PROBATION packets with one
        SSRC in sequence (RTCP: the SSRC latched on RTP). A latched channel takes no other
        source of its level or below (strict source, RFC 4961 symmetric RTP).
        """
        session = self.leg.session
        if source == self.expected:
            level = _EXACT
        elif source[0] in (self.leg.signalling, self.expected[0] if self.expected else None):
            level = _HOST
        else:
            level = _ANYONE
        if level <= self.level:
            self._refuse(source)
            return False
        if level < _EXACT and not self._proven(source, data, level, session):
            self.dropped += 1
            return False
        previous = self.source
        self.source = self.remote = source
        self.level = level
        self.locked = level == _EXACT
        self.candidate = None
        self.refused = False
        if len(data) >= 12:
            self.ssrc = int.from_bytes(data[8:12] if self.kind == "rtp" else data[4:8], "big")
        if previous is not None:
            log.info("%s leg %s %s: %s takes over from %s", session.name, self.leg.name,
                     self.kind, source, previous)  # fmt: skip
        elif self.locked:
            log.debug("%s leg %s %s locked on its SDP address %s", session.name, self.leg.name,
                      self.kind, source)  # fmt: skip
        else:
            log.info("%s leg %s %s latched to %s (SDP said %s)", session.name, self.leg.name,
                     self.kind, source, self.expected)  # fmt: skip
        return True

    def _proven(self, source: Address, data: bytes, level: int, session: RelaySession) -> bool:
        """Whether `source` has now earned the latch at `level` (see `_accept`)."""
        if level == _ANYONE:
            expected = self.expected
            if expected is not None and expected[0] == self.leg.signalling:
                return False  # the SDP address is on the phone's own host: wait for it
            now = _monotonic()
            if self.learning_since is None:
                self.learning_since = now
            if now - self.learning_since < session.latch_window:
                return False
        if self.kind != "rtp":  # RTCP: the sender SSRC (bytes 4..8) latched on RTP
            rtp = self.leg.rtp
            return (
                len(data) >= 8
                and rtp.source is not None
                and rtp.source[0] == source[0]
                and int.from_bytes(data[4:8], "big") == rtp.ssrc
            )
        if len(data) < 12 or data[0] >> 6 != 2:
            return False
        seq = int.from_bytes(data[2:4], "big")
        ssrc = int.from_bytes(data[8:12], "big")
        candidate = self.candidate
        if (
            candidate is not None
            and candidate[0] == source
            and candidate[1] == ssrc
            and (candidate[2] + 1) & 0xFFFF == seq
        ):
            count = candidate[3] + 1
        else:
            count = 1
        self.candidate = (source, ssrc, seq, count)
        return count >= PROBATION

    def _refuse(self, source: Address) -> None:
        self.dropped += 1
        if not self.refused:
            self.refused = True
            log.warning("%s leg %s %s: packets from %s refused, latched to %s (possible RTP"
                        " hijack; logged once)", self.leg.session.name, self.leg.name,
                        self.kind, source, self.source)  # fmt: skip


_monotonic = time.monotonic


class Leg:
    """One side of a relayed call: the ports its phone sends to, its counters."""

    __slots__ = (
        "continuity", "held", "name", "pair", "rtcp", "rtp", "session", "signalling", "sink",
        "stream", "taps",
    )  # fmt: skip

    def __init__(self, session: RelaySession, name: LegName, pair: PortPair) -> None:
        self.session = session
        self.name: LegName = name
        self.pair = pair
        #: The host the phone's SIP comes from (`RelaySession.set_signalling`): trusted
        #: as a destination before the phone sent media, and as a NAT'd source.
        self.signalling: str | None = None
        self.rtp = _Channel(self, "rtp", pair.rtp)
        self.rtcp = _Channel(self, "rtcp", pair.rtcp)
        # Where the other phone's RTP goes while this leg is muted: no reader, remote None.
        self.sink = _Channel(self, "sink", pair.rtp)
        self.stream: AudioStream | None = None
        self.held = False
        self.taps: list[Tap] = []
        #: The one RTP stream this leg's phone hears, once the switch sent it media of its
        #: own (music on hold); None before (then relayed packets pass unchanged).
        self.continuity: StreamContinuity | None = None

    def send(self, data: bytes) -> bool:
        """Send one datagram of the switch's own to this leg's phone, from this leg's RTP
        socket; False when there is nowhere to send it (the phone has not proven its
        address yet) or it failed."""
        remote = self.rtp.remote
        if remote is None or self.session.closed:
            return False
        try:
            self.rtp.sendto(data, remote)
        except (OSError, OverflowError, ValueError):
            return False
        return True

    def send_own(self, payload_type: int, payload: bytes, samples: int) -> bool:
        """Send a packet of the switch's own media (music on hold) to this leg's phone, on
        the leg's one stream: the SSRC, sequence numbers and timestamps the phone heard
        from the other phone go on (`StreamContinuity`), and the other phone's packets are
        rewritten onto them from now on. False as for `send`."""
        if self.rtp.remote is None or self.session.closed:
            return False
        now = _monotonic()
        if self.continuity is None:
            feeder = self.session.leg(other_leg(self.name)).rtp
            rate = self.stream.codec.clock_rate if self.stream is not None else 8000
            self.continuity = StreamContinuity.following(feeder.head, now, rate)
            self.session._continuous(feeder)
        return self.send(self.continuity.own(payload_type, now, samples) + payload)

    def continue_stream(self, ssrc: int, seq: int, ts: int) -> None:
        """This leg's phone heard the switch's own stream on these ports until now (an IVR
        caller, its ports taken over): the other phone's packets go on in that stream
        (`seq`, `ts`: the last sent), as after music on hold."""
        rate = self.stream.codec.clock_rate if self.stream is not None else 8000
        self.continuity = StreamContinuity(ssrc, seq, ts, _monotonic(), rate)
        self.session._continuous(self.session.leg(other_leg(self.name)).rtp)

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
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        pairs: tuple[PortPair, PortPair] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.name = name  # e.g. the Call-ID, for log lines
        self.latch_window = latch_window
        self.timeout = timeout
        self.hold_timeout = hold_timeout
        self._held_since: float | None = None
        self._on_timeout = on_timeout
        self._allocator = allocator
        self._watch: asyncio.TimerHandle | None = None
        self._fired = False
        self._recording: dict[LegName, Tap] | None = None
        self.closed = False
        if pairs is not None:  # taken over (a call's own ports, one anchor per call)
            first, second = pairs
        else:
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

    def set_signalling(self, name: LegName, host: str | None) -> None:
        """The host leg `name`'s phone sends its SIP from: media may go to its SDP address
        on that host before it sent any, and a source on it may latch (a NAT)."""
        leg = self.leg(name)
        leg.signalling = host
        leg.rtp._update_remote()
        leg.rtcp._update_remote()

    def _continuous(self, channel: _Channel) -> None:
        """Read `channel` with `readable_continuous` from now on (a leg got its own media)."""
        if not self.closed:
            self.loop.remove_reader(channel.sock.fileno())
            self.loop.add_reader(channel.sock.fileno(), channel.readable_continuous)

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

        While either leg is held the media timeout is not armed; `hold_timeout` seconds
        after the hold began (not renewed by further offers while held) `on_timeout` is
        called for the held leg instead. On resume the media timeout restarts.
        """
        self.leg(name).held = on
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if not (self.a.held or self.b.held):
            self._held_since = None
            self._started = _monotonic()  # a fresh period for both legs
            self._arm(self._started)
            return
        now = _monotonic()
        if self._held_since is None:
            self._held_since = now
        if self.hold_timeout is not None and not self._fired and not self.closed:
            due = self._held_since + self.hold_timeout
            self._watch = self.loop.call_later(max(due - now, 0.0), self._hold_expired)

    def _hold_expired(self) -> None:
        self._watch = None
        self._fired = True
        leg = self.a if self.a.held else self.b
        log.info("%s hold timeout on leg %s: held for %ss", self.name, leg.name,
                 self.hold_timeout)  # fmt: skip
        if self._on_timeout is not None:
            self._on_timeout(leg.name)

    def close(self) -> None:
        """Stop forwarding, cancel timers and give the ports back (a second call is a no-op)."""
        if self.closed:
            return
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for channel in self._channels():
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
