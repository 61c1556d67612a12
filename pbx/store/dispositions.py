"""Dispositions: what an agent says a call came to (sale, resolved, callback ...), one or
more per call, with the customer and ticket it concerned. Reports count them per queue.
A "do not call" disposition also puts the call's number on the global do-not-call list
(pbx.store.dnc), in the same transaction.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from pbx.errors import ConfigError
from pbx.store.database import Database

__all__ = ["CallDisposition", "DispositionRepo", "check_code", "is_do_not_call"]

log = logging.getLogger(__name__)

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}")
NOTE_MAX = 2000


#: Disposition codes that put the call's number on the global do-not-call list.
DO_NOT_CALL_CODES = frozenset({"do not call", "do-not-call", "dnc"})


def is_do_not_call(code: str) -> bool:
    """Whether a disposition code means "never call this number again"."""
    return " ".join(code.lower().replace("_", " ").split()) in DO_NOT_CALL_CODES


async def _add_to_dnc(
    conn: aiosqlite.Connection, call_id: str, customer: int | None, agent: str, now: float
) -> None:
    """The number of the call (its dial attempt's, else its customer's) on the global
    do-not-call list, in the disposition's transaction."""
    number = None
    async with conn.execute(
        "SELECT number FROM dial_attempts WHERE call_id = ? ORDER BY id DESC LIMIT 1", (call_id,)
    ) as cur:
        row = await cur.fetchone()
        number = row[0] if row is not None else None
    if number is None and customer is not None:
        async with conn.execute("SELECT number FROM customers WHERE id = ?", (customer,)) as cur:
            row = await cur.fetchone()
            number = row[0] if row is not None else None
    if number is None:
        log.info("call %s: a do-not-call disposition with no number known", call_id)
        return
    await conn.execute(
        "INSERT OR IGNORE INTO dnc (number, campaign, added, source) VALUES (?, '', ?, ?)",
        (number, now, f"disposition by {agent}"),
    )


def check_code(code: str) -> str:
    """Raises: ConfigError unless `code` is 1-40 letters, digits, space, '_', '.', '-'."""
    code = code.strip()
    if _CODE.fullmatch(code) is None:
        raise ConfigError(f"disposition {code!r}: 1 to 40 letters, digits, spaces, _ . -")
    return code


@dataclass(frozen=True, slots=True)
class CallDisposition:
    id: int
    call_id: str
    agent: str
    queue: str
    code: str
    note: str
    customer: int | None
    ticket: int | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS.split(", ")}


_COLUMNS = "id, call_id, agent, queue, code, note, customer, ticket, at"


def _row(row: sqlite3.Row) -> CallDisposition:
    return CallDisposition(*(row[i] for i in range(9)))


class DispositionRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self,
        call_id: str,
        agent: str,
        code: str,
        *,
        queue: str = "",
        note: str = "",
        customer: int | None = None,
        ticket: int | None = None,
    ) -> CallDisposition:
        """Record a disposition of `call_id` by `agent` now.

        Raises: ConfigError (a bad code or note, an unknown customer or ticket).
        """
        code = check_code(code)
        note = note.strip()
        if len(note) > NOTE_MAX or "\0" in note:
            raise ConfigError(f"a disposition note is at most {NOTE_MAX} characters")
        if not call_id:
            raise ConfigError("a disposition needs the call it is about")
        now = self._clock()
        try:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    f"INSERT INTO dispositions ({_COLUMNS[4:]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (call_id, agent, queue, code, note, customer, ticket, now),
                )
                if is_do_not_call(code):
                    await _add_to_dnc(conn, call_id, customer, agent, now)
        except Exception as exc:
            if "FOREIGN KEY" in str(exc):
                raise ConfigError("no such customer or ticket") from None
            raise
        assert cur.lastrowid is not None
        return CallDisposition(
            cur.lastrowid, call_id, agent, queue, code, note, customer, ticket, now
        )

    async def for_call(self, call_id: str) -> list[CallDisposition]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM dispositions WHERE call_id = ? ORDER BY id", (call_id,)
        )
        return [_row(r) for r in rows]

    async def for_customer(self, customer: int, limit: int = 50) -> list[CallDisposition]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM dispositions WHERE customer = ? ORDER BY at DESC LIMIT ?",
            (customer, limit),
        )
        return [_row(r) for r in rows]

    async def between(self, since: float, until: float) -> list[CallDisposition]:
        """Dispositions made in [since, until), oldest first (for reports)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM dispositions WHERE at >= ? AND at < ? ORDER BY at, id",
            (since, until),
        )
        return [_row(r) for r in rows]
