"""Configured call targets that are not plain numbers: `trunk:NAME/NUMBER`, `vm:BOX`, `queue:NAME`.

Ring-group overflow, call forwarding and IVR actions name where a call goes. Besides a
number of the numbering plan they may say:

- `trunk:NAME/NUMBER`: dial NUMBER through trunk NAME directly, no outbound route (the
  switch dials it in `B2bua.plan()`); NAME must be a configured trunk and NUMBER
  dialable (digits, `*`, `#`, a leading `+`). Only configuration produces these: a number a
  caller dials is never read as one (the toll-fraud rule of issue 12).
- `vm:BOX`: leave a message in mailbox BOX (a user).
- `queue:NAME`: ACD queue NAME (pbx/store/queues.py); at run time it means the queue's
  number (`B2bua.reach` reads it), so whoever serves that number (the ACD application)
  takes the call. It is checked to exist when written; deleting the queue reports what
  still names it (`queue_references`).

This module parses them (pure) and answers, inside a store transaction, whether a
trunk exists and what still names it (`pbx trunk del` refuses while anything does).
The IVR document is TOML that only `ivr/` interprets; `ivr_trunk_targets` reads just
the option and fallback strings of each `[[menu]]` (tolerating anything else).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass

import aiosqlite

from pbx.errors import ConfigError, NotFoundError

TRUNK_PREFIX = "trunk:"
MAILBOX_PREFIX = "vm:"
QUEUE_PREFIX = "queue:"
#: A queue name (pbx/store/queues.py checks the same when a queue is added).
QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
#: The longest NUMBER a trunk target may send (a E.164 number has 15 digits).
MAX_NUMBER = 32
# The same rules as the dialling side (pbx/outbound.py) and pbx/store/trunks.py's names.
_NUMBER = re.compile(rf"\+?[0-9*#]{{1,{MAX_NUMBER}}}")
_TRUNK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True, slots=True)
class TrunkTarget:
    """`trunk:NAME/NUMBER`: dial `number` through trunk `trunk`, no route."""

    trunk: str
    number: str

    def __str__(self) -> str:
        return f"{TRUNK_PREFIX}{self.trunk}/{self.number}"


def parse_trunk_target(text: str) -> TrunkTarget | None:
    """The trunk target `text` names, or None when it does not start with `trunk:`.

    Raises:
        ConfigError: it starts with `trunk:` but is not `trunk:NAME/NUMBER` with a
            dialable NUMBER (one line naming the text).
    """
    if not text.startswith(TRUNK_PREFIX):
        return None
    name, slash, number = text[len(TRUNK_PREFIX) :].partition("/")
    if not slash or not name or not number:
        raise ConfigError(f"{text!r} is not trunk:NAME/NUMBER")
    if not _NUMBER.fullmatch(number):
        raise ConfigError(
            f"{text!r}: NUMBER must be 1 to {MAX_NUMBER} digits, '*' or '#' (a leading '+')"
        )
    if not _TRUNK_NAME.fullmatch(name):
        raise ConfigError(f"{text!r}: {name!r} is not a trunk name")
    return TrunkTarget(name, number)


def mailbox_of(text: str) -> str | None:
    """BOX of a `vm:BOX` target, or None for any other target.

    Raises:
        ConfigError: `vm:` with no mailbox after it.
    """
    if not text.startswith(MAILBOX_PREFIX):
        return None
    box = text[len(MAILBOX_PREFIX) :]
    if not box:
        raise ConfigError(f"{text!r} is not vm:BOX")
    return box


def queue_of(text: str) -> str | None:
    """NAME of a `queue:NAME` target, or None for any other target.

    Raises:
        ConfigError: `queue:` not followed by a queue name.
    """
    if not text.startswith(QUEUE_PREFIX):
        return None
    name = text[len(QUEUE_PREFIX) :]
    if not QUEUE_NAME.fullmatch(name):
        raise ConfigError(f"{text!r} is not queue:NAME")
    return name


async def check_queue_target(conn: aiosqlite.Connection, name: str) -> None:
    """Inside a transaction: make sure queue `name` exists.

    Raises:
        NotFoundError: no queue of that name (one line).
    """
    async with conn.execute("SELECT 1 FROM queues WHERE name = ?", (name,)) as cur:
        if await cur.fetchone() is None:
            raise NotFoundError(f"queue:{name}: no queue {name!r} (see pbx queue list)")


async def check_trunk_target(conn: aiosqlite.Connection, target: TrunkTarget) -> None:
    """Inside a transaction: make sure the target's trunk exists.

    Raises:
        NotFoundError: no trunk of that name (one line).
    """
    async with conn.execute("SELECT 1 FROM trunks WHERE name = ?", (target.trunk,)) as cur:
        if await cur.fetchone() is None:
            raise NotFoundError(f"{target}: no trunk {target.trunk!r} (see pbx trunk list)")


def _ivr_actions(text: str) -> list[tuple[str, str]]:
    """Every action of an IVR TOML document's menus, without its `extension:` kind, with
    where it is: ("IVR menu 'main' key 1", "trunk:site-b/2001"); none when unreadable."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found: list[tuple[str, str]] = []
    menus = doc.get("menu", [])
    for menu in menus if isinstance(menus, list) else []:
        if not isinstance(menu, dict):
            continue
        where = f"IVR menu {str(menu.get('name', '?'))!r}"
        options = menu.get("options", {})
        actions = [(f"key {k}", v) for k, v in options.items()] if isinstance(options, dict) else []
        for place, value in [*actions, ("fallback", menu.get("fallback"))]:
            if isinstance(value, str):
                action = value.strip()
                if action.startswith("extension:"):
                    action = action[len("extension:") :].strip()
                found.append((f"{where} {place}", action))
    return found


