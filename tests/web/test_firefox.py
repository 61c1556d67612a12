"""The web console in Firefox (Debian's firefox-esr, headless, over WebDriver BiDi): the
issue asks for current Chromium and Firefox, and the acceptance tests run in Chromium.

An agent logs in with the form, logs in to the queue from the desktop (the WebSocket
carries the state back), a caller enters the queue and the screen pop shows the stored
customer (a name with markup shown as text); the agent's phone answers and the page
follows the call. The supervisor's wallboard then shows the queue's live figures and the
hourly chart's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.store.customers import CustomerFields
from pbx.store.queues import Queue
from tests.interop.ear import listening
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient
from tests.interop.test_conference import Party, _until
from tests.web.console import SUPERVISOR, console_server
from tests.web.firefox import firefox

NAME = "Grace <b>Hopper</b>"
CALLER = "441632960002"  # the caller's SIP user: its number without the "+"


@pytest.fixture(autouse=True)
def _caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PASSWORDS, CALLER, "Ff7-secret-pass-q")


async def test_the_desktop_and_the_wallboard_work_in_firefox(tmp_path: Path) -> None:
    queue = Queue("support", "700", ring_seconds=20.0)
    async with console_server(
        tmp_path, (queue,), members={"support": ("1001",)}, users={CALLER: PASSWORDS[CALLER]}
    ) as c:
        await c.store.customers.add(CustomerFields("+441632960002", NAME, company="Navy"))
        async with (
            Party(c.server, "1001", 1500) as agent,
            listening({}) as caller,
            SipClient(c.server.sip_port) as caller_ua,
            firefox(c.base, tmp_path / "shots") as browser,
        ):
            await browser.login("1001", PASSWORDS["1001"])
            await browser.click("#btn-login")
            await browser.wait_text("#state", "available")
            _, ok = await dial(caller_ua, c.server, "700", caller=CALLER, rtp_port=caller.port)
            assert ok.status == 200
            await browser.wait_text("#pop-name", "Hopper")
            assert await browser.text("#pop-name") == NAME  # markup shown as text
            assert await browser.script("document.querySelector('#pop-name b')") is None
            assert await browser.text("#pop-company") == "Navy"
            assert await browser.text("#pop-calls") == "none"  # this call is no earlier one
            await _until(lambda: agent.invite is not None, "the agent's phone rings")
            await browser.wait_text("#call-state", "connected")
            await browser.wait_text("#state", "on-call")
            await browser.screenshot("firefox-desktop")
            await browser.login(SUPERVISOR, PASSWORDS[SUPERVISOR], page="/wallboard")
            await browser.wait_text("#on-call-support", "1")
            await browser.wait_text("#chart-rows", "100%")
            await browser.screenshot("firefox-wallboard")
