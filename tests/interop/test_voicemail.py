"""Voicemail end to end on real sockets: a call to an extension nobody answers (a sipp
phone that only rings) is forwarded to its mailbox; the caller (the test's own client)
hears the greeting and the beep and leaves a message (a tone); the box owner's
message light is driven by MWI NOTIFYs to a sipp subscriber; `*97` from the owner's
phone asks the PIN, plays the message and deletes it, and the count drops.

Prompts are replaced by tones (one frequency each) so what a caller heard, in which
order, can be read back from the audio; prompts of no interest here are silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from ivr.runner import IvrApplication
from ivr.voicemail import VoicemailApplication
from media.wav import read_wav, write_wav
from pbx.server import PbxServer
from pbx.store import Forwarding
from sip.message import Request, make_response, parse_message
from tests.interop.ear import Ear, listening, peak_hz, sine
from tests.interop.mwi import mwi_subscriber
from tests.interop.phones import PASSWORDS, closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient, media_address

TONES = {
    "vm-unavailable": 500,
    "vm-busy": 800,
    "vm-options": 2000,
    "vm-record-greeting": 2150,
    "vm-greeting-saved": 2450,
    "greeting": 600,  # what the box owner records as the greeting
    "vm-beep": 1000,
    "vm-saved": 700,
    "vm-full": 3400,
    "vm-pin": 1300,
    "vm-box": 1100,
    "vm-incorrect": 1500,
    "vm-main-menu": 1700,
    "vm-message-menu": 1900,
    "vm-deleted": 2600,
    "vm-no-more": 2900,
    "ivr-goodbye": 3200,
    "message": 2300,  # what the caller says
}
PIN = "4711"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        if name in TONES:
            wav = tmp_path / f"{name}.wav"
            write_wav(wav, sine(TONES[name], 0.4), 8000)
            prompts.add(name, wav)
        else:
            prompts.add(name, quiet)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None and pbx.b2bua is not None
        mailboxes = VoicemailApplication(tmp_path, silence_seconds=3.0, key_timeout=5.0)
        pbx.b2bua.applications.append(mailboxes)
        pbx.b2bua.voicemail = mailboxes
        await pbx._store.dialplan.set_forwarding(
            Forwarding("1002", no_answer="voicemail", no_answer_seconds=1.0)
        )
        await pbx._store.voicemail.set_pin("1002", PIN)
        yield pbx


async def _until_bye(ua: SipClient) -> Request:
    """Answer what the switch sends in the dialog (200) until its BYE."""
    while True:
        raw = await ua.receive(timeout=20)
        assert raw is not None, "no BYE from the switch"
        message = parse_message(raw)
        if isinstance(message, Request) and message.method != "ACK":
            ua.send(bytes(make_response(message, 200, to_tag=None)))
            if message.method == "BYE":
                return message


async def _leave_message(
    server: PbxServer, tmp_path: Path, scenario: str = "uas_ring_cancel.xml"
) -> Ear:
    """1001 calls 1002, which rings unanswered (or is busy); the mailbox takes 1.5 s of
    the message tone; 1001 hangs up. Returns what 1001 heard."""
    ringing = await phone(server, "1002", scenario, tmp_path / "1002")
    async with listening(TONES) as ear:
        with ringing:
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "1002", rtp_port=ear.port, events=True)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for("vm-beep")
                await ear.talk(sine(TONES["message"], 1.5))
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            assert await asyncio.get_running_loop().run_in_executor(None, ringing.finish) == 0
    return ear


async def test_unanswered_call_leaves_a_message(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None
    ear = await _leave_message(server, tmp_path)
    assert ear.tones()[:2] == ["vm-unavailable", "vm-beep"]
    [cdr] = await closed_cdrs(server)  # the message is stored before the call's row closes
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", "ANSWERED")
    assert cdr.hangup_cause == "voicemail left for 1002"
    [message] = await server._store.voicemail.messages("1002")
    assert (message.caller, message.folder) == ("1001", "new")
    assert 1.0 <= message.duration <= 1.7
    audio = read_wav(message.path)
    assert audio.rate == 8000 and audio.channels == 1
    samples = (audio.samples[:, 0] * 32767).astype(np.int16)
    assert abs(peak_hz(samples) - TONES["message"]) < 10
    assert await server._store.voicemail.counts("1002") == (1, 0)


async def test_message_light_follows_the_box_and_star97_deletes(
    server: PbxServer, tmp_path: Path
) -> None:
    """Acceptance: a message left lights 1002's lamp (NOTIFY Messages-Waiting: yes,
    Voice-Message: 1/0 to a sipp subscriber); `*97` plays it (now old: 0/1, lamp off)
    and deletes it (0/0)."""
    assert server._store is not None
    async with mwi_subscriber("1002", PASSWORDS["1002"], server.sip_port, tmp_path / "mwi") as lamp:
        assert (lamp.initial.summary.waiting, lamp.initial.summary.new) == (False, 0)
        await _leave_message(server, tmp_path)
        lit = await lamp.wait_for(new=1, old=0)
        assert lit.summary.waiting
        assert b"Messages-Waiting: yes" in lit.raw and b"Voice-Message: 1/0" in lit.raw
        await closed_cdrs(server)
        [message] = await server._store.voicemail.messages("1002")
        ear = await _star97_listen_and_delete(server)
        heard = await lamp.wait_for(new=0, old=1)
        assert not heard.summary.waiting and b"Messages-Waiting: no" in heard.raw
        gone = await lamp.wait_for(new=0, old=0)
        assert b"Voice-Message: 0/0" in gone.raw
    assert lamp.exit_code == 0
    assert ear.tones() == [
        "vm-pin",
        "vm-main-menu",
        "message",
        "vm-message-menu",
        "vm-deleted",
        "vm-no-more",
        "vm-main-menu",
        "ivr-goodbye",
    ]
    assert await server._store.voicemail.messages("1002") == []
    assert not Path(message.path).exists()


async def _star97_listen_and_delete(server: PbxServer) -> Ear:
    """1002 dials *97, enters the PIN, listens to message 1, deletes it, hangs up."""
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "*97", caller="1002", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        await ear.wait_for("vm-pin")
        ear.press(PIN + "#")
        await ear.wait_for("vm-pin", "vm-main-menu")
        ear.press("1")
        await ear.wait_for("vm-pin", "vm-main-menu", "message", "vm-message-menu")
        ear.press("7")
        await ear.wait_for("vm-deleted", "vm-no-more", "vm-main-menu")
        ear.press("#")
        await asyncio.wait_for(_until_bye(ua), 20)
    return ear


async def test_wrong_pin_is_refused(server: PbxServer) -> None:
    assert server._store is not None
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "*97", caller="1002", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        for attempt in range(3):
            await ear.wait_for(*["vm-pin", "vm-incorrect"] * attempt, "vm-pin")
            ear.press("0000#")
        await asyncio.wait_for(_until_bye(ua), 20)
    assert ear.tones() == ["vm-pin", "vm-incorrect"] * 3 + ["ivr-goodbye"]


async def test_busy_extension_gets_the_busy_greeting(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None
    await server._store.dialplan.set_forwarding(Forwarding("1002", busy="voicemail"))
    ear = await _leave_message(server, tmp_path, "uas_busy.xml")
    assert ear.tones()[:2] == ["vm-busy", "vm-beep"]
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "voicemail left for 1002"
    assert await server._store.voicemail.counts("1002") == (1, 0)


async def test_owner_records_a_greeting_callers_then_hear(
    server: PbxServer, tmp_path: Path
) -> None:
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "*97", caller="1002", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        await ear.wait_for("vm-pin")
        ear.press(PIN + "#")
        await ear.wait_for("vm-main-menu")
        ear.press("0")
        await ear.wait_for("vm-options")
        ear.press("1")
        await ear.wait_for("vm-record-greeting", "vm-beep")
        await ear.talk(sine(TONES["greeting"], 1.0))
        ear.press("#")
        await ear.wait_for("vm-greeting-saved", "vm-options")
        ear.press("#")
        await ear.wait_for("vm-greeting-saved", "vm-main-menu")
        ear.press("#")
        await asyncio.wait_for(_until_bye(ua), 20)
    greeting = tmp_path / "voicemail" / "1002" / "greeting-unavailable.wav"
    assert 0.5 <= read_wav(greeting).duration <= 1.05  # talk began as the beep did
    caller = await _leave_message(server, tmp_path)
    assert caller.tones()[:2] == ["greeting", "vm-beep"]


async def test_pbx_vm_delete_turns_the_light_off(server: PbxServer, tmp_path: Path) -> None:
    """`pbx vm delete` in another thread (as from a shell) tells the running switch,
    which NOTIFYs the subscriber."""
    assert server._store is not None
    async with mwi_subscriber("1002", PASSWORDS["1002"], server.sip_port, tmp_path / "mwi") as lamp:
        await _leave_message(server, tmp_path)
        await lamp.wait_for(new=1, old=0)
        await closed_cdrs(server)
        [message] = await server._store.voicemail.messages("1002")
        args = ["vm", "delete", str(message.id), "--data-dir", str(tmp_path)]
        result = await asyncio.get_running_loop().run_in_executor(
            None, lambda: CliRunner().invoke(app, args)
        )
        assert (result.exit_code, result.stderr) == (0, ""), result.stdout
        off = await lamp.wait_for(new=0, old=0)
        assert not off.summary.waiting
    assert not Path(message.path).exists()


@pytest.mark.parametrize("box", ["1002", "9999"])
async def test_star98_opens_a_box_by_number(server: PbxServer, box: str) -> None:
    """1001 opens 1002's box with *98; a box that does not exist answers exactly like a
    wrong PIN (no telling which numbers have mailboxes)."""
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, "*98", caller="1001", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        await ear.wait_for("vm-box")
        ear.press(box + "#")
        await ear.wait_for("vm-box", "vm-pin")
        ear.press(PIN + "#")
        if box == "1002":
            await ear.wait_for("vm-pin", "vm-main-menu")
            ear.press("#")
        else:
            for attempt in range(1, 3):
                await ear.wait_for(*["vm-pin", "vm-incorrect"] * attempt, "vm-pin")
                ear.press(PIN + "#")
        await asyncio.wait_for(_until_bye(ua), 20)
    if box == "1002":
        assert ear.tones() == ["vm-box", "vm-pin", "vm-main-menu", "ivr-goodbye"]
    else:
        assert ear.tones() == ["vm-box", *["vm-pin", "vm-incorrect"] * 3, "ivr-goodbye"]


async def test_a_full_mailbox_takes_no_message(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None and server.b2bua is not None
    mailboxes = server.b2bua.voicemail
    assert isinstance(mailboxes, VoicemailApplication)
    mailboxes.max_messages = 1
    await server._store.voicemail.add("1002", "1003", 1.0, 1.0, str(tmp_path / "old.wav"))
    ringing = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    async with listening(TONES) as ear:
        with ringing:
            async with SipClient(server.sip_port) as ua:
                _, ok = await dial(ua, server, "1002", rtp_port=ear.port, events=True)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await asyncio.wait_for(_until_bye(ua), 20)
            assert await asyncio.get_running_loop().run_in_executor(None, ringing.finish) == 0
    assert ear.tones() == ["vm-full"]
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause == "voicemail 1002: mailbox full"
    assert await server._store.voicemail.counts("1002") == (1, 0)


async def test_ivr_key_leaves_a_message(server: PbxServer, tmp_path: Path) -> None:
    """An IVR option `voicemail:1002` takes the caller straight to the mailbox."""
    assert server._store is not None and server.b2bua is not None
    await server._store.ivr.put(
        '[[menu]]\nname = "main"\nnumber = "800"\ngreeting = "vm-main-menu"\n'
        'timeout = 5.0\n[menu.options]\n"9" = "voicemail:1002"\n'
    )
    server.b2bua.applications.insert(0, IvrApplication(tmp_path))
    async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        await ear.wait_for("vm-main-menu")
        ear.press("9")
        await ear.wait_for("vm-main-menu", "vm-unavailable", "vm-beep")
        await ear.talk(sine(TONES["message"], 1.0))
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.hangup_cause) == ("800", "voicemail left for 1002")
    [message] = await server._store.voicemail.messages("1002")
    assert message.caller == "1001" and 0.5 <= message.duration <= 1.05


async def test_ivr_to_a_busy_extension_follows_its_forwarding_into_voicemail(
    server: PbxServer, tmp_path: Path
) -> None:
    """Issue 11: an IVR option to an extension honours its forwarding, here busy to its
    mailbox: the busy greeting, the beep, the message, on the caller's own media."""
    assert server._store is not None and server.b2bua is not None
    await server._store.dialplan.set_forwarding(Forwarding("1002", busy="voicemail"))
    await server._store.ivr.put(
        '[[menu]]\nname = "main"\nnumber = "800"\ngreeting = "vm-main-menu"\n'
        'timeout = 5.0\n[menu.options]\n"1" = "extension:1002"\n'
    )
    server.b2bua.applications.insert(0, IvrApplication(tmp_path))
    busy = await phone(server, "1002", "uas_busy.xml", tmp_path / "1002")
    with busy:
        async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "800", rtp_port=ear.port, events=True)
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            await ear.wait_for("vm-main-menu")
            ear.press("1")
            await ear.wait_for("vm-main-menu", "vm-busy", "vm-beep")
            await ear.talk(sine(TONES["message"], 1.0))
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        assert await asyncio.get_running_loop().run_in_executor(None, busy.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.hangup_cause) == ("800", "voicemail left for 1002")
    [message] = await server._store.voicemail.messages("1002")
    assert message.caller == "1001" and 0.5 <= message.duration <= 1.05
