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

__all__ = ["ID_CHARS", "SessionInfo", "WebSession", "WebSessionRepo", "token_hash"]

#: A session is named by this many leading hex digits of its token's hash: enough to
#: tell sessions apart, and no use for logging in (the token is what the cookie holds).
ID_CHARS = 16


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WebSession:
    username: str
    csrf: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session as listed (no token, no CSRF token)."""

    id: str
    username: str
    created: float
    expires: float

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "user": self.username, "created": self.created,
                "expires": self.expires}  # fmt: skip


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

    async def list(self, username: str | None = None) -> list[SessionInfo]:
        """The live sessions (of `username` only, when given), newest first."""
        where = "expires > ?"
        args: list[object] = [self._clock()]
        if username is not None:
            where += " AND username = ?"
            args.append(username)
        rows = await self._db.fetchall(
            f"SELECT token_hash, username, created, expires FROM web_sessions WHERE {where}"
            " ORDER BY created DESC",
            tuple(args),
        )
        return [SessionInfo(r[0][:ID_CHARS], r[1], r[2], r[3]) for r in rows]

    async def revoke(self, id_: str, username: str | None = None) -> str | None:
        """End the session named `id_` (of `username` only, when given); returns its
        token's hash, or None when there is no such session."""
        if len(id_) != ID_CHARS or any(c not in "0123456789abcdef" for c in id_):
            return None
        where = "substr(token_hash, 1, ?) = ?"
        args: list[object] = [ID_CHARS, id_]
        if username is not None:
            where += " AND username = ?"
            args.append(username)
        async with self._db.transaction() as conn:
            async with conn.execute(
                f"SELECT token_hash FROM web_sessions WHERE {where}", tuple(args)
            ) as cur:
                rows = list(await cur.fetchall())
            if len(rows) != 1:  # none, or (never seen) two sharing 64 bits
                return None
            await conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (rows[0][0],))
        return str(rows[0][0])

    async def revoke_user(self, username: str) -> int:
        """End every session of `username`; how many there were."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
            return cur.rowcount
