"""`pbx erlang`: how many agents a call volume needs (Erlang C, see `acd.erlang`).

    pbx erlang --calls 100 --per 30m --aht 180 --target 80/20 --shrinkage 30

prints the offered traffic, the fewest agents reaching the target (and the occupancy
cap when given), and a table of service level, ASA, P(wait) and occupancy for the
head counts around it, the chosen one marked. Offline: no database needed.

    pbx erlang --queue sales --since 7d --target 80/20

suggests staffing per hour of day (local time) from the queue's measured history
(`acd.stats.staffing_by_hour`: calls per hour and AHT of the calls that entered in that
hour of day over the period), with the same target, cap and shrinkage options.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import MissingParameter  # typer vendors click

from acd.erlang import Staffing, agents_for, scheduled, staffing, traffic
from acd.stats import HourStaffing, staffing_by_hour
from cli.common import DataDirOption, data_dir_of, format_table, run
from pbx.errors import ConfigError

# The table shows the chosen head count and this many on either side.
NEIGHBOURS = 2

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)([smhd]?)")
_TARGET = re.compile(r"(\d{1,3}(?:\.\d{1,6})?)%?/(.{1,20})")


def parse_duration(option: str, text: str, *, zero_ok: bool = False) -> float:
    """Seconds from `90s`, `30m`, `1h`, `7d` or plain seconds (`180`, `7.5`).

    Raises:
        ConfigError: anything else, or zero unless `zero_ok`.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"{option} {text!r} is not a duration like 90s, 30m, 1h or 180")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds == 0 and not zero_ok:
        raise ConfigError(f"{option} {text!r} must be longer than 0 s")
    return seconds


def parse_target(text: str) -> tuple[float, float]:
    """`80/20` (80 % of calls answered within 20 s) as (0.8, 20.0).

    Raises:
        ConfigError: not PERCENT/SECONDS, or a percentage outside (0, 100).
    """
    match = _TARGET.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--target {text!r} is not PERCENT/SECONDS like 80/20")
    percent = float(match.group(1))
    if not 0.0 < percent < 100.0:
        raise ConfigError(f"--target {text!r}: the percentage must be above 0 and below 100")
    if _DURATION.fullmatch(match.group(2).strip()) is None:
        raise ConfigError(f"--target {text!r} is not PERCENT/SECONDS like 80/20")
    return percent / 100.0, parse_duration("--target", match.group(2), zero_ok=True)


def percent(option: str, value: float, *, zero_ok: bool, hundred_ok: bool) -> float:
    """A percentage option as a fraction.

    Raises:
        ConfigError: outside [0, 100] or at an excluded end.
    """
    low_ok = value >= 0 if zero_ok else value > 0
    high_ok = value <= 100 if hundred_ok else value < 100
    if not (math.isfinite(value) and low_ok and high_ok):
        low = "at least 0" if zero_ok else "above 0"
        high = "at most 100" if hundred_ok else "below 100"
        raise ConfigError(f"{option} {value:g} must be a percentage {low} and {high}")
    return value / 100.0


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return _seconds(seconds)


def _seconds(value: float) -> str:
    return f"{value:g} s" if value == int(value) else f"{value:.2f} s"


def _row(result: Staffing, shrinkage: float | None, chosen: int) -> list[str]:
    mark = "<- needed" if result.agents == chosen else ""
    extra = [str(scheduled(result.agents, shrinkage))] if shrinkage is not None else []
    if not result.stable:
        return [str(result.agents), "unstable", "-", "-", "100.0 %", *extra, mark]
    return [
        str(result.agents),
        f"{result.service_level * 100:.2f} %",
        f"{result.asa:.2f} s",
        f"{result.p_wait:.4f}",
        f"{result.occupancy * 100:.1f} %",
        *extra,
        mark,
    ]


def erlang_report(
    calls: float,
    per: float,
    aht: float,
    target: float,
    threshold: float,
    max_occupancy: float | None = None,
    shrinkage: float | None = None,
) -> str:
    """The text `pbx erlang` prints (fractions for target, cap and shrinkage).

    Raises:
        ConfigError: inputs `acd.erlang` refuses.
    """
    offered = traffic(calls, per, aht)
    best = agents_for(target, threshold, offered, aht, max_occupancy)
    need = f"{target * 100:g} % answered within {threshold:g} s"
    if max_occupancy is not None:
        need += f", occupancy at most {max_occupancy * 100:g} %"
    lines = [
        f"traffic: {offered:.2f} Erlangs ({calls:g} calls per {_span(per)}, AHT {_seconds(aht)})",
        f"agents needed: {best.agents} ({need})",
    ]
    if shrinkage is not None:
        lines.append(
            f"scheduled: {scheduled(best.agents, shrinkage)} (with {shrinkage * 100:g} % shrinkage)"
        )
    headers = ["agents", f"SL {threshold:g} s", "ASA", "P(wait)", "occupancy"]
    if shrinkage is not None:
        headers.append("scheduled")
    headers.append("")
    counts = range(max(1, best.agents - NEIGHBOURS), best.agents + NEIGHBOURS + 1)
    rows = [_row(staffing(offered, n, threshold, aht), shrinkage, best.agents) for n in counts]
    return "\n".join([*lines, "", format_table(headers, rows)])


