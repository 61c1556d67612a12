"""Dialplan data: call forwarding per extension and ring groups.

Read per call by the B2BUA, so `pbx user forward` and `pbx ringgroup …` take
effect on the next call without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import claim

STRATEGIES = ("all", "sequential")
RECORDING_MODES = ("always", "never", "on_demand")


@dataclass(frozen=True, slots=True)
class Forwarding:
    """Where an extension's calls go instead: always, when busy, when unanswered."""

    username: str
    always: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    no_answer_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class RingGroup:
    """A number that rings `members` all at once or one after another."""

    number: str
    members: tuple[str, ...]
    strategy: str = "all"
    ring_seconds: float = 20.0
    name: str | None = None


class DialplanRepo:
    """Forwarding settings and ring groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def forwarding(self, username: str) -> Forwarding:
        """The extension's forwarding (all None when nothing is set)."""
        row = await self._db.fetchone(
            "SELECT username, always, busy, no_answer, no_answer_seconds FROM forwards"
            " WHERE username = ?",
            (username,),
        )
        return Forwarding(*row) if row is not None else Forwarding(username)

    async def set_forwarding(self, forwarding: Forwarding) -> None:
        """Store an extension's forwarding.

        Raises: NotFoundError for an unknown user; ConfigError for a bad value.
        """
        if forwarding.no_answer_seconds <= 0:
            raise ConfigError("the no-answer time must be more than 0 seconds")
        for target in (forwarding.always, forwarding.busy, forwarding.no_answer):
            if target is not None and target == forwarding.username:
                raise ConfigError(f"{forwarding.username} cannot forward to itself")
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM users WHERE username = ?", (forwarding.username,)
            )
            if await cur.fetchone() is None:
                raise NotFoundError(f"no user {forwarding.username!r}")
            await conn.execute(
                "INSERT INTO forwards (username, always, busy, no_answer, no_answer_seconds)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET"
                " always = excluded.always, busy = excluded.busy,"
                " no_answer = excluded.no_answer,"
                " no_answer_seconds = excluded.no_answer_seconds",
                (
                    forwarding.username,
                    forwarding.always,
                    forwarding.busy,
                    forwarding.no_answer,
                    forwarding.no_answer_seconds,
                ),
            )

    async def forwarding_to(self, number: str) -> list[str]:
        """The extensions whose calls are forwarded (in any case) to `number`."""
        rows = await self._db.fetchall(
            "SELECT username FROM forwards WHERE ? IN (always, busy, no_answer) ORDER BY username",
            (number,),
        )
        return [str(r[0]) for r in rows]

    async def recording_mode(self, username: str) -> str:
        """'always', 'on_demand' or 'never' (the default) for an extension's calls."""
        row = await self._db.fetchone(
            "SELECT mode FROM recording_modes WHERE username = ?", (username,)
        )
        return str(row[0]) if row is not None else "never"

    async def set_recording_mode(self, username: str, mode: str) -> None:
        """Raises: ConfigError for a mode not in RECORDING_MODES, NotFoundError for a user."""
        if mode not in RECORDING_MODES:
            raise ConfigError(f"recording mode {mode!r}: choose {', '.join(RECORDING_MODES)}")
        async with self._db.transaction() as conn:
            cur = await conn.execute("SELECT 1 FROM users WHERE username = ?", (username,))
            if await cur.fetchone() is None:
                raise NotFoundError(f"no user {username!r}")
            await conn.execute(
                "INSERT INTO recording_modes (username, mode) VALUES (?, ?)"
                " ON CONFLICT (username) DO UPDATE SET mode = excluded.mode",
                (username, mode),
            )

    async def add_ring_group(self, group: RingGroup) -> None:
        """Create a ring group.

        Raises: AlreadyExistsError (the number is taken: a user, group, IVR menu ...),
        ConfigError (no members, bad strategy or time).
        """
        if group.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {group.strategy!r}: choose {' or '.join(STRATEGIES)}")
        if not group.members:
            raise ConfigError("a ring group needs at least one member")
        if group.ring_seconds <= 0:
            raise ConfigError("the ring time must be more than 0 seconds")
        async with self._db.transaction() as conn:
            await claim(conn, group.number)  # one numbering plan: users, menus, codes ...
            await conn.execute(
                "INSERT INTO ring_groups (number, name, strategy, ring_seconds)"
                " VALUES (?, ?, ?, ?)",
                (group.number, group.name, group.strategy, group.ring_seconds),
            )
            await conn.executemany(
                "INSERT INTO ring_group_members (number, position, member) VALUES (?, ?, ?)",
                [(group.number, i, m) for i, m in enumerate(group.members)],
            )

    async def ring_group(self, number: str) -> RingGroup | None:
        row = await self._db.fetchone(
            "SELECT number, name, strategy, ring_seconds FROM ring_groups WHERE number = ?",
            (number,),
        )
        if row is None:
            return None
        members = await self._db.fetchall(
            "SELECT member FROM ring_group_members WHERE number = ? ORDER BY position",
            (number,),
        )
        return RingGroup(row[0], tuple(m[0] for m in members), row[2], row[3], row[1])

    async def ring_groups(self) -> list[RingGroup]:
        numbers = await self._db.fetchall("SELECT number FROM ring_groups ORDER BY number")
        groups = [await self.ring_group(n[0]) for n in numbers]
        return [g for g in groups if g is not None]

    async def delete_ring_group(self, number: str) -> None:
        """Raises: NotFoundError."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM ring_groups WHERE number = ?", (number,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no ring group {number!r}")


def members_of(text: Sequence[str]) -> tuple[str, ...]:
    """Members from CLI text ("1001,1002" pieces), in order, without repeats or blanks."""
    seen: list[str] = []
    for piece in text:
        for member in piece.split(","):
            member = member.strip()
            if member and member not in seen:
                seen.append(member)
    return tuple(seen)
