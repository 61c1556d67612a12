"""Do-not-call lists: numbers (E.164) never to be dialled, globally (campaign '') or by
one campaign. The dialer checks them at dial time; `pbx dnc add|del|import|check`, an
agent's "do not call" disposition and the safe-harbour opt-out key add to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = ["DncEntry", "DncRepo"]

_SOURCE_MAX = 100


@dataclass(frozen=True, slots=True)
class DncEntry:
    number: str
    campaign: str  # '' = global
    added: float
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "campaign": self.campaign or None, "added": self.added,
                "source": self.source}  # fmt: skip


def _check(number: str) -> str:
    if not number.startswith("+") or not number[1:].isdigit() or not 8 <= len(number) <= 16:
        raise ConfigError(f"DNC number {number[:32]!r}: E.164 (+ and 7 to 15 digits)")
    return number


class DncRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add_many(self, numbers: Sequence[str], campaign: str = "", source: str = "") -> int:
        """Add E.164 numbers (one transaction); returns how many were new.

        Raises: ConfigError (a number not in E.164, a source too long).
        """
        checked = [_check(n) for n in numbers]
        if len(source) > _SOURCE_MAX:
            raise ConfigError(f"a DNC source is at most {_SOURCE_MAX} characters")
        now = self._clock()
        new = 0
        async with self._db.transaction() as conn:
            for number in checked:
                cur = await conn.execute(
                    "INSERT OR IGNORE INTO dnc (number, campaign, added, source)"
                    " VALUES (?, ?, ?, ?)",
                    (number, campaign, now, source),
                )
                new += cur.rowcount
        return new

    async def add(self, number: str, campaign: str = "", source: str = "") -> bool:
        """Add one number; False when it was listed already. Raises: ConfigError."""
        return await self.add_many([number], campaign, source) == 1

    async def delete(self, number: str, campaign: str = "") -> None:
        """Raises: NotFoundError (not on that list)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM dnc WHERE number = ? AND campaign = ?", (number, campaign)
            )
            if cur.rowcount == 0:
                where = f"campaign {campaign}'s" if campaign else "the global"
                raise NotFoundError(f"{number} is not on {where} do-not-call list")

    async def listed(self, number: str, campaign: str = "") -> DncEntry | None:
        """The entry that bars `number` for `campaign` (global first), or None."""
        row = await self._db.fetchone(
            "SELECT number, campaign, added, source FROM dnc WHERE number = ?"
            " AND campaign IN ('', ?) ORDER BY campaign LIMIT 1",
            (number, campaign),
        )
        return None if row is None else DncEntry(*row)

    async def listed_among(self, numbers: Sequence[str], campaign: str = "") -> set[str]:
        """Which of `numbers` are barred for `campaign` (its list or the global one)."""
        found: set[str] = set()
        for start in range(0, len(numbers), 500):  # SQLite's bound-parameter limit
            chunk = list(numbers[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT number FROM dnc WHERE campaign IN ('', ?) AND number IN ({marks})",
                [campaign, *chunk],
            )
            found.update(r[0] for r in rows)
        return found

    async def all(self, campaign: str | None = None) -> list[DncEntry]:
        """Every entry (or one list's: '' global)."""
        if campaign is None:
            rows = await self._db.fetchall(
                "SELECT number, campaign, added, source FROM dnc ORDER BY campaign, number"
            )
        else:
            rows = await self._db.fetchall(
                "SELECT number, campaign, added, source FROM dnc WHERE campaign = ?"
                " ORDER BY number",
                (campaign,),
            )
        return [DncEntry(*r) for r in rows]
