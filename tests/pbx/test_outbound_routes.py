"""External numbers through the outbound routes (issue 12): an in-process switch, two
PSTN simulators as providers A and B (real loopback UDP, each challenging INVITEs with
407), the test's own SIP client as phone 1001.

Failover to the next trunk on 503, on a dead trunk (no answer at all) and on a full
trunk; none on 486 or 404; emergency routes first; strip/prepend and the caller-ID
rewrite; the toll-fraud rule (a call from a trunk never reaches a route); the CDR names
the trunk and the number sent to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from media.ports import PortAllocator
from pbx.api.outcome import Cause, DialError
from pbx.calls import InboundCall
from pbx.server import PbxServer
from pbx.sim.script import load_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from pbx.store.routes import Route
from pbx.store.trunks import Trunk
from sip.message import Request, parse_message
from sip.peer import Peer
from tests.interop.peers import free_port
from tests.interop.phones import closed_cdrs, dial, running_server
from tests.interop.sipclient import SipClient

DATA = Path(__file__).parent.parent / "data" / "sim"
NUMBER = "0123456789"  # A: 503, B: a live person


class Wire:
    """The INVITEs the switch sent, by destination port."""

    def __init__(self) -> None:
        self.invites: list[tuple[int, Request]] = []

    def __call__(self, direction: str, data: bytes, peer: Peer) -> None:
        if direction == "out" and data.startswith(b"INVITE "):
            message = parse_message(data)
            assert isinstance(message, Request)
            self.invites.append((peer.port, message))


def attempts(sim: PstnSimulator) -> list[dict[str, Any]]:
    if not sim.attempts_log.exists():
        return []
    return [json.loads(line) for line in sim.attempts_log.read_text().splitlines()]


def statuses(sim: PstnSimulator) -> list[tuple[str, int]]:
    return [(a["number"], a["status"]) for a in attempts(sim)]


async def logged(sim: PstnSimulator, count: int = 1) -> list[tuple[str, int]]:
    """The simulator's attempts once `count` are logged (an answered call's line is
    written when it ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(attempts(sim)) < count and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return statuses(sim)


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[tuple[PstnSimulator, PstnSimulator]]:
    a = PstnSimulator(
        load_script(DATA / "outbound_a.toml"),
        tmp_path / "prov-a",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46400, 46500),
    )
    b = PstnSimulator(
        load_script(DATA / "outbound_b.toml"),
        tmp_path / "prov-b",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46500, 46600),
    )
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def configure(
    server: PbxServer, a: PstnSimulator, b: PstnSimulator, *, a_channels: int = 0
) -> Wire:
    store = server._store
    assert store is not None
    await store.trunks.add(
        Trunk("prov-a", "127.0.0.1", a.port, username="acct-a", password="a-secret",
              max_channels=a_channels)
    )  # fmt: skip
    await store.trunks.add(
        Trunk("prov-b", "127.0.0.1", b.port, username="acct-b", password="b-secret")
    )
    await store.routes.add(Route("national", ("_0XXXXXXXXX",), ("prov-a", "prov-b")))
    assert server.trunks is not None
    await server.trunks.reload(await store.trunks.all())  # as the server's watcher would
    wire = Wire()
    assert server._endpoint is not None
    server._endpoint.on_trace = wire
    return wire


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path / "pbx") as pbx:
        yield pbx


async def test_phone_call_fails_over_from_503_and_the_cdr_names_the_trunk(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    a, b = sims
    wire = await configure(server, a, b)
    async with SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, NUMBER)
        assert ok.status == 200
        ua.send(ua.bye_for(invite, ok))
        [cdr] = await closed_cdrs(server)
    assert statuses(a) == [(NUMBER, 503)]
    assert (await logged(b))[0] == (NUMBER, 200)
    assert [e["account"] for e in attempts(a) + attempts(b)] == ["acct-a", "acct-b"]
    # Each provider challenged once: INVITE, INVITE with credentials.
    ports = [port for port, _ in wire.invites]
    assert ports == [a.port, a.port, b.port, b.port]
    assert (cdr.trunk, cdr.trunk_number, cdr.disposition) == ("prov-b", NUMBER, "ANSWERED")
    assert cdr.callee == NUMBER and cdr.caller == "1001"
    assert "(after prov-a: 503 from the trunk)" in (cdr.hangup_cause or ""), cdr.hangup_cause


