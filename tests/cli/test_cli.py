"""Tests of the `pbx` CLI through typer's CliRunner, in a temporary data directory."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.app import app, format_table
from pbx.config import Settings
from pbx.errors import ControlError
from pbx.store import REALM_KEY, SECRET_KEY, Store, User
from sip.digest import Challenge, make_credentials, verify

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def fails(*args: str, code: int = 1) -> str:
    """Run a command that must fail with exactly one line on stderr; return that line."""
    result = run(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pbx: error: ")
    return lines[0]


def stored_users(data_dir: Path) -> list[User]:
    async def read() -> list[User]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.users.list()

    return asyncio.run(read())


def stored_settings(data_dir: Path) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.settings.items()

    return asyncio.run(read())


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def generated_password(stdout: str) -> str:
    found = re.findall(r"^password: (\S+)$", stdout, flags=re.MULTILINE)
    assert len(found) == 1, stdout
    assert stdout.count(found[0]) == 1  # shown exactly once
    return str(found[0])


# --- init -----------------------------------------------------------------------


def test_init_creates_database_realm_and_secret(data_dir: Path) -> None:
    out = ok("init", "--data-dir", str(data_dir))
    lines = out.splitlines()
    # The web console's HTTPS certificate (acd.web.tls) and its fingerprint, line 4.
    assert re.fullmatch(r"  SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}", lines.pop(3))
    assert lines == [
        f"initialized {data_dir} (realm 'aiopbx')",
        f"database: {data_dir / 'pbx.sqlite3'}",
        f"web console certificate made {data_dir / 'web-cert.pem'}",
        "next: add a phone account with `pbx user add 1001`",
    ]
    settings = stored_settings(data_dir)
    assert settings[REALM_KEY] == "aiopbx"
    assert len(settings[SECRET_KEY]) >= 40

    again = ok("init", "--data-dir", str(data_dir))
    assert again.splitlines()[0] == f"{data_dir} is already initialized (realm 'aiopbx')"
    assert stored_settings(data_dir) == settings  # the secret is kept


def test_init_with_realm_and_env_data_dir(data_dir: Path) -> None:
    result = run("init", "--realm", "office.example", env={"PBX_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.stderr
    assert stored_settings(data_dir)[REALM_KEY] == "office.example"
    ok("init", "--data-dir", str(data_dir), "--realm", "office.example")  # same realm: fine
    line = fails("init", "--data-dir", str(data_dir), "--realm", "other")
    assert line == (
        f"pbx: error: {data_dir} already uses realm 'office.example'; "
        "changing it would invalidate every password"
    )


# --- users ----------------------------------------------------------------------


def test_user_add_generates_a_password_shown_once(data_dir: Path) -> None:
    ok("init", "--data-dir", str(data_dir))
    out = ok("user", "add", "1001", "--display-name", "Front Desk", "--data-dir", str(data_dir))
    assert out.splitlines()[0] == "added user 1001 (Front Desk) in realm 'aiopbx'"
    password = generated_password(out)
    assert len(password) >= 16
    [user] = stored_users(data_dir)
    assert user.display_name == "Front Desk"
    assert user.ha1_md5 == md5(f"1001:aiopbx:{password}")
    assert user.ha1_sha256 == hashlib.sha256(f"1001:aiopbx:{password}".encode()).hexdigest()
    # A phone configured with the printed password logs in against the stored HA1s.
    for algorithm, stored in (("MD5", user.ha1_md5), ("SHA-256", user.ha1_sha256)):
        challenge = Challenge(realm="aiopbx", nonce="n0nce", algorithm=algorithm)
        creds = make_credentials(challenge, "1001", password, "REGISTER", "sip:aiopbx")
        assert verify(creds, stored, "REGISTER")
        wrong = make_credentials(challenge, "1001", password + "x", "REGISTER", "sip:aiopbx")
        assert not verify(wrong, stored, "REGISTER")


def test_user_add_list_passwd_del(data_dir: Path) -> None:
    d = str(data_dir)
    ok("init", "--data-dir", d)
    out = ok("user", "add", "1002", "--password", "given-Secret-1", "--data-dir", d)
    assert out == "added user 1002 in realm 'aiopbx'\n"  # a given password is not echoed
    ok("user", "add", "alice", "-n", "Alice", "--data-dir", d)

    listing = ok("user", "list", "--data-dir", d).splitlines()
    assert re.fullmatch(r"USERNAME +DISPLAY NAME +ROLE +CREATED", listing[0])
    assert re.fullmatch(r"1002 +agent +\d{4}-\d\d-\d\d \d\d:\d\d", listing[1])
    assert re.fullmatch(r"alice +Alice +agent +\d{4}-\d\d-\d\d \d\d:\d\d", listing[2])
    assert len(listing) == 3
    for user in stored_users(data_dir):
        assert user.ha1_md5 not in "\n".join(listing)

    assert ok("user", "passwd", "1002", "-p", "other-Secret-2", "--data-dir", d) == (
        "password of 1002 changed (its web console sessions ended)\n"
    )
    assert stored_users(data_dir)[0].ha1_md5 == md5("1002:aiopbx:other-Secret-2")
    password = generated_password(ok("user", "passwd", "1002", "--data-dir", d))
    assert stored_users(data_dir)[0].ha1_md5 == md5(f"1002:aiopbx:{password}")

    assert ok("user", "del", "1002", "--data-dir", d) == (
        "deleted user 1002\nno voicemail to delete\n"
    )
    assert [u.username for u in stored_users(data_dir)] == ["alice"]
    ok("user", "del", "alice", "--data-dir", d)
    assert ok("user", "list", "--data-dir", d) == (
        "no users; next: add a phone account with `pbx user add 1001`\n"
    )


def test_user_errors_are_one_line(data_dir: Path) -> None:
    d = str(data_dir)
    assert fails("user", "list", "--data-dir", d) == (
        f"pbx: error: no database in {data_dir}; run `pbx init` first"
    )
    assert not (data_dir / "pbx.sqlite3").exists()  # a failed command creates nothing
    ok("init", "--data-dir", d)
    ok("user", "add", "1001", "--data-dir", d)
    assert fails("user", "add", "1001", "--data-dir", d) == (
        "pbx: error: user '1001' already exists"
    )
    assert "must not start with '.' or '-'" in fails("user", "add", ".x", "--data-dir", d)
    assert fails("user", "add", "1003", "-p", "short", "--data-dir", d) == (
        "pbx: error: password is shorter than 10 characters"
    )
    assert fails("user", "add", "1003", "-p", "abc-1003-xyz", "--data-dir", d) == (
        "pbx: error: password must not contain the username"
    )
    assert fails("user", "passwd", "nobody", "--data-dir", d) == "pbx: error: no user 'nobody'"
    assert fails("user", "del", "nobody", "--data-dir", d) == "pbx: error: no user 'nobody'"
    assert [u.username for u in stored_users(data_dir)] == ["1001"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["user", "add"], "Missing argument 'NAME'. (see 'pbx user add --help')"),
        (["user", "add", "1001", "--nope"], "No such option: --nope"),
        (["serve", "--port", "x"], "Invalid value for '--port'"),
        (["usr"], "No such command 'usr'."),
        (["user", "frob"], "No such command 'frob'."),
        (["user", "add", "1001", "--display-name"], "requires an argument"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args: list[str], message: str) -> None:
    assert message in fails(*args, code=2)


def test_help_still_works() -> None:
    out = ok("--help")
    assert out.startswith("Usage: pbx [OPTIONS] COMMAND [ARGS]...")
    assert "user" in out
    assert "--password" in ok("user", "add", "--help")


# --- serve ----------------------------------------------------------------------


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    calls: list[Settings] = []

    def run(
        settings: Settings,
        applications: Sequence[object] = (),
        voicemail: object = None,
        on_started: object = None,
    ) -> None:
        # `pbx serve` plugs the IVR and voicemail in as applications of the switch.
        names = [type(a).__name__ for a in applications]
        assert names == [
            "IvrApplication",
            "VoicemailApplication",
            "ConferenceApplication",
            "AcdApplication",
            "Dialer",  # campaigns: after the ACD, whose agents it paces on
            "WebConsole",  # the web console reads the ACD: a service after it
        ]
        assert voicemail is applications[1]
        calls.append(settings)

    module = types.ModuleType("pbx.server")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pbx.server", module)
    return calls


def test_serve_initializes_and_runs(data_dir: Path, fake_server: list[Settings]) -> None:
    out = ok(
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "0.0.0.0",
        "--port",
        "5070",
        "--no-tcp",
        "--control-port",
        "7000",
    )
    assert out.splitlines() == [
        f"initialized {data_dir} (realm 'aiopbx')",
        "no users yet; next: add a phone account with `pbx user add 1001`",
    ]
    [settings] = fake_server
    assert (settings.data_dir, settings.sip_host, settings.sip_port) == (data_dir, "0.0.0.0", 5070)
    assert (settings.udp, settings.tcp, settings.control_port) == (True, False, 7000)
    assert stored_settings(data_dir)[SECRET_KEY]


def test_serve_uses_the_stored_realm_and_stays_quiet_with_users(
    data_dir: Path, fake_server: list[Settings]
) -> None:
    ok("init", "--data-dir", str(data_dir), "--realm", "office")
    ok("user", "add", "1001", "--data-dir", str(data_dir))
    assert ok("serve", "--data-dir", str(data_dir)) == ""
    assert fake_server[0].realm == "office"


def test_serve_bad_settings_are_one_line(data_dir: Path, fake_server: list[Settings]) -> None:
    assert fails("serve", "--data-dir", str(data_dir), "--port", "70000") == (
        "pbx: error: SIP port 70000 is not between 0 and 65535"
    )
    assert fails("serve", "--data-dir", str(data_dir), "--no-udp", "--no-tcp") == (
        "pbx: error: at least one of UDP and TCP must be enabled"
    )
    assert fake_server == []


# --- status ---------------------------------------------------------------------


def fake_control(monkeypatch: pytest.MonkeyPatch, fetch: Any) -> None:
    module = types.ModuleType("pbx.control")
    module.fetch_status = fetch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pbx.control", module)


STATUS = {
    "uptime": 12.4,
    "registrations": [
        {
            "aor": "sip:1001@pbx",
            "contact": "sip:1001@10.0.0.5:5062",
            "user_agent": "Phone/1.0",
            "expires_in": 3541.6,
            "source": "UDP 10.0.0.5:5062",
        },
        {
            "aor": "sip:1002@pbx",
            "contact": "sip:1002@10.0.0.6",
            "user_agent": None,
            "expires_in": 60,
            "source": "TCP 10.0.0.6:40000",
        },
    ],
}


def test_status_prints_registrations(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    seen: list[Settings] = []

    def fetch(settings: Settings) -> dict[str, Any]:
        seen.append(settings)
        return STATUS

    fake_control(monkeypatch, fetch)
    out = ok("status", "--data-dir", str(data_dir))
    assert out.splitlines() == [
        "up 12 s",
        "AOR           CONTACT                 USER AGENT  EXPIRES IN (S)  SOURCE",
        "sip:1001@pbx  sip:1001@10.0.0.5:5062  Phone/1.0   3542            UDP 10.0.0.5:5062",
        "sip:1002@pbx  sip:1002@10.0.0.6                   60              TCP 10.0.0.6:40000",
    ]
    assert seen[0].data_dir == data_dir


def test_status_accepts_an_async_fetch(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    async def fetch(settings: Settings) -> dict[str, Any]:
        return {"uptime": 1.0, "registrations": []}

    fake_control(monkeypatch, fetch)
    assert ok("status", "--data-dir", str(data_dir)) == "up 1 s\nno registrations\n"


def test_status_server_not_running(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    def fetch(settings: Settings) -> dict[str, Any]:
        raise ControlError("the server is not running (no control.json)")

    fake_control(monkeypatch, fetch)
    assert fails("status", "--data-dir", str(data_dir)) == (
        "pbx: error: the server is not running (no control.json)"
    )


def test_status_connection_refused(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    def fetch(settings: Settings) -> dict[str, Any]:
        raise ConnectionRefusedError(111, "Connection refused")

    fake_control(monkeypatch, fetch)
    assert fails("status", "--data-dir", str(data_dir)) == (
        "pbx: error: cannot reach the server: Connection refused"
    )


def test_status_garbage_reply(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    fake_control(monkeypatch, lambda settings: ["not", "a", "dict"])
    assert fails("status", "--data-dir", str(data_dir)) == (
        "pbx: error: the server sent a status this pbx does not understand"
    )


def test_format_table() -> None:
    assert format_table(("A", "BB"), [("xyz", ""), ("1", "2")]) == "A    BB\nxyz\n1    2"


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"pbx \(aiopbx\) \S+\n", result.stdout)


def test_data_dir_before_the_sub_command(data_dir: Path) -> None:
    ok("--data-dir", str(data_dir), "init")
    ok("--data-dir", str(data_dir), "user", "add", "1001")
    assert ok("user", "list", "--data-dir", str(data_dir)).startswith("USERNAME")
    assert "1001" in ok("--data-dir", str(data_dir), "user", "list")
    # The sub-command's own --data-dir wins over the one before it.
    other = data_dir.parent / "other"
    ok("--data-dir", str(data_dir), "init", "--data-dir", str(other))
    assert ok("--data-dir", str(data_dir), "user", "list", "--data-dir", str(other)).startswith(
        "no users"
    )


def test_serve_options_for_debugging(data_dir: Path, fake_server: list[Settings]) -> None:
    assert fails("serve", "--data-dir", str(data_dir), "--log-level", "loud") == (
        "pbx: error: --log-level 'loud': choose DEBUG, INFO, WARNING, ERROR"
    )
    root = logging.getLogger()
    level = root.level
    try:
        ok("serve", "--data-dir", str(data_dir), "--log-level", "debug", "--sip-trace")
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)
    assert fake_server[0].sip_trace is True
