"""Tests of the ACD's store (migration 14): queues, members, agents, callbacks, queue events,
user roles, `queue:NAME` targets, and the crash-recovery helper."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError, StoreError
from pbx.inbound import DidAction, DidStep, decide, step_for
from pbx.store import (
    MIGRATIONS,
    Forwarding,
    Queue,
    QueueEventRecord,
    RingGroup,
    Route,
    Store,
    Trunk,
)
from pbx.store.queues import SkillRule

PASSWORD = "correct-Horse-7"
NOW = 1000.0
RESTART = {"reason": "restart"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: NOW)
    for user in ("1001", "1002", "1003"):
        await s.users.add(user, PASSWORD, "aiopbx")
    await s.trunks.add(Trunk("prov", "127.0.0.1"))
    try:
        yield s
    finally:
        await s.close()


FULL = Queue(
    name="sales",
    number="700",
    strategy="rrmemory",
    ring_seconds=12.5,
    retry_seconds=2.0,
    wrapup_seconds=10.0,
    max_callers=20,
    max_wait_seconds=300.0,
    overflow="vm:1001",
    join_empty=frozenset({"paused", "unavailable"}),
    leave_when_empty=frozenset({"unavailable"}),
    service_level_seconds=30.0,
    announce_frequency=45.0,
    periodic_announce="busy-now",
    periodic_frequency=60.0,
    music="default",
    weight=3,
    penalty_members_limit=2,
    ring_in_use=True,
    autopause_after=3,
    skills={"french": 5, "billing": 2},
    skill_rules=(SkillRule(30.0, relax=2), SkillRule(90.0, drop=True)),
    callback_key="1",
    voicemail_key="#",
    callback_attempts=4,
)


# --- queues ----------------------------------------------------------------------


async def test_queue_round_trip_every_field(store: Store) -> None:
    await store.queues.add(FULL)
    assert await store.queues.get("sales") == FULL
    assert await store.queues.by_number("700") == FULL
    assert await store.queues.number_of("sales") == "700"
    await store.queues.add(Queue("support", "701"))
    assert [q.name for q in await store.queues.all()] == ["sales", "support"]
    assert await store.queues.get("support") == Queue("support", "701")  # the defaults


async def test_queue_update(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    changed = await store.queues.update(
        "sales", number="710", strategy="linear", skills={"de": 3}, join_empty=frozenset()
    )
    assert changed == Queue("sales", "710", strategy="linear", skills={"de": 3})
    assert await store.queues.get("sales") == changed
    assert await store.numbering.owner("700") is None  # the old number is free again
    owner = await store.numbering.owner("710")
    assert owner is not None and str(owner) == "queue 'sales'"
    with pytest.raises(NotFoundError, match="no queue 'nope'"):
        await store.queues.update("nope", weight=1)
    with pytest.raises(ConfigError, match="unknown queue field"):
        await store.queues.update("sales", name="x")


async def test_queue_number_is_in_the_numbering_plan(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    with pytest.raises(AlreadyExistsError, match="number 1001 is already taken by user 1001"):
        await store.queues.add(Queue("support", "1001"))
    with pytest.raises(AlreadyExistsError, match="number 700 is already taken by queue 'sales'"):
        await store.users.add("700", PASSWORD, "aiopbx")
    with pytest.raises(AlreadyExistsError, match="number 700 is already taken by queue 'sales'"):
        await store.dialplan.add_ring_group(RingGroup("700", ("1001",)))
    with pytest.raises(AlreadyExistsError, match="queue 'sales' already exists"):
        await store.queues.add(Queue("sales", "702"))
    with pytest.raises(ConfigError, match="username '\\*97' may only use letters"):
        await store.queues.add(Queue("vm", "*97"))


BAD_QUEUES: list[tuple[dict[str, Any], str]] = [
    ({"name": "9sales"}, "queue name '9sales'"),
    ({"number": "7 00"}, "username"),
    ({"strategy": "roundrobin"}, "strategy 'roundrobin': choose ringall, leastrecent"),
    ({"ring_seconds": 0.0}, "ring time must be more than 0 seconds, not 0"),
    ({"retry_seconds": -1.0}, "retry time must be 0 or more seconds, not -1"),
    ({"wrapup_seconds": float("nan")}, "wrap-up time: nan is not a number of seconds"),
    ({"max_callers": -1}, "max callers must be 0 or more, not -1"),
    ({"service_level_seconds": 0.0}, "service level must be more than 0 seconds"),
    ({"join_empty": frozenset({"busy"})}, "join-empty condition 'busy': choose among paused"),
    ({"leave_when_empty": frozenset({"x"})}, "leave-when-empty condition 'x'"),
    ({"skills": {"french": 11}}, "skill french: level 11 is not 1 to 10"),
    ({"skills": {"french": 0}}, "skill french: level 0 is not 1 to 10"),
    ({"skills": {"fr ench": 3}}, "skill 'fr ench'"),
    ({"skill_rules": (SkillRule(0.0, 1),)}, "relax rule: the wait must be more than 0"),
    ({"skill_rules": (SkillRule(10.0),)}, "relax rule: lower the levels by 1 or more"),
    ({"callback_key": "12"}, "callback key '12': one of 0-9, * or #"),
    ({"voicemail_key": "a"}, "voicemail key 'a'"),
    ({"voicemail_key": "1"}, "the callback and voicemail keys are both '1'"),
    ({"periodic_frequency": 30.0}, "a periodic frequency needs a periodic announcement"),
    ({"music": "../etc"}, "music '../etc' is not a prompt or music class name"),
    ({"overflow": "sales"}, "no extension, group, IVR menu, room or queue numbered sales"),
    ({"overflow": "queue:sales"}, "queue sales cannot overflow to itself"),
    ({"overflow": "700"}, "queue sales cannot overflow to its own number"),
    ({"overflow": "queue:other"}, "queue:other: no queue 'other'"),
    ({"overflow": "queue:"}, "'queue:' is not queue:NAME"),
    ({"overflow": "vm:1009"}, "overflow vm:1009: no mailbox '1009'"),
    ({"overflow": "trunk:nope/123"}, "no trunk 'nope'"),
    ({"overflow": "trunk:prov/12a"}, "NUMBER must be 1 to 32 digits"),
    ({"overflow": "*97"}, "no extension, group, IVR menu, room or queue numbered *97"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_QUEUES)
async def test_bad_queues_are_refused_with_one_line(
    store: Store, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises((ConfigError, NotFoundError)) as caught:
        await store.queues.add(dataclasses.replace(Queue("sales", "700"), **changes))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert await store.queues.all() == []


async def test_overflow_targets_that_exist(store: Store) -> None:
    await store.queues.add(Queue("support", "701"))
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",)))
    for target in ("queue:support", "1001", "600", "701", "vm:1002", "trunk:prov/+4930123"):
        queue = await store.queues.add(
            Queue(f"q{target[-3:].replace(':', '')}", "799", overflow=target)
        )
        assert (await store.queues.get(queue.name)).overflow == target
        await store.queues.delete(queue.name)


async def test_delete_reports_what_still_names_the_queue(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add(Queue("support", "701", overflow="queue:sales"))
    await store.queues.add(Queue("late", "702", overflow="700"))
    await store.queues.add_member("sales", "1001")
    await store.dids.add("5551234", "queue:sales")
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow="queue:sales"))
    await store.dialplan.set_forwarding(Forwarding("1002", busy="queue:sales", always="700"))
    await store.callbacks.add("sales", "c1", "0612", joined=NOW - 5)
    gone = await store.queues.delete("sales")
    assert gone.members == ("1001",)
    assert gone.pending_callbacks == 1
    assert gone.references == (
        "DID 5551234",
        "overflow of ring group 600",
        "overflow of queue support",
        "forwarding of 1002",
        "forwarding of 1002",
        "overflow of queue late",
    )
    assert await store.callbacks.pending() == []
    assert await store.queues.memberships("1001") == []
    with pytest.raises(NotFoundError, match="no queue 'sales'"):
        await store.queues.delete("sales")
    assert await store.numbering.owner("700") is None


# --- members ---------------------------------------------------------------------


async def test_members(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add_member("sales", "1002", penalty=1)
    await store.queues.add_member("sales", "1001")
    assert [(m.agent, m.penalty, m.position) for m in await store.queues.members("sales")] == [
        ("1002", 1, 0),
        ("1001", 0, 1),
    ]
    await store.queues.update_member("sales", "1001", penalty=2, position=-1)
    assert [m.agent for m in await store.queues.members("sales")] == ["1001", "1002"]
    await store.queues.delete_member("sales", "1002")
    assert [m.agent for m in await store.queues.members("sales")] == ["1001"]
    assert list(await store.queues.all_members()) == ["sales"]
    with pytest.raises(AlreadyExistsError, match="1001 is already a member of queue sales"):
        await store.queues.add_member("sales", "1001")
    with pytest.raises(NotFoundError, match="no user '1009'"):
        await store.queues.add_member("sales", "1009")
    with pytest.raises(NotFoundError, match="no queue 'nope'"):
        await store.queues.add_member("nope", "1001")
    with pytest.raises(NotFoundError, match="1002 is not a member of queue sales"):
        await store.queues.delete_member("sales", "1002")
    with pytest.raises(ConfigError, match="penalty must be 0 or more"):
        await store.queues.add_member("sales", "1003", penalty=-1)


async def test_deleting_a_user_removes_its_memberships_and_agent_row(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add(Queue("support", "701"))
    for queue in ("sales", "support"):
        await store.queues.add_member(queue, "1001")
    await store.agents.login("1001", NOW)
    gone = await store.users.delete("1001")
    assert gone.queues == ("sales", "support")
    assert await store.queues.members("sales") == []
    assert await store.agents.all() == []
    rows = await store._db.fetchall("SELECT count(*) FROM agents")
    assert rows[0][0] == 0


# --- agents ----------------------------------------------------------------------


def events_of(records: list[QueueEventRecord]) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    return [(e.queue, e.event, e.agent, dict(e.data)) for e in records]


async def test_login_pause_unpause_logout_write_state_and_events(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add(Queue("support", "701"))
    await store.queues.add_member("sales", "1001")
    await store.queues.add_member("support", "1001")
    assert (await store.agents.get("1001")).state == "logged-out"
    assert await store.agents.login("1001", 100.0) == ["sales", "support"]
    assert await store.agents.login("1001", 101.0) == []  # already
    agent = await store.agents.get("1001")
    assert (agent.state, agent.state_since, agent.logged_in_since) == ("available", 100.0, 100.0)
    assert await store.agents.pause("1001", 110.0, "lunch") is True
    assert await store.agents.pause("1001", 111.0, "lunch") is False
    agent = await store.agents.get("1001")
    assert (agent.state, agent.pause_reason, agent.state_since) == ("paused", "lunch", 110.0)
    assert await store.agents.unpause("1001", 140.0) == 30.0
    assert await store.agents.logout("1001", 200.0, queue="support") == ["support"]
    assert [m.logged_in for m in await store.queues.memberships("1001")] == [True, False]
    assert (await store.agents.get("1001")).state == "available"
    assert await store.agents.logout("1001", 250.0) == ["sales"]
    agent = await store.agents.get("1001")
    assert (agent.state, agent.logged_in_since) == ("logged-out", None)
    assert events_of(await store.queue_events.between(0, 1e9, agent="1001")) == [
        ("", "AGENTLOGIN", "1001", {}),
        ("", "PAUSE", "1001", {"reason": "lunch"}),
        ("", "UNPAUSE", "1001", {"paused": 30.0}),
        ("", "AGENTLOGOFF", "1001", {"logged": 150.0}),  # leaving support wrote none
    ]


async def test_login_to_one_queue(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add(Queue("support", "701"))
    await store.queues.add_member("sales", "1001")
    await store.queues.add_member("support", "1001")
    assert await store.agents.login("1001", 100.0, queue="support") == ["support"]
    assert [(m.queue, m.logged_in) for m in await store.queues.memberships("1001")] == [
        ("sales", False),
        ("support", True),
    ]
    assert await store.agents.login("1001", 105.0, queue="sales") == ["sales"]
    assert await store.agents.logout("1001", 110.0, queue="sales") == ["sales"]
    # Out of the last queue it is in: the agent is logged out.
    assert await store.agents.logout("1001", 120.0, queue="support") == ["support"]
    assert (await store.agents.get("1001")).state == "logged-out"
    # One session for the statistics: taking and leaving more queues writes no event.
    assert events_of(await store.queue_events.between(0, 1e9)) == [
        ("support", "AGENTLOGIN", "1001", {}),
        ("support", "AGENTLOGOFF", "1001", {"logged": 20.0}),
    ]


AGENT_ERRORS = [
    ("login", ("1009", NOW), NotFoundError, "no agent '1009'"),
    ("login", ("1003", NOW), ConfigError, "1003 is in no queue"),
    ("login", ("1001", NOW, "support"), ConfigError, "1001 is not a member of queue support"),
    ("login", ("1001", NOW, "nope"), NotFoundError, "no queue 'nope'"),
    ("pause", ("1001", NOW), ConfigError, "1001 is not logged in"),
    ("pause", ("1001", NOW, "x" * 65), ConfigError, "pause reason"),
    ("unpause", ("1001", NOW), ConfigError, "1001 is not paused (logged-out)"),
    ("set_state", ("1001", "busy", NOW), ConfigError, "agent state 'busy'"),
]


@pytest.mark.parametrize(("method", "args", "error", "message"), AGENT_ERRORS)
async def test_agent_errors(
    store: Store, method: str, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add(Queue("support", "701"))
    await store.queues.add_member("sales", "1001")
    with pytest.raises(error) as caught:
        await getattr(store.agents, method)(*args)
    assert message in str(caught.value)


async def test_pause_is_refused_on_a_call(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.queues.add_member("sales", "1001")
    await store.agents.login("1001", NOW)
    await store.agents.set_state("1001", "on-call", NOW + 1)
    with pytest.raises(ConfigError, match="1001 is on-call; pause it when the call ends"):
        await store.agents.pause("1001", NOW + 2)


async def test_set_state_writes_the_row_and_its_events_together(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    connect = QueueEventRecord(50.0, "c1", "sales", "1001", "CONNECT", {"hold": 3.0, "ring": 2.0})
    agent = await store.agents.set_state(
        "1001", "on-call", 50.0, events=[connect], calls_taken={"sales": 4}, missed_offers=0
    )
    assert (agent.state, agent.calls_taken, agent.logged_in_since) == (
        "on-call",
        {"sales": 4},
        50.0,
    )
    assert await store.agents.get("1001") == agent
    [stored] = await store.queue_events.between(0, 100)
    assert dataclasses.replace(stored, id=0) == connect

    # An event that cannot be stored: the state change is rolled back with it.
    with pytest.raises(ConfigError, match="unknown queue event 'HANGUP'"):
        await store.agents.set_state(
            "1001", "wrap-up", 60.0, events=[dataclasses.replace(connect, event="HANGUP")]
        )
    assert await store.agents.get("1001") == agent


async def test_an_sql_failure_of_the_event_insert_rolls_the_state_back(
    store: Store, tmp_path: Path
) -> None:
    await store.queues.add(Queue("sales", "700"))
    before = await store.agents.set_state("1001", "available", 10.0)
    raw = sqlite3.connect(tmp_path / "pbx.sqlite3")
    raw.execute(
        "CREATE TRIGGER no_events BEFORE INSERT ON queue_events"
        " BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
    )
    raw.commit()
    raw.close()
    event = QueueEventRecord(20.0, "", "sales", "1001", "PAUSE", {"reason": "x"})
    with pytest.raises(StoreError, match="the disk is full"):
        await store.agents.set_state("1001", "paused", 20.0, "x", events=[event])
    assert await store.agents.get("1001") == before
    with pytest.raises(StoreError, match="the disk is full"):
        await store.agents.pause("1001", 20.0, "x")
    assert await store.agents.get("1001") == before


async def test_skills_and_wrapup(store: Store) -> None:
    agent = await store.agents.set_skills("1001", {"french": 7, "billing": 3})
    assert agent.skills == {"french": 7, "billing": 3}
    agent = await store.agents.set_skills("1001", {"french": 9}, remove=["billing"])
    assert (await store.agents.get("1001")).skills == {"french": 9}
    with pytest.raises(ConfigError, match="level 0 is not 1 to 10"):
        await store.agents.set_skills("1001", {"french": 0})
    with pytest.raises(NotFoundError, match="1001 has no skill 'german'"):
        await store.agents.set_skills("1001", {}, remove=["german"])
    assert (await store.agents.set_wrapup("1001", 12.0)).wrapup_seconds == 12.0
    assert (await store.agents.get("1001")).state == "logged-out"


async def test_agent_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "pbx.sqlite3"
    async with await Store.open(path) as s:
        await s.users.add("1001", PASSWORD, "aiopbx")
        await s.queues.add(Queue("sales", "700"))
        await s.queues.add_member("sales", "1001")
        await s.agents.login("1001", 10.0)
        await s.agents.pause("1001", 20.0, "training")
        await s.callbacks.add("sales", "c1", "0612345678", joined=5.0, now=30.0)
    async with await Store.open(path) as s:
        agent = await s.agents.get("1001")
        assert (agent.state, agent.pause_reason, agent.logged_in_since) == (
            "paused",
            "training",
            10.0,
        )
        [callback] = await s.callbacks.pending("sales")
        assert (callback.number, callback.joined, callback.state) == ("0612345678", 5.0, "pending")


# --- callbacks -------------------------------------------------------------------


async def test_callbacks_keep_their_place(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    late = await store.callbacks.add("sales", "c2", "0622", joined=20.0, position=2, now=40.0)
    early = await store.callbacks.add("sales", "c1", "0611", joined=10.0, position=1, now=45.0)
    assert [c.call_id for c in await store.callbacks.pending("sales")] == ["c1", "c2"]
    tried = await store.callbacks.attempt(early.id, "no-answer", now=50.0)
    assert (tried.attempts, tried.updated) == (1, 50.0)
    await store.callbacks.attempt(early.id, "busy", now=60.0)
    await store.callbacks.drop(early.id, now=70.0)
    await store.callbacks.attempt(late.id, "answered", agent="1001", now=80.0)
    await store.callbacks.done(late.id, now=81.0)
    assert await store.callbacks.pending() == []
    assert (await store.callbacks.get(early.id)).state == "dropped"
    assert (await store.callbacks.get(late.id)).state == "done"
    with pytest.raises(ConfigError, match=f"callback {late.id} is done, not pending"):
        await store.callbacks.attempt(late.id, "x")
    with pytest.raises(NotFoundError, match="no callback 999"):
        await store.callbacks.drop(999)
    with pytest.raises(NotFoundError, match="no queue 'nope'"):
        await store.callbacks.add("nope", "c3", "0633", joined=1.0)
    assert [
        (e.call_id, e.event, dict(e.data)) for e in await store.queue_events.between(0, 1e9)
    ] == [
        ("c2", "CALLBACKREQUEST", {"number": "0622", "position": 2, "wait": 20.0}),
        ("c1", "CALLBACKREQUEST", {"number": "0611", "position": 1, "wait": 35.0}),
        ("c1", "CALLBACKATTEMPT", {"attempt": 1, "status": "no-answer"}),
        ("c1", "CALLBACKATTEMPT", {"attempt": 2, "status": "busy"}),
        ("c1", "CALLBACKDROP", {"attempts": 2}),
        ("c2", "CALLBACKATTEMPT", {"attempt": 1, "status": "answered"}),
    ]


# --- queue events ----------------------------------------------------------------


def ev(
    time: float,
    call_id: str,
    event: str,
    agent: str | None = None,
    queue: str = "sales",
    **data: Any,
) -> QueueEventRecord:
    return QueueEventRecord(time, call_id, queue, agent, event, data)


async def test_events_between_filters_by_time_queue_and_agent(store: Store) -> None:
    await store.queue_events.append(
        [
            ev(10.0, "c1", "ENTERQUEUE", caller="0611", position=1),
            ev(12.0, "c2", "ENTERQUEUE", queue="support", caller="0622", position=1),
            ev(15.0, "c1", "CONNECT", "1001", hold=5.0, ring=1.5),
            ev(20.0, "c1", "COMPLETECALLER", "1001", hold=5.0, talk=5.0, position=1),
        ]
    )
    assert [e.event for e in await store.queue_events.between(10.0, 20.0)] == [
        "ENTERQUEUE",
        "ENTERQUEUE",
        "CONNECT",
    ]
    assert [e.call_id for e in await store.queue_events.between(0, 99, queue="support")] == ["c2"]
    [connect, complete] = await store.queue_events.between(0, 99, queue="sales", agent="1001")
    assert (connect.time, connect.data) == (15.0, {"hold": 5.0, "ring": 1.5})
    assert complete.data == {"hold": 5.0, "talk": 5.0, "position": 1}
    with pytest.raises(ConfigError, match="data is not JSON"):
        await store.queue_events.append([ev(30.0, "c3", "ABANDON", wait=float("nan"))])
    with pytest.raises(ConfigError, match="unknown queue event 'NOPE'"):
        await store.queue_events.append([ev(30.0, "c3", "ENTERQUEUE"), ev(30.0, "c3", "NOPE")])
    assert len(await store.queue_events.between(0, 99)) == 4  # neither batch landed


async def test_close_interrupted_after_a_crash(store: Store) -> None:
    await store.queues.add(Queue("sales", "700"))
    for user in ("1001", "1002", "1003"):
        await store.queues.add_member("sales", user)
        await store.agents.login(user, 1.0)
    await store.queue_events.append(
        [
            ev(10.0, "done", "ENTERQUEUE", position=1),
            ev(11.0, "done", "CONNECT", "1003", hold=1.0, ring=1.0),
            ev(12.0, "done", "COMPLETEAGENT", "1003", hold=1.0, talk=1.0, position=1),
            ev(20.0, "talking", "ENTERQUEUE", position=1),
            ev(25.0, "talking", "CONNECT", "1001", hold=5.0, ring=2.0),
            ev(30.0, "waiting", "ENTERQUEUE", position=1),
            ev(31.0, "left", "ENTERQUEUE", position=2),
            ev(32.0, "left", "EXITWITHKEY", key="1", position=2, wait=1.0),
            ev(33.0, "cb", "ENTERQUEUE", position=2),
        ]
    )
    await store.callbacks.add("sales", "cb", "0611", joined=33.0, position=2, now=34.0)
    await store.agents.set_state("1001", "on-call", 25.0)
    await store.agents.set_state("1002", "ringing", 35.0)
    closed = await store.queue_events.close_interrupted(100.0)
    assert closed.callers == ("talking", "waiting")
    assert closed.agents == ("1001", "1002")
    for name in ("1001", "1002"):
        agent = await store.agents.get(name)
        assert (agent.state, agent.state_since) == ("available", 100.0)
    assert (await store.agents.get("1003")).state == "available"
    assert events_of(await store.queue_events.between(100.0, 101.0)) == [
        (
            "sales",
            "COMPLETEAGENT",
            "1001",
            {"hold": 5.0, "talk": 75.0, "position": 1, "reason": "restart"},
        ),
        (
            "sales",
            "ABANDON",
            None,
            {"position": 1, "entry_position": 1, "wait": 70.0, "reason": "restart"},
        ),
        ("", "RINGCANCELED", "1002", {"ring": 65.0, "reason": "restart"}),
    ]
    assert [c.call_id for c in await store.callbacks.pending()] == ["cb"]  # kept
    again = await store.queue_events.close_interrupted(200.0)
    assert (again.callers, again.agents) == ((), ())


# --- migrations on an existing database ------------------------------------------------


async def test_migration_14_applies_to_a_database_of_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "pbx.sqlite3"
    old = tuple(m for m in MIGRATIONS if m[0] < 14)
    async with await Store.open(path, migrations=old) as s:
        assert await s.schema_version() == 13
        raw = sqlite3.connect(path)
        raw.execute(
            "INSERT INTO users (username, realm, ha1_md5, ha1_sha256, created)"
            " VALUES ('1001', 'aiopbx', 'x', 'y', 1.0)"
        )
        raw.commit()
        raw.close()
    async with await Store.open(path) as s:
        assert await s.schema_version() == MIGRATIONS[-1][0]
        user = await s.users.get("1001")
        assert user.role == "agent"
        await s.users.set_role("1001", "supervisor")
        assert (await s.users.get("1001")).role == "supervisor"
        with pytest.raises(ConfigError, match="role 'boss': choose agent, supervisor, admin"):
            await s.users.set_role("1001", "boss")
        with pytest.raises(NotFoundError, match="no user '1009'"):
            await s.users.set_role("1009", "admin")
        await s.queues.add(Queue("sales", "700"))
        await s.queues.add_member("sales", "1001")


# --- queue:NAME targets ----------------------------------------------------------


async def test_queue_targets_of_dids_forwarding_and_ring_groups(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no queue 'sales'"):
        await store.dids.add("5551234", "queue:sales")
    with pytest.raises(NotFoundError, match="queue:sales: no queue 'sales'"):
        await store.dialplan.set_forwarding(Forwarding("1001", busy="queue:sales"))
    with pytest.raises(NotFoundError, match="queue:sales: no queue 'sales'"):
        await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow="queue:sales"))
    await store.queues.add(Queue("sales", "700"))
    await store.dids.add("5551234", "queue:sales")
    await store.dialplan.set_forwarding(Forwarding("1001", busy="queue:sales"))
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow="queue:sales"))
    step = await step_for(store.dids, "5551234")
    assert step == DidStep("5551234", DidAction.APPLICATION, "700", "queue:sales")
    await store.queues.delete("sales")
    step = await step_for(store.dids, "5551234")
    assert step == DidStep(
        "5551234",
        DidAction.REFUSE,
        target="queue:sales",
        cause="404 DID 5551234: queue:sales is gone",
    )


def test_decide_for_a_queue_did() -> None:
    assert decide("555", "queue:sales", "700") == DidStep(
        "555", DidAction.APPLICATION, "700", "queue:sales"
    )
    assert decide("555", "queue:sales", None).action is DidAction.REFUSE


MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
[menu.options]
"1" = "queue:sales"
"2" = "extension:queue:sales"
"""


