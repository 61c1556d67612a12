"""MediaEndpoint's source rules (`SourceLatch`, a table of cases) and its one
continuous stream, over real UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from media.endpoint import LATCH_PACKETS, MediaEndpoint, SourceLatch, tone
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec

PCMU = Codec(0, "PCMU", 8000)
SDP = ("10.0.0.5", 4000)  # what the phone's SDP names
PHONE = ("127.0.0.1", 5000)  # where the phone's SIP comes from (and its NAT'd RTP)
OTHER = ("127.0.0.1", 6666)  # a third party


def _run(latch: SourceLatch, packets: list[tuple[tuple[str, int], int]]) -> list[bool]:
    return [latch.admit(source, ssrc) for source, ssrc in packets]


def test_sdp_address_of_the_signalling_host_is_trusted_and_strict() -> None:
    latch = SourceLatch(("127.0.0.1", 4000), "127.0.0.1")
    assert latch.destination == ("127.0.0.1", 4000)  # prompts may go there at once
    assert _run(latch, [(OTHER, 1)] * 5) == [False] * 5  # nobody else latches
    assert latch.destination == ("127.0.0.1", 4000)
    assert _run(latch, [(("127.0.0.1", 4000), 7), (OTHER, 1)]) == [True, False]
    assert latch.strict and latch.destination == ("127.0.0.1", 4000)


def test_behind_nat_the_first_consistent_source_latches_until_the_sdp_address_speaks() -> None:
    latch = SourceLatch(SDP, "127.0.0.1")
    assert latch.destination is None  # nothing to an address that never sent us media
    # Changing SSRCs never latch; a run of one SSRC does, on its LATCH_PACKETS-th packet.
    assert _run(latch, [(PHONE, 1), (PHONE, 2), (PHONE, 3)]) == [False] * 3
    run = _run(latch, [(PHONE, 9)] * LATCH_PACKETS)
    assert run == [False] * (LATCH_PACKETS - 1) + [True]
    assert latch.destination == PHONE and not latch.strict
    assert _run(latch, [(OTHER, 5)] * (LATCH_PACKETS + 1)) == [False] * (LATCH_PACKETS + 1)
    assert latch.destination == PHONE
    # The SDP address speaking takes over for good.
    assert _run(latch, [(SDP, 3), (PHONE, 9)]) == [True, False]
    assert latch.destination == SDP and latch.strict


def test_an_interleaved_third_party_breaks_the_run() -> None:
    latch = SourceLatch(SDP, "127.0.0.1")
    packets = [(PHONE, 9), (OTHER, 5)] * LATCH_PACKETS
    assert not any(_run(latch, packets))
    assert latch.destination is None


class Phone:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def packets(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(2048))
            except BlockingIOError:
                return out


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MediaEndpoint, Phone]]:
    endpoint = MediaEndpoint(PortAllocator("127.0.0.1", 31200, 31300))
    phone = Phone()
    host, port = phone.address
    endpoint.set_remote(AudioStream(host, port, 0, PCMU, 101, "sendrecv"), signalling_host=host)
    yield endpoint, phone
    endpoint.close()
    phone.sock.close()


async def test_one_stream_across_prompt_silence_prompt(
    pair: tuple[MediaEndpoint, Phone],
) -> None:
    endpoint, phone = pair
    assert await endpoint.play(tone(500, 0.2))
    for _ in range(100):  # bounded: 10 frames of silence at least
        if endpoint.sent_packets >= 20:
            break
        await asyncio.sleep(0.02)
    assert await endpoint.play(tone(900, 0.2))
    got = phone.packets()
    fields = [struct.unpack("!BBHII", p[:12]) for p in got]
    assert len({f[4] for f in fields}) == 1
    seqs, stamps = [f[2] for f in fields], [f[3] for f in fields]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    assert stamps == [(stamps[0] + 160 * i) & 0xFFFFFFFF for i in range(len(stamps))]
    silent = [p for p in got if set(p[12:]) == {0xFF}]  # PCMU silence between the prompts
    assert len(silent) >= 10
    markers = [i for i, f in enumerate(fields) if f[1] & 0x80]
    assert len(markers) == 2  # the first frame of each prompt


async def test_the_verbs_end_when_the_endpoint_closes(pair: tuple[MediaEndpoint, Phone]) -> None:
    endpoint, _ = pair
    playing = asyncio.ensure_future(endpoint.play(tone(500, 30.0)))
    collecting = asyncio.ensure_future(endpoint.collect_digits(4, timeout=30.0))
    await asyncio.sleep(0)
    endpoint.close()
    assert await asyncio.wait_for(playing, 5) is False
    assert await asyncio.wait_for(collecting, 5) == ""
    assert await endpoint.collect_digits(1, timeout=30.0) == ""
    assert await endpoint.play(tone(500, 1.0)) is False


async def test_frame_listeners_hear_skipped_rtp_time_as_silence(
    pair: tuple[MediaEndpoint, Phone],
) -> None:
    """Frames follow the stream's RTP timestamps, not the arrival times: a jump over
    two lost packets (or suppressed silence) gives two silent frames; packets that come
    late but contiguous give none, nor does a late repeat, a new SSRC or a jump over 2 s."""
    endpoint, phone = pair
    heard: list[int] = []  # the loudest sample of each frame given to the listener
    endpoint.frame_listeners.append(lambda frame: heard.append(int(abs(frame).max())))
    loud = bytes([0x80]) * 160  # PCMU near full scale

    def send(seq: int, ts: int, ssrc: int = 7) -> None:
        header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        phone.sock.sendto(header + loud, ("127.0.0.1", endpoint.port))

    async def until_heard(n: int) -> None:
        async with asyncio.timeout(5):
            while len(heard) < n:
                await asyncio.sleep(0.005)

    base = 0xFFFFFF00  # the timestamps wrap on the way
    for i in range(3):  # three contiguous packets sent at once (arriving "late")
        send(i, base + 160 * i)
    await until_heard(3)
    send(5, base + 160 * 5)  # two packets' time skipped
    await until_heard(6)
    send(4, base + 160 * 4)  # the lost one, late: nothing skipped
    send(6, base + 160 * 6)
    await until_heard(8)
    send(7, base + 160 * 6 + 8000 * 3)  # a 3 s jump: a new stream's time, no silence
    send(1, 5000, ssrc=8)  # a new SSRC
    await until_heard(10)
    assert [h > 0 for h in heard] == [True] * 3 + [False] * 2 + [True] * 5
