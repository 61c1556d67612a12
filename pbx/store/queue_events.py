"""The queue log (migration 14): one row per queue or agent event, Asterisk queue_log names.

Rows carry `acd.model.QueueEvent`'s fields (time, call_id, queue, agent, event, data);
`data` is a JSON object (seconds as floats). The ACD writes an event in the same
transaction as the state change it records (`append_in`, used by the agent and callback
repositories); statistics read them back with `between`.

After a crash (kill -9) the server calls `close_interrupted(now)` once at start-up, before
it takes calls, with `now` the time the previous process was last known alive (its
heartbeat, as for CDRs): every caller that entered a queue and has no end event gets one
(a connected caller: COMPLETEAGENT with its talk time up to `now`; a waiting caller:
ABANDON), each with data {"reason": "restart"}, stamped `now` (or the caller's last known
event when that is later: the heartbeat runs every few seconds); every agent left ringing or
on a call is made available again, so no agent stays stuck "on call" (the anchors' most
reported bug). Logged-in, paused and wrap-up agents, and pending callbacks, stay as they
were.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from pbx.errors import ConfigError
from pbx.store.database import Database

log = logging.getLogger(__name__)

__all__ = [
    "CALLER_END_EVENTS",
    "EVENTS",
    "Interrupted",
    "QueueEventRecord",
    "QueueEventRepo",
    "append_in",
]

EVENTS = frozenset(
    {
        "ENTERQUEUE",
        "RINGNOANSWER",
        "RINGCANCELED",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "ABANDON",
        "EXITEMPTY",
        "EXITWITHTIMEOUT",
        "EXITWITHKEY",
        "TRANSFER",
        "CALLBACKREQUEST",
        "CALLBACKATTEMPT",
        "CALLBACKDROP",
        "WRAPUPEND",
        "AGENTLOGIN",
        "AGENTLOGOFF",
        "PAUSE",
        "UNPAUSE",
    }
)
#: Events after which a caller is no longer in the queue (a callback request keeps the
#: place in the callbacks table, not as a waiting call).
CALLER_END_EVENTS = (
    "COMPLETECALLER",
    "COMPLETEAGENT",
    "ABANDON",
    "EXITEMPTY",
    "EXITWITHTIMEOUT",
    "EXITWITHKEY",
    "TRANSFER",
    "CALLBACKREQUEST",
)
#: How far back `close_interrupted` looks for callers still in a queue (nobody waits a day).
HORIZON_SECONDS = 86400.0
MAX_DATA = 4096


@dataclass(frozen=True, slots=True)
class QueueEventRecord:
    """One stored event: acd.model.QueueEvent's fields, plus its row `id`."""

    time: float
    call_id: str
    queue: str
    agent: str | None
    event: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What `close_interrupted` closed: callers (call ids) and agents made available."""

    callers: tuple[str, ...]
    agents: tuple[str, ...]


def _encode(event: QueueEventRecord) -> tuple[Any, ...]:
    """Raises: ConfigError for an unknown event name or data that is not a small JSON object."""
    if event.event not in EVENTS:
        raise ConfigError(f"unknown queue event {event.event!r}")
    if not math.isfinite(event.time):
        raise ConfigError(f"queue event {event.event}: time {event.time} is not finite")
    try:
        data = json.dumps(dict(event.data), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"queue event {event.event}: data is not JSON: {exc}") from None
    if len(data) > MAX_DATA:
        raise ConfigError(f"queue event {event.event}: data over {MAX_DATA} characters")
    return (event.time, event.call_id, event.queue, event.agent, event.event, data)


async def append_in(conn: aiosqlite.Connection, events: Iterable[QueueEventRecord]) -> None:
    """Inside the caller's transaction: store `events` (their `id` is ignored).

    Raises: ConfigError (an unknown event name, data that is not JSON); the caller's
    transaction then rolls back with everything it changed.
    """
    rows = [_encode(e) for e in events]
    if rows:
        await conn.executemany(
            "INSERT INTO queue_events (time, call_id, queue, agent, event, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def _record(row: Any) -> QueueEventRecord:
    """An event row; data that is not a JSON object (a hand-edited row) reads as {} and
    is logged, so one bad row never stops a report."""
    id_, time, call_id, queue, agent, event, data = tuple(row)
    try:
        decoded = json.loads(data)
    except (ValueError, TypeError):
        decoded = None
    if not isinstance(decoded, dict):
        log.warning("queue event %s (%s %s): data is not a JSON object", id_, queue, event)
        decoded = {}
    return QueueEventRecord(
        float(time),
        str(call_id),
        str(queue),
        None if agent is None else str(agent),
        str(event),
        decoded,
        int(id_),
    )


class QueueEventRepo:
    """The queue_events table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, events: Iterable[QueueEventRecord]) -> None:
        """Store `events` in one transaction of their own.

        Raises: ConfigError (see `append_in`; nothing is stored then).
        """
        events = list(events)
        async with self._db.transaction() as conn:
            await append_in(conn, events)

    async def between(
        self,
        since: float,
        until: float,
        queue: str | None = None,
        agent: str | None = None,
    ) -> list[QueueEventRecord]:
        """Events with since <= time < until (of one queue and/or agent when given), in
        the order they were written."""
        sql = "SELECT id, time, call_id, queue, agent, event, data FROM queue_events"
        where, params = ["time >= ?", "time < ?"], [since, until]
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)  # type: ignore[arg-type]
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)  # type: ignore[arg-type]
        rows = await self._db.fetchall(f"{sql} WHERE {' AND '.join(where)} ORDER BY id", params)
        return [_record(r) for r in rows]

    async def close_interrupted(self, now: float) -> Interrupted:
        """After a crash: close the callers still in a queue and free the agents left
        ringing or on a call (see the module's docstring), in one transaction."""
        ends = ", ".join(f"'{e}'" for e in CALLER_END_EVENTS)
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT e.id, e.time, e.call_id, e.queue, e.agent, e.event, e.data"
                " FROM queue_events e WHERE e.event = 'ENTERQUEUE' AND e.time >= ?"
                " AND e.call_id != '' AND NOT EXISTS (SELECT 1 FROM queue_events x"
                f" WHERE x.call_id = e.call_id AND x.queue = e.queue AND x.event IN ({ends})"
                " AND x.id > e.id) ORDER BY e.id",
                (now - HORIZON_SECONDS,),
            ) as cur:
                entered = [_record(r) for r in await cur.fetchall()]
            events: list[QueueEventRecord] = []
            closed_by_agent: dict[str, QueueEventRecord] = {}
            for enter in entered:
                async with conn.execute(
                    "SELECT id, time, call_id, queue, agent, event, data FROM queue_events"
                    " WHERE call_id = ? AND queue = ? AND event = 'CONNECT' AND id > ?"
                    " ORDER BY id DESC LIMIT 1",
                    (enter.call_id, enter.queue, enter.id),
                ) as cur:
                    row = await cur.fetchone()
                position = enter.data.get("position", 0)
                if row is not None:
                    connect = _record(row)
                    end = max(now, connect.time)  # never before what is known of the call
                    event = QueueEventRecord(
                        end,
                        enter.call_id,
                        enter.queue,
                        connect.agent,
                        "COMPLETEAGENT",
                        {
                            "hold": connect.data.get("hold", connect.time - enter.time),
                            "talk": end - connect.time,
                            "position": position,
                            "reason": "restart",
                        },
                    )
                    if connect.agent is not None:
                        closed_by_agent[connect.agent] = event
                else:
                    end = max(now, enter.time)
                    event = QueueEventRecord(
                        end,
                        enter.call_id,
                        enter.queue,
                        None,
                        "ABANDON",
                        {
                            "position": position,
                            "entry_position": position,
                            "wait": end - enter.time,
                            "reason": "restart",
                        },
                    )
                events.append(event)
            async with conn.execute(
                "SELECT name, state, state_since FROM agents"
                " WHERE state IN ('ringing', 'on-call') ORDER BY name"
            ) as cur:
                stuck = [(str(r[0]), str(r[1]), float(r[2])) for r in await cur.fetchall()]
            for name, state, since in stuck:
                if name in closed_by_agent:
                    continue  # its caller's COMPLETEAGENT above says the call ended
                if state == "ringing":
                    events.append(
                        QueueEventRecord(
                            now, "", "", name, "RINGCANCELED",
                            {"ring": max(0.0, now - since), "reason": "restart"},
                        )
                    )  # fmt: skip
                else:
                    events.append(
                        QueueEventRecord(
                            now, "", "", name, "COMPLETEAGENT",
                            {"hold": 0.0, "talk": max(0.0, now - since), "position": 0,
                             "reason": "restart"},
                        )
                    )  # fmt: skip
            await conn.executemany(
                "UPDATE agents SET state = 'available', state_since = ?, pause_reason = NULL"
                " WHERE name = ?",
                [(now, name) for name, _, _ in stuck],
            )
            await append_in(conn, events)
        return Interrupted(tuple(e.call_id for e in entered), tuple(name for name, _, _ in stuck))
