"""The Call API's media verbs over real sockets: an application answers with the
switch's own media, plays a tone, and collects digits the caller sends as RFC 4733
telephone-events, SIP INFO or in-band tones."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from media.dtmf_tones import DtmfGenerator
from media.g711 import ulaw_decode, ulaw_encode
from media.ports import PortAllocator
from media.telephone_event import event_packets
from pbx.calls import CallManager, InboundCall
from sip.endpoint import Endpoint
from sip.message import Request, Response, make_response, parse_message
from sip.peer import Peer
from sip.transaction import Timers
from tests.interop.peers import free_port
from tests.interop.sipclient import SipClient, media_address


@dataclass
class App:
    """A one-call application: plays a 1 kHz tone, then waits for up to 4 digits."""

    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    played: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)

    async def __call__(self, call: InboundCall) -> None:
        base = free_port(4)
        await call.answer_media(PortAllocator("127.0.0.1", base, base + 3), "127.0.0.1")
        t = np.arange(8000 * 1) / 8000
        tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        await self.played.put(await call.play(tone, stop_on_digit=True))
        got = await call.collect_digits(4, timeout=5, inter_digit_timeout=3, terminator="#")
        await self.digits.put(got)
        await call.hangup()


@pytest.fixture
async def switch() -> AsyncIterator[tuple[int, App]]:
    endpoint = Endpoint(timers=Timers(t1=0.1))
    port = await endpoint.listen("127.0.0.1", 0, tcp=False)

    def anyone(request: Request, peer: Peer) -> str:
        return request.from_.uri.user or "anonymous"  # type: ignore[union-attr]

    manager = CallManager(endpoint, authenticate=anyone, sip_host="127.0.0.1", sip_port=port)
    app = App()
    manager.on_incoming = app
    try:
        yield port, app
    finally:
        await manager.close()
        await endpoint.close()


def rtp(seq: int, pt: int, payload: bytes, ts: int, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, 0x4242) + payload


async def _answered(ua: SipClient, sock: socket.socket) -> tuple[bytes, Response, tuple[str, int]]:
    invite = ua.invite("1001", "500", rtp_port=sock.getsockname()[1], events=True)
    ok = await ua.exchange(invite, timeout=5)
    assert ok.status == 200
    assert b"telephone-event/8000" in ok.body and b"PCMU/8000" in ok.body
    ua.send(ua.ack_2xx(invite, ok))
    return invite, ok, media_address(ok.body)


async def _hear(sock: socket.socket, packets: int) -> np.ndarray:
    loop = asyncio.get_running_loop()
    chunks = []
    for _ in range(packets):
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 5)
        chunks.append(ulaw_decode(data[12:]))
    return np.concatenate(chunks)


async def _bye_from_switch(ua: SipClient) -> None:
    while True:
        raw = await ua.receive(timeout=10)
        assert raw is not None, "the application did not hang up"
        message = parse_message(raw)
        if isinstance(message, Request) and message.method == "BYE":
            ua.send(bytes(make_response(message, 200)))
            return


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def test_play_then_rfc4733_digits(switch: tuple[int, App]) -> None:
    port, app = switch
    sock = _socket()
    try:
        async with SipClient(port) as ua:
            _, _, relay = await _answered(ua, sock)
            audio = await _hear(sock, 10)  # 200 ms of the prompt
            spectrum = np.abs(np.fft.rfft(audio.astype(float)))
            assert abs(np.fft.rfftfreq(len(audio), 1 / 8000)[int(np.argmax(spectrum))] - 1000) < 10
            seq = 0
            for n, digit in enumerate("42#"):
                for packet in event_packets(digit, 100):
                    sock.sendto(
                        rtp(seq, 101, packet.payload, 1000 + n * 4000, packet.marker), relay
                    )
                    seq += 1
            assert await asyncio.wait_for(app.played.get(), 5) is False  # cut short by "4"
            assert await asyncio.wait_for(app.digits.get(), 10) == "42"
            await _bye_from_switch(ua)
    finally:
        sock.close()


async def test_in_band_and_info_digits(switch: tuple[int, App]) -> None:
    port, app = switch
    sock = _socket()
    try:
        async with SipClient(port) as ua:
            invite = ua.invite("1001", "500", rtp_port=sock.getsockname()[1])  # no events
            ok = await ua.exchange(invite, timeout=5)
            assert ok.status == 200 and b"telephone-event" not in ok.body
            ua.send(ua.ack_2xx(invite, ok))
            relay = media_address(ok.body)
            # "7" as tones in the audio itself, 20 ms packets of μ-law.
            samples = DtmfGenerator(tone_ms=100, gap_ms=100).generate("7")
            codes = ulaw_encode(samples).tobytes()
            for seq in range(len(codes) // 160):
                sock.sendto(rtp(seq, 0, codes[seq * 160 : (seq + 1) * 160], seq * 160), relay)
            assert await asyncio.wait_for(app.played.get(), 5) is False
            # "9" as SIP INFO, then "#" to finish.
            for cseq, digit in ((3, "9"), (4, "#")):
                body = f"Signal={digit}\r\nDuration=160\r\n"
                info = ua.in_dialog(
                    invite, ok, "INFO", cseq, ("Content-Type: application/dtmf-relay",)
                ).replace(
                    b"Content-Length: 0\r\n\r\n",
                    f"Content-Length: {len(body)}\r\n\r\n{body}".encode(),
                )
                assert (await ua.exchange(info, timeout=5)).status == 200
            assert await asyncio.wait_for(app.digits.get(), 10) == "79"
            await _bye_from_switch(ua)
    finally:
        sock.close()
