"""Acceptance 1 of issue 15 in a real browser: agent 1001 logs in to the web console and
to its queue; a sipp caller enters the queue; the screen pop shows the imported
customer's name while 1001's phone (baresip) still rings; after the answer the agent opens
a ticket (its timer runs), searches the knowledge base and links an article, and sets a
disposition; ticket, disposition and call are in the database and in `pbx queue report`.
On the way the CRM webhook gets the offer, answer and end, signed, with the customer, and
the pop links to the customer's page in the CRM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from acd.web.webhook import SIGNATURE_HEADER, verify
from pbx.store.queues import Queue
from tests.interop.baresip import Baresip
from tests.interop.peers import run_sipp
from tests.interop.phones import PASSWORDS, SCENARIOS, sipp_auth
from tests.tools import need
from tests.web.browser import chromium
from tests.web.console import console_server

ROOT = Path(__file__).resolve().parents[2]
CALLER = "441632960123"  # the caller's user name: its number without the "+"
CRM = "Customer,Phone,Company,Notes\nAda Lovelace,01632 960123,Analytical Engines,VIP line\n"
ARTICLE = "---\ntags: support\n---\n# Printer jams\n\nOpen tray 2 and pull **gently**.\n"


async def cli(*args: str) -> str:
    """`pbx ARGS` as its own process (beside the running server, as an admin runs it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, stdout=PIPE, stderr=PIPE, cwd=ROOT
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out, err)
    return out.decode()


@dataclass
class Crm:
    url: str = ""
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def crm_receiver() -> AsyncIterator[Crm]:
    """A CRM's webhook endpoint on loopback: keeps (signature, message) of each POST."""
    crm = Crm()

    async def handle(request: web.Request) -> web.Response:
        raw = await request.text()
        crm.messages.append((request.headers[SIGNATURE_HEADER], {**json.loads(raw), "raw": raw}))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    crm.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield crm
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def _caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PASSWORDS, CALLER, "Cu5-secret-pass-q")


