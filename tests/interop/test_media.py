"""RTP through the switch's relay: sipp signals as the callee, the test's own UDP
sockets are both phones' media, so every packet can be checked byte for byte.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.g711_tables import ALAW_TO_ULAW, ULAW_TO_ALAW
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from sip.digest import make_credentials
from sip.message import Request, Response, make_response, parse_message
from tests.interop.peers import DATA, SippUas, free_port, run_sipp
from tests.interop.sipclient import SipClient

SCENARIOS = DATA / "sipp"
PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
PACKETS = 50


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.close()
    base = free_port(40)
    settings = Settings(
        data_dir=tmp_path, sip_port=free_port(), rtp_port_min=base, rtp_port_max=base + 39
    )
    pbx = PbxServer(settings)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


def rtp(seq: int, pt: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), deadline - loop.time()))
        except TimeoutError:
            break
    return got


async def _register(server: PbxServer, port: int, workdir: Path) -> None:
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        None,
        lambda: run_sipp(
            SCENARIOS / "register_auth.xml",
            server.sip_port,
            workdir=workdir,
            inf=[("1002", f"[authentication username=1002 password={PASSWORDS['1002']}]")],
            local_port=port,
            timeout=15,
        ),
    )
    assert result.successful == 1, result.output


def _sdp_port(body: bytes) -> tuple[str, int]:
    host = re.search(rb"c=IN IP4 (\S+)", body)
    port = re.search(rb"m=audio (\d+)", body)
    assert host and port
    return host.group(1).decode(), int(port.group(1))


@pytest.mark.parametrize(("pt", "codec"), [(0, "PCMU"), (8, "PCMA")])
async def test_rtp_both_ways_through_the_relay(
    server: PbxServer, tmp_path: Path, pt: int, codec: str
) -> None:
    phone_port = free_port()
    await _register(server, phone_port, tmp_path / "reg")
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    callee_port = callee_rtp.getsockname()[1]
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{callee_port};{pt};{codec}\n")
    uas = SippUas(
        SCENARIOS / "uas_answer_media.xml", tmp_path / "callee", port=phone_port,
        extra=("-inf", str(inf)),
    )  # fmt: skip
    try:
        async with SipClient(server.sip_port) as ua:
            unauthenticated = ua.invite("1001", "1002", cseq=1)
            first = await ua.exchange(unauthenticated)
            ua.send(ua.ack_for(unauthenticated, first))
            uri = f"sip:1002@127.0.0.1:{server.sip_port}"
            creds = make_credentials(
                ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri
            )
            invite = ua.invite(
                "1001", "1002", authorization=str(creds), cseq=2,
                rtp_port=caller_rtp.getsockname()[1],
            )  # fmt: skip
            ok = await ua.exchange(invite, timeout=10)
            assert ok.status == 200
            ua.send(ua.ack_2xx(invite, ok))
            # The caller is answered in its own codec (PCMU), at the relay.
            assert b"m=audio" in ok.body and b" RTP/AVP 0" in ok.body
            relay_a = _sdp_port(ok.body)
            assert relay_a[1] != callee_port
            # Where the callee was told to send: the INVITE sipp received.
            [log] = (tmp_path / "callee").glob("*_messages.log")
            invite_to_callee = log.read_bytes().split(b"INVITE sip:", 1)[1]
            relay_b = _sdp_port(invite_to_callee)

            ulaw = bytes(range(256))[:160]
            for seq in range(PACKETS):
                caller_rtp.sendto(rtp(seq, 0, ulaw, 0x1111), relay_a)
            heard = await receive(callee_rtp, PACKETS)
            assert len(heard) == PACKETS
            want = ulaw if pt == 0 else ulaw.translate(ULAW_TO_ALAW)
            assert {(p[1] & 0x7F, p[12:]) for p in heard} == {(pt, want)}
            assert sorted(struct.unpack("!H", p[2:4])[0] for p in heard) == list(range(PACKETS))

            back = bytes(reversed(want))
            for seq in range(PACKETS):
                callee_rtp.sendto(rtp(seq, pt, back, 0x2222), relay_b)
            returned = await receive(caller_rtp, PACKETS)
            assert len(returned) == PACKETS
            expected = back if pt == 0 else back.translate(ALAW_TO_ULAW)
            assert {(p[1] & 0x7F, p[12:]) for p in returned} == {(0, expected)}

            ua.send(ua.bye_for(invite, ok))
            raw = await ua.receive(timeout=5)
            assert raw is not None
            answer = parse_message(raw)
            assert isinstance(answer, Response) and answer.status == 200
        assert uas.finish() == 0
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()


async def test_silent_call_is_hung_up_on_media_timeout(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.close()
    server = PbxServer(Settings(data_dir=tmp_path, sip_port=free_port(), media_timeout=1.0))
    await server.start()
    try:
        phone_port = free_port()
        await _register(server, phone_port, tmp_path / "reg")
        inf = tmp_path / "media.csv"
        inf.write_text(f"SEQUENTIAL\n{free_port()};0;PCMU\n")
        uas = SippUas(
            SCENARIOS / "uas_answer_media.xml", tmp_path / "callee", port=phone_port,
            extra=("-inf", str(inf)),
        )  # fmt: skip
        try:
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
                # Nobody sends RTP: after 1 s the switch hangs up both legs.
                raw = await ua.receive(timeout=10)
                assert raw is not None and raw.startswith(b"BYE ")
                bye = parse_message(raw)
                assert isinstance(bye, Request)
                ua.send(bytes(make_response(bye, 200)))
            assert uas.finish() == 0
        finally:
            uas.kill()
        assert server._store is not None
        for _ in range(100):
            rows = await server._store.cdrs.list()
            if rows and rows[0].end is not None:
                break
            await asyncio.sleep(0.05)
        assert (rows[0].disposition, rows[0].hangup_cause) == ("ANSWERED", "media timeout")
    finally:
        await server.stop()
