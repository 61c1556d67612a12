"""ACD agents' live state (migration 14), persisted so a login or a pause survives a restart.

An agent is a user: the row (keyed by username, deleted with the user) holds the fields
of `acd.model.Agent` the ACD must not lose (state and since when, pause reason, skills,
wrap-up override, missed offers in a row, last call end and calls taken per queue) and
when the agent logged in. An agent that is a member of a queue but has no row yet is
logged out. The rest of acd.model.Agent is not stored: `in_use` is live (the switch's
calls), `wrapup_until` is `state_since` plus the wrap-up time, and `talk_seconds` is summed
from the day's queue events.

Every state change writes the agent row AND its queue events in ONE transaction
(`set_state`), so the queue log never disagrees with the state. `login`, `logout`,
`pause` and `unpause` are the administrator's (and feature codes') changes, with the
queue events Asterisk writes for them (AGENTLOGIN, AGENTLOGOFF {logged}, PAUSE {reason},
UNPAUSE {paused}).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from pbx.errors import ConfigError, NotFoundError, StoreError
from pbx.store.callbacks import Callback, CallbackOp, apply_in
from pbx.store.database import Database
from pbx.store.queue_events import QueueEventRecord, append_in
from pbx.store.queues import check_skill

__all__ = ["STATES", "AgentRecord", "AgentRepo", "StateChange"]

#: acd.model.AgentState's values.
STATES = ("logged-out", "available", "ringing", "on-call", "wrap-up", "paused")
LOGGED_OUT, AVAILABLE, RINGING, ON_CALL, WRAP_UP, PAUSED = STATES
MAX_REASON = 64


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One agent as stored (acd.model.Agent's names, plus `logged_in_since`)."""

    name: str
    state: str = LOGGED_OUT
    state_since: float = 0.0
    pause_reason: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)
    wrapup_seconds: float | None = None
    missed_offers: int = 0
    last_call_end: Mapping[str, float] = field(default_factory=dict)
    calls_taken: Mapping[str, int] = field(default_factory=dict)
    logged_in_since: float | None = None


