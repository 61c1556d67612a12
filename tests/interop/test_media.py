"""RTP through the switch's relay: sipp signals as the callee, the test's own UDP
sockets are both phones' media, so every packet can be checked byte for byte.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.g711 import ulaw_encode
from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.wav import read_wav
from pbx.server import PbxServer
from sip.message import Request, make_response, parse_message
from tests.interop.peers import SippUas, free_port
from tests.interop.phones import closed_cdrs, dial, in_thread, phone, running_server
from tests.interop.sipclient import SipClient, media_address

PACKETS = 50


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    base = free_port(40)
    async with running_server(tmp_path, rtp_port_min=base, rtp_port_max=base + 39) as pbx:
        yield pbx


def rtp(seq: int, pt: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), deadline - loop.time()))
        except TimeoutError:
            break
    return got


async def media_phone(
    server: PbxServer, tmp_path: Path, rtp_port: int, pt: int, codec: str
) -> SippUas:
    """Register 1002 and start a sipp callee whose SDP names `rtp_port` and `codec`."""
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{rtp_port};{pt};{codec}\n")
    return await phone(
        server, "1002", "uas_answer_media.xml", tmp_path / "callee", "-inf", str(inf)
    )


@pytest.mark.parametrize(("pt", "codec"), [(0, "PCMU"), (8, "PCMA")])
async def test_rtp_both_ways_through_the_relay(
    server: PbxServer, tmp_path: Path, pt: int, codec: str
) -> None:
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    callee_port = callee_rtp.getsockname()[1]
    uas = await media_phone(server, tmp_path, callee_port, pt, codec)
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", rtp_port=caller_rtp.getsockname()[1])
            assert ok.status == 200
            # The caller is answered in its own codec (PCMU), at the relay.
            assert b"m=audio" in ok.body and b" RTP/AVP 0" in ok.body
            relay_a = media_address(ok.body)
            assert relay_a[1] != callee_port
            # Where the callee was told to send: the INVITE sipp received.
            [log] = (tmp_path / "callee").glob("*_messages.log")
            invite_to_callee = log.read_bytes().split(b"INVITE sip:", 1)[1]
            relay_b = media_address(invite_to_callee)

            ulaw = bytes(range(256))[:160]
            for seq in range(PACKETS):
                caller_rtp.sendto(rtp(seq, 0, ulaw, 0x1111), relay_a)
            heard = await receive(callee_rtp, PACKETS)
            assert len(heard) == PACKETS
            want = ulaw if pt == 0 else ulaw.translate(ULAW_TO_ALAW)
            assert {(p[1] & 0x7F, p[12:]) for p in heard} == {(pt, want)}
            assert sorted(struct.unpack("!H", p[2:4])[0] for p in heard) == list(range(PACKETS))

            back = bytes(reversed(want))
            for seq in range(PACKETS):
                callee_rtp.sendto(rtp(seq, pt, back, 0x2222), relay_b)
            returned = await receive(caller_rtp, PACKETS)
            assert len(returned) == PACKETS
            expected = back if pt == 0 else back.translate(ALAW_TO_ULAW)
            assert {(p[1] & 0x7F, p[12:]) for p in returned} == {(0, expected)}

            bye = await ua.exchange(ua.bye_for(invite, ok), timeout=10)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()


async def test_silent_call_is_hung_up_on_media_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, media_timeout=1.0) as server:
        uas = await media_phone(server, tmp_path, free_port(), 0, "PCMU")
        try:
            async with SipClient(server.sip_port) as ua:
                _, ok = await dial(ua, server, "1002")
                assert ok.status == 200
                # Nobody sends RTP: after 1 s the switch hangs up both legs.
                raw = await ua.receive(timeout=10)
                assert raw is not None and raw.startswith(b"BYE ")
                bye = parse_message(raw)
                assert isinstance(bye, Request)
                ua.send(bytes(make_response(bye, 200)))
            assert await in_thread(uas.finish) == 0
        finally:
            uas.kill()
        [cdr] = await closed_cdrs(server)
        assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "media timeout")


async def test_recorded_call_has_one_side_per_channel(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None
    await server._store.dialplan.set_recording_mode("1002", "always")
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    uas = await media_phone(server, tmp_path, callee_rtp.getsockname()[1], 0, "PCMU")
    t = np.arange(160) / 8000
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", rtp_port=caller_rtp.getsockname()[1])
            assert ok.status == 200
            relay_a = media_address(ok.body)
            [log] = (tmp_path / "callee").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            loop = asyncio.get_running_loop()
            start = loop.time()
            for seq in range(50):  # 1 s both ways: the caller at 440 Hz, the callee at 1 kHz
                low = ulaw_encode(8000 * np.sin(2 * np.pi * 440 * (t + seq * 0.02))).tobytes()
                high = ulaw_encode(8000 * np.sin(2 * np.pi * 1000 * (t + seq * 0.02))).tobytes()
                caller_rtp.sendto(rtp(seq, 0, low, 0x1), relay_a)
                callee_rtp.sendto(rtp(seq, 0, high, 0x2), relay_b)
                await asyncio.sleep(max(0.0, start + (seq + 1) * 0.02 - loop.time()))
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=5)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()
    [cdr] = await closed_cdrs(server)
    assert cdr.recording is not None
    wav = read_wav(cdr.recording)
    assert (wav.rate, wav.samples.shape[1]) == (8000, 2)
    for channel, hz in ((0, 440), (1, 1000)):
        x = wav.samples[:, channel]
        assert len(x) >= 7000
        peak = np.fft.rfftfreq(len(x), 1 / 8000)[int(np.argmax(np.abs(np.fft.rfft(x))))]
        assert abs(peak - hz) < 10, (channel, peak)
