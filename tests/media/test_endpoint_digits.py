"""MediaEndpoint sends digits as RFC 4733 telephone-events in its one stream, and the
switch's own receiving side (another MediaEndpoint) hears them, over real UDP on
127.0.0.1. A tap in the middle sees every packet on the wire and passes it on."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct

import pytest

from media.endpoint import MediaEndpoint, tone
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec
from media.telephone_event import TelephoneEvent, TelephoneEventError

PCMU = Codec(0, "PCMU", 8000)
EVENT_PT = 101


def _stream(port: int, events: int | None) -> AudioStream:
    return AudioStream("127.0.0.1", port, port + 1, PCMU, events, "sendrecv")


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def test_digits_sent_are_heard_by_the_switchs_receiver() -> None:
    """The sender (a simulated callee) presses 1, 9 and # while it plays a tone; the tap
    sees one SSRC, sequence numbers +1 throughout, each digit's events with one
    timestamp, the marker on its first packet, durations growing, three end packets and
    no audio in between; the receiving endpoint's digit queue gets "19#" in order."""
    ports = PortAllocator("127.0.0.1", 42200, 42300)
    tap = _socket()
    tap_port = tap.getsockname()[1]
    sender = MediaEndpoint(ports, name="callee")
    switch = MediaEndpoint(ports, name="switch")
    loop = asyncio.get_running_loop()
    try:
        sender.set_remote(_stream(tap_port, EVENT_PT), signalling_host="127.0.0.1")
        switch.set_remote(_stream(tap_port, EVENT_PT), signalling_host="127.0.0.1")
        assert sender.send_digits("19#")
        playing = asyncio.ensure_future(sender.play(tone(440, 2.0)))
        wire: list[bytes] = []
        got = ""
        async with asyncio.timeout(10):
            while len(got) < 3 or sender.digits_sent != "19#":
                data, source = await loop.sock_recvfrom(tap, 2048)
                if source[1] != sender.port:
                    continue  # the switch's own stream, also sent to the tap
                wire.append(data)
                tap.sendto(data, ("127.0.0.1", switch.port))  # from the SDP's address
                while not switch.digits.empty():
                    got += switch.digits.get_nowait()
        assert got == "19#"
        playing.cancel()
    finally:
        sender.close()
        switch.close()
        tap.close()
    headers = [struct.unpack_from("!BBHII", d) for d in wire]
    assert {h[4] for h in headers} == {headers[0][4]}  # one SSRC
    seqs = [h[2] for h in headers]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    events: dict[int, list[tuple[bool, TelephoneEvent]]] = {}
    kinds = []
    for data, (_, second, _, ts, _) in zip(wire, headers, strict=True):
        if second & 0x7F == EVENT_PT:
            events.setdefault(ts, []).append((bool(second & 0x80), TelephoneEvent.parse(data[12:])))
            kinds.append("E")
        else:
            assert second & 0x7F == PCMU.payload_type
            kinds.append("A")
    assert [evs[0][1].digit for evs in events.values()] == ["1", "9", "#"]
    for evs in events.values():
        markers = [m for m, _ in evs]
        assert markers == [True] + [False] * (len(evs) - 1)
        durations = [e.duration for _, e in evs]
        assert durations == sorted(durations) and durations[0] == 0
        assert [e.end for _, e in evs][-3:] == [True] * 3  # the end packet three times
        assert not any(e.end for _, e in evs[:-3])
        assert evs[-1][1].duration == 1280  # 160 ms at 8 kHz
    # The events of one digit come in one run, no audio packet inside it.
    runs = "".join(kinds).strip("A").split("A")
    assert [len(r) for r in runs if r] == [6, 6, 6]  # start, 2 updates, 3 ends


async def test_no_telephone_event_negotiated_sends_nothing() -> None:
    ports = PortAllocator("127.0.0.1", 42300, 42400)
    media = MediaEndpoint(ports, name="plain")
    try:
        assert not media.send_digits("1")  # no stream yet
        media.set_remote(_stream(9, None))
        assert not media.send_digits("1")
        media.set_remote(_stream(9, EVENT_PT))
        with pytest.raises(TelephoneEventError, match="not a DTMF digit"):
            media.send_digits("1z")
        assert media.send_digits("1")
        media.close()
        assert not media.send_digits("1")
    finally:
        media.close()
