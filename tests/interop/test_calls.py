"""Calls between extensions through the B2BUA, with sipp phones on 127.0.0.1.

A sipp "phone" registers as 1002 from the port its UAS scenario then listens on
(the switch calls the address a REGISTER came from). The caller is sipp (answered
call) or our own UDP client (failure cases, CANCEL, hold, admin hangup).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx import control
from pbx.errors import ControlError
from pbx.server import PbxServer
from sip.digest import make_credentials
from sip.message import Request, Response, make_response, parse_message
from tests.interop.peers import run_sipp
from tests.interop.phones import (
    PASSWORDS,
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
    async with running_server(tmp_path, ring_timeout=3.0) as pbx:
        yield pbx


async def test_answered_call_and_cdr(server: PbxServer, tmp_path: Path) -> None:
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "callee") as callee:
        caller = await in_thread(
            run_sipp,
            SCENARIOS / "uac_call.xml",
            server.sip_port,
            workdir=tmp_path,
            inf=[("1001", sipp_auth("1001"), "1002")],
            timeout=30,
            # sipp's digest-uri is "sip:host:port" unless told; phones use the
            # Request-URI, which the switch checks (RFC 7616 §3.4.6).
            extra=("-d", "2000", "-auth_uri", f"1002@127.0.0.1:{server.sip_port}"),
        )
        assert (caller.returncode, caller.successful) == (0, 1), caller.output
        assert await in_thread(callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", "ANSWERED")
    assert cdr.billsec is not None and 1.8 <= cdr.billsec <= 4.0
    assert cdr.hangup_cause == "caller hung up"


async def _status(server: PbxServer, target: str) -> int:
    async with SipClient(server.sip_port) as ua:
        _, final = await dial(ua, server, target)
        return final.status


async def test_busy_unregistered_and_unknown(server: PbxServer, tmp_path: Path) -> None:
    with await phone(server, "1002", "uas_busy.xml", tmp_path / "callee") as callee:
        assert await _status(server, "1002") == 486
        assert await in_thread(callee.finish) == 0
    assert await _status(server, "1003") == 480
    assert await _status(server, "7777") == 404
    rows = await closed_cdrs(server, 3)
    assert [(r.callee, r.disposition, r.hangup_cause) for r in rows] == [
        ("1002", "BUSY", "486 from callee"),
        ("1003", "FAILED", "480 not registered"),
        ("7777", "FAILED", "404 unknown number"),
    ]


async def _next_response(ua: SipClient) -> Response:
    raw = await ua.receive(timeout=10)
    assert raw is not None, "the switch went quiet"
    message = parse_message(raw)
    assert isinstance(message, Response)
    return message


async def test_caller_cancel_while_ringing(server: PbxServer, tmp_path: Path) -> None:
    with await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "callee") as callee:
        async with SipClient(server.sip_port) as ua:
            unauthenticated = ua.invite("1001", "1002", cseq=1)
            first = await ua.exchange(unauthenticated)
            ua.send(ua.ack_for(unauthenticated, first))
            uri = f"sip:1002@127.0.0.1:{server.sip_port}"
            creds = make_credentials(
                ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri
            )
            invite = ua.invite("1001", "1002", authorization=str(creds), cseq=2)
            ua.send(invite)
            while (await _next_response(ua)).status != 180:  # ringing relayed back
                pass
            ua.send(ua.cancel_for(invite))
            got: dict[str, int] = {}
            while len(got) < 2:
                message = await _next_response(ua)
                if message.status >= 200:
                    got[message.cseq.method] = message.status
                    last = message
            assert got == {"CANCEL": 200, "INVITE": 487}
            ua.send(ua.ack_for(invite, last))
        assert await in_thread(callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.disposition, cdr.billsec) == ("CANCELLED", 0.0)


async def test_admin_lists_and_hangs_up_a_live_call(server: PbxServer, tmp_path: Path) -> None:
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "callee") as callee:
        async with SipClient(server.sip_port) as ua:
            _, ok = await dial(ua, server, "1002")
            assert ok.status == 200
            listed = await in_thread(control.fetch_calls, server.settings)
            legs = {(c["direction"], c["caller"], c["callee"], c["state"]) for c in listed["calls"]}
            assert legs == {("in", "1001", "1002", "up"), ("out", "1001", "1002", "up")}
            inbound = next(c["id"] for c in listed["calls"] if c["direction"] == "in")
            await in_thread(control.hangup, server.settings, inbound)
            # The switch sends us a BYE; answer it.
            raw = await ua.receive(timeout=10)
            assert raw is not None and raw.startswith(b"BYE ")
            bye = parse_message(raw)
            assert isinstance(bye, Request)
            ua.send(bytes(make_response(bye, 200)))
            with pytest.raises(ControlError, match="no live call"):
                await in_thread(control.hangup, server.settings, "nope")
        assert await in_thread(callee.finish) == 0  # the callee got its BYE too
    [cdr] = await closed_cdrs(server)
    assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "hung up by admin")


async def test_hold_and_resume_are_answered_by_the_switch(
    server: PbxServer, tmp_path: Path
) -> None:
    """The holder gets recvonly, then sendrecv, from the switch; the other phone is not
    re-INVITEd (it hears music on hold on its one stream, as with Asterisk/FreeSWITCH)."""
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "callee") as callee:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002")
            assert ok.status == 200
            answers = []
            for cseq, direction in ((3, "sendonly"), (4, "sendrecv")):
                reinvite = ua.reinvite_for(invite, ok, cseq, direction)
                answer = await ua.exchange(reinvite, timeout=10)
                assert answer.status == 200
                ua.send(ua.ack_2xx(reinvite, answer))
                answers.append(answer.body)
            assert b"a=recvonly" in answers[0]
            assert b"a=sendrecv" in answers[1]
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
            assert bye.status == 200
        # uas_answer.xml fails on any request but the BYE: no re-INVITE reached it.
        assert await in_thread(callee.finish) == 0
    [log] = (tmp_path / "callee").glob("*_messages.log")
    assert log.read_bytes().count(b"INVITE sip:") == 1


async def test_bye_overtaking_the_ack_ends_both_legs(server: PbxServer, tmp_path: Path) -> None:
    """A lost ACK: the caller's BYE arrives first; the switch must not keep
    retransmitting its 200 for 64*T1 before hanging up the callee."""
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "callee") as callee:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", ack=False)
            assert ok.status == 200
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=5)
            assert bye.status == 200
        assert await in_thread(callee.finish, 10) == 0  # its BYE came well before 32 s
    [cdr] = await closed_cdrs(server)
    assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "caller hung up")
