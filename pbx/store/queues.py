"""ACD queues and their members (migration 14): the configuration `pbx queue` writes.

A `Queue` has exactly the fields of `acd.model.QueueConfig` (the ACD converts; `pbx/`
does not import `acd/`), checked here before they are stored: the strategy and the
join-empty / leave-when-empty condition names (Asterisk's), times and counts, skill
levels 1..10, relax rules, DTMF keys, and the overflow target (another queue, a mailbox,
a trunk, or a number of the numbering plan: extension, ring group, IVR menu, room,
queue). The queue's number is claimed in the numbering plan.

A member is an agent (a user) with a penalty and a position; `logged_in` says whether it
takes this queue's calls while the agent is logged in (`pbx agent login --queue`).
Deleting a user removes its memberships (foreign keys, ON DELETE CASCADE).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError, StoreError
from pbx.store.database import Database
from pbx.store.numbering import FEATURE, claim, owner_in
from pbx.store.targets import (
    QUEUE_NAME,
    check_queue_target,
    check_trunk_target,
    mailbox_of,
    parse_trunk_target,
    queue_of,
    queue_references,
)
from pbx.users import check_username

__all__ = [
    "CONDITIONS",
    "STRATEGIES",
    "DeletedQueue",
    "Queue",
    "QueueMember",
    "QueueRepo",
    "SkillRule",
    "check_skill",
]

#: Strategy names (acd.model.Strategy's values).
STRATEGIES = (
    "ringall",
    "leastrecent",
    "fewestcalls",
    "random",
    "rrmemory",
    "rrordered",
    "linear",
    "wrandom",
    "longest-idle",
)
#: Asterisk's join-empty / leave-when-empty condition names.
CONDITIONS = (
    "paused",
    "penalty",
    "inuse",
    "ringing",
    "unavailable",
    "invalid",
    "unknown",
    "wrapup",
)
#: Keys a caller may press for callback or voicemail.
DTMF_KEYS = "0123456789*#"
_SKILL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
_PROMPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")
MAX_SKILLS = 64
MAX_RULES = 32


def check_skill(name: str, level: int) -> None:
    """Raises: ConfigError for a bad skill name or a level outside 1..10."""
    if not _SKILL.fullmatch(name):
        raise ConfigError(f"skill {name!r}: a letter, then letters, digits, '_', '.', '-'")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
        raise ConfigError(f"skill {name}: level {level!r} is not 1 to 10")


@dataclass(frozen=True, slots=True)
class SkillRule:
    """After `after` seconds of waiting, required levels drop by `relax` (never below 1);
    `drop`: the skill is no longer required at all (acd.model.SkillRule)."""

    after: float
    relax: int = 0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue as stored: the fields of acd.model.QueueConfig, names and meanings alike."""

    name: str
    number: str
    strategy: str = "ringall"
    ring_seconds: float = 15.0
    retry_seconds: float = 5.0
    wrapup_seconds: float = 0.0
    max_callers: int = 0
    max_wait_seconds: float = 0.0
    overflow: str | None = None
    join_empty: frozenset[str] = frozenset()
    leave_when_empty: frozenset[str] = frozenset()
    service_level_seconds: float = 20.0
    announce_frequency: float = 0.0
    periodic_announce: str | None = None
    periodic_frequency: float = 0.0
    music: str | None = None
    weight: int = 0
    penalty_members_limit: int = 0
    ring_in_use: bool = False
    autopause_after: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    skill_rules: tuple[SkillRule, ...] = ()
    callback_key: str | None = "1"
    voicemail_key: str | None = None
    callback_attempts: int = 3


@dataclass(frozen=True, slots=True)
class QueueMember:
    """An agent's membership of a queue (acd.model.Member plus the queue and whether the
    agent is logged into this queue)."""

    queue: str
    agent: str
    penalty: int = 0
    position: int = 0
    logged_in: bool = True


