"""Issue 11, acceptance 4: `pbx call originate 1001 1002` rings 1001 (showing 1002);
only after 1001 answers does 1002 ring (showing 1001); both hear each other's tone;
`pbx cdr list --format json` shows both calls, linked by the originate's id. B busy:
1001 hears a busy tone and is hung up. `POST /calls` errors: unknown A (404), bad JSON
(400).

The phones are the test's own UAS (SIP over UDP; PCMU RTP carrying a tone of their
own every 20 ms; the peak frequency of each packet received is noted), driven by the
real CLI in a subprocess against the in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from media.g711 import ulaw_decode, ulaw_encode
from pbx.events import CallAnswered, CallCreated
from pbx.server import PbxServer
from sip.headers import NameAddr
from sip.message import Request, make_response, parse_message
from sip.uri import SipUri
from tests.interop.ear import peak_hz, rtp_socket, sine
from tests.interop.peers import ROOT
from tests.interop.phones import PASSWORDS, closed_cdrs, running_server
from tests.interop.sipclient import SipClient, media_address


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path) as pbx:
        yield pbx


async def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def _pbx(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run the real `pbx` CLI against the server's data directory."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        "--data-dir",
        str(tmp_path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Phone:
    """A registered phone: rings (180) on an INVITE, answers when `answer` is set (or
    refuses 486 when `busy`), sends `hz` and notes the peak frequency of what it hears."""

    def __init__(self, server: PbxServer, user: str, hz: int, *, busy: bool = False) -> None:
        self.server, self.user, self.hz, self.busy = server, user, hz, busy
        self.ua = SipClient(server.sip_port)
        self.rtp = rtp_socket()
        self.heard: list[float] = []
        self.remote: tuple[str, int] | None = None
        self.invite: Request | None = None
        self.answer = asyncio.Event()
        self.got_bye = asyncio.Event()
        self.methods: list[str] = []  # the requests received, in order
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Phone:
        await self.ua.__aenter__()
        first = await self.ua.exchange(self.ua.register(self.user))
        creds = self.ua.answer(self.ua.challenge(first, "MD5"), self.user, PASSWORDS[self.user])
        ok = await self.ua.exchange(self.ua.register(self.user, authorization=str(creds)))
        assert ok.status == 200
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sip()), loop.create_task(self._listen())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ua.__aexit__(*exc)
        self.rtp.close()

    @property
    def shown_caller(self) -> str:
        """The user part of the From of the INVITE this phone got (its caller ID)."""
        assert self.invite is not None
        uri = NameAddr.parse(self.invite.headers.get("From") or "").uri
        assert isinstance(uri, SipUri)
        return uri.user or ""

    def hears(self, *hz: float) -> bool:
        """Whether each of the last 10 packets carried one of `hz`."""
        recent = self.heard[-10:]
        return len(recent) == 10 and all(any(abs(h - f) < 40 for f in hz) for h in recent)

    def hang_up(self) -> None:
        assert self.invite is not None
        h = self.invite.headers  # the switch's dialog: we are the UAS
        contact = NameAddr.parse(h.get("Contact") or "").uri
        raw = (
            f"BYE {contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.ua.port};branch=z9hG4bKbye{self.user}\r\n"
            f"From: {h.get('To')};tag=u{self.user}\r\nTo: {h.get('From')}\r\n"
            f"Call-ID: {h.get('Call-ID')}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.ua.send(raw.encode())

    async def _sip(self) -> None:
        while True:
            raw = await self.ua.receive(timeout=60)
            if raw is None:
                continue
            message = parse_message(raw)
            if not isinstance(message, Request):
                continue
            self.methods.append(message.method)
            if message.method == "ACK":
                continue
            if message.method == "INVITE":
                if self.invite is not None:  # a retransmission: our 180 is on its way
                    continue
                self.invite = message
                self.remote = media_address(message.body)
                status = 486 if self.busy else 180
                self.ua.send(bytes(make_response(message, status, to_tag=f"u{self.user}")))
                if not self.busy:
                    self._tasks.append(asyncio.get_running_loop().create_task(self._pick_up()))
                continue
            if message.method == "BYE":
                self.got_bye.set()
            self.ua.send(bytes(make_response(message, 200, to_tag=f"u{self.user}")))

    async def _pick_up(self) -> None:
        await self.answer.wait()
        assert self.invite is not None
        port = self.rtp.getsockname()[1]
        body = (
            "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
        headers = [
            ("Contact", f"<sip:{self.user}@127.0.0.1:{self.ua.port}>"),
            ("Content-Type", "application/sdp"),
        ]
        ok = make_response(self.invite, 200, to_tag=f"u{self.user}", headers=headers, body=body)
        self.ua.send(bytes(ok))
        await self._talk()

    async def _talk(self) -> None:
        loop = asyncio.get_running_loop()
        tone = sine(self.hz, 30.0)
        start = loop.time()
        for index in range(len(tone) // 160):
            if self.remote is None or self.rtp.fileno() < 0 or self.got_bye.is_set():
                return
            frame = ulaw_encode(tone[index * 160 : (index + 1) * 160]).tobytes()
            header = struct.pack("!BBHII", 0x80, 0, index & 0xFFFF, index * 160, 0x1234 + self.hz)
            with contextlib.suppress(OSError):
                self.rtp.sendto(header + frame, self.remote)
            delay = start + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.rtp, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                self.heard.append(peak_hz(ulaw_decode(data[12:])))


async def _cdrs(tmp_path: Path) -> list[dict[str, Any]]:
    code, out, err = await _pbx(tmp_path, "cdr", "list", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


async def test_originate_rings_a_then_b_and_bridges_them(server: PbxServer, tmp_path: Path) -> None:
    events = server.events.subscribe(10_000, name="test")
    async with Phone(server, "1001", 600) as a, Phone(server, "1002", 1400) as b:
        code, out, err = await _pbx(tmp_path, "call", "originate", "1001", "1002")
        assert code == 0, err
        oid = out.strip()
        assert oid.startswith("o-")
        await _until(lambda: a.invite is not None, "1001 rings")
        assert a.shown_caller == "1002"  # A sees whom it will be connected to
        assert b.invite is None  # B is not rung before A answers
        a.answer.set()
        await _until(lambda: b.invite is not None, "1002 rings after 1001 answered")
        assert b.shown_caller == "1001"
        await _until(lambda: a.hears(440, 480), "1001 hears ringback while 1002 rings")
        b.answer.set()
        await _until(lambda: a.hears(1400) and b.hears(600), "each hears the other's tone")
        b.hang_up()
        await asyncio.wait_for(a.got_bye.wait(), 20)  # the switch hangs up 1001 too
    await closed_cdrs(server, 2)
    rows = await _cdrs(tmp_path)
    assert sorted((r["caller"], r["callee"]) for r in rows) == [("1001", "1002"), ("1002", "1001")]
    assert all(r["disposition"] == "ANSWERED" for r in rows)
    assert all(f"originate {oid}" in r["hangup_cause"] for r in rows), rows
    seen = events.take()
    events.close()
    created = [e for e in seen if isinstance(e, CallCreated) and e.direction == "out"]
    assert [e.callee for e in created] == ["1001", "1002"]
    answered = {e.call_id for e in seen if isinstance(e, CallAnswered)}
    assert {e.call_id for e in created} <= answered


async def test_originate_to_a_busy_b_plays_busy_to_a(server: PbxServer, tmp_path: Path) -> None:
    async with Phone(server, "1001", 600) as a, Phone(server, "1002", 1400, busy=True) as b:
        a.answer.set()
        code, out, err = await _pbx(tmp_path, "call", "originate", "1001", "1002")
        assert code == 0, err
        oid = out.strip()
        await _until(lambda: b.invite is not None, "1002 rings (and is busy)")
        await _until(lambda: a.hears(480, 620), "1001 hears the busy tone")
        await asyncio.wait_for(a.got_bye.wait(), 20)
    await closed_cdrs(server, 2)
    rows = {r["callee"]: r for r in await _cdrs(tmp_path)}
    assert rows["1002"]["disposition"] == "BUSY"
    assert rows["1002"]["hangup_cause"].startswith("486")
    assert rows["1001"]["disposition"] == "ANSWERED"
    assert all(f"originate {oid}" in r["hangup_cause"] for r in rows.values())


async def test_post_calls_refuses_unknown_a_and_bad_json(server: PbxServer, tmp_path: Path) -> None:
    code, _, err = await _pbx(tmp_path, "call", "originate", "4711", "1002")
    assert code == 1
    assert err.strip() == "pbx: error: server refused /calls: no extension '4711'"
    info = json.loads(server.settings.control_file.read_text())
    url = f"http://{info['host']}:{info['port']}/calls"
    auth = {"Authorization": f"Bearer {info['token']}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b"{not json", headers=auth) as response:
            assert response.status == 400
            assert "error" in await response.json()
        async with session.post(url, json={"from": "1001"}, headers=auth) as response:
            assert response.status == 400
        async with session.post(url, json={"from": "4711", "to": "1002"}, headers=auth) as r:
            assert (r.status, await r.json()) == (404, {"error": "no extension '4711'"})
        async with session.post(url, json={"from": "1001", "to": "1002"}) as response:
            assert response.status == 401
        server.max_originations = 0
        async with session.post(url, json={"from": "1001", "to": "1002"}, headers=auth) as r:
            assert r.status == 503
    assert server.calls is not None and not server.calls.calls  # nothing was dialled


async def test_stopping_the_server_cancels_a_ringing_originate(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, Phone(server, "1001", 600) as a:
        code, _, err = await _pbx(tmp_path, "call", "originate", "1001", "1002")
        assert code == 0, err
        await _until(lambda: a.invite is not None, "1001 rings")
        assert server.calls is not None and len(server.calls.calls) == 1
        await server.stop()  # the originate task is cancelled: 1001 stops ringing
        await _until(lambda: "CANCEL" in a.methods, "1001 gets a CANCEL")
        assert not server._originations
