"""Voicemail: mailbox PINs and message rows (the audio itself is a WAV file).

A mailbox belongs to an extension (its number is the user name). Its PIN is never
stored: only a salted scrypt hash, checked in a worker thread so a PIN check does not
stall the event loop. A mailbox without a PIN takes messages but cannot be opened
from a phone until the admin sets one (`pbx vm pin`): no default passwords.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

import aiosqlite

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

FOLDERS = ("new", "old")
PIN_DIGITS = (4, 12)  # shortest and longest PIN accepted

# scrypt cost: ~30 ms a check on one core; a phone tries a PIN a few times a call.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Voicemail:
    """One message; `created` is Unix seconds, `duration` seconds of audio."""

    id: int
    box: str
    caller: str
    created: float
    duration: float
    path: str
    folder: str


_COLUMNS = "id, box, caller, created, duration, path, folder"
_MAX_ID = 2**63 - 1  # SQLite's INTEGER


def _message(row: sqlite3.Row) -> Voicemail:
    return Voicemail(*row)


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of a PIN."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        pin.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` hashes to `stored` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            pin.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def check_pin_format(pin: str) -> None:
    """Raises: ConfigError unless `pin` is 4 to 12 digits."""
    low, high = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise ConfigError(f"a voicemail PIN is {low} to {high} digits")


class VoicemailRepo:
    """Mailbox PINs and stored messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _require_user(self, conn: aiosqlite.Connection, box: str) -> None:
        cur = await conn.execute("SELECT 1 FROM users WHERE username = ?", (box,))
        if await cur.fetchone() is None:
            raise NotFoundError(f"no mailbox {box!r} (no such user)")

    async def set_pin(self, box: str, pin: str) -> None:
        """Raises: ConfigError for a PIN that is not 4–12 digits, NotFoundError for a box."""
        check_pin_format(pin)
        hashed = await asyncio.to_thread(hash_pin, pin)
        async with self._db.transaction() as conn:
            await self._require_user(conn, box)
            await conn.execute(
                "INSERT INTO mailboxes (box, pin_hash) VALUES (?, ?)"
                " ON CONFLICT (box) DO UPDATE SET pin_hash = excluded.pin_hash",
                (box, hashed),
            )

    async def has_pin(self, box: str) -> bool:
        row = await self._db.fetchone(
            "SELECT pin_hash FROM mailboxes WHERE box = ? AND pin_hash IS NOT NULL", (box,)
        )
        return row is not None

    async def check_pin(self, box: str, pin: str) -> bool:
        """Whether `pin` opens `box` (False for a box without a PIN)."""
        row = await self._db.fetchone("SELECT pin_hash FROM mailboxes WHERE box = ?", (box,))
        if row is None or row[0] is None:
            return False
        return await asyncio.to_thread(pin_matches, pin, str(row[0]))

    async def add(self, box: str, caller: str, created: float, duration: float, path: str) -> int:
        """Store a new message whose WAV is already on disk; returns its id.

        Raises: NotFoundError when the box's user no longer exists.
        """
        async with self._db.transaction() as conn:
            await self._require_user(conn, box)
            cur = await conn.execute(
                "INSERT INTO voicemails (box, caller, created, duration, path, folder)"
                " VALUES (?, ?, ?, ?, ?, 'new')",
                (box, caller, created, duration, path),
            )
            row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    async def messages(self, box: str | None = None, folder: str | None = None) -> list[Voicemail]:
        """Messages of one box (or all), new before old, oldest first within a folder."""
        where: list[str] = []
        params: list[str] = []
        if box is not None:
            where.append("box = ?")
            params.append(box)
        if folder is not None:
            where.append("folder = ?")
            params.append(folder)
        sql = f"SELECT {_COLUMNS} FROM voicemails"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY box, folder = 'old', created, id"
        return [_message(r) for r in await self._db.fetchall(sql, params)]

    async def get(self, message_id: int) -> Voicemail | None:
        if not 0 < message_id <= _MAX_ID:
            return None  # SQLite would raise OverflowError past 64 bits
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM voicemails WHERE id = ?", (message_id,)
        )
        return None if row is None else _message(row)

    async def counts(self, box: str) -> tuple[int, int]:
        """(new, old) message counts of a box: what MWI reports."""
        row = await self._db.fetchone(
            "SELECT coalesce(sum(folder = 'new'), 0), coalesce(sum(folder = 'old'), 0)"
            " FROM voicemails WHERE box = ?",
            (box,),
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def move(self, message_id: int, folder: str) -> bool:
        """File a message as new or old; True when it exists."""
        if not 0 < message_id <= _MAX_ID:
            return False
        if folder not in FOLDERS:
            raise ConfigError(f"folder {folder!r}: choose {' or '.join(FOLDERS)}")
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE voicemails SET folder = ? WHERE id = ?", (folder, message_id)
            )
            return cur.rowcount > 0

    async def delete(self, message_id: int) -> Voicemail | None:
        """Remove a message's row; returns it (its file is the caller's to remove)."""
        if not 0 < message_id <= _MAX_ID:
            return None
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                f"DELETE FROM voicemails WHERE id = ? RETURNING {_COLUMNS}", (message_id,)
            )
            row = await cur.fetchone()
        return None if row is None else _message(row)
