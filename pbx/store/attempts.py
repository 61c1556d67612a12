"""Every dial attempt of the dialer, as the issue lists it: number, times (dialled,
answered = the end of the greeting when AMD ran, ended, connected to an agent), the
outcome, the AMD's verdict and decision time, the agent and the wait to the agent.
Abandon rates (acd.compliance) and the wallboard's figures are computed from them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from pbx.errors import ConfigError
from pbx.store.database import Database

__all__ = ["ATTEMPT_OUTCOMES", "AttemptRepo", "DialAttempt"]

ATTEMPT_OUTCOMES = ("connected", "dropped", "machine", "busy", "no_answer", "failed")


@dataclass(frozen=True, slots=True)
class DialAttempt:
    """One attempt (`id` 0 until stored)."""

    campaign: str
    number: str
    dialed_at: float
    ended_at: float
    outcome: str
    contact: int | None = None
    call_id: str = ""
    answered_at: float | None = None
    sip_status: int = 0
    amd: str | None = None  # human, machine, notsure; None: AMD did not run
    amd_decided_at: float | None = None
    amd_ms: int | None = None  # the AMD's decision time from the answer
    agent: str | None = None
    connected_at: float | None = None
    wait_to_agent: float | None = None
    message_left: bool = False
    opted_out: bool = False
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_NAMES = [f.name for f in fields(DialAttempt) if f.name != "id"]
_COLUMNS = ", ".join(_NAMES)


def _attempt(row: sqlite3.Row) -> DialAttempt:
    values = dict(zip([*_NAMES, "id"], row, strict=True))
    values["message_left"] = bool(values["message_left"])
    values["opted_out"] = bool(values["opted_out"])
    return DialAttempt(**values)


class AttemptRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, attempt: DialAttempt) -> int:
        """Store an attempt; its id. Raises: ConfigError (an unknown outcome)."""
        if attempt.outcome not in ATTEMPT_OUTCOMES:
            raise ConfigError(f"attempt outcome {attempt.outcome!r}")
        values = [getattr(attempt, n) for n in _NAMES]
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                f"INSERT INTO dial_attempts ({_COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))})",
                values,
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def of_campaign(self, campaign: str, since: float = 0.0) -> list[DialAttempt]:
        """A campaign's attempts dialled since `since`, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}, id FROM dial_attempts WHERE campaign = ? AND dialed_at >= ?"
            " ORDER BY dialed_at, id",
            (campaign, since),
        )
        return [_attempt(r) for r in rows]

    async def of_number(self, number: str, since: float = 0.0) -> list[DialAttempt]:
        """Every campaign's attempts to `number` since `since`, oldest first (lockout)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}, id FROM dial_attempts WHERE number = ? AND dialed_at >= ?"
            " ORDER BY dialed_at, id",
            (number, since),
        )
        return [_attempt(r) for r in rows]
