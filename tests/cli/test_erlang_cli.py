"""`pbx erlang` through typer's CliRunner: the published vectors, the neighbour table,
unstable rows, and one error line (exit 1) for every bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.erlang import parse_duration, parse_target

runner = CliRunner()


def test_100_calls_per_30_minutes_with_shrinkage() -> None:
    result = runner.invoke(
        app,
        ["erlang", "--calls", "100", "--per", "30m", "--aht", "180", "--target", "80/20",
         "--shrinkage", "30"],
    )  # fmt: skip
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "traffic: 10.00 Erlangs (100 calls per 30m, AHT 180 s)\n"
        "agents needed: 14 (80 % answered within 20 s)\n"
        "scheduled: 20 (with 30 % shrinkage)\n"
        "\n"
        "agents  SL 20 s  ASA      P(wait)  occupancy  scheduled\n"
        "12      64.02 %  40.44 s  0.4494   83.3 %     18\n"
        "13      79.56 %  17.12 s  0.2853   76.9 %     19\n"
        "14      88.84 %  7.84 s   0.1741   71.4 %     20         <- needed\n"
        "15      94.15 %  3.67 s   0.1020   66.7 %     22\n"
        "16      97.06 %  1.72 s   0.0573   62.5 %     23\n"
    )


def test_occupancy_cap_forces_40() -> None:
    result = runner.invoke(
        app,
        ["erlang", "--calls", "1000", "--per", "1h", "--aht", "2m", "--max-occupancy", "85",
         "--shrinkage", "30"],
    )  # fmt: skip
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "traffic: 33.33 Erlangs (1000 calls per 1h, AHT 120 s)",
        "agents needed: 40 (80 % answered within 20 s, occupancy at most 85 %)",
        "scheduled: 58 (with 30 % shrinkage)",
    ]
    assert lines[5].split() == ["38", "84.68", "%", "8.57", "s", "0.3335", "87.7", "%", "55"]
    assert lines[7].split() == [
        "40", "93.72", "%", "3.43", "s", "0.1907", "83.3", "%", "58", "<-", "needed",
    ]  # fmt: skip


def test_25_per_10_minutes_default_target() -> None:
    result = runner.invoke(app, ["erlang", "--calls", "25", "--per", "600s", "--aht", "3m"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1] == "agents needed: 11 (80 % answered within 20 s)"
    assert lines[3].split() == ["agents", "SL", "20", "s", "ASA", "P(wait)", "occupancy"]
    table = {line.split()[0]: line.split() for line in lines[4:]}
    assert table["10"][1] == "76.78" and table["11"][1] == "88.08" and table["11"][-1] == "needed"


def test_unstable_neighbours_are_marked() -> None:
    # 10 Erlangs and a 10 % target: 11 agents; 9 and 10 cannot keep up
    result = runner.invoke(
        app, ["erlang", "--calls", "100", "--per", "30m", "--aht", "180", "--target", "10/20"]
    )
    assert result.exit_code == 0
    rows = result.stdout.splitlines()[3:]
    assert rows[1].split() == ["9", "unstable", "-", "-", "100.0", "%"]
    assert rows[2].split() == ["10", "unstable", "-", "-", "100.0", "%"]
    assert rows[3].split()[:3] == ["11", "38.96", "%"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per", "30x"], "--per '30x' is not a duration like 90s, 30m, 1h or 180"),
        (["--per", "0"], "--per '0' must be longer than 0 s"),
        (["--aht", "-3"], "--aht '-3' is not a duration like 90s, 30m, 1h or 180"),
        (["--aht", "0m"], "--aht '0m' must be longer than 0 s"),
        (["--target", "80"], "--target '80' is not PERCENT/SECONDS like 80/20"),
        (["--target", "100/20"], "--target '100/20': the percentage must be above 0 and below 100"),
        (["--target", "0/20"], "--target '0/20': the percentage must be above 0 and below 100"),
        (["--target", "80/x"], "--target '80/x' is not PERCENT/SECONDS like 80/20"),
        (["--calls", "-1"], "--calls -1 must be a number of calls >= 0"),
        (["--calls", "inf"], "--calls inf must be a number of calls >= 0"),
        (
            ["--max-occupancy", "0"],
            "--max-occupancy 0 must be a percentage above 0 and at most 100",
        ),
        (
            ["--max-occupancy", "120"],
            "--max-occupancy 120 must be a percentage above 0 and at most 100",
        ),
        (["--shrinkage", "100"], "--shrinkage 100 must be a percentage at least 0 and below 100"),
        (["--shrinkage", "-5"], "--shrinkage -5 must be a percentage at least 0 and below 100"),
    ],
)
def test_bad_input_is_one_line_exit_1(args: list[str], message: str) -> None:
    base = {"--calls": "100", "--per": "30m", "--aht": "180"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    argv = ["erlang", *[part for pair in base.items() for part in pair]]
    result = runner.invoke(app, argv)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"pbx: error: {message}\n"


def test_missing_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["erlang", "--calls", "100", "--per", "30m"])
    assert result.exit_code == 2
    assert result.stderr.startswith("pbx: error: Missing option '--aht'")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0), ("7d", 604800.0), ("180", 180.0),
     ("7.5", 7.5), ("1.5h", 5400.0)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration("--per", text) == seconds


def test_target_forms() -> None:
    assert parse_target("80/20") == (0.8, 20.0)
    assert parse_target("90%/15s") == (0.9, 15.0)
    assert parse_target("80/0") == (0.8, 0.0)