@dataclass(frozen=True, slots=True)
class DeletedQueue:
    """What `QueueRepo.delete` removed, and what still names the queue or its number."""

    name: str
    number: str
    members: tuple[str, ...]
    pending_callbacks: int
    references: tuple[str, ...]


_FIELDS = tuple(f.name for f in dataclasses.fields(Queue))
_COLUMNS = ", ".join(_FIELDS)


def _check(queue: Queue) -> None:
    """Everything about a queue that needs no database.

    Raises: ConfigError naming the first bad value.
    """
    if not QUEUE_NAME.fullmatch(queue.name):
        raise ConfigError(
            f"queue name {queue.name!r}: a letter, then up to 31 letters, digits, '_', '.', '-'"
        )
    check_username(queue.number)  # the same rule as users' and ring groups' numbers
    if queue.strategy not in STRATEGIES:
        raise ConfigError(f"strategy {queue.strategy!r}: choose {', '.join(STRATEGIES)}")
    for what, value, low in (
        ("ring time", queue.ring_seconds, None),
        ("retry time", queue.retry_seconds, 0.0),
        ("wrap-up time", queue.wrapup_seconds, 0.0),
        ("max wait", queue.max_wait_seconds, 0.0),
        ("service level", queue.service_level_seconds, None),
        ("announce frequency", queue.announce_frequency, 0.0),
        ("periodic frequency", queue.periodic_frequency, 0.0),
    ):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{what}: {value} is not a number of seconds")
        if (low is None and value <= 0) or (low is not None and value < low):
            more = "more than 0" if low is None else "0 or more"
            raise ConfigError(f"{what} must be {more} seconds, not {value:g}")
    for what, count in (
        ("max callers", queue.max_callers),
        ("penalty members limit", queue.penalty_members_limit),
        ("autopause after", queue.autopause_after),
        ("callback attempts", queue.callback_attempts),
    ):
        if count < 0:
            raise ConfigError(f"{what} must be 0 or more, not {count}")
    for what, conditions in (
        ("join-empty", queue.join_empty),
        ("leave-when-empty", queue.leave_when_empty),
    ):
        unknown = sorted(set(conditions) - set(CONDITIONS))
        if unknown:
            raise ConfigError(
                f"{what} condition {unknown[0]!r}: choose among {', '.join(CONDITIONS)}"
            )
    if len(queue.skills) > MAX_SKILLS:
        raise ConfigError(f"at most {MAX_SKILLS} skills")
    for skill, level in queue.skills.items():
        check_skill(skill, level)
    if len(queue.skill_rules) > MAX_RULES:
        raise ConfigError(f"at most {MAX_RULES} relax rules")
    for rule in queue.skill_rules:
        if not rule.after > 0 or rule.after == float("inf"):
            raise ConfigError(f"relax rule: the wait must be more than 0 seconds, not {rule.after}")
        if rule.relax < 0 or (rule.relax == 0 and not rule.drop):
            raise ConfigError("relax rule: lower the levels by 1 or more, or drop the skill")
    for what, key in (("callback key", queue.callback_key), ("voicemail key", queue.voicemail_key)):
        if key is not None and (len(key) != 1 or key not in DTMF_KEYS):
            raise ConfigError(f"{what} {key!r}: one of 0-9, * or #")
    if queue.callback_key is not None and queue.callback_key == queue.voicemail_key:
        raise ConfigError(f"the callback and voicemail keys are both {queue.callback_key!r}")
    if queue.periodic_frequency > 0 and queue.periodic_announce is None:
        raise ConfigError("a periodic frequency needs a periodic announcement prompt")
    for what, name in (("periodic announcement", queue.periodic_announce), ("music", queue.music)):
        if name is not None and not _PROMPT.fullmatch(name):
            raise ConfigError(f"{what} {name!r} is not a prompt or music class name")


