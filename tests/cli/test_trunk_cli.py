"""`pbx trunk add|list|set|del` on the database, their one-line errors, and `status`
without a server (the live path runs against a real server in
tests/interop/test_trunk_register.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.app import app
from cli.trunk import status_line

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


def test_add_list_set_del(data_dir: str) -> None:
    d = ("--data-dir", data_dir)
    assert run("trunk", "list", *d).stdout == "no trunks\n"
    out = run(
        "trunk", "add", "prov", "--host", "sip.example.net:5080", "--username", "4420",
        "--password", "Secr3t!pw", "--register", "--codecs", "pcma,pcmu",
        "--inbound", "192.0.2.0/24,198.51.100.7", "--max-channels", "10", "--skip-resolve", *d,
    ).stdout  # fmt: skip
    assert out == "added trunk prov (udp sip.example.net:5080, registers)\n"
    listed = run("trunk", "list", *d).stdout
    assert "Secr3t!pw" not in listed and "***" in listed
    assert "udp sip.example.net:5080" in listed and "PCMA,PCMU" in listed
    assert "192.0.2.0/24,198.51.100.7/32" in listed
    assert "Secr3t!pw" in run("trunk", "list", "--show-passwords", *d).stdout
    out = run("trunk", "set", "prov", "--transport", "tcp", "--no-register", *d).stdout
    assert out == "changed trunk prov: register, transport\n"
    listed = run("trunk", "list", *d).stdout
    assert "tcp sip.example.net:5080" in listed
    assert run("trunk", "del", "prov", *d).stdout == "deleted trunk prov\n"
    assert run("trunk", "list", *d).stdout == "no trunks\n"


E = "pbx: error: "
BAD = [
    (("add", "t", "--host", "h:99999"), E + "'h:99999': port '99999' is not between 1 and 65535"),
    (("add", "t", "--host", "bad host"), E + "'bad host' is not an IP address or host name"),
    (("add", "t"), E + "a trunk needs --host HOST[:PORT]"),
    (("add", "t", "--host", "h", "--transport", "sctp"), E + "transport 'sctp' is not one of udp,"
     " tcp"),
    (("add", "t", "--host", "h", "--register"), E + "a trunk that registers needs a username"),
    (("add", "t", "--host", "h", "--codecs", "G729"), E + "unknown codec 'G729' (known: PCMU,"
     " PCMA, G722, opus)"),
    (("add", "t", "--host", "no-such-host.invalid"), E + "host 'no-such-host.invalid' does not"
     " resolve: *"),
    (("set", "nope", "--port-less"), None),
    (("set", "nope", "--host", "h"), E + "no trunk 'nope'"),
    (("set", "nope"), E + "nothing to change (see `pbx trunk set --help`)"),
    (("del", "nope"), E + "no trunk 'nope'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_exit_1(
    data_dir: str, args: tuple[str, ...], message: str | None
) -> None:
    result = run("trunk", *args, "--data-dir", data_dir)
    if message is None:  # an unknown option is a usage error (exit 2), still one line
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        return
    line = one_error(result)
    if message.endswith("*"):
        assert line.startswith(message[:-1]) and line.endswith("(--skip-resolve stores it anyway)")
    else:
        assert line == message


def test_duplicate_name(data_dir: str) -> None:
    assert run("trunk", "add", "t", "--host", "10.0.0.1", "--data-dir", data_dir).exit_code == 0
    assert one_error(run("trunk", "add", "t", "--host", "10.0.0.2", "--data-dir", data_dir)) == (
        "pbx: error: trunk 't' already exists"
    )


def test_status_needs_the_running_server(data_dir: str) -> None:
    line = one_error(run("trunk", "status", "--data-dir", data_dir))
    assert line.startswith("pbx: error: ")


def test_status_line_wording() -> None:
    now = 1000.0
    registered = {"state": "registered", "registered_until": 1060.0}
    assert status_line(registered, now).startswith("registered until ")
    assert status_line(registered, now).endswith("(in 60 s)")
    failed = {
        "state": "failed",
        "failure": {"status": 403, "reason": "Forbidden"},
        "next_retry": 1030.0,
    }
    assert status_line(failed, now).startswith("failed: 403 Forbidden; next retry ")
    unresolved = {"state": "failed", "failure": {"status": None, "reason": "Name unknown"}}
    assert status_line(unresolved, now) == "failed: Name unknown"
    assert status_line({"state": "off"}, now) == "not registering"
