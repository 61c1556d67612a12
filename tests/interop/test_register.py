"""The registrar against real peers on 127.0.0.1: sipp (MD5) and our own UDP client
(SHA-256, nonce-count replay, enumeration, ban). The server runs in this process
(real sockets, real store) with a clock the test moves, so bans lift without waiting.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from tests.interop.peers import DATA, free_port, run_sipp
from tests.interop.sipclient import SipClient

PASSWORD = "Xk3-secret-pass"
SCENARIOS = DATA / "sipp"


class Clock:
    """Wall time the test can move forward."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(
    tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[PbxServer]:
    """A server with users 1001 and 1002; `@pytest.mark.digest(...)` sets the algorithms."""
    marker = request.node.get_closest_marker("digest")
    algorithms = tuple(marker.args) if marker else Settings().digest_algorithms
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", PASSWORD, "aiopbx")
    await store.users.add("1002", PASSWORD + "2", "aiopbx")
    await store.close()
    settings = Settings(
        data_dir=tmp_path,
        sip_port=free_port(),
        auth_user_failures=3,
        refuse_seconds=120,
        scan_users=3,
        ban_seconds=120,
        digest_algorithms=algorithms,
    )
    pbx = PbxServer(settings, clock=clock)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


def _aors(pbx: PbxServer) -> list[tuple[object, object]]:
    return [(r["aor"], r["contact"]) for r in pbx.status()["registrations"]]


async def _sipp(pbx: PbxServer, tmp_path: Path, scenario: str, password: str) -> int:
    """Run a sipp scenario in a thread-free way (asyncio subprocess) and return its exit code."""
    import asyncio

    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        None,
        lambda: run_sipp(
            SCENARIOS / scenario,
            pbx.sip_port,
            workdir=tmp_path,
            inf=[("1001", f"[authentication username=1001 password={password}]")],
            timeout=20,
        ),
    )
    return result.successful if result.returncode == 0 else -result.returncode


async def test_sipp_registers_with_md5_digest(server: PbxServer, tmp_path: Path) -> None:
    assert await _sipp(server, tmp_path, "register_auth.xml", PASSWORD) == 1
    regs = server.status()["registrations"]
    assert len(regs) == 1
    assert regs[0]["aor"] == "1001"
    assert str(regs[0]["contact"]).startswith("<sip:1001@127.0.0.1:")
    assert regs[0]["user_agent"] == "sipp"
    assert 3590 <= int(regs[0]["expires_in"]) <= 3600


async def test_sipp_wrong_password_is_challenged_again(server: PbxServer, tmp_path: Path) -> None:
    # The scenario succeeds only if the second REGISTER is answered 401 again.
    assert await _sipp(server, tmp_path, "register_wrong_password.xml", "not-the-password") == 1
    assert _aors(server) == []


