"""One numbering plan: who owns number N, across every table that hands out numbers.

A caller dials one number; the switch must find one meaning for it. Users
(extensions and their mailboxes), ring groups, conference rooms, IVR menus and
schedules (the numbers in the stored IVR document) and the feature codes built into
the switch (`*97`/`*98` mailbox access, `*1` record on demand) share one namespace;
ACD queues (their `number`) too; a new kind joins by adding a row to `_TABLES`.
DIDs are not in it: they are the provider's numbers, looked up only for calls from
a trunk (pbx/store/dids.py), so DID 1001 may lead to extension 1001. Adding or
importing a number checks here first and is refused with one line naming the owner.

The IVR document is TOML that only `ivr/` interprets; this module reads just
the `number` of each `[[menu]]` and `[[schedule]]` (tolerating anything else).
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass

import aiosqlite

from pbx.errors import AlreadyExistsError
from pbx.store.database import Database

USER = "user"
RING_GROUP = "ring group"
IVR_MENU = "IVR menu"
IVR_SCHEDULE = "IVR schedule"
FEATURE = "feature code"
CONFERENCE = "conference room"
QUEUE = "queue"
IVR_KINDS = frozenset({IVR_MENU, IVR_SCHEDULE})

#: Numbers the switch answers itself (ivr/voicemail.py, pbx/bridge.py, acd/): what each does.
FEATURE_CODES: dict[str, str] = {
    "*97": "own mailbox",
    "*98": "any mailbox",
    "*1": "record on demand",
    # The ACD (acd/): agents log in, out and pause; supervisors dial the code then the
    # agent's number (*2221001) to listen, whisper or barge in.
    "*50": "agent login",
    "*51": "agent logout",
    "*52": "agent pause/unpause",
    "*222": "listen to an agent",
    "*223": "whisper to an agent",
    "*224": "barge in on an agent",
}

#: Tables whose rows own a number: (table, number column, name column, kind).
_TABLES: tuple[tuple[str, str, str, str], ...] = (
    ("users", "username", "username", USER),
    ("ring_groups", "number", "number", RING_GROUP),
    ("conferences", "number", "number", CONFERENCE),
    ("queues", "number", "name", QUEUE),
)


@dataclass(frozen=True, slots=True)
class Owner:
    """What a number belongs to: its kind and the owner's name (a menu's name ...)."""

    kind: str
    name: str
    number: str

    def __str__(self) -> str:
        if self.kind == FEATURE:
            return f"feature code {self.number} ({self.name})"
        if self.kind in IVR_KINDS or self.kind == QUEUE:
            return f"{self.kind} {self.name!r}"
        return f"{self.kind} {self.name}"


def ivr_numbers(text: str) -> list[Owner]:
    """The numbered menus and schedules of an IVR TOML document (none if unreadable)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    owners: list[Owner] = []
    for key, kind in (("menu", IVR_MENU), ("schedule", IVR_SCHEDULE)):
        entries = doc.get(key, [])
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("number"), str):
                owners.append(Owner(kind, str(entry.get("name", "?")), entry["number"]))
    return owners


async def owner_in(
    conn: aiosqlite.Connection, number: str, ignore: Collection[str] = ()
) -> Owner | None:
    """Who owns `number` (kinds in `ignore` left out), read through `conn` (e.g. inside
    the transaction that is about to take the number)."""
    if number in FEATURE_CODES and FEATURE not in ignore:
        return Owner(FEATURE, FEATURE_CODES[number], number)
    for table, column, name, kind in _TABLES:
        if kind in ignore:
            continue
        async with conn.execute(f"SELECT {name} FROM {table} WHERE {column} = ?", (number,)) as cur:
            row = await cur.fetchone()
        if row is not None:
            return Owner(kind, str(row[0]), number)
    if not set(ignore) >= IVR_KINDS:
        async with conn.execute("SELECT body FROM ivr_config WHERE id = 1") as cur:
            row = await cur.fetchone()
        for owner in ivr_numbers(str(row[0]) if row is not None else ""):
            if owner.number == number and owner.kind not in ignore:
                return owner
    return None


async def claim(conn: aiosqlite.Connection, number: str, ignore: Collection[str] = ()) -> None:
    """Inside a transaction: make sure `number` is free before it is taken.

    Raises:
        AlreadyExistsError: one line naming the owner.
    """
    owner = await owner_in(conn, number, ignore)
    if owner is not None:
        raise AlreadyExistsError(f"number {number} is already taken by {owner}")


class NumberingPlan:
    """Read side of the numbering plan (the repositories call `claim` when they write)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def owner(self, number: str, ignore: Collection[str] = ()) -> Owner | None:
        """Who owns `number`, or None when it is free."""
        async with self._db.transaction() as conn:
            return await owner_in(conn, number, ignore)

    async def check_free(self, numbers: Collection[str], ignore: Collection[str] = ()) -> None:
        """Raises: AlreadyExistsError naming the owner of the first taken number."""
        async with self._db.transaction() as conn:
            for number in numbers:
                await claim(conn, number, ignore)
