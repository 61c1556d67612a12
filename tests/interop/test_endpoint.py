"""The running server's SIP endpoint over real sockets: method routing, the RFC 4475
torture messages thrown at it over UDP, registration over TCP (sipp) and CRLF
keep-alives on TCP (RFC 5626 §3.5.1).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from sip.message import Response, parse_message
from tests.interop.peers import DATA, free_port, run_sipp
from tests.interop.sipclient import SipClient

PASSWORD = "Xk3-secret-pass"
TORTURE = DATA / "rfc4475"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", PASSWORD, "aiopbx")
    await store.close()
    pbx = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port()))
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


def _request(method: str, port: int, branch: str) -> bytes:
    return (
        f"{method} sip:1001@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\n"
        f"Call-ID: {branch}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("OPTIONS", 200),
        ("INVITE", 401),
        ("SUBSCRIBE", 489),  # MWI takes SUBSCRIBE; no Event header is a bad event
        ("PUBLISH", 405),
        ("FOO", 501),
        ("BYE", 481),
    ],
)
async def test_methods_are_routed(server: PbxServer, method: str, status: int) -> None:
    async with SipClient(server.sip_port) as ua:
        response = await ua.exchange(_request(method, server.sip_port, f"m{method}"))
    assert response.status == status
    if status in (200, 405):
        allow = {m.strip() for m in (response.headers.get("Allow") or "").split(",")}
        assert {"REGISTER", "OPTIONS", "INVITE", "BYE", "CANCEL"} <= allow
        assert "SUBSCRIBE" in allow
        assert "PUBLISH" not in allow


# What a live element answers each torture request with (None: nothing, a response
# or an unanswerable request is dropped). Application-level outcomes need a handler
# for the method; REGISTER is the one this server has, the rest meet 405/501 first.
EXPECTED: dict[str, int | None] = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400,
    "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400,
    "badaspec": 400, "baddn": 400, "mismatch01": 400, "mismatch02": 400, "badvers": 505,
    "insuf": 400, "multi01": 400, "mcl01": 400, "scalarlg": None, "bigcode": None,
    "regbadct": 400, "regaut01": 401, "regescrt": 401,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_torture_messages_get_the_right_answer(server: PbxServer, name: str) -> None:
    data = (TORTURE / f"{name}.dat").read_bytes()
    async with SipClient(server.sip_port) as ua:
        ua.send(data)
        raw = await ua.receive(timeout=0.5 if EXPECTED[name] is None else 5.0)
        if EXPECTED[name] is None:
            assert raw is None
        else:
            assert raw is not None, f"no answer to {name}"
            assert int(raw.split(b" ", 2)[1]) == EXPECTED[name]
        # The server is still there for the next request.
        alive = await ua.exchange(_request("OPTIONS", server.sip_port, f"alive{name}"))
        assert alive.status == 200


async def test_every_torture_message_leaves_the_server_running(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        for path in sorted(TORTURE.glob("*.dat")):
            ua.send(path.read_bytes())
        ua.send(_request("OPTIONS", server.sip_port, "afterall"))
        # Answers to the torture messages come first (some echo headers our own
        # parser refuses); the OPTIONS answer must follow them.
        for _ in range(100):
            raw = await ua.receive(timeout=10)
            assert raw is not None, "the server stopped answering"
            if b"Call-ID: afterall\r\n" in raw:
                assert raw.startswith(b"SIP/2.0 200 ")
                break
        else:
            pytest.fail("no answer to the OPTIONS after the torture messages")


async def test_sipp_registers_over_tcp(server: PbxServer, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        None,
        lambda: run_sipp(
            DATA / "sipp" / "register_auth.xml",
            server.sip_port,
            workdir=tmp_path,
            inf=[("1001", f"[authentication username=1001 password={PASSWORD}]")],
            transport="t1",
            timeout=20,
        ),
    )
    assert (result.returncode, result.successful) == (0, 1), result.output
    [reg] = server.status()["registrations"]
    assert str(reg["source"]).startswith("TCP 127.0.0.1:")


async def test_tcp_crlf_keepalive_and_framing(server: PbxServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sip_port)
    try:
        writer.write(b"\r\n\r\n")  # ping
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # pong
        # Two requests in one segment, split by the framer on Content-Length.
        first = _request("OPTIONS", server.sip_port, "tcp1").replace(b"UDP", b"TCP")
        second = _request("FOO", server.sip_port, "tcp2").replace(b"UDP", b"TCP")
        writer.write(first + second)
        answers = []
        for _ in range(2):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            message = parse_message(head)
            assert isinstance(message, Response)
            answers.append((message.status, message.call_id))
        assert answers == [(200, "tcp1"), (501, "tcp2")]
    finally:
        writer.close()
