"""Calling out through a trunk (pbx/outbound.py, OutboundCall's UAC authentication):
the pure parts with tables, then an in-process switch dialling `trunk:NAME/NUMBER`
at the PSTN simulator (real loopback UDP), which challenges every INVITE with 407."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.errors import MediaError
from media.ports import PortAllocator
from media.sdp import SessionDescription, g711_offer
from pbx.api.outcome import Cause, DialError
from pbx.errors import ConfigError
from pbx.outbound import OutboundDialler, fails_over, limit_codecs, parse_trunk_target
from pbx.server import PbxServer
from pbx.sim.script import load_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from pbx.store.trunks import Trunk
from pbx.trunks import TrunkChannels
from sip.headers import Headers
from sip.message import Request, make_response, parse_message
from sip.peer import Peer
from sip.registration import ClientAuthenticator
from sip.uri import SipUri
from tests.interop.phones import running_server

DATA = Path(__file__).parent.parent / "data" / "sim"
LIVE, BUSY, RINGS = "0100123456", "0800123456", "0200123456"
SLOW = "0400123456"  # rings for a minute


# -- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("trunk:prov-a/0123456789", ("prov-a", "0123456789")),
        ("trunk:b.2/+33123", ("b.2", "+33123")),
        ("trunk:x/*99#", ("x", "*99#")),
    ],
)
def test_trunk_targets(text: str, parsed: tuple[str, str]) -> None:
    assert parse_trunk_target(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["trunk:", "trunk:prov", "trunk:/0123", "trunk:prov/", "trunk:prov/01 23", "trunk:-a/1",
     "trunk:prov/sip:x@y", "sip:prov/0123", "trunk:prov/0123@evil"],
)  # fmt: skip
def test_malformed_trunk_targets(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_trunk_target(text)


@pytest.mark.parametrize(
    ("status", "onwards"),
    [(408, True), (500, True), (503, True), (504, True), (404, False), (486, False),
     (480, False), (403, False), (407, False), (600, False), (603, False)],
)  # fmt: skip
def test_failover_statuses(status: int, onwards: bool) -> None:
    assert fails_over(status) is onwards


def test_offer_cut_to_the_trunks_codecs() -> None:
    offer = g711_offer("127.0.0.1", 4000)
    cut = SessionDescription.parse(limit_codecs(offer, ("PCMA",)))
    assert cut.audio().formats == ("8", "101")
    assert [c.name for c in cut.audio().codecs] == ["PCMA", "telephone-event"]
    assert "rtpmap:0 " not in str(cut)
    assert limit_codecs(offer, ("pcmu", "PCMA")) == offer
    with pytest.raises(MediaError, match="the trunk takes G722"):
        limit_codecs(offer, ("G722",))


def test_channels_are_counted_and_capped() -> None:
    channels = TrunkChannels()
    assert channels.acquire("a", 2) and channels.acquire("a", 2)
    assert not channels.acquire("a", 2)
    assert channels.in_use("a") == 2
    channels.release("a")
    assert channels.acquire("a", 2)
    assert all(channels.acquire("b", 0) for _ in range(50))  # 0: no limit
    for _ in range(60):
        channels.release("b")
    assert channels.in_use("b") == 0


def test_target_particulars() -> None:
    """Request-URI, From, caller ID and P-Asserted-Identity of a trunk INVITE; a caller
    ID that is no number or user name never reaches a header."""
    dialler = OutboundDialler(None, TrunkChannels())  # type: ignore[arg-type]
    peer = Peer("UDP", "192.0.2.7", 5070)
    trunk = Trunk("p", "sip.example.net", 5070, username="acct", password="pw")
    plain = dialler.target(trunk, peer, "0123#", "+3312")
    assert str(plain.uri) == "sip:0123%23@sip.example.net:5070"
    assert (plain.from_user, plain.from_host, plain.caller_id) == (
        "+3312",
        "sip.example.net",
        "+3312",
    )
    assert plain.extra_headers == () and plain.authenticator is not None
    assert dialler.target(trunk, peer, "1", "+3312").authenticator is plain.authenticator
    # A registration's Service-Route (RFC 3608) becomes the INVITE's Route set, in order.
    routes = {"p": ("<sip:p1.example;lr>", "<sip:s1.example;lr>")}
    dialler.service_route = lambda name: routes.get(name, ())
    routed = dialler.target(trunk, peer, "1", "+3312")
    assert routed.extra_headers == (
        ("Route", "<sip:p1.example;lr>"),
        ("Route", "<sip:s1.example;lr>"),
    )
    dialler.service_route = lambda _name: ()
    tcp = Trunk("t", "2001:db8::1", transport="tcp", from_user="acct", from_domain="ex.net")
    other = dialler.target(tcp, peer, "1", "1001")
    assert str(other.uri) == "sip:1@[2001:db8::1]:5060;transport=tcp"
    assert other.extra_headers == (("P-Asserted-Identity", "<sip:1001@ex.net>"),)
    assert other.authenticator is None  # no password
    hostile = dialler.target(trunk, peer, "1", "1001>\r\nX-Evil: 1")
    assert (hostile.from_user, hostile.caller_id, hostile.extra_headers) == ("acct", "acct", ())


# -- against the simulator --------------------------------------------------------------


class Wire:
    """The SIP requests the switch sent (its endpoint's trace)."""

    def __init__(self) -> None:
        self.sent: list[Request] = []

    def __call__(self, direction: str, data: bytes, peer: Peer) -> None:
        if direction == "out" and not data.startswith(b"SIP/2.0"):
            message = parse_message(data)
            assert isinstance(message, Request)
            self.sent.append(message)

    def of(self, method: str) -> list[Request]:
        return [r for r in self.sent if r.method == method]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[PstnSimulator]:
    simulator = PstnSimulator(
        load_script(DATA / "basic.toml"),
        tmp_path / "sim",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46200, 46300),
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path / "pbx") as pbx:
        yield pbx


