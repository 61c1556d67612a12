"""`pbx agent …` and `pbx user role`: state changes land with their queue events; errors
are one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import AgentRecord, Queue, QueueEventRecord, Store

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")
            for user in ("1001", "1002", "1003"):
                await store.users.add(user, "Aa-secret-xyz1", "aiopbx")
            await store.queues.add(Queue("sales", "700"))
            await store.queues.add(Queue("support", "701"))
            await store.queues.add_member("sales", "1001", penalty=1)
            await store.queues.add_member("support", "1001")
            await store.queues.add_member("sales", "1002")

    asyncio.run(fill())
    return tmp_path


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _agent(data_dir: Path, name: str) -> AgentRecord:
    async def read() -> AgentRecord:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.agents.get(name)

    return asyncio.run(read())


def _events(data_dir: Path) -> list[tuple[str, str, str | None]]:
    async def read() -> list[QueueEventRecord]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.queue_events.between(0, 1e12)

    return [(e.queue, e.event, e.agent) for e in asyncio.run(read())]


def test_login_pause_unpause_logout(data_dir: Path) -> None:
    assert (
        _run(data_dir, "agent", "login", "1001")[1] == "1001 logged in to queue(s) sales, support\n"
    )
    assert _run(data_dir, "agent", "login", "1001")[1] == "1001 is already logged in\n"
    assert _agent(data_dir, "1001").state == "available"
    assert (
        _run(data_dir, "agent", "pause", "1001", "--reason", "lunch")[1] == "1001 paused (lunch)\n"
    )
    agent = _agent(data_dir, "1001")
    assert (agent.state, agent.pause_reason) == ("paused", "lunch")
    code, out, _ = _run(data_dir, "agent", "unpause", "1001")
    assert code == 0 and out.startswith("1001 available (was paused 0:00:")
    assert _run(data_dir, "agent", "logout", "1001", "--queue", "support")[1] == (
        "1001 logged out of queue(s) support\n"
    )
    assert _run(data_dir, "agent", "logout", "1001")[1] == "1001 logged out of queue(s) sales\n"
    assert _run(data_dir, "agent", "logout", "1001")[1] == "1001 was not logged in\n"
    assert _agent(data_dir, "1001").state == "logged-out"
    assert _events(data_dir) == [
        ("", "AGENTLOGIN", "1001"),
        ("", "PAUSE", "1001"),
        ("", "UNPAUSE", "1001"),
        ("", "AGENTLOGOFF", "1001"),
    ]


def test_list_show_skill_wrapup(data_dir: Path) -> None:
    _run(data_dir, "agent", "login", "1001", "--queue", "sales")
    _run(data_dir, "agent", "pause", "1001", "-r", "training")
    assert _run(data_dir, "agent", "skill", "1001", "french=7", "billing=2")[1] == (
        "1001 skills: billing=2,french=7\n"
    )
    assert _run(data_dir, "agent", "skill", "1001", "--remove", "billing")[1] == (
        "1001 skills: french=7\n"
    )
    assert _run(data_dir, "agent", "wrapup", "1001", "20")[1] == "1001 wrap-up: 20 s\n"
    code, out, _ = _run(data_dir, "agent", "list")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["AGENT", "STATE", "FOR", "REASON", "QUEUES", "SKILLS"]
    assert lines[1][:2] == ["1001", "paused"] and lines[1][3:] == [
        "training",
        "sales(1),support(0)-",
        "french=7",
    ]
    assert lines[2] == ["1002", "logged-out", "-", "-", "sales(0)", "-"]
    assert len(lines) == 3  # 1003 is in no queue
    code, out, _ = _run(data_dir, "agent", "show", "1001")
    assert code == 0
    assert out.splitlines()[0] == "agent         1001"
    assert "pause reason  training" in out and "wrap-up       20 s" in out
    assert "queues        sales(1),support(0)-" in out
    assert _run(data_dir, "agent", "wrapup", "1001", "queue")[1] == "1001 wrap-up: the queue's\n"
    assert _agent(data_dir, "1001").wrapup_seconds is None


def test_user_role_and_user_del_of_an_agent(data_dir: Path) -> None:
    assert _run(data_dir, "user", "role", "1002", "supervisor")[1] == "1002 is now supervisor\n"
    code, out, _ = _run(data_dir, "user", "list")
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["1001", "agent"],
        ["1002", "supervisor"],
        ["1003", "agent"],
    ]
    _run(data_dir, "agent", "login", "1001")
    code, out, _ = _run(data_dir, "user", "del", "1001")
    assert code == 0
    assert "removed agent 1001 from queue(s) sales, support" in out.splitlines()
    assert _run(data_dir, "agent", "list")[1].splitlines()[1].split()[0] == "1002"


BAD: list[tuple[tuple[str, ...], str]] = [
    (("agent", "login", "1009"), "no agent '1009'"),
    (("agent", "login", "1003"), "1003 is in no queue"),
    (("agent", "login", "1002", "--queue", "support"), "1002 is not a member of queue support"),
    (("agent", "login", "1002", "--queue", "nope"), "no queue 'nope'"),
    (("agent", "logout", "1009"), "no agent '1009'"),
    (("agent", "pause", "1002"), "1002 is not logged in"),
    (("agent", "pause", "1009"), "no agent '1009'"),
    (("agent", "unpause", "1002"), "1002 is not paused (logged-out)"),
    (("agent", "show", "1009"), "no agent '1009'"),
    (("agent", "skill", "1002", "french=0"), "skill french: level 0 is not 1 to 10"),
    (("agent", "skill", "1002", "french=11"), "skill french: level 11 is not 1 to 10"),
    (("agent", "skill", "1002", "french"), "skill 'french': give NAME=LEVEL"),
    (("agent", "skill", "1002"), "give NAME=LEVEL skills to set or --remove NAME"),
    (("agent", "skill", "1002", "--remove", "x"), "1002 has no skill 'x'"),
    (("agent", "wrapup", "1002", "inf"), "wrap-up time must be 0 or more seconds, not inf"),
    (("agent", "wrapup", "1002", "soon"), "wrap-up 'soon': give seconds or 'queue'"),
    (("user", "role", "1002", "boss"), "role 'boss': choose agent, supervisor, admin"),
    (("user", "role", "1009", "admin"), "no user '1009'"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_errors_are_one_line_exit_1(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(data_dir, *args)
    assert code == 1, (out, err)
    assert err.startswith("pbx: error: ") and err.count("\n") == 1
    assert message in err
    assert _events(data_dir) == []


def test_help_says_a_running_server_does_it() -> None:
    result = runner.invoke(app, ["agent", "login", "--help"])
    assert "Goes through the running server's ACD when one runs" in " ".join(result.stdout.split())
