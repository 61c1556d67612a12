"""IVR menus on real sockets: the caller (the test's own UDP client) hears the prompts
— each a tone of its own, so the order can be checked in the audio — and presses
keys as RFC 4733 telephone-events; a key reaches an extension (a sipp phone), silence
and wrong keys replay the right prompts and end in the fallback."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ivr.prompts import PromptStore
from ivr.runner import IvrApplication
from media.g711 import ulaw_decode
from media.telephone_event import event_packets
from media.wav import write_wav
from pbx.server import PbxServer
from sip.message import Request, make_response, parse_message
from tests.interop.phones import closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient, media_address

TONES = {"greeting": 500, "invalid": 900, "timeout": 1300, "ivr-goodbye": 1700}

MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
invalid_prompt = "invalid"
timeout_prompt = "timeout"
timeout = 1.0
retries = 2
fallback = "hangup"
[menu.options]
"1" = "extension:1002"
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    t = np.arange(int(8000 * 0.4)) / 8000
    for name, hz in TONES.items():
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), 8000)
        prompts.add(name, wav)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None
        await pbx._store.ivr.put(MENU)
        pbx.b2bua.applications.append(IvrApplication(tmp_path))  # type: ignore[union-attr]
        yield pbx


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class Ear:
    """Collects the audio the switch sends to one RTP socket and names its tones."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.audio: list[np.ndarray] = []
        self.task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                self.audio.append(ulaw_decode(data[12:]))

    def tones(self) -> list[int]:
        """The sequence of distinct prompt tones heard (100 ms windows)."""
        samples = np.concatenate(self.audio) if self.audio else np.zeros(0)
        heard: list[int] = []
        for start in range(0, len(samples) - 800, 800):
            chunk = samples[start : start + 800].astype(float)
            if np.sqrt(np.mean(chunk**2)) < 500:
                continue
            peak = np.fft.rfftfreq(800, 1 / 8000)[int(np.argmax(np.abs(np.fft.rfft(chunk))))]
            name = min(TONES, key=lambda n: abs(TONES[n] - peak))
            if abs(TONES[name] - peak) < 30 and (not heard or heard[-1] != TONES[name]):
                heard.append(TONES[name])
        return heard

    async def wait_for_tones(self, count: int, timeout: float = 15.0) -> None:
        """Wait until `count` prompt tones have been heard (polling, bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.tones()) < count:
            assert loop.time() < deadline, f"heard only {self.tones()}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def rtp_event(seq: int, payload: bytes, ts: int, marker: bool) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 101, seq, ts, 0x77) + payload


async def _press(sock: socket.socket, relay: tuple[str, int], digit: str, seq: int) -> int:
    """One key as RFC 4733 packets: all of one event carry its start timestamp."""
    start = 5000 + seq * 160
    for packet in event_packets(digit, 100):
        sock.sendto(rtp_event(seq, packet.payload, start, packet.marker), relay)
        seq += 1
    return seq


async def _serve_requests(ua: SipClient, until: str, rtp_port: int) -> Request:
    """Answer the switch's requests (re-INVITE with our SDP, others 200) until `until`."""
    while True:
        raw = await ua.receive(timeout=15)
        assert raw is not None, f"no {until} from the switch"
        message = parse_message(raw)
        if not isinstance(message, Request):
            continue
        if message.method == "ACK":
            continue
        body = b""
        headers: list[tuple[str, str]] = []
        if message.method == "INVITE":
            body = (
                "v=0\r\no=ua 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\n"
            ).encode()
            headers = [
                ("Contact", f"<sip:ua@127.0.0.1:{ua.port}>"),
                ("Content-Type", "application/sdp"),
            ]
        ua.send(bytes(make_response(message, 200, to_tag=None, headers=headers, body=body)))
        if message.method == until:
            return message


async def test_key_reaches_an_extension(server: PbxServer, tmp_path: Path) -> None:
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "1002") as callee:
        sock = _socket()
        ear = Ear(sock)
        try:
            async with SipClient(server.sip_port) as ua:
                rtp_port = sock.getsockname()[1]
                invite, ok = await dial(ua, server, "800", rtp_port=rtp_port, events=True)
                assert ok.status == 200
                relay = media_address(ok.body)
                await ear.wait_for_tones(1)
                await _press(sock, relay, "1", 0)
                # 1002 answers; the switch moves us onto the relay with a re-INVITE.
                await asyncio.wait_for(_serve_requests(ua, "INVITE", rtp_port), 15)
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            assert await asyncio.get_running_loop().run_in_executor(None, callee.finish) == 0
        finally:
            await ear.stop()
            sock.close()
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == ("800", "ANSWERED")
    assert cdr.hangup_cause == "caller hung up (via 1002)"


async def test_silence_then_a_wrong_key_end_in_the_fallback(server: PbxServer) -> None:
    sock = _socket()
    ear = Ear(sock)
    try:
        async with SipClient(server.sip_port) as ua:
            rtp_port = sock.getsockname()[1]
            _, ok = await dial(ua, server, "800", rtp_port=rtp_port, events=True)
            assert ok.status == 200
            relay = media_address(ok.body)
            # Silence: greeting, timeout prompt, greeting again; then a key with no
            # action: invalid prompt, greeting; silence again: the fallback (hang up).
            await ear.wait_for_tones(3)
            await _press(sock, relay, "5", 0)
            await asyncio.wait_for(_serve_requests(ua, "BYE", rtp_port), 20)
    finally:
        await ear.stop()
        sock.close()
    g, i, t, bye = TONES["greeting"], TONES["invalid"], TONES["timeout"], TONES["ivr-goodbye"]
    assert ear.tones() == [g, t, g, i, g, bye]
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "IVR hangup"
