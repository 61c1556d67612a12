"""The browser phone's media pieces without a browser: the RTP leg toward the switch (its
stream, its RFC 4733 digits, whom it listens to) and the answer's candidates. The codec
work between browser and switch: tests/web/test_phone_codec.py."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct

import numpy as np
import pytest

from acd.web.phone_rtp import SwitchLeg
from acd.web.phone_sip import LineCall
from acd.web.phone_webrtc import pin_candidates
from media.g711 import ulaw_decode, ulaw_encode
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec, SessionDescription, answer_direction, g711_offer
from media.telephone_event import TelephoneEvent
from sip.headers import Headers
from sip.message import Request
from sip.uri import SipUri


async def test_leg_streams_audio_digits_and_listens_only_to_the_switch() -> None:
    switch = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    switch.bind(("127.0.0.1", 0))
    switch.setblocking(False)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    port = switch.getsockname()[1]
    leg = SwitchLeg(PortAllocator("127.0.0.1", 47000, 47100), "test")
    loop = asyncio.get_running_loop()
    try:
        leg.set_remote(
            AudioStream("127.0.0.1", port, port + 1, Codec(0, "PCMU", 8000), 101, "sendrecv")
        )
        tone = (6000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
        leg.say(tone)
        packets = [await asyncio.wait_for(loop.sock_recv(switch, 2048), 5)]
        assert leg.send_digits("5")  # a digit suppresses the audio while it is sent
        async with asyncio.timeout(5):
            while len(packets) < 14:
                packets.append(await loop.sock_recv(switch, 2048))
        headers = [struct.unpack("!BBHII", p[:12]) for p in packets]
        assert len({h[4] for h in headers}) == 1  # one SSRC
        seqs = [h[2] for h in headers]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        # The browser's frame first (as sent, in PCMU), then the digit's events.
        assert headers[0][1] & 0x7F == 0
        assert np.max(np.abs(ulaw_decode(packets[0][12:]) - tone)) < 400
        events = [(h, TelephoneEvent.parse(p[12:])) for h, p in zip(headers, packets, strict=True)
                  if h[1] & 0x7F == 101]  # fmt: skip
        assert events[0][0][1] & 0x80  # marker on the first
        assert {e.event for _, e in events} == {5}
        assert len({h[3] for h, _ in events}) == 1  # one timestamp: one digit
        assert [e.end for _, e in events][-3:] == [True, True, True]
        # What the switch sends is heard (jitter buffer); a stranger's packets are not.
        heard = ulaw_encode(tone).tobytes()
        for seq in range(3):
            stranger.sendto(struct.pack("!BBHII", 0x80, 0, 100 + seq, seq * 160, 7) + heard,
                            ("127.0.0.1", leg.port))  # fmt: skip
            switch.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 9) + heard,
                          ("127.0.0.1", leg.port))  # fmt: skip
        async with asyncio.timeout(5):
            while leg.received_packets < 3:
                await asyncio.sleep(0.01)
        assert leg.received_packets == 3
        assert leg.heard.pop() is not None and len(leg.heard) == 2
    finally:
        leg.close()
        switch.close()
        stranger.close()


ANSWER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=candidate:1 1 udp 2130706431 192.0.2.2 50001 typ host",
        "a=candidate:2 1 udp 2130706431 198.51.100.7 50002 typ host",
        "a=rtpmap:111 opus/48000/2",
        "",
    ]
)


@pytest.mark.parametrize(
    ("host", "kept"),
    [
        ("192.0.2.2", ["192.0.2.2"]),  # the console's address: only its candidate
        ("198.51.100.7", ["198.51.100.7"]),
        ("0.0.0.0", ["192.0.2.2", "198.51.100.7"]),  # every address: all of them
        ("127.0.0.1", ["192.0.2.2", "198.51.100.7"]),  # none on it: all (same machine)
    ],
)
def test_candidates_pinned_to_the_console_address(host: str, kept: list[str]) -> None:
    sdp = pin_candidates(ANSWER, host)
    found = [line.split()[4] for line in sdp.split("\r\n") if line.startswith("a=candidate:")]
    assert found == kept
    assert "a=rtpmap:111 opus/48000/2" in sdp


@pytest.mark.parametrize(
    ("offered", "holding", "answered"),
    [
        ("sendrecv", False, "sendrecv"),
        ("sendonly", False, "recvonly"),
        ("recvonly", False, "sendonly"),
        ("inactive", False, "inactive"),
        ("sendrecv", True, "sendonly"),
        ("sendonly", True, "inactive"),
        ("recvonly", True, "sendonly"),
        ("inactive", True, "inactive"),
    ],
)
def test_answer_direction(offered: str, holding: bool, answered: str) -> None:
    """RFC 3264 §6.1, for a side that may hold the call itself."""
    assert answer_direction(offered, holding) == answered


async def test_a_browser_call_keeps_one_origin_and_raises_its_version_on_change() -> None:
    leg = SwitchLeg(PortAllocator("127.0.0.1", 47200, 47300), "test")
    fields = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1"),
        ("From", "<sip:1003@127.0.0.1>;tag=a"),
        ("To", "<sip:1001@127.0.0.1>"),
        ("Call-ID", "origin-test"),
        ("CSeq", "1 INVITE"),
    ]
    invite = Request("INVITE", SipUri.parse("sip:1001@127.0.0.1"), Headers(fields), b"")
    call = LineCall("c1", "out", "1001", leg, invite)
    offer = g711_offer("127.0.0.1", 47200)
    first = call.describe(offer)
    same = call.describe(offer)
    held = call.describe(first, "sendonly")
    back = call.describe(held, "sendrecv")

    def origin(sdp: bytes) -> list[str]:
        return SessionDescription.parse(sdp).origin.split()

    def direction(sdp: bytes) -> str:
        parsed = SessionDescription.parse(sdp)
        return parsed.direction_of(parsed.audio())

    assert origin(first)[0] == "aiopbx" and origin(first) == origin(same)
    assert {origin(s)[1] for s in (first, held, back)} == {origin(first)[1]}
    assert [int(origin(s)[2]) - int(origin(first)[2]) for s in (held, back)] == [1, 2]
    assert (direction(held), direction(back)) == ("sendonly", "sendrecv")
    assert call.local_sdp == back
    leg.close()
