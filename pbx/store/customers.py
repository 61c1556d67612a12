"""Customers: the records a screen pop shows, keyed by their E.164 number.

Besides the record itself, the repository keeps which agent was offered which customer
(`customer_offers`): the web console lets an agent read only the customers offered to
them, and the history of a customer (earlier calls, tickets, dispositions) is read here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.e164 import Country, caller_candidates

__all__ = ["FIELDS", "Customer", "CustomerFields", "CustomerRepo", "Offered", "check_fields"]

#: Longest text of each field (a name, a note) a customer may have.
LIMITS = {"name": 200, "company": 200, "email": 254, "notes": 10_000, "external_id": 200}


@dataclass(frozen=True, slots=True)
class CustomerFields:
    """What a customer is, without its id and times (an import row, a form)."""

    number: str
    name: str
    company: str = ""
    email: str = ""
    notes: str = ""
    external_id: str = ""


#: The fields of a customer, in order (CSV columns, the REST body).
FIELDS = tuple(f.name for f in fields(CustomerFields))


@dataclass(frozen=True, slots=True)
class Customer:
    """A stored customer."""

    id: int
    number: str
    name: str
    company: str
    email: str
    notes: str
    external_id: str
    created: float
    updated: float

    @property
    def fields(self) -> CustomerFields:
        return CustomerFields(
            self.number, self.name, self.company, self.email, self.notes, self.external_id
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **{name: getattr(self, name) for name in FIELDS},
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True, slots=True)
class Offered:
    """One offer of a customer's call to an agent (the customer's call history)."""

    agent: str
    call_id: str
    queue: str
    at: float


def check_fields(values: CustomerFields) -> CustomerFields:
    """`values` with its texts stripped; the number must be E.164 already.

    Raises: ConfigError naming the first bad field.
    """
    number = values.number.strip()
    if not (number.startswith("+") and number[1:].isdigit() and 8 <= len(number) - 1 <= 15):
        raise ConfigError(f"number {values.number!r} is not in E.164 form (+ and 8-15 digits)")
    out = replace(values, **{name: getattr(values, name).strip() for name in LIMITS}, number=number)
    if not out.name:
        raise ConfigError("name is empty")
    for name, limit in LIMITS.items():
        text = getattr(out, name)
        if len(text) > limit:
            raise ConfigError(f"{name} is longer than {limit} characters")
        if "\0" in text or (name != "notes" and not text.isprintable()):
            raise ConfigError(f"{name} has control characters")
    return out


_COLUMNS = "id, number, name, company, email, notes, external_id, created, updated"


def _customer(row: sqlite3.Row) -> Customer:
    return Customer(*(row[i] for i in range(9)))


class CustomerRepo:
    """Customers, and which agents were offered them."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, values: CustomerFields) -> Customer:
        """Store a new customer, or update the one with the same number.

        Raises: ConfigError for bad fields.
        """
        (customer,), _ = await self.upsert_many([values])
        return customer

    async def upsert_many(self, rows: Sequence[CustomerFields]) -> tuple[list[Customer], int]:
        """Store `rows` in one transaction (a row whose number exists updates that
        customer); returns the stored customers and how many of them were new.

        Raises: ConfigError for a bad row (nothing is stored then).
        """
        checked = [check_fields(r) for r in rows]
        now = self._clock()
        stored: list[Customer] = []
        added = 0
        async with self._db.transaction() as conn:
            for values in checked:
                async with conn.execute(
                    "SELECT id FROM customers WHERE number = ?", (values.number,)
                ) as cur:
                    existing = await cur.fetchone()
                added += existing is None
                await conn.execute(
                    "INSERT INTO customers (number, name, company, email, notes, external_id,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (number) DO UPDATE SET name = excluded.name,"
                    " company = excluded.company, email = excluded.email,"
                    " notes = excluded.notes, external_id = excluded.external_id,"
                    " updated = excluded.updated",
                    (*(getattr(values, n) for n in FIELDS), now, now),
                )
                async with conn.execute(
                    f"SELECT {_COLUMNS} FROM customers WHERE number = ?", (values.number,)
                ) as cur:
                    row = await cur.fetchone()
                assert row is not None  # written just now
                stored.append(_customer(row))
        return stored, added

    async def update(self, id_: int, changes: dict[str, str]) -> Customer:
        """Change some fields of customer `id_` (names from FIELDS).

        Raises: ConfigError (an unknown field, a bad value, a number taken by another
        customer), NotFoundError (no such customer).
        """
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ConfigError(f"unknown customer fields: {', '.join(sorted(unknown))}")
        current = await self.get(id_)
        values = check_fields(replace(current.fields, **changes))
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT id FROM customers WHERE number = ? AND id != ?", (values.number, id_)
            ) as cur:
                if await cur.fetchone() is not None:
                    raise ConfigError(f"number {values.number} belongs to another customer")
            await conn.execute(
                "UPDATE customers SET number = ?, name = ?, company = ?, email = ?, notes = ?,"
                " external_id = ?, updated = ? WHERE id = ?",
                (*(getattr(values, n) for n in FIELDS), self._clock(), id_),
            )
        return await self.get(id_)

    async def get(self, id_: int) -> Customer:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM customers WHERE id = ?", (id_,))
        if row is None:
            raise NotFoundError(f"no customer {id_}")
        return _customer(row)

    async def by_number(self, number: str) -> Customer | None:
        """The customer with this E.164 number."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM customers WHERE number = ?", (number,)
        )
        return None if row is None else _customer(row)

    async def for_caller(self, caller: str, default: Country | str | None) -> Customer | None:
        """The customer a caller ID stands for (`e164.caller_candidates`), if any."""
        for number in caller_candidates(caller, default):
            found = await self.by_number(number)
            if found is not None:
                return found
        return None

    async def all(self) -> list[Customer]:
        """Every customer, by name then number."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM customers ORDER BY name COLLATE NOCASE, number"
        )
        return [_customer(r) for r in rows]

    async def search(self, text: str, limit: int = 50) -> list[Customer]:
        """Customers whose name, company or number contains `text` (any case)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM customers WHERE name LIKE ?1 ESCAPE '\\'"
            " OR company LIKE ?1 ESCAPE '\\' OR number LIKE ?1 ESCAPE '\\'"
            " ORDER BY name COLLATE NOCASE, number LIMIT ?2",
            (pattern, limit),
        )
        return [_customer(r) for r in rows]

    async def delete(self, id_: int) -> None:
        """Raises: NotFoundError."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM customers WHERE id = ?", (id_,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no customer {id_}")

    # -- offers ------------------------------------------------------------------------

    async def offered(self, id_: int, agent: str, call_id: str, queue: str, at: float) -> None:
        """Record that customer `id_`'s call `call_id` was offered to `agent`."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO customer_offers (customer, agent, call_id, queue, at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (id_, agent, call_id, queue, at),
            )

    async def was_offered(self, id_: int, agent: str) -> bool:
        """Whether customer `id_` was ever offered to `agent`."""
        row = await self._db.fetchone(
            "SELECT 1 FROM customer_offers WHERE customer = ? AND agent = ? LIMIT 1",
            (id_, agent),
        )
        return row is not None

    async def offers(self, id_: int, limit: int = 50) -> list[Offered]:
        """The customer's calls offered to agents, newest first."""
        rows = await self._db.fetchall(
            "SELECT agent, call_id, queue, at FROM customer_offers WHERE customer = ?"
            " ORDER BY at DESC LIMIT ?",
            (id_, limit),
        )
        return [Offered(r[0], r[1], r[2], r[3]) for r in rows]

    async def offered_to(self, agent: str, ids: Iterable[int]) -> set[int]:
        """Which of `ids` were offered to `agent`."""
        wanted = list(ids)
        if not wanted:
            return set()
        marks = ", ".join("?" * len(wanted))
        rows = await self._db.fetchall(
            f"SELECT DISTINCT customer FROM customer_offers WHERE agent = ?"
            f" AND customer IN ({marks})",
            (agent, *wanted),
        )
        return {int(r[0]) for r in rows}
