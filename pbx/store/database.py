"""The one SQLite connection of a store: opening it safely, pragmas, transactions.

Durability: WAL mode with synchronous=NORMAL. A transaction that returned from
COMMIT is in the WAL file, so it survives the process being killed (kill -9);
only a power loss or OS crash may lose the last few commits, which for
registrations and users is an acceptable trade for a write that does not wait
for fsync.

The write connection is shared by every repository of a `Store` and by concurrent
coroutines, so every use takes one asyncio lock: a coroutine's statements never
land inside another coroutine's transaction. Reads outside a transaction (`fetchall`,
`fetchone`) go through a second connection with its own lock: in WAL mode a reader
sees every committed transaction and never waits for the writer, so looking up a
forwarding while calls set up does not queue behind the CDR and queue-log writes
(each transaction holds the write lock across several trips to the worker thread).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from pbx.errors import StoreError

log = logging.getLogger(__name__)

# Milliseconds a statement waits for another process (the CLI, the server) to
# release its write lock before it fails with "database is locked".
BUSY_TIMEOUT_MS = 5000


def _prepare_file(path: Path) -> None:
    """Create the parent directory (0700) and the database file (0600) when missing.

    SQLite creates the -wal and -shm files with the mode of the database file,
    so they are private too.

    Raises:
        StoreError: the directory or the file cannot be created or chmod'ed.
    """
    parent = path.parent
    try:
        if not parent.is_dir():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            parent.chmod(0o700)  # mkdir's mode is filtered by the umask
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        path.chmod(0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror or exc}") from exc


class Database:
    """An aiosqlite connection in autocommit mode, used under one lock.

    Repositories call `transaction()` for writes and `fetchall()` for reads;
    every sqlite3 error leaves as a `StoreError`.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path
        self._reader: aiosqlite.Connection | None = None  # opened at the first read
        self._read_lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path) -> Database:
        """Open (creating when missing) the database at `path` with WAL and the house pragmas.

        Raises:
            StoreError: the file cannot be created, is not a database, or refuses WAL mode.
        """
        _prepare_file(path)
        conn = await _open(path)
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise StoreError(f"the database {path} refused WAL journal mode")
        except sqlite3.Error as exc:
            await conn.close()
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        except StoreError:
            await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        """Close the connections (waits for a running statement)."""
        async with self._read_lock:
            if self._reader is not None:
                await self._reader.close()
                self._reader = None
        async with self._lock:
            await self._conn.close()

    async def _read_conn(self) -> aiosqlite.Connection:
        """The reading connection (under `_read_lock`), opened at the first read."""
        if self._reader is None:
            self._reader = await _open(self.path)
        return self._reader

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the body in one write transaction (BEGIN IMMEDIATE … COMMIT).

        An exception in the body rolls back and propagates; an sqlite3 error
        becomes a `StoreError`. BEGIN IMMEDIATE takes the write lock at once, so
        a transaction that reads then writes cannot fail half-way on a lock.

        Raises:
            StoreError: the database is locked past the busy timeout or failed.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the database {self.path}: {exc}") from exc
            except asyncio.CancelledError:
                # The worker thread runs the BEGIN anyway; a ROLLBACK queued behind it
                # leaves the shared connection outside any transaction for the next user.
                await asyncio.shield(self._rollback())
                raise
            try:
                yield self._conn
            except BaseException as exc:
                # Not `if in_transaction`: a statement cancelled by the caller may still
                # be queued in the worker; the ROLLBACK runs after it.
                await asyncio.shield(self._rollback())
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database error in {self.path}: {exc}") from exc
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await asyncio.shield(self._rollback())
                raise StoreError(f"cannot commit to the database {self.path}: {exc}") from exc

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # "no transaction is active": the BEGIN itself had failed.
            log.debug("rollback in %s: %s", self.path, exc)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run one read statement outside any transaction and return every row.

        Raises:
            StoreError: the statement failed.
        """
        async with self._read_lock:
            try:
                reader = await self._read_conn()
                rows = await reader.execute_fetchall(sql, tuple(params))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the database {self.path}: {exc}") from exc
        return list(rows)

    async def fetchone_written(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """`fetchone` on the writing connection: for what is per connection, such as
        PRAGMA data_version (which moves when ANOTHER connection commits).

        Raises:
            StoreError: the statement failed.
        """
        async with self._lock:
            try:
                rows = await self._conn.execute_fetchall(sql, tuple(params))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the database {self.path}: {exc}") from exc
        rows = list(rows)
        return rows[0] if rows else None

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """Like `fetchall` but the first row or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


async def _open(path: Path) -> aiosqlite.Connection:
    """A connection in autocommit mode (isolation_level=None: no implicit transactions;
    we BEGIN and COMMIT ourselves) with rows by name and the busy timeout.

    Raises: StoreError.
    """
    try:
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        await conn.close()
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    return conn
