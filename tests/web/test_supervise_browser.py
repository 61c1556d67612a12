"""Issue 15, the wallboard's supervision buttons and its chart, in a real browser.

A caller (the test's own SIP client, 1100 Hz) is in queue 700 with agent 1002 (a
baresip phone that answers by itself, 1500 Hz). The supervisor (1003) has the wallboard
open: the hourly chart gains the call (a table row and dark bars on the canvas) without
a reload, and the "listen" button of 1002's row rings the supervisor's own phone (baresip
too, answering by itself, 1900 Hz), which then hears caller and agent while neither
hears it. What the baresip phones heard is read from the audio they decoded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbx.store.queues import Queue
from tests.interop.baresip import Baresip, registered
from tests.interop.ear import Ear, listening, sine
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_conference import _hears_only, _settled, _until, level
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


def _only(ear: Ear | Baresip, tones: set[int]) -> bool:
    """Whether `ear` hears each of `tones` (and none of the other parties' tones) in
    its last 0.5 s."""
    if isinstance(ear, Ear):
        return _hears_only(ear, tones, EVERY)
    tail = ear.received_audio()[-4000:]
    if len(tail) < 4000:
        return False
    return all(level(tail, hz) > 1000 for hz in tones) and all(
        level(tail, hz) < 100 for hz in EVERY - tones
    )


def _phone(tmp_path: Path, user: str, registrar_port: int) -> Baresip:
    """A baresip phone that answers by itself, sends its tone and keeps what it hears."""
    return Baresip(
        tmp_path / f"phone-{user}", user=user, password=PASSWORDS[user],
        registrar_port=registrar_port, auto_answer=True, tone_hz=HZ[user], dump_calls=True,
    )  # fmt: skip


def _calls(phone: Baresip, kind: str) -> list[dict[str, object]]:
    return [e for e in phone.events.items if e.get("type") == kind]


async def test_the_listen_button_rings_the_supervisors_phone_and_the_chart_follows(
    tmp_path: Path,
) -> None:
    queue = Queue("support", "700", ring_seconds=20.0)
    async with console_server(tmp_path, (queue,), members={"support": (AGENT,)}) as c:
        loop = asyncio.get_running_loop()
        agent = _phone(tmp_path, AGENT, c.server.sip_port)
        supervisor = _phone(tmp_path, SUPERVISOR, c.server.sip_port)
        async with (
            registered([agent, supervisor]),
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
                assert not _calls(supervisor, "CALL_ESTABLISHED")
                await browser.click(f"button.supervise[data-agent='{AGENT}'][data-mode=listen]")
                await browser.wait_text(
                    "#supervise-status", f"your phone joins {AGENT} (listen)", timeout=20.0
                )
                # The supervisor's phone was rung, by the agent's number, and answered.
                rung = await asyncio.to_thread(supervisor.wait_for_event, "CALL_ESTABLISHED", 10)
                assert rung.get("direction") == "incoming", rung
                assert f"sip:{AGENT}@" in str(rung.get("peeruri")), rung
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
                for phone in (agent, supervisor):
                    await asyncio.to_thread(phone.wait_for_event, "CALL_CLOSED", 10)
            finally:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
