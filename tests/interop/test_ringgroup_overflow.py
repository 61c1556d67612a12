"""Ring-group overflow on one switch: when no member answers (all busy, nobody answers
within the ring time, none registered) the call goes to the group's overflow target,
an extension or a mailbox (`vm:BOX`); sipp phones are the members, the test's own
client is the caller. (Overflow through a trunk to another site: test_multisite.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from ivr.voicemail import VoicemailApplication
from media.wav import write_wav
from pbx.server import PbxServer
from pbx.store import RingGroup
from tests.interop.ear import listening, sine
from tests.interop.peers import SippUas
from tests.interop.phones import closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient, media_address

TONES = {"vm-unavailable": 500, "vm-busy": 800, "vm-beep": 1000, "message": 2300}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        wav = quiet
        if name in TONES:
            wav = tmp_path / f"{name}.wav"
            write_wav(wav, sine(TONES[name], 0.4), 8000)
        prompts.add(name, wav)
    async with running_server(tmp_path, ring_timeout=5.0) as pbx:
        assert pbx.b2bua is not None
        mailboxes = VoicemailApplication(tmp_path, silence_seconds=3.0, key_timeout=5.0)
        pbx.b2bua.applications.append(mailboxes)
        pbx.b2bua.voicemail = mailboxes
        yield pbx


async def add_group(server: PbxServer, group: RingGroup) -> None:
    assert server._store is not None
    await server._store.dialplan.add_ring_group(group)


async def finished(uas: SippUas) -> int:
    return await asyncio.get_running_loop().run_in_executor(None, uas.finish)


async def call_answered(server: PbxServer, number: str) -> None:
    """1001 calls `number`, is answered (200), hangs up."""
    async with SipClient(server.sip_port) as ua:
        invite, final = await dial(ua, server, number)
        assert final.status == 200
        bye = await ua.exchange(ua.in_dialog(invite, final, "BYE", 3), timeout=10)
        assert bye.status == 200


async def test_busy_members_overflow_to_an_extension(server: PbxServer, tmp_path: Path) -> None:
    busy = await phone(server, "1002", "uas_busy.xml", tmp_path / "1002")
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with busy, target:
        await add_group(server, RingGroup("600", ("1002",), overflow="1003"))
        await call_answered(server, "600")
        assert await finished(busy) == 0
        assert await finished(target) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == ("600", "ANSWERED")
    assert str(cdr.hangup_cause).endswith("(forwarded 600 -> 1003)")


async def test_no_answer_in_ring_time_overflows(server: PbxServer, tmp_path: Path) -> None:
    ringing = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with ringing, target:
        await add_group(server, RingGroup("601", ("1002",), ring_seconds=1, overflow="1003"))
        await call_answered(server, "601")
        assert await finished(ringing) == 0  # rang 1 s, then cancelled
        assert await finished(target) == 0
    [cdr] = await closed_cdrs(server)
    assert str(cdr.hangup_cause).endswith("(forwarded 601 -> 1003)")


async def test_none_registered_overflows_to_a_mailbox(server: PbxServer) -> None:
    assert server._store is not None
    await add_group(server, RingGroup("602", ("1002",), overflow="vm:1003"))
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "602", rtp_port=ear.port)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        await ear.wait_for("vm-unavailable", "vm-beep")
        await ear.talk(sine(TONES["message"], 1.5))
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.hangup_cause) == ("602", "voicemail left for 1003")
    assert await server._store.voicemail.counts("1003") == (1, 0)
