"""kill -9 of `pbx serve` while callers queue (issue 13 point 6), with the ACD running:
after the restart the agents are still logged in (one still paused), the callback a
caller asked for is still pending and served again by the restored application, the
interrupted caller's queue events are closed, and no agent is left on a call."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pbx.store import Store
from tests.interop.ear import listening
from tests.interop.peers import PbxProcess, add_users, free_port, pbx_cli
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_acd import TONES, answer_bye

USERS = {**PASSWORDS, "2000": "Ck3-secret-pass-a", "2001": "Ck3-secret-pass-b"}


async def _code(port: int, agent: str, code: str) -> None:
    server: Any = SimpleNamespace(sip_port=port)
    async with SipClient(port) as ua:
        _, ok = await dial(ua, server, code, caller=agent)
        assert ok.status == 200
        await answer_bye(ua)


async def _queue_two_callers(port: int, data_dir: Path, server: PbxProcess) -> None:
    """2001 presses 1 for a callback (and is hung up); 2000 waits in the queue while the
    switch is killed with SIGKILL."""
    switch: Any = SimpleNamespace(sip_port=port)
    async with listening(TONES) as ear, SipClient(port) as ua:
        _, ok = await dial(ua, switch, "700", caller="2001", rtp_port=ear.port, events=True)
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        for _ in range(300):  # the switch's audio (music) comes: the call is queued
            if len(ear.audio) > 10:
                break
            await asyncio.sleep(0.05)
        ear.press("1")
        await answer_bye(ua)
    async with SipClient(port) as waiting:
        _, ok = await dial(waiting, switch, "700", caller="2000")
        assert ok.status == 200
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            for _ in range(200):  # the ENTERQUEUE is stored
                rows = await store.queue_events.between(0, 1e12)
                if [e.call_id for e in rows if e.event == "ENTERQUEUE"][1:]:
                    break
                await asyncio.sleep(0.05)
        server.stop(signal.SIGKILL)


def test_kill_9_while_callers_queue_with_the_acd_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    for name, password in USERS.items():  # the test's own users, for dial's digest answers
        monkeypatch.setitem(PASSWORDS, name, password)
    add_users(data_dir, USERS)
    for args in (
        ("queue", "add", "sales", "--number", "700"),
        ("queue", "member", "add", "sales", "1001"),
        ("queue", "member", "add", "sales", "1002"),
    ):
        assert pbx_cli(data_dir, *args).returncode == 0, args
    port = free_port()
    server = PbxProcess(data_dir, port)
    server.start()
    try:
        asyncio.run(_code(port, "1001", "*50"))
        asyncio.run(_code(port, "1002", "*50"))
        asyncio.run(_code(port, "1001", "*52"))
        # No agent phone is registered: nobody is offered, callers wait.
        asyncio.run(_queue_two_callers(port, data_dir, server))
        server.start()
        listing = pbx_cli(data_dir, "agent", "list").stdout.splitlines()
    finally:
        server.stop()
    assert [line.split()[:2] for line in listing[1:]] == [["1001", "paused"], ["1002", "available"]]

    async def stored() -> tuple[list[Any], list[Any]]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.queue_events.between(0, 1e12), await store.callbacks.pending()

    events, callbacks = asyncio.run(stored())
    [callback] = callbacks
    assert (callback.queue, callback.number, callback.attempts) == ("sales", "2001", 0)
    by_call: dict[str, list[str]] = {}
    for e in events:
        by_call.setdefault(e.call_id, []).append(e.event)
    assert by_call[callback.call_id] == ["ENTERQUEUE", "CALLBACKREQUEST"]
    [waiting] = [c for c in by_call if c and c != callback.call_id]
    assert by_call[waiting] == ["ENTERQUEUE", "ABANDON"]
    assert [e.data.get("reason") for e in events if e.event == "ABANDON"] == ["restart"]
    assert by_call[""] == ["AGENTLOGIN", "AGENTLOGIN", "PAUSE"]
