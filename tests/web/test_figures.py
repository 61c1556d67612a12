"""The wallboard's figures and the supervisor's report routes (acd.web.figures): alarms,
intervals from the stored queue log, CSV, and who may ask."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from acd.web.figures import alarms, intervals_csv, local_midnight
from pbx.store.queue_events import QueueEventRecord
from tests.web.console import SUPERVISOR, console_server, logged_in


@pytest.mark.parametrize(
    ("queue", "today", "expected"),
    [
        (
            {"waiting": [1], "longest_wait": 25.0},
            {"sl": 0.9},
            ["a caller has waited 25 s (threshold 20 s)"],
        ),
        ({"waiting": [], "longest_wait": None}, {"sl": 0.5}, ["SL 50% under the 80% target"]),
        ({"waiting": [1], "longest_wait": 5.0}, {"sl": None}, []),
        ({"waiting": [1], "longest_wait": 20.0}, None, []),  # at the threshold: not past it
    ],
)
def test_alarms(queue: dict[str, Any], today: dict[str, Any] | None, expected: list[str]) -> None:
    assert alarms(queue, today, 20.0, 0.8) == expected


def call(t: float, call_id: str, hold: float, answered: bool) -> list[QueueEventRecord]:
    """A call entering `support` at `t`, answered after `hold` s (or abandoned)."""
    rows = [QueueEventRecord(t, call_id, "support", None, "ENTERQUEUE", {"position": 1})]
    if answered:
        rows.append(
            QueueEventRecord(
                t + hold, call_id, "support", "1001", "CONNECT", {"hold": hold, "ring": 1}
            )
        )
    else:
        rows.append(QueueEventRecord(t + hold, call_id, "support", None, "ABANDON", {"wait": hold}))
    return rows


async def test_report_by_interval_json_csv_and_wallboard_figures(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        now = time.time()
        hour = now - 600  # the report's start: its one interval runs to now
        await c.store.queue_events.append(
            [
                *call(hour + 60, "a", 5.0, True),
                *call(hour + 120, "b", 40.0, True),  # answered past the 20 s threshold
                *call(hour + 180, "c", 8.0, False),
            ]
        )
        boss, _ = await logged_in(c.base, SUPERVISOR)
        agent, _ = await logged_in(c.base, "1001")
        async with boss, agent:
            for path in ("/api/report", "/api/report.csv", "/api/wallboard"):
                async with agent.get(c.base + path) as r:
                    assert r.status == 403, path
            async with boss.get(c.base + f"/api/report?since={hour}&interval=3600") as r:
                assert r.status == 200
                rows = (await r.json())["rows"]
            first = rows[0]
            assert (first["queue"], first["start"], first["offered"], first["answered"]) == (
                "support",
                hour,
                3,
                2,
            )
            assert (first["sl"], first["asa"], first["abandon_rate"]) == (0.5, 22.5, 1 / 3)
            async with boss.get(c.base + f"/api/report.csv?since={hour}&interval=3600") as r:
                assert r.headers["Content-Type"].startswith("text/csv")
                lines = (await r.text()).splitlines()
            assert lines[0] == "queue,start,end,offered,answered,abandoned,sl,asa,abandon_rate"
            assert lines[1].split(",")[3:] == ["3", "2", "1", "0.500", "22.500", "0.333"]
            for bad in ("since=x", "since=nan", "interval=10", f"since={now - 36000}&interval=60"):
                async with boss.get(c.base + "/api/report?" + bad) as r:
                    assert r.status == 400, bad
            async with boss.get(c.base + "/api/wallboard") as r:
                board = await r.json()
            [queue] = board["queues"]
            assert board["sl_target"] == 0.8
            if hour >= local_midnight(now):  # the calls are today's (not just past midnight)
                assert (queue["today"]["offered"], queue["today"]["sl"]) == (3, 0.5)
                assert queue["alarms"] == ["SL 50% under the 80% target"]


def test_intervals_csv_blank_for_missing_figures() -> None:
    rows = [{"queue": "q", "start": 0.0, "end": 3600.0, "offered": 0, "answered": 0,
             "abandoned": 0, "sl": None, "asa": None, "abandon_rate": None}]  # fmt: skip
    assert intervals_csv(rows).splitlines()[1].split(",")[3:] == ["0", "0", "0", "", "", ""]
