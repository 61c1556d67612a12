"""Issue 10's media attacks against a running switch on loopback: hostile SDP (a host
name in c=, impossible ports), RTP hijack by spraying the relay's ports (race and NAT
cases), media reflection toward an SDP victim, one user's call flood, and a callee
whose malformed SDP answer must not leave a ghost leg.

The attacker and the victim live on other loopback hosts (127.0.0.2, 127.0.0.9) than
the phones and their SIP (127.0.0.1), as they would on a real network.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pbx import control
from pbx.media_bridge import AnchoredMedia
from pbx.server import PbxServer
from sip.digest import make_credentials
from sip.message import Response
from tests.interop.peers import free_port
from tests.interop.phones import (
    PASSWORDS,
    closed_cdrs,
    dial,
    in_thread,
    phone,
    register,
    running_server,
)
from tests.interop.sipclient import SipClient, media_address

WAIT = 5.0  # bound on every wait for a packet; never reached when things work
ATTACKER = "127.0.0.2"
VICTIM = "127.0.0.9"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    base = free_port(40)
    async with running_server(tmp_path, rtp_port_min=base, rtp_port_max=base + 39) as pbx:
        yield pbx


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def rtp(seq: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + payload


def drain(sock: socket.socket) -> list[bytes]:
    """What is queued on `sock` now."""
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


async def receive(sock: socket.socket, timeout: float = WAIT) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), timeout)


async def nothing_within(sock: socket.socket, seconds: float) -> bool:
    try:
        await receive(sock, seconds)
    except TimeoutError:
        return True
    return False


def with_sdp(invite: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """`invite` with its SDP body edited (Content-Length fixed)."""
    head, body = invite.split(b"\r\n\r\n", 1)
    body = edit(body)
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
    return head + b"\r\n\r\n" + body


async def dial_edited(
    ua: SipClient,
    server: PbxServer,
    target: str,
    edit: Callable[[bytes], bytes],
    *,
    rtp_port: int,
    wait_final: bool = True,
) -> tuple[bytes, Response | None]:
    """INVITE `target` as 1001 with the offer edited by `edit`; ACK a final response.
    Without `wait_final` only the authenticated INVITE is sent (the call is left ringing)."""
    first_invite = with_sdp(ua.invite("1001", target, cseq=1, rtp_port=rtp_port), edit)
    first = await ua.exchange(first_invite)
    assert first.status == 401
    ua.send(ua.ack_for(first_invite, first))
    uri = f"sip:{target}@127.0.0.1:{server.sip_port}"
    creds = make_credentials(ua.challenge(first, "MD5"), "1001", PASSWORDS["1001"], "INVITE", uri)
    invite = with_sdp(
        ua.invite("1001", target, authorization=str(creds), cseq=2, rtp_port=rtp_port), edit
    )
    if not wait_final:
        ua.send(invite)
        return invite, None
    final = await ua.exchange(invite, timeout=20)
    if final.status >= 300:
        ua.send(ua.ack_for(invite, final))
    else:
        ua.send(ua.ack_2xx(invite, final))
    return invite, final


async def live_calls(server: PbxServer) -> list[dict[str, Any]]:
    calls = (await in_thread(control.fetch_calls, server.settings))["calls"]
    assert isinstance(calls, list)
    return calls


# -- §3 no DNS on the loop, §10 impossible ports: refused at SDP time ---------------------


@pytest.fixture
def hanging_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Name lookups that would hang (10 s) if anyone made them; IP literals pass. Yields
    the names asked for."""
    asked: list[str] = []
    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host)
        if host is not None and not re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", text):
            asked.append(text)
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "silent resolver")
        return real(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        asked.append(host)
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "silent resolver")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    yield asked
    release.set()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"c=IN IP4 127.0.0.1", b"c=IN IP4 media.attacker.invalid"),
        (b"a=rtpmap:0 PCMU/8000\r\n", b"a=rtpmap:0 PCMU/8000\r\na=rtcp:99999\r\n"),
        (b"m=audio 40000", b"m=audio 65535"),
        (b"a=rtpmap:0 PCMU/8000\r\n", b"a=rtpmap:0 PCMU/" + b"8" * 5000 + b"\r\n"),
    ],
    ids=["hostname", "rtcp-99999", "port-65535", "rate-5000-digits"],
)
async def test_hostile_offer_gets_488_and_the_switch_keeps_answering(
    server: PbxServer, hanging_resolver: list[str], old: bytes, new: bytes
) -> None:
    async with SipClient(server.sip_port) as ua:
        _, final = await dial_edited(
            ua, server, "1002", lambda body: body.replace(old, new), rtp_port=40000
        )
        assert final is not None and final.status == 488
        # Right after: a REGISTER is answered at once (challenged) — the loop is free.
        challenge = await ua.exchange(ua.register("1003"), timeout=WAIT)
        assert challenge.status == 401
    assert hanging_resolver == []
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause is not None and cdr.hangup_cause.startswith("488")