async def _check_overflow(conn: aiosqlite.Connection, queue: Queue) -> None:
    """Inside a transaction: the overflow must lead somewhere that exists.

    Raises: ConfigError (malformed, or the queue itself), NotFoundError (one line).
    """
    target = queue.overflow
    if target is None:
        return
    other = queue_of(target)
    if other is not None:
        if other == queue.name:
            raise ConfigError(f"queue {queue.name} cannot overflow to itself")
        await check_queue_target(conn, other)
        return
    trunk = parse_trunk_target(target)
    if trunk is not None:
        await check_trunk_target(conn, trunk)
        return
    box = mailbox_of(target)
    if box is not None:
        async with conn.execute("SELECT 1 FROM users WHERE username = ?", (box,)) as cur:
            if await cur.fetchone() is None:
                raise NotFoundError(f"overflow {target}: no mailbox {box!r} (no such user)")
        return
    if target == queue.number:
        raise ConfigError(f"queue {queue.name} cannot overflow to its own number")
    owner = await owner_in(conn, target, ignore=(FEATURE,))
    if owner is None:
        raise NotFoundError(
            f"overflow {target!r}: no extension, group, IVR menu, room or queue numbered"
            f" {target} (or give queue:NAME, vm:BOX, trunk:NAME/NUMBER)"
        )


def _row(queue: Queue) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _FIELDS:
        value = getattr(queue, name)
        if name in ("join_empty", "leave_when_empty"):
            value = json.dumps(sorted(value))
        elif name == "skills":
            value = json.dumps(dict(sorted(value.items())))
        elif name == "skill_rules":
            value = json.dumps([dataclasses.asdict(r) for r in value])
        elif name == "ring_in_use":
            value = int(value)
        values.append(value)
    return tuple(values)


def _queue(row: sqlite3.Row | tuple[Any, ...]) -> Queue:
    """Raises: StoreError for a stored value this code cannot read (a hand-edited row)."""
    values = dict(zip(_FIELDS, tuple(row), strict=True))
    try:
        return _decoded(values)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StoreError(f"queue {values['name']}: a stored value is unreadable: {exc}") from None


def _decoded(values: dict[str, Any]) -> Queue:
    values["join_empty"] = frozenset(json.loads(values["join_empty"]))
    values["leave_when_empty"] = frozenset(json.loads(values["leave_when_empty"]))
    values["skills"] = {str(k): int(v) for k, v in json.loads(values["skills"]).items()}
    values["skill_rules"] = tuple(
        SkillRule(float(r["after"]), int(r["relax"]), bool(r["drop"]))
        for r in json.loads(values["skill_rules"])
    )
    values["ring_in_use"] = bool(values["ring_in_use"])
    return Queue(**values)


