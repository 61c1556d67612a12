"""Acceptance 3 in a real browser (headless Chromium): a script tag in a customer's name,
notes or an article is shown as text and never runs."""

from __future__ import annotations

from pathlib import Path

from acd.web.api import customer_view
from pbx.store import CustomerFields
from tests.interop.phones import PASSWORDS
from tests.web.browser import chromium
from tests.web.console import SUPERVISOR, console_server

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


async def test_script_tags_are_text_in_the_desktop(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c, chromium(c.base, tmp_path / "shots") as browser:
        customer = await c.store.customers.add(
            CustomerFields("+442079460123", "Eve " + HOSTILE, HOSTILE, notes=HOSTILE)
        )
        await c.store.kb.put("Help " + HOSTILE, "Body " + HOSTILE, ["support"], "1003")
        await browser.login("1001", PASSWORDS["1001"])
        # The page's own rendering of a pop (the live path; no call needed for markup).
        c.web.live.to_agent(
            "1001",
            {
                "type": "pop",
                "call": {
                    "call_id": "c1",
                    "number": HOSTILE,
                    "queue": "support",
                    "ivr": "",
                    "state": "ringing",
                    "wait": 3.0,
                    "duration": 0.0,
                },
                "customer": await customer_view(c.web, customer),
                "tickets": [],
                "suggested": [],
            },
        )
        await browser.wait_text("#pop-name", "Eve <script>window.pwned = 1</script>")
        assert await browser.text("#pop-company") == HOSTILE
        assert await browser.text("#pop-notes") == HOSTILE
        assert await browser.text("#call-number") == HOSTILE
        await browser.type("#kb-q", "help")
        await browser.click("#kb-search")
        await browser.wait_text("#kb-results", "Help <script>")
        await browser.click("#kb-results a.kb-open")
        await browser.wait_text("#kb-body", "Body <script>window.pwned = 1</script>")
        assert await browser.text("#kb-title") == "Help " + HOSTILE
        await browser.screenshot("markup-as-text")
        assert await browser.script("return window.pwned === undefined") is True
        assert (
            await browser.script(
                "return document.querySelectorAll('#pop img, #kb-body img, #pop script').length"
            )
            == 0
        )
        assert await browser.script("return document.querySelector('#kb-write').hidden") is True


async def test_a_supervisor_writes_an_article_in_the_page(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c, chromium(c.base, tmp_path / "shots") as browser:
        await browser.login(SUPERVISOR, PASSWORDS[SUPERVISOR], page="/wallboard")
        await browser.get("/desktop")
        await browser.wait(
            lambda d: d.execute_script("return document.body.dataset.ready") == "1", "desktop"
        )
        await browser.type("#kw-title", "Refunds")
        await browser.type("#kw-tags", "billing, support")
        await browser.type("#kw-body", "Refunds take **10 days**.\n\n" + HOSTILE)
        await browser.click("#kw-save")
        await browser.wait_text("#kb-body", "Refunds take 10 days.")
        assert await browser.text("#kb-body strong") == "10 days"
        assert HOSTILE in await browser.text("#kb-body")  # as text
        assert await browser.script("return window.pwned === undefined") is True
        [article] = await c.store.kb.search("refunds")
        assert (article.author, article.tags) == (SUPERVISOR, ("billing", "support"))
