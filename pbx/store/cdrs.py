"""Call detail records: one row per call, opened at its start and closed at its end.

Each change is its own transaction, so after a crash (even kill -9) every finished
call's row is complete, and the calls that were up are found still open;
`close_interrupted` closes them at start-up with a cause that says so.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass

from pbx.store.database import Database


class Disposition(enum.StrEnum):
    """How a call ended, in the words Asterisk CDR users know."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


INTERRUPTED = "interrupted: the server stopped while the call was up"


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call. Times are Unix seconds; `end` is None while the call is up."""

    id: int
    call_id: str
    caller: str
    callee: str
    start: float
    answer: float | None
    end: float | None
    disposition: str | None
    hangup_cause: str | None
    recording: str | None = None  # the WAV file, when the call was recorded
    #: The trunk the call left by and the number sent to it (None: it stayed inside).
    trunk: str | None = None
    trunk_number: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (ringing included)."""
        return None if self.end is None else max(0.0, self.end - self.start)

    @property
    def billsec(self) -> float | None:
        """Seconds from answer to end; 0 for a call never answered."""
        if self.end is None:
            return None
        return 0.0 if self.answer is None else max(0.0, self.end - self.answer)


_COLUMNS = (
    "id, call_id, caller, callee, start, answer, end, disposition, hangup_cause, recording,"
    " trunk, trunk_number"
)


def _cdr(row: sqlite3.Row) -> Cdr:
    return Cdr(*row)


class CdrRepo:
    """Stored call detail records."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self, call_id: str, caller: str, callee: str, start: float) -> int:
        """Record a call that starts now; returns the row id."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO cdrs (call_id, caller, callee, start) VALUES (?, ?, ?, ?)",
                (call_id, caller, callee, start),
            )
            row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    async def answered(self, row_id: int, at: float) -> None:
        """Record when the call was answered (the first time only)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE cdrs SET answer = ? WHERE id = ? AND answer IS NULL", (at, row_id)
            )

    async def close(self, row_id: int, end: float, disposition: Disposition, cause: str) -> None:
        """Close a call's row (a closed row is never changed again)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE cdrs SET end = ?, disposition = ?, hangup_cause = ?"
                " WHERE id = ? AND end IS NULL",
                (end, str(disposition), cause, row_id),
            )

    async def set_recording(self, row_id: int, path: str) -> None:
        """Link the call's recording file to its row."""
        async with self._db.transaction() as conn:
            await conn.execute("UPDATE cdrs SET recording = ? WHERE id = ?", (path, row_id))

    async def set_trunk(self, row_id: int, trunk: str, number: str) -> None:
        """Name the trunk the call left by and the number dialled on it."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE cdrs SET trunk = ?, trunk_number = ? WHERE id = ?", (trunk, number, row_id)
            )

    async def close_interrupted(self, end: float, cause: str = INTERRUPTED) -> int:
        """Close every row left open by a process that died; returns how many.

        `end` should be the last moment the old process was known alive (a
        heartbeat), so billable time does not include the downtime. An answered
        call keeps ANSWERED; one that never was becomes FAILED.
        """
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE cdrs SET end = max(?, coalesce(answer, start)),"
                " disposition = CASE WHEN answer IS NULL THEN ? ELSE ? END,"
                " hangup_cause = ? WHERE end IS NULL",
                (end, str(Disposition.FAILED), str(Disposition.ANSWERED), cause),
            )
            return cur.rowcount

    async def get(self, row_id: int) -> Cdr | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM cdrs WHERE id = ?", (row_id,))
        return None if row is None else _cdr(row)

    async def list(self, since: float | None = None, limit: int = 1000) -> list[Cdr]:
        """The NEWEST `limit` calls that started at or after `since`, oldest first.

        A busy office asks for today's calls, so the cut drops the oldest rows (like
        `tail`); `count` says how many rows there are in all, to tell that a list was cut.
        """
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM cdrs WHERE start >= ? ORDER BY start DESC, id DESC LIMIT ?",
            (since if since is not None else float("-inf"), max(0, min(limit, 2**62))),
        )
        return [_cdr(r) for r in reversed(rows)]

    async def count(self, since: float | None = None) -> int:
        """How many calls started at or after `since`."""
        row = await self._db.fetchone(
            "SELECT count(*) FROM cdrs WHERE start >= ?",
            (since if since is not None else float("-inf"),),
        )
        return 0 if row is None else int(row[0])