async def _queue_in(conn: aiosqlite.Connection, name: str) -> Queue | None:
    async with conn.execute(f"SELECT {_COLUMNS} FROM queues WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _queue(tuple(row))


def _member(row: sqlite3.Row | tuple[Any, ...]) -> QueueMember:
    queue, agent, penalty, position, logged_in = tuple(row)
    return QueueMember(str(queue), str(agent), int(penalty), int(position), bool(logged_in))


_MEMBER = "queue, agent, penalty, position, logged_in"


class QueueRepo:
    """The queues and queue_members tables."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, queue: Queue) -> Queue:
        """Create a queue.

        Raises: ConfigError (a bad value), AlreadyExistsError (the name, or its number is
        taken in the numbering plan), NotFoundError (the overflow names nothing).
        """
        _check(queue)
        async with self._db.transaction() as conn:
            if await _queue_in(conn, queue.name) is not None:
                raise AlreadyExistsError(f"queue {queue.name!r} already exists")
            await claim(conn, queue.number)
            await _check_overflow(conn, queue)
            await conn.execute(
                f"INSERT INTO queues ({_COLUMNS}, created) VALUES"
                f" ({', '.join('?' * len(_FIELDS))}, ?)",
                (*_row(queue), self._clock()),
            )
        return queue

    async def update(self, name: str, /, **changes: Any) -> Queue:
        """Change some fields (names as in `Queue`, not `name`); returns the stored queue.

        Raises: NotFoundError (no such queue, or the overflow names nothing), ConfigError
        (an unknown field, a bad value), AlreadyExistsError (a new number is taken).
        """
        unknown = set(changes) - set(_FIELDS) | ({"name"} & set(changes))
        if unknown:
            raise ConfigError(f"unknown queue field(s): {', '.join(sorted(unknown))}")
        async with self._db.transaction() as conn:
            current = await _queue_in(conn, name)
            if current is None:
                raise NotFoundError(f"no queue {name!r}")
            queue = dataclasses.replace(current, **changes)
            _check(queue)
            if queue.number != current.number:
                await claim(conn, queue.number)
            if queue.overflow != current.overflow:
                await _check_overflow(conn, queue)  # an unchanged one is not re-judged
            elif queue.overflow is not None and queue.overflow == queue.number:
                raise ConfigError(f"queue {name} cannot overflow to its own number")
            sets = ", ".join(f"{f} = ?" for f in _FIELDS)
            await conn.execute(f"UPDATE queues SET {sets} WHERE name = ?", (*_row(queue), name))
        return queue

    async def get(self, name: str) -> Queue:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM queues WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no queue {name!r}")
        return _queue(row)

    async def by_number(self, number: str) -> Queue | None:
        """The queue whose number is `number`, or None."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM queues WHERE number = ?", (number,))
        return None if row is None else _queue(row)

    async def number_of(self, name: str) -> str | None:
        """The number of queue `name` now (what a `queue:NAME` target dials), or None."""
        row = await self._db.fetchone("SELECT number FROM queues WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    async def all(self) -> list[Queue]:
        """Every queue, by name."""
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM queues ORDER BY name")
        return [_queue(r) for r in rows]

    async def delete(self, name: str) -> DeletedQueue:
        """Delete a queue with its members and pending callbacks (history stays: the queue
        events). Returns what went and what still names it or its number.

        Raises: NotFoundError.
        """
        async with self._db.transaction() as conn:
            queue = await _queue_in(conn, name)
            if queue is None:
                raise NotFoundError(f"no queue {name!r}")
            async with conn.execute(
                "SELECT agent FROM queue_members WHERE queue = ? ORDER BY position, agent",
                (name,),
            ) as cur:
                members = tuple(str(r[0]) for r in await cur.fetchall())
            async with conn.execute(
                "SELECT count(*) FROM callbacks WHERE queue = ? AND state = 'pending'", (name,)
            ) as cur:
                row = await cur.fetchone()
            pending = int(row[0]) if row is not None else 0
            await conn.execute("DELETE FROM queues WHERE name = ?", (name,))
            references = await queue_references(conn, name)
            references += await _number_references(conn, queue.number)
        return DeletedQueue(name, queue.number, members, pending, tuple(references))

    # --- members -------------------------------------------------------------------

    async def add_member(
        self, queue: str, agent: str, penalty: int = 0, position: int | None = None
    ) -> QueueMember:
        """Make user `agent` a member of `queue` (position: after the last by default).

        Raises: NotFoundError (queue or user), AlreadyExistsError, ConfigError (penalty).
        """
        if penalty < 0:
            raise ConfigError(f"penalty must be 0 or more, not {penalty}")
        async with self._db.transaction() as conn:
            await _require(conn, queue, agent)
            async with conn.execute(
                "SELECT coalesce(max(position) + 1, 0) FROM queue_members WHERE queue = ?",
                (queue,),
            ) as cur:
                row = await cur.fetchone()
            if position is None:
                position = int(row[0]) if row is not None else 0
            cur = await conn.execute(
                "INSERT INTO queue_members (queue, agent, penalty, position) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (queue, agent) DO NOTHING",
                (queue, agent, penalty, position),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"{agent} is already a member of queue {queue}")
        return QueueMember(queue, agent, penalty, position)

    async def update_member(
        self, queue: str, agent: str, penalty: int | None = None, position: int | None = None
    ) -> QueueMember:
        """Change a member's penalty and/or position.

        Raises: NotFoundError (not a member), ConfigError (penalty).
        """
        if penalty is not None and penalty < 0:
            raise ConfigError(f"penalty must be 0 or more, not {penalty}")
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE queue_members SET penalty = coalesce(?, penalty),"
                " position = coalesce(?, position) WHERE queue = ? AND agent = ?",
                (penalty, position, queue, agent),
            )
            async with conn.execute(
                f"SELECT {_MEMBER} FROM queue_members WHERE queue = ? AND agent = ?",
                (queue, agent),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                await _require(conn, queue, agent)
                raise NotFoundError(f"{agent} is not a member of queue {queue}")
        return _member(row)

    async def delete_member(self, queue: str, agent: str) -> None:
        """Raises: NotFoundError (no such queue, user or membership)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM queue_members WHERE queue = ? AND agent = ?", (queue, agent)
            )
            if cur.rowcount == 0:
                await _require(conn, queue, agent)
                raise NotFoundError(f"{agent} is not a member of queue {queue}")

    async def members(self, queue: str) -> list[QueueMember]:
        """The members of `queue` in configured order (position, then name).

        Raises: NotFoundError (no such queue).
        """
        async with self._db.transaction() as conn:
            if await _queue_in(conn, queue) is None:
                raise NotFoundError(f"no queue {queue!r}")
            async with conn.execute(
                f"SELECT {_MEMBER} FROM queue_members WHERE queue = ? ORDER BY position, agent",
                (queue,),
            ) as cur:
                return [_member(r) for r in await cur.fetchall()]

    async def all_members(self) -> dict[str, list[QueueMember]]:
        """queue name -> its members in order, for every queue (empty lists included)."""
        rows = await self._db.fetchall(
            f"SELECT {_MEMBER} FROM queue_members ORDER BY queue, position, agent"
        )
        out: dict[str, list[QueueMember]] = {q.name: [] for q in await self.all()}
        for row in rows:
            member = _member(row)
            out.setdefault(member.queue, []).append(member)
        return out

    async def memberships(self, agent: str) -> list[QueueMember]:
        """The queues `agent` is a member of, by queue name."""
        rows = await self._db.fetchall(
            f"SELECT {_MEMBER} FROM queue_members WHERE agent = ? ORDER BY queue", (agent,)
        )
        return [_member(r) for r in rows]


async def _require(conn: aiosqlite.Connection, queue: str, agent: str) -> None:
    """Raises: NotFoundError when the queue or the user does not exist."""
    if await _queue_in(conn, queue) is None:
        raise NotFoundError(f"no queue {queue!r}")
    async with conn.execute("SELECT 1 FROM users WHERE username = ?", (agent,)) as cur:
        if await cur.fetchone() is None:
            raise NotFoundError(f"no user {agent!r} (an agent is a user: pbx user add)")


async def _number_references(conn: aiosqlite.Connection, number: str) -> list[str]:
    """What still sends calls to the plain `number` (forwarding, overflows, DIDs aside:
    DIDs name queues by name)."""
    found: list[str] = []
    async with conn.execute(
        "SELECT username FROM forwards WHERE ? IN (always, busy, no_answer) ORDER BY username",
        (number,),
    ) as cur:
        found += [f"forwarding of {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT number FROM ring_groups WHERE overflow = ? ORDER BY number", (number,)
    ) as cur:
        found += [f"overflow of ring group {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT name FROM queues WHERE overflow = ? ORDER BY name", (number,)
    ) as cur:
        found += [f"overflow of queue {r[0]}" for r in await cur.fetchall()]
    return found
