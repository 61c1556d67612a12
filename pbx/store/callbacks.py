"""Callbacks that keep their place (migration 14): stored, so they survive a restart.

A caller who pressed the callback key and hung up is a row `pending` with the time it
`joined` the queue (its place) and the number to call. Each try is an `attempt` (a
CALLBACKATTEMPT event with its status); `done` when bridged to an agent; `drop` after the
queue's attempts (a CALLBACKDROP event). Each change and its event land in one
transaction (`pbx.store.queue_events.append_in`). The ACD writes what one engine input
changed as one transaction: callback operations (`CallbackAdd`, `CallbackAttempt`,
`CallbackFinish`) go with the agents' rows and the other queue events through
`pbx.store.agents.AgentRepo.set_states(..., callbacks=...)`, by `apply_in`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.queue_events import QueueEventRecord, append_in

__all__ = [
    "CALLBACK_STATES",
    "Callback",
    "CallbackAdd",
    "CallbackAttempt",
    "CallbackFinish",
    "CallbackOp",
    "CallbackRepo",
    "apply_in",
]

CALLBACK_STATES = ("pending", "done", "dropped")


@dataclass(frozen=True, slots=True)
class Callback:
    """A stored callback; `joined` is the caller's place (when it entered the queue)."""

    id: int
    queue: str
    call_id: str
    number: str
    joined: float
    requested: float
    attempts: int = 0
    state: str = "pending"
    updated: float = 0.0


_COLUMNS = "id, queue, call_id, number, joined, requested, attempts, state, updated"


def _callback(row: Any) -> Callback:
    id_, queue, call_id, number, joined, requested, attempts, state, updated = tuple(row)
    return Callback(
        int(id_),
        str(queue),
        str(call_id),
        str(number),
        float(joined),
        float(requested),
        int(attempts),
        str(state),
        float(updated),
    )


async def _pending_in(conn: aiosqlite.Connection, id_: int) -> Callback:
    """Raises: NotFoundError (no such callback), ConfigError (no longer pending)."""
    async with conn.execute(f"SELECT {_COLUMNS} FROM callbacks WHERE id = ?", (id_,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no callback {id_}")
    callback = _callback(row)
    if callback.state != "pending":
        raise ConfigError(f"callback {id_} is {callback.state}, not pending")
    return callback


@dataclass(frozen=True, slots=True)
class CallbackAdd:
    """Store a pending callback (`CallbackRepo.add`)."""

    queue: str
    call_id: str
    number: str
    joined: float
    position: int = 0
    now: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """Count a try of callback `id` (`CallbackRepo.attempt`)."""

    id: int
    status: str
    agent: str | None = None
    now: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackFinish:
    """End callback `id`: "done" (reached an agent) or "dropped" (CALLBACKDROP)."""

    id: int
    state: str
    now: float | None = None


CallbackOp = CallbackAdd | CallbackAttempt | CallbackFinish


async def apply_in(
    conn: aiosqlite.Connection, ops: Sequence[CallbackOp], now: float
) -> list[Callback]:
    """Carry out `ops` in order inside the caller's transaction; the callbacks they
    leave, one per op (an add's has its new id).

    Raises: NotFoundError, ConfigError as the repository's methods (the caller's
    transaction then rolls back whole).
    """
    out: list[Callback] = []
    for op in ops:
        when = now if op.now is None else op.now
        if isinstance(op, CallbackAdd):
            out.append(
                await _add_in(conn, op.queue, op.call_id, op.number, op.joined, op.position, when)
            )
        elif isinstance(op, CallbackAttempt):
            out.append(await _attempt_in(conn, op.id, op.status, op.agent, when))
        else:
            out.append(await _finish_in(conn, op.id, op.state, when))
    return out


async def _add_in(
    conn: aiosqlite.Connection,
    queue: str,
    call_id: str,
    number: str,
    joined: float,
    position: int,
    now: float,
) -> Callback:
    if not number or len(number) > 64 or not number.isprintable():
        raise ConfigError(f"callback number {number!r}: 1 to 64 printable characters")
    async with conn.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)) as cur:
        if await cur.fetchone() is None:
            raise NotFoundError(f"no queue {queue!r}")
    cur = await conn.execute(
        "INSERT INTO callbacks (queue, call_id, number, joined, requested, attempts,"
        " state, updated) VALUES (?, ?, ?, ?, ?, 0, 'pending', ?)",
        (queue, call_id, number, joined, now, now),
    )
    id_ = int(cur.lastrowid or 0)
    event = QueueEventRecord(
        now,
        call_id,
        queue,
        None,
        "CALLBACKREQUEST",
        {"number": number, "position": position, "wait": max(0.0, now - joined)},
    )
    await append_in(conn, [event])
    return Callback(id_, queue, call_id, number, joined, now, 0, "pending", now)