async def add_trunk(
    server: PbxServer, sim: PstnSimulator, name: str = "prov", **kw: object
) -> None:
    assert server._store is not None
    fields: dict[str, object] = {
        "host": "127.0.0.1", "port": sim.port, "username": "trunk1",
        "password": "s3cret-trunk", "from_domain": "pstn.test",
    }  # fmt: skip
    fields.update(kw)
    await server._store.trunks.add(Trunk(name, **fields))  # type: ignore[arg-type]


def traced(server: PbxServer) -> Wire:
    wire = Wire()
    assert server._endpoint is not None
    server._endpoint.on_trace = wire
    return wire


def attempts(sim: PstnSimulator) -> list[dict[str, object]]:
    if not sim.attempts_log.exists():
        return []
    return [json.loads(line) for line in sim.attempts_log.read_text().splitlines()]


async def test_trunk_target_answers_the_407_then_preauthorizes(
    server: PbxServer, sim: PstnSimulator
) -> None:
    await add_trunk(server, sim, caller_id="+33100000000")
    wire = traced(server)
    assert server.switch is not None
    call = await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    first, second = wire.of("INVITE")
    assert str(first.uri) == f"sip:{LIVE}@127.0.0.1:{sim.port}"
    assert first.headers.get("Proxy-Authorization") is None
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert second.via[0].branch != first.via[0].branch
    assert 'username="trunk1"' in (second.headers.get("Proxy-Authorization") or "")
    # From: the trunk's caller ID (no from-user) at the from-domain; nothing else asserted.
    assert str(second.from_.uri) == "sip:+33100000000@pstn.test"
    assert second.headers.get("P-Asserted-Identity") is None
    assert b"s3cret-trunk" not in bytes(second)
    # The 407's ACK is its transaction's (first INVITE's branch and CSeq number); the
    # 200's is ours, with the retried INVITE's CSeq number.
    ack_407, ack_200 = wire.of("ACK")
    assert (ack_407.via[0].branch, ack_407.cseq.seq) == (first.via[0].branch, first.cseq.seq)
    assert ack_200.cseq.seq == second.cseq.seq and ack_200.via[0].branch != first.via[0].branch
    assert server.b2bua is not None and server.b2bua.trunk_channels.in_use("prov") == 1
    await call.hangup()
    assert server.b2bua.trunk_channels.in_use("prov") == 0
    # The next INVITE carries credentials at once (nc 2): no second challenge.
    wire.sent.clear()
    again = await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    [only] = wire.of("INVITE")
    assert "nc=00000002" in (only.headers.get("Proxy-Authorization") or "")
    await again.hangup()
    outcomes = [(a["number"], a["status"], a["account"]) for a in attempts(sim)]
    assert outcomes[:1] == [(LIVE, 200, "trunk1")]


async def test_registered_trunk_routes_invites_by_its_service_route(
    server: PbxServer, sim: PstnSimulator
) -> None:
    """RFC 3608 §6.1: the INVITE (and its CANCEL) to a trunk carries the Service-Route
    the trunk's registration returned, as Route headers in order; sent to the trunk."""
    sim.service_route = f"<sip:127.0.0.1:{sim.port};lr>, <sip:core.pstn.test;lr>"
    await add_trunk(server, sim, register=True)
    assert server.switch is not None and server.trunks is not None
    await server._reload_trunks()
    async with asyncio.timeout(10):
        while server.trunks.service_route("prov") == ():
            await asyncio.sleep(0.02)
    wire = traced(server)
    call = await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    routes = [i.headers.get_all("Route") for i in wire.of("INVITE")]
    expected = [f"<sip:127.0.0.1:{sim.port};lr>", "<sip:core.pstn.test;lr>"]
    assert routes and all(r == expected for r in routes)
    await call.hangup()
    with pytest.raises(DialError):  # it rings for a minute: the switch CANCELs after 1 s
        await server.switch.dial(f"trunk:prov/{SLOW}", caller_id="1001", timeout=1)
    [cancel] = wire.of("CANCEL")
    assert cancel.headers.get_all("Route") == expected


