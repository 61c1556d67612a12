"""Issue 17 in the web console (headless Chromium): the wallboard shows each campaign's
dialled, answered, human / machine, connected, dropped, abandon % today and over the
profile's window and the agents' talk share, and follows new attempts (pushed after a
campaign event, no reload); the agent's screen pop of a dialled call shows the
campaign's script and the contact's record (markup as text)."""

from __future__ import annotations

import time
from pathlib import Path

from pbx.api import CampaignEvent, QueueOffered
from pbx.store import Campaign, DialAttempt
from tests.interop.phones import PASSWORDS
from tests.web.browser import chromium
from tests.web.console import SUPERVISOR, console_server

SCRIPT = "Ask about the <b>spring</b> offer."


def attempt(number: str, outcome: str, at: float, **more: object) -> DialAttempt:
    return DialAttempt("spring", number, at, at + 30.0, outcome, **more)  # type: ignore[arg-type]


async def test_the_wallboard_and_the_pop_show_the_campaign(tmp_path: Path) -> None:
    async with console_server(tmp_path, dialer=True) as c:
        await c.store.campaigns.create(
            Campaign("spring", "+442071230000", queue="support", script=SCRIPT)
        )
        now = time.time() - 120
        for row in (
            attempt("+441632960001", "connected", now, answered_at=now + 5, amd="human",
                    agent="1001", connected_at=now + 6, wait_to_agent=1.0),
            attempt("+441632960002", "machine", now, answered_at=now + 5, amd="machine"),
            attempt("+441632960003", "busy", now),
        ):  # fmt: skip
            await c.store.attempts.add(row)
        async with chromium(c.base, tmp_path / "shots") as boss:
            await boss.login(SUPERVISOR, PASSWORDS[SUPERVISOR], page="/wallboard")
            await boss.wait_text("#campaign-dialled-spring", "3", exact=True)
            assert await boss.text("#campaign-answered-spring") == "2"
            assert await boss.text("#campaign-human-machine-spring") == "1 / 1"
            assert await boss.text("#campaign-connected-spring") == "1"
            assert await boss.text("#campaign-abandon-today-spring") == "0%"
            # A dropped call (a person no agent took): the board follows the event.
            await c.store.attempts.add(
                attempt("+441632960004", "dropped", now, answered_at=now + 5, amd="human")
            )
            c.server.switch.publish(CampaignEvent("9-x", "spring", "ended", "+441632960004"))
            await boss.wait_text("#campaign-dropped-spring", "1", exact=True, timeout=10)
            assert await boss.text("#campaign-abandon-today-spring") == "50%"  # 1 of 2 live
            assert await boss.text("#campaign-dialled-spring") == "4"
            await boss.screenshot("wallboard-campaign")
        async with chromium(c.base, tmp_path / "agent") as agent:
            await agent.login("1001", PASSWORDS["1001"])
            c.server.switch.publish(
                CampaignEvent("7-dialled", "spring", "offered", "+441632960005",
                              {"script": SCRIPT, "contact": 5, "record.name": "Ada <i>L</i>",
                               "record.plan": "gold"})
            )  # fmt: skip
            c.server.switch.publish(
                QueueOffered("7-dialled", "support", "1001", "+441632960005", wait=0.5)
            )
            await agent.wait_text("#pop-script", "Ask about the <b>spring</b> offer.")
            assert await agent.text("#pop-campaign-name") == "spring"
            assert await agent.text("#pop-record") == "name\nAda <i>L</i>\nplan\ngold"
            assert await agent.script("return document.querySelector('#pop-campaign b, i')") is None
            await agent.screenshot("pop-campaign")
