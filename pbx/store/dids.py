"""Inbound DIDs: the numbers a provider's calls are addressed to, and what each reaches.

A DID is matched exactly as the provider sends it (the Request-URI or To user): 1 to 32
digits with an optional leading `+`. Nothing is normalised: `+4930123456` and
`04930123456` are two DIDs (add both when a provider sends either form). Its target is one
of

    ext:1001            ring extension 1001 (its every phone, its forwarding followed)
    group:600           ring group 600
    ivr:MENU            the IVR menu or time condition named or numbered MENU (it must have
                        a number in the IVR document: calls reach menus by their number)
    conf:8000           conference room 8000
    vm:1001             straight into mailbox 1001 (an extension's)
    trunk:NAME/NUMBER   dial NUMBER through trunk NAME (passing a call on to another site)
    queue:NAME          ACD queue NAME (the call goes to the queue's number, served by the
                        ACD application; without one it is refused 404)

each checked to exist when the DID is added (one line naming what is missing). DIDs are
their own namespace: only calls from trunks look them up, so DID 1001 and extension 1001
do not collide.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import IVR_KINDS, Owner, ivr_numbers

__all__ = ["KINDS", "Did", "DidRepo", "Target", "check_did", "ivr_owner"]

#: The target kinds, in the order the help text names them.
KINDS = ("ext", "group", "ivr", "conf", "vm", "trunk", "queue")

_DID = re.compile(r"\+?[0-9]{1,32}")
#: A number dialled through a trunk (what outbound routes send: digits, + * #).
_DIAL = re.compile(r"\+?[0-9*#]{1,32}")
_NAME = re.compile(r"[A-Za-z0-9_+*#][A-Za-z0-9_.+*#-]{0,63}")
MAX_TARGET = 128


def check_did(number: str) -> str:
    """`number` when it is a valid DID.

    Raises: ConfigError saying what is accepted.
    """
    if not _DID.fullmatch(number):
        raise ConfigError(
            f"DID {number!r}: give 1 to 32 digits with an optional leading + (matched "
            "exactly as the provider sends it; nothing is rewritten)"
        )
    return number


@dataclass(frozen=True, slots=True)
class Target:
    """Where a DID leads: `kind` (one of KINDS), `name` (the user, group or room number,
    IVR menu name or number, or trunk name) and, for a trunk, the `number` to dial."""

    kind: str
    name: str
    number: str = ""

    def __str__(self) -> str:
        if self.kind == "trunk":
            return f"trunk:{self.name}/{self.number}"
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """Read `kind:name` (`trunk:NAME/NUMBER`).

        Raises: ConfigError with one line saying what is wrong.
        """
        usage = (
            f"target {text!r}: use ext:USER, group:NUMBER, ivr:MENU, conf:NUMBER, vm:BOX"
            ", trunk:NAME/NUMBER or queue:NAME"
        )
        if len(text) > MAX_TARGET or ":" not in text:
            raise ConfigError(usage)
        kind, _, rest = text.partition(":")
        if kind not in KINDS:
            raise ConfigError(usage)
        if kind == "trunk":
            name, slash, number = rest.partition("/")
            if not slash or not _NAME.fullmatch(name) or not _DIAL.fullmatch(number):
                raise ConfigError(f"target {text!r}: use trunk:NAME/NUMBER (NUMBER: digits, + * #)")
            return cls(kind, name, number)
        if not _NAME.fullmatch(rest):
            raise ConfigError(f"target {text!r}: {rest!r} is not a valid {kind} name or number")
        return cls(kind, rest)


@dataclass(frozen=True, slots=True)
class Did:
    """One stored DID; `target` as stored (see `Target.parse`); `created` a Unix time."""

    number: str
    target: str
    created: float = 0.0


def ivr_owner(document: str, menu: str) -> Owner | None:
    """The numbered IVR menu or schedule named or numbered `menu` in the IVR document."""
    owners = ivr_numbers(document)
    for owner in owners:  # a name first: "ivr:main" means the menu called main
        if owner.name == menu:
            return owner
    for owner in owners:
        if owner.number == menu:
            return owner
    return None


async def _exists(conn: aiosqlite.Connection, sql: str, value: str) -> bool:
    async with conn.execute(sql, (value,)) as cur:
        return await cur.fetchone() is not None


async def _check_target(conn: aiosqlite.Connection, target: Target) -> None:
    """Raises: NotFoundError naming what `target` names and is not there."""
    kind, name = target.kind, target.name
    if kind in ("ext", "vm"):
        if not await _exists(conn, "SELECT 1 FROM users WHERE username = ?", name):
            what = "extension" if kind == "ext" else "mailbox (an extension's)"
            raise NotFoundError(f"no {what} {name!r}")
    elif kind == "group":
        if not await _exists(conn, "SELECT 1 FROM ring_groups WHERE number = ?", name):
            raise NotFoundError(f"no ring group {name!r}")
    elif kind == "conf":
        if not await _exists(conn, "SELECT 1 FROM conferences WHERE number = ?", name):
            raise NotFoundError(f"no conference room {name!r}")
    elif kind == "trunk":
        if not await _exists(conn, "SELECT 1 FROM trunks WHERE name = ?", name):
            raise NotFoundError(f"no trunk {name!r}")
    elif kind == "queue":
        if not await _exists(conn, "SELECT 1 FROM queues WHERE name = ?", name):
            raise NotFoundError(f"no queue {name!r}")
    elif kind == "ivr":
        async with conn.execute("SELECT body FROM ivr_config WHERE id = 1") as cur:
            row = await cur.fetchone()
        if ivr_owner(str(row[0]) if row is not None else "", name) is None:
            raise NotFoundError(
                f"no IVR menu or schedule named or numbered {name!r} with a number "
                "(calls reach a menu by its number: give it one in the IVR document)"
            )


def _did(row: sqlite3.Row) -> Did:
    return Did(str(row[0]), str(row[1]), float(row[2]))


class DidRepo:
    """The dids table (migration 11)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, number: str, target: str) -> Did:
        """Store DID `number` leading to `target`, which must exist now.

        Raises: ConfigError (a malformed number or target), NotFoundError (the extension,
            group, menu, room, mailbox or trunk named does not exist), AlreadyExistsError.
        """
        check_did(number)
        parsed = Target.parse(target)
        did = Did(number, str(parsed), self._clock())
        async with self._db.transaction() as conn:
            await _check_target(conn, parsed)
            cur = await conn.execute(
                "INSERT INTO dids (number, target, created) VALUES (?, ?, ?)"
                " ON CONFLICT (number) DO NOTHING",
                (did.number, did.target, did.created),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"DID {number} already exists")
        return did

    async def get(self, number: str) -> Did | None:
        """DID `number`, or None."""
        row = await self._db.fetchone(
            "SELECT number, target, created FROM dids WHERE number = ?", (number,)
        )
        return None if row is None else _did(row)

    async def all(self) -> list[Did]:
        """Every DID, by number."""
        rows = await self._db.fetchall("SELECT number, target, created FROM dids ORDER BY number")
        return [_did(row) for row in rows]

    async def pointing_at(self, kind: str, name: str) -> list[str]:
        """The DIDs whose target is `kind:name` (e.g. the DIDs of extension 1001)."""
        rows = await self._db.fetchall(
            "SELECT number FROM dids WHERE target = ? ORDER BY number", (f"{kind}:{name}",)
        )
        return [str(r[0]) for r in rows]

    async def delete(self, number: str) -> None:
        """Raises: NotFoundError."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM dids WHERE number = ?", (number,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no DID {number!r}")

    async def queue_number(self, name: str) -> str | None:
        """The number of ACD queue `name` now, or None when there is no such queue."""
        row = await self._db.fetchone("SELECT number FROM queues WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    async def ivr_number(self, menu: str) -> str | None:
        """The number that reaches IVR menu (or schedule) `menu` now (named or numbered
        so), or None when the IVR document no longer has it numbered."""
        row = await self._db.fetchone("SELECT body FROM ivr_config WHERE id = 1")
        owner = ivr_owner(str(row[0]) if row is not None else "", menu)
        return owner.number if owner is not None and owner.kind in IVR_KINDS else None
