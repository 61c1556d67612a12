"""Outbound routes: which trunks an external number leaves through, and as what.

A route has dial patterns (`pbx.dialpattern`), a number of leading digits to strip and
digits to prepend, an optional caller-ID rewrite, and an ordered list of trunk names
(failover order). Emergency routes are tried before every other route.

`plan_outbound(number, routes)` is the pure decision: the ordered attempts (trunk,
number to send, caller ID) for a dialled number. `RouteRepo` stores routes
(migration 9, table `outbound_routes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pbx.dialpattern import DIAL_CHARS, DialPattern
from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store.database import Database

#: Limits on one route (it is typed by a person; these only stop nonsense).
MAX_PATTERNS = 32
MAX_TRUNKS = 16
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class Route:
    """One outbound route. `position` orders routes of equal rank (lower first)."""

    name: str
    patterns: tuple[str, ...]
    trunks: tuple[str, ...]
    strip: int = 0
    prepend: str = ""
    caller_id: str | None = None
    emergency: bool = False
    position: int = 0

    def parsed(self) -> list[DialPattern]:
        """The route's patterns, parsed. Raises: ConfigError for a malformed one."""
        return [DialPattern.parse(p) for p in self.patterns]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One step of an outbound plan: send `number` to `trunk` with `caller_id`
    (None: the trunk's or the caller's own)."""

    trunk: str
    number: str
    caller_id: str | None
    route: str


def check_route(route: Route) -> None:
    """Refuse a route that cannot work, with one line.

    Raises:
        ConfigError: a bad name, no or too many patterns or trunks, a malformed pattern,
            a negative strip, or a prepend that is not digits/*/#/+.
    """
    if not route.name or len(route.name) > MAX_NAME or not route.name.isprintable():
        raise ConfigError(f"route name {route.name!r}: 1 to {MAX_NAME} printable characters")
    if any(c.isspace() for c in route.name):
        raise ConfigError(f"route name {route.name!r} has blanks")
    if not route.patterns:
        raise ConfigError(f"route {route.name}: give at least one dial pattern")
    if len(route.patterns) > MAX_PATTERNS:
        raise ConfigError(f"route {route.name}: more than {MAX_PATTERNS} dial patterns")
    route.parsed()
    if not route.trunks:
        raise ConfigError(f"route {route.name}: give at least one trunk")
    if len(route.trunks) > MAX_TRUNKS:
        raise ConfigError(f"route {route.name}: more than {MAX_TRUNKS} trunks")
    if len(set(route.trunks)) != len(route.trunks):
        raise ConfigError(f"route {route.name}: a trunk is named twice")
    if route.strip < 0:
        raise ConfigError(f"route {route.name}: --strip must be 0 or more")
    if any(c not in DIAL_CHARS for c in route.prepend):
        raise ConfigError(f"route {route.name}: --prepend {route.prepend!r} is not digits")


def plan_outbound(number: str, routes: Iterable[Route]) -> list[Attempt]:
    """The ordered attempts for dialling `number`; empty when no route matches.

    Routes that match are ranked: emergency routes first, then by their best matching
    pattern (most specific first, `pbx.dialpattern.sort_patterns`), then by position.
    Each matching route contributes its trunks in order, with its strip, prepend and
    caller ID; a trunk already planned by a higher-ranked route is not tried again.
    Routes with a malformed pattern are skipped (the store refuses them anyway).
    """
    ranked: list[tuple[tuple[object, ...], Route]] = []
    for route in routes:
        try:
            patterns = route.parsed()
        except ConfigError:
            continue
        keys = [p.sort_key() for p in patterns if p.matches(number)]
        if keys:
            ranked.append(((0 if route.emergency else 1, min(keys), route.position), route))
    ranked.sort(key=lambda item: item[0])
    plan: list[Attempt] = []
    planned: set[str] = set()
    for _, route in ranked:
        sent = route.prepend + number[route.strip :]
        if not sent:
            continue  # stripped to nothing: nothing a trunk could dial
        for trunk in route.trunks:
            if trunk not in planned:
                planned.add(trunk)
                plan.append(Attempt(trunk, sent, route.caller_id, route.name))
    return plan


def _row_route(row: Sequence[object]) -> Route:
    name, patterns, strip, prepend, caller_id, trunks, emergency, position = row
    return Route(
        name=str(name),
        patterns=tuple(str(p) for p in json.loads(str(patterns))),
        trunks=tuple(str(t) for t in json.loads(str(trunks))),
        strip=int(str(strip)),
        prepend=str(prepend),
        caller_id=None if caller_id is None else str(caller_id),
        emergency=bool(emergency),
        position=int(str(position)),
    )


_COLUMNS = "name, patterns, strip, prepend, caller_id, trunks, emergency, position"


class RouteRepo:
    """The outbound routes (table `outbound_routes`)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def known_trunks(self) -> set[str]:
        """Names of the configured trunks (table `trunks`, migration 8)."""
        return {str(r[0]) for r in await self._db.fetchall("SELECT name FROM trunks")}

    async def add(self, route: Route) -> Route:
        """Store a new route after the existing ones; returns it with its position.

        Raises:
            ConfigError: the route is malformed (`check_route`).
            NotFoundError: a trunk name is unknown.
            AlreadyExistsError: a route with that name exists.
        """
        check_route(route)
        async with self._db.transaction() as conn:
            async with conn.execute("SELECT name FROM trunks") as c:
                known = {str(r[0]) for r in await c.fetchall()}
            unknown = [t for t in route.trunks if t not in known]
            if unknown:
                raise NotFoundError(f"no trunk {unknown[0]!r} (see pbx trunk list)")
            async with conn.execute("SELECT coalesce(max(position), 0) FROM outbound_routes") as c:
                top = await c.fetchone()
            position = (int(top[0]) if top is not None else 0) + 1
            cur = await conn.execute(
                f"INSERT INTO outbound_routes ({_COLUMNS}, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (
                    route.name,
                    json.dumps(list(route.patterns)),
                    route.strip,
                    route.prepend,
                    route.caller_id,
                    json.dumps(list(route.trunks)),
                    int(route.emergency),
                    position,
                    self._clock(),
                ),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"route {route.name} exists already")
        return Route(
            route.name,
            route.patterns,
            route.trunks,
            route.strip,
            route.prepend,
            route.caller_id,
            route.emergency,
            position,
        )

    async def delete(self, name: str) -> None:
        """Delete a route. Raises: NotFoundError when there is none by that name."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM outbound_routes WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no route {name!r}")

    async def all(self) -> list[Route]:
        """Every route: emergency ones first, then in the order they were added."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbound_routes ORDER BY emergency DESC, position, name"
        )
        return [_row_route(tuple(row)) for row in rows]

    async def plan(self, number: str) -> list[Attempt]:
        """`plan_outbound` over the stored routes."""
        return plan_outbound(number, await self.all())
