"""What the ACD's report commands share: periods, the stored queue events, output formats.

`pbx queue report`, `pbx agent report`, `pbx queue show` (today's figures) and
`pbx erlang --queue` read the queue log (`store.queue_events`) and compute with
`acd.stats`; no server is needed. Periods are `--since 8h|7d|90m` (that long before
now), a local date `2026-12-01` (its midnight) or a local date and time
`2026-12-01T08:30`, or `today` (local midnight); `--until` takes the same forms and
defaults to now.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from acd import wallboard
from acd.model import QueueEvent
from acd.stats import AgentStats, QueueStats, as_rows, queue_stats, text_rows
from cli.common import format_table, open_existing, run
from cli.erlang import parse_duration
from pbx.config import Settings
from pbx.errors import ConfigError, ControlError
from pbx.instance import pid_alive
from pbx.store import Store

FORMATS = ("table", "csv", "json")
#: Agent figures need the logins and pauses that started before the period: the events
#: of this long before `since` are read too (a state opened earlier than that and still
#: open counts from this horizon).
AGENT_HORIZON = 86400.0

_RELATIVE = re.compile(r"\d{1,9}(?:\.\d{1,9})?[smhd]")


def parse_when(option: str, text: str, now: float) -> float:
    """A report bound as a wall time: `8h` (before `now`), `2026-12-01` (local
    midnight), `2026-12-01T08:30[:00]` (local time) or `today`.

    Raises:
        ConfigError: anything else (one line naming the option).
    """
    text = text.strip()
    if text == "today":
        return local_midnight(now)
    if _RELATIVE.fullmatch(text):
        return now - parse_duration(option, text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or len(text) < 10:
        raise ConfigError(
            f"{option} {text!r} is not a time like 8h, 7d, today, 2026-12-01 or 2026-12-01T08:00"
        )
    stamp = when.timestamp()  # naive: local time
    if not math.isfinite(stamp):
        raise ConfigError(f"{option} {text!r} is out of range")
    return stamp


def period(since: str, until: str | None, now: float | None = None) -> tuple[float, float]:
    """(since, until) as wall times from the options' texts.

    Raises:
        ConfigError: a bad text, or a period that does not start before it ends.
    """
    now = time.time() if now is None else now
    start = parse_when("--since", since, now)
    end = now if until is None else parse_when("--until", until, now)
    if start >= end:
        raise ConfigError(f"--since {since} is not before --until {until or 'now'}")
    return start, end


def local_midnight(now: float) -> float:
    """The start of `now`'s local day (today's figures count from it)."""
    local = datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def check_format(text: str) -> str:
    """Raises: ConfigError for a format other than table, csv or json."""
    if text not in FORMATS:
        raise ConfigError(f"--format {text!r}: choose {', '.join(FORMATS)}")
    return text


@dataclass(frozen=True, slots=True)
class History:
    """The stored queue events of a period (with a horizon before it) and the queues'
    service-level thresholds."""

    events: list[QueueEvent]
    thresholds: dict[str, float]
    queues: list[str]


async def read_history(
    store: Store, since: float, until: float, *, horizon: float = 0.0
) -> History:
    """Events with since - horizon <= time < until, as acd.model.QueueEvent."""
    records = await store.queue_events.between(since - horizon, until)
    events = [QueueEvent(r.time, r.call_id, r.queue, r.agent, r.event, r.data) for r in records]
    queues = await store.queues.all()
    thresholds = {q.name: q.service_level_seconds for q in queues}
    return History(events, thresholds, [q.name for q in queues])


async def load_history(data_dir: Path, since: float, until: float, horizon: float = 0.0) -> History:
    """`read_history` on the data directory's database.

    Raises:
        ConfigError: no database.
    """
    async with await open_existing(data_dir) as store:
        return await read_history(store, since, until, horizon=horizon)


async def require_agent(data_dir: Path, agent: str) -> None:
    """Raises: NotFoundError (one line) when `agent` is not a user."""
    async with await open_existing(data_dir) as store:
        await store.agents.get(agent)


def render(
    stats: Sequence[QueueStats | AgentStats],
    fmt: str,
    columns: Sequence[str],
    kind: type[QueueStats] | type[AgentStats],
) -> str:
    """The report in `fmt`: a table of `columns` (printed cells), or every raw column of
    `kind` as CSV (header line first, also with no row) or a JSON list of objects."""
    if fmt == "json":
        return json.dumps(as_rows(stats), indent=2)
    if fmt == "csv":
        rows = as_rows(stats)
        out = io.StringIO()
        names = [f.name for f in fields(kind)]
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    cells = text_rows(stats)
    return format_table([c.upper() for c in columns], [[row[c] for c in columns] for row in cells])


# --- the running server ----------------------------------------------------------------


def server_running(settings: Settings) -> bool:
    """Whether a server runs on this data directory (its control file names a live PID).
    Live commands then go through the control API; otherwise they work on the store."""
    try:
        info = json.loads(settings.control_file.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict):
        return False
    pid = info.get("pid")
    return not (isinstance(pid, int) and not pid_alive(pid))


def live_snapshot(settings: Settings) -> dict[str, Any]:
    """The running ACD's snapshot (`GET /acd`). Raises: ControlError."""
    from pbx import control

    return control.request(settings, "/acd")


