"""Blind (REFER, RFC 3515) and attended (REFER with Replaces, RFC 3891) transfers
through the B2BUA, between three endpoints: sipp phones and the test's own client."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx import control
from pbx.server import PbxServer
from sip.message import Request, make_response, parse_message
from tests.interop.peers import run_sipp
from tests.interop.phones import (
    SCENARIOS,
    closed_cdrs,
    dial,
    in_thread,
    phone,
    running_server,
    sipp_auth,
)
from tests.interop.sipclient import SipClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path, ring_timeout=10.0) as pbx:
        yield pbx


async def test_blind_transfer(server: PbxServer, tmp_path: Path) -> None:
    inf = tmp_path / "refer.csv"
    inf.write_text(f"SEQUENTIAL\n1003@127.0.0.1:{server.sip_port}\n")
    transferor = await phone(server, "1002", "uas_refer.xml", tmp_path / "b", "-inf", str(inf))
    target = await phone(server, "1003", "uas_answer.xml", tmp_path / "c")
    with transferor, target:
        caller = await in_thread(
            run_sipp,
            SCENARIOS / "uac_call.xml",
            server.sip_port,
            workdir=tmp_path / "a",
            inf=[("1001", sipp_auth("1001"), "1002")],
            timeout=30,
            extra=("-d", "3000", "-auth_uri", f"1002@127.0.0.1:{server.sip_port}"),
        )
        # The caller talked to 1002, then (unaware) to 1003, and hung up on 1003.
        assert (caller.returncode, caller.successful) == (0, 1), caller.output
        assert await in_thread(transferor.finish) == 0
        assert await in_thread(target.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee) == ("1001", "1002")
    assert cdr.hangup_cause == "caller hung up after transfer to 1003"


async def _answer_requests(ua: SipClient, count: int, timeout: float = 10) -> list[Request]:
    """Receive `count` requests (NOTIFY, BYE ...) and answer each 200; responses are skipped."""
    got: list[Request] = []
    while len(got) < count:
        raw = await ua.receive(timeout=timeout)
        assert raw is not None, f"only {[r.method for r in got]} arrived"
        message = parse_message(raw)
        if isinstance(message, Request):
            ua.send(bytes(make_response(message, 200)))
            got.append(message)
    return got


async def test_attended_transfer(server: PbxServer, tmp_path: Path) -> None:
    a = await phone(server, "1002", "uas_answer.xml", tmp_path / "a")
    c = await phone(server, "1003", "uas_answer_reinvite.xml", tmp_path / "c")
    with a, c:
        # 1001 (the transferor, our client) calls 1002, then 1003, then joins them.
        async with SipClient(server.sip_port) as first, SipClient(server.sip_port) as second:
            invite1, ok1 = await dial(first, server, "1002")
            _, ok2 = await dial(second, server, "1003")
            replaces = urllib.parse.quote(
                f"{ok2.call_id};to-tag={ok2.to.tag};from-tag={ok2.from_.tag}", safe=""
            )
            refer_to = f"<sip:1003@127.0.0.1:{server.sip_port}?Replaces={replaces}>"
            refer = first.in_dialog(invite1, ok1, "REFER", 3, (f"Refer-To: {refer_to}",))
            accepted = await first.exchange(refer, timeout=10)
            assert accepted.status == 202
            notifies = await _answer_requests(first, 2)
            assert [n.body.split(b"\r\n")[0] for n in notifies] == [
                b"SIP/2.0 100 Trying",
                b"SIP/2.0 200 OK",
            ]
            assert (notifies[-1].headers.get("Subscription-State") or "").startswith("terminated")
            # The switch ends the transferor's second call (its bridge let 1003 go) ...
            [bye2] = await _answer_requests(second, 1)
            assert bye2.method == "BYE"
            # ... and the transferor hangs up the first, as a phone does after NOTIFY 200.
            bye1 = await first.exchange(first.in_dialog(invite1, ok1, "BYE", 4), timeout=10)
            assert bye1.status == 200
        # 1002 and 1003 now talk to each other, on one bridge.
        assert server.b2bua is not None
        live = (await in_thread(control.fetch_calls, server.settings))["calls"]
        assert {(c_["direction"], c_["callee"]) for c_ in live} == {
            ("out", "1002"),
            ("out", "1003"),
        }
        legs = [server.calls.calls[c_["id"]] for c_ in live]  # type: ignore[union-attr]
        assert server.b2bua.bridges[legs[0].id] is server.b2bua.bridges[legs[1].id]
        await in_thread(control.hangup, server.settings, live[0]["id"])
        assert await in_thread(a.finish) == 0  # got its BYE
        assert await in_thread(c.finish) == 0  # took the re-INVITE onto the new relay, then BYE
    first_call, second_call = await closed_cdrs(server, 2)
    assert (first_call.caller, first_call.callee) == ("1001", "1002")
    assert "after transfer to 1003" in str(first_call.hangup_cause)
    assert (second_call.callee, second_call.hangup_cause) == ("1003", "transferred (attended)")
