"""The admin page in a real browser (headless Chromium): it lists the queues with their
members, the trunks and the DIDs; an admin takes a member out of a queue and adds one
back, changes a queue's wrap-up and saves new IVR menus with the page's own controls; the
database and the running ACD follow."""

from __future__ import annotations

from pathlib import Path

from pbx.store.trunks import Trunk
from tests.interop.phones import PASSWORDS
from tests.web.browser import chromium
from tests.web.console import console_server, logged_in

MENU = """[[menu]]
name = "main"
number = "800"
greeting = "main-greeting"
[menu.options]
"9" = "voicemail:5555"
"""


async def test_an_admin_changes_queue_members_in_the_page(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c, chromium(c.base, tmp_path / "shots") as browser:
        await c.store.users.set_role("1002", "admin")
        await c.store.trunks.add(Trunk("prov", "127.0.0.1", port=5099, max_channels=8))
        await c.store.dids.add("+442071234567", "queue:support")
        await c.server._reload_trunks()
        await browser.login("1002", PASSWORDS["1002"], page="/wallboard")  # an admin's start
        await browser.get("/admin")
        await browser.wait(
            lambda d: d.execute_script("return document.body.dataset.ready") == "1", "admin"
        )
        assert "prov" in await browser.text("#trunks") and "off" in await browser.text("#trunks")
        assert await browser.text("#dids") == "+442071234567 queue:support"
        await browser.wait_text("#queues", "1001 \u00d7")
        # Take 1001 out of support with its button.
        await browser.script(
            "[...document.querySelectorAll('#queues button')]"
            ".find((b) => b.textContent.startsWith('1001')).click()"
        )
        await browser.wait(
            lambda d: "1001" not in d.find_element("css selector", "#queues").text, "removed"
        )
        members = await c.store.queues.all_members()
        assert [m.agent for m in members["support"]] == ["1002"]
        # And add it back by typing its extension.
        await browser.type("#queues input", "1001\n")
        await browser.wait_text("#queues", "1001 \u00d7")
        members = await c.store.queues.all_members()
        assert sorted(m.agent for m in members["support"]) == ["1001", "1002"]
        row = await c.acd.agent_command("1001", "login")  # the running ACD follows
        assert row["queues"] == ["support"]
        # A queue's settings: the Edit form, a new wrap-up time, Save.
        await browser.click("#queues button[data-queue=support]")
        await browser.type("#queue-fields input[name=wrapup_seconds]", "9")
        await browser.click("#queue-save")
        await browser.wait(lambda d: not d.find_element("css selector", "#queue-form")
                           .is_displayed(), "the form closed after saving")  # fmt: skip
        assert (await c.store.queues.get("support")).wrapup_seconds == 9.0
        assert c.acd.wrapup_seconds("1001", "support") == 9.0
        # The IVR menus: typed into the text area and saved; the warnings are shown.
        await browser.type("#ivr", MENU)
        await browser.click("#ivr-save")
        await browser.wait_text("#ivr-status", "saved: 1 menus, 0 schedules")
        assert "no mailbox 5555" in await browser.text("#ivr-warnings")
        assert 'number = "800"' in await c.store.ivr.get()
        await browser.type("#ivr", "[[menu]]\nname = 'x'\n")  # no greeting: refused
        await browser.click("#ivr-save")
        await browser.wait_text("#error", "greeting")
        assert 'number = "800"' in await c.store.ivr.get()  # the stored menus stay
        # Web sessions: the admin's own page is marked; another's has an End button.
        await browser.wait_text("#sessions", "this page")
        other, _ = await logged_in(c.base, "1001")
        async with other:
            await browser.get("/admin")
            await browser.wait_text("#sessions", "1001")
            await browser.click("#sessions button")
            await browser.wait(
                lambda d: "1001" not in d.find_element("css selector", "#sessions").text,
                "the session gone",
            )
            async with other.get(c.base + "/api/me") as r:
                assert r.status == 401
        await browser.screenshot("admin")
