"""IVR menus on real sockets: the caller (the test's own UDP client) hears the prompts
— each a tone of its own, so the order can be checked in the audio — and presses
keys as RFC 4733 telephone-events; a key reaches an extension (a sipp phone), silence
and wrong keys replay the right prompts and end in the fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from ivr.prompts import PromptStore
from ivr.runner import IvrApplication
from media.wav import read_wav, write_wav
from pbx.server import PbxServer
from sip.message import Request, make_response, parse_message
from tests.interop.ear import listening, peak_hz
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


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `condition` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _requests_to(ua: SipClient) -> list[str]:
    """The methods of the requests that reached `ua` (what is queued, and what comes
    within a second more)."""
    methods = []
    while (raw := await ua.receive(timeout=1.0)) is not None:
        message = parse_message(raw)
        if isinstance(message, Request):
            methods.append(message.method)
    return methods


@pytest.mark.parametrize("recorded", [False, True])
async def test_key_reaches_an_extension(server: PbxServer, tmp_path: Path, recorded: bool) -> None:
    assert server._store is not None
    if recorded:  # the extension records always: the IVR-connected call is recorded too
        await server._store.dialplan.set_recording_mode("1002", "always")
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "1002") as callee:
        async with listening(TONES) as ear:
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for("greeting")
                ear.press("1")
                # 1002 answers; our ports become a relay leg: no re-INVITE reaches us.
                assert server.b2bua is not None
                await _until(lambda: bool(server.b2bua and server.b2bua.bridges))
                assert await _requests_to(ua) == []
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            assert await asyncio.get_running_loop().run_in_executor(None, callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == ("800", "ANSWERED")
    assert cdr.hangup_cause == "caller hung up (via 1002)"
    if recorded:
        assert cdr.recording is not None
        assert read_wav(cdr.recording).channels == 2
    else:
        assert cdr.recording is None


async def test_silence_then_a_wrong_key_end_in_the_fallback(server: PbxServer) -> None:
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        # Silence: greeting, timeout prompt, greeting again; then a key with no
        # action: invalid prompt, greeting; silence again: the fallback (hang up).
        await ear.wait_for("greeting", "timeout", "greeting")
        ear.press("5")
        await asyncio.wait_for(_serve_requests(ua, "BYE", ear.port), 20)
    assert ear.tones() == ["greeting", "timeout", "greeting", "invalid", "greeting", "ivr-goodbye"]
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "IVR hangup"


async def test_caller_hears_music_while_the_extension_rings(
    server: PbxServer, tmp_path: Path
) -> None:
    t = np.arange(8000) / 8000
    (tmp_path / "moh").mkdir()
    write_wav(tmp_path / "moh" / "wait.wav", (8000 * np.sin(2 * np.pi * 700 * t)), 8000)
    tones = {**TONES, "music": 700}
    late = ("-d", "1500")  # 1002 rings 1.5 s before it answers
    with await phone(server, "1002", "uas_answer_late.xml", tmp_path / "1002", *late) as callee:
        async with listening(tones) as ear:
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for("greeting")
                ear.press("1")
                await _until(lambda: bool(server.b2bua and server.b2bua.bridges))
                assert await _requests_to(ua) == []  # no re-INVITE: one media anchor
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            assert await asyncio.get_running_loop().run_in_executor(None, callee.finish) == 0
    assert ear.tones() == ["greeting", "music"]
    heard = ear.samples()
    music = [
        start
        for start in range(0, len(heard) - 800, 800)
        if abs(peak_hz(heard[start : start + 800]) - 700) < 30
    ]
    assert len(music) * 0.1 >= 1.0  # most of the 1.5 s of ringing
