"""Issue 11, acceptance 5: the event stream on GET /events during a real call.

Two sipp phones (1001 calls 1002 through the switch); an aiohttp WebSocket client
receives, in order, created, ringing, answered, bridged and ended (with its cause and
CDR) for the caller's leg, each with its call id; a wrong token gets 401 before any
upgrade; a WebSocket client that stops reading is dropped (one log line) while the
call goes on to its normal end and the reading client misses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from pbx.config import Settings
from pbx.events import (
    CallAnswered,
    CallBridged,
    CallCreated,
    CallDtmf,
    CallEnded,
    CallHeld,
    CallResumed,
    CallRinging,
    CallTransferred,
    CallUnbridged,
    Event,
    RegistrationDown,
    RegistrationUp,
)
from pbx.server import PbxServer
from pbx.store import Store
from tests.interop.peers import ROOT, free_port, run_sipp
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


@dataclass(frozen=True, slots=True)
class Padding(Event):
    """Bulk published by the test to fill a silent client's socket."""

    kind: ClassVar[str] = "test.padding"
    text: str


async def _silent_websocket(port: int, token: str) -> asyncio.StreamWriter:
    """A WebSocket client with a tiny receive buffer that upgrades, then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        (
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 101"), head
    return writer


async def _until(condition: Any, what: str, timeout: float = 30) -> None:
    """Wait (bounded) for a condition of the in-process server."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def test_call_events_over_the_websocket(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbx")
    async with running_server(tmp_path, ring_timeout=10.0) as server:
        await _scenario(server, tmp_path)
    drops = [m for m in caplog.messages if m.startswith("events: websocket") and "dropped" in m]
    assert len(drops) == 1, caplog.messages


