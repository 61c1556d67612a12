"""Call forwarding (always, busy, no answer) and ring groups (all, sequential),
with sipp phones as the callees and the test's own UDP client as the caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.server import PbxServer
from pbx.store import Forwarding, RingGroup
from tests.interop.peers import SippUas
from tests.interop.phones import closed_cdrs, dial, phone, running_server
from tests.interop.sipclient import SipClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path, ring_timeout=5.0) as pbx:
        yield pbx


async def call(server: PbxServer, target: str) -> int:
    """1001 calls `target`; an answered call is hung up at once. The final status."""
    async with SipClient(server.sip_port) as ua:
        invite, final = await dial(ua, server, target)
        if final.status == 200:
            bye = await ua.exchange(ua.in_dialog(invite, final, "BYE", 3), timeout=10)
            assert bye.status == 200
        return final.status


async def finished(uas: SippUas) -> int:
    return await asyncio.get_running_loop().run_in_executor(None, uas.finish)


async def set_forwarding(server: PbxServer, forwarding: Forwarding) -> None:
    assert server._store is not None
    await server._store.dialplan.set_forwarding(forwarding)


async def add_group(server: PbxServer, group: RingGroup) -> None:
    assert server._store is not None
    await server._store.dialplan.add_ring_group(group)


async def last_cause(server: PbxServer) -> str:
    return str((await closed_cdrs(server))[-1].hangup_cause)


async def test_forward_always(server: PbxServer, tmp_path: Path) -> None:
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with target:
        await set_forwarding(server, Forwarding("1002", always="1003"))
        assert await call(server, "1002") == 200
        assert await finished(target) == 0
    assert "forwarded 1002 -> 1003" in await last_cause(server)


async def test_forward_on_busy(server: PbxServer, tmp_path: Path) -> None:
    busy = await phone(server, "1002", "uas_busy.xml", tmp_path / "1002")
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with busy, target:
        await set_forwarding(server, Forwarding("1002", busy="1003"))
        assert await call(server, "1002") == 200
        assert await finished(busy) == 0
        assert await finished(target) == 0


async def test_forward_on_no_answer(server: PbxServer, tmp_path: Path) -> None:
    ringing = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with ringing, target:
        await set_forwarding(server, Forwarding("1002", no_answer="1003", no_answer_seconds=1))
        assert await call(server, "1002") == 200
        assert await finished(ringing) == 0  # it was cancelled after 1 s
        assert await finished(target) == 0


async def test_forwarding_loop_is_refused(server: PbxServer) -> None:
    await set_forwarding(server, Forwarding("1002", always="1003"))
    await set_forwarding(server, Forwarding("1003", always="1002"))
    assert await call(server, "1002") == 482


async def test_ring_group_all_at_once(server: PbxServer, tmp_path: Path) -> None:
    loser = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    winner = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with loser, winner:
        await add_group(server, RingGroup("600", ("1002", "1003"), "all", 10))
        assert await call(server, "600") == 200
        assert await finished(winner) == 0
        assert await finished(loser) == 0  # cancelled when 1003 answered


async def test_ring_group_one_after_another(server: PbxServer, tmp_path: Path) -> None:
    first = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    second = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
    with first, second:
        await add_group(server, RingGroup("601", ("1002", "1003"), "sequential", 1))
        assert await call(server, "601") == 200
        assert await finished(first) == 0  # rang 1 s, then cancelled
        assert await finished(second) == 0


async def test_ring_group_nobody_answers(server: PbxServer, tmp_path: Path) -> None:
    ringing = await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002")
    with ringing:
        await add_group(server, RingGroup("602", ("1002", "1003"), "all", 1))
        assert await call(server, "602") == 408
        assert await finished(ringing) == 0
