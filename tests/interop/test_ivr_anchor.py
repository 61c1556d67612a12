"""Issue 11, acceptance 2: one media anchor per call. An IVR caller sent to an extension
keeps its ports (they become a relay leg): it gets no re-INVITE, and the extension's
phone hears the caller's audio from its 200 OK on; the extension's forwarding on busy
is honoured when the IVR dials it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from ivr.prompts import PromptStore
from ivr.runner import IvrApplication
from media.g711 import ulaw_decode
from media.wav import write_wav
from pbx.api import Call, CallEvent, Cause, EventKind, Switch
from pbx.server import PbxServer
from pbx.store import Forwarding
from sip.message import Request, make_response, parse_message
from tests.interop.ear import listening, peak_hz, rtp_socket, sine
from tests.interop.phones import PASSWORDS, closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient, media_address

TONES = {"greeting": 500}
CALLER_HZ = 1100

MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
timeout = 5.0
fallback = "hangup"
[menu.options]
"1" = "extension:1002"
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    t = np.arange(int(8000 * 0.4)) / 8000
    wav = tmp_path / "greeting.wav"
    write_wav(wav, (8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16), 8000)
    prompts.add("greeting", wav)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None
        await pbx._store.ivr.put(MENU)
        pbx.b2bua.applications.append(IvrApplication(tmp_path))  # type: ignore[union-attr]
        yield pbx


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _requests_to(ua: SipClient) -> list[str]:
    """Methods of the requests that reached `ua` (queued, and within a second more)."""
    methods = []
    while (raw := await ua.receive(timeout=1.0)) is not None:
        message = parse_message(raw)
        if isinstance(message, Request):
            methods.append(message.method)
    return methods


async def _register(ua: SipClient, user: str) -> None:
    first = await ua.exchange(ua.register(user))
    assert first.status == 401
    creds = ua.answer(ua.challenge(first, "MD5"), user, PASSWORDS[user])
    ok = await ua.exchange(ua.register(user, authorization=str(creds)))
    assert ok.status == 200


async def _next_request(ua: SipClient, method: str) -> Request:
    while True:
        raw = await ua.receive(timeout=15)
        assert raw is not None, f"no {method} came"
        message = parse_message(raw)
        if isinstance(message, Request) and message.method == method:
            return message


async def test_extension_hears_the_ivr_caller_from_its_200_without_reinvite(
    server: PbxServer,
) -> None:
    loop = asyncio.get_running_loop()
    callee_rtp = rtp_socket()
    heard: list[tuple[float, float]] = []  # (arrival, peak frequency) per packet

    async def callee_ear() -> None:
        while True:
            data = await loop.sock_recv(callee_rtp, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                heard.append((loop.time(), peak_hz(ulaw_decode(data[12:]))))

    ear_task = loop.create_task(callee_ear())
    try:
        async with SipClient(server.sip_port) as callee, listening(TONES) as caller_ear:
            await _register(callee, "1002")
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "800", rtp_port=caller_ear.port, events=True)
                assert ok.status == 200
                caller_ear.remote = media_address(ok.body)
                await caller_ear.wait_for("greeting")
                caller_ear.press("1")
                talking = loop.create_task(caller_ear.talk(sine(CALLER_HZ, 8.0)))
                try:
                    ringing = await _next_request(callee, "INVITE")
                    callee.send(bytes(make_response(ringing, 180, to_tag="c1002")))
                    port = callee_rtp.getsockname()[1]
                    sdp = (
                        "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                        f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                    ).encode()
                    headers = [
                        ("Contact", f"<sip:1002@127.0.0.1:{callee.port}>"),
                        ("Content-Type", "application/sdp"),
                    ]
                    heard.clear()  # from the 200 OK on
                    callee.send(
                        bytes(
                            make_response(ringing, 200, to_tag="c1002", headers=headers, body=sdp)
                        )
                    )
                    answered_at = loop.time()
                    await _next_request(callee, "ACK")
                    await _until(lambda: any(abs(hz - CALLER_HZ) < 40 for _, hz in heard))
                    assert await _requests_to(ua) == []  # no re-INVITE of the caller
                finally:
                    talking.cancel()
                    await asyncio.gather(talking, return_exceptions=True)
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
                hangup = await _next_request(callee, "BYE")
                callee.send(bytes(make_response(hangup, 200)))
    finally:
        ear_task.cancel()
        await asyncio.gather(ear_task, return_exceptions=True)
        callee_rtp.close()
    first = next(at for at, hz in heard if abs(hz - CALLER_HZ) < 40)
    # Not asserted (a test never asserts wall time): shown with -s, the 200 ms goal.
    print(f"\nextension heard the caller {1000 * (first - answered_at):.1f} ms after its 200")
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == ("800", "ANSWERED")
    assert cdr.hangup_cause == "caller hung up (via 1002)"


async def test_busy_extension_forwarding_is_honoured_from_the_ivr(
    server: PbxServer, tmp_path: Path
) -> None:
    assert server._store is not None
    await server._store.dialplan.set_forwarding(Forwarding("1002", busy="1003"))
    busy = await phone(server, "1002", "uas_busy.xml", tmp_path / "1002")
    with busy, await phone(server, "1003", "uas_answer.xml", tmp_path / "1003") as callee:
        async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            await ear.wait_for("greeting")
            ear.press("1")
            await _until(lambda: bool(server.b2bua and server.b2bua.bridges))
            assert await _requests_to(ua) == []
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, busy.finish) == 0
        assert await loop.run_in_executor(None, callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert cdr.disposition == "ANSWERED"
    assert cdr.hangup_cause == "caller hung up (via 1002 (forwarded 1002 -> 1003))"


class _Listener:
    """An application that answers 850 and reports the call's events by subscription."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.digits = ""

    async def handles(self, number: str, switch: Switch) -> bool:
        return number == "850"

    async def run(self, call: Call, switch: Switch) -> str:
        events = call.subscribe()
        assert await call.answer()
        self.digits = await call.collect_digits(3, timeout=15)
        await call.hangup()
        self.events = [event async for event in events]
        return "listened"


async def test_a_calls_events_come_by_subscription(server: PbxServer) -> None:
    listener = _Listener()
    assert server.b2bua is not None
    server.b2bua.applications.insert(0, listener)
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "850", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        ear.press("42#")
        bye = await _next_request(ua, "BYE")
        ua.send(bytes(make_response(bye, 200)))
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "listened"
    assert listener.digits == "42"
    kinds = [(e.kind, e.digit) for e in listener.events]
    assert kinds == [
        (EventKind.ANSWERED, ""),
        (EventKind.DTMF, "4"),
        (EventKind.DTMF, "2"),
        (EventKind.DTMF, "#"),
        (EventKind.ENDED, ""),
    ]
    ended = listener.events[-1].outcome
    assert ended is not None and ended.cause is Cause.NORMAL