async def _scenario(server: PbxServer, tmp_path: Path) -> None:
    token = json.loads(server.settings.control_file.read_text())["token"]
    url = f"http://127.0.0.1:{server.control_port}/events"
    bus = server.events
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers={"Authorization": "Bearer not-the-token"})
        assert refused.value.status == 401
        assert bus.subscribers == 0

        ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
        await _until(lambda: bus.subscribers == 1, "the reading client's subscription")
        assert server._control is not None
        server._control.ws_queue = 4  # the silent client gets a small queue
        silent = await _silent_websocket(server.control_port, token)
        await _until(lambda: bus.subscribers == 2, "the silent client's subscription")

        received: list[dict[str, Any]] = []
        bridged = asyncio.Event()

        async def read() -> None:
            async for msg in ws:
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                for line in msg.data.splitlines():  # JSON lines: one event a line
                    event = json.loads(line)
                    received.append(event)
                    if event["kind"] == "call.bridged":
                        bridged.set()
                    if event["kind"] == "call.unbridged":
                        return  # both legs have ended before their bridge says so

        reader = asyncio.ensure_future(read())
        try:
            with await phone(server, "1002", "uas_answer.xml", tmp_path / "callee") as callee:
                caller = asyncio.ensure_future(
                    in_thread(
                        run_sipp,
                        SCENARIOS / "uac_call.xml",
                        server.sip_port,
                        workdir=tmp_path,
                        inf=[("1001", sipp_auth("1001"), "1002")],
                        timeout=60,
                        extra=("-d", "3000", "-auth_uri", f"1002@127.0.0.1:{server.sip_port}"),
                    )
                )
                async with asyncio.timeout(60):
                    await bridged.wait()
                # The call is up: the silent client now falls behind and is dropped.
                published = 0
                while bus.subscribers == 2 and published < 20_000:
                    bus.publish(Padding("", text="x" * 2000))
                    published += 1
                    await asyncio.sleep(0)
                assert bus.subscribers == 1, "the silent client was not dropped"
                result = await caller
                assert (result.returncode, result.successful) == (0, 1), result.output
                assert await in_thread(callee.finish) == 0
            async with asyncio.timeout(60):
                await reader
        finally:
            reader.cancel()
            silent.close()
            await ws.close()

    calls = [e for e in received if e["kind"].startswith("call.")]
    [inbound] = [
        e["call_id"] for e in calls if e["kind"] == "call.created" and e["direction"] == "in"
    ]
    [outbound] = [
        e["call_id"] for e in calls if e["kind"] == "call.created" and e["direction"] == "out"
    ]
    mine = [e for e in calls if e["call_id"] == inbound]
    assert [e["kind"] for e in mine] == [
        "call.created",
        "call.ringing",
        "call.answered",
        "call.bridged",
        "call.ended",
        "call.unbridged",
    ]
    created, ringing, _answered, bridged_event, ended, _ = mine
    assert (created["caller"], created["callee"]) == ("1001", "1002")
    assert ringing["status"] == 180
    assert bridged_event["other_call_id"] == outbound
    [cdr] = await closed_cdrs(server)
    assert (ended["status"], ended["reason"], ended["by_remote"]) == (0, "remote hangup", True)
    assert ended["cdr_id"] == cdr.id
    assert [e["kind"] for e in calls if e["call_id"] == outbound] == [
        "call.created",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    # The reading client got every padding event too: nothing was lost on its side.
    assert sum(e["kind"] == "test.padding" for e in received) == published
    assert cdr.disposition == "ANSWERED" and cdr.hangup_cause == "caller hung up"


async def test_registration_hold_resume_and_dtmf_events(tmp_path: Path) -> None:
    async with running_server(tmp_path, ring_timeout=10.0) as server:
        sub = server.events.subscribe(maxsize=10_000, name="test")
        # Hold and resume, answered by the switch (the callee is not re-INVITEd).
        with await phone(server, "1002", "uas_answer.xml", tmp_path / "hold") as callee:
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "1002")
                assert ok.status == 200
                for cseq, direction in ((3, "sendonly"), (4, "sendrecv")):
                    reinvite = ua.reinvite_for(invite, ok, cseq, direction)
                    answer = await ua.exchange(reinvite, timeout=10)
                    assert answer.status == 200
                    ua.send(ua.ack_2xx(reinvite, answer))
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
                assert bye.status == 200
            assert await in_thread(callee.finish) == 0
        await closed_cdrs(server)
        first = sub.take()
        [up] = [e for e in first if isinstance(e, RegistrationUp)]
        assert up.aor == "1002" and "127.0.0.1" in up.contact
        [caller] = [e.call_id for e in first if isinstance(e, CallCreated) and e.direction == "in"]
        assert [type(e) for e in first if e.call_id == caller] == [
            CallCreated,
            CallRinging,
            CallAnswered,
            CallBridged,
            CallHeld,
            CallResumed,
            CallEnded,
            CallUnbridged,
        ]

        # DTMF as SIP INFO from the caller, passed on to a phone that takes INFO.
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        inf = tmp_path / "media.csv"
        inf.write_text(f"SEQUENTIAL\n{rtp.getsockname()[1]};0;PCMU\n")
        try:
            with await phone(
                server, "1002", "uas_answer_media.xml", tmp_path / "dtmf", "-inf", str(inf)
            ) as callee:
                async with SipClient(server.sip_port) as ua:
                    invite, ok = await dial(ua, server, "1002")
                    assert ok.status == 200
                    for cseq, digit in ((3, "4"), (4, "2")):
                        body = f"Signal={digit}\r\nDuration=160\r\n"
                        info = ua.in_dialog(
                            invite, ok, "INFO", cseq, ("Content-Type: application/dtmf-relay",)
                        ).replace(
                            b"Content-Length: 0\r\n\r\n",
                            f"Content-Length: {len(body)}\r\n\r\n{body}".encode(),
                        )
                        assert (await ua.exchange(info, timeout=10)).status == 200
                    bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
                    assert bye.status == 200
                assert await in_thread(callee.finish) == 0
        finally:
            rtp.close()
        await closed_cdrs(server, 2)
        second = sub.take()
        [caller] = [e.call_id for e in second if isinstance(e, CallCreated) and e.direction == "in"]
        digits = [e.digit for e in second if isinstance(e, CallDtmf) and e.call_id == caller]
        assert digits == ["4", "2"]
        sub.close()


