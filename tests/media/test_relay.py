"""RTP relay over real loopback UDP: two test phones send through a RelaySession."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import cast

import numpy as np
import pytest

from media import g711
from media.errors import MediaError, PortsExhaustedError
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.ports import PortAllocator
from media.relay import LegName, RelaySession, payload_map, rewrite_packet
from media.rtp import RtpHeader, StreamContinuity, is_rtcp, payload_offset, with_payload_type
from media.sdp import AudioStream, Codec

HOST = "127.0.0.1"
WAIT = 2.0  # bound on every wait for a packet or an event; never reached when things work
PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)


class Phone(asyncio.DatagramProtocol):
    """A test phone: a UDP endpoint whose received datagrams land in a queue."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.received.get(), WAIT)


_open_phones: list[Phone] = []


async def phone(host: str = HOST) -> Phone:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(Phone, local_addr=(host, 0))
    _open_phones.append(protocol)
    return protocol


@pytest.fixture(autouse=True)
async def _close_phones() -> AsyncIterator[None]:
    yield
    while _open_phones:
        transport = _open_phones.pop().transport
        if transport is not None:
            transport.close()


def stream(
    p: Phone, codec: Codec = PCMU, event: int | None = 101, rtcp: Phone | None = None
) -> AudioStream:
    host, port = p.address
    return AudioStream(host, port, rtcp.address[1] if rtcp else port + 1, codec, event, "sendrecv")


def rtp(
    seq: int,
    payload: bytes = b"\xff" * 160,
    pt: int = 0,
    marker: bool = False,
    ssrc: int = 0x11223344,
) -> bytes:
    return bytes(RtpHeader(pt, seq, seq * 160, ssrc, marker)) + payload


def signalled(session: RelaySession, host: str = HOST) -> RelaySession:
    """Both legs' phones send their SIP from `host` (trusted destination and NAT host)."""
    session.set_signalling("a", host)
    session.set_signalling("b", host)
    return session


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling the loop every 10 ms, at most WAIT) until `condition` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        tick = asyncio.Event()
        loop.call_later(0.01, tick.set)
        await tick.wait()


async def nothing_within(p: Phone, seconds: float) -> bool:
    """True when `p` receives nothing for `seconds` (the only way to show an absence)."""
    try:
        await asyncio.wait_for(p.received.get(), seconds)
    except TimeoutError:
        return True
    return False


@pytest.fixture
def allocator() -> PortAllocator:
    return PortAllocator(HOST, 31000, 31200)


@pytest.fixture
async def relay(allocator: PortAllocator) -> AsyncIterator[RelaySession]:
    session = signalled(RelaySession(allocator, name="test-call", latch_window=60.0))
    yield session
    session.close()


async def test_pass_through_both_directions_exact_bytes(relay: RelaySession) -> None:
    a, b = await phone(), await phone()
    relay.set_remote("a", stream(a))
    relay.set_remote("b", stream(b))
    a.send(rtp(1), (HOST, relay.a.port))
    assert await b.receive() == (rtp(1), (HOST, relay.b.port))
    b.send(rtp(7, b"\x12" * 160), (HOST, relay.b.port))
    assert await a.receive() == (rtp(7, b"\x12" * 160), (HOST, relay.a.port))
    assert relay.a.rtp.locked and relay.b.rtp.locked  # both came from their SDP address
    stats = relay.a.stats
    assert (stats.packets, stats.octets, stats.dropped) == (1, 172, 0)
    assert stats.last_packet is not None


