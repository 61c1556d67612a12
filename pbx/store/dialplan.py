"""Dialplan data: call forwarding per extension and ring groups.

Read per call by the B2BUA, so `pbx user forward` and `pbx ringgroup …` take
effect on the next call without a restart.

A ring group's overflow (migration 12) is where its call goes when no member answers
(all busy, no answer within the ring time, none registered): an extension or ring
group, `vm:BOX`, or `trunk:NAME/NUMBER` (`pbx.store.targets`). The B2BUA follows it
like the group's busy and no-answer forwarding. Forwarding targets may be
`trunk:NAME/NUMBER` and `vm:BOX` too; both are checked when they are written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.numbering import RING_GROUP, USER, claim, owner_in
from pbx.store.targets import (
    check_queue_target,
    check_trunk_target,
    mailbox_of,
    parse_trunk_target,
    queue_of,
)

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
    #: Where the call goes when no member answers (None: the caller hears the failure).
    overflow: str | None = None


class DialplanRepo:
    """Forwarding settings and ring groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def forwarding(self, username: str) -> Forwarding:
        """The extension's forwarding (all None when nothing is set; kept in memory:
        read for every call to it, see `Database.cached`)."""
        return await self._db.cached(("forwarding", username), lambda: self._load(username))

    async def _load(self, username: str) -> Forwarding:
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
            for target in (forwarding.always, forwarding.busy, forwarding.no_answer):
                if target is not None:
                    await _check_special_target(conn, target)
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
        self._db.forget_cached()

    async def forwarding_to(self, number: str) -> list[str]:
        """The extensions whose calls are forwarded (in any case) to `number` or its
        mailbox (`vm:NUMBER`)."""
        rows = await self._db.fetchall(
            "SELECT username FROM forwards WHERE ? IN (always, busy, no_answer)"
            " OR ? IN (always, busy, no_answer) ORDER BY username",
            (number, f"vm:{number}"),
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
        ConfigError (no members, bad strategy, time or overflow), NotFoundError (the
        overflow names an unknown number, mailbox or trunk).
        """
        _check_group(group)
        async with self._db.transaction() as conn:
            await claim(conn, group.number)  # one numbering plan: users, menus, codes ...
            if group.overflow is not None:
                await _check_overflow(conn, group.number, group.overflow)
            await conn.execute(
                "INSERT INTO ring_groups (number, name, strategy, ring_seconds, overflow)"
                " VALUES (?, ?, ?, ?, ?)",
                (group.number, group.name, group.strategy, group.ring_seconds, group.overflow),
            )
            await conn.executemany(
                "INSERT INTO ring_group_members (number, position, member) VALUES (?, ?, ?)",
                [(group.number, i, m) for i, m in enumerate(group.members)],
            )

    async def update_ring_group(self, number: str, **changes: object) -> RingGroup:
        """Change some fields of a ring group (names as in `RingGroup`, not `number`;
        `overflow=None` removes the overflow); returns the group as stored.

        Raises: NotFoundError (no such group; an unknown overflow target), ConfigError
        (an unknown field name, or a value `add_ring_group` would refuse).
        """
        fields = {f.name for f in dataclasses.fields(RingGroup)} - {"number"}
        unknown = set(changes) - fields
        if unknown:
            raise ConfigError(f"unknown ring group field(s): {', '.join(sorted(unknown))}")
        async with self._db.transaction() as conn:
            current = await _ring_group_in(conn, number)
            if current is None:
                raise NotFoundError(f"no ring group {number!r}")
            group = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
            _check_group(group)
            if group.overflow is not None and group.overflow != current.overflow:
                await _check_overflow(conn, group.number, group.overflow)
            await conn.execute(
                "UPDATE ring_groups SET name = ?, strategy = ?, ring_seconds = ?, overflow = ?"
                " WHERE number = ?",
                (group.name, group.strategy, group.ring_seconds, group.overflow, number),
            )
            if group.members != current.members:
                await conn.execute("DELETE FROM ring_group_members WHERE number = ?", (number,))
                await conn.executemany(
                    "INSERT INTO ring_group_members (number, position, member) VALUES (?, ?, ?)",
                    [(number, i, m) for i, m in enumerate(group.members)],
                )
        return group

    async def ring_group(self, number: str) -> RingGroup | None:
        row = await self._db.fetchone(
            f"SELECT {_GROUP} FROM ring_groups WHERE number = ?", (number,)
        )
        if row is None:
            return None
        members = await self._db.fetchall(
            "SELECT member FROM ring_group_members WHERE number = ? ORDER BY position",
            (number,),
        )
        return _group(row, members)

    async def overflowing_to(self, number: str) -> list[str]:
        """The ring groups whose overflow is `number` (or `vm:NUMBER`)."""
        rows = await self._db.fetchall(
            "SELECT number FROM ring_groups WHERE overflow IN (?, ?) ORDER BY number",
            (number, f"vm:{number}"),
        )
        return [str(r[0]) for r in rows]

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


def _check_group(group: RingGroup) -> None:
    """Raises: ConfigError for a bad strategy, no members or a bad ring time."""
    if group.strategy not in STRATEGIES:
        raise ConfigError(f"strategy {group.strategy!r}: choose {' or '.join(STRATEGIES)}")
    if not group.members:
        raise ConfigError("a ring group needs at least one member")
    if group.ring_seconds <= 0:
        raise ConfigError("the ring time must be more than 0 seconds")


_GROUP = "number, name, strategy, ring_seconds, overflow"


def _group(row: Sequence[Any], members: Iterable[Sequence[Any]]) -> RingGroup:
    number, name, strategy, ring_seconds, overflow = row
    return RingGroup(
        number, tuple(str(m[0]) for m in members), strategy, ring_seconds, name, overflow
    )


async def _ring_group_in(conn: aiosqlite.Connection, number: str) -> RingGroup | None:
    """`DialplanRepo.ring_group` inside a transaction."""
    async with conn.execute(f"SELECT {_GROUP} FROM ring_groups WHERE number = ?", (number,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    async with conn.execute(
        "SELECT member FROM ring_group_members WHERE number = ? ORDER BY position", (number,)
    ) as cur:
        return _group(tuple(row), await cur.fetchall())


async def _check_special_target(conn: aiosqlite.Connection, target: str) -> bool:
    """Inside a transaction: check a `trunk:NAME/NUMBER`, `vm:BOX` or `queue:NAME` target;
    False when `target` is none of them (a plain number).

    Raises: ConfigError (malformed), NotFoundError (no such trunk, mailbox or queue).
    """
    queue = queue_of(target)
    if queue is not None:
        await check_queue_target(conn, queue)
        return True
    trunk = parse_trunk_target(target)
    if trunk is not None:
        await check_trunk_target(conn, trunk)
        return True
    box = mailbox_of(target)
    if box is not None:
        async with conn.execute("SELECT 1 FROM users WHERE username = ?", (box,)) as cur:
            if await cur.fetchone() is None:
                raise NotFoundError(f"{target}: no mailbox {box!r} (no such user)")
        return True
    return False


async def _check_overflow(conn: aiosqlite.Connection, group: str, target: str) -> None:
    """Inside a transaction: the overflow of ring group `group` must be an extension or
    another ring group, `vm:BOX` or `trunk:NAME/NUMBER` that exists.

    Raises: ConfigError, NotFoundError (one line naming the target).
    """
    if await _check_special_target(conn, target):
        return
    if target == group:
        raise ConfigError(f"ring group {group} cannot overflow to itself")
    owner = await owner_in(conn, target)
    if owner is None:
        raise NotFoundError(f"overflow {target!r}: no extension or ring group {target}")
    if owner.kind not in (USER, RING_GROUP):
        raise ConfigError(
            f"overflow {target!r} is {owner}: give an extension, a ring group,"
            " vm:BOX or trunk:NAME/NUMBER"
        )


def members_of(text: Sequence[str]) -> tuple[str, ...]:
    """Members from CLI text ("1001,1002" pieces), in order, without repeats or blanks."""
    seen: list[str] = []
    for piece in text:
        for member in piece.split(","):
            member = member.strip()
            if member and member not in seen:
                seen.append(member)
    return tuple(seen)