@pytest.mark.digest("SHA-256", "MD5")
async def test_sha256_registration(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        first = await ua.exchange(ua.register("1001"))
        assert first.status == 401
        algorithms = [ua.challenge(first, a).algorithm for a in ("SHA-256", "MD5")]  # both offered
        assert algorithms == ["SHA-256", "MD5"]
        creds = ua.answer(ua.challenge(first, "SHA-256"), "1001", PASSWORD)
        assert creds.algorithm == "SHA-256"
        ok = await ua.exchange(ua.register("1001", authorization=str(creds)))
        assert ok.status == 200
        # RFC 3581: our ;rport was filled in with the port we sent from.
        assert (ok.via[0].rport, ok.via[0].received) == (str(ua.port), "127.0.0.1")
        assert ok.headers.get_all("Contact") == [f"<sip:1001@127.0.0.1:{ua.port}>;expires=3600"]
        assert ok.headers.get("Date") is not None
    assert _aors(server) == [("1001", f"<sip:1001@127.0.0.1:{ua.port}>")]


async def test_replayed_nonce_count_is_rejected(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        challenge = ua.challenge(await ua.exchange(ua.register("1001")), "MD5")
        creds = str(ua.answer(challenge, "1001", PASSWORD, nc=1))
        assert (await ua.exchange(ua.register("1001", authorization=creds))).status == 200
        # The very same credentials again (new branch and CSeq): a replay.
        replay = await ua.exchange(ua.register("1001", authorization=creds))
        assert replay.status == 401
        # The next nonce-count on the same nonce is fine.
        creds2 = str(ua.answer(challenge, "1001", PASSWORD, nc=2))
        assert (await ua.exchange(ua.register("1001", authorization=creds2))).status == 200


async def test_wrong_password_and_unknown_user_look_the_same(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        answers = []
        for user, password in (("1001", "wrong-Password-1"), ("7777", "wrong-Password-1")):
            challenge = ua.challenge(await ua.exchange(ua.register(user)), "MD5")
            creds = str(ua.answer(challenge, user, password))
            answers.append(await ua.exchange(ua.register(user, authorization=creds)))
        assert [a.status for a in answers] == [401, 401]
        assert [a.headers.get("WWW-Authenticate") is not None for a in answers] == [True, True]


def _masked(raw: bytes, user: str) -> bytes:
    """A challenge with the nonce, the To tag and the user name blanked out."""
    raw = re.sub(rb'nonce="[^"]*"', b'nonce="-"', raw)
    raw = re.sub(rb";tag=[0-9a-f]+\r\n", b";tag=-\r\n", raw)
    return raw.replace(user.encode(), b"USER")


async def test_default_challenge_is_md5_only(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        first = await ua.exchange(ua.register("1001"))
    [only] = first.headers.get_all("WWW-Authenticate")
    assert re.fullmatch(r'Digest realm="aiopbx", nonce="[^"]+", algorithm=MD5, qop="auth"', only)


@pytest.mark.digest("SHA-256", "MD5")
async def test_challenges_for_known_and_unknown_users_are_identical(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        # Identical requests but for the user name (same Call-ID, tag, CSeq, branch text).
        raws = []
        for user in ("1001", "7777"):
            request = re.sub(
                rb"branch=[^\r;]+", b"branch=z9hG4bK" + user.encode(), ua.register(user, cseq=1)
            )
            ua.send(request)
            raw = await ua.receive()
            assert raw is not None
            raws.append(_masked(raw, user))
    assert raws[0].startswith(b"SIP/2.0 401 ")
    assert raws[0] == raws[1]


async def test_refusal_after_failures_and_lift(server: PbxServer, clock: Clock) -> None:
    async with SipClient(server.sip_port) as ua:

        async def fail_once(user: str) -> int:
            challenge = ua.challenge(await ua.exchange(ua.register(user)), "MD5")
            creds = str(ua.answer(challenge, user, "wrong-Password-1"))
            ua.send(ua.register(user, authorization=creds))
            raw = await ua.receive(timeout=1.0)
            return 0 if raw is None else int(raw.split(b" ", 2)[1])

        # auth_user_failures=3: two fresh challenges, then 403, then 1001 is ignored.
        assert [await fail_once("1001") for _ in range(3)] == [401, 401, 403]
        ua.send(ua.register("1001"))
        assert await ua.receive(timeout=1.0) is None
        # 1002 from the same address is served.
        first = await ua.exchange(ua.register("1002"))
        creds = str(ua.answer(ua.challenge(first, "MD5"), "1002", PASSWORD + "2"))
        assert (await ua.exchange(ua.register("1002", authorization=creds))).status == 200
        clock.now += 121  # refuse_seconds=120
        first = await ua.exchange(ua.register("1001"))
        assert first.status == 401
        creds = str(ua.answer(ua.challenge(first, "MD5"), "1001", PASSWORD))
        assert (await ua.exchange(ua.register("1001", authorization=creds))).status == 200


async def test_scanner_ban_and_lift(server: PbxServer, clock: Clock) -> None:
    async with SipClient(server.sip_port) as ua:
        for user in ("2001", "2002"):
            challenge = ua.challenge(await ua.exchange(ua.register(user)), "MD5")
            creds = str(ua.answer(challenge, user, "guess-Pass-1"))
            assert (await ua.exchange(ua.register(user, authorization=creds))).status == 401
        # scan_users=3: the third user's failure bans the address; dropped from then on.
        challenge = ua.challenge(await ua.exchange(ua.register("2003")), "MD5")
        ua.send(ua.register("2003", authorization=str(ua.answer(challenge, "2003", "x-Pass-1"))))
        assert await ua.receive(timeout=1.0) is None
        ua.send(ua.register("1001"))  # even a real user with no credentials yet
        assert await ua.receive(timeout=1.0) is None
        assert [(b["address"], b["user"]) for b in server.ban_list()["bans"]] == [
            ("127.0.0.1", None)
        ]
        clock.now += 121  # ban_seconds=120
        first = await ua.exchange(ua.register("1001"))
        creds = str(ua.answer(ua.challenge(first, "MD5"), "1001", PASSWORD))
        assert (await ua.exchange(ua.register("1001", authorization=creds))).status == 200


async def test_register_semantics(server: PbxServer, clock: Clock) -> None:
    """Expires, 423 Min-Expires, several contacts, query, Contact: * removal."""
    async with SipClient(server.sip_port) as ua:
        challenge = ua.challenge(await ua.exchange(ua.register("1001")), "MD5")
        nc = iter(range(1, 100))

        def auth() -> str:
            return str(ua.answer(challenge, "1001", PASSWORD, nc=next(nc)))

        too_short = await ua.exchange(ua.register("1001", expires=10, authorization=auth()))
        assert too_short.status == 423
        assert too_short.headers.get("Min-Expires") == "60"
        two = "<sip:1001@127.0.0.1:7001>;expires=120, <sip:1001@127.0.0.1:7002>"
        ok = await ua.exchange(ua.register("1001", contact=two, expires=300, authorization=auth()))
        assert ok.status == 200
        assert sorted(ok.headers.get_all("Contact")) == [
            "<sip:1001@127.0.0.1:7001>;expires=120",
            "<sip:1001@127.0.0.1:7002>;expires=300",
        ]
        capped = await ua.exchange(
            ua.register(
                "1001",
                contact='<sip:1001@127.0.0.1:7003>;+sip.instance="<urn:uuid:1>";reg-id=1',
                expires=999_999,
                authorization=auth(),
            )
        )
        assert '<sip:1001@127.0.0.1:7003>;+sip.instance="<urn:uuid:1>";reg-id=1;expires=3600' in (
            capped.headers.get_all("Contact")
        )
        query = await ua.exchange(
            ua.register("1001", contact="", expires=None, authorization=auth())
        )
        assert query.status == 200
        assert len(query.headers.get_all("Contact")) == 3
        clock.now += 200  # the 120 s binding has expired
        query = await ua.exchange(
            ua.register("1001", contact="", expires=None, authorization=auth())
        )
        assert len(query.headers.get_all("Contact")) == 2
        bad_star = await ua.exchange(
            ua.register("1001", contact="*", expires=60, authorization=auth())
        )
        assert bad_star.status == 400
        gone = await ua.exchange(ua.register("1001", contact="*", expires=0, authorization=auth()))
        assert gone.status == 200
        assert gone.headers.get_all("Contact") == []
    assert _aors(server) == []


async def test_someone_elses_aor_is_forbidden(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        challenge = ua.challenge(await ua.exchange(ua.register("1002")), "MD5")
        # Authenticates as 1001 (right password) but registers 1002.
        creds = ua.answer(challenge, "1001", PASSWORD)
        response = await ua.exchange(ua.register("1002", authorization=str(creds)))
        assert response.status == 403
