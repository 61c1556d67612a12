"""What the web console tests share: an in-process switch with the ACD and the web
console on free loopback ports, and a logged-in HTTP client."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from acd.app import AcdApplication
from acd.dialer import Dialer
from acd.web.console import WebConsole
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import BanPolicy
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from pbx.store.queues import Queue
from tests.interop.peers import free_port
from tests.interop.phones import PASSWORDS

SUPERVISOR = "1003"


@dataclass
class Console:
    server: PbxServer
    acd: AcdApplication
    web: WebConsole

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web.port}"

    @property
    def store(self) -> Store:
        assert self.server._store is not None
        return self.server._store


@contextlib.asynccontextmanager
async def console_server(
    tmp_path: Path,
    queues: tuple[Queue, ...] = (Queue("support", "700", ring_seconds=20.0),),
    members: dict[str, tuple[str, ...]] | None = None,
    users: dict[str, str] | None = None,
    policy: BanPolicy | None = None,
    applications: tuple[Any, ...] = (),
    dialer: bool = False,
) -> AsyncIterator[Console]:
    """Users 1001-1003 (1003 a supervisor), `queues` with `members` (default: 1001 and
    1002 in every queue), `applications` (e.g. the IVR), the ACD (and with `dialer` the
    outbound dialer) and the web console."""
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in {**PASSWORDS, **(users or {})}.items():
        await store.users.add(user, password, "aiopbx")
    await store.users.set_role(SUPERVISOR, "supervisor")
    for queue in queues:
        await store.queues.add(queue)
        for agent in (members or {}).get(queue.name, ("1001", "1002")):
            await store.queues.add_member(queue.name, agent)
    await store.settings.set("customer_country", "GB")
    await store.close()
    acd = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    outbound = Dialer(acd, acd.prompts) if dialer else None
    web = WebConsole(acd, "127.0.0.1", 0, policy=policy, dialer=outbound)
    services = [acd, *([outbound] if outbound else []), web]
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port()), applications=[*applications, *services]
    )
    await server.start()
    try:
        yield Console(server, acd, web)
    finally:
        await server.stop()


def client() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies of an IP address host (127.0.0.1).
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=10)
    )


async def login(
    session: aiohttp.ClientSession, base: str, user: str, password: str | None = None
) -> aiohttp.ClientResponse:
    """Fill in and post the login form; the answer (a 303 on success) unfollowed."""
    async with session.get(base + "/login") as page:
        text = await page.text()
    match = re.search(r'name=csrf value="([^"]+)"', text)
    assert match is not None, text
    form = {
        "csrf": match.group(1),
        "username": user,
        "password": PASSWORDS[user] if password is None else password,
    }
    async with session.post(base + "/login", data=form, allow_redirects=False) as response:
        await response.read()
        return response


async def logged_in(base: str, user: str) -> tuple[aiohttp.ClientSession, str]:
    """A client logged in as `user` and its CSRF token."""
    session = client()
    response = await login(session, base, user)
    assert response.status == 303, response.status
    async with session.get(base + "/api/me") as me:
        assert me.status == 200
        csrf = str((await me.json())["csrf"])
    return session, csrf
