"""Issue 16, the phone's controls in a real browser: DTMF (RFC 4733 to the far end),
mute, hold and resume, blind transfer, and the message when the microphone is refused."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.interop.baresip import Baresip
from tests.interop.phones import PASSWORDS
from tests.tools import need
from tests.web.browser import chromium
from tests.web.console import console_server
from tests.web.phone import (
    BARESIP_HZ,
    BROWSER_HZ,
    baresip_hears,
    hears,
    open_desktop,
    phone_browser,
    tone_seconds,
    until,
)


async def test_dtmf_mute_hold_transfer(tmp_path: Path) -> None:
    need("baresip")
    loop = asyncio.get_running_loop()
    wait = loop.run_in_executor
    async with (
        console_server(tmp_path) as c,
        Baresip(
            tmp_path / "b1001",
            user="1001",
            password=PASSWORDS["1001"],
            registrar_port=c.server.sip_port,
            auto_answer=True,
            dump_calls=True,
        ) as far,
        Baresip(
            tmp_path / "b1002",
            user="1002",
            password=PASSWORDS["1002"],
            registrar_port=c.server.sip_port,
            auto_answer=True,
        ) as target,
    ):
        await asyncio.to_thread(far.wait_registered)
        await asyncio.to_thread(target.wait_registered)
        async with phone_browser(c.base, tmp_path / "shots") as browser:
            await open_desktop(browser, "1003", PASSWORDS["1003"], "/wallboard")
            await browser.type("#phone-number", "1001")
            await browser.click("#phone-call")
            await wait(None, far.wait_for_event, "CALL_ESTABLISHED", 15)
            await browser.wait_text("#phone-status", "up", exact=True)
            await hears(browser, BARESIP_HZ)
            await baresip_hears(far, BROWSER_HZ, seconds=0.5)

            # DTMF from the dial pad: RFC 4733 events that baresip decodes.
            for key in ("4", "2", "#"):
                await browser.click(f'#phone-pad button[data-key="{key}"]')
            for key in ("4", "2", "#"):
                await wait(
                    None,
                    far.wait_for_output,
                    rf"received event: '{re.escape(key)}' \(end=1\)",
                    10,
                )

            # Mute: baresip hears the browser's tone no more.
            await browser.click("#phone-mute")
            assert await browser.text("#phone-mute") == "Unmute"
            heard_before = len(await wait(None, far.received_audio))
            await until(
                lambda: len(far.received_audio()) > heard_before + 8000 * 1.5,
                "1.5 s more audio at baresip",
            )
            tail = far.received_audio()[heard_before + 4000 :]
            assert tone_seconds(tail, BROWSER_HZ) == 0.0
            await browser.click("#phone-mute")  # unmuted: the tone again
            await baresip_hears(far, BROWSER_HZ, seconds=0.5)

            # Hold and resume: re-INVITEs the switch answers; the page shows it.
            await browser.click("#phone-hold")
            await browser.wait_text("#phone-status", "up (held)", exact=True)
            await browser.click("#phone-hold")
            await browser.wait_text("#phone-status", "up", exact=True)

            # Blind transfer to 1002: 1001 ends up talking to 1002, the page is free.
            await browser.type("#phone-transfer-to", "1002")
            await browser.click("#phone-transfer")
            await wait(None, target.wait_for_event, "CALL_ESTABLISHED", 15)
            await browser.wait_text("#phone-status", "ready", exact=True)
            await browser.screenshot("after-transfer")


async def test_microphone_refused_says_so(tmp_path: Path) -> None:
    async with (
        console_server(tmp_path) as c,
        chromium(
            c.base,
            tmp_path / "shots",
            ("--use-fake-device-for-media-stream", "--deny-permission-prompts"),
        ) as browser,
    ):
        await open_desktop(browser, "1003", PASSWORDS["1003"], "/wallboard")
        await browser.type("#phone-number", "1001")
        await browser.click("#phone-call")
        await browser.wait_text("#phone-error", "Microphone permission was refused")
        assert await browser.text("#phone-status") == "ready"  # nothing was dialled
        await browser.screenshot("microphone-refused")
