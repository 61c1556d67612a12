"""Failed logins against `pbx serve` with real phones: one bad phone and a scanner do not
lock the office out (issue 9, acceptance 1).

Two baresip phones on 127.0.0.1: 1001 with a wrong password, 1002 with the right one.
A scanner (our own UDP client) bound to 127.0.0.2 tries 30 unknown users. The switch
refuses 1001 from 127.0.0.1 only, bans 127.0.0.2 as a whole, keeps 1002 registered and
reachable, and `pbx ban list` / `pbx ban lift` show and undo it. A trusted network is
never banned as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sip.digest import make_credentials
from sip.message import Response, parse_message
from tests.interop.baresip import Baresip
from tests.interop.peers import PbxProcess, add_users, need, pbx_cli, running_pbx, wait_for
from tests.interop.sipclient import SipClient

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass", "1003": "Zk3-secret-pass"}
REGISTERED = r"200 OK .*\[1 binding\]"
SCANNER = "127.0.0.2"
# How long an answer may take on a loaded machine; also how long silence must last to
# count as "dropped".
ANSWER_WAIT = 4.0
FAILED_1001 = re.compile(r"failed login for user '1001' from 127\.0\.0\.1: wrong password")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    with running_pbx(data_dir) as server:
        yield server


def cli(server: PbxProcess, *args: str) -> str:
    result = pbx_cli(server.data_dir, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ban_rows(server: PbxProcess) -> set[tuple[str, str]]:
    """(ADDRESS, USER) of each `pbx ban list` row."""
    lines = cli(server, "ban", "list").splitlines()
    if lines[:1] == ["no bans"]:
        return set()
    assert lines[0].split()[:2] == ["ADDRESS", "USER"], lines
    rows = [re.split(r" {2,}", line) for line in lines[1:] if not line.startswith("trusted")]
    return {(cells[0], cells[1]) for cells in rows}


def registered_aors(server: PbxProcess) -> list[str]:
    lines = cli(server, "status").splitlines()
    return [line.split()[0] for line in lines[2:]] if len(lines) > 2 else []


async def scan(ua: SipClient, users: list[str]) -> tuple[list[int], list[str]]:
    """REGISTER each user, answer its challenge with a wrong password; the statuses of
    the answered attempts and the users whose REGISTER got no answer at all.

    Once one attempt goes unanswered (a ban), the remaining users' REGISTERs are sent
    together and waited for once."""
    statuses: list[int] = []
    for index, user in enumerate(users):
        ua.send(ua.register(user))
        raw = await ua.receive(timeout=ANSWER_WAIT)
        if raw is None:
            for rest in users[index + 1 :]:
                ua.send(ua.register(rest))
            assert await ua.receive(timeout=ANSWER_WAIT) is None
            return statuses, users[index:]
        first = parse_message(raw)
        assert isinstance(first, Response) and first.status == 401
        creds = ua.answer(ua.challenge(first, "MD5"), user, "Guess-pass-1")
        ua.send(ua.register(user, authorization=str(creds)))
        raw = await ua.receive(timeout=ANSWER_WAIT)
        statuses.append(0 if raw is None else int(raw.split(b" ", 2)[1]))
    return statuses, []


async def call(ua: SipClient, port: int, caller: str, target: str) -> Response:
    """INVITE `target` as `caller` with the digest dance; ACK and BYE a 2xx."""
    unauthenticated = ua.invite(caller, target, cseq=1)
    first = await ua.exchange(unauthenticated)
    assert first.status == 401
    ua.send(ua.ack_for(unauthenticated, first))
    uri = f"sip:{target}@127.0.0.1:{port}"
    creds = make_credentials(ua.challenge(first, "MD5"), caller, PASSWORDS[caller], "INVITE", uri)
    invite = ua.invite(caller, target, authorization=str(creds), cseq=2)
    final = await ua.exchange(invite, timeout=20)
    if final.status >= 300:
        ua.send(ua.ack_for(invite, final))
        return final
    ua.send(ua.ack_2xx(invite, final))
    bye = await ua.exchange(ua.bye_for(invite, final), timeout=10)
    assert bye.status == 200
    return final


async def test_bad_phone_and_scanner_do_not_lock_out_the_office(
    server: PbxProcess, tmp_path: Path
) -> None:
    need("baresip")
    with (
        Baresip(
            tmp_path / "good",
            user="1002",
            password=PASSWORDS["1002"],
            registrar_port=server.port,
            auto_answer=True,
        ) as good,
        Baresip(
            tmp_path / "bad", user="1001", password="Wrong-pass-1", registrar_port=server.port
        ) as bad,
    ):
        good.wait_for_output(REGISTERED, 20)
        # The bad phone: fresh challenges, then a 403 for 1001 from 127.0.0.1 only.
        bad.wait_for_output(r"403 Forbidden", 20)
        assert ban_rows(server) == {("127.0.0.1", "1001")}
        assert len(FAILED_1001.findall(server.log())) == 3
        # It keeps retrying (a restart re-registers at once): now ignored, no new failures.
        bad.stop()
        bad.start()

        # The scanner on 127.0.0.2: the fifth unknown user bans its address; every later
        # request from there is dropped.
        async with SipClient(server.port, host=SCANNER) as scanner:
            statuses, ignored = await scan(scanner, [f"9{i:03d}" for i in range(30)])
            assert statuses == [401, 401, 401, 401, 0]
            assert ignored == [f"9{i:03d}" for i in range(5, 30)]
            assert ban_rows(server) == {
                ("127.0.0.1", "1001"),
                (SCANNER, "* (every user)"),
            }

            # The good phone is still registered, and can be called from 127.0.0.1.
            assert "1002" in registered_aors(server)
            async with SipClient(server.port) as caller:
                answered = await call(caller, server.port, "1003", "1002")
            assert answered.status == 200
            good.wait_for_event("CALL_ESTABLISHED", 20)
            good.wait_for_event("CALL_CLOSED", 20)

            # Lifting the scanner's ban: it gets a 401 again.
            lifted = cli(server, "ban", "lift", SCANNER)
            assert lifted.strip() == f"lifted 1 ban(s) of {SCANNER}"
            assert ban_rows(server) == {("127.0.0.1", "1001")}
            first = await scanner.exchange(scanner.register("9100"))
            assert first.status == 401

        assert len(FAILED_1001.findall(server.log())) == 3
        assert "200 OK" not in bad.output
        assert good.count_output(r"REGISTER_FAIL|\b40[13] ") == 0
        assert "1002" in registered_aors(server)


async def test_trusted_network_is_never_banned_as_a_whole(server: PbxProcess) -> None:
    assert cli(server, "trust", "add", "127.0.0.3/32").strip() == "trusted 127.0.0.3/32"
    assert cli(server, "trust", "list").strip() == "127.0.0.3/32"
    # The running server picks the stored network up (it polls the database).
    wait_for(
        lambda: "trusted (never banned as a whole): 127.0.0.3/32" in cli(server, "ban", "list"),
        20,
        "the server to load the trusted network",
    )
    async with SipClient(server.port, host="127.0.0.3") as scanner:
        statuses, ignored = await scan(scanner, [f"9{i:03d}" for i in range(12)])
        assert (statuses, ignored) == ([401] * 12, [])
        # A user failing there is still refused: 401, 401, then 403 on its third failure.
        statuses, ignored = await scan(scanner, ["9000", "9000"])
        assert (statuses, ignored) == ([401, 403], [])
        assert ban_rows(server) == {("127.0.0.3", "9000")}
        # Real users from the trusted address still log in.
        first = await scanner.exchange(scanner.register("1003"))
        creds = scanner.answer(scanner.challenge(first, "MD5"), "1003", PASSWORDS["1003"])
        assert (
            await scanner.exchange(scanner.register("1003", authorization=str(creds)))
        ).status == 200
    assert cli(server, "ban", "lift", "127.0.0.3", "--user", "9000").strip() == (
        "lifted 1 ban(s) of 127.0.0.3"
    )
    assert cli(server, "trust", "del", "127.0.0.3").strip() == "no longer trusted: 127.0.0.3/32"
    result = pbx_cli(server.data_dir, "trust", "del", "127.0.0.3")
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "pbx: error: 127.0.0.3 is not a trusted network",
    )
    result = pbx_cli(server.data_dir, "ban", "lift", "127.0.0.9")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "pbx: error: server refused /bans/lift?address=127.0.0.9:"
        " nothing is banned or refused for 127.0.0.9"
    )