async def test_from_user_and_p_asserted_identity(server: PbxServer, sim: PstnSimulator) -> None:
    await add_trunk(server, sim, from_user="acct77", codecs=("PCMA",))
    wire = traced(server)
    assert server.switch is not None
    call = await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    invite = wire.of("INVITE")[-1]
    assert str(invite.from_.uri) == "sip:acct77@pstn.test"
    assert invite.headers.get("P-Asserted-Identity") == "<sip:1001@pstn.test>"
    offered = SessionDescription.parse(invite.body).audio()
    assert [c.name for c in offered.codecs] == ["PCMA", "telephone-event"]
    await call.hangup()


async def test_wrong_password_is_tried_once(server: PbxServer, sim: PstnSimulator) -> None:
    await add_trunk(server, sim, password="wrong")
    wire = traced(server)
    assert server.switch is not None
    with pytest.raises(DialError) as failed:
        await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    assert failed.value.outcome.status == 403
    assert len(wire.of("INVITE")) == 2
    assert [a["status"] for a in attempts(sim)] == [403]


async def test_busy_at_the_trunk(server: PbxServer, sim: PstnSimulator) -> None:
    await add_trunk(server, sim)
    assert server.switch is not None
    with pytest.raises(DialError) as failed:
        await server.switch.dial(f"trunk:prov/{BUSY}", caller_id="1001", timeout=10)
    assert (failed.value.outcome.cause, failed.value.outcome.status) == (Cause.BUSY, 486)


async def test_cancel_after_the_retry_names_the_retried_invite(
    server: PbxServer, sim: PstnSimulator
) -> None:
    """Ringing stops (the dial's timeout) after the 407 was answered: the CANCEL has the
    retried INVITE's branch and CSeq number (RFC 3261 §9.1), and the simulator notes a
    487 for it."""
    await add_trunk(server, sim)
    wire = traced(server)
    assert server.switch is not None
    with pytest.raises(DialError):
        await server.switch.dial(f"trunk:prov/{RINGS}", caller_id="1001", timeout=0.3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not attempts(sim) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    _, retried = wire.of("INVITE")
    [cancel] = wire.of("CANCEL")
    assert cancel.via[0].branch == retried.via[0].branch
    assert cancel.cseq.seq == retried.cseq.seq
    assert [a["status"] for a in attempts(sim)] == [487]


async def test_unknown_trunk_and_unresolvable_host(
    server: PbxServer, sim: PstnSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    await add_trunk(server, sim, name="nowhere", host="no-such-host.invalid")
    assert server.switch is not None
    with pytest.raises(DialError) as unknown:
        await server.switch.dial(f"trunk:nosuch/{LIVE}", caller_id="1001", timeout=5)
    assert unknown.value.outcome.status == 503
    assert "no such trunk" in unknown.value.outcome.reason
    with pytest.raises(DialError) as unresolved:
        await server.switch.dial(f"trunk:nowhere/{LIVE}", caller_id="1001", timeout=5)
    assert unresolved.value.outcome.status == 503
    assert "unresolved" in unresolved.value.outcome.reason
    assert "trunk nosuch: no such trunk" in caplog.text
    assert "trunk nowhere: cannot resolve 'no-such-host.invalid'" in caplog.text
    assert attempts(sim) == []


@pytest.mark.parametrize("target", ["trunk:prov", "trunk:prov/12ab", "trunk:/0100123456"])
async def test_malformed_trunk_target_fails_cleanly(
    server: PbxServer, sim: PstnSimulator, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    await add_trunk(server, sim)
    assert server.switch is not None and server._store is not None
    with pytest.raises(DialError) as failed:
        await server.switch.dial(target, caller_id="1001", timeout=5)
    assert failed.value.outcome.status == 404
    assert target in caplog.text  # the log line names the malformed target
    [cdr] = await server._store.cdrs.list()
    assert cdr.disposition == "FAILED" and cdr.trunk is None
    assert attempts(sim) == []


def test_cached_challenges_stay_bounded() -> None:
    """A server naming a new realm in every challenge cannot grow what an authenticator
    keeps (and sends with each preauthorized request) without end."""
    auth = ClientAuthenticator({"": ("acct", "pw")})
    uri = "sip:1@192.0.2.1"
    for n in range(50):
        invite = Request(
            "INVITE",
            SipUri.parse(uri),
            Headers([("Via", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
                     ("To", f"<{uri}>"), ("Call-ID", f"c{n}"), ("CSeq", "1 INVITE")]),
        )  # fmt: skip
        challenge = make_response(
            invite, 407, headers=[("Proxy-Authenticate", f'Digest realm="r{n}", nonce="n{n}"')]
        )
        assert auth.authorize(invite, challenge) is not None
    again = auth.preauthorize(invite)
    assert 1 <= len(again.headers.get_all("Proxy-Authorization")) <= 8


async def test_trunk_over_tcp(server: PbxServer, sim: PstnSimulator) -> None:
    await add_trunk(server, sim, transport="tcp")
    wire = traced(server)
    assert server.switch is not None
    call = await server.switch.dial(f"trunk:prov/{LIVE}", caller_id="1001", timeout=10)
    await call.hangup()
    invites = wire.of("INVITE")
    assert len(invites) == 2
    assert all(str(i.uri).endswith(";transport=tcp") for i in invites)
    assert all(i.via[0].transport == "TCP" for i in invites)
