"""Help-desk tickets: opened from a call (or by hand), with a timer, notes, the calls they
concern and the knowledge-base articles linked to them.

States: open -> pending -> escalated -> solved, any to any except that a solved ticket
stays solved unless reopened (solved -> open). The timer runs from `opened_at`; `target`
is the seconds the ticket should be solved in (the queue's target when it was opened,
`ticket_targets`, else DEFAULT_TARGET).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = [
    "DEFAULT_TARGET",
    "STATES",
    "Note",
    "Ticket",
    "TicketRepo",
    "check_transition",
]

STATES = ("open", "pending", "escalated", "solved")
#: Target resolution time of a queue without one of its own (seconds).
DEFAULT_TARGET = 3600.0
SUBJECT_MAX = 200
NOTE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    author: str
    body: str
    at: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket with (when read by `get`) its notes, calls and linked articles."""

    id: int
    customer: int | None
    agent: str
    queue: str
    subject: str
    state: str
    opened_at: float
    updated: float
    solved_at: float | None
    target: float
    notes: tuple[Note, ...] = ()
    calls: tuple[tuple[str, str], ...] = ()  # (call id, agent)
    articles: tuple[int, ...] = field(default=())

    def elapsed(self, now: float) -> float:
        """Seconds the ticket has been open (until solved)."""
        end = self.solved_at if self.solved_at is not None else now
        return max(0.0, end - self.opened_at)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "agent": self.agent,
            "queue": self.queue,
            "subject": self.subject,
            "state": self.state,
            "opened_at": self.opened_at,
            "solved_at": self.solved_at,
            "target": self.target,
            "elapsed": self.elapsed(now),
            "notes": [{"author": n.author, "body": n.body, "at": n.at} for n in self.notes],
            "calls": [{"call_id": c, "agent": a} for c, a in self.calls],
            "articles": list(self.articles),
        }


def check_transition(current: str, new: str) -> None:
    """Raises: ConfigError for an unknown state or a solved ticket moved other than back
    to open."""
    if new not in STATES:
        raise ConfigError(f"ticket state {new!r}: choose {', '.join(STATES)}")
    if current == "solved" and new not in ("solved", "open"):
        raise ConfigError("a solved ticket can only be reopened")


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise ConfigError(f"{what} is empty")
    if len(value) > limit or "\0" in value:
        raise ConfigError(f"{what} is longer than {limit} characters or has a NUL")
    return value


_COLUMNS = "id, customer, agent, queue, subject, state, opened_at, updated, solved_at, target"


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(*(row[i] for i in range(10)))


