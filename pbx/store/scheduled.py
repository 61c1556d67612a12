"""Callbacks scheduled by agents (the desktop's "call back on ... at ..."): a number, a
due time, for one agent or for anyone, with the customer, ticket and a note. The dialer
takes the due ones (`due`) and marks them; the console lists and cancels them.

States: pending -> dialling -> done, or pending -> cancelled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = ["CALLBACK_STATES", "ScheduledCallback", "ScheduledCallbackRepo"]

CALLBACK_STATES = ("pending", "dialling", "done", "cancelled")
NOTE_MAX = 500
#: How far ahead a callback may be scheduled (a year).
MAX_AHEAD = 366 * 86400.0


@dataclass(frozen=True, slots=True)
class ScheduledCallback:
    id: int
    number: str
    due: float
    agent: str | None
    queue: str
    customer: int | None
    ticket: int | None
    note: str
    created_by: str
    created: float
    state: str

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS.split(", ")}


_COLUMNS = "id, number, due, agent, queue, customer, ticket, note, created_by, created, state"


def _row(row: sqlite3.Row) -> ScheduledCallback:
    return ScheduledCallback(*(row[i] for i in range(11)))


class ScheduledCallbackRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self,
        number: str,
        due: float,
        created_by: str,
        *,
        agent: str | None = None,
        queue: str = "",
        customer: int | None = None,
        ticket: int | None = None,
        note: str = "",
    ) -> ScheduledCallback:
        """Schedule a callback of `number` at `due` (for `agent`; None: anyone).

        Raises: ConfigError (a time in the past or too far ahead, a bad number or note,
        an unknown customer or ticket).
        """
        now = self._clock()
        if not now - 60 <= due <= now + MAX_AHEAD:
            raise ConfigError("a callback is due from now to a year ahead")
        number = number.strip()
        if not number or len(number) > 32 or not number.lstrip("+").isdigit():
            raise ConfigError(f"callback number {number!r}: digits with an optional +")
        note = note.strip()
        if len(note) > NOTE_MAX or "\0" in note:
            raise ConfigError(f"a callback note is at most {NOTE_MAX} characters")
        try:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    "INSERT INTO scheduled_callbacks (number, due, agent, queue, customer, ticket,"
                    " note, created_by, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (number, due, agent, queue, customer, ticket, note, created_by, now),
                )
        except Exception as exc:
            if "FOREIGN KEY" in str(exc):
                raise ConfigError("no such customer or ticket") from None
            raise
        assert cur.lastrowid is not None
        return await self.get(cur.lastrowid)

    async def get(self, id_: int) -> ScheduledCallback:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM scheduled_callbacks WHERE id = ?", (id_,)
        )
        if row is None:
            raise NotFoundError(f"no scheduled callback {id_}")
        return _row(row)

    async def pending_for(self, agent: str) -> list[ScheduledCallback]:
        """Pending callbacks `agent` scheduled or is to make, soonest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM scheduled_callbacks WHERE state = 'pending'"
            " AND (agent = ? OR created_by = ?) ORDER BY due, id",
            (agent, agent),
        )
        return [_row(r) for r in rows]

    async def due(self, now: float, limit: int = 100) -> list[ScheduledCallback]:
        """Pending callbacks due by `now`, oldest first (what the dialer takes)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM scheduled_callbacks WHERE state = 'pending' AND due <= ?"
            " ORDER BY due, id LIMIT ?",
            (now, limit),
        )
        return [_row(r) for r in rows]

    async def recover(self) -> int:
        """Callbacks left dialling (by a server that was killed: at start no call of this
        process is up) are pending again; how many."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE scheduled_callbacks SET state = 'pending' WHERE state = 'dialling'"
            )
            return cur.rowcount

    async def retry(self, id_: int, due: float) -> None:
        """A callback whose call did not reach the person is pending again, due at `due`.

        Raises: ConfigError (it is done or cancelled), NotFoundError."""
        current = await self.get(id_)
        if current.state in ("done", "cancelled"):
            raise ConfigError(f"callback {id_} is {current.state} already")
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE scheduled_callbacks SET state = 'pending', due = ? WHERE id = ?",
                (due, id_),
            )

    async def set_state(self, id_: int, state: str) -> None:
        """Raises: ConfigError (an unknown state, or a callback no longer pending moved
        back), NotFoundError."""
        if state not in CALLBACK_STATES:
            raise ConfigError(f"callback state {state!r}: choose {', '.join(CALLBACK_STATES)}")
        current = await self.get(id_)
        if current.state in ("done", "cancelled") and state != current.state:
            raise ConfigError(f"callback {id_} is {current.state} already")
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE scheduled_callbacks SET state = ? WHERE id = ?", (state, id_)
            )
