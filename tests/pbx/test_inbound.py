"""Calls from providers, the pure decisions (pbx.inbound): which trunk vouches for an
INVITE's source, what its caller and DID are, and where the DID leads."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.inbound import (
    ANONYMOUS,
    DidAction,
    DidStep,
    InboundTrust,
    TrunkCaller,
    caller_number,
    decide,
    did_candidates,
    pick_did,
    step_for,
)
from pbx.store import RingGroup, Store, Trunk
from sip.message import Request, parse_message

TRUNKS = [
    Trunk("prov", "203.0.113.5", inbound_networks=("203.0.113.0/24",)),
    Trunk("prov-edge", "203.0.113.9", inbound_networks=("203.0.113.9/32",)),
    Trunk("wide", "10.0.0.1", inbound_networks=("10.0.0.0/8", "2001:db8::/32")),
    Trunk("reg", "198.51.100.7", port=5080, inbound_contact=True),
    Trunk("named", "sip.example.net", port=5060, inbound_contact=True),
    Trunk("both", "192.0.2.1", inbound_networks=("192.0.2.0/28",), inbound_contact=True),
    Trunk("none", "192.0.2.200"),  # outbound only: vouches for nothing
]

RESOLVED = {"named": ("192.0.2.77", 5060)}

SOURCES = [
    (("203.0.113.5", 5060), "prov"),
    (("203.0.113.200", 40000), "prov"),
    (("203.0.113.9", 5060), "prov-edge"),  # the longer prefix wins
    (("10.1.2.3", 5060), "wide"),
    (("2001:db8::1", 5060), "wide"),
    (("[2001:db8::1]", 5060), "wide"),
    (("::ffff:10.1.2.3", 5060), "wide"),  # IPv4-mapped, as a dual-stack socket says
    (("198.51.100.7", 5080), "reg"),  # the registrar's address and port
    (("198.51.100.7", 5060), None),  # same host, other port: not the registrar
    (("192.0.2.77", 5060), "named"),  # the host name as resolved
    (("192.0.2.77", 5061), None),
    (("192.0.2.1", 5060), "both"),
    (("192.0.2.15", 5060), "both"),
    (("192.0.2.16", 5060), None),
    (("192.0.2.200", 5060), None),
    (("127.0.0.1", 5060), None),
    (("not-an-address", 5060), None),
    (("2001:db9::1", 5060), None),
]


@pytest.mark.parametrize(("source", "trunk"), SOURCES)
def test_trunk_for_source(source: tuple[str, int], trunk: str | None) -> None:
    trust = InboundTrust(RESOLVED.get)
    trust.update(TRUNKS)
    assert trust.trunk_for(*source) == trunk


def test_trust_changes_with_the_trunks() -> None:
    trust = InboundTrust()
    assert trust.trunk_for("203.0.113.5", 5060) is None
    trust.update(TRUNKS)
    assert [s.name for s in trust.sources] == ["both", "named", "prov", "prov-edge", "reg", "wide"]
    trust.update([t for t in TRUNKS if t.name != "prov"])
    assert trust.trunk_for("203.0.113.5", 5060) is None
    # A host name not resolved yet vouches for nothing (no crash, no guess).
    assert trust.trunk_for("192.0.2.77", 5060) is None


def test_a_bad_stored_network_skips_that_trunk_only() -> None:
    trust = InboundTrust()
    bad = Trunk("bad", "192.0.2.1", inbound_networks=("192.0.2.0/33",))
    trust.update([bad, TRUNKS[0]])
    assert [s.name for s in trust.sources] == ["prov"]


def _invite(ruri: str, from_uri: str = "sip:+33612345678@203.0.113.5", to: str = "") -> Request:
    raw = (
        f"INVITE {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1\r\n"
        f'From: "Someone" <{from_uri}>;tag=a1\r\n'
        f"To: <{to or ruri}>\r\n"
        "Call-ID: c1@203.0.113.5\r\n"
        "CSeq: 1 INVITE\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


CALLERS = [
    ("sip:+33612345678@203.0.113.5", "+33612345678"),
    ("sip:0612345678@203.0.113.5", "0612345678"),
    ("sip:1001@203.0.113.5", "1001"),  # a number only: never the local user 1001
    ("sip:anonymous@anonymous.invalid", ANONYMOUS),
    ("sip:alice@203.0.113.5", ANONYMOUS),
    ("sip:*97@203.0.113.5", ANONYMOUS),
    ("sip:203.0.113.5", ANONYMOUS),
    ("tel:+33612345678", ANONYMOUS),
    (f"sip:{'1' * 33}@203.0.113.5", ANONYMOUS),
]


@pytest.mark.parametrize(("from_uri", "caller"), CALLERS)
def test_caller_number(from_uri: str, caller: str) -> None:
    assert caller_number(_invite("sip:5551234@pbx", from_uri)) == caller


CANDIDATES = [
    ("sip:+33100000001@pbx", "", ["+33100000001"]),
    ("sip:trunkuser@192.0.2.10:5060", "sip:+33100000001@pbx", ["trunkuser", "+33100000001"]),
    ("sip:192.0.2.10:5060", "sip:+33100000001@pbx", ["+33100000001"]),
    ("sip:5551234@pbx", "sip:5551234@pbx", ["5551234"]),
    ("sip:192.0.2.10", "sip:192.0.2.10", []),
]


@pytest.mark.parametrize(("ruri", "to", "expected"), CANDIDATES)
def test_did_candidates(ruri: str, to: str, expected: list[str]) -> None:
    assert did_candidates(_invite(ruri, to=to)) == expected


def test_trunk_caller_carries_the_trunk() -> None:
    caller = TrunkCaller("+33612345678", "prov")
    assert caller == "+33612345678" and caller.trunk == "prov"
    assert type(str(caller)) is str and str(caller) == "+33612345678"


GONE = "404 DID 800: ivr:main has no number"
DECISIONS = [
    ("555", None, None, DidStep("555", DidAction.REFUSE, cause="404 unknown DID 555")),
    ("555", "ext:1001", None, DidStep("555", DidAction.RING, "1001", "ext:1001")),
    ("555", "group:600", None, DidStep("555", DidAction.RING, "600", "group:600")),
    ("555", "conf:8000", None, DidStep("555", DidAction.APPLICATION, "8000", "conf:8000")),
    ("555", "ivr:main", "800", DidStep("555", DidAction.APPLICATION, "800", "ivr:main")),
    ("800", "ivr:main", None, DidStep("800", DidAction.REFUSE, target="ivr:main", cause=GONE)),
    ("555", "vm:1001", None, DidStep("555", DidAction.MAILBOX, "1001", "vm:1001")),
    (
        "555",
        "trunk:site-b/+3312",
        None,
        DidStep("555", DidAction.TRUNK, "trunk:site-b/+3312", "trunk:site-b/+3312"),
    ),
    (
        "555",
        "route:0123",  # a hand-edited row: refused, never dialled
        None,
        DidStep(
            "555",
            DidAction.REFUSE,
            target="route:0123",
            cause="404 DID 555: target 'route:0123': use ext:USER, group:NUMBER, ivr:MENU, "
            "conf:NUMBER, vm:BOX, trunk:NAME/NUMBER or queue:NAME",
        ),
    ),
]


@pytest.mark.parametrize(("did", "target", "ivr", "step"), DECISIONS)
def test_decide(did: str, target: str | None, ivr: str | None, step: DidStep) -> None:
    assert decide(did, target, ivr) == step


async def test_pick_did_and_step_for_read_the_store(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    try:
        await store.settings.set_default("realm", "aiopbx")
        await store.users.add("1001", "Xk3-secret-pass", "aiopbx")
        await store.dialplan.add_ring_group(RingGroup("600", ("1001",)))
        await store.ivr.put('[[menu]]\nname = "main"\nnumber = "800"\ngreeting = "g"\n', ["800"])
        await store.dids.add("+33100000001", "ext:1001")
        await store.dids.add("+33100000002", "ivr:main")
        dids = store.dids
        assert await pick_did(dids, ["trunkuser", "+33100000001"]) == "+33100000001"
        assert await pick_did(dids, ["+33100000002", "+33100000001"]) == "+33100000002"
        assert await pick_did(dids, ["trunkuser", "+339"]) == "trunkuser"  # refused later
        assert await pick_did(dids, []) == ""
        assert await step_for(dids, "+33100000002") == DidStep(
            "+33100000002", DidAction.APPLICATION, "800", "ivr:main"
        )
        assert (await step_for(dids, "")).action is DidAction.REFUSE
        await store.ivr.clear()  # the menu went away after the DID was added
        assert (await step_for(dids, "+33100000002")).cause.startswith("404 DID +33100000002")
    finally:
        await store.close()