# -- §4 RTP hijack: an attacker spraying every relay port -----------------------------


async def spray(attacker: socket.socket, ports: range, stop: asyncio.Event) -> int:
    """Send in-sequence RTP with one SSRC to every port of `ports`, every 20 ms, until
    `stop`; returns how many datagrams were sent."""
    seq, sent = 0, 0
    loop = asyncio.get_running_loop()
    while not stop.is_set() and seq < 1000:
        for port in ports:
            try:
                attacker.sendto(rtp(seq, b"\x66" * 160, 0xBAD), ("127.0.0.1", port))
                sent += 1
            except BlockingIOError:
                pass
        seq += 1
        tick = asyncio.Event()
        loop.call_later(0.02, tick.set)
        await tick.wait()
    return sent


async def exchange_audio(
    caller_tx: socket.socket,
    caller_rx: socket.socket,
    relay_a: tuple[str, int],
    callee: socket.socket,
    relay_b: tuple[str, int],
) -> tuple[list[bytes], list[bytes]]:
    """Caller and callee each send 20 packets; what each received (payloads)."""
    for seq in range(1, 21):
        caller_tx.sendto(rtp(seq, b"\x11" * 160, 0xCA11), relay_a)
        callee.sendto(rtp(seq, b"\x22" * 160, 0xCA1EE), relay_b)
    heard_by_callee = [(await receive(callee))[12:] for _ in range(18)]  # after probation
    heard_by_caller = [(await receive(caller_rx))[12:] for _ in range(18)]
    return heard_by_callee, heard_by_caller


@pytest.mark.parametrize("nat", [False, True], ids=["race", "nat"])
async def test_attacker_spraying_relay_ports_gets_and_injects_nothing(
    server: PbxServer, tmp_path: Path, nat: bool
) -> None:
    """race: the attacker sprays every port of the RTP range before and while the call
    is set up. nat: the caller's SDP names a port it never sends from; its real source is
    another port of its host (a NAT), and the attacker was there first."""
    caller_sdp, callee = udp_socket(), udp_socket()
    caller_nat = udp_socket() if nat else caller_sdp
    attacker = udp_socket(ATTACKER)
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{port_of(callee)};0;PCMU\n")
    uas = await phone(server, "1002", "uas_answer_media.xml", tmp_path / "callee", "-inf", str(inf))
    s = server.settings
    stop = asyncio.Event()
    sprayer = asyncio.ensure_future(spray(attacker, range(s.rtp_port_min, s.rtp_port_max), stop))
    try:
        tick = asyncio.Event()  # the attacker has been at it for a while before the call
        asyncio.get_running_loop().call_later(0.2, tick.set)
        await tick.wait()
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", rtp_port=port_of(caller_sdp))
            assert ok.status == 200
            relay_a = media_address(ok.body)
            [log] = (tmp_path / "callee").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            heard_by_callee, heard_by_caller = await exchange_audio(
                caller_nat, caller_nat, relay_a, callee, relay_b
            )
            stop.set()
            sent = await sprayer
            assert set(heard_by_callee) == {b"\x11" * 160}  # the caller, nothing injected
            assert set(heard_by_caller) == {b"\x22" * 160}
            assert await nothing_within(attacker, 0.3)  # the attacker heard nothing at all
            assert b"\x66" * 160 not in {p[12:] for p in drain(callee) + drain(caller_nat)}
            assert sent > 100
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        stop.set()
        await sprayer
        uas.kill()
        for sock in {caller_sdp, caller_nat, callee, attacker}:
            sock.close()


# -- §6 media reflection ---------------------------------------------------------------


async def test_no_media_to_a_victim_named_in_sdp(server: PbxServer, tmp_path: Path) -> None:
    """The caller's SDP names a victim's socket on another host; the victim never sends.
    The callee talks for a while: not one packet reaches the victim."""
    victim, callee = udp_socket(VICTIM), udp_socket()
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{port_of(callee)};0;PCMU\n")
    uas = await phone(server, "1002", "uas_answer_media.xml", tmp_path / "callee", "-inf", str(inf))
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial_edited(
                ua,
                server,
                "1002",
                lambda body: body.replace(b"c=IN IP4 127.0.0.1", f"c=IN IP4 {VICTIM}".encode()),
                rtp_port=port_of(victim),
            )
            assert ok is not None and ok.status == 200
            [log] = (tmp_path / "callee").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            for seq in range(50):
                callee.sendto(rtp(seq, b"\x22" * 160, 0xCA1EE), relay_b)
            assert await nothing_within(victim, 0.5)
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
        victim.close()
        callee.close()