def history_report(
    hours: list[HourStaffing],
    queue: str,
    since: float,
    until: float,
    target: float,
    threshold: float,
    shrinkage: float | None,
) -> str:
    """The text `pbx erlang --queue` prints: one row per hour of day the period covers."""
    span = f"{_stamp(since)} to {_stamp(until)}"
    lines = [
        f"queue {queue}: staffing by hour of day from {span}"
        f" ({target * 100:g} % answered within {threshold:g} s)"
    ]
    if not any(h.calls_per_hour for h in hours):
        lines.append("no calls entered the queue in the period")
    headers = ["hour", "calls/h", "AHT", "Erlangs", "agents"]
    if shrinkage is not None:
        headers.append("scheduled")
    rows = []
    for h in hours:
        row = [
            f"{h.hour:02d}:00",
            f"{h.calls_per_hour:.2f}",
            "-" if h.aht is None else _seconds(round(h.aht, 2)),
            f"{h.traffic:.2f}",
            "-" if h.agents is None else str(h.agents),
        ]
        if shrinkage is not None:
            row.append("-" if h.scheduled is None else str(h.scheduled))
        rows.append(row)
    return "\n".join([*lines, "", format_table(headers, rows)])


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")


def _from_history(
    data_dir: Path,
    queue: str,
    since: str,
    until: str | None,
    target: tuple[float, float],
    cap: float | None,
    share: float | None,
) -> str:
    from cli import reports  # cli.reports imports this module

    start, end = reports.period(since, until)
    history = run(reports.load_history(data_dir, start, end))
    if queue not in reports.known_names(history, "queue"):
        raise ConfigError(f"no queue {queue!r} (and no events of one)")
    tz = datetime.now().astimezone().tzinfo or UTC
    hours = staffing_by_hour(
        history.events, start, end, target[0], target[1], queue=queue,
        max_occupancy=cap, shrinkage=share, tz=tz,
    )  # fmt: skip
    return history_report(hours, queue, start, end, target[0], target[1], share)


def erlang_command(
    ctx: typer.Context,
    calls: Annotated[
        float | None,
        typer.Option("--calls", help="Calls offered per period.", show_default=False),
    ] = None,
    per: Annotated[
        str | None,
        typer.Option("--per", help="The period: 30m, 1h, 90s or seconds.", show_default=False),
    ] = None,
    aht: Annotated[
        str | None,
        typer.Option(
            "--aht", help="Average handle time (talk + wrap-up): 180, 3m, 90s.", show_default=False
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option("--target", help="Service level: PERCENT/SECONDS answered within."),
    ] = "80/20",
    max_occupancy: Annotated[
        float | None,
        typer.Option(
            "--max-occupancy",
            help="Highest acceptable occupancy in percent (adds agents if needed).",
            show_default=False,
        ),
    ] = None,
    shrinkage: Annotated[
        float | None,
        typer.Option(
            "--shrinkage",
            help="Percent of paid time off the phones (breaks, training): heads to schedule.",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="Staffing per hour of day from this queue's history instead."),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="With --queue: the history's start (7d, 2026-12-01).")
    ] = "7d",
    until: Annotated[
        str | None, typer.Option("--until", help="With --queue: its end [default: now].")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Agents needed for a call volume (Erlang C), with SL, ASA, P(wait) and occupancy
    for the neighbouring head counts; with --queue, per hour of day from its history."""
    if queue is not None:
        given = [
            o for o, v in (("--calls", calls), ("--per", per), ("--aht", aht)) if v is not None
        ]
        if given:
            raise ConfigError(f"--queue computes from history: leave out {', '.join(given)}")
    else:
        for option, value in (("--calls", calls), ("--per", per), ("--aht", aht)):
            if value is None:
                raise MissingParameter(ctx=ctx, param_hint=f"'{option}'", param_type="option")
    goal, threshold = parse_target(target)
    cap = None
    if max_occupancy is not None:
        cap = percent("--max-occupancy", max_occupancy, zero_ok=False, hundred_ok=True)
    share = None
    if shrinkage is not None:
        share = percent("--shrinkage", shrinkage, zero_ok=True, hundred_ok=False)
    if queue is not None:
        target_pair = (goal, threshold)
        typer.echo(
            _from_history(data_dir_of(data_dir), queue, since, until, target_pair, cap, share)
        )
        return
    assert calls is not None and per is not None and aht is not None
    if not (math.isfinite(calls) and calls >= 0):
        raise ConfigError(f"--calls {calls:g} must be a number of calls >= 0")
    typer.echo(
        erlang_report(
            calls,
            parse_duration("--per", per),
            parse_duration("--aht", aht),
            goal,
            threshold,
            cap,
            share,
        )
    )
