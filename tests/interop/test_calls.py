"""Calls between extensions through the B2BUA, with sipp phones on 127.0.0.1.

A sipp "phone" registers as 1002 from the port its UAS scenario then listens on
(the switch calls the address a REGISTER came from). The caller is sipp (answered
call) or our own UDP client (failure cases, CANCEL).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pbx import control
from pbx.config import Settings
from pbx.errors import ControlError
from pbx.server import PbxServer
from pbx.store import Cdr, Store
from sip.digest import make_credentials
from sip.message import Request, Response, make_response, parse_message
from tests.interop.peers import DATA, SippUas, free_port, run_sipp
from tests.interop.sipclient import SipClient

T = TypeVar("T")
SCENARIOS = DATA / "sipp"
PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass", "1003": "Zk3-secret-pass"}


def auth(user: str) -> str:
    return f"[authentication username={user} password={PASSWORDS[user]}]"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.close()
    pbx = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port(), ring_timeout=3.0))
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking helper (a sipp run) without stalling the server's loop."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


async def register_phone(server: PbxServer, user: str, port: int, workdir: Path) -> None:
    """Register `user` with sipp from 127.0.0.1:`port` (where its UAS will listen)."""
    result = await _in_thread(
        run_sipp,
        SCENARIOS / "register_auth.xml",
        server.sip_port,
        workdir=workdir,
        inf=[(user, auth(user))],
        local_port=port,
        timeout=15,
    )
    assert (result.returncode, result.successful) == (0, 1), result.output


async def cdrs(server: PbxServer) -> list[Cdr]:
    assert server._store is not None
    for _ in range(100):  # the CDR is closed when the call's task finishes
        rows = await server._store.cdrs.list()
        if rows and all(r.end is not None for r in rows):
            return rows
        await asyncio.sleep(0.05)
    return await server._store.cdrs.list()


async def test_answered_call_and_cdr(server: PbxServer, tmp_path: Path) -> None:
    port = free_port()
    await register_phone(server, "1002", port, tmp_path / "reg")
    with SippUas(SCENARIOS / "uas_answer.xml", tmp_path / "callee", port=port) as callee:
        caller = await _in_thread(
            run_sipp,
            SCENARIOS / "uac_call.xml",
            server.sip_port,
            workdir=tmp_path,
            inf=[("1001", auth("1001"), "1002")],
            timeout=30,
            # sipp's digest-uri is "sip:host:port" unless told; phones use the
            # Request-URI, which the switch checks (RFC 7616 §3.4.6).
            extra=("-d", "2000", "-auth_uri", f"1002@127.0.0.1:{server.sip_port}"),
        )
        assert (caller.returncode, caller.successful) == (0, 1), caller.output
        assert await _in_thread(callee.finish) == 0
    [cdr] = await cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", "ANSWERED")
    assert cdr.billsec is not None and 1.8 <= cdr.billsec <= 4.0
    assert cdr.hangup_cause == "caller hung up"


async def _call(server: PbxServer, target: str) -> int:
    """INVITE from 1001 to `target`, answering the digest challenge; the final status."""
    async with SipClient(server.sip_port) as ua:
        unauthenticated = ua.invite("1001", target, cseq=1)
        first = await ua.exchange(unauthenticated)
        assert first.status == 401
        ua.send(ua.ack_for(unauthenticated, first))
        uri = f"sip:{target}@127.0.0.1:{server.sip_port}"
        creds = make_credentials(
            ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri
        )
        invite = ua.invite("1001", target, authorization=str(creds), cseq=2)
        final = await ua.exchange(invite, timeout=15)
        ua.send(ua.ack_for(invite, final))
        return final.status


async def test_busy_unregistered_and_unknown(server: PbxServer, tmp_path: Path) -> None:
    port = free_port()
    await register_phone(server, "1002", port, tmp_path / "reg")
    with SippUas(SCENARIOS / "uas_busy.xml", tmp_path / "callee", port=port) as callee:
        assert await _call(server, "1002") == 486
        assert await _in_thread(callee.finish) == 0
    assert await _call(server, "1003") == 480
    assert await _call(server, "7777") == 404
    rows = await cdrs(server)
    assert [(r.callee, r.disposition, r.hangup_cause) for r in rows] == [
        ("1002", "BUSY", "486 from callee"),
        ("1003", "FAILED", "480 not registered"),
        ("7777", "FAILED", "404 unknown number"),
    ]


async def test_caller_cancel_while_ringing(server: PbxServer, tmp_path: Path) -> None:
    port = free_port()
    await register_phone(server, "1002", port, tmp_path / "reg")
    with SippUas(SCENARIOS / "uas_ring_cancel.xml", tmp_path / "callee", port=port) as callee:
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
            # Wait for the ringing to come back through the switch.
            while True:
                raw = await ua.receive(timeout=10)
                assert raw is not None, "no 180 from the switch"
                message = parse_message(raw)
                assert isinstance(message, Response)
                if message.status == 180:
                    break
            ua.send(ua.cancel_for(invite))
            got: dict[str, int] = {}
            while len(got) < 2:
                raw = await ua.receive(timeout=10)
                assert raw is not None, f"missing answers, got {got}"
                message = parse_message(raw)
                assert isinstance(message, Response)
                if message.status >= 200:
                    got[message.cseq.method] = message.status
            assert got == {"CANCEL": 200, "INVITE": 487}
            ua.send(ua.ack_for(invite, message))
        assert await _in_thread(callee.finish) == 0
    [cdr] = await cdrs(server)
    assert (cdr.disposition, cdr.billsec) == ("CANCELLED", 0.0)


async def test_admin_lists_and_hangs_up_a_live_call(server: PbxServer, tmp_path: Path) -> None:
    port = free_port()
    await register_phone(server, "1002", port, tmp_path / "reg")
    with SippUas(SCENARIOS / "uas_answer.xml", tmp_path / "callee", port=port) as callee:
        async with SipClient(server.sip_port) as ua:
            unauthenticated = ua.invite("1001", "1002", cseq=1)
            first = await ua.exchange(unauthenticated)
            ua.send(ua.ack_for(unauthenticated, first))
            uri = f"sip:1002@127.0.0.1:{server.sip_port}"
            creds = make_credentials(
                ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri
            )
            invite = ua.invite("1001", "1002", authorization=str(creds), cseq=2)
            ok = await ua.exchange(invite, timeout=10)
            assert ok.status == 200
            ua.send(ua.ack_2xx(invite, ok))

            settings = server.settings
            listed = await _in_thread(control.fetch_calls, settings)
            legs = {(c["direction"], c["caller"], c["callee"], c["state"]) for c in listed["calls"]}
            assert legs == {("in", "1001", "1002", "up"), ("out", "1001", "1002", "up")}
            inbound = next(c["id"] for c in listed["calls"] if c["direction"] == "in")
            await _in_thread(control.hangup, settings, inbound)
            # The switch sends us a BYE; answer it.
            raw = await ua.receive(timeout=10)
            assert raw is not None and raw.startswith(b"BYE ")
            bye = parse_message(raw)
            assert isinstance(bye, Request)
            ua.send(bytes(make_response(bye, 200)))
            with pytest.raises(ControlError, match="no live call"):
                await _in_thread(control.hangup, settings, "nope")
        assert await _in_thread(callee.finish) == 0  # the callee got its BYE too
    [cdr] = await cdrs(server)
    assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "hung up by admin")


async def test_hold_and_resume_pass_across(server: PbxServer, tmp_path: Path) -> None:
    port = free_port()
    await register_phone(server, "1002", port, tmp_path / "reg")
    with SippUas(SCENARIOS / "uas_hold.xml", tmp_path / "callee", port=port) as callee:
        async with SipClient(server.sip_port) as ua:
            unauthenticated = ua.invite("1001", "1002", cseq=1)
            first = await ua.exchange(unauthenticated)
            ua.send(ua.ack_for(unauthenticated, first))
            uri = f"sip:1002@127.0.0.1:{server.sip_port}"
            creds = make_credentials(
                ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri
            )
            invite = ua.invite("1001", "1002", authorization=str(creds), cseq=2)
            ok = await ua.exchange(invite, timeout=10)
            assert ok.status == 200
            ua.send(ua.ack_2xx(invite, ok))
            answers = []
            for cseq, direction in ((3, "sendonly"), (4, "sendrecv")):
                reinvite = ua.reinvite_for(invite, ok, cseq, direction)
                answer = await ua.exchange(reinvite, timeout=10)
                assert answer.status == 200
                ua.send(ua.ack_2xx(reinvite, answer))
                answers.append(answer.body)
            assert b"a=recvonly" in answers[0]
            assert b"a=sendrecv" in answers[1]
            ua.send(ua.bye_for(invite, ok).replace(b"CSeq: 3 BYE", b"CSeq: 5 BYE"))
            raw = await ua.receive(timeout=5)
            assert raw is not None and b" 200 " in raw.split(b"\r\n", 1)[0]
        assert await _in_thread(callee.finish) == 0
    # What the callee was offered: hold, then resume, at the relay's address.
    [log] = (tmp_path / "callee").glob("*_messages.log")
    offers = re.findall(rb"a=(sendonly|sendrecv|recvonly|inactive)", log.read_bytes())
    assert b"sendonly" in offers
