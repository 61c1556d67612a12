"""A campaign's contact list: the numbers to call (E.164), each with its time zone (or
'' to derive it from the number), the customer record shown in the screen pop (the
import's extra columns, as JSON), and where the dialer is with it.

States: pending (next_try says when it may be dialled) -> dialling -> pending again
(a retry), done (connected, or out of attempts), dnc (found on a do-not-call list at
dial time) or failed (a number the dialer cannot use). A contact left 'dialling' by a
server killed mid-call goes back to pending when the dialer starts (`recover`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = ["CONTACT_STATES", "Contact", "ContactRepo", "NewContact"]

CONTACT_STATES = ("pending", "dialling", "done", "dnc", "failed")
_FIELDS_MAX = 8000


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact to add: its number (E.164 already), zone ('' = from the number) and
    record (column -> text)."""

    number: str
    zone: str = ""
    fields: Mapping[str, str] | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    campaign: str
    number: str
    zone: str
    fields: dict[str, str]
    customer: int | None
    state: str
    attempts: int
    next_try: float
    last_outcome: str
    owner: str | None
    added: float

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS.split(", ")}


_COLUMNS = (
    "id, campaign, number, zone, fields, customer, state, attempts, next_try, last_outcome,"
    " owner, added"
)


def _contact(row: sqlite3.Row) -> Contact:
    values = list(row)
    values[4] = json.loads(values[4])
    return Contact(*values)


class ContactRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add_many(
        self, campaign: str, contacts: Sequence[NewContact], *, next_try: float = 0.0
    ) -> tuple[int, int]:
        """Add contacts in one transaction; a number already in the campaign is kept as
        it is (its record updated). Returns (added, updated).

        Raises: NotFoundError (no such campaign), ConfigError (a record too large).
        """
        now = self._clock()
        rows = []
        for c in contacts:
            text = json.dumps(dict(c.fields or {}), ensure_ascii=False)
            if len(text) > _FIELDS_MAX:
                raise ConfigError(f"the record of {c.number} is over {_FIELDS_MAX} characters")
            rows.append((campaign, c.number, c.zone, text, c.owner, next_try, now))
        added = 0
        async with self._db.transaction() as conn:
            async with conn.execute("SELECT 1 FROM campaigns WHERE name = ?", (campaign,)) as cur:
                if await cur.fetchone() is None:
                    raise NotFoundError(f"no campaign {campaign!r}")
            async with conn.execute(
                "SELECT number FROM contacts WHERE campaign = ?", (campaign,)
            ) as cur:
                known = {r[0] for r in await cur.fetchall()}
            for row in rows:
                await conn.execute(
                    "INSERT INTO contacts (campaign, number, zone, fields, owner, next_try, added)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, number) DO UPDATE SET"
                    " zone = excluded.zone, fields = excluded.fields",
                    row,
                )
                if row[1] not in known:
                    known.add(row[1])
                    added += 1
        return added, len(rows) - added

    async def get(self, id_: int) -> Contact:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM contacts WHERE id = ?", (id_,))
        if row is None:
            raise NotFoundError(f"no contact {id_}")
        return _contact(row)

    async def of_campaign(self, campaign: str) -> list[Contact]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM contacts WHERE campaign = ? ORDER BY id", (campaign,)
        )
        return [_contact(r) for r in rows]

    async def due(self, campaign: str, now: float, limit: int = 50) -> list[Contact]:
        """Pending contacts whose next try has come, soonest first (read fresh: the
        dialer's own writes decide what is due)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM contacts WHERE campaign = ? AND state = 'pending'"
            " AND next_try <= ? ORDER BY next_try, id LIMIT ?",
            (campaign, now, limit),
        )
        return [_contact(r) for r in rows]

    async def counts(self, campaign: str) -> dict[str, int]:
        """Contacts per state (every state listed)."""
        rows = await self._db.fetchall(
            "SELECT state, count(*) FROM contacts WHERE campaign = ? GROUP BY state", (campaign,)
        )
        out = dict.fromkeys(CONTACT_STATES, 0)
        out.update({r[0]: int(r[1]) for r in rows})
        return out

    async def next_due(self, campaign: str) -> float | None:
        """The earliest next try of a pending contact (None: none pending)."""
        row = await self._db.fetchone(
            "SELECT min(next_try) FROM contacts WHERE campaign = ? AND state = 'pending'",
            (campaign,),
        )
        return None if row is None or row[0] is None else float(row[0])

    async def claim(self, id_: int) -> bool:
        """Mark a pending contact dialling (False: it was not pending any more)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE contacts SET state = 'dialling' WHERE id = ? AND state = 'pending'", (id_,)
            )
            return cur.rowcount == 1

    async def claim_many(self, ids: Sequence[int]) -> list[int]:
        """`claim` for many contacts in one transaction; the ids that were pending."""
        claimed = []
        async with self._db.transaction() as conn:
            for id_ in ids:
                cur = await conn.execute(
                    "UPDATE contacts SET state = 'dialling' WHERE id = ? AND state = 'pending'",
                    (id_,),
                )
                if cur.rowcount == 1:
                    claimed.append(id_)
        return claimed

    async def settle(
        self,
        id_: int,
        state: str,
        *,
        outcome: str = "",
        next_try: float | None = None,
        attempted: bool = True,
    ) -> None:
        """After an attempt (or a check that stopped one): its state, last outcome and
        next try; `attempted` counts one more attempt. Raises: ConfigError (a state)."""
        if state not in CONTACT_STATES:
            raise ConfigError(f"contact state {state!r}: choose {', '.join(CONTACT_STATES)}")
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE contacts SET state = ?, last_outcome = CASE WHEN ? = '' THEN"
                " last_outcome ELSE ? END, next_try = coalesce(?, next_try),"
                " attempts = attempts + ? WHERE id = ?",
                (state, outcome, outcome, next_try, int(attempted), id_),
            )

    async def recover(self, campaign: str) -> int:
        """Contacts left dialling (a killed server) are pending again; how many."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE contacts SET state = 'pending' WHERE campaign = ? AND state = 'dialling'",
                (campaign,),
            )
            return cur.rowcount
