"""Live ACD commands against a real in-process `PbxServer` whose ACD is a stand-in service
serving round 7's routes (`GET /acd`, `POST /acd/agent`): with a server running, `pbx
agent login|logout|pause|unpause` go through it (the database is not written behind its
back), `list`/`show` and `pbx queue show --once` read its snapshot; when it stops the
commands fall back to the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import reports
from cli.app import app
from pbx.api import Call, Switch
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Queue, QueueEventRecord, Store
from tests.interop.peers import free_port

runner = CliRunner()


class FakeAcd:
    """Round 7's AcdApplication seen from the control API: agent commands change its own
    state (a pause during a call is deferred, as the engine does); refusals are 404/409."""

    def __init__(self) -> None:
        now = time.time()
        self.commands: list[dict[str, Any]] = []
        self.agents: dict[str, dict[str, Any]] = {
            "1001": {"name": "1001", "state": "on-call", "since": now - 125, "reason": None,
                     "queues": ["sales"], "call": "call-7"},
            "1002": {"name": "1002", "state": "logged-out", "since": None, "reason": None,
                     "queues": [], "call": None},
        }  # fmt: skip

    async def handles(self, number: str, switch: Switch) -> bool:
        return False

    async def run(self, call: Call, switch: Switch) -> str:
        raise AssertionError("never routed")

    async def start(self, switch: Switch) -> None:
        switch.add_route("GET /acd", self.snapshot)
        switch.add_body_route("POST /acd/agent", self.agent)

    async def close(self) -> None:
        pass

    def snapshot(self, query: dict[str, str]) -> dict[str, Any]:
        now = time.time()
        waiting = [
            {"call_id": "call-9", "caller": "5551234", "position": 1, "wait": 42.0},
            {"call_id": "call-8", "caller": "5559876", "position": 2, "wait": 3.0},
        ]
        counts: dict[str, int] = {}
        for a in self.agents.values():
            counts[a["state"]] = counts.get(a["state"], 0) + 1
        queue = {"name": "sales", "number": "700", "strategy": "ringall", "waiting": waiting,
                 "longest_wait": 42.0, "agents": counts}  # fmt: skip
        return {"queues": [queue], "agents": list(self.agents.values()), "now": now}

    async def agent(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.commands.append(body)
        agent = self.agents.get(str(body.get("agent")))
        if agent is None:
            return 404, {"error": f"no agent {body.get('agent')!r}"}
        action = body.get("action")
        if action != "login" and agent["state"] == "logged-out":
            return 409, {"error": f"{agent['name']} is not logged in"}
        if action == "login":
            agent.update(state="available", queues=[body.get("queue") or "sales"])
        elif action == "logout":
            agent.update(state="logged-out", queues=[])
        elif action == "pause" and agent["state"] != "on-call":  # during a call: deferred
            agent.update(state="paused", reason=body.get("reason"))
        elif action == "unpause":
            agent.update(state="available", reason=None)
        agent["since"] = time.time()
        return 200, {k: agent[k] for k in ("state", "reason", "queues")} | {"agent": agent["name"]}


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, FakeAcd]]:
    # "Today" began an hour ago: the events below are today's even just after midnight.
    monkeypatch.setattr(reports, "local_midnight", lambda now: now - 3600.0)
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.settings.set_default("realm", "aiopbx")
        for user in ("1001", "1002"):
            await store.users.add(user, "Aa-secret-xyz1", "aiopbx")
        await store.queues.add(Queue("sales", "700"))
        await store.queues.add_member("sales", "1001")
        await store.queues.add_member("sales", "1002", penalty=2)
        now = time.time()
        await store.queue_events.append(
            [
                QueueEventRecord(now - 90, "c1", "sales", None, "ENTERQUEUE", {"position": 1}),
                QueueEventRecord(now - 80, "c1", "sales", "1001", "CONNECT", {"hold": 10.0}),
                QueueEventRecord(now - 20, "c1", "sales", "1001", "COMPLETEAGENT", {"talk": 60.0}),
                QueueEventRecord(now - 15, "c2", "sales", None, "ENTERQUEUE", {"position": 1}),
                QueueEventRecord(now - 10, "c2", "sales", None, "ABANDON", {"wait": 5.0}),
            ]
        )
    fake = FakeAcd()
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()), applications=[fake])
    await server.start()
    try:
        yield tmp_path, fake
    finally:
        await server.stop()


async def _pbx(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(runner.invoke, app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


async def _events(data_dir: Path) -> list[str]:
    async with await Store.open(data_dir / "pbx.sqlite3") as store:
        return [e.event for e in await store.queue_events.between(0, 1e12)]


async def test_agent_commands_go_through_the_running_acd(served: tuple[Path, FakeAcd]) -> None:
    data_dir, fake = served
    before = await _events(data_dir)
    assert await _pbx(data_dir, "agent", "login", "1002", "--queue", "sales") == (
        0, "1002 logged in: now available, queue(s) sales\n", "",
    )  # fmt: skip
    assert await _pbx(data_dir, "agent", "pause", "1002", "--reason", "lunch") == (
        0, "1002 paused: now paused (lunch), queue(s) sales\n", "",
    )  # fmt: skip
    # 1001 is on a call: the ACD defers the pause, the line says what the agent is now.
    assert (await _pbx(data_dir, "agent", "pause", "1001"))[1] == (
        "1001 paused: now on-call, queue(s) sales\n"
    )
    assert (await _pbx(data_dir, "agent", "unpause", "1002"))[1] == (
        "1002 unpaused: now available, queue(s) sales\n"
    )
    assert (await _pbx(data_dir, "agent", "logout", "1002"))[
        1
    ] == "1002 logged out: now logged-out\n"
    assert fake.commands == [
        {"agent": "1002", "action": "login", "queue": "sales"},
        {"agent": "1002", "action": "pause", "reason": "lunch"},
        {"agent": "1001", "action": "pause"},
        {"agent": "1002", "action": "unpause"},
        {"agent": "1002", "action": "logout"},
    ]
    # The running ACD owns the state and writes the events: the CLI wrote nothing.
    assert await _events(data_dir) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("agent", "pause", "1002"), "1002 is not logged in"),
        (("agent", "login", "1003"), "no agent '1003'"),
    ],
)
async def test_refusals_are_one_line_exit_1(
    served: tuple[Path, FakeAcd], args: tuple[str, ...], message: str
) -> None:
    code, out, err = await _pbx(served[0], *args)
    assert (code, out) == (1, "")
    assert err.startswith("pbx: error: ") and err.count("\n") == 1 and message in err


async def test_list_and_show_read_the_live_state(served: tuple[Path, FakeAcd]) -> None:
    data_dir, _ = served
    code, out, _ = await _pbx(data_dir, "agent", "list")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["AGENT", "STATE", "FOR", "REASON", "CALL", "QUEUES", "SKILLS"]
    assert rows[1][:2] == ["1001", "on-call"] and rows[1][3:] == ["-", "call-7", "sales(0)", "-"]
    assert rows[1][2] in ("0:02:05", "0:02:06", "0:02:07")  # time in state, from the ACD
    assert rows[2] == ["1002", "logged-out", "-", "-", "-", "sales(2)", "-"]
    code, out, _ = await _pbx(data_dir, "agent", "show", "1001")
    shown = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith("pause"))
    assert shown["state"].startswith("on-call for 0:02:0") and shown["call"] == "call-7"


async def test_queue_show_once_is_the_live_board(served: tuple[Path, FakeAcd]) -> None:
    data_dir, _ = served
    code, out, err = await _pbx(data_dir, "queue", "show", "--once")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith("(live)")
    assert lines[2:9] == [
        "queue sales (700) ringall",
        "  waiting 2  longest wait 0:00:42",
        "  today: offered 2  answered 1  abandoned 1  SL 100.0 % (within 20 s)  ASA 10.0 s"
        "  AHT 60.0 s",
        "  agents: on-call 1, logged-out 1",
        "  POS  CALLER   WAIT",
        "  1    5551234  0:00:42",
        "  2    5559876  0:00:03",
    ]
    assert "call-7" in lines[-2] or "call-7" in lines[-1]


async def test_without_the_server_the_database_is_written(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.settings.set_default("realm", "aiopbx")
        await store.users.add("1001", "Aa-secret-xyz1", "aiopbx")
        await store.queues.add(Queue("sales", "700"))
        await store.queues.add_member("sales", "1001")
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()), applications=[FakeAcd()])
    await server.start()
    await server.stop()  # a server ran here once: its control file is gone or stale
    assert (await _pbx(tmp_path, "agent", "login", "1001"))[1] == (
        "1001 logged in to queue(s) sales\n"
    )
    assert await _events(tmp_path) == ["AGENTLOGIN"]
    code, out, _ = await _pbx(tmp_path, "agent", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["AGENT", "STATE", "FOR", "REASON", "QUEUES", "SKILLS"]
