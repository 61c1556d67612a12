"""What the call tests share: an in-process switch with users 1001-1003, sipp phones
registered from the port their scenario listens on, and an authenticated INVITE from
the test's own client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Cdr, Store
from sip.digest import make_credentials
from sip.message import Response
from tests.interop.peers import DATA, SippUas, free_port, run_sipp
from tests.interop.sipclient import NOWHERE_RTP, SipClient

T = TypeVar("T")
SCENARIOS = DATA / "sipp"
PASSWORDS = {
    "1001": "Xk3-secret-pass",
    "1002": "Yk3-secret-pass",
    "1003": "Zk3-secret-pass",
}


def sipp_auth(user: str) -> str:
    """sipp's keyword answering a digest challenge as `user` (an -inf field)."""
    return f"[authentication username={user} password={PASSWORDS[user]}]"


@contextlib.asynccontextmanager
async def running_server(tmp_path: Path, **settings: Any) -> AsyncIterator[PbxServer]:
    """A switch in this process (real sockets, real store) with users 1001-1003."""
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.close()
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port(), **settings))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking helper (a sipp run) without stalling the in-process switch."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


async def register(server: PbxServer, user: str, port: int, workdir: Path) -> None:
    """Register `user` with sipp from 127.0.0.1:`port` (the switch calls that address)."""
    result = await in_thread(
        run_sipp,
        SCENARIOS / "register_auth.xml",
        server.sip_port,
        workdir=workdir,
        inf=[(user, sipp_auth(user))],
        local_port=port,
        timeout=15,
    )
    assert (result.returncode, result.successful) == (0, 1), result.output


async def phone(server: PbxServer, user: str, scenario: str, workdir: Path, *extra: str) -> SippUas:
    """A sipp phone registered as `user`, running `scenario` (one call) on its port."""
    port = free_port()
    await register(server, user, port, workdir / "reg")
    return SippUas(SCENARIOS / scenario, workdir, port=port, extra=tuple(extra))


async def dial(
    ua: SipClient,
    server: PbxServer,
    target: str,
    *,
    caller: str = "1001",
    rtp_port: int = NOWHERE_RTP,
    events: bool = False,
    ack: bool = True,
    offer: bool = True,
) -> tuple[bytes, Response]:
    """INVITE `target` as `caller`, answering the digest challenge; ACK the final
    response (a 2xx only with `ack`). Returns the authenticated INVITE and its final
    response."""
    unauthenticated = ua.invite(
        caller, target, cseq=1, rtp_port=rtp_port, events=events, offer=offer
    )
    first = await ua.exchange(unauthenticated)
    assert first.status == 401
    ua.send(ua.ack_for(unauthenticated, first))
    uri = f"sip:{target}@127.0.0.1:{server.sip_port}"
    creds = make_credentials(ua.challenge(first, "MD5"), caller, PASSWORDS[caller], "INVITE", uri)
    invite = ua.invite(
        caller,
        target,
        authorization=str(creds),
        cseq=2,
        rtp_port=rtp_port,
        events=events,
        offer=offer,
    )
    final = await ua.exchange(invite, timeout=20)
    if final.status >= 300:
        ua.send(ua.ack_for(invite, final))
    elif ack:
        ua.send(ua.ack_2xx(invite, final))
    return invite, final


async def closed_cdrs(server: PbxServer, count: int = 1) -> list[Cdr]:
    """The CDRs once `count` of them are closed (a call's row closes as its task ends)."""
    assert server._store is not None
    for _ in range(200):
        rows = await server._store.cdrs.list()
        if len(rows) >= count and all(r.end is not None for r in rows):
            return rows
        await asyncio.sleep(0.05)
    return await server._store.cdrs.list()
