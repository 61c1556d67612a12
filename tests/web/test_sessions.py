"""Web console sessions listed and ended: by their user, by an admin, by `pbx user
logout` and by a password change. An ended session's next request gets 401 and its
open pages (WebSockets) are closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from acd.web import live
from cli.app import app
from tests.web.console import console_server, logged_in

runner = CliRunner()


async def status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as r:
        return r.status


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> bool:
    """Whether the server closes `ws` within `timeout` (messages before are read)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return True


async def test_a_user_and_an_admin_list_and_end_sessions(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        await c.store.users.set_role("1002", "admin")
        first, csrf = await logged_in(c.base, "1001")
        second, _ = await logged_in(c.base, "1001")
        admin, admin_csrf = await logged_in(c.base, "1002")
        async with first, second, admin:
            async with first.get(c.base + "/api/sessions") as r:
                mine = (await r.json())["sessions"]
            assert [s["user"] for s in mine] == ["1001", "1001"]
            assert sorted(s["current"] for s in mine) == [False, True]
            async with first.get(c.base + "/api/sessions?all=1") as r:  # not an admin
                assert {s["user"] for s in (await r.json())["sessions"]} == {"1001"}
            async with admin.get(c.base + "/api/sessions?all=1") as r:
                everyone = (await r.json())["sessions"]
            assert sorted(s["user"] for s in everyone) == ["1001", "1001", "1002"]
            admins = next(s["id"] for s in everyone if s["user"] == "1002")
            other = next(s["id"] for s in mine if not s["current"])
            headers = {"X-CSRF-Token": csrf}
            for id_ in (admins, "0" * 16, "not-an-id", "ABCDEF0123456789"):
                async with first.delete(c.base + f"/api/sessions/{id_}", headers=headers) as r:
                    assert r.status == 404, id_  # someone else's is as unknown as none
            page = await second.ws_connect(c.base + "/ws")
            assert (await page.receive_json(timeout=5))["type"] == "hello"
            async with first.delete(c.base + f"/api/sessions/{other}", headers=headers) as r:
                assert (r.status, await r.json()) == (200, {"revoked": True})
            assert await closed(page)  # its open page closes at once
            assert await status(second, c.base + "/api/me") == 401
            assert await status(first, c.base + "/api/me") == 200
            current = next(s["id"] for s in mine if s["current"])
            async with admin.delete(
                c.base + f"/api/sessions/{current}", headers={"X-CSRF-Token": admin_csrf}
            ) as r:
                assert r.status == 200  # an admin ends anyone's
            assert await status(first, c.base + "/api/me") == 401


async def test_a_password_change_and_pbx_user_logout_end_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "SESSION_SWEEP", 0.2)
    async with console_server(tmp_path) as c:
        loop = asyncio.get_running_loop()
        agent, _ = await logged_in(c.base, "1001")
        other, _ = await logged_in(c.base, "1002")
        async with agent, other:
            page = await agent.ws_connect(c.base + "/ws")
            listed = await loop.run_in_executor(
                None, runner.invoke, app, ["user", "sessions", "--data-dir", str(tmp_path)]
            )
            assert listed.exit_code == 0, listed.output
            assert listed.output.count("1001") == 1 and listed.output.count("1002") == 1
            await c.store.users.set_password("1001", "An0ther-long-passphrase", "aiopbx")
            assert await status(agent, c.base + "/api/me") == 401
            assert await closed(page)  # found by the sweep: the change came from elsewhere
            assert await status(other, c.base + "/api/me") == 200
            ended = await loop.run_in_executor(
                None, runner.invoke, app, ["user", "logout", "1002", "--data-dir", str(tmp_path)]
            )
            assert ended.exit_code == 0, ended.output
            assert ended.output == "ended 1 web console session of 1002\n"
            assert await status(other, c.base + "/api/me") == 401
            unknown = await loop.run_in_executor(
                None, runner.invoke, app, ["user", "logout", "4711", "--data-dir", str(tmp_path)]
            )
            assert unknown.exit_code == 1 and "4711" in unknown.stderr
