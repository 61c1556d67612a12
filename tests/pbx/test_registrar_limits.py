"""The registrar's limits against hostile REGISTERs (issue 10: attack 7 and the table).

A server runs in this process on real loopback sockets; the client is the tests' own
UDP user agent, so every request crosses the parser, the endpoint and digest auth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.config import Settings
from pbx.registrar import targets_for
from pbx.server import PbxServer
from pbx.store import Store
from pbx.store.bindings import Binding
from sip.message import Response
from tests.interop.peers import free_port
from tests.interop.sipclient import SipClient

PASSWORD = "Xk3-secret-pass"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(tmp_path: Path, clock: Clock) -> AsyncIterator[PbxServer]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", PASSWORD, "aiopbx")
    await store.close()
    pbx = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()), clock=clock)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


async def _register(ua: SipClient, **kwargs: object) -> Response:
    """REGISTER for 1001 through the digest challenge."""
    first = await ua.exchange(ua.register("1001", **kwargs))  # type: ignore[arg-type]
    assert first.status == 401
    creds = ua.answer(ua.challenge(first, "MD5"), "1001", PASSWORD)
    return await ua.exchange(
        ua.register("1001", authorization=str(creds), **kwargs)  # type: ignore[arg-type]
    )


def _bindings(pbx: PbxServer) -> int:
    assert pbx.registrar is not None
    return len(pbx.registrar.location.get("1001"))


def _contacts(first: int, count: int) -> str:
    return ", ".join(f"<sip:1001@127.0.0.1:{port}>" for port in range(first, first + count))


async def test_one_register_with_1000_contacts_stores_none(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        answer = await _register(ua, contact=_contacts(20000, 1000))
    assert (answer.status, answer.reason) == (403, "Too Many Contacts")
    assert answer.to.tag is not None
    assert _bindings(server) == 0


async def test_bindings_and_forks_never_exceed_the_limit(server: PbxServer, clock: Clock) -> None:
    async with SipClient(server.sip_port) as ua:
        ok = await _register(ua, contact=_contacts(20000, 10))
        assert ok.status == 200 and ok.to.tag is not None
        assert len(ok.headers.get_all("Contact")) == 10
        clock.now += 60
        # Two more from another registration: the two oldest give way.
        ua.call_id = "second-phone"
        again = await _register(ua, contact=_contacts(30000, 2))
    assert again.status == 200
    assert _bindings(server) == 10
    assert server.registrar is not None
    targets = targets_for(server.registrar.location, "1001", clock.now)
    assert len(targets) == 10  # an INVITE to 1001 forks to at most 10 contacts
    assert {t.peer.port for t in targets} == {ua.port}  # reached at the REGISTER source
    ports = {b.contact for b in server.registrar.location.get("1001").values()}
    assert "<sip:1001@127.0.0.1:30000>" in ports and "<sip:1001@127.0.0.1:30001>" in ports


@pytest.mark.parametrize(
    ("expires", "status"),
    [
        ("²", 400),  # a Unicode digit: str.isdigit() says yes, int() disagrees
        ("1" * 5000, 400),  # beyond int()'s digit limit
        ("99999999999", 400),  # eleven digits: more than 2**32-1 can need
        ("-1", 400),
        ("0x10", 400),
        ("4294967296", 200),  # above 2**32-1: treated as the cap, then our maximum
        ("600", 200),
    ],
)
async def test_bad_expires_is_400_not_500(server: PbxServer, expires: str, status: int) -> None:
    async with SipClient(server.sip_port) as ua:
        answer = await _register(ua, expires=None, extra=f"Expires: {expires}")
    assert answer.status == status


async def test_sips_request_uri_over_udp_is_416(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        request = ua.register("1001").replace(b"REGISTER sip:", b"REGISTER sips:", 1)
        answer = await ua.exchange(request)
    assert answer.status == 416 and answer.to.tag is not None


async def test_stored_bindings_over_the_limit_are_trimmed_at_start(
    tmp_path: Path, clock: Clock
) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", PASSWORD, "aiopbx")
    stored = [
        Binding(
            aor="1001",
            contact=f"<sip:1001@127.0.0.1:{20000 + n}>",
            expires_at=clock.now + 100 + n,
            call_id="old",
            cseq=1,
            user_agent=None,
            source=f"UDP 127.0.0.1:{20000 + n}",
            contact_uri=f"uri:sip:1001@127.0.0.1:{20000 + n}",
        )
        for n in range(1000)
    ]
    await store.bindings.save(stored)
    await store.close()
    pbx = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()), clock=clock)
    await pbx.start()
    try:
        assert pbx.registrar is not None
        kept = pbx.registrar.location.get("1001").values()
        assert sorted(b.expires_at for b in kept) == [clock.now + 100 + n for n in range(990, 1000)]
        assert len(targets_for(pbx.registrar.location, "1001", clock.now)) == 10
        await pbx.registrar.flush()  # what the write-behind task does within 50 ms
    finally:
        await pbx.stop()
    store = await Store.open(tmp_path / "pbx.sqlite3")
    try:
        assert len(await store.bindings.all()) == 10  # the trim was written back
    finally:
        await store.close()
