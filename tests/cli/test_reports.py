"""`pbx queue report`, `pbx agent report`, `pbx erlang --queue` and `pbx queue show --once`
with no server: figures from a store filled with constructed queue events, checked
against values worked out by hand; errors are one line, exit 1."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import reports
from cli.app import app
from cli.reports import parse_when, period
from pbx.errors import ConfigError
from pbx.store import Queue, QueueEventRecord, Store

runner = CliRunner()


def at(hh: int, mm: int, ss: int = 0) -> float:
    """A local time on 2026-11-30."""
    return datetime(2026, 11, 30, hh, mm, ss).timestamp()


def ev(t: float, call: str, queue: str, agent: str | None, name: str, **data: Any) -> Any:
    return QueueEventRecord(t, call, queue, agent, name, data)


# sales (SL threshold 20 s): c1 answered after 10 s, talk 180 + wrap-up 30; c2 abandoned
# after 30 s; c3 answered after 40 s, talk 120 (no wrap-up).
# support (threshold 30 s): c4 abandoned after 5 s (a short abandon).
# 1001 logged in 07:55-10:00, paused for lunch 09:00-09:30.
EVENTS = [
    ev(at(7, 55), "", "sales", "1001", "AGENTLOGIN"),
    ev(at(8, 0), "c1", "sales", None, "ENTERQUEUE", position=1, caller="555"),
    ev(at(8, 0, 10), "c1", "sales", "1001", "CONNECT", hold=10.0, ring=3.0),
    ev(at(8, 1), "c2", "sales", None, "ENTERQUEUE", position=1, caller="556"),
    ev(at(8, 1, 30), "c2", "sales", None, "ABANDON", wait=30.0, position=1),
    ev(at(8, 2), "c3", "sales", None, "ENTERQUEUE", position=1, caller="557"),
    ev(at(8, 2, 40), "c3", "sales", "1002", "CONNECT", hold=40.0, ring=2.0),
    ev(at(8, 3, 10), "c1", "sales", "1001", "COMPLETEAGENT", hold=10.0, talk=180.0),
    ev(at(8, 3, 40), "c1", "sales", "1001", "WRAPUPEND", wrapup=30.0),
    ev(at(8, 4, 40), "c3", "sales", "1002", "COMPLETECALLER", hold=40.0, talk=120.0),
    ev(at(9, 0), "", "", "1001", "PAUSE", reason="lunch"),
    ev(at(9, 0), "c4", "support", None, "ENTERQUEUE", position=1, caller="558"),
    ev(at(9, 0, 5), "c4", "support", None, "ABANDON", wait=5.0, position=1),
    ev(at(9, 30), "", "", "1001", "UNPAUSE", paused=1800.0),
    ev(at(10, 0), "", "sales", "1001", "AGENTLOGOFF", logged=7500.0),
]
PERIOD = ["--since", "2026-11-30T07:00", "--until", "2026-11-30T12:00"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")
            for user in ("1001", "1002", "1003"):
                await store.users.add(user, "Aa-secret-xyz1", "aiopbx")
            await store.queues.add(Queue("sales", "700"))
            await store.queues.add(Queue("support", "701", service_level_seconds=30.0))
            await store.queues.add_member("sales", "1001")
            await store.queues.add_member("sales", "1002")
            await store.queue_events.append(EVENTS)

    asyncio.run(fill())
    return tmp_path


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_queue_report_json_is_the_hand_computed_figures(data_dir: Path) -> None:
    code, out, err = _run(data_dir, "queue", "report", *PERIOD, "--format", "json")
    assert (code, err) == (0, "")
    sales, support = json.loads(out)
    assert {k: sales[k] for k in (
        "queue", "offered", "answered", "answered_within", "abandoned", "abandoned_within",
        "waiting", "completed", "sl", "sl2", "asa", "aht", "avg_talk", "longest_wait",
    )} == {
        "queue": "sales", "offered": 3, "answered": 2, "answered_within": 1, "abandoned": 1,
        "abandoned_within": 0, "waiting": 0, "completed": 2, "sl": 0.5, "sl2": 1 / 3,
        "asa": 25.0, "aht": 165.0, "avg_talk": 150.0, "longest_wait": 40.0,
    }  # fmt: skip
    assert support["threshold"] == 30.0
    assert (support["offered"], support["abandoned"], support["abandoned_within"]) == (1, 1, 1)
    assert (support["sl"], support["sl2"], support["asa"]) == (None, 1.0, None)


def test_queue_report_table_and_one_queue(data_dir: Path) -> None:
    code, out, _ = _run(data_dir, "queue", "report", "sales", *PERIOD)
    assert code == 0
    assert out.splitlines() == [
        "QUEUE  OFFERED  ANSWERED  ABANDONED  ABANDONED_WITHIN  WAITING  SL      SL2     ASA"
        "   AHT    LONGEST_WAIT",
        "sales  3        2         1          0                 0        50.0 %  33.3 %  25.0"
        "  165.0  40.0",
    ]


def test_queue_report_csv_of_a_period_without_the_support_call(data_dir: Path) -> None:
    code, out, _ = _run(
        data_dir, "queue", "report", "--since", "2026-11-30", "--until", "2026-11-30T08:30",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["queue"], r["offered"], r["sl"], r["aht"]) for r in rows] == [
        ("sales", "3", "0.5", "165.0")
    ]


def test_a_period_with_no_calls(data_dir: Path) -> None:
    span = ["--since", "2026-11-29", "--until", "2026-11-30"]
    assert _run(data_dir, "queue", "report", *span)[1] == "no queue calls in the period\n"
    assert _run(data_dir, "queue", "report", *span, "--format", "json")[1] == "[]\n"
    header = _run(data_dir, "queue", "report", *span, "--format", "csv")[1]
    assert header.startswith("queue,threshold,offered,answered,")


def test_agent_report(data_dir: Path) -> None:
    code, out, _ = _run(data_dir, "agent", "report", *PERIOD, "--format", "json")
    assert code == 0
    a1001, a1002 = json.loads(out)
    assert a1001 == {
        "agent": "1001", "answered": 1, "completed": 1, "ring_no_answer": 0, "talk": 180.0,
        "wrapup": 30.0, "paused": 1800.0, "logged": 7500.0, "pauses": "lunch=1800",
        "occupancy": 210.0 / 5700.0,
    }  # fmt: skip
    assert (a1002["agent"], a1002["talk"], a1002["logged"], a1002["occupancy"]) == (
        "1002", 120.0, 0.0, None,
    )  # fmt: skip
    code, out, _ = _run(data_dir, "agent", "report", "1001", *PERIOD)
    assert out.splitlines()[1].split() == [
        "1001", "1", "1", "0", "180.0", "30.0", "1800.0", "7500.0", "3.7", "%", "lunch=1800",
    ]  # fmt: skip


def test_agent_report_clips_to_the_period(data_dir: Path) -> None:
    """09:15-09:45: logged 30 min, of which 15 min paused (lunch), no call."""
    span = ["--since", "2026-11-30T09:15", "--until", "2026-11-30T09:45", "--format", "json"]
    [a1001] = json.loads(_run(data_dir, "agent", "report", "1001", *span)[1])
    assert (a1001["logged"], a1001["paused"], a1001["talk"], a1001["occupancy"]) == (
        1800.0, 900.0, 0.0, 0.0,
    )  # fmt: skip


def test_erlang_from_the_queue_history(data_dir: Path) -> None:
    code, out, err = _run(
        data_dir, "erlang", "--queue", "sales", "--since", "2026-11-30T08:00",
        "--until", "2026-11-30T10:00", "--shrinkage", "30",
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("queue sales: staffing by hour of day from 2026-11-30 08:00")
    # 08:00: 3 calls in one hour, AHT 165 s -> 0.1375 Erlangs: 1 agent, 2 scheduled.
    assert lines[2:] == [
        "hour   calls/h  AHT    Erlangs  agents  scheduled",
        "08:00  3.00     165 s  0.14     1       2",
        "09:00  0.00     165 s  0.00     0       0",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("queue", "report", "nosuch", *PERIOD), "no queue 'nosuch' (and no events of one)"),
        (("queue", "report", "--since", "yesterday"), "--since 'yesterday' is not a time like"),
        (("queue", "report", "--since", "1h", "--until", "2h"), "--since 1h is not before"),
        (("queue", "report", "--format", "xml"), "--format 'xml': choose table, csv, json"),
        (("agent", "report", "nobody", *PERIOD), "nobody"),
        (("agent", "report", "--until", "2026-13-01"), "--until '2026-13-01' is not a time"),
        (("erlang", "--queue", "nosuch"), "no queue 'nosuch'"),
        (("erlang", "--queue", "sales", "--aht", "180"), "leave out --aht"),
        (("queue", "show", "nosuch", "--once"), "no queue 'nosuch'"),
    ],
)
def test_errors_are_one_line_exit_1(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(data_dir, *args)
    assert code == 1, (out, err)
    assert err.startswith("pbx: error: ") and err.count("\n") == 1
    assert message in err


def test_erlang_without_queue_still_needs_its_options() -> None:
    result = runner.invoke(app, ["erlang", "--calls", "100", "--aht", "180"])
    assert result.exit_code == 2
    assert result.stderr.startswith("pbx: error: Missing option '--per'")


def test_queue_show_once_without_a_server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's figures from the store (an event stamped a minute ago), agents from it."""
    monkeypatch.setattr(reports, "local_midnight", lambda now: now - 3600.0)  # even at 00:00

    async def today() -> None:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            now = time.time()
            await store.queue_events.append(
                [ev(now - 60, "t1", "sales", None, "ENTERQUEUE", position=1, caller="9")]
            )
            await store.agents.login("1002", now - 30)

    asyncio.run(today())
    code, out, err = _run(data_dir, "queue", "show", "sales", "--once")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith("(no server running: agents from the database)")
    assert lines[2:6] == [
        "queue sales (700) ringall",
        "  waiting -  longest wait -",
        "  today: offered 1  answered 0  abandoned 0  SL - (within 20 s)  ASA -  AHT -",
        "  agents: available 1, logged-out 1",
    ]
    agents = [line.split()[:2] for line in lines[9:]]
    assert agents == [["1001", "logged-out"], ["1002", "available"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8h", 1000.0 - 8 * 3600), ("90m", 1000.0 - 5400), ("2026-11-30", at(0, 0)),
     ("2026-11-30T08:30", at(8, 30)), ("2026-11-30 08:30:15", at(8, 30, 15))],
)  # fmt: skip
def test_when_forms(text: str, expected: float) -> None:
    assert parse_when("--since", text, 1000.0) == expected


def test_today_is_local_midnight() -> None:
    now = at(15, 20)
    assert period("today", None, now) == (at(0, 0), now)
    assert reports.local_midnight(now) == at(0, 0)
    with pytest.raises(ConfigError, match="not before"):
        period("today", "2026-11-29", now)
