"""`pbx cdr list` in its three formats, with --since, and its one-line errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import Disposition, Store
from tests.interop.peers import pbx_cli
from tests.interop.phones import closed_cdrs, dial, in_thread, running_server
from tests.interop.sipclient import SipClient

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            now = time.time()
            old = await store.cdrs.open("old", "1001", "1002", now - 3 * 86400)
            await store.cdrs.close(old, now - 3 * 86400 + 5, Disposition.BUSY, "486 from callee")
            new = await store.cdrs.open("new", "1002", "1001", now - 60)
            await store.cdrs.answered(new, now - 50)
            await store.cdrs.set_trunk(new, "prov-b", "0123456789")
            await store.cdrs.close(new, now - 20, Disposition.ANSWERED, "caller hung up")

    asyncio.run(fill())
    return tmp_path


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _error(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("pbx: error: ")
    return line


def test_csv_and_json(data_dir: Path) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(_ok("cdr", "list", "--format", "csv", "--data-dir", str(data_dir)))
        )
    )
    assert [(r["call_id"], r["disposition"], r["billsec"]) for r in rows] == [
        ("old", "BUSY", "0.0"),
        ("new", "ANSWERED", "30.0"),
    ]
    records = json.loads(_ok("cdr", "list", "--format", "json", "--data-dir", str(data_dir)))
    assert [(r["caller"], r["callee"], r["duration"]) for r in records] == [
        ("1001", "1002", 5.0),
        ("1002", "1001", 40.0),
    ]


def test_table_and_since(data_dir: Path) -> None:
    out = _ok("cdr", "list", "--since", "1h", "--data-dir", str(data_dir))
    lines = out.splitlines()
    assert lines[0].split() == [
        "START",
        "CALLER",
        "CALLEE",
        "DISPOSITION",
        "DURATION",
        "BILLSEC",
        "TRUNK",
        "CAUSE",
    ]
    assert len(lines) == 2 and "ANSWERED" in lines[1] and "caller hung up" in lines[1]
    assert "prov-b/0123456789" in lines[1]


def test_bad_arguments_are_one_line(data_dir: Path) -> None:
    assert "--format 'xml'" in _error("cdr", "list", "--format", "xml", "--data-dir", str(data_dir))
    assert "--since 'yesterday'" in _error(
        "cdr", "list", "--since", "yesterday", "--data-dir", str(data_dir)
    )
    assert "pbx init" in _error("cdr", "list", "--data-dir", str(data_dir / "nothing"))


def _three_calls(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            now = time.time()
            for i, call_id in enumerate(("first", "second", "third")):
                row = await store.cdrs.open(call_id, "1001", "1002", now - 300 + 60 * i)
                await store.cdrs.close(row, now - 290 + 60 * i, Disposition.BUSY, "486")

    asyncio.run(fill())
    return tmp_path


@pytest.mark.parametrize("output", ["table", "csv", "json"])
def test_limit_shows_the_newest_calls_and_says_the_list_was_cut(
    tmp_path: Path, output: str
) -> None:
    data_dir = _three_calls(tmp_path)
    result = runner.invoke(
        app, ["cdr", "list", "--limit", "2", "--format", output, "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "pbx: note: showing the newest 2 of 3 calls (1 older one left out;"
        " raise --limit or use --since)"
    ]
    if output == "json":
        ids = [r["call_id"] for r in json.loads(result.stdout)]
    elif output == "csv":
        ids = [r["call_id"] for r in csv.DictReader(io.StringIO(result.stdout))]
    else:
        ids = []
        assert len(result.stdout.splitlines()) == 3  # header + two calls
    if ids:
        assert ids == ["second", "third"]  # newest last, like tail


def test_no_note_when_everything_fits(tmp_path: Path) -> None:
    data_dir = _three_calls(tmp_path)
    for limit in ("3", "9" * 30):  # a huge limit is no OverflowError
        result = runner.invoke(app, ["cdr", "list", "--limit", limit, "--data-dir", str(data_dir)])
        assert result.exit_code == 0 and result.stderr == ""


async def test_three_calls_through_the_switch_then_limit_2(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, SipClient(server.sip_port) as ua:
        for i, number in enumerate(("7771", "7772", "7773")):
            _, final = await dial(ua, server, number, rtp_port=40000 + 2 * i)
            assert final.status == 404
        rows = await closed_cdrs(server, 3)
        assert [r.callee for r in rows] == ["7771", "7772", "7773"]
        done = await in_thread(pbx_cli, tmp_path, "cdr", "list", "--limit", "2", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert [r["callee"] for r in csv.DictReader(io.StringIO(done.stdout))] == ["7772", "7773"]
    assert done.stderr == (
        "pbx: note: showing the newest 2 of 3 calls (1 older one left out;"
        " raise --limit or use --since)\n"
    )
