"""acd.wallboard: the `pbx queue show` frame as a pure function of a snapshot (round 7's
`GET /acd` shape) and today's figures, table-tested line by line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from acd.stats import QueueStats
from acd.wallboard import duration, lines, renderable, store_snapshot

NOW = datetime(2026, 12, 3, 10, 0, 0).timestamp()
STAMP = "2026-12-03 10:00:00"


def _stats(queue: str, **values: Any) -> QueueStats:
    base: dict[str, Any] = {
        name: 0 for name in QueueStats.__slots__ if name not in ("queue", "threshold")
    }
    base.update(sl=None, sl2=None, asa=None, aht=None, avg_talk=None, longest_wait=None)
    base.update(values)
    return QueueStats(queue=queue, threshold=20.0, **base)


SNAPSHOT: dict[str, Any] = {
    "queues": [
        {
            "name": "sales",
            "number": "700",
            "strategy": "ringall",
            "waiting": [
                {"call_id": "c2", "caller": "1005", "position": 2, "wait": 12.4},
                {"call_id": "c1", "caller": "1004", "position": 1, "wait": 65.0},
            ],
            "longest_wait": 65.0,
            "agents": {"available": 1, "paused": 1, "on-call": 1},
        },
        {
            "name": "support",
            "number": "701",
            "strategy": "rrmemory",
            "waiting": [],
            "longest_wait": 0,
            "agents": {},
        },
    ],
    "agents": [
        {"name": "1002", "state": "paused", "since": NOW - 300, "reason": "lunch",
         "queues": ["sales"], "call": None},
        {"name": "1001", "state": "on-call", "since": NOW - 3725, "reason": None,
         "queues": ["sales", "support"], "call": "c0"},
        {"name": "1003", "state": "available", "since": NOW - 5, "reason": None,
         "queues": ["sales"], "call": None},
    ],
    "now": NOW,
}  # fmt: skip

TODAY = {
    "sales": _stats("sales", offered=12, answered=10, abandoned=2, sl=0.8, asa=12.34, aht=181.0)
}

SALES = [
    "queue sales (700) ringall",
    "  waiting 2  longest wait 0:01:05",
    "  today: offered 12  answered 10  abandoned 2  SL 80.0 % (within 20 s)  ASA 12.3 s"
    "  AHT 181.0 s",
    "  agents: available 1, on-call 1, paused 1",
    "  POS  CALLER  WAIT",
    "  1    1004    0:01:05",
    "  2    1005    0:00:12",
]


def test_the_whole_board() -> None:
    assert lines(SNAPSHOT, TODAY) == [
        f"aiopbx queues  {STAMP}  (live)",
        "",
        *SALES,
        "",
        "queue support (701) rrmemory",
        "  waiting 0  longest wait 0:00:00",
        "  today: no calls",
        "  agents: none",
        "",
        "agents",
        "  AGENT  STATE      FOR      REASON  CALL  QUEUES",
        "  1001   on-call    1:02:05  -       c0    sales,support",
        "  1002   paused     0:05:00  lunch   -     sales",
        "  1003   available  0:00:05  -       -     sales",
    ]


def test_one_queue_keeps_its_agents_only() -> None:
    frame = lines(SNAPSHOT, TODAY, "support")
    assert frame[2:6] == [
        "queue support (701) rrmemory",
        "  waiting 0  longest wait 0:00:00",
        "  today: no calls",
        "  agents: none",
    ]
    assert frame[-2:] == [
        "  AGENT  STATE    FOR      REASON  CALL  QUEUES",
        "  1001   on-call  1:02:05  -       c0    sales,support",
    ]


def test_counts_from_the_agents_when_the_queue_gives_none() -> None:
    snapshot = {**SNAPSHOT, "queues": [{**SNAPSHOT["queues"][0], "agents": None}]}
    assert lines(snapshot, {})[5] == "  agents: available 1, on-call 1, paused 1"


def test_unknown_queue_and_no_agents() -> None:
    assert lines({"queues": [], "agents": [], "now": NOW}, {}, "nosuch") == [
        f"aiopbx queues  {STAMP}  (live)",
        "",
        "queue nosuch: not in the snapshot",
        "",
        "no agents",
    ]


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"queues": "x", "agents": 3, "now": "later"},
        {"queues": [{"name": "q", "waiting": [{"position": "x", "wait": "long"}, 7]}],
         "agents": [{"name": "a", "since": "never", "queues": None}], "now": NOW},
        {"queues": [{}], "agents": [{}], "now": float("nan")},
    ],
)  # fmt: skip
def test_malformed_snapshots_never_fail(snapshot: dict[str, Any]) -> None:
    frame = lines(snapshot, {})
    assert frame[0].startswith("aiopbx queues")
    renderable(snapshot, {})


def test_offline_snapshot_from_the_store() -> None:
    snapshot = store_snapshot(
        [{"name": "sales", "number": "700", "strategy": "ringall"}],
        [{"name": "1001", "state": "paused", "since": NOW - 60, "reason": "lunch",
          "queues": ["sales"]}],
        NOW,
    )  # fmt: skip
    assert lines(snapshot, TODAY) == [
        f"aiopbx queues  {STAMP}  (no server running: agents from the database)",
        "",
        "queue sales (700) ringall",
        "  waiting -  longest wait -",
        SALES[2],
        "  agents: paused 1",
        "",
        "agents",
        "  AGENT  STATE   FOR      REASON  CALL  QUEUES",
        "  1001   paused  0:01:00  lunch   -     sales",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00:00"), (59.9, "0:00:59"), (3600, "1:00:00"), (90061, "25:01:01"), (-4, "0:00:00"),
     (None, "-"), ("5", "-"), (float("inf"), "-")],
)  # fmt: skip
def test_durations(seconds: Any, text: str) -> None:
    assert duration(seconds) == text


def test_rich_frame_has_the_same_cells() -> None:
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(renderable(SNAPSHOT, TODAY))
    text = console.export_text()
    for cell in ("queue sales (700) ringall", "1004", "0:01:05", "lunch", "1:02:05", "c0"):
        assert cell in text