async def _attempt_in(
    conn: aiosqlite.Connection, id_: int, status: str, agent: str | None, now: float
) -> Callback:
    callback = await _pending_in(conn, id_)
    attempts = callback.attempts + 1
    await conn.execute(
        "UPDATE callbacks SET attempts = ?, updated = ? WHERE id = ?", (attempts, now, id_)
    )
    event = QueueEventRecord(
        now,
        callback.call_id,
        callback.queue,
        agent,
        "CALLBACKATTEMPT",
        {"attempt": attempts, "status": status},
    )
    await append_in(conn, [event])
    return dataclasses.replace(callback, attempts=attempts, updated=now)


async def _finish_in(conn: aiosqlite.Connection, id_: int, state: str, now: float) -> Callback:
    if state not in ("done", "dropped"):
        raise ConfigError(f"a callback ends done or dropped, not {state!r}")
    callback = await _pending_in(conn, id_)
    await conn.execute(
        "UPDATE callbacks SET state = ?, updated = ? WHERE id = ?", (state, now, id_)
    )
    if state == "dropped":
        event = QueueEventRecord(
            now,
            callback.call_id,
            callback.queue,
            None,
            "CALLBACKDROP",
            {"attempts": callback.attempts},
        )
        await append_in(conn, [event])
    return dataclasses.replace(callback, state=state, updated=now)


class CallbackRepo:
    """The callbacks table."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self,
        queue: str,
        call_id: str,
        number: str,
        joined: float,
        position: int = 0,
        now: float | None = None,
    ) -> Callback:
        """Store a pending callback for the caller `call_id` (calling back `number`) that
        entered `queue` at `joined`, with its CALLBACKREQUEST {number, position, wait}.

        Raises: NotFoundError (no such queue), ConfigError (no number).
        """
        return await self._one(CallbackAdd(queue, call_id, number, joined, position, now))

    async def _one(self, op: CallbackOp) -> Callback:
        async with self._db.transaction() as conn:
            [callback] = await apply_in(conn, [op], self._clock())
        return callback

    async def get(self, id_: int) -> Callback:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM callbacks WHERE id = ?", (id_,))
        if row is None:
            raise NotFoundError(f"no callback {id_}")
        return _callback(row)

    async def pending(self, queue: str | None = None) -> list[Callback]:
        """Pending callbacks (of one queue when given) in place order (joined, then id)."""
        sql = f"SELECT {_COLUMNS} FROM callbacks WHERE state = 'pending'"
        params: tuple[str, ...] = ()
        if queue is not None:
            sql += " AND queue = ?"
            params = (queue,)
        rows = await self._db.fetchall(sql + " ORDER BY joined, id", params)
        return [_callback(r) for r in rows]

    async def attempt(
        self, id_: int, status: str, agent: str | None = None, now: float | None = None
    ) -> Callback:
        """Count one try of a pending callback, with its CALLBACKATTEMPT {attempt, status}
        (status: what the try ended with, e.g. "no-answer", "busy", "answered").

        Raises: NotFoundError, ConfigError (not pending).
        """
        return await self._one(CallbackAttempt(id_, status, agent, now))

    async def done(self, id_: int, now: float | None = None) -> None:
        """The callback reached an agent (its CONNECT is the engine's event).

        Raises: NotFoundError, ConfigError (not pending)."""
        await self._finish(id_, "done", now)

    async def drop(self, id_: int, now: float | None = None) -> None:
        """Give up on a callback (CALLBACKDROP {attempts}).

        Raises: NotFoundError, ConfigError (not pending)."""
        await self._finish(id_, "dropped", now)

    async def _finish(self, id_: int, state: str, now: float | None) -> None:
        await self._one(CallbackFinish(id_, state, now))
