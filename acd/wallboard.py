"""The queue wallboard (`pbx queue show`) as a pure function: snapshot + today's figures in,
a frame out (plain text lines, or a rich renderable for the live terminal view).

The snapshot is the ACD application's `GET /acd` answer (round 7 seam):
`{"queues": [{"name", "number", "strategy", "waiting": [{"call_id", "caller",
"position", "wait"}], "longest_wait", "agents": {state: n}}], "agents": [{"name",
"state", "since", "reason", "queues": [...], "call"}], "now"}`; with no server running
the CLI builds one from the store (`store_snapshot`: no waiting callers known, marked
`"live": False`). Today's figures are `acd.stats.QueueStats` by queue name. Missing or
malformed snapshot values show as "-": a frame never fails on what a server sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acd.stats import QueueStats, text_cell

# The order agents' states are counted and listed in.
STATES = ("available", "ringing", "on-call", "wrap-up", "paused", "logged-out")
#: At most this many waiting callers are listed per queue (the count says the rest).
MAX_WAITING_ROWS = 20


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Section:
    """One block of the frame: its title lines and an optional table."""

    lines: tuple[str, ...]
    table: Table | None = None


def duration(seconds: Any) -> str:
    """Seconds as H:MM:SS ("-" for a missing or bad value)."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "-"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _figures(stats: QueueStats | None) -> str:
    if stats is None:
        return "today: no calls"
    cells = {
        name: text_cell(name, getattr(stats, name))
        for name in ("offered", "answered", "abandoned", "sl", "asa", "aht")
    }
    for name in ("asa", "aht"):
        cells[name] += "" if cells[name] == "-" else " s"
    return (
        f"today: offered {cells['offered']}  answered {cells['answered']}"
        f"  abandoned {cells['abandoned']}  SL {cells['sl']} (within"
        f" {stats.threshold:g} s)  ASA {cells['asa']}  AHT {cells['aht']}"
    )


def _by_state(agents: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for agent in agents:
        state = _text(agent.get("state"))
        counts[state] = counts.get(state, 0) + 1
    return counts


def _state_line(counts: Mapping[str, Any]) -> str:
    known = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    parts = [f"{state} {counts[state]}" for state in known if counts[state]]
    return "agents: " + (", ".join(parts) if parts else "none")


def sections(
    snapshot: Mapping[str, Any],
    today: Mapping[str, QueueStats],
    queue: str | None = None,
) -> list[Section]:
    """The frame's blocks: a header, one block per queue (or only `queue`), the agents."""
    now = _number(snapshot.get("now"))
    live = snapshot.get("live", True) is not False
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S") if now else "-"
    source = "live" if live else "no server running: agents from the database"
    result = [Section((f"aiopbx queues  {stamp}  ({source})",))]
    queues = [q for q in _dicts(snapshot.get("queues")) if queue in (None, q.get("name"))]
    agents = _dicts(snapshot.get("agents"))
    if queue is not None:
        agents = [a for a in agents if queue in (a.get("queues") or [])]
    for q in queues:
        name = _text(q.get("name"))
        waiting = _dicts(q.get("waiting"))
        counts = q.get("agents")
        if not isinstance(counts, dict):
            counts = _by_state(a for a in agents if name in (a.get("queues") or []))
        lines = [
            f"queue {name} ({_text(q.get('number'))}) {_text(q.get('strategy'))}",
            f"  waiting {len(waiting) if live else '-'}"
            f"  longest wait {duration(q.get('longest_wait')) if live else '-'}",
            "  " + _figures(today.get(name)),
            "  " + _state_line(counts),
        ]
        table = None
        if waiting:
            rows = tuple(
                (_text(w.get("position")), _text(w.get("caller")), duration(w.get("wait")))
                for w in sorted(waiting, key=lambda w: _number(w.get("position")) or 0)[
                    :MAX_WAITING_ROWS
                ]
            )
            table = Table(("POS", "CALLER", "WAIT"), rows)
        result.append(Section(tuple(lines), table))
    if queue is not None and not queues:
        result.append(Section((f"queue {queue}: not in the snapshot",)))
    agent_rows = tuple(
        (
            _text(a.get("name")),
            _text(a.get("state")),
            duration(now - since) if now and (since := _number(a.get("since"))) else "-",
            _text(a.get("reason")),
            _text(a.get("call")),
            ",".join(str(x) for x in a.get("queues") or []) or "-",
        )
        for a in sorted(agents, key=lambda a: str(a.get("name")))
    )
    if agent_rows:
        headers = ("AGENT", "STATE", "FOR", "REASON", "CALL", "QUEUES")
        result.append(Section(("agents",), Table(headers, agent_rows)))
    else:
        result.append(Section(("no agents",)))
    return result


def table_lines(table: Table) -> list[str]:
    """Left-aligned columns two spaces apart, header first, no trailing blanks."""
    widths = [len(h) for h in table.headers]
    for row in table.rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (table.headers, *table.rows)
    ]


def lines(
    snapshot: Mapping[str, Any], today: Mapping[str, QueueStats], queue: str | None = None
) -> list[str]:
    """The frame as plain text lines (`--once`, tests)."""
    out: list[str] = []
    for section in sections(snapshot, today, queue):
        if out:
            out.append("")
        out.extend(section.lines)
        if section.table is not None:
            out.extend("  " + line for line in table_lines(section.table))
    return out


def renderable(
    snapshot: Mapping[str, Any], today: Mapping[str, QueueStats], queue: str | None = None
) -> Any:
    """The frame for rich's Live view: the same blocks, tables drawn by rich."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    parts: list[Any] = []
    for section in sections(snapshot, today, queue):
        if parts:
            parts.append(Text(""))
        parts.append(Text("\n".join(section.lines)))
        if section.table is not None:
            table = RichTable(*section.table.headers, box=None, padding=(0, 2, 0, 0))
            for row in section.table.rows:
                table.add_row(*row)
            parts.append(table)
    return Group(*parts)


def store_snapshot(
    queues: Sequence[Mapping[str, Any]],
    agents: Sequence[Mapping[str, Any]],
    now: float,
) -> dict[str, Any]:
    """A snapshot in `GET /acd`'s shape from stored rows (no server running): `queues`
    as {"name", "number", "strategy"}, `agents` as {"name", "state", "since", "reason",
    "queues"}; nobody is known to wait."""
    return {
        "queues": [
            {
                "name": q["name"],
                "number": q.get("number"),
                "strategy": q.get("strategy"),
                "waiting": [],
                "longest_wait": None,
            }
            for q in queues
        ],
        "agents": [{**a, "call": None} for a in agents],
        "now": now,
        "live": False,
    }
