"""SIP users: username, display name, and HA1 digests of the password (never the password).

HA1 = H(username ":" realm ":" password), hex, for MD5 (RFC 2617/3261) and for
SHA-256 (RFC 7616 §3.4.2, RFC 8760 for SIP). The server authenticates with HA1
alone, so the password itself is needed only when it is set.

Realm rule (kept simple on purpose): an HA1 is only good for the realm it was
made with, so each user row records that realm, and the settings' `realm` is
the realm of the house. `add` and `set_password` refuse (ConfigError) a realm
different from the settings' realm; when the settings have no realm yet, the
first user's realm becomes it. If someone changes the settings' realm later,
`ha1_table` leaves out the users hashed under the old one until their password
is set again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import USER, claim
from pbx.store.settings import REALM_KEY
from pbx.users import check_display_name, check_password, check_username
from sip.digest import ha1


@dataclass(frozen=True, slots=True)
class User:
    """A SIP account as stored; `created` is a Unix time."""

    username: str
    display_name: str | None
    ha1_md5: str
    ha1_sha256: str
    created: float
    realm: str
    #: 'agent' (the default), 'supervisor' (may listen, whisper, barge) or 'admin'.
    role: str = "agent"


#: User roles (migration 14).
ROLES = ("agent", "supervisor", "admin")


def _user(row: sqlite3.Row) -> User:
    return User(
        username=row["username"],
        display_name=row["display_name"],
        ha1_md5=row["ha1_md5"],
        ha1_sha256=row["ha1_sha256"],
        created=row["created"],
        realm=row["realm"],
        role=row["role"],
    )


_COLUMNS = "username, display_name, realm, ha1_md5, ha1_sha256, created"
_READ = _COLUMNS + ", role"


async def _check_realm(conn: aiosqlite.Connection, realm: str) -> None:
    """Inside a transaction: accept `realm` if it is the house realm (or set it when unset).

    Raises:
        ConfigError: the realm is empty or differs from the settings' realm.
    """
    if not realm or any(c in realm for c in '"\\\r\n'):
        raise ConfigError(f"realm {realm!r} is empty or has a quote, backslash or newline")
    async with conn.execute("SELECT value FROM settings WHERE key = ?", (REALM_KEY,)) as cur:
        row = await cur.fetchone()
    if row is None:
        await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (REALM_KEY, realm))
    elif row[0] != realm:
        raise ConfigError(
            f"realm {realm!r} is not the server's realm {row[0]!r}; passwords are hashed per realm"
        )


@dataclass(frozen=True, slots=True)
class DeletedUser:
    """What `UserRepo.delete` removed besides the user: ring group memberships (and
    the groups left with no member), the files of the messages in its mailbox, and the
    ACD queues it was an agent of (its agent row goes too)."""

    username: str
    ring_groups: tuple[str, ...]
    empty_ring_groups: tuple[str, ...]
    voicemail_files: tuple[str, ...]
    queues: tuple[str, ...] = ()


class UserRepo:
    """Users and their HA1s."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self, username: str, password: str, realm: str, display_name: str | None = None
    ) -> User:
        """Create a user; the password is checked, hashed and forgotten.

        Raises:
            ConfigError: bad username, password or display name (pbx.users), or a realm
                other than the settings' realm.
            AlreadyExistsError: the username is taken, or its number belongs to something
                else (a ring group, an IVR menu, a feature code: see `numbering`).
        """
        check_username(username)
        check_password(password, username)
        display_name = check_display_name(display_name)
        user = User(
            username=username,
            display_name=display_name,
            ha1_md5=ha1(username, realm, password, "MD5"),
            ha1_sha256=ha1(username, realm, password, "SHA-256"),
            created=self._clock(),
            realm=realm,
        )
        async with self._db.transaction() as conn:
            await _check_realm(conn, realm)
            await claim(conn, username, ignore=(USER,))  # one numbering plan
            cur = await conn.execute(
                f"INSERT INTO users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (username) DO NOTHING",
                (username, display_name, realm, user.ha1_md5, user.ha1_sha256, user.created),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"user {username!r} already exists")
        return user

    async def get(self, username: str) -> User:
        """The user named `username`.

        Raises:
            NotFoundError: no such user.
        """
        row = await self._db.fetchone(f"SELECT {_READ} FROM users WHERE username = ?", (username,))
        if row is None:
            raise NotFoundError(f"no user {username!r}")
        return _user(row)

    async def list(self) -> list[User]:
        """Every user, by username."""
        rows = await self._db.fetchall(f"SELECT {_READ} FROM users ORDER BY username")
        return [_user(row) for row in rows]

    async def count(self) -> int:
        """How many users there are."""
        row = await self._db.fetchone("SELECT count(*) FROM users")
        return 0 if row is None else int(row[0])

    async def set_password(self, username: str, password: str, realm: str) -> User:
        """Replace a user's HA1s by those of a new password; return the updated user.

        Raises:
            ConfigError: bad password, or a realm other than the settings' realm.
            NotFoundError: no such user.
        """
        check_password(password, username)
        md5 = ha1(username, realm, password, "MD5")
        sha256 = ha1(username, realm, password, "SHA-256")
        async with self._db.transaction() as conn:
            await _check_realm(conn, realm)
            cur = await conn.execute(
                "UPDATE users SET realm = ?, ha1_md5 = ?, ha1_sha256 = ? WHERE username = ?",
                (realm, md5, sha256, username),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
            # The old password's web console logins end with it.
            await conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
            async with conn.execute(
                f"SELECT {_READ} FROM users WHERE username = ?", (username,)
            ) as sel:
                row = await sel.fetchone()
        assert row is not None  # updated in this very transaction
        return _user(row)

    async def delete(self, username: str) -> DeletedUser:
        """Delete a user, every registration of its address-of-record (named by the user),
        its membership in ring groups, and its mailbox rows (messages, PIN; by cascade).

        Returns what went with it: the caller removes (or keeps) the message files.

        Raises:
            NotFoundError: no such user.
        """
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT path FROM voicemails WHERE box = ? ORDER BY id", (username,)
            ) as sel:
                paths = tuple(str(r[0]) for r in await sel.fetchall())
            async with conn.execute(
                "SELECT DISTINCT number FROM ring_group_members WHERE member = ? ORDER BY number",
                (username,),
            ) as sel:
                groups = tuple(str(r[0]) for r in await sel.fetchall())
            async with conn.execute(
                "SELECT queue FROM queue_members WHERE agent = ? ORDER BY queue", (username,)
            ) as sel:
                queues = tuple(str(r[0]) for r in await sel.fetchall())
            # queue_members and agents rows go by ON DELETE CASCADE.
            cur = await conn.execute("DELETE FROM users WHERE username = ?", (username,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
            await conn.execute("DELETE FROM bindings WHERE aor = ?", (username,))
            await conn.execute("DELETE FROM ring_group_members WHERE member = ?", (username,))
            async with conn.execute(
                "SELECT number FROM ring_groups WHERE number NOT IN"
                " (SELECT number FROM ring_group_members) ORDER BY number"
            ) as sel:
                empty = tuple(str(r[0]) for r in await sel.fetchall() if str(r[0]) in groups)
        self._db.forget_cached()  # its forwarding went by cascade
        return DeletedUser(username, groups, empty, paths, queues)

    async def set_role(self, username: str, role: str) -> None:
        """Give a user a role (ROLES).

        Raises: ConfigError (an unknown role), NotFoundError (no such user).
        """
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: choose {', '.join(ROLES)}")
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE users SET role = ? WHERE username = ?", (role, username)
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")

    async def ha1_table(self) -> dict[str, tuple[str, str]]:
        """username -> (ha1_md5, ha1_sha256) for the server's in-memory auth cache.

        Only users hashed under the settings' realm are included (all users when the
        settings have no realm).
        """
        rows = await self._db.fetchall(
            "SELECT username, ha1_md5, ha1_sha256 FROM users WHERE realm ="
            " coalesce((SELECT value FROM settings WHERE key = ?), realm)",
            (REALM_KEY,),
        )
        return {str(row[0]): (str(row[1]), str(row[2])) for row in rows}