async def test_switch_dial_goes_through_the_routes(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    a, b = sims
    await configure(server, a, b)
    assert server.switch is not None and server._store is not None
    call = await server.switch.dial(NUMBER, caller_id="1001", timeout=10)
    await call.hangup()
    assert await logged(a) == [(NUMBER, 503)]
    rows = await closed_cdrs(server)  # an answered call's row is finished behind it
    assert [(r.trunk, r.trunk_number) for r in rows] == [("prov-b", NUMBER)]


@pytest.mark.parametrize(("number", "status"), [("0800123456", 486), ("0999999999", 404)])
async def test_no_failover_on_busy_or_not_found(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator], number: str, status: int
) -> None:
    a, b = sims
    await configure(server, a, b)
    async with SipClient(server.sip_port) as ua:
        _, final = await dial(ua, server, number)
        [cdr] = await closed_cdrs(server)
    assert final.status == status
    assert statuses(a) == [(number, status)]
    assert statuses(b) == []
    assert (cdr.trunk, cdr.trunk_number) == ("prov-a", number)
    assert cdr.disposition == ("BUSY" if status == 486 else "FAILED")


async def test_full_trunk_fails_over(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    """prov-a carries one call at most: while a `trunk:` call holds it, the routed call
    leaves by prov-b without an INVITE to prov-a; `pbx trunk status` counts both."""
    a, b = sims
    wire = await configure(server, a, b, a_channels=1)
    assert server.switch is not None
    held = await server.switch.dial("trunk:prov-a/0100123456", caller_id="1001", timeout=10)
    wire.invites.clear()
    call = await server.switch.dial(NUMBER, caller_id="1001", timeout=10)
    assert {port for port, _ in wire.invites} == {b.port}
    channels = {
        row["name"]: (row["channels"], row["max_channels"])
        for row in server.trunk_status()["trunks"]
    }
    assert channels == {"prov-a": (1, 1), "prov-b": (1, 0)}
    await call.hangup()
    await held.hangup()
    channels = {row["name"]: row["channels"] for row in server.trunk_status()["trunks"]}
    assert channels == {"prov-a": 0, "prov-b": 0}


async def test_dead_trunk_fails_over(
    tmp_path: Path, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    """A trunk nobody answers at (nothing listens on its port): the INVITE times out
    (Timer B, T1 made short here) and the call leaves by the next trunk."""
    _, b = sims
    async with running_server(tmp_path / "pbx", t1=0.02) as server:
        assert server._store is not None and server.switch is not None
        await server._store.trunks.add(Trunk("dead", "127.0.0.1", free_port()))
        await server._store.trunks.add(
            Trunk("prov-b", "127.0.0.1", b.port, username="acct-b", password="b-secret")
        )
        await server._store.routes.add(Route("national", ("_0XXXXXXXXX",), ("dead", "prov-b")))
        call = await server.switch.dial(NUMBER, caller_id="1001", timeout=20)
        await call.hangup()
        rows = await closed_cdrs(server)  # an answered call's row is finished behind it
    assert (await logged(b))[0] == (NUMBER, 200)
    assert rows[0].trunk == "prov-b"


async def test_emergency_route_first(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    a, b = sims
    await configure(server, a, b)
    assert server._store is not None and server.switch is not None
    await server._store.routes.add(Route("any", ("_X.",), ("prov-a",)))
    await server._store.routes.add(Route("112", ("112",), ("prov-b",), emergency=True))
    with pytest.raises(DialError) as failed:
        await server.switch.dial("112", caller_id="1001", timeout=10)
    assert failed.value.outcome.cause is Cause.NOT_FOUND  # B's script: 404, the answer
    assert statuses(b) == [("112", 404)] and statuses(a) == []


async def test_strip_prepend_and_caller_id(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    a, b = sims
    wire = await configure(server, a, b)
    assert server._store is not None and server.switch is not None
    await server._store.routes.add(
        Route("nine", ("_9X.",), ("prov-b",), strip=1, prepend="0", caller_id="+3312345")
    )
    call = await server.switch.dial("9111222333", caller_id="1001", timeout=10)
    await call.hangup()
    assert (await logged(b))[0] == ("0111222333", 200)
    _, invite = wire.invites[-1]
    assert str(invite.uri) == f"sip:0111222333@127.0.0.1:{b.port}"
    assert str(invite.from_.uri) == "sip:+3312345@127.0.0.1"


async def test_a_call_from_a_trunk_never_reaches_a_route(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    """The toll-fraud rule: an inbound call marked as a trunk's (what the DID code does)
    dialling an external number is refused (403 here; 404 where the DID code answers
    first); no provider sees an INVITE. Whatever reaches `B2bua.reach` on behalf of such
    a call (forwarding, an IVR transfer) is refused 403 too."""
    a, b = sims
    wire = await configure(server, a, b)
    assert server.calls is not None and server.b2bua is not None
    route = server.calls.on_incoming

    async def from_trunk(call: InboundCall) -> None:
        call.trunk = "prov-a"
        await route(call)

    server.calls.on_incoming = from_trunk
    async with SipClient(server.sip_port) as ua:
        _, final = await dial(ua, server, NUMBER)
        await closed_cdrs(server)
    assert final.status in (403, 404)
    caller = SimpleNamespace(id="t-1", trunk="prov-a", caller="0612345678")
    reached = await server.b2bua.reach(caller, NUMBER, b"", caller_id="0612345678")  # type: ignore[arg-type]
    assert (reached.status, reached.winner) == (403, None)
    assert "trunk prov-a" in reached.cause
    assert wire.invites == []
    assert statuses(a) == [] and statuses(b) == []


async def test_route_refusal_table(server: PbxServer) -> None:
    b2bua = server.b2bua
    assert b2bua is not None
    local = InboundCall.__new__(InboundCall)
    local.trunk, local.caller = None, "1001"
    stranger = InboundCall.__new__(InboundCall)
    stranger.trunk, stranger.caller = None, "0612345678"
    from_trunk = InboundCall.__new__(InboundCall)
    from_trunk.trunk, from_trunk.caller = "prov-a", "1001"
    placed = SimpleNamespace(trunk=None, caller="1001")  # not an inbound call
    assert b2bua.route_refusal(None) is None
    assert b2bua.route_refusal(local) is None
    assert "not an authenticated local user" in (b2bua.route_refusal(stranger) or "")
    assert "trunk prov-a" in (b2bua.route_refusal(from_trunk) or "")
    assert b2bua.route_refusal(placed) is not None  # type: ignore[arg-type]


async def test_a_dialled_trunk_target_is_not_taken(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    """A phone cannot dial `trunk:…` itself: only configuration names trunk targets."""
    a, b = sims
    wire = await configure(server, a, b)
    async with SipClient(server.sip_port) as ua:
        _, final = await dial(ua, server, "trunk%3Aprov-b%2F0123456789")
    assert final.status == 404
    assert wire.invites == []


async def test_a_trunks_inbound_calls_take_its_channels(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator]
) -> None:
    """Calls in from a trunk count against its max channels too: with its one channel
    taken, the provider's next INVITE is refused 503 (it may try elsewhere); a call let
    in gives its channel back when it ends."""
    a, b = sims
    await configure(server, a, b, a_channels=1)
    assert server.calls is not None and server.b2bua is not None
    route = server.calls.on_incoming

    async def from_trunk(call: InboundCall) -> None:
        call.trunk = "prov-a"  # what the DID code sets for the provider's INVITE
        await route(call)

    server.calls.on_incoming = from_trunk
    channels = server.b2bua.trunk_channels
    assert channels.acquire("prov-a", 1)  # a call out holds the only channel
    async with SipClient(server.sip_port) as ua:
        _, full = await dial(ua, server, "1002")
        assert full.status == 503
        channels.release("prov-a")
        _, let_in = await dial(ua, server, "1002")
        assert let_in.status in (404, 480)  # 1002 has no phone (or is no DID): not 503
        await closed_cdrs(server)
    assert channels.in_use("prov-a") == 0


async def test_unresolvable_trunk_fails_over(
    server: PbxServer, sims: tuple[PstnSimulator, PstnSimulator], caplog: pytest.LogCaptureFixture
) -> None:
    """A trunk whose host name does not resolve at call time: a log line with its name and
    the reason, and the call leaves by the next trunk."""
    _, b = sims
    store = server._store
    assert store is not None and server.switch is not None
    await store.trunks.add(Trunk("nowhere", "no-such-host.invalid"))
    await store.trunks.add(
        Trunk("prov-b", "127.0.0.1", b.port, username="acct-b", password="b-secret")
    )
    await store.routes.add(Route("national", ("_0XXXXXXXXX",), ("nowhere", "prov-b")))
    call = await server.switch.dial(NUMBER, caller_id="1001", timeout=10)
    await call.hangup()
    assert (await logged(b))[0] == (NUMBER, 200)
    assert "trunk nowhere: cannot resolve 'no-such-host.invalid'" in caplog.text
    [cdr] = await store.cdrs.list()
    assert cdr.trunk == "prov-b"
    assert "nowhere: host no-such-host.invalid unresolved" in (cdr.hangup_cause or "")