_COLUMNS = (
    "name, state, state_since, pause_reason, skills, wrapup_seconds, missed_offers,"
    " last_call_end, calls_taken, logged_in_since"
)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One agent's new state for `AgentRepo.set_states` (`set_state`'s arguments)."""

    name: str
    state: str
    now: float
    reason: str | None = None
    missed_offers: int | None = None
    last_call_end: Mapping[str, float] | None = None
    calls_taken: Mapping[str, int] | None = None


def _agent(row: sqlite3.Row | Sequence[Any]) -> AgentRecord:
    """Raises: StoreError for a stored value this code cannot read (a hand-edited row)."""
    try:
        return _decoded(tuple(row))
    except (ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"agent {row[0]}: a stored value is unreadable: {exc}") from None


def _decoded(row: tuple[Any, ...]) -> AgentRecord:
    (name, state, since, reason, skills, wrapup, missed, last_end, taken, logged) = row
    return AgentRecord(
        str(name),
        str(state),
        float(since),
        reason,
        {str(k): int(v) for k, v in json.loads(skills).items()},
        None if wrapup is None else float(wrapup),
        int(missed),
        {str(k): float(v) for k, v in json.loads(last_end).items()},
        {str(k): int(v) for k, v in json.loads(taken).items()},
        None if logged is None else float(logged),
    )


def check_reason(reason: str | None) -> str | None:
    """Raises: ConfigError for a pause reason that is too long or not one printable line."""
    if reason is None:
        return None
    if not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
        raise ConfigError(f"pause reason {reason!r}: 1 to {MAX_REASON} printable characters")
    return reason


async def _user_exists(conn: aiosqlite.Connection, name: str) -> bool:
    async with conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)) as cur:
        return await cur.fetchone() is not None


async def _agent_in(conn: aiosqlite.Connection, name: str) -> AgentRecord:
    """The agent's row (a logged-out record when it has none).

    Raises: NotFoundError when `name` is not a user.
    """
    async with conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    if row is not None:
        return _agent(tuple(row))
    if not await _user_exists(conn, name):
        raise NotFoundError(f"no agent {name!r} (an agent is a user: pbx user add)")
    return AgentRecord(name)


async def _write(conn: aiosqlite.Connection, agent: AgentRecord) -> None:
    await conn.execute(
        f"INSERT INTO agents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
        " state_since = excluded.state_since, pause_reason = excluded.pause_reason,"
        " skills = excluded.skills, wrapup_seconds = excluded.wrapup_seconds,"
        " missed_offers = excluded.missed_offers, last_call_end = excluded.last_call_end,"
        " calls_taken = excluded.calls_taken, logged_in_since = excluded.logged_in_since",
        (
            agent.name,
            agent.state,
            agent.state_since,
            agent.pause_reason,
            json.dumps(dict(sorted(agent.skills.items()))),
            agent.wrapup_seconds,
            agent.missed_offers,
            json.dumps(dict(sorted(agent.last_call_end.items()))),
            json.dumps(dict(sorted(agent.calls_taken.items()))),
            agent.logged_in_since,
        ),
    )


async def _memberships(conn: aiosqlite.Connection, name: str) -> dict[str, bool]:
    async with conn.execute(
        "SELECT queue, logged_in FROM queue_members WHERE agent = ? ORDER BY queue", (name,)
    ) as cur:
        return {str(r[0]): bool(r[1]) for r in await cur.fetchall()}


def _event(now: float, queue: str, agent: str, event: str, **data: Any) -> QueueEventRecord:
    return QueueEventRecord(now, "", queue, agent, event, data)


class AgentRepo:
    """The agents table (and the queue_members.logged_in flags login/logout change)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def get(self, name: str) -> AgentRecord:
        """The agent `name` (logged out when it never logged in).

        Raises: NotFoundError (no such user).
        """
        async with self._db.transaction() as conn:
            return await _agent_in(conn, name)

    async def all(self) -> list[AgentRecord]:
        """Every agent: users with an agent row or a queue membership, by name."""
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM agents ORDER BY name")
        agents = {r[0]: _agent(r) for r in rows}
        members = await self._db.fetchall("SELECT DISTINCT agent FROM queue_members")
        for row in members:
            agents.setdefault(str(row[0]), AgentRecord(str(row[0])))
        return [agents[name] for name in sorted(agents)]

    async def set_state(
        self,
        name: str,
        state: str,
        now: float,
        reason: str | None = None,
        events: Iterable[QueueEventRecord] = (),
        *,
        missed_offers: int | None = None,
        last_call_end: Mapping[str, float] | None = None,
        calls_taken: Mapping[str, int] | None = None,
    ) -> AgentRecord:
        """Put agent `name` in `state` since `now` (`reason`: a pause's), update the
        counters given, and store `events`, all in one transaction: either all of it
        lands or none. Logging in (from logged-out) sets `logged_in_since`.

        Raises: NotFoundError (no such user), ConfigError (an unknown state, a bad reason,
        a bad event; nothing is written).
        """
        if state not in STATES:
            raise ConfigError(f"agent state {state!r}: choose {', '.join(STATES)}")
        check_reason(reason)
        events = list(events)
        async with self._db.transaction() as conn:
            current = await _agent_in(conn, name)
            agent = _changed(current, state, now, reason if state == PAUSED else None)
            counters: dict[str, Any] = {
                "missed_offers": missed_offers,
                "last_call_end": None if last_call_end is None else dict(last_call_end),
                "calls_taken": None if calls_taken is None else dict(calls_taken),
            }
            agent = _replace(agent, **{k: v for k, v in counters.items() if v is not None})
            await _write(conn, agent)
            await append_in(conn, events)
        return agent

    async def set_states(
        self,
        changes: Sequence[StateChange],
        events: Iterable[QueueEventRecord] = (),
        callbacks: Sequence[CallbackOp] = (),
    ) -> list[Callback]:
        """Several agents' `set_state`, `events` and `callbacks` (operations on stored
        callbacks, with their own events, written first) in one transaction: what one
        input of the ACD engine changed, all of it or none. Returns the callbacks as the
        operations left them (an added one with its id).

        Raises: NotFoundError, ConfigError as `set_state` and `CallbackRepo` (nothing is
        written).
        """
        for change in changes:
            if change.state not in STATES:
                raise ConfigError(f"agent state {change.state!r}: choose {', '.join(STATES)}")
            check_reason(change.reason)
        async with self._db.transaction() as conn:
            stored = await apply_in(conn, callbacks, self._clock())
            for c in changes:
                current = await _agent_in(conn, c.name)
                agent = _changed(current, c.state, c.now, c.reason if c.state == PAUSED else None)
                counters: dict[str, Any] = {
                    "missed_offers": c.missed_offers,
                    "last_call_end": None if c.last_call_end is None else dict(c.last_call_end),
                    "calls_taken": None if c.calls_taken is None else dict(c.calls_taken),
                }
                agent = _replace(agent, **{k: v for k, v in counters.items() if v is not None})
                await _write(conn, agent)
            await append_in(conn, list(events))
        return stored

    async def login(self, name: str, now: float, queue: str | None = None) -> list[str]:
        """Log agent `name` into all its queues (or only into `queue`); returns the queues
        newly logged into (none: it already was). A logged-out agent's login writes
        AGENTLOGIN (queue "" for all, else `queue`); a logged-in agent taking one more queue
        writes no event (AGENTLOGIN..AGENTLOGOFF is the agent's session, which statistics
        count as logged time).

        Raises: NotFoundError (no such user or queue), ConfigError (not a member).
        """
        async with self._db.transaction() as conn:
            agent = await _agent_in(conn, name)
            members = await _memberships(conn, name)
            if not members:
                raise ConfigError(f"{name} is in no queue (pbx queue member add QUEUE {name})")
            if queue is not None and queue not in members:
                await _require_queue(conn, queue)
                raise ConfigError(f"{name} is not a member of queue {queue}")
            wanted = [queue] if queue is not None else list(members)
            was_out = agent.state == LOGGED_OUT
            if was_out:
                newly = wanted
                others = [q for q in members if q not in wanted]
            else:
                newly = [q for q in wanted if not members[q]]
                others = []
            if not newly:
                return []
            await _flag(conn, name, newly, True)
            await _flag(conn, name, others, False)
            if was_out:
                agent = _changed(agent, AVAILABLE, now, None)
                await _write(conn, agent)
                await append_in(conn, [_event(now, queue or "", name, "AGENTLOGIN")])
        return newly

    async def logout(self, name: str, now: float, queue: str | None = None) -> list[str]:
        """Log agent `name` out of every queue (or of `queue` only; out of the last one
        logs the agent out); returns the queues left (none: it was logged out).
        Logging the agent out writes AGENTLOGOFF {logged: seconds since login} (queue ""
        for all, else `queue`); leaving one queue of several writes no event.

        Raises: NotFoundError (no such user or queue), ConfigError (not a member).
        """
        async with self._db.transaction() as conn:
            agent = await _agent_in(conn, name)
            members = await _memberships(conn, name)
            if queue is not None and queue not in members:
                await _require_queue(conn, queue)
                raise ConfigError(f"{name} is not a member of queue {queue}")
            if agent.state == LOGGED_OUT:
                return []
            logged = max(0.0, now - (agent.logged_in_since or agent.state_since))
            active = [q for q, on in members.items() if on]
            if queue is not None:
                if queue not in active:
                    return []
                await _flag(conn, name, [queue], False)
                if len(active) == 1:
                    await _write(conn, _changed(agent, LOGGED_OUT, now, None))
                    await append_in(conn, [_event(now, queue, name, "AGENTLOGOFF", logged=logged)])
                return [queue]
            await _write(conn, _changed(agent, LOGGED_OUT, now, None))
            await _flag(conn, name, list(members), True)  # the next login is to all again
            await append_in(conn, [_event(now, "", name, "AGENTLOGOFF", logged=logged)])
            return active

    async def pause(self, name: str, now: float, reason: str | None = None) -> bool:
        """Pause a logged-in agent (PAUSE {reason}); False when it was already paused for
        the same reason.

        Raises: NotFoundError, ConfigError (logged out, ringing or on a call; bad reason).
        """
        check_reason(reason)
        async with self._db.transaction() as conn:
            agent = await _agent_in(conn, name)
            if agent.state == LOGGED_OUT:
                raise ConfigError(f"{name} is not logged in")
            if agent.state in (RINGING, ON_CALL):
                raise ConfigError(f"{name} is {agent.state}; pause it when the call ends")
            if agent.state == PAUSED and agent.pause_reason == reason:
                return False
            await _write(conn, _changed(agent, PAUSED, now, reason))
            await append_in(conn, [_event(now, "", name, "PAUSE", reason=reason or "")])
        return True

    async def unpause(self, name: str, now: float) -> float:
        """Make a paused agent available again (UNPAUSE {paused}); returns the seconds paused.

        Raises: NotFoundError, ConfigError (not paused).
        """
        async with self._db.transaction() as conn:
            agent = await _agent_in(conn, name)
            if agent.state != PAUSED:
                raise ConfigError(f"{name} is not paused ({agent.state})")
            paused = max(0.0, now - agent.state_since)
            await _write(conn, _changed(agent, AVAILABLE, now, None))
            await append_in(conn, [_event(now, "", name, "UNPAUSE", paused=paused)])
        return paused

    async def set_skills(
        self, name: str, levels: Mapping[str, int], remove: Iterable[str] = ()
    ) -> AgentRecord:
        """Set skill levels (1..10) and remove skills of agent `name`; returns the agent.

        Raises: NotFoundError (no such user; removing a skill it does not have), ConfigError.
        """
        for skill, level in levels.items():
            check_skill(skill, level)
        async with self._db.transaction() as conn:
            agent = await _agent_in(conn, name)
            skills = dict(agent.skills)
            for skill in remove:
                if skills.pop(skill, None) is None:
                    raise NotFoundError(f"{name} has no skill {skill!r}")
            skills.update(levels)
            agent = _replace(agent, skills=skills)
            await _write(conn, agent)
        return agent

    async def set_wrapup(self, name: str, seconds: float | None) -> AgentRecord:
        """Set (None: remove) the agent's wrap-up time, overriding its queues'.

        Raises: NotFoundError, ConfigError (negative).
        """
        if seconds is not None and not 0 <= seconds < float("inf"):
            raise ConfigError(f"wrap-up time must be 0 or more seconds, not {seconds}")
        async with self._db.transaction() as conn:
            agent = _replace(await _agent_in(conn, name), wrapup_seconds=seconds)
            await _write(conn, agent)
        return agent


def _replace(agent: AgentRecord, **changes: Any) -> AgentRecord:
    values = {f: getattr(agent, f) for f in AgentRecord.__dataclass_fields__}
    values.update(changes)
    return AgentRecord(**values)


def _changed(agent: AgentRecord, state: str, now: float, reason: str | None) -> AgentRecord:
    """`agent` in `state` since `now`; login time kept, set on login, cleared on logout."""
    logged_in = agent.logged_in_since
    if state == LOGGED_OUT:
        logged_in = None
    elif agent.state == LOGGED_OUT or logged_in is None:
        logged_in = now
    return _replace(
        agent, state=state, state_since=now, pause_reason=reason, logged_in_since=logged_in
    )


async def _flag(conn: aiosqlite.Connection, name: str, queues: list[str], on: bool) -> None:
    await conn.executemany(
        "UPDATE queue_members SET logged_in = ? WHERE agent = ? AND queue = ?",
        [(int(on), name, q) for q in queues],
    )


async def _require_queue(conn: aiosqlite.Connection, queue: str) -> None:
    async with conn.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)) as cur:
        if await cur.fetchone() is None:
            raise NotFoundError(f"no queue {queue!r}")