async def test_pbx_events_prints_live_events(tmp_path: Path) -> None:
    """`pbx events --json` and the plain form, against the running server."""
    async with running_server(tmp_path) as server:
        for as_json in (True, False):
            args = [sys.executable, "-m", "cli", "events", "--count", "1"]
            args += ["--data-dir", str(tmp_path), *(["--json"] if as_json else [])]
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            try:
                await _until(lambda: server.events.subscribers == 1, "pbx events to listen", 60)
                with await phone(server, "1003", "uas_answer.xml", tmp_path / f"p{as_json}"):
                    out, err = await asyncio.wait_for(proc.communicate(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode == 0, err
            [line] = out.decode().splitlines()
            if as_json:
                event = json.loads(line)
                assert (event["kind"], event["aor"], event["call_id"]) == (
                    "registration.up",
                    "1003",
                    "",
                )
                assert "127.0.0.1" in event["contact"]
            else:
                assert re.fullmatch(
                    r"\d\d:\d\d:\d\d\.\d{3}  registration\.up\s+1003\s+contact=.*127\.0\.0\.1.*",
                    line,
                ), line
            # (the next round's phone registers from a new port: a new contact, a new event)
            await _until(lambda: server.events.subscribers == 0, "pbx events to end", 60)


async def test_registration_up_and_down(tmp_path: Path) -> None:
    """A new contact is "up" (a refresh is not an event); expires 0 and expiry are "down"."""
    now = [1_800_000_000.0]
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", PASSWORDS["1001"], "aiopbx")
    await store.close()
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()), clock=lambda: now[0])
    await server.start()
    sub = server.events.subscribe(maxsize=100)
    try:
        async with SipClient(server.sip_port) as ua:
            challenge = ua.challenge(await ua.exchange(ua.register("1001")), "MD5")
            nc = iter(range(1, 100))

            def auth() -> str:
                return str(ua.answer(challenge, "1001", PASSWORDS["1001"], nc=next(nc)))

            for contact, expires in (
                ("<sip:1001@127.0.0.1:7001>", 300),
                ("<sip:1001@127.0.0.1:7001>", 300),  # a refresh
                ("<sip:1001@127.0.0.1:7002>", 60),
                ("<sip:1001@127.0.0.1:7001>", 0),
            ):
                answer = await ua.exchange(
                    ua.register("1001", contact=contact, expires=expires, authorization=auth())
                )
                assert answer.status == 200
        now[0] += 61
        assert server.registrar is not None
        assert await server.registrar.purge() == 1
    finally:
        await server.stop()
    got = [
        (e.kind, e.aor, e.contact, e.why if isinstance(e, RegistrationDown) else "")
        for e in sub.take()
        if isinstance(e, RegistrationUp | RegistrationDown)
    ]
    assert got == [
        ("registration.up", "1001", "<sip:1001@127.0.0.1:7001>", ""),
        ("registration.up", "1001", "<sip:1001@127.0.0.1:7002>", ""),
        ("registration.down", "1001", "<sip:1001@127.0.0.1:7001>", "removed"),
        ("registration.down", "1001", "<sip:1001@127.0.0.1:7002>", "expired"),
    ]


async def test_blind_transfer_event(tmp_path: Path) -> None:
    """1001 calls 1002, whose phone REFERs the call to 1003: the caller's leg is
    "transferred" to 1003's new leg, by 1002's leg, and its CDR follows every leg."""
    async with running_server(tmp_path, ring_timeout=10.0) as server:
        sub = server.events.subscribe(maxsize=10_000)
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
            assert (caller.returncode, caller.successful) == (0, 1), caller.output
            assert await in_thread(transferor.finish) == 0
            assert await in_thread(target.finish) == 0
        [cdr] = await closed_cdrs(server)
        events = sub.take()
    legs = {
        e.callee if e.direction == "out" else "in": e.call_id
        for e in events
        if isinstance(e, CallCreated)
    }
    [moved] = [e for e in events if isinstance(e, CallTransferred)]
    assert (moved.call_id, moved.target, moved.new_call_id, moved.by_call_id) == (
        legs["in"],
        "1003",
        legs["1003"],
        legs["1002"],
    )
    ended = {e.call_id: e.cdr_id for e in events if isinstance(e, CallEnded)}
    assert ended == {legs["in"]: cdr.id, legs["1002"]: cdr.id, legs["1003"]: cdr.id}
