"""Acceptance 4 of issue 15 in real browsers: agent 1001 (queue support) answers a call,
opens a ticket and escalates the call with it to the specialists' queue; the specialist
1002's desktop pops the ticket and the escalation note when its phone rings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx.store.queues import Queue
from tests.interop.baresip import Baresip
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient
from tests.tools import need
from tests.web.browser import chromium
from tests.web.console import console_server

CALLER = "2000"


@pytest.fixture(autouse=True)
def _caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PASSWORDS, CALLER, "Es4-secret-pass-z")


async def test_escalated_call_pops_its_ticket_on_the_specialists_desktop(
    tmp_path: Path,
) -> None:
    need("baresip")
    queues = (
        Queue("support", "700", ring_seconds=30.0),
        Queue("specialists", "701", ring_seconds=30.0),
    )
    members = {"support": ("1001",), "specialists": ("1002",)}
    async with console_server(tmp_path, queues, members) as c:
        phones = [
            Baresip(
                tmp_path / agent,
                user=agent,
                password=PASSWORDS[agent],
                registrar_port=c.server.sip_port,
                auto_answer=True,
            )
            for agent in ("1001", "1002")
        ]
        try:
            for p in phones:
                await asyncio.to_thread(p.start)
            for p in phones:
                await asyncio.to_thread(p.wait_registered)
            async with (
                chromium(c.base, tmp_path / "agent") as agent,
                chromium(c.base, tmp_path / "specialist") as specialist,
                SipClient(c.server.sip_port) as ua,
            ):
                for browser, user in ((agent, "1001"), (specialist, "1002")):
                    await browser.login(user, PASSWORDS[user])
                    await browser.click("#btn-login")
                    await browser.wait_text("#state", "available")
                invite, ok = await dial(ua, c.server, "700", caller=CALLER)
                assert ok.status == 200
                await agent.wait_text("#call-state", "connected")
                await agent.type("#ticket-subject", "Firmware update bricked the printer")
                await agent.click("#ticket-open")
                await agent.wait_text("#ticket-title", "Firmware update")
                ticket_id = int(await agent.text("#ticket-id"))
                await agent.script("document.querySelector('#esc-queue').value = 'specialists'")
                await agent.type("#esc-note", "needs a firmware reflash")
                await agent.click("#esc-go")
                await agent.wait_text("#esc-status", "escalated to specialists")
                await specialist.wait_text("#ticket-title", "Firmware update bricked the printer")
                assert int(await specialist.text("#ticket-id")) == ticket_id
                await specialist.wait_text("#pop-escalation", "1001: needs a firmware reflash")
                await specialist.wait_text("#ticket-notes", "escalated to specialists")
                assert await specialist.text("#call-queue") == "specialists"
                await specialist.wait_text("#call-state", "connected")
                await specialist.screenshot("specialist-pop-with-ticket")
                # The ticket is the specialist's to work on now.
                await specialist.type("#note-body", "reflashed over USB")
                await specialist.click("#note-add")
                await specialist.wait_text("#ticket-notes", "1002: reflashed over USB")
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            await c.acd.flush()
            ticket = await c.store.tickets.get(ticket_id)
            assert ticket.state == "escalated" and ticket.agent == "1001"
            [(call_id, first), (same, second)] = ticket.calls
            assert (call_id, first, second) == (same, "1001", "1002")
            assert [n.body for n in ticket.notes] == [
                "escalated to specialists: needs a firmware reflash",
                "reflashed over USB",
            ]
            events = [
                (e.event, e.queue, e.agent)
                for e in await c.store.queue_events.between(0, 1e12)
                if e.call_id == call_id and e.event in ("CONNECT", "TRANSFER")
            ]
            assert events[0] == ("CONNECT", "support", "1001")
            assert ("TRANSFER", "support", "1001") in events
            assert ("CONNECT", "specialists", "1002") in events
        finally:
            for p in phones:
                await asyncio.to_thread(p.stop)