def ivr_trunk_targets(text: str) -> list[tuple[str, TrunkTarget]]:
    """The trunk targets of an IVR TOML document's menus, with where each is ("IVR menu
    'main' key 1", "IVR menu 'main' fallback"); none when the text is unreadable."""
    found: list[tuple[str, TrunkTarget]] = []
    for where, action in _ivr_actions(text):
        try:
            target = parse_trunk_target(action)
        except ConfigError:
            continue  # ivr.menu refuses it before it is stored
        if target is not None:
            found.append((where, target))
    return found


async def trunk_references(conn: aiosqlite.Connection, name: str) -> list[str]:
    """Inside a transaction: what still sends calls through trunk `name` (ring-group
    overflow, forwarding, IVR actions, DIDs, queue overflow, outbound routes), one each."""
    found: list[str] = []
    prefix = f"{TRUNK_PREFIX}{name}/"
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with conn.execute(
        "SELECT number FROM ring_groups WHERE overflow LIKE ? ESCAPE '\\' ORDER BY number",
        (pattern,),
    ) as cur:
        found += [f"overflow of ring group {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT username, always, busy, no_answer FROM forwards ORDER BY username"
    ) as cur:
        for username, *targets in await cur.fetchall():
            if any(isinstance(t, str) and t.startswith(prefix) for t in targets):
                found.append(f"forwarding of {username}")
    async with conn.execute("SELECT body FROM ivr_config WHERE id = 1") as cur:
        row = await cur.fetchone()
    if row is not None:
        found += [where for where, t in ivr_trunk_targets(str(row[0])) if t.trunk == name]
    async with conn.execute(
        "SELECT number FROM dids WHERE target LIKE ? ESCAPE '\\' ORDER BY number", (pattern,)
    ) as cur:
        found += [f"DID {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT name FROM queues WHERE overflow LIKE ? ESCAPE '\\' ORDER BY name", (pattern,)
    ) as cur:
        found += [f"overflow of queue {r[0]}" for r in await cur.fetchall()]
    async with conn.execute("SELECT name, trunks FROM outbound_routes ORDER BY name") as cur:
        for route, trunks in await cur.fetchall():
            try:
                names = json.loads(str(trunks))
            except ValueError:
                continue
            if isinstance(names, list) and name in names:
                found.append(f"outbound route {route}")
    return found


def ivr_queue_targets(text: str) -> list[tuple[str, str]]:
    """The `queue:NAME` targets of an IVR TOML document's menus: (where, NAME) pairs like
    ("IVR menu 'main' key 2", "sales"); none when the text is unreadable."""
    found: list[tuple[str, str]] = []
    for where, action in _ivr_actions(text):
        try:
            name = queue_of(action)
        except ConfigError:
            continue  # ivr.menu refuses it before it is stored
        if name is not None:
            found.append((where, name))
    return found


async def queue_references(conn: aiosqlite.Connection, name: str) -> list[str]:
    """Inside a transaction: what still sends calls to `queue:NAME` (DIDs, ring-group and
    other queues' overflow, forwarding, IVR actions), one description each."""
    target = f"{QUEUE_PREFIX}{name}"
    found: list[str] = []
    async with conn.execute(
        "SELECT number FROM dids WHERE target = ? ORDER BY number", (target,)
    ) as cur:
        found += [f"DID {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT number FROM ring_groups WHERE overflow = ? ORDER BY number", (target,)
    ) as cur:
        found += [f"overflow of ring group {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT name FROM queues WHERE overflow = ? AND name != ? ORDER BY name", (target, name)
    ) as cur:
        found += [f"overflow of queue {r[0]}" for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT username FROM forwards WHERE ? IN (always, busy, no_answer) ORDER BY username",
        (target,),
    ) as cur:
        found += [f"forwarding of {r[0]}" for r in await cur.fetchall()]
    async with conn.execute("SELECT body FROM ivr_config WHERE id = 1") as cur:
        row = await cur.fetchone()
    if row is not None:
        found += [where for where, queue in ivr_queue_targets(str(row[0])) if queue == name]
    return found
