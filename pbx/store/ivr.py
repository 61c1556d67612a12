"""IVR configuration: one TOML document, stored whole.

The switch never interprets it (`pbx/` does not import `ivr/`): `ivr.menu`
validates the text before `put` and parses it after `get`. An import replaces
the whole document in one transaction, so the running server reads either the
old configuration or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from pbx.errors import NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import IVR_KINDS, claim
from pbx.store.targets import (
    check_queue_target,
    check_trunk_target,
    ivr_queue_targets,
    ivr_trunk_targets,
)


class IvrRepo:
    """The IVR configuration document (TOML text)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def get(self) -> str:
        """The stored TOML text, or "" when none is stored (kept in memory: read by
        every call; see `Database.cached`)."""
        return await self._db.cached(("ivr",), self._load)

    async def _load(self) -> str:
        row = await self._db.fetchone("SELECT body FROM ivr_config WHERE id = 1")
        return "" if row is None else str(row[0])

    async def updated(self) -> float | None:
        """When the document was last replaced (clock time), or None when none is stored."""
        row = await self._db.fetchone("SELECT updated FROM ivr_config WHERE id = 1")
        return None if row is None else float(row[0])

    async def put(self, text: str, numbers: Collection[str] = ()) -> None:
        """Replace the whole document with `text` (validate it first: see `ivr.menu`).

        `numbers` are the ones its menus and schedules answer: each must be free in the
        numbering plan (the IVR's own old numbers do not count: they are replaced).

        Its `trunk:NAME/NUMBER` actions must name configured trunks, its `queue:NAME`
        actions existing queues.

        Raises:
            AlreadyExistsError: a number belongs to a user, ring group or feature code.
            NotFoundError: an action names a trunk or queue that does not exist.
            StoreError: the database could not be written.
        """
        async with self._db.transaction() as conn:
            for number in numbers:
                await claim(conn, number, ignore=IVR_KINDS)
            for where, target in ivr_trunk_targets(text):
                try:
                    await check_trunk_target(conn, target)
                except NotFoundError as exc:
                    raise NotFoundError(f"{where}: {exc}") from None
            for where, queue in ivr_queue_targets(text):
                try:
                    await check_queue_target(conn, queue)
                except NotFoundError as exc:
                    raise NotFoundError(f"{where}: {exc}") from None
            await conn.execute(
                "INSERT INTO ivr_config (id, body, updated) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated = excluded.updated",
                (text, self._clock()),
            )
        self._db.forget_cached()  # after the commit: a read now sees the new text

    async def clear(self) -> bool:
        """Remove the document; True when there was one."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM ivr_config WHERE id = 1")
            removed = cur.rowcount > 0
        self._db.forget_cached()
        return removed
