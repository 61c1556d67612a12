"""Late offer (RFC 3261 §13.2.1): an INVITE without SDP. The switch puts its own offer
in the 200 (PCMU, PCMA, telephone-event) and takes the caller's answer from the ACK:
for a call bridged to a phone (sipp signalling, the test's sockets for media) and for
the switch's own media (an IVR menu). An ACK without an answer ends the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ivr.prompts import PromptStore
from ivr.runner import IvrApplication
from media.sdp import SessionDescription, audio_stream
from media.wav import write_wav
from pbx.server import PbxServer
from sip.message import Request, make_response, parse_message
from tests.interop.ear import listening, sine
from tests.interop.phones import closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient, media_address

TONES = {"caller": 600, "callee": 1400, "greeting": 900}


def answer_sdp(port: int, payload: int = 0, name: str = "PCMU") -> bytes:
    return (
        "v=0\r\no=ua 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {payload} 101\r\na=rtpmap:{payload} {name}/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    ).encode()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path) as pbx:
        yield pbx


def _offered(body: bytes) -> list[str]:
    sdp = SessionDescription.parse(body)
    return [c.name for c in sdp.audio().codecs]


async def test_bridged_call_answers_in_the_ack(server: PbxServer, tmp_path: Path) -> None:
    async with listening(TONES) as caller, listening(TONES) as callee:
        inf = tmp_path / "media.csv"
        inf.write_text(f"SEQUENTIAL\n{callee.port};0;PCMU\n")
        uas = await phone(
            server, "1002", "uas_answer_media.xml", tmp_path / "1002", "-inf", str(inf)
        )
        with uas:
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "1002", ack=False, offer=False)
                assert ok.status == 200
                assert _offered(ok.body) == ["PCMU", "PCMA", "telephone-event"]
                ua.send(ua.ack_2xx(invite, ok, answer_sdp(caller.port)))
                caller.remote = media_address(ok.body)
                [log] = (tmp_path / "1002").glob("*_messages.log")
                callee_offer = log.read_bytes().split(b"INVITE sip:", 1)[1]
                assert b"PCMU" in callee_offer and b"PCMA" in callee_offer
                callee.remote = media_address(callee_offer)
                await asyncio.gather(
                    caller.talk(sine(TONES["caller"], 0.6)),
                    callee.talk(sine(TONES["callee"], 0.6)),
                )
                await caller.wait_for("callee")
                await callee.wait_for("caller")
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            assert await asyncio.get_running_loop().run_in_executor(None, uas.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "caller hung up")


async def test_ack_without_an_answer_ends_the_call(server: PbxServer, tmp_path: Path) -> None:
    uas = await phone(server, "1002", "uas_answer.xml", tmp_path / "1002")
    with uas:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", ack=False, offer=False)
            assert ok.status == 200
            ua.send(ua.ack_2xx(invite, ok))  # no SDP: the offer in the 200 is unanswered
            while True:
                raw = await ua.receive(timeout=10)
                assert raw is not None, "no BYE from the switch"
                message = parse_message(raw)
                if isinstance(message, Request) and message.method == "BYE":
                    ua.send(bytes(make_response(message, 200, to_tag=None)))
                    break
        assert await asyncio.get_running_loop().run_in_executor(None, uas.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "488 no usable SDP answer in the caller's ACK"


async def test_ivr_with_a_late_offer(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None and server.b2bua is not None
    wav = tmp_path / "greeting.wav"
    write_wav(wav, sine(TONES["greeting"], 0.5), 8000)
    PromptStore(tmp_path / "prompts").add("greeting", wav)
    await server._store.ivr.put(
        '[[menu]]\nname = "main"\nnumber = "800"\ngreeting = "greeting"\ntimeout = 2.0\n'
        'retries = 0\nfallback = "hangup"\n'
    )
    server.b2bua.applications.append(IvrApplication(tmp_path))
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "800", ack=False, offer=False)
        assert ok.status == 200
        offered = audio_stream(SessionDescription.parse(ok.body))
        assert offered.codec.name == "PCMU" and offered.telephone_event == 101
        ua.send(ua.ack_2xx(invite, ok, answer_sdp(ear.port)))
        ear.remote = media_address(ok.body)
        await ear.wait_for("greeting")
    assert np.any(ear.samples())