class TicketRepo:
    """Tickets with their notes, calls and article links."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def open(
        self,
        agent: str,
        subject: str,
        *,
        customer: int | None = None,
        queue: str = "",
        call_id: str = "",
    ) -> Ticket:
        """Open a ticket now (its timer starts), attached to `call_id` when given.

        Raises: ConfigError (an empty subject), NotFoundError (no such customer).
        """
        subject = _text(subject, "subject", SUBJECT_MAX)
        now = self._clock()
        async with self._db.transaction() as conn:
            if customer is not None:
                async with conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer,)) as cur:
                    if await cur.fetchone() is None:
                        raise NotFoundError(f"no customer {customer}")
            async with conn.execute(
                "SELECT seconds FROM ticket_targets WHERE queue = ?", (queue,)
            ) as cur:
                row = await cur.fetchone()
            target = float(row[0]) if row is not None else DEFAULT_TARGET
            cur = await conn.execute(
                "INSERT INTO tickets (customer, agent, queue, subject, state, opened_at,"
                " updated, target) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                (customer, agent, queue, subject, now, now, target),
            )
            id_ = cur.lastrowid
            assert id_ is not None
            if call_id:
                await conn.execute(
                    "INSERT INTO ticket_calls (ticket, call_id, agent, at) VALUES (?, ?, ?, ?)",
                    (id_, call_id, agent, now),
                )
        return await self.get(id_)

    async def get(self, id_: int) -> Ticket:
        """The ticket with its notes, calls and articles. Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM tickets WHERE id = ?", (id_,))
        if row is None:
            raise NotFoundError(f"no ticket {id_}")
        notes = await self._db.fetchall(
            "SELECT id, author, body, at FROM ticket_notes WHERE ticket = ? ORDER BY id", (id_,)
        )
        calls = await self._db.fetchall(
            "SELECT call_id, agent FROM ticket_calls WHERE ticket = ? ORDER BY at, rowid",
            (id_,),
        )
        articles = await self._db.fetchall(
            "SELECT article FROM ticket_articles WHERE ticket = ? ORDER BY at, article", (id_,)
        )
        return replace(
            _ticket(row),
            notes=tuple(Note(r[0], r[1], r[2], r[3]) for r in notes),
            calls=tuple((r[0], r[1]) for r in calls),
            articles=tuple(int(r[0]) for r in articles),
        )

    async def involves(self, id_: int, agent: str) -> bool:
        """Whether `agent` owns ticket `id_` or took one of its calls (an escalation)."""
        row = await self._db.fetchone(
            "SELECT 1 FROM tickets WHERE id = ? AND agent = ? UNION ALL"
            " SELECT 1 FROM ticket_calls WHERE ticket = ? AND agent = ? LIMIT 1",
            (id_, agent, id_, agent),
        )
        return row is not None

    async def set_state(self, id_: int, state: str) -> Ticket:
        """Raises: ConfigError (a refused transition), NotFoundError."""
        current = await self.get(id_)
        check_transition(current.state, state)
        now = self._clock()
        solved = now if state == "solved" else None
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE tickets SET state = ?, updated = ?,"
                " solved_at = CASE WHEN ? = 'solved' THEN coalesce(solved_at, ?) END"
                " WHERE id = ?",
                (state, now, state, solved, id_),
            )
        return await self.get(id_)

    async def add_note(self, id_: int, author: str, body: str) -> Note:
        """Raises: ConfigError (an empty note), NotFoundError."""
        body = _text(body, "note", NOTE_MAX)
        now = self._clock()
        async with self._db.transaction() as conn:
            await self._touch(conn, id_, now)
            cur = await conn.execute(
                "INSERT INTO ticket_notes (ticket, author, body, at) VALUES (?, ?, ?, ?)",
                (id_, author, body, now),
            )
            assert cur.lastrowid is not None
        return Note(cur.lastrowid, author, body, now)

    async def add_call(self, id_: int, call_id: str, agent: str) -> None:
        """Attach a call and an agent who took it (again for each agent an escalation
        reaches) to the ticket. Raises: NotFoundError."""
        now = self._clock()
        async with self._db.transaction() as conn:
            await self._touch(conn, id_, now)
            await conn.execute(
                "INSERT INTO ticket_calls (ticket, call_id, agent, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (id_, call_id, agent, now),
            )

    async def link_article(self, id_: int, article: int) -> None:
        """Raises: NotFoundError (no such ticket or article)."""
        now = self._clock()
        async with self._db.transaction() as conn:
            await self._touch(conn, id_, now)
            async with conn.execute("SELECT 1 FROM kb_articles WHERE id = ?", (article,)) as cur:
                if await cur.fetchone() is None:
                    raise NotFoundError(f"no article {article}")
            await conn.execute(
                "INSERT INTO ticket_articles (ticket, article, at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (id_, article, now),
            )

    async def _touch(self, conn: Any, id_: int, now: float) -> None:
        cur = await conn.execute("UPDATE tickets SET updated = ? WHERE id = ?", (now, id_))
        if cur.rowcount == 0:
            raise NotFoundError(f"no ticket {id_}")

    async def for_call(self, call_id: str) -> list[Ticket]:
        """The tickets a call is attached to, oldest first."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT ticket FROM ticket_calls WHERE call_id = ? ORDER BY ticket", (call_id,)
        )
        return [await self.get(int(r[0])) for r in rows]

    async def for_agent(self, agent: str, limit: int = 100) -> list[Ticket]:
        """Tickets `agent` owns or took a call of, newest first (without notes)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM tickets WHERE agent = ? OR id IN"
            " (SELECT ticket FROM ticket_calls WHERE agent = ?) ORDER BY opened_at DESC LIMIT ?",
            (agent, agent, limit),
        )
        return [_ticket(r) for r in rows]

    async def for_customer(self, customer: int, limit: int = 50) -> list[Ticket]:
        """The customer's tickets, newest first (without notes)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM tickets WHERE customer = ? ORDER BY opened_at DESC LIMIT ?",
            (customer, limit),
        )
        return [_ticket(r) for r in rows]

    async def recent(self, limit: int = 100) -> list[Ticket]:
        """The newest tickets (without notes)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM tickets ORDER BY opened_at DESC, id DESC LIMIT ?", (limit,)
        )
        return [_ticket(r) for r in rows]

    async def targets(self) -> dict[str, float]:
        """Each queue's own target resolution time (others get DEFAULT_TARGET)."""
        rows = await self._db.fetchall("SELECT queue, seconds FROM ticket_targets ORDER BY queue")
        return {str(r[0]): float(r[1]) for r in rows}

    async def set_target(self, queue: str, seconds: float) -> None:
        """The queue's target resolution time for tickets opened from now on.

        Raises: ConfigError for a time not above 0.
        """
        if not seconds > 0:
            raise ConfigError("a target resolution time must be above 0 seconds")
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO ticket_targets (queue, seconds) VALUES (?, ?)"
                " ON CONFLICT (queue) DO UPDATE SET seconds = excluded.seconds",
                (queue, seconds),
            )