async def test_fifth_concurrent_call_of_one_user_is_refused(
    server: PbxServer, tmp_path: Path
) -> None:
    """1002's phone takes INVITEs and never answers: 1001's first four calls ring, the
    fifth gets 486 Busy Here at once."""
    port = free_port()
    await register(server, "1002", port, tmp_path / "reg")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", port))  # the registered contact: swallows every INVITE
    clients = [SipClient(server.sip_port) for _ in range(5)]
    try:
        for ua in clients:
            await ua.__aenter__()
        invites = []
        for ua in clients[:4]:
            invite, _ = await dial_edited(
                ua, server, "1002", lambda body: body, rtp_port=40000, wait_final=False
            )
            invites.append(invite)
        for _ in range(100):
            calls = await live_calls(server)
            if sum(c["direction"] == "in" for c in calls) == 4:
                break
            tick = asyncio.Event()
            asyncio.get_running_loop().call_later(0.05, tick.set)
            await tick.wait()
        assert sum(c["direction"] == "in" for c in calls) == 4
        _, final = await dial_edited(clients[4], server, "1002", lambda body: body, rtp_port=40000)
        assert final is not None and final.status == 486
        for ua, invite in zip(clients[:4], invites, strict=True):
            cancelled = await ua.exchange(ua.cancel_for(invite), timeout=10)
            assert cancelled.status == 200
    finally:
        for ua in clients:
            await ua.__aexit__(None, None, None)
        silent.close()


# -- §9 ghost calls ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer_line", "answer_line", "status"),
    [
        # In the caller's offer: the switch's answer used to read it (OverflowError after
        # the callee answered: 500 to the caller, the callee's leg up for ever); now it
        # is ignored, as a phone would, and the call goes on.
        ("a=ptime:1e400", "a=sendrecv", 200),
        ("", "a=rtpmap:0 PCMU/" + "8" * 5000, 488),  # in the callee's answer
        ("", "a=rtcp:99999", 488),
    ],
    ids=["offer-ptime-1e400", "answer-rate-5000-digits", "answer-rtcp-99999"],
)
async def test_malformed_sdp_leaves_no_ghost_leg(
    server: PbxServer, tmp_path: Path, offer_line: str, answer_line: str, status: int
) -> None:
    """Hostile SDP after the callee answered: the caller gets a final response (488, or
    200 when the line is only ignored; it then hangs up), the callee gets its BYE, the
    CDR is closed and no call is left up."""
    inf = tmp_path / "bad.csv"
    inf.write_text(f"SEQUENTIAL\n{answer_line}\n")
    workdir = tmp_path / "callee"
    uas = await phone(server, "1002", "uas_answer_bad_sdp.xml", workdir, "-inf", str(inf))
    extra = f"a=rtpmap:0 PCMU/8000\r\n{offer_line}\r\n" if offer_line else ""
    try:
        async with SipClient(server.sip_port) as ua:
            invite, final = await dial_edited(
                ua,
                server,
                "1002",
                lambda body: (
                    body.replace(b"a=rtpmap:0 PCMU/8000\r\n", extra.encode()) if extra else body
                ),
                rtp_port=40000,
            )
            assert final is not None and final.status == status
            if status == 200:
                bye = await ua.exchange(ua.in_dialog(invite, final, "BYE", 5), timeout=10)
                assert bye.status == 200
        assert await in_thread(uas.finish) == 0  # the callee got its BYE
        [cdr] = await closed_cdrs(server)
        assert cdr.end is not None and cdr.hangup_cause is not None
        assert cdr.hangup_cause.startswith("488" if status == 488 else "caller hung up")
        assert await live_calls(server) == []
        assert server.b2bua is not None and server.b2bua.bridges == {}
    finally:
        uas.kill()


async def test_unexpected_failure_inside_a_call_ends_both_legs(
    server: PbxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any bug after the callee answered (here a RuntimeError from the media code): the
    caller gets 500, the callee its BYE, the CDR is closed, nothing stays up."""

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(AnchoredMedia, "answer_from", broken)
    inf = tmp_path / "good.csv"
    inf.write_text("SEQUENTIAL\na=sendrecv\n")
    workdir = tmp_path / "callee"
    uas = await phone(server, "1002", "uas_answer_bad_sdp.xml", workdir, "-inf", str(inf))
    try:
        async with SipClient(server.sip_port) as ua:
            _, final = await dial(ua, server, "1002")
            assert final.status == 500
        assert await in_thread(uas.finish) == 0
        [cdr] = await closed_cdrs(server)
        assert cdr.hangup_cause == "500 internal error: RuntimeError"
        assert await live_calls(server) == []
    finally:
        uas.kill()