async def test_screen_pop_ticket_kb_disposition(tmp_path: Path) -> None:
    need("sipp")
    need("baresip")
    queue = Queue("support", "700", ring_seconds=60.0, wrapup_seconds=2.0)
    async with (
        console_server(tmp_path, (queue,), {"support": ("1001",)}) as c,
        contextlib.AsyncExitStack() as stack,
    ):
        (tmp_path / "crm.csv").write_text(CRM)
        await cli("customer", "import", str(tmp_path / "crm.csv"), "--data-dir", str(tmp_path))
        hook = await stack.enter_async_context(crm_receiver())
        out = await cli("customer", "webhook", hook.url, "--data-dir", str(tmp_path))
        secret = out.rsplit(": ", 1)[1].strip()
        await cli(
            "customer", "crm-url", "https://crm.example/c/{number}", "--data-dir", str(tmp_path)
        )
        (tmp_path / "printer.md").write_text(ARTICLE)
        await cli("kb", "import", str(tmp_path / "printer.md"), "--data-dir", str(tmp_path))
        loop = asyncio.get_running_loop()
        async with Baresip(
            tmp_path / "phone",
            user="1001",
            password=PASSWORDS["1001"],
            registrar_port=c.server.sip_port,
        ) as phone:
            await asyncio.to_thread(phone.wait_registered)
            async with chromium(c.base, tmp_path / "shots") as browser:
                await browser.login("1001", PASSWORDS["1001"])
                await browser.click("#btn-login")
                await browser.wait_text("#state", "available")
                caller = loop.run_in_executor(
                    None,
                    lambda: run_sipp(
                        SCENARIOS / "uac_call.xml",
                        c.server.sip_port,
                        workdir=tmp_path / "caller",
                        inf=[(CALLER, sipp_auth(CALLER), "700")],
                        extra=("-d", "10000", "-auth_uri", f"700@127.0.0.1:{c.server.sip_port}"),
                        timeout=60,
                    ),
                )
                await browser.wait_text("#pop-name", "Ada Lovelace", timeout=20)
                # Popped while the phone rings: baresip saw the call come in, not answered.
                await loop.run_in_executor(None, phone.wait_for_event, "CALL_INCOMING", 10)
                assert not [e for e in phone.events.items if e.get("type") == "CALL_ESTABLISHED"]
                assert await browser.text("#call-state") == "ringing"
                assert await browser.text("#pop-company") == "Analytical Engines"
                assert await browser.text("#call-queue") == "support"
                crm = await browser.find("#pop-crm")
                assert await browser.call(crm.get_attribute, "href") == (
                    "https://crm.example/c/%2B441632960123"
                )
                await browser.screenshot("screen-pop-ringing")
                await loop.run_in_executor(None, phone.command, "accept")
                await loop.run_in_executor(None, phone.wait_for_event, "CALL_ESTABLISHED", 10)
                await browser.wait_text("#call-state", "connected")
                await browser.wait_text("#state", "on-call")

                await browser.type("#ticket-subject", "Printer jams on tray 2")
                await browser.click("#ticket-open")
                await browser.wait_text("#ticket-title", "Printer jams on tray 2")
                first = await browser.text("#ticket-timer")
                await browser.wait(
                    lambda d: (
                        d.find_element("css selector", "#ticket-timer").text not in (first, "-")
                    ),
                    "the ticket timer running",
                )
                await browser.type("#kb-q", "tray")
                await browser.click("#kb-search")
                await browser.wait_text("#kb-results", "Printer jams")
                await browser.click("#kb-results button.kb-link")
                await browser.wait_text("#ticket-articles", "Printer jams")
                await browser.screenshot("ticket-with-article")

                result = await caller  # the caller hangs up after 10 s
                assert (result.returncode, result.successful) == (0, 1), result.output
                await browser.wait_text("#call-state", "ended")
                await browser.click("#disp-save")
                await browser.wait_text("#disp-status", "saved: resolved")
                await browser.screenshot("disposition-saved")
        await c.acd.flush()
        call_id = next(
            e.call_id for e in await c.store.queue_events.between(0, 1e12) if e.event == "CONNECT"
        )
        customer = await c.store.customers.by_number("+441632960123")
        assert customer is not None and customer.name == "Ada Lovelace"
        [ticket] = await c.store.tickets.for_call(call_id)
        [article] = await c.store.kb.search("tray")
        assert (ticket.agent, ticket.queue, ticket.customer) == ("1001", "support", customer.id)
        assert ticket.articles == (article.id,) and ticket.calls == ((call_id, "1001"),)
        [disposition] = await c.store.dispositions.for_call(call_id)
        assert (disposition.code, disposition.queue, disposition.agent) == (
            "resolved",
            "support",
            "1001",
        )
        assert (disposition.ticket, disposition.customer) == (ticket.id, customer.id)
        # The CRM got the offer, the answer and the end, each signed, with the customer.
        await until(lambda: len(hook.messages) >= 3)
        assert [m["event"] for _, m in hook.messages] == ["offer", "answer", "end"]
        for signature, message in hook.messages:
            assert message["customer"]["name"] == "Ada Lovelace"
            assert message["call"]["call_id"] == call_id and message["agent"] == "1001"
            assert verify(secret, signature, message["raw"].encode(), time.time())
        events = [e.event for e in await c.store.queue_events.between(0, 1e12)
                  if e.call_id == call_id]  # fmt: skip
        assert events[:2] == ["ENTERQUEUE", "CONNECT"] and events[2].startswith("COMPLETE")
        report = await cli("queue", "report", "--data-dir", str(tmp_path))
    lines = report.splitlines()
    assert lines[1].split()[:3] == ["support", "1", "1"]  # offered, answered
    section = lines.index("DISPOSITIONS")
    assert lines[section + 1].split() == ["QUEUE", "CODE", "CALLS", "TICKETS"]
    assert lines[section + 2].split() == ["support", "resolved", "1", "1"]
