"""Issue 16 in a real browser: headless Chromium with a fake microphone (a 1000 Hz tone)
is a phone of user 1003 through the console's WebRTC gateway, talking to baresip (its
ausine says 440 Hz) through the switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx.store.queues import Queue
from tests.interop.baresip import Baresip
from tests.interop.peers import run_sipp
from tests.interop.phones import PASSWORDS, SCENARIOS, closed_cdrs, sipp_auth
from tests.tools import need
from tests.web.console import console_server
from tests.web.phone import (
    BARESIP_HZ,
    BROWSER_HZ,
    baresip_hears,
    hears,
    media_path,
    open_desktop,
    own_addresses,
    phone_browser,
    until,
)


@pytest.mark.parametrize("codec", ["opus", "g711"])
async def test_browser_calls_baresip_tones_both_ways(tmp_path: Path, codec: str) -> None:
    """Acceptance 1: the browser, logged in as 1003, calls baresip 1001; baresip's
    recording holds the browser's tone and the page hears 1001's tone. With Opus (the
    browser's choice: transcoded) and with G.711 preferred (passed through)."""
    need("baresip")
    loop = asyncio.get_running_loop()
    async with console_server(tmp_path) as c:
        assert c.web.phones is not None
        c.web.phones.codec = codec
        async with Baresip(
            tmp_path / "b1001",
            user="1001",
            password=PASSWORDS["1001"],
            registrar_port=c.server.sip_port,
            auto_answer=True,
            dump_calls=True,
        ) as phone:
            await asyncio.to_thread(phone.wait_registered)
            async with phone_browser(c.base, tmp_path / "shots") as browser:
                await open_desktop(browser, "1003", PASSWORDS["1003"], "/wallboard")
                await browser.type("#phone-number", "1001")
                await browser.click("#phone-call")
                await loop.run_in_executor(None, phone.wait_for_event, "CALL_ESTABLISHED", 15)
                await browser.wait_text("#phone-status", "up", exact=True)
                # Opus is transcoded (at 8 kHz, by the gateway: aiortc only packs and
                # unpacks); preferred G.711 goes through as it is.
                [on] = c.web.phones.phones
                assert on.media is not None and on.media.tapped
                assert on.media.track.to_browser is not None
                assert on.media.track.to_browser.codec == ("opus" if codec == "opus" else "pcmu")
                # The switch's side of the media is the console's loopback address; the
                # browser sends from its loopback candidate or another of this machine's
                # own addresses (its choice): the packets never leave the machine.
                ours, browsers = media_path(on.media.pc)
                assert ours == "127.0.0.1" and browsers in own_addresses()
                await hears(browser, BARESIP_HZ)
                await baresip_hears(phone, BROWSER_HZ, seconds=1.0)
                assert on.media.browser_codec == on.media.track.to_browser.codec
                await browser.screenshot("browser-calls-baresip")
                await browser.click("#phone-hangup")
                await loop.run_in_executor(None, phone.wait_for_event, "CALL_CLOSED", 10)
                await browser.wait_text("#phone-status", "ready", exact=True)
        # To the switch it was a call from 1003 like any phone's: one answered CDR.
        [cdr] = await closed_cdrs(c.server, 1)
        assert (cdr.caller, cdr.callee, cdr.disposition) == ("1003", "1001", "ANSWERED")
        assert cdr.billsec is not None and cdr.billsec > 1.0


async def test_baresip_calls_1003_browser_and_sip_phone_ring_browser_answers(
    tmp_path: Path,
) -> None:
    """Acceptance 2: baresip 1001 calls 1003; the browser and a SIP phone registered as
    1003 both ring; the browser answers; tones both ways; the SIP phone stops ringing."""
    need("baresip")
    loop = asyncio.get_running_loop()
    wait = loop.run_in_executor
    async with console_server(tmp_path) as c:
        async with (
            Baresip(
                tmp_path / "b1001",
                user="1001",
                password=PASSWORDS["1001"],
                registrar_port=c.server.sip_port,
                dump_calls=True,
            ) as caller,
            Baresip(
                tmp_path / "b1003",
                user="1003",
                password=PASSWORDS["1003"],
                registrar_port=c.server.sip_port,
            ) as desk_phone,
        ):
            await asyncio.to_thread(caller.wait_registered)
            await asyncio.to_thread(desk_phone.wait_registered)
            async with phone_browser(c.base, tmp_path / "shots") as browser:
                await open_desktop(browser, "1003", PASSWORDS["1003"], "/wallboard")
                await until(lambda: len(c.server.registrar.location.get("1003")) == 2, "2 contacts")
                await wait(None, caller.command, "dial", f"sip:1003@127.0.0.1:{c.server.sip_port}")
                # Both ring at once: the SIP phone sees the INVITE, the page shows it.
                await wait(None, desk_phone.wait_for_event, "CALL_INCOMING", 15)
                await browser.wait_text("#phone-status", "ringing", exact=True)
                assert await browser.text("#phone-party") == "1001"
                await browser.screenshot("browser-rings")
                await browser.click("#phone-answer")
                await wait(None, caller.wait_for_event, "CALL_ESTABLISHED", 15)
                # The SIP phone stops ringing (CANCEL), never having answered.
                closed = await wait(None, desk_phone.wait_for_event, "CALL_CLOSED", 10)
                assert closed, "the SIP phone of 1003 kept ringing"
                assert not [
                    e for e in desk_phone.events.items if e.get("type") == "CALL_ESTABLISHED"
                ]
                await browser.wait_text("#phone-status", "up", exact=True)
                await hears(browser, BARESIP_HZ)
                await baresip_hears(caller, BROWSER_HZ, seconds=1.0)
                await wait(None, caller.command, "hangup")
                await browser.wait_text("#phone-status", "ready", exact=True)
        [cdr] = await closed_cdrs(c.server, 1)
        assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1003", "ANSWERED")


async def test_browser_agent_takes_a_queue_call_and_hangs_up(tmp_path: Path) -> None:
    """Acceptance 3: the browser, agent 1003 of queue "support", takes a sipp caller's
    queue call and hangs up; the CDR and the queue events are right."""
    need("sipp")
    loop = asyncio.get_running_loop()
    queue = Queue("support", "700", ring_seconds=30.0, wrapup_seconds=1.0)
    async with (
        console_server(tmp_path, (queue,), {"support": ("1003",)}) as c,
        phone_browser(c.base, tmp_path / "shots") as browser,
    ):
        await open_desktop(browser, "1003", PASSWORDS["1003"], "/wallboard")
        await browser.click("#btn-login")
        await browser.wait_text("#state", "available")
        caller = loop.run_in_executor(
            None,
            lambda: run_sipp(
                SCENARIOS / "uac_call_far_bye.xml",
                c.server.sip_port,
                workdir=tmp_path / "caller",
                inf=[("1002", sipp_auth("1002"), "700")],
                extra=("-auth_uri", f"700@127.0.0.1:{c.server.sip_port}"),
                timeout=60,
            ),
        )
        await browser.wait_text("#phone-status", "ringing", exact=True, timeout=20)
        await browser.wait_text("#call-queue", "support")  # the screen pop beside it
        await browser.click("#phone-answer")
        await browser.wait_text("#phone-status", "up", exact=True)
        await browser.wait_text("#state", "on-call")
        await browser.screenshot("queue-call-up")
        await browser.click("#phone-hangup")
        result = await caller  # the caller got the switch's BYE and answered it
        assert (result.returncode, result.successful) == (0, 1), result.output
        await browser.wait_text("#phone-status", "ready", exact=True)
        await c.acd.flush()
        events = await c.store.queue_events.between(0, 1e12)
        call_id = next(e.call_id for e in events if e.event == "CONNECT")
        mine = [(e.event, e.agent) for e in events if e.call_id == call_id]
        assert [e for e, _ in mine][:3] == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"], mine
        assert ("CONNECT", "1003") in mine
        # Both rows close as their calls' tasks end, a moment after the BYEs.
        cdrs = await closed_cdrs(c.server, 2)
        inbound = [cdr for cdr in cdrs if cdr.caller == "1002"]
        # The caller's call to the queue, and the queue's leg to agent 1003's phone (the
        # browser), both answered.
        assert sorted((cdr.callee, cdr.disposition) for cdr in inbound) == [
            ("1003", "ANSWERED"),
            ("700", "ANSWERED"),
        ]
