"""Acceptance 2 of issue 15 in a real browser: the supervisor's wallboard with 2 agents
and 3 callers waiting shows the right counts within 1 s of each change (frames pushed
from the event stream, no polling); a screenshot is saved with the test's output."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from pbx.store.queues import Queue
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient
from tests.web.browser import chromium
from tests.web.console import SUPERVISOR, Console, console_server

CALLERS = ("2000", "2001", "2002")
#: The acceptance's bound between a change in the switch and the page showing it.
WITHIN = 1.0


@pytest.fixture(autouse=True)
def _callers(monkeypatch: pytest.MonkeyPatch) -> None:
    for i, caller in enumerate(CALLERS):
        monkeypatch.setitem(PASSWORDS, caller, f"Wb7-secret-pass-{'abc'[i]}")


def waiting(c: Console) -> int:
    return len(c.acd.snapshot()["queues"][0]["waiting"])


async def test_wallboard_follows_callers_and_agents(tmp_path: Path) -> None:
    queue = Queue("support", "700", ring_seconds=20.0, service_level_seconds=2.0)
    async with console_server(tmp_path, (queue,)) as c:
        for agent in ("1001", "1002"):  # logged in but paused: callers wait
            await c.acd.agent_command(agent, "login")
            await c.acd.agent_command(agent, "pause", reason="training")
        await c.acd.flush()
        async with (
            chromium(c.base, tmp_path / "shots") as browser,
            contextlib.AsyncExitStack() as stack,
        ):
            await browser.login(SUPERVISOR, PASSWORDS[SUPERVISOR], page="/wallboard")
            await browser.wait_text("#waiting-support", "0", exact=True)
            assert await browser.text("#paused-support") == "2"
            assert await browser.text("#state-1001") == "paused"
            calls = []
            for n, caller in enumerate(CALLERS, 1):
                ua = await stack.enter_async_context(SipClient(c.server.sip_port))
                invite, ok = await dial(ua, c.server, "700", caller=caller)
                assert ok.status == 200
                calls.append((ua, invite, ok))
                await until(lambda n=n: waiting(c) == n)  # the switch has the change ...
                await browser.wait_text(
                    "#waiting-support", str(n), timeout=WITHIN, exact=True
                )  # ... shown
            assert await browser.text("#paused-support") == "2"
            assert await browser.text("#longest-support") != "-"
            # The first caller has waited past the 2 s threshold: the queue is in alarm.
            await browser.wait_text("#alarms", "support: a caller has waited", timeout=5.0)
            row = await browser.find("tr[data-queue=support]")
            assert await browser.call(row.get_attribute, "class") == "alarm"
            await browser.screenshot("wallboard-3-waiting-2-agents")
            # An agent logs out: the state counts move.
            await c.acd.agent_command("1002", "logout")
            await browser.wait_text("#logged-out-support", "1", timeout=WITHIN, exact=True)
            assert await browser.text("#paused-support") == "1"
            assert await browser.text("#state-1002") == "logged-out"
            # A caller hangs up: one fewer waiting.
            ua, invite, ok = calls[0]
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
            await until(lambda: waiting(c) == 2)
            await browser.wait_text("#waiting-support", "2", timeout=WITHIN, exact=True)
            await browser.screenshot("wallboard-after-changes")
            for ua, invite, ok in calls[1:]:
                await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)


async def until(condition: object, timeout: float = 10.0) -> None:
    """Until `condition()` holds in the switch (bounded)."""
    import asyncio

    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the switch never got there"
        await asyncio.sleep(0.02)
