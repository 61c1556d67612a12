"""The wallboard's figures of today and the report's intervals, from the queue log.

Today's figures (SL, ASA, abandon rate, and the outbound campaigns' figures) are
recomputed at most every `every` seconds (cached between): the live counts of a frame
come from the ACD's snapshot at once, the day's figures need the day's queue events read
from the store. Alarms: a queue whose SL today is under the target (`sl_target` setting,
default 80 %) or whose longest waiting caller has waited past the queue's service-level
threshold.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from acd.model import QueueEvent
from acd.stats import QueueStats, queue_stats
from pbx.api import ConfigError, Switch

__all__ = ["MAX_INTERVALS", "Figures", "alarms", "intervals_csv", "local_midnight"]

MAX_INTERVALS = 96
SL_TARGET_KEY = "sl_target"
DEFAULT_SL_TARGET = 0.8


def local_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now)
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def alarms(
    queue: dict[str, Any], today: dict[str, Any] | None, threshold: float, target: float
) -> list[str]:
    """Why a queue's row is in alarm (pure)."""
    found: list[str] = []
    sl = today.get("sl") if today else None
    if sl is not None and sl < target:
        found.append(f"SL {sl * 100:.0f}% under the {target * 100:.0f}% target")
    longest = queue.get("longest_wait")
    if queue.get("waiting") and longest is not None and longest > threshold:
        found.append(f"a caller has waited {longest:.0f} s (threshold {threshold:.0f} s)")
    return found


def _row(stats: QueueStats) -> dict[str, Any]:
    decided = stats.answered + stats.abandoned
    return {
        "offered": stats.offered,
        "answered": stats.answered,
        "abandoned": stats.abandoned,
        "sl": stats.sl,
        "asa": stats.asa,
        "abandon_rate": stats.abandoned / decided if decided else None,
        "threshold": stats.threshold,
    }


class Figures:
    def __init__(
        self,
        switch: Switch,
        clock: Callable[[], float] = time.time,
        every: float = 5.0,
        *,
        campaigns: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
    ) -> None:
        self._switch = switch
        self._clock = clock
        self.every = every
        self._cached: tuple[float, dict[str, dict[str, Any]]] | None = None
        #: The outbound campaigns' figures (the dialer's), read with today's figures.
        self._campaign_source = campaigns
        self._campaigns: list[dict[str, Any]] = []

    def fresh_at(self) -> float | None:
        """When `today` will compute afresh (None: at once)."""
        return None if self._cached is None else self._cached[0] + self.every

    async def _events(self, since: float, until: float) -> list[QueueEvent]:
        records = await self._switch.queue_event_store.between(since, until)
        return [QueueEvent(r.time, r.call_id, r.queue, r.agent, r.event, r.data) for r in records]

    async def thresholds(self) -> dict[str, float]:
        return {q.name: q.service_level_seconds for q in await self._switch.queue_store.all()}

    async def sl_target(self) -> float:
        text = await self._switch.setting(SL_TARGET_KEY)
        try:
            value = float(text) if text else DEFAULT_SL_TARGET
        except ValueError:
            return DEFAULT_SL_TARGET
        return value if 0 < value <= 1 else DEFAULT_SL_TARGET

    async def today(self) -> dict[str, dict[str, Any]]:
        """Per queue, today's figures (cached for `every` seconds)."""
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self.every:
            return self._cached[1]
        since = local_midnight(now)
        stats = queue_stats(await self._events(since, now), since, now, await self.thresholds())
        figures = {name: _row(s) for name, s in stats.items()}
        if self._campaign_source is not None:
            self._campaigns = await self._campaign_source()
        self._cached = (now, figures)
        return figures

    def campaigns(self) -> list[dict[str, Any]]:
        """The campaigns' figures as of the last `today` (same cache, same age)."""
        return self._campaigns

    async def intervals(self, since: float, until: float, interval: float) -> list[dict[str, Any]]:
        """Per interval and queue: offered, answered, abandoned, SL, ASA.

        Raises: ConfigError for a bad period or more than MAX_INTERVALS intervals.
        """
        if not since < until or interval < 60:
            raise ConfigError("a report needs since < until and intervals of 60 s or more")
        count = int((until - since + interval - 1) // interval)
        if count > MAX_INTERVALS:
            raise ConfigError(f"at most {MAX_INTERVALS} intervals; make them longer")
        events = await self._events(since, until)
        thresholds = await self.thresholds()
        rows: list[dict[str, Any]] = []
        for i in range(count):
            start = since + i * interval
            end = min(until, start + interval)
            for name, stats in sorted(queue_stats(events, start, end, thresholds).items()):
                rows.append({"queue": name, "start": start, "end": end, **_row(stats)})
        return rows


_CSV_COLUMNS = ("queue", "start", "end", "offered", "answered", "abandoned", "sl", "asa",
                "abandon_rate")  # fmt: skip


def intervals_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        cells = []
        for column in _CSV_COLUMNS:
            value = row.get(column)
            if column in ("start", "end"):
                value = datetime.fromtimestamp(float(row[column])).isoformat(timespec="minutes")
            elif isinstance(value, float):
                value = f"{value:.3f}"
            cells.append("" if value is None else str(value))
        writer.writerow(cells)
    return out.getvalue()
