"""Conference rooms: a number callers dial, an optional PIN and a member limit.

The number is in the switch's one numbering plan (`pbx.store.numbering`): a room cannot
take an extension's, a ring group's or an IVR menu's number, nor they a room's. The PIN
is never stored: only its salted scrypt hash, as a mailbox's (`pbx.store.voicemail`),
checked in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import claim
from pbx.store.voicemail import PIN_DIGITS, hash_pin, pin_matches

MAX_MEMBERS = 50
"""The most members a room may be configured for (the mixer's benchmark size)."""


@dataclass(frozen=True, slots=True)
class ConferenceRoom:
    """A room's settings; `has_pin` only says whether callers are asked for one."""

    number: str
    has_pin: bool
    max_members: int


def check_room(number: str, pin: str | None, max_members: int) -> None:
    """Raises: ConfigError for a number that is not digits, a PIN that is not 4 to 12
    digits, or a limit outside 2..`MAX_MEMBERS`."""
    if not (number.isascii() and number.isdigit() and 1 <= len(number) <= 20):
        raise ConfigError(f"a conference number is 1 to 20 digits, not {number!r}")
    low, high = PIN_DIGITS
    if pin is not None and not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise ConfigError(f"a conference PIN is {low} to {high} digits")
    if not 2 <= max_members <= MAX_MEMBERS:
        raise ConfigError(f"a conference holds 2 to {MAX_MEMBERS} members")


class ConferenceRepo:
    """The conference rooms."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, number: str, *, pin: str | None = None, max_members: int = 10) -> None:
        """Create room `number`.

        Raises: ConfigError for a bad value (`check_room`); AlreadyExistsError when the
            number is taken (by a room or anything else of the numbering plan).
        """
        check_room(number, pin, max_members)
        hashed = await asyncio.to_thread(hash_pin, pin) if pin is not None else None
        async with self._db.transaction() as conn:
            await claim(conn, number)
            await conn.execute(
                "INSERT INTO conferences (number, pin_hash, max_members) VALUES (?, ?, ?)",
                (number, hashed, max_members),
            )
        self._db.forget_cached()

    async def get(self, number: str) -> ConferenceRoom | None:
        """Room `number`, or None (kept in memory: asked for every call's number; see
        `Database.cached`)."""
        return await self._db.cached(("conference", number), lambda: self._load(number))

    async def _load(self, number: str) -> ConferenceRoom | None:
        row = await self._db.fetchone(
            "SELECT number, pin_hash IS NOT NULL, max_members FROM conferences WHERE number = ?",
            (number,),
        )
        return None if row is None else ConferenceRoom(str(row[0]), bool(row[1]), int(row[2]))

    async def list(self) -> list[ConferenceRoom]:
        """Every room, by number."""
        rows = await self._db.fetchall(
            "SELECT number, pin_hash IS NOT NULL, max_members FROM conferences ORDER BY number"
        )
        return [ConferenceRoom(str(r[0]), bool(r[1]), int(r[2])) for r in rows]

    async def check_pin(self, number: str, pin: str) -> bool:
        """Whether `pin` opens room `number` (True for a room without a PIN)."""
        row = await self._db.fetchone(
            "SELECT pin_hash FROM conferences WHERE number = ?", (number,)
        )
        if row is None:
            return False
        if row[0] is None:
            return True
        return await asyncio.to_thread(pin_matches, pin, str(row[0]))

    async def remove(self, number: str) -> None:
        """Delete room `number`. Raises: NotFoundError when there is none."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM conferences WHERE number = ?", (number,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no conference room {number}")
        self._db.forget_cached()
