"""`pbx queue add|set|list|del` and `pbx queue member …`, with their one-line errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import Queue, QueueEventRecord, Store, Trunk
from pbx.store.queues import SkillRule

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")
            for user in ("1001", "1002"):
                await store.users.add(user, "Aa-secret-xyz1", "aiopbx")
            await store.trunks.add(Trunk("prov", "127.0.0.1"))

    asyncio.run(fill())
    return tmp_path


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _queue(data_dir: Path, name: str) -> Queue:
    async def read() -> Queue:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.queues.get(name)

    return asyncio.run(read())


def _events(data_dir: Path) -> list[QueueEventRecord]:
    async def read() -> list[QueueEventRecord]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.queue_events.between(0, 1e12)

    return asyncio.run(read())


def test_queue_add_with_every_option_round_trips(data_dir: Path) -> None:
    code, out, err = _run(
        data_dir,
        "queue", "add", "sales", "--number", "700",
        "--strategy", "leastrecent", "--ring-seconds", "12", "--retry-seconds", "3",
        "--wrapup-seconds", "8", "--max-callers", "10", "--max-wait", "120",
        "--overflow", "vm:1001", "--join-empty", "paused,unavailable",
        "--leave-when-empty", "unavailable", "--service-level", "30",
        "--announce-frequency", "45", "--periodic-announce", "busy-now",
        "--periodic-frequency", "60", "--music", "jazz", "--weight", "2",
        "--penalty-members-limit", "1", "--ring-in-use", "--autopause-after", "3",
        "--skill", "french=5", "--skill", "billing=2", "--relax", "90:drop",
        "--relax", "30:-2", "--callback-key", "none", "--voicemail-key", "#",
        "--callback-attempts", "5",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert out == "added queue sales (700): leastrecent, ring 12 s, overflow vm:1001\n"
    assert _queue(data_dir, "sales") == Queue(
        "sales",
        "700",
        strategy="leastrecent",
        ring_seconds=12.0,
        retry_seconds=3.0,
        wrapup_seconds=8.0,
        max_callers=10,
        max_wait_seconds=120.0,
        overflow="vm:1001",
        join_empty=frozenset({"paused", "unavailable"}),
        leave_when_empty=frozenset({"unavailable"}),
        service_level_seconds=30.0,
        announce_frequency=45.0,
        periodic_announce="busy-now",
        periodic_frequency=60.0,
        music="jazz",
        weight=2,
        penalty_members_limit=1,
        ring_in_use=True,
        autopause_after=3,
        skills={"french": 5, "billing": 2},
        skill_rules=(SkillRule(30.0, relax=2), SkillRule(90.0, drop=True)),
        callback_key=None,
        voicemail_key="#",
        callback_attempts=5,
    )


def test_queue_set_list_del(data_dir: Path) -> None:
    assert _run(data_dir, "queue", "add", "sales", "--number", "700")[0] == 0
    assert _run(data_dir, "queue", "add", "support", "--number", "701")[0] == 0
    code, out, _ = _run(
        data_dir, "queue", "set", "sales", "--overflow", "queue:support", "--max-wait", "60",
        "--no-ring-in-use", "--join-empty", "none", "--skill", "de=4",
    )  # fmt: skip
    assert (code, out) == (0, "queue sales (700): ringall, ring 15 s, overflow queue:support\n")
    queue = _queue(data_dir, "sales")
    assert (queue.overflow, queue.max_wait_seconds, queue.skills) == (
        "queue:support",
        60.0,
        {"de": 4},
    )
    assert _run(data_dir, "queue", "member", "add", "sales", "1002", "--penalty", "2")[0] == 0
    assert _run(data_dir, "queue", "member", "add", "sales", "1001")[0] == 0
    code, out, _ = _run(data_dir, "queue", "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME", "NUMBER", "STRATEGY", "RING", "WRAPUP", "MAX", "MAXWAIT>OVERFLOW", "SKILLS",
        "MEMBERS",
    ]  # fmt: skip
    assert lines[1].split() == [
        "sales", "700", "ringall", "15", "0", "-", "60>queue:support", "de=4", "1002,1001"
    ]  # fmt: skip
    assert lines[2].split() == ["support", "701", "ringall", "15", "0", "-", "-", "-", "-"]
    code, out, _ = _run(data_dir, "queue", "member", "list", "sales")
    assert [line.split() for line in out.splitlines()] == [
        ["AGENT", "PENALTY", "POSITION", "ACTIVE"],
        ["1002", "2", "0", "yes"],
        ["1001", "0", "1", "yes"],
    ]
    assert _run(data_dir, "queue", "member", "set", "sales", "1002", "--penalty", "0")[1] == (
        "1002 in queue sales: penalty 0\n"
    )
    assert _run(data_dir, "queue", "member", "del", "sales", "1001")[0] == 0
    assert _run(data_dir, "did", "add", "5551234", "--to", "queue:support")[0] == 0
    code, out, _ = _run(data_dir, "queue", "del", "support")
    assert out.splitlines() == [
        "deleted queue support (701)",
        "still sending calls to queue support (now unknown): DID 5551234; overflow of queue sales",
    ]
    code, out, _ = _run(data_dir, "queue", "del", "sales")
    assert out.splitlines() == ["deleted queue sales (700)", "removed its member(s) 1002"]
    assert _run(data_dir, "queue", "list")[1] == "no queues\n"


def test_member_list_of_an_empty_queue(data_dir: Path) -> None:
    assert _run(data_dir, "queue", "add", "sales", "--number", "700")[0] == 0
    assert _run(data_dir, "queue", "member", "list", "sales")[1] == "queue sales has no members\n"


BAD: list[tuple[tuple[str, ...], str]] = [
    (("queue", "add", "x", "--number", "1001"), "number 1001 is already taken by user 1001"),
    (("queue", "add", "sales", "--number", "700"), "queue 'sales' already exists"),
    (("queue", "add", "9x", "--number", "702"), "queue name '9x': a letter"),
    (("queue", "add", "x", "--number", "702", "--strategy", "rr"), "strategy 'rr': choose"),
    (("queue", "add", "x", "--number", "702", "--ring-seconds", "0"), "ring time must be more"),
    (("queue", "add", "x", "--number", "702", "--max-callers", "-1"), "max callers must be 0"),
    (("queue", "add", "x", "--number", "702", "--max-wait", "-5"), "max wait must be 0 or more"),
    (("queue", "add", "x", "--number", "702", "--skill", "fr=11"), "skill fr: level 11 is not"),
    (("queue", "add", "x", "--number", "702", "--skill", "fr"), "skill 'fr': give NAME=LEVEL"),
    (("queue", "add", "x", "--number", "702", "--relax", "30"), "relax rule '30': give"),
    (("queue", "add", "x", "--number", "702", "--relax", "30:+2"), "relax rule '30:+2'"),
    (("queue", "add", "x", "--number", "702", "--join-empty", "busy"), "condition 'busy'"),
    (("queue", "add", "x", "--number", "702", "--leave-when-empty", "a,b"), "condition 'a'"),
    (("queue", "add", "x", "--number", "702", "--callback-key", "ab"), "callback key 'ab'"),
    (("queue", "add", "x", "--number", "702", "--overflow", "9999"), "no extension, group"),
    (("queue", "add", "x", "--number", "702", "--overflow", "queue:nope"), "no queue 'nope'"),
    (("queue", "add", "x", "--number", "702", "--overflow", "trunk:no/1"), "no trunk 'no'"),
    (("queue", "add", "x", "--number", "702", "--overflow", "vm:9"), "no mailbox '9'"),
    (("queue", "set", "nope", "--weight", "1"), "no queue 'nope'"),
    (("queue", "set", "sales", "--overflow", "1001", "--no-overflow"), "not both"),
    (("queue", "set", "sales", "--number", "1002"), "number 1002 is already taken by user 1002"),
    (("queue", "del", "nope"), "no queue 'nope'"),
    (("queue", "member", "add", "nope", "1001"), "no queue 'nope'"),
    (("queue", "member", "add", "sales", "1009"), "no user '1009'"),
    (("queue", "member", "add", "sales", "1001"), "1001 is already a member of queue sales"),
    (("queue", "member", "add", "sales", "1002", "--penalty", "-1"), "penalty must be 0"),
    (("queue", "member", "del", "sales", "1002"), "1002 is not a member of queue sales"),
    (("queue", "member", "list", "nope"), "no queue 'nope'"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_errors_are_one_line_exit_1(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    assert _run(data_dir, "queue", "add", "sales", "--number", "700")[0] == 0
    assert _run(data_dir, "queue", "member", "add", "sales", "1001")[0] == 0
    code, out, err = _run(data_dir, *args)
    assert code == 1, (out, err)
    assert err.startswith("pbx: error: ") and err.count("\n") == 1
    assert message in err
    assert _events(data_dir) == []


def test_a_bad_number_is_a_usage_error(data_dir: Path) -> None:
    code, _, err = _run(data_dir, "queue", "add", "x", "--number", "702", "--ring-seconds", "abc")
    assert code == 2 and err.count("\n") == 1 and "--ring-seconds" in err
