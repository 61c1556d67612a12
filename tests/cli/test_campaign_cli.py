"""`pbx campaign …` and `pbx dnc …` offline: settings with their checks, contact import
with bad rows by line, start/pause/stop into the store, stats from stored attempts, DNC
lists; every error is one line with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import Campaign, Contact, DialAttempt, Store

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")

    asyncio.run(fill())
    return tmp_path


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _campaign(data_dir: Path, name: str) -> Campaign:
    async def read() -> Campaign:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.campaigns.get(name)

    return asyncio.run(read())


def _contacts(data_dir: Path, name: str) -> list[Contact]:
    async def read() -> list[Contact]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.contacts.of_campaign(name)

    return asyncio.run(read())


def _create(data_dir: Path, *extra: str) -> tuple[int, str, str]:
    return _run(
        data_dir,
        "campaign",
        "create",
        "spring",
        "--caller-id",
        "+442071234567",
        "--queue",
        "sales",
        *extra,
    )


def test_create_set_show_list(data_dir: Path) -> None:
    code, out, _ = _create(
        data_dir,
        "--mode",
        "predictive",
        "--trunk",
        "trunk:prov",
        "--retry",
        "busy=120/2",
        "--window",
        "08:00-20:30",
        "--no-amd",
    )
    assert (code, out) == (0, "created campaign spring (predictive, stopped)\n")
    c = _campaign(data_dir, "spring")
    assert (c.trunk, c.window_start, c.window_end, c.amd) == ("trunk:prov", "08:00", "20:30", False)
    assert json.loads(c.retries) == {"busy": [120.0, 2]}
    assert c.seller_number == "+442071234567"
    assert _run(data_dir, "campaign", "set", "spring", "ring_timeout", "30")[1] == (
        "campaign spring: ring_timeout 30.0\n"
    )
    assert _run(data_dir, "campaign", "set", "spring", "target", "2.5")[0] == 0
    assert _campaign(data_dir, "spring").abandon_target == pytest.approx(0.025)
    code, out, _ = _run(data_dir, "campaign", "show", "spring")
    assert code == 0 and "ring_timeout: 30.0\n" in out and 'retries: {"busy": [120.0, 2]}' in out
    code, out, _ = _run(data_dir, "campaign", "list")
    assert out.splitlines()[1].split() == [
        "spring",
        "predictive",
        "stopped",
        "sales",
        "trunk:prov",
        "0",
        "0",
        "0",
        "0",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--ring-timeout", "10"), "pbx: error: ring timeout must be at least 15 s, not 10\n"),
        (
            ("--window", "21:00-09:00"),
            "pbx: error: the calling window 21:00-09:00 must start before it ends\n",
        ),
        (
            ("--retry", "sale=1/1"),
            "pbx: error: --retry 'sale=1/1': write OUTCOME=DELAY/MAX, OUTCOME one of"
            " busy, no_answer, machine, failed, dropped\n",
        ),
        (
            ("--mode", "blast"),
            "pbx: error: mode 'blast': choose preview, progressive, predictive, agentless\n",
        ),
    ],
)
def test_bad_settings_one_line(data_dir: Path, args: tuple[str, ...], error: str) -> None:
    code, out, err = _create(data_dir, *args)
    assert (code, out, err) == (1, "", error)


def test_set_errors(data_dir: Path) -> None:
    _create(data_dir)
    assert _run(data_dir, "campaign", "set", "spring", "ring_timeout", "5")[2] == (
        "pbx: error: ring timeout must be at least 15 s, not 5\n"
    )
    code, _, err = _run(data_dir, "campaign", "set", "spring", "colour", "red")
    assert code == 1 and err.startswith("pbx: error: unknown setting 'colour'")
    assert _run(data_dir, "campaign", "set", "nope", "max_lines", "3")[2] == (
        "pbx: error: no campaign 'nope'\n"
    )


def test_start_pause_stop_offline(data_dir: Path) -> None:
    _create(data_dir)
    assert _run(data_dir, "campaign", "start", "spring")[1] == (
        "campaign spring: running (the dialer follows when the server runs)\n"
    )
    assert _campaign(data_dir, "spring").state == "running"
    _run(data_dir, "campaign", "pause", "spring")
    assert _campaign(data_dir, "spring").state == "paused"
    _run(data_dir, "campaign", "stop", "spring")
    assert _campaign(data_dir, "spring").state == "stopped"
    assert _run(data_dir, "campaign", "start", "nope")[:3:2] == (
        1,
        "pbx: error: no campaign 'nope'\n",
    )


def test_import_keeps_good_rows_reports_bad_by_line(data_dir: Path, tmp_path: Path) -> None:
    _create(data_dir)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        "Phone,Name,Plan,TZ\n"
        "020 7946 0001,Ann Lee,gold,\n"
        "not a number,Bob,silver,\n"
        '"+1 (212) 555-0100","Cy, Jr.",bronze,America/New_York\n'
        "\n"
        "020 7946 0002,Di,gold,Mars/Base\n"
    )
    code, out, err = _run(
        data_dir, "campaign", "import", "spring", str(csv_file), "--country", "GB"
    )
    assert code == 1
    assert (
        out == "imported 2 contacts into spring (2 new, 0 updated) (numbers read as GB);"
        " 2 rows left out\n"
    )
    assert err.splitlines() == [
        f"{csv_file}:3: number 'not a number' has characters other than digits",
        f"{csv_file}:6: unknown time zone 'Mars/Base'",
    ]
    contacts = _contacts(data_dir, "spring")
    assert [(c.number, c.zone, c.fields) for c in contacts] == [
        ("+442079460001", "", {"Name": "Ann Lee", "Plan": "gold"}),
        ("+12125550100", "America/New_York", {"Name": "Cy, Jr.", "Plan": "bronze"}),
    ]
    code, _, err = _run(
        data_dir, "campaign", "import", "spring", str(tmp_path / "none.csv"), "--country", "GB"
    )
    assert code == 1 and err.startswith("pbx: error: cannot read")
    (tmp_path / "nonum.csv").write_text("Name\nAnn\n")
    code, _, err = _run(
        data_dir, "campaign", "import", "spring", str(tmp_path / "nonum.csv"), "--country", "GB"
    )
    assert (code, err) == (
        1,
        "pbx: error: no number column in the header (Name); map one with --map number=Header\n",
    )


def test_stats_offline_from_attempts(data_dir: Path) -> None:
    _create(data_dir)
    now = time.time()

    async def fill() -> None:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            for i in range(3):
                await store.attempts.add(
                    DialAttempt(
                        "spring",
                        f"+1415555010{i}",
                        now - 50,
                        now - 10,
                        "connected",
                        answered_at=now - 45,
                        amd="human",
                        agent="1001",
                        connected_at=now - 44,
                    )
                )
            await store.attempts.add(
                DialAttempt(
                    "spring",
                    "+14155550109",
                    now - 40,
                    now - 30,
                    "dropped",
                    answered_at=now - 35,
                    amd="human",
                )
            )
            await store.attempts.add(
                DialAttempt(
                    "spring",
                    "+14155550108",
                    now - 40,
                    now - 30,
                    "machine",
                    answered_at=now - 35,
                    amd="machine",
                )
            )
            await store.attempts.add(
                DialAttempt("spring", "+14155550107", now - 40, now - 30, "busy")
            )

    asyncio.run(fill())
    code, out, _ = _run(data_dir, "campaign", "stats", "spring", "--json")
    figures = json.loads(out)
    assert code == 0
    assert {
        k: figures[k]
        for k in ("dialled", "answered", "human", "machine", "connected", "dropped", "busy")
    } == {
        "dialled": 6,
        "answered": 5,
        "human": 4,
        "machine": 1,
        "connected": 3,
        "dropped": 1,
        "busy": 1,
    }
    assert figures["abandon_rolling_pct"] == 25.0 and figures["abandon_today_pct"] == 25.0


def test_dnc_add_check_del_import(data_dir: Path, tmp_path: Path) -> None:
    _create(data_dir)
    assert _run(data_dir, "dnc", "add", "+44 20 7946 0001")[1] == (
        "+442079460001 added to the global do-not-call list\n"
    )
    assert _run(data_dir, "dnc", "add", "+442079460001")[1] == (
        "+442079460001 is already on the global do-not-call list\n"
    )
    assert _run(data_dir, "dnc", "check", "+442079460001", "-c", "spring")[1] == (
        "+442079460001: do not call (the global list, cli)\n"
    )
    assert (
        _run(data_dir, "dnc", "add", "020 7946 0002", "--campaign", "spring", "--country", "GB")[0]
        == 0
    )
    assert _run(data_dir, "dnc", "check", "+442079460002")[1] == "+442079460002: not listed\n"
    assert _run(data_dir, "dnc", "check", "+442079460002", "-c", "spring")[1] == (
        "+442079460002: do not call (campaign spring's list, cli)\n"
    )
    assert _run(data_dir, "dnc", "del", "+442079460001")[1] == (
        "+442079460001 removed from the global do-not-call list\n"
    )
    assert _run(data_dir, "dnc", "del", "+442079460001")[2] == (
        "pbx: error: +442079460001 is not on the global do-not-call list\n"
    )
    assert _run(data_dir, "dnc", "add", "02079460001")[2] == (
        "pbx: error: 02079460001 has no country code: give --country (e.g. GB)\n"
    )
    assert (
        _run(data_dir, "dnc", "add", "+442079460001", "-c", "nope")[2]
        == "pbx: error: no campaign 'nope'\n"
    )
    numbers = tmp_path / "dnc.txt"
    numbers.write_text("number\n+12125550100\nrubbish\n+1 212 555 0101\n")
    code, out, err = _run(data_dir, "dnc", "import", str(numbers))
    assert (code, out) == (
        1,
        "2 numbers on the global do-not-call list (2 new); 1 lines left out\n",
    )
    assert err == f"{numbers}:3: rubbish has no country code: give --country (e.g. GB)\n"
    assert (
        _run(data_dir, "dnc", "check", "+12125550101")[1]
        == "+12125550101: do not call (the global list, import)\n"
    )


def test_uk_stats_count_estimated_amd_false_positives(data_dir: Path) -> None:
    """UK profile: the calendar day's rate counts the AMD's false-positive share of the
    machine verdicts as abandoned people: (1 drop + 0.25 * 4 machines) / (3 + 1)."""
    assert (
        _run(
            data_dir,
            "campaign",
            "create",
            "uk",
            "--caller-id",
            "+442071234567",
            "--queue",
            "sales",
            "--profile",
            "UK",
            "--amd-fp",
            "25",
        )[0]
        == 0
    )
    now = time.time()

    async def fill() -> None:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            for i, (outcome, amd) in enumerate(
                [("connected", "human"), ("connected", "human"), ("dropped", "human")]
                + [("machine", "machine")] * 4
            ):
                await store.attempts.add(
                    DialAttempt(
                        "uk",
                        f"+4420794600{i:02d}",
                        now - 60,
                        now - 30,
                        outcome,
                        answered_at=now - 50,
                        amd=amd,
                        connected_at=now - 49.5 if outcome == "connected" else None,
                    )
                )

    asyncio.run(fill())
    figures = json.loads(_run(data_dir, "campaign", "stats", "uk", "--json")[1])
    assert figures["abandon_today_pct"] == 50.0 and figures["abandon_rolling_pct"] == 50.0
    assert _campaign(data_dir, "uk").amd_fp_rate == 0.25
