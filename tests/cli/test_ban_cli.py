"""`pbx trust …` on the database and the one-line errors of `pbx ban …` and
`pbx serve --trust` (the live paths run against a real server in
tests/interop/test_bans.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.app import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    path = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(path)]).exit_code == 0
    return str(path)


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_trust_add_list_del(data_dir: str) -> None:
    assert run("trust", "list", "--data-dir", data_dir).stdout == "no trusted networks\n"
    out = run("trust", "add", "192.168.1.7/24", "--data-dir", data_dir).stdout
    assert out == "trusted 192.168.1.0/24\n"
    assert run("trust", "add", "10.0.0.1", "--data-dir", data_dir).stdout == "trusted 10.0.0.1/32\n"
    assert run("trust", "list", "--data-dir", data_dir).stdout == "192.168.1.0/24\n10.0.0.1/32\n"
    assert one_error(run("trust", "add", "192.168.1.0/24", "--data-dir", data_dir)) == (
        "pbx: error: 192.168.1.0/24 is already trusted"
    )
    assert one_error(run("trust", "add", "192.168.1.0/33", "--data-dir", data_dir)) == (
        "pbx: error: '192.168.1.0/33' is not an IP address or CIDR network"
    )
    out = run("trust", "del", "192.168.1.99/24", "--data-dir", data_dir).stdout
    assert out == "no longer trusted: 192.168.1.0/24\n"
    assert one_error(run("trust", "del", "192.168.1.0/24", "--data-dir", data_dir)) == (
        "pbx: error: 192.168.1.0/24 is not a trusted network"
    )
    assert run("trust", "list", "--data-dir", data_dir).stdout == "10.0.0.1/32\n"


def test_trust_needs_an_initialized_data_directory(tmp_path: Path) -> None:
    line = one_error(run("trust", "list", "--data-dir", str(tmp_path / "typo")))
    assert line.startswith("pbx: error: no database in ")


def test_ban_commands_need_the_running_server(data_dir: str) -> None:
    for args in (("ban", "list"), ("ban", "lift", "192.0.2.1")):
        line = one_error(run(*args, "--data-dir", data_dir))
        assert line.startswith("pbx: error: the server is not running"), line


def test_serve_refuses_a_bad_trusted_network(data_dir: str) -> None:
    result = run("serve", "--data-dir", data_dir, "--trust", "office", "--port", "0")
    assert one_error(result) == "pbx: error: 'office' is not an IP address or CIDR network"
