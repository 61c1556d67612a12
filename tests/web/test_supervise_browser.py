"""Issue 15, the wallboard's supervision buttons and its chart, in a real browser.

A caller (the test's own SIP client, 1100 Hz) is in queue 700 with agent 1002 (a
registered phone that answers, 1500 Hz). The supervisor (1003) has the wallboard open:
the hourly chart gains the call (a table row and dark bars on the canvas) without a
reload, and the "listen" button of 1002's row rings the supervisor's own phone (a
registered phone, 1900 Hz), which then hears caller and agent while neither hears it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbx.store.queues import Queue
from tests.interop.ear import Ear, listening, sine
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_conference import Party, _hears_only, _settled, _until
from tests.web.browser import Browser, chromium
from tests.web.console import SUPERVISOR, console_server

CALLER, AGENT = "1001", "1002"
HZ = {CALLER: 1100, AGENT: 1500, SUPERVISOR: 1900}
EVERY = set(HZ.values())
#: The answered bars' colour in wallboard.js (offered bars are lighter).
ANSWERED_RGB = (0x1F, 0x5F, 0xBF)


async def answered_pixels(browser: Browser) -> int:
    """How many pixels of the chart's canvas have the answered bars' colour."""
    r, g, b = ANSWERED_RGB
    count = await browser.script(
        "const c = document.querySelector('#chart');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0;"
        f"for (let i = 0; i < d.length; i += 4) {{ if (d[i] === {r} && d[i + 1] === {g}"
        f" && d[i + 2] === {b}) n++; }}"
        "return n;"
    )
    return int(count)


def _only(ear: Ear | Party, tones: set[int]) -> bool:
    if isinstance(ear, Party):
        return ear.hears_only(tones, EVERY)
    return _hears_only(ear, tones, EVERY)


async def test_the_listen_button_rings_the_supervisors_phone_and_the_chart_follows(
    tmp_path: Path,
) -> None:
    queue = Queue("support", "700", ring_seconds=20.0)
    async with console_server(tmp_path, (queue,), members={"support": (AGENT,)}) as c:
        loop = asyncio.get_running_loop()
        async with (
            Party(c.server, AGENT, HZ[AGENT]) as agent,
            Party(c.server, SUPERVISOR, HZ[SUPERVISOR]) as supervisor,
            listening({}) as caller,
            SipClient(c.server.sip_port) as caller_ua,
            chromium(c.base, tmp_path / "shots") as browser,
        ):
            await c.acd.agent_command(AGENT, "login")
            await browser.login(SUPERVISOR, PASSWORDS[SUPERVISOR], page="/wallboard")
            await browser.wait_text(f"#state-{AGENT}", "available", exact=True)
            await browser.wait(
                lambda d: (
                    d.execute_script("return document.querySelector('#chart').dataset.drawn") == "1"
                ),
                "the chart drawn from the first frame",
            )
            assert await answered_pixels(browser) == 0  # no call today yet: no bars
            invite, ok = await dial(caller_ua, c.server, "700", caller=CALLER, rtp_port=caller.port)
            assert ok.status == 200
            caller.remote = media_address(ok.body)
            talking = loop.create_task(caller.talk(sine(HZ[CALLER], 120.0)))
            try:
                await _until(lambda: c.acd.bridge_of(AGENT) is not None, "the agent answers")
                await browser.wait_text(f"#state-{AGENT}", "on-call", exact=True)
                # The chart follows the day's figures without a reload.
                await browser.wait(
                    lambda d: (
                        d.execute_script(
                            "const r = document.querySelector('#chart-rows tr:last-child');"
                            "return r ? [...r.cells].map((x) => x.textContent) : null;"
                        )
                        == [
                            d.execute_script("return new Date().getHours() + 'h'"),
                            "1",
                            "1",
                            "100%",
                        ]
                    ),
                    "the hour's row: 1 offered, 1 answered, SL 100%",
                )
                assert await answered_pixels(browser) > 100
                await browser.wait_text("#offered-support", "1", exact=True)  # the frame's own
                assert supervisor.invite is None
                await browser.click(f"button.supervise[data-agent='{AGENT}'][data-mode=listen]")
                await browser.wait_text(
                    "#supervise-status", f"your phone joins {AGENT} (listen)", timeout=20.0
                )
                assert supervisor.invite is not None  # the supervisor's phone was rung
                assert f"sip:{AGENT}@" in (supervisor.invite.headers.get("From") or "")
                await _settled(
                    lambda: (
                        _only(supervisor, {HZ[CALLER], HZ[AGENT]})
                        and _only(caller, {HZ[AGENT]})
                        and _only(agent, {HZ[CALLER]})
                    ),
                    "the supervisor listens",
                )
                await browser.screenshot("wallboard-supervising")
                # The caller hangs up: the switch ends the agent's and the supervisor's legs.
                bye = caller_ua.in_dialog(invite, ok, "BYE", 3)
                assert (await caller_ua.exchange(bye, timeout=10)).status == 200
                await _until(lambda: c.acd.bridge_of(AGENT) is None, "the queue call ends")
            finally:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
