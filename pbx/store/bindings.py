"""Registrations (RFC 3261 §10.3 bindings), kept so a restart keeps every phone reachable.

The registrar holds bindings in memory and writes them behind, batching a flush
every 50-100 ms: `save` takes hundreds of upserts and removals and applies them
in one transaction with executemany.

Keying: a binding is identified by (aor, contact_uri). `contact_uri` is the
string the registrar compares contacts by (RFC 3261 §10.3 step 7 compares
Contact URIs; the registrar passes whatever normal form it uses for that) and
defaults to `contact`, the Contact as the registrar wants it back. Removals name
bindings by the same (aor, contact_uri) pair.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pbx.store.database import Database


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact registered for an address-of-record.

    `expires_at` is a Unix time; `source` says where the REGISTER came from
    (transport and address, as the registrar writes it). `contact_uri` left
    empty means "same as `contact`".
    """

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    user_agent: str | None
    source: str
    instance: str | None = None
    reg_id: int | None = None
    q: float | None = None
    path: str | None = None
    contact_uri: str = ""

    def __post_init__(self) -> None:
        if not self.contact_uri:
            object.__setattr__(self, "contact_uri", self.contact)

    @property
    def key(self) -> tuple[str, str]:
        """(aor, contact_uri): the binding's identity in the store."""
        return (self.aor, self.contact_uri)


_COLUMNS = (
    "aor, contact_uri, contact, expires_at, call_id, cseq, user_agent, source,"
    " instance, reg_id, q, path"
)

_UPSERT = (
    f"INSERT INTO bindings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aor, contact_uri) DO UPDATE SET"
    " contact = excluded.contact, expires_at = excluded.expires_at,"
    " call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent,"
    " source = excluded.source, instance = excluded.instance, reg_id = excluded.reg_id,"
    " q = excluded.q, path = excluded.path"
)


def _row(binding: Binding) -> tuple[object, ...]:
    return (
        binding.aor,
        binding.contact_uri,
        binding.contact,
        float(binding.expires_at),
        binding.call_id,
        binding.cseq,
        binding.user_agent,
        binding.source,
        binding.instance,
        binding.reg_id,
        None if binding.q is None else float(binding.q),
        binding.path,
    )


def _binding(row: sqlite3.Row) -> Binding:
    return Binding(
        aor=row["aor"],
        contact=row["contact"],
        expires_at=row["expires_at"],
        call_id=row["call_id"],
        cseq=row["cseq"],
        user_agent=row["user_agent"],
        source=row["source"],
        instance=row["instance"],
        reg_id=row["reg_id"],
        q=row["q"],
        path=row["path"],
        contact_uri=row["contact_uri"],
    )


class BindingRepo:
    """Stored registrations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(
        self, changes: Iterable[Binding], removals: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Upsert `changes` and delete `removals` ((aor, contact_uri) pairs) in ONE transaction.

        Removals are applied first, so a key that is in both ends up saved (the
        live binding wins over a stale removal). Among changes, the last one per
        key wins.

        Raises:
            StoreError: the write failed; nothing of the batch is stored.
        """
        rows = [_row(binding) for binding in changes]
        keys = [(aor, contact_uri) for aor, contact_uri in removals]
        if not rows and not keys:
            return
        async with self._db.transaction() as conn:
            if keys:
                await conn.executemany(
                    "DELETE FROM bindings WHERE aor = ? AND contact_uri = ?", keys
                )
            if rows:
                await conn.executemany(_UPSERT, rows)

    async def all(self) -> list[Binding]:
        """Every stored binding (expired ones too until purged), by AOR and contact."""
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM bindings ORDER BY aor, contact_uri")
        return [_binding(row) for row in rows]

    async def for_aor(self, aor: str) -> list[Binding]:
        """The bindings of one AOR, by contact."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM bindings WHERE aor = ? ORDER BY contact_uri", (aor,)
        )
        return [_binding(row) for row in rows]

    async def purge_expired(self, now: float) -> int:
        """Delete the bindings whose `expires_at` <= `now`; return how many went."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            return cur.rowcount