def agent_command(
    settings: Settings,
    agent: str,
    action: str,
    *,
    reason: str | None = None,
    queue: str | None = None,
) -> dict[str, Any]:
    """`POST /acd/agent`: the running ACD changes the agent's state (it owns it).

    Raises: ControlError (server gone; the route's 404/409 error, one line).
    """
    from pbx import control

    body: dict[str, Any] = {"agent": agent, "action": action}
    if reason is not None:
        body["reason"] = reason
    if queue is not None:
        body["queue"] = queue
    return control.request(settings, "/acd/agent", method="POST", body=body)


async def _stored_board(store: Store, now: float) -> dict[str, Any]:
    queues = await store.queues.all()
    members = await store.queues.all_members()
    in_queues: dict[str, list[str]] = {}
    for queue, listed in sorted(members.items()):
        for member in listed:
            in_queues.setdefault(member.agent, []).append(queue)
    agents = [
        {
            "name": a.name,
            "state": a.state,
            "since": a.state_since or None,
            "reason": a.pause_reason,
            "queues": in_queues.get(a.name, []),
        }
        for a in await store.agents.all()
    ]
    rows = [{"name": q.name, "number": q.number, "strategy": q.strategy} for q in queues]
    return wallboard.store_snapshot(rows, agents, now)


async def _read(
    data_dir: Path, now: float, *, stats: bool, board: bool
) -> tuple[dict[str, QueueStats] | None, dict[str, Any] | None, list[str]]:
    """Today's figures (when `stats`), the stored board (when `board`), the queue names."""
    since = local_midnight(now)
    async with await open_existing(data_dir) as store:
        today: dict[str, QueueStats] | None = None
        if stats and since >= now:  # the very first instant of the day
            today = {}
        elif stats:
            history = await read_history(store, since, now)
            today = queue_stats(history.events, since, now, history.thresholds)
        stored = await _stored_board(store, now) if board else None
        names = [q.name for q in await store.queues.all()]
    return today, stored, names


class Wallboard:
    """`pbx queue show`: frames from the live snapshot (or the store with no server) and
    today's figures, re-read from the store every `stats_every` seconds (not every frame:
    they scan the day's queue log)."""

    def __init__(self, data_dir: Path, queue: str | None, stats_every: float = 5.0) -> None:
        self._data_dir = data_dir
        self._settings = Settings(data_dir=data_dir)
        self._queue = queue
        self._stats_every = stats_every
        self._today: dict[str, QueueStats] = {}
        self._read_at = -math.inf

    def frame(self, now: float | None = None) -> tuple[Mapping[str, Any], dict[str, QueueStats]]:
        """(snapshot, today's figures) for a frame at `now`.

        Raises: ConfigError (no database; unknown queue), ControlError (server refused).
        """
        now = time.time() if now is None else now
        live = server_running(self._settings)
        stale = now - self._read_at >= self._stats_every
        board: dict[str, Any] | None = None
        if stale or not live:
            today, board, known = run(_read(self._data_dir, now, stats=stale, board=not live))
            if today is not None:
                self._today, self._read_at = today, now
            if self._queue is not None and self._queue not in known:
                raise ConfigError(f"no queue {self._queue!r}")
        snapshot = live_snapshot(self._settings) if live else board
        assert snapshot is not None
        return snapshot, self._today

    def lines(self) -> list[str]:
        """The frame as text (`--once`)."""
        snapshot, today = self.frame()
        return wallboard.lines(snapshot, today, self._queue)

    def renderable(self) -> Any:
        """The frame for rich's Live view; a server that stops answering mid-way is shown
        as a line (the next frame falls back to the store once it is gone)."""
        try:
            snapshot, today = self.frame()
        except ControlError as exc:
            from rich.text import Text

            return Text(f"pbx: {exc}")
        return wallboard.renderable(snapshot, today, self._queue)


def known_names(history: History, which: str) -> set[str]:
    """Queue or agent names seen in the events (history outlives deleted queues)."""
    if which == "queue":
        return {e.queue for e in history.events if e.queue} | set(history.queues)
    return {e.agent for e in history.events if e.agent}
