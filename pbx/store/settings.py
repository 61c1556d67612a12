"""Key/value settings kept in the database (text values).

The server keeps there what must not change under its feet between runs:
the SIP digest `realm` (every stored HA1 depends on it) and the control API
`secret` that CLI commands present to the running server.
"""

from __future__ import annotations

from pbx.store.database import Database

REALM_KEY = "realm"
SECRET_KEY = "secret"


class SettingsRepo:
    """Text settings by key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when it is not set."""
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set(self, key: str, value: str) -> None:
        """Set `key` to `value`, replacing any value.

        Changing `realm` makes every user's stored HA1 useless until their
        password is set again: `UserRepo.ha1_table` leaves such users out.
        """
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def set_default(self, key: str, value: str) -> str:
        """Set `key` to `value` only when it is unset; return the value in effect."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )
            async with conn.execute("SELECT value FROM settings WHERE key = ?", (key,)) as cur:
                row = await cur.fetchone()
        assert row is not None  # inserted or already there, in this very transaction
        return str(row[0])

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it was set."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            return cur.rowcount > 0

    async def items(self) -> dict[str, str]:
        """Every setting, by key."""
        rows = await self._db.fetchall("SELECT key, value FROM settings ORDER BY key")
        return {str(row[0]): str(row[1]) for row in rows}