async def test_latches_onto_the_real_source_port_after_probation(relay: RelaySession) -> None:
    a_sdp, a_nat, b = await phone(), await phone(), await phone()
    relay.set_remote("a", stream(a_sdp))  # what phone A wrote in its SDP
    relay.set_remote("b", stream(b))
    for seq in (1, 2, 3):  # what its NAT really sends from: same host, PROBATION packets
        a_nat.send(rtp(seq), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(3)  # the probation packets are not forwarded
    assert relay.a.remote == a_nat.address and not relay.a.rtp.locked
    b.send(rtp(4), (HOST, relay.b.port))
    assert await a_nat.receive() == (rtp(4), (HOST, relay.a.port))
    assert a_sdp.received.empty()
    assert relay.a.stats.dropped == 2


async def test_strict_source_after_latching_until_the_sdp_address_speaks(
    relay: RelaySession,
) -> None:
    a_sdp, a_nat, other, b = await phone(), await phone(), await phone(), await phone()
    relay.set_remote("a", stream(a_sdp))
    relay.set_remote("b", stream(b))
    for seq in (1, 2, 3):
        a_nat.send(rtp(seq), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(3)
    for seq in range(10, 20):  # same host, consistent SSRC: still refused (strict source)
        other.send(rtp(seq, ssrc=0xBAD), (HOST, relay.a.port))
    a_nat.send(rtp(4), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(4)
    assert relay.a.remote == a_nat.address
    a_sdp.send(rtp(5), (HOST, relay.a.port))  # the SDP-announced peer takes over, for good
    assert (await b.receive())[0] == rtp(5)
    assert relay.a.rtp.locked and relay.a.remote == a_sdp.address
    a_nat.send(rtp(6), (HOST, relay.a.port))
    a_sdp.send(rtp(7), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(7)
    assert other.received.empty()


async def test_packet_from_sdp_address_locks_against_hijack(relay: RelaySession) -> None:
    a, attacker, b = await phone(), await phone("127.0.0.2"), await phone()
    relay.set_remote("a", stream(a))
    relay.set_remote("b", stream(b))
    a.send(rtp(1), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(1)
    for seq in range(666, 676):
        attacker.send(rtp(seq), (HOST, relay.a.port))
    a.send(rtp(2), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(2)
    b.send(rtp(3), (HOST, relay.b.port))
    assert (await a.receive())[0] == rtp(3)
    assert attacker.received.empty()
    assert relay.a.stats.dropped == 10
    assert relay.a.remote == a.address


async def test_race_attacker_first_gets_nothing_and_injects_nothing(
    relay: RelaySession, caplog: pytest.LogCaptureFixture
) -> None:
    """The attacker knows the port and sprays it before the caller speaks: with a
    consistent SSRC, from another host. Nothing of it reaches B, nothing of B reaches it,
    and it is logged once."""
    a, b, attacker = await phone(), await phone(), await phone("127.0.0.2")
    relay.set_remote("a", stream(a))
    relay.set_remote("b", stream(b))
    for seq in range(50):
        attacker.send(rtp(seq, ssrc=0xBAD), (HOST, relay.a.port))
        attacker.send(rtp(seq, ssrc=0xBAD), (HOST, relay.a.port + 1))
    b.send(rtp(1), (HOST, relay.b.port))  # B talks meanwhile: where does it go?
    assert (await a.receive())[0] == rtp(1)  # to A's SDP address on its signalling host
    a.send(rtp(2), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(2)
    for seq in range(50, 60):
        attacker.send(rtp(seq, ssrc=0xBAD), (HOST, relay.a.port))
    a.send(rtp(3), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(3)
    assert attacker.received.empty() and b.received.empty()
    assert sum("possible RTP hijack" in r.message for r in caplog.records) == 1


async def test_nat_phone_wins_over_an_attacker_that_sprays_first(
    relay: RelaySession,
) -> None:
    """Phone A is behind NAT: its SDP address never sends; its real source is on the host
    it signals from. An attacker on another host sprays first and keeps spraying."""
    a_sdp, a_nat, b, attacker = (
        await phone(),
        await phone(),
        await phone(),
        await phone("127.0.0.2"),
    )
    relay.set_remote("a", stream(a_sdp))
    relay.set_remote("b", stream(b))
    for seq in range(20):
        attacker.send(rtp(seq, ssrc=0xBAD), (HOST, relay.a.port))
    for seq in range(1, 4):
        a_nat.send(rtp(seq), (HOST, relay.a.port))
        attacker.send(rtp(100 + seq, ssrc=0xBAD), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(3)
    b.send(rtp(9), (HOST, relay.b.port))
    assert (await a_nat.receive())[0] == rtp(9)
    assert attacker.received.empty() and b.received.empty()
    assert relay.a.remote == a_nat.address


async def test_unknown_host_latches_only_after_the_window(allocator: PortAllocator) -> None:
    """A phone whose media leaves from a host it neither announced nor signals from is
    still served, but only once no trusted source spoke for `latch_window`, and only when
    its SDP address is not on its signalling host (here: SDP 127.0.0.1 private, SIP from
    127.0.0.4 public, media from 127.0.0.3)."""
    session = signalled(RelaySession(allocator, latch_window=0.3))
    session.set_signalling("a", "127.0.0.4")
    try:
        a_sdp, a_odd, b = await phone(), await phone("127.0.0.3"), await phone()
        session.set_remote("a", stream(a_sdp))
        session.set_remote("b", stream(b))
        seq = 0
        while b.received.empty() and seq < 200:  # 20 ms apart: ~15 packets to the window
            seq += 1
            a_odd.send(rtp(seq), (HOST, session.a.port))
            pause = asyncio.Event()
            asyncio.get_running_loop().call_later(0.02, pause.set)
            await pause.wait()
        data, _ = await b.receive()
        assert 10 <= RtpHeader.parse(data).sequence < 200
        assert session.a.remote == a_odd.address
    finally:
        session.close()


async def test_rtcp_latches_only_with_the_rtp_ssrc(relay: RelaySession) -> None:
    a_sdp, a_nat, a_nat_rtcp, b, b_rtcp = [await phone() for _ in range(5)]
    relay.set_remote("a", stream(a_sdp))
    relay.set_remote("b", stream(b, rtcp=b_rtcp))
    for seq in (1, 2, 3):
        a_nat.send(rtp(seq), (HOST, relay.a.port))
    await b.receive()
    forged = bytes([0x80, 201, 0, 1]) + (0xBAD).to_bytes(4, "big")
    report = bytes([0x80, 201, 0, 1]) + (0x11223344).to_bytes(4, "big")
    a_nat_rtcp.send(forged, (HOST, relay.a.port + 1))
    a_nat_rtcp.send(report, (HOST, relay.a.port + 1))
    assert (await b_rtcp.receive())[0] == report
    assert relay.a.rtcp.remote == a_nat_rtcp.address


async def test_reflection_nothing_to_an_address_that_never_sent(
    allocator: PortAllocator,
) -> None:
    """B's SDP names a victim on a host B does not signal from: nothing goes there until
    the victim itself sends media (it never does)."""
    session = signalled(RelaySession(allocator))
    try:
        a, victim = await phone(), await phone("127.0.0.9")
        session.set_remote("a", stream(a))
        session.set_remote("b", stream(victim))
        assert session.b.remote is None
        for seq in range(20):
            a.send(rtp(seq), (HOST, session.a.port))
        assert not session.b.send(rtp(99))
        assert not session.b.send_own(0, b"\xff" * 160, 160)
        await until(lambda: session.a.stats.packets == 20)
        assert await nothing_within(victim, 0.2)
    finally:
        session.close()


async def test_send_errors_are_counted_and_logged_once(
    relay: RelaySession, caplog: pytest.LogCaptureFixture
) -> None:
    """A destination the kernel refuses (port 70000: OverflowError) never raises out of
    the packet path; one log line however many packets."""
    a = await phone()
    relay.set_remote("a", stream(a))
    relay.set_remote("b", AudioStream(HOST, 70000, 70001, PCMU, 101, "sendrecv"))
    for seq in range(30):
        a.send(rtp(seq), (HOST, relay.a.port))
    await until(lambda: relay.a.stats.packets == 30)
    assert relay.a.stats.dropped == 30
    assert sum("cannot send" in r.message for r in caplog.records) == 1


async def test_new_sdp_address_reopens_learning(relay: RelaySession) -> None:
    a, moved, b = await phone(), await phone(), await phone()
    relay.set_remote("a", stream(a))
    relay.set_remote("b", stream(b))
    a.send(rtp(1), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(1)
    relay.set_remote("a", stream(moved))  # re-INVITE from a phone that changed address
    assert not relay.a.rtp.locked
    moved.send(rtp(2), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(2)
    assert relay.a.rtp.locked and relay.a.remote == moved.address


async def test_pcmu_to_pcma_transcoding(relay: RelaySession) -> None:
    a, b = await phone(), await phone()
    relay.set_remote("a", stream(a, PCMU, 101))
    relay.set_remote("b", stream(b, PCMA, 96))
    samples = (8000 * np.sin(np.arange(160) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    ulaw = g711.ulaw_encode(samples).tobytes()
    a.send(rtp(5, ulaw, pt=0, marker=True), (HOST, relay.a.port))
    data, _ = await b.receive()
    header = RtpHeader.parse(data)
    assert header == RtpHeader(8, 5, 800, 0x11223344, True)  # pt changed, the rest kept
    assert data[12:] == g711.alaw_encode(g711.ulaw_decode(ulaw)).tobytes()
    # and back: PCMA from B reaches A as PCMU
    alaw = g711.alaw_encode(samples).tobytes()
    b.send(rtp(6, alaw, pt=8), (HOST, relay.b.port))
    data, _ = await a.receive()
    assert data == rtp(6, g711.ulaw_encode(g711.alaw_decode(alaw)).tobytes(), pt=0)


async def test_telephone_event_payload_type_mapped(relay: RelaySession) -> None:
    a, b = await phone(), await phone()
    relay.set_remote("a", stream(a, PCMU, 101))
    relay.set_remote("b", stream(b, PCMU, 96))
    event = b"\x05\x0a\x00\xa0"  # RFC 4733: digit 5, volume 10, duration 160
    a.send(rtp(9, event, pt=101, marker=True), (HOST, relay.a.port))
    assert (await b.receive())[0] == rtp(9, event, pt=96, marker=True)
    a.send(rtp(10), (HOST, relay.a.port))  # audio untouched: same codec and number
    assert (await b.receive())[0] == rtp(10)
    b.send(rtp(11, event, pt=96), (HOST, relay.b.port))
    assert (await a.receive())[0] == rtp(11, event, pt=101)


async def test_rtcp_forwarded_both_ways(relay: RelaySession) -> None:
    a, a_rtcp, b, b_rtcp = await phone(), await phone(), await phone(), await phone()
    relay.set_remote("a", stream(a, rtcp=a_rtcp))
    relay.set_remote("b", stream(b, rtcp=b_rtcp))
    receiver_report = bytes([0x80, 201, 0, 1]) + (0x11223344).to_bytes(4, "big")
    a_rtcp.send(receiver_report, (HOST, relay.a.port + 1))
    assert await b_rtcp.receive() == (receiver_report, (HOST, relay.b.port + 1))
    b_rtcp.send(receiver_report[::-1], (HOST, relay.b.port + 1))
    assert await a_rtcp.receive() == (receiver_report[::-1], (HOST, relay.a.port + 1))
    assert (relay.a.stats.rtcp_packets, relay.a.stats.packets) == (1, 0)
    assert b.received.empty() and a.received.empty()


async def test_media_timeout_fires(allocator: PortAllocator) -> None:
    fired: list[LegName] = []
    event = asyncio.Event()

    def on_timeout(leg: LegName) -> None:
        fired.append(leg)
        event.set()

    session = signalled(RelaySession(allocator, timeout=0.3, on_timeout=on_timeout))
    try:
        a, b = await phone(), await phone()
        session.set_remote("a", stream(a))
        session.set_remote("b", stream(b))
        a.send(rtp(1), (HOST, session.a.port))  # A talks once; B never does
        await b.receive()
        await asyncio.wait_for(event.wait(), WAIT)
        assert fired == ["b"]
    finally:
        session.close()


async def test_media_timeout_not_armed_on_hold(allocator: PortAllocator) -> None:
    fired = asyncio.Event()
    session = RelaySession(allocator, timeout=0.3, on_timeout=lambda leg: fired.set())
    try:
        session.hold("a", True)
        quiet = asyncio.Event()
        asyncio.get_running_loop().call_later(0.9, quiet.set)  # three timeouts on hold
        await asyncio.wait_for(quiet.wait(), WAIT)
        assert not fired.is_set()
        session.hold("a", False)  # resumed: a fresh period, then it fires
        await asyncio.wait_for(fired.wait(), WAIT)
    finally:
        session.close()


async def test_close_releases_ports(allocator: PortAllocator) -> None:
    session = RelaySession(allocator)
    ports = {session.a.port, session.b.port}
    sockets = [session.a.pair.rtp, session.a.pair.rtcp, session.b.pair.rtp, session.b.pair.rtcp]
    assert allocator.in_use == 2
    session.close()
    session.close()
    assert allocator.in_use == 0
    assert [s.fileno() for s in sockets] == [-1, -1, -1, -1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, min(ports)))  # free again for anyone


async def test_allocator_exhaustion_and_reuse() -> None:
    small = PortAllocator(HOST, 31300, 31304)  # pairs 31300/1 and 31302/3
    first = RelaySession(small)
    assert {first.a.port, first.b.port} == {31300, 31302}
    with pytest.raises(PortsExhaustedError) as info:
        RelaySession(small)
    assert str(info.value) == "no free RTP port pair in 31300-31304 on 127.0.0.1 (2 pairs in use)"
    assert small.in_use == 2
    first.close()
    again = RelaySession(small)
    assert {again.a.port, again.b.port} == {31300, 31302}
    again.close()


def test_allocator_skips_ports_held_by_others() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, 31401))  # the RTCP port of the first pair
        allocator = PortAllocator(HOST, 31400, 31404)
        pair = allocator.allocate()
        assert (pair.rtp_port, pair.rtcp_port) == (31402, 31403)
        allocator.release(pair)


def test_allocator_rejects_an_empty_range() -> None:
    with pytest.raises(MediaError, match="holds no even/odd pair"):
        PortAllocator(HOST, 31001, 31002)


def test_payload_maps() -> None:
    a = AudioStream(HOST, 1, 2, PCMU, 101, "sendrecv")
    assert payload_map(a, a) is None
    assert payload_map(a, AudioStream(HOST, 1, 2, PCMA, 101, "sendrecv")) == {0: (8, ULAW_TO_ALAW)}
    assert payload_map(AudioStream(HOST, 1, 2, PCMA, None, "sendrecv"), a) == {8: (0, ALAW_TO_ULAW)}
    opus = AudioStream(HOST, 1, 2, Codec(111, "opus", 48000, 2), None, "sendrecv")
    assert payload_map(opus, AudioStream(HOST, 1, 2, Codec(96, "OPUS", 48000, 2), None, "x")) == {
        111: (96, None)
    }
    with pytest.raises(MediaError, match="cannot transcode opus/48000 to PCMU"):
        payload_map(opus, a)


def test_g711_tables_known_vectors() -> None:
    # μ-law 0xFF/0x7F are +0/-0 -> A-law +0 (0xD5); 0x80 and 0x00 are the extremes.
    assert [ULAW_TO_ALAW[c] for c in (0xFF, 0x7F, 0x80, 0x00)] == [0xD5, 0xD5, 0xAA, 0x2A]
    assert [ALAW_TO_ULAW[c] for c in (0xD5, 0x55, 0xAA, 0x2A)] == [0xFE, 0x7E, 0x80, 0x00]
    codes = bytes(range(256))
    assert codes.translate(ULAW_TO_ALAW) == g711.alaw_encode(g711.ulaw_decode(codes)).tobytes()
    assert codes.translate(ALAW_TO_ULAW) == g711.ulaw_encode(g711.alaw_decode(codes)).tobytes()


def test_rewrite_packet_with_csrc_and_extension() -> None:
    header = bytearray(rtp(1, b"", pt=0))
    header[0] = 0x80 | 0x10 | 1  # X bit, one CSRC
    packet = bytes(header) + b"CSRC" + b"\xbe\xde\x00\x01" + b"EXT!" + b"\xff\x00"
    assert payload_offset(packet) == 12 + 4 + 8
    out = rewrite_packet(packet, {0: (8, ULAW_TO_ALAW)})
    assert out == with_payload_type(packet[:24], 8) + b"\xd5\x2a"
    assert rewrite_packet(packet, {}) is packet
    with pytest.raises(MediaError, match="not an RTP version 2 packet"):
        rewrite_packet(b"\x00\x00" + bytes(12), {0: (8, ULAW_TO_ALAW)})


def test_rtp_helpers() -> None:
    assert is_rtcp(bytes([0x80, 200])) and not is_rtcp(rtp(1))
    assert RtpHeader.parse(rtp(3, pt=8, marker=True)) == RtpHeader(8, 3, 480, 0x11223344, True)
    with pytest.raises(MediaError, match="RTP header extension truncated"):
        payload_offset(bytes([0x90]) + bytes(11))


def test_allocator_hands_out_unpredictable_ports() -> None:
    """Ten pairs from a range of 100 are not the next ports one after the other (the odds
    of a random draw looking sequential are ~1e-18), and a released pair is not reused
    at once (quarantine)."""
    allocator = PortAllocator(HOST, 31500, 31700)
    pairs = [allocator.allocate() for _ in range(10)]
    try:
        ports = [p.rtp_port for p in pairs]
        assert all(p % 2 == 0 and 31500 <= p < 31700 for p in ports)
        assert ports != list(range(ports[0], ports[0] + 20, 2))
        assert len(set(ports)) == 10
        released = pairs.pop()
        allocator.release(released)
        again = allocator.allocate()
        pairs.append(again)
        assert again.rtp_port != released.rtp_port
    finally:
        for pair in pairs:
            allocator.release(pair)


async def test_hold_timeout_ends_an_endless_hold(allocator: PortAllocator) -> None:
    fired: list[LegName] = []
    event = asyncio.Event()

    def on_timeout(leg: LegName) -> None:
        fired.append(leg)
        event.set()

    session = RelaySession(allocator, timeout=60.0, hold_timeout=0.3, on_timeout=on_timeout)
    try:
        session.hold("b", True)
        session.hold("b", True)  # a further offer while held does not renew the hold
        await asyncio.wait_for(event.wait(), WAIT)
        assert fired == ["b"]
    finally:
        session.close()


def test_stream_continuity_keeps_one_stream_across_sources() -> None:
    """Pure: relayed packets pass unchanged until the source changes; the switch's own
    packets and a new source continue SSRC, sequence (wrapping at 2^16) and time."""
    first = rtp(0xFFFE, ssrc=0xAAAA)
    stream = StreamContinuity.following(first, at=10.0)
    assert stream.relayed(first, 10.0) == first  # the same source: identity
    nxt = rtp(0xFFFF, ssrc=0xAAAA)
    assert stream.relayed(nxt, 10.02) == nxt
    own = RtpHeader.parse(stream.own(0, 10.04, 160) + b"\xff" * 160)
    assert (own.ssrc, own.sequence, own.marker) == (0xAAAA, 0, True)
    assert own.timestamp == (0xFFFF * 160 + 160) & 0xFFFFFFFF
    own2 = RtpHeader.parse(stream.own(0, 10.06, 160))
    assert (own2.sequence, own2.timestamp, own2.marker) == (1, own.timestamp + 160, False)
    back = stream.relayed(rtp(7, b"\x12" * 160, ssrc=0xBBBB), 11.06)  # 1 s later
    header = RtpHeader.parse(back)
    assert (header.ssrc, header.sequence, header.marker) == (0xAAAA, 2, True)
    assert header.timestamp == own2.timestamp + 8000  # the second that passed
    assert back[12:] == b"\x12" * 160
    after = RtpHeader.parse(stream.relayed(rtp(8, ssrc=0xBBBB), 11.08))
    assert (after.sequence, after.timestamp, after.marker) == (3, header.timestamp + 160, False)
    fresh = StreamContinuity.following(None, at=0.0)
    assert RtpHeader.parse(fresh.own(8, 0.0, 160)).marker


def test_allocator_out_of_descriptors_is_ports_exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMFILE while making a socket: PortsExhaustedError (the B2BUA's 503), the range kept."""
    allocator = PortAllocator(HOST, 31800, 31810)

    def no_fds(*args: object) -> socket.socket:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(socket, "socket", no_fds)
    with pytest.raises(PortsExhaustedError, match="no socket for RTP: Too many open files"):
        allocator.allocate()
    monkeypatch.undo()
    assert allocator.available == 5
    allocator.release(allocator.allocate())