async def test_ivr_actions_name_queues_that_exist(store: Store) -> None:
    from ivr.menu import Action, IvrConfigError, parse_toml

    assert Action.parse("queue:sales") == Action("extension", "queue:sales")
    with pytest.raises(IvrConfigError, match="bad target 'queue:9x' \\(queue:NAME\\)"):
        Action.parse("queue:9x")
    [menu], _ = parse_toml(MENU)
    assert {str(a) for a in menu.options.values()} == {"extension:queue:sales"}
    with pytest.raises(NotFoundError, match="IVR menu 'main' key 1: queue:sales: no queue"):
        await store.ivr.put(MENU, ["800"])
    await store.queues.add(Queue("sales", "700"))
    await store.ivr.put(MENU, ["800"])
    gone = await store.queues.delete("sales")
    assert gone.references == ("IVR menu 'main' key 1", "IVR menu 'main' key 2")


# --- queue:NAME at run time: refused cleanly until the ACD application serves queues ---

PROVIDER = "127.0.0.2"


def _bindable(host: str) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _bindable(PROVIDER), reason="needs 127.0.0.2")
async def test_a_did_to_a_queue_is_refused_with_a_log_line_and_nothing_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider's call to a DID whose target is queue:sales reaches the queue's number;
    no application serves it yet, so it is refused 404 (its CDR says why), and the switch
    goes on taking calls (a forwarding to queue:sales ends 480 with a log line)."""
    from tests.interop.phones import closed_cdrs, dial, running_server
    from tests.interop.sipclient import SipClient

    async with running_server(tmp_path) as server:
        store = server._store
        assert store is not None
        await store.trunks.add(Trunk("prov", "127.0.0.1", inbound_networks=(f"{PROVIDER}/32",)))
        await server._reload_trunks()
        await store.queues.add(Queue("sales", "700"))
        await store.dids.add("+33100000009", "queue:sales")
        await store.dialplan.set_forwarding(Forwarding("1003", always="queue:sales"))
        async with SipClient(server.sip_port, host=PROVIDER) as provider:
            invite = provider.invite("+33612345678", "+33100000009", rtp_port=40000)
            invite = invite.replace(
                f"@127.0.0.1:{provider.port}>".encode(), f"@{PROVIDER}:{provider.port}>".encode()
            )
            final = await provider.exchange(invite, timeout=20)
            provider.send(provider.ack_for(invite, final))
        assert final.status == 404
        [cdr] = await closed_cdrs(server)
        assert cdr.hangup_cause == "404 queue:sales not served (DID +33100000009 -> queue:sales)"

        with caplog.at_level("WARNING", logger="pbx.b2bua"):
            async with SipClient(server.sip_port) as ua:
                _, final = await dial(ua, server, "1003", caller="1001")
        assert final.status == 480
        assert "queue sales (number 700): no ACD application serves it" in caplog.text
        cdrs = await closed_cdrs(server, 2)
        assert any("480 queue sales (700) not served" in str(c.hangup_cause) for c in cdrs)

        # The queue's number dialled by a phone: refused, never sent out by a route that
        # matches it.
        await store.routes.add(Route("sevens", ("_7XX",), ("prov",)))
        async with SipClient(server.sip_port) as ua:
            _, final = await dial(ua, server, "700", caller="1001")
        assert final.status == 480
        cdrs = await closed_cdrs(server, 3)
        assert [c.hangup_cause for c in cdrs if c.callee == "700"] == [
            "480 queue sales (700) not served"
        ]


async def test_an_unchanged_overflow_is_not_judged_again(store: Store) -> None:
    await store.queues.add(Queue("support", "701"))
    await store.queues.add(Queue("sales", "700", overflow="queue:support"))
    await store.queues.delete("support")  # reported by delete; sales still names it
    assert (await store.queues.update("sales", weight=2)).weight == 2
    assert (await store.queues.update("sales", number="710")).number == "710"
    await store.queues.update("sales", overflow="1001")
    with pytest.raises(ConfigError, match="queue sales cannot overflow to its own number"):
        await store.queues.update("sales", overflow="710")
    await store.queues.add(Queue("other", "1009"))
    await store.queues.update("sales", overflow="1009")
    await store.queues.delete("other")
    with pytest.raises(ConfigError, match="queue sales cannot overflow to its own number"):
        await store.queues.update("sales", number="1009")
    with pytest.raises(AlreadyExistsError):
        await store.queues.update("sales", number="1001")


async def test_the_server_closes_what_a_crash_left_at_start_up(tmp_path: Path) -> None:
    """The state a kill -9 leaves (an agent on a call, a caller connected, one waiting, a
    callback pending): the next start closes the callers at the last heartbeat and frees
    the agent; logins, pauses and callbacks stay."""
    from pbx.config import Settings
    from pbx.server import HEARTBEAT_KEY, PbxServer
    from tests.interop.peers import free_port

    async with await Store.open(tmp_path / "pbx.sqlite3") as s:
        await s.settings.set_default("realm", "aiopbx")
        for user in ("1001", "1002"):
            await s.users.add(user, PASSWORD, "aiopbx")
        await s.queues.add(Queue("sales", "700"))
        for user in ("1001", "1002"):
            await s.queues.add_member("sales", user)
            await s.agents.login(user, 100.0)
        await s.agents.pause("1002", 110.0, "lunch")
        await s.queue_events.append(
            [
                ev(120.0, "c1", "ENTERQUEUE", position=1),
                ev(125.0, "c1", "CONNECT", "1001", hold=5.0, ring=1.0),
                ev(130.0, "c2", "ENTERQUEUE", position=1),
            ]
        )
        await s.agents.set_state("1001", "on-call", 125.0)
        await s.callbacks.add("sales", "c0", "0611", joined=90.0, now=115.0)
        await s.settings.set(HEARTBEAT_KEY, "160.0")
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()))
    await server.start()
    try:
        store = server._store
        assert store is not None
        assert (await store.agents.get("1001")).state == "available"
        agent = await store.agents.get("1002")
        assert (agent.state, agent.pause_reason) == ("paused", "lunch")
        assert events_of(await store.queue_events.between(160.0, 161.0)) == [
            (
                "sales",
                "COMPLETEAGENT",
                "1001",
                {"hold": 5.0, "talk": 35.0, "position": 1, **RESTART},
            ),
            (
                "sales",
                "ABANDON",
                None,
                {"position": 1, "entry_position": 1, "wait": 30.0, **RESTART},
            ),
        ]
        assert [c.call_id for c in await store.callbacks.pending("sales")] == ["c0"]
    finally:
        await server.stop()


async def test_the_recovery_query_looks_callers_up_by_index(store: Store) -> None:
    """close_interrupted looks up each open caller's later events by call id: with a full
    scan instead it took minutes over a day of history (150,000 events)."""
    rows = await store._db.fetchall(
        "EXPLAIN QUERY PLAN SELECT 1 FROM queue_events x WHERE x.call_id = ? AND x.queue = ?"
        " AND x.event IN ('ABANDON') AND x.id > ?",
        ("c1", "sales", 0),
    )
    assert any("queue_events_by_call" in str(tuple(r)) for r in rows), [tuple(r) for r in rows]


def test_kill_9_while_callers_queue(tmp_path: Path) -> None:
    """`pbx serve` killed with SIGKILL while an agent talks to a queue caller and another
    caller waits: after the restart the agents are still logged in (one still paused), the
    stored callback is still pending, the interrupted callers' queue events are closed and
    no agent is left on a call. (The ACD application's writes are made here through the
    store, as it will make them.)"""
    import signal
    import time

    from tests.interop.peers import PbxProcess, add_users, free_port, pbx_cli

    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, {"1001": PASSWORD, "1002": PASSWORD})
    for args in (
        ("queue", "add", "sales", "--number", "700"),
        ("queue", "member", "add", "sales", "1001"),
        ("queue", "member", "add", "sales", "1002"),
    ):
        assert pbx_cli(data_dir, *args).returncode == 0
    server = PbxProcess(data_dir, free_port())
    server.start()
    try:
        for args in (("agent", "login", "1001"), ("agent", "login", "1002")):
            assert pbx_cli(data_dir, *args).returncode == 0
        assert pbx_cli(data_dir, "agent", "pause", "1002", "--reason", "lunch").returncode == 0

        async def acd_writes() -> None:
            now = time.time()
            async with await Store.open(data_dir / "pbx.sqlite3") as s:
                await s.queue_events.append(
                    [
                        ev(now - 20, "talking", "ENTERQUEUE", position=1),
                        ev(now - 18, "talking", "CONNECT", "1001", hold=2.0, ring=1.0),
                        ev(now - 10, "waiting", "ENTERQUEUE", position=1),
                    ]
                )
                await s.agents.set_state("1001", "on-call", now - 18)
                await s.callbacks.add("sales", "gone", "0611", joined=now - 30, now=now - 25)

        asyncio.run(acd_writes())
        server.stop(signal.SIGKILL)
        server.start()
        listing = pbx_cli(data_dir, "agent", "list").stdout.splitlines()
    finally:
        server.stop()
    assert [line.split()[:2] for line in listing[1:]] == [["1001", "available"], ["1002", "paused"]]

    async def stored() -> tuple[list[QueueEventRecord], list[str]]:
        async with await Store.open(data_dir / "pbx.sqlite3") as s:
            events = await s.queue_events.between(0, 1e12, queue="sales")
            return events, [c.call_id for c in await s.callbacks.pending("sales")]

    events, pending = asyncio.run(stored())
    assert pending == ["gone"]
    closing = [(e.call_id, e.event, e.agent, e.data["reason"]) for e in events[-2:]]
    assert closing == [
        ("talking", "COMPLETEAGENT", "1001", "restart"),
        ("waiting", "ABANDON", None, "restart"),
    ]
    assert events[-1].data["wait"] >= 0 and events[-2].data["talk"] >= 0
    for end in events[-2:]:  # stamped at the last heartbeat, never before the call's events
        assert all(e.time <= end.time for e in events if e.call_id == end.call_id)


async def test_hand_edited_rows_fail_with_one_store_error(store: Store, tmp_path: Path) -> None:
    await store.queues.add(Queue("sales", "700"))
    await store.agents.set_skills("1001", {"french": 3})
    await store.queue_events.append([ev(1.0, "c1", "ENTERQUEUE", position=1)])
    raw = sqlite3.connect(tmp_path / "pbx.sqlite3")
    raw.execute("UPDATE queues SET skills = '{not json'")
    raw.execute("UPDATE agents SET last_call_end = '[1, 2]'")
    raw.execute("UPDATE queue_events SET data = 'x'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="queue sales: a stored value is unreadable"):
        await store.queues.get("sales")
    with pytest.raises(StoreError, match="agent 1001: a stored value is unreadable"):
        await store.agents.get("1001")
    [event] = await store.queue_events.between(0, 10)
    assert (event.event, event.data) == ("ENTERQUEUE", {})
