"""Web console sessions: a random token in the browser's cookie, its SHA-256 here.

Only the hash is stored, so reading the database gives no live session. Each session
carries its own CSRF token (sent back by the page in a header or form field on every
state-changing request) and ends at `expires`, or at logout, or with its user.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from pbx.store.database import Database

__all__ = ["WebSession", "WebSessionRepo", "token_hash"]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WebSession:
    username: str
    csrf: str
    created: float
    expires: float


class WebSessionRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, token: str, username: str, csrf: str, seconds: float) -> WebSession:
        """Store a session for `token` lasting `seconds`; expired sessions are purged."""
        now = self._clock()
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM web_sessions WHERE expires <= ?", (now,))
            await conn.execute(
                "INSERT INTO web_sessions (token_hash, username, csrf, created, expires)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), username, csrf, now, now + seconds),
            )
        return WebSession(username, csrf, now, now + seconds)

    async def get(self, token: str) -> WebSession | None:
        """The live session of `token` (None: unknown or expired)."""
        row = await self._db.fetchone(
            "SELECT username, csrf, created, expires FROM web_sessions"
            " WHERE token_hash = ? AND expires > ?",
            (token_hash(token), self._clock()),
        )
        return None if row is None else WebSession(row[0], row[1], row[2], row[3])

    async def delete(self, token: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM web_sessions WHERE token_hash = ?", (token_hash(token),)
            )
