"""Issue 11, acceptance 6 and the Call API on real sockets: an application dials two
phones with `Switch.dial`, bridges them (each hears the other's tone), splits them,
plays a prompt to one (heard), bridges them again (both hear each other); the calls'
events come by subscription and their CDRs say the switch placed them.

The phones are the test's own UAS (SIP over UDP, PCMU RTP sending a tone of their own
every 20 ms, and analysing what they receive)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from media.g711 import ulaw_decode, ulaw_encode
from pbx.api import Call, CallEvent, Cause, DialError, EventKind, Switch
from pbx.server import PbxServer
from sip.headers import NameAddr
from sip.message import Request, make_response, parse_message
from tests.interop.ear import peak_hz, rtp_socket, sine
from tests.interop.phones import PASSWORDS, closed_cdrs, running_server
from tests.interop.sipclient import SipClient, media_address


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path) as pbx:
        yield pbx


def _switch(server: PbxServer) -> Switch:
    assert server.b2bua is not None and isinstance(server.b2bua.frontend, Switch)
    return server.b2bua.frontend


async def _until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


class Phone:
    """A registered phone that answers one call, sends `hz` and notes what it hears."""

    def __init__(self, server: PbxServer, user: str, hz: int) -> None:
        self.server, self.user, self.hz = server, user, hz
        self.ua = SipClient(server.sip_port)
        self.rtp = rtp_socket()
        self.heard: list[float] = []  # the peak frequency of each packet received
        self.remote: tuple[str, int] | None = None
        self.invite: Request | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Phone:
        await self.ua.__aenter__()
        first = await self.ua.exchange(self.ua.register(self.user))
        creds = self.ua.answer(self.ua.challenge(first, "MD5"), self.user, PASSWORDS[self.user])
        ok = await self.ua.exchange(self.ua.register(self.user, authorization=str(creds)))
        assert ok.status == 200
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sip()), loop.create_task(self._listen())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ua.__aexit__(*exc)
        self.rtp.close()

    def hears(self, hz: float) -> bool:
        """Whether the last 10 packets carried `hz`."""
        recent = self.heard[-10:]
        return len(recent) == 10 and all(abs(h - hz) < 40 for h in recent)

    async def hang_up(self) -> None:
        assert self.invite is not None
        bye = self.invite.headers  # the switch's dialog: we are the UAS
        contact = NameAddr.parse(bye.get("Contact") or "").uri
        raw = (
            f"BYE {contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.ua.port};branch=z9hG4bKbye{self.user}\r\n"
            f"From: {bye.get('To')};tag=u{self.user}\r\nTo: {bye.get('From')}\r\n"
            f"Call-ID: {bye.get('Call-ID')}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.ua.send(raw.encode())

    async def _sip(self) -> None:
        port = self.rtp.getsockname()[1]
        while True:
            raw = await self.ua.receive(timeout=60)
            if raw is None:
                continue
            message = parse_message(raw)
            if not isinstance(message, Request) or message.method == "ACK":
                continue
            headers: list[tuple[str, str]] = []
            body = b""
            if message.method == "INVITE":
                self.invite = message
                self.remote = media_address(message.body)
                body = (
                    "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                ).encode()
                headers = [
                    ("Contact", f"<sip:{self.user}@127.0.0.1:{self.ua.port}>"),
                    ("Content-Type", "application/sdp"),
                ]
                asyncio.get_running_loop().create_task(self._talk())
            response = make_response(
                message, 200, to_tag=f"u{self.user}", headers=headers, body=body
            )
            self.ua.send(bytes(response))

    async def _talk(self) -> None:
        loop = asyncio.get_running_loop()
        tone = sine(self.hz, 30.0)
        start = loop.time()
        for index in range(len(tone) // 160):
            if self.remote is None or self.rtp.fileno() < 0:
                return
            frame = ulaw_encode(tone[index * 160 : (index + 1) * 160]).tobytes()
            header = struct.pack("!BBHII", 0x80, 0, index & 0xFFFF, index * 160, 0x1234 + self.hz)
            with contextlib.suppress(OSError):
                self.rtp.sendto(header + frame, self.remote)
            delay = start + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.rtp, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                self.heard.append(peak_hz(ulaw_decode(data[12:])))


async def test_bridge_split_prompt_and_bridge_again(server: PbxServer) -> None:
    switch = _switch(server)
    async with Phone(server, "1002", 600) as p2, Phone(server, "1003", 1400) as p3:
        a: Call = await switch.dial("1002", caller_id="app", timeout=10)
        b: Call = await switch.dial("1003", caller_id="app", timeout=10)
        events = a.subscribe()
        bridge = switch.bridge(a, b)
        await _until(lambda: p2.hears(1400) and p3.hears(600), "each hears the other")
        bridge.split()
        assert (await bridge.wait()).reason == "split"
        assert a.up and b.up
        played = asyncio.ensure_future(a.play(sine(2000, 1.5)))
        await _until(lambda: p2.hears(2000), "1002 hears the prompt")
        assert not p3.hears(600)  # split: 1003 no longer hears 1002
        assert await played
        again = switch.bridge(a, b)
        await _until(lambda: p2.hears(1400) and p3.hears(600), "both hear each other again")
        waiting = asyncio.ensure_future(again.wait())
        await p3.hang_up()
        outcome = await asyncio.wait_for(waiting, 15)
        assert outcome.cause is Cause.NORMAL
        await asyncio.wait_for(a.wait_ended(), 15)  # the other call is hung up too
        got: list[CallEvent] = [event async for event in events]
        assert [e.kind for e in got] == [EventKind.ENDED]
        assert got[0].outcome is not None and got[0].call_id == a.id
    rows = await closed_cdrs(server, 2)
    assert sorted(r.callee for r in rows) == ["1002", "1003"]
    assert all(r.disposition == "ANSWERED" for r in rows)
    assert all("placed by the switch" in (r.hangup_cause or "") for r in rows)


async def test_dial_reports_a_structured_outcome(server: PbxServer) -> None:
    switch = _switch(server)
    with pytest.raises(DialError) as unknown:
        await switch.dial("4711", caller_id="app")
    assert (unknown.value.outcome.cause, unknown.value.outcome.status) == (Cause.NOT_FOUND, 404)
    with pytest.raises(DialError) as nobody:
        await switch.dial("1002", caller_id="app")  # 1002 has no phone registered
    assert (nobody.value.outcome.cause, nobody.value.outcome.status) == (Cause.UNAVAILABLE, 480)
    rows = await closed_cdrs(server, 2)
    assert sorted(r.disposition for r in rows) == ["FAILED", "FAILED"]


async def test_audio_frames_music_and_dtmf_on_a_dialled_call(server: PbxServer) -> None:
    switch = _switch(server)
    async with Phone(server, "1002", 600) as p2:
        call = await switch.dial("1002", caller_id="app", timeout=10)
        peaks: list[float] = []
        async for frame in call.audio():  # what the phone says, decoded, 20 ms a frame
            assert frame.shape == (160,)
            peaks.append(peak_hz(frame))
            if len(peaks) >= 10:
                break
        assert all(abs(hz - 600) < 40 for hz in peaks[-5:])
        music = asyncio.ensure_future(call.music())
        await _until(lambda: len(p2.heard) > 50 and p2.heard[-1] > 0, "music reaches the phone")
        music.cancel()
        await asyncio.gather(music, return_exceptions=True)
        assert await call.send_dtmf("5#")  # SIP INFO, each answered 200
        await call.hangup()
        outcome = await asyncio.wait_for(call.wait_ended(), 10)
        assert outcome.cause is Cause.NORMAL
        assert not await call.play(sine(500, 1.0))  # at once: the call has ended
        assert await call.collect_digits(4, timeout=30) == ""
