"""The switch's own media (IVR menus) on real sockets, against the test's own SIP
client and RTP sockets:

- source rules (issue 10 §5): a third party's RFC 4733 digits are not taken, and a
  third party that sends first gets none of the prompts;
- one continuous stream (issue 9 §8): while a menu waits in silence the phone keeps
  receiving RTP, one SSRC with seq +1 / ts +160 across prompt -> silence -> prompt;
- the media verbs end with the call (issue 9 §2): a caller hanging up 1 s into the
  greeting, or 1 s into the wait for a key, leaves a CDR of at most 2 s;
- SDP origin and Contact (issue 9 §8): through IVR -> extension -> hold -> resume the
  caller sees one o= session and address with versions v, v+1, ...; the re-INVITE
  that moves it onto the relay names the number it dialled in its Contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from ivr.runner import IvrApplication
from ivr.voicemail import VoicemailApplication
from media.g711 import ulaw_decode
from media.telephone_event import event_packets
from media.wav import write_wav
from pbx.server import PbxServer
from pbx.store import Cdr
from sip.headers import NameAddr
from sip.message import Request, Response, make_response, parse_message
from sip.uri import SipUri
from tests.interop.ear import Ear, rtp_socket, sine
from tests.interop.peers import PbxProcess, add_users, free_port, pbx_cli, running_pbx
from tests.interop.phones import PASSWORDS, closed_cdrs, dial, in_thread, phone, running_server
from tests.interop.sipclient import SipClient, media_address
from tests.tools import need

TONES = {"greeting": 500, "second": 1100, "timeout": 1300, "invalid": 900, "ivr-goodbye": 1700}
LONG_GREETING = 6.0  # seconds of the "long" prompt: far longer than any call here

MENUS = """
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
invalid_prompt = "invalid"
timeout_prompt = "timeout"
timeout = 1.0
retries = 9
fallback = "hangup"
[menu.options]
"1" = "menu:second"
"2" = "extension:1002"

[[menu]]
name = "second"
number = "801"
greeting = "second"
timeout = 10.0
fallback = "hangup"

[[menu]]
name = "long"
number = "802"
greeting = "long"
timeout = 10.0
fallback = "hangup"

[[menu]]
name = "quiet"
number = "803"
greeting = "greeting"
timeout_prompt = "timeout"
timeout = 4.0
retries = 1
fallback = "hangup"
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    for name, hz in {**TONES, "long": 2100}.items():
        seconds = LONG_GREETING if name == "long" else 0.4
        t = np.arange(int(8000 * seconds)) / 8000
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), 8000)
        prompts.add(name, wav)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None
        await pbx._store.ivr.put(MENUS)
        ivr = IvrApplication(tmp_path)
        await ivr.player.ensure_defaults()  # made once per data directory, before a call
        pbx.b2bua.applications.append(ivr)  # type: ignore[union-attr]
        yield pbx


class Tap(Ear):
    """An `Ear` that also keeps every datagram's arrival time and bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.packets: list[tuple[float, bytes]] = []
        super().__init__(sock, TONES)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 2048)
            self.packets.append((loop.time(), data))
            if len(data) > 12 and data[1] & 0x7F == 0:
                self.audio.append(ulaw_decode(data[12:]))


@pytest.fixture
async def tap() -> AsyncIterator[Tap]:
    ear = Tap(rtp_socket())
    try:
        yield ear
    finally:
        await ear.stop()
        ear.sock.close()


@pytest.fixture
async def attacker() -> AsyncIterator[socket.socket]:
    sock = rtp_socket()
    try:
        yield sock
    finally:
        sock.close()


def press_from(sock: socket.socket, target: tuple[str, int], key: str, seq: int) -> int:
    """A third party's RFC 4733 key (payload type 101) from `sock`; returns the next seq."""
    for packet in event_packets(key, 100):
        header = struct.pack("!BBHII", 0x80, (0x80 if packet.marker else 0) | 101, seq, 0, 0xBAD)
        sock.sendto(header + packet.payload, target)
        seq += 1
    return seq


def received(sock: socket.socket) -> int:
    """How many datagrams wait on `sock` (drained)."""
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


async def test_a_third_partys_digits_are_not_taken(
    server: PbxServer, tap: Tap, attacker: socket.socket
) -> None:
    async with SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "800", rtp_port=tap.port, events=True)
        assert ok.status == 200
        target = media_address(ok.body)
        tap.remote = target
        await tap.wait_for("greeting")
        seq = 0
        for _ in range(3):  # "1" would take the caller into menu "second"
            seq = press_from(attacker, target, "1", seq)
            await tap.wait_for("greeting", "timeout")
            tap.audio.clear()
        assert "second" not in tap.tones()
        tap.press("1")  # the caller's own key still works
        await tap.wait_for("second")
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    assert received(attacker) == 0


async def test_a_third_party_sending_first_gets_no_prompts(
    server: PbxServer, tap: Tap, attacker: socket.socket
) -> None:
    async with SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "800", rtp_port=tap.port, events=True)
        assert ok.status == 200
        target = media_address(ok.body)
        # The caller stays silent; the third party sends audio first, and keeps on.
        for seq in range(20):
            attacker.sendto(
                struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xBAD) + bytes(160), target
            )
        await tap.wait_for("greeting", "timeout")
        for seq in range(20, 40):
            attacker.sendto(
                struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xBAD) + bytes(160), target
            )
        tap.remote = target
        await tap.talk(np.zeros(800, np.int16))
        await tap.wait_for("greeting", "timeout", "greeting")
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    assert received(attacker) == 0


def _fields(packets: list[tuple[float, bytes]]) -> list[tuple[float, int, int, int, int]]:
    """(arrival, payload type, seq, timestamp, SSRC) of each RTP packet."""
    out = []
    for at, data in packets:
        _, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        out.append((at, second & 0x7F, seq, ts, ssrc))
    return out


async def test_a_quiet_menu_streams_without_a_gap(server: PbxServer, tap: Tap) -> None:
    async with SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "803", rtp_port=tap.port, events=True)
        assert ok.status == 200
        # greeting, 4 s of waiting for a key in silence, the timeout prompt, the greeting
        await tap.wait_for("greeting", "timeout", "greeting")
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    packets = _fields(tap.packets)
    assert len(packets) > 225  # > 4.5 s of 20 ms packets
    assert {p[1] for p in packets} == {0}  # PCMU, silence included
    assert len({p[4] for p in packets}) == 1  # one SSRC across prompt/silence/prompt
    for before, after in itertools.pairwise(packets):
        assert after[2] == (before[2] + 1) & 0xFFFF
        assert after[3] == (before[3] + 160) & 0xFFFFFFFF
    # The 4 s between the greeting and the timeout prompt: silence, sent all along
    # (the RTP timestamps above say no 20 ms slot was skipped; this counts arrivals).
    heard = [ulaw for _, ulaw in tap.packets]
    quiet = [i for i, data in enumerate(heard) if set(data[12:]) == {0xFF}]
    assert len(quiet) >= 150  # >= 3 s of silence packets
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(packets)]
    print(f"max arrival gap {max(gaps) * 1000:.1f} ms over {len(packets)} packets")


@pytest.mark.parametrize("during", ["greeting", "menu"])
async def test_hanging_up_ends_the_ivr_at_once(server: PbxServer, tap: Tap, during: str) -> None:
    """Hang up 1 s into the greeting (6 s long) or into the 10 s wait for a key (after
    a key took the caller there): the CDR closes at once, not after the prompt or
    the timeout."""
    async with SipClient(server.sip_port) as ua:
        number = "800" if during == "menu" else "802"
        invite, ok = await dial(ua, server, number, rtp_port=tap.port, events=True)
        assert ok.status == 200
        tap.remote = media_address(ok.body)
        if during == "menu":
            await tap.wait_for("greeting")
            tap.press("1")
            await tap.wait_for("second")
        await asyncio.sleep(1.0)  # the caller listens for a second, then hangs up
        hung_up = time.time()
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert cdr.disposition == "ANSWERED"
    assert cdr.hangup_cause == "caller hung up in the IVR"
    assert cdr.end is not None and cdr.duration is not None
    assert cdr.end - hung_up < 1.0  # not 5 s later (the prompt) or 10 s (the timeout)
    if during == "greeting":
        assert cdr.duration <= 2.0  # issue 9's acceptance


async def _serve_requests(ua: SipClient, until: str, rtp_port: int, seen: list[Request]) -> Request:
    """Answer the switch's requests (re-INVITE with our SDP, others 200) until `until`."""
    while True:
        raw = await ua.receive(timeout=15)
        assert raw is not None, f"no {until} from the switch"
        message = parse_message(raw)
        if not isinstance(message, Request) or message.method == "ACK":
            continue
        seen.append(message)
        body = b""
        headers: list[tuple[str, str]] = []
        if message.method == "INVITE":
            body = (
                "v=0\r\no=ua 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\n"
            ).encode()
            headers = [
                ("Contact", f"<sip:ua@127.0.0.1:{ua.port}>"),
                ("Content-Type", "application/sdp"),
            ]
        ua.send(bytes(make_response(message, 200, to_tag=None, headers=headers, body=body)))
        if message.method == until:
            return message


def _origin(sdp: bytes) -> tuple[str, int, str]:
    """(session id, version, address) of an SDP body's o= line."""
    line = next(x for x in sdp.decode().splitlines() if x.startswith("o="))
    _, session, version, *address = line[2:].split()
    return session, int(version), " ".join(address)


async def test_origin_and_contact_through_ivr_extension_hold_resume(
    server: PbxServer, tmp_path: Path, tap: Tap
) -> None:
    callee_rtp = rtp_socket()
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{callee_rtp.getsockname()[1]};0;PCMU\n")
    uas = await phone(server, "1002", "moh_held.xml", tmp_path / "1002", "-inf", str(inf))
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "800", rtp_port=tap.port, events=True)
            assert ok.status == 200
            tap.remote = media_address(ok.body)
            await tap.wait_for("greeting")
            tap.press("2")  # to extension 1002: our ports become a relay leg, no re-INVITE
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not (server.b2bua and server.b2bua.bridges):
                assert loop.time() < deadline, "1002 never bridged"
                await asyncio.sleep(0.02)
            bodies = [ok.body]
            for cseq, direction in ((3, "sendonly"), (4, "sendrecv")):
                offer = ua.reinvite_for(invite, ok, cseq, direction, tap.port)
                answer: Response = await ua.exchange(offer, timeout=10)
                assert answer.status == 200
                contact = NameAddr.parse(answer.headers.get("Contact") or "")
                assert isinstance(contact.uri, SipUri) and contact.uri.user == "800"
                ua.send(ua.ack_2xx(offer, answer))
                bodies.append(answer.body)
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
            assert bye.status == 200
        await in_thread(uas.finish)
    finally:
        uas.kill()
        callee_rtp.close()
    origins = [_origin(body) for body in bodies]
    assert len({(session, address) for session, _, address in origins}) == 1
    assert origins[0][2] == "IN IP4 127.0.0.1"
    first = origins[0][1]
    # IVR answer, then (bridged on the same ports) hold answer, resume answer.
    assert [version for _, version, _ in origins] == [first, first + 1, first + 2]
    # One media anchor: the relay answers at the address the IVR answered with.
    assert len({media_address(body) for body in bodies}) == 1


class _Switch:
    """What `dial` needs of a switch: its SIP port (here a `pbx serve` process's)."""

    def __init__(self, port: int) -> None:
        self.sip_port = port


def _cdr_rows(data_dir: Path) -> list[dict[str, object]]:
    out = pbx_cli(data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


async def _ivr_data_dir(tmp_path: Path, *, greeting_seconds: float, timeout: float) -> Path:
    """A data directory for `pbx serve`, made with the CLI: users 1001-1003, the default
    prompts, menu 800 whose greeting is a 500 Hz tone of `greeting_seconds`, waiting
    `timeout` for a key, then hanging up."""
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, add_users, data_dir, PASSWORDS)
    t = np.arange(int(8000 * greeting_seconds)) / 8000
    write_wav(tmp_path / "g.wav", (8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16), 8000)
    menu = tmp_path / "menu.toml"
    menu.write_text(
        '[[menu]]\nname = "main"\nnumber = "800"\ngreeting = "greeting"\n'
        f'timeout = {timeout}\nfallback = "hangup"\n'
    )
    for args in (
        ("prompt", "defaults"),
        ("prompt", "add", "greeting", str(tmp_path / "g.wav")),
        ("ivr", "import", str(menu)),
    ):
        done = await loop.run_in_executor(None, lambda a=args: pbx_cli(data_dir, *a, timeout=120))
        assert done.returncode == 0, done.stderr
    return data_dir


async def test_pbx_serve_cdr_of_a_caller_gone_1_s_into_the_greeting(
    tmp_path: Path, tap: Tap
) -> None:
    """Issue 9's acceptance on `pbx serve`: a caller who hangs up 1 s into a 6 s greeting
    leaves a CDR (`pbx cdr list --format json`) of at most 2 s."""
    loop = asyncio.get_running_loop()
    data_dir = await _ivr_data_dir(tmp_path, greeting_seconds=LONG_GREETING, timeout=10.0)
    with running_pbx(data_dir) as server:
        async with SipClient(server.port) as ua:
            invite, ok = await dial(ua, _Switch(server.port), "800", rtp_port=tap.port, events=True)  # type: ignore[arg-type]
            assert ok.status == 200
            await tap.wait_for("greeting")
            await asyncio.sleep(1.0)  # the caller listens for a second, then hangs up
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        for _ in range(100):  # bounded: until the row is closed
            [row] = await loop.run_in_executor(None, _cdr_rows, data_dir)
            if row["end"]:
                break
            await asyncio.sleep(0.1)
    assert (row["disposition"], row["hangup_cause"]) == ("ANSWERED", "caller hung up in the IVR")
    assert float(row["duration"]) <= 2.0  # type: ignore[arg-type]


async def test_an_ivr_call_cut_by_kill_9_stays_answered(tmp_path: Path, tap: Tap) -> None:
    """`pbx serve` killed -9 while a caller sits in a menu: after the restart the call's
    CDR is ANSWERED and interrupted, closed at the last heartbeat (not FAILED 0)."""
    loop = asyncio.get_running_loop()
    data_dir = await _ivr_data_dir(tmp_path, greeting_seconds=0.4, timeout=30.0)
    server = PbxProcess(data_dir, free_port())
    await loop.run_in_executor(None, server.start)
    try:
        async with SipClient(server.port) as ua:
            _, ok = await dial(ua, _Switch(server.port), "800", rtp_port=tap.port, events=True)  # type: ignore[arg-type]
            assert ok.status == 200
            await tap.wait_for("greeting")
            for _ in range(100):  # bounded: until the answer time is stored
                rows = await loop.run_in_executor(None, _cdr_rows, data_dir)
                if rows and rows[0]["answer"]:
                    break
                await asyncio.sleep(0.1)
            await loop.run_in_executor(None, server.stop, signal.SIGKILL)
        await loop.run_in_executor(None, server.start)
        [row] = await loop.run_in_executor(None, _cdr_rows, data_dir)
    finally:
        await loop.run_in_executor(None, server.stop)
    assert row["disposition"] == "ANSWERED"
    assert "interrupted" in str(row["hangup_cause"])
    assert row["answer"] is not None and row["end"] is not None
    assert float(row["end"]) >= float(row["answer"])  # type: ignore[arg-type]


VM_TONES = {"vm-box": 1100, "vm-pin": 1300, "vm-main-menu": 1700, "ivr-goodbye": 3200}


@pytest.fixture
async def mailboxes(tmp_path: Path) -> AsyncIterator[PbxServer]:
    """A switch with voicemail (*97, *98): 1002's box has PIN 4711; the prompts that
    matter are tones, the rest short silence; a key is waited for 10 s."""
    prompts = PromptStore(tmp_path / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        if name in VM_TONES:
            wav = tmp_path / f"{name}.wav"
            write_wav(wav, sine(VM_TONES[name], 0.4), 8000)
            prompts.add(name, wav)
        else:
            prompts.add(name, quiet)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None and pbx.b2bua is not None
        boxes = VoicemailApplication(tmp_path, key_timeout=10.0)
        pbx.b2bua.applications.append(boxes)
        pbx.b2bua.voicemail = boxes
        await pbx._store.voicemail.set_pin("1002", "4711")
        yield pbx


async def test_a_third_partys_digits_do_not_open_a_box(
    mailboxes: PbxServer, attacker: socket.socket
) -> None:
    """1001's `*98` session: a third party keys 1002's box number and PIN at the
    session's RTP port; none of it is taken (1001's own "#" then ends the box number
    empty and the switch says goodbye), and none of the session's audio reaches it."""
    async with SipClient(mailboxes.sip_port) as ua:
        ear = Tap(rtp_socket())
        ear.tone_map = VM_TONES
        try:
            _, ok = await dial(ua, mailboxes, "*98", rtp_port=ear.port, events=True)
            assert ok.status == 200
            target = media_address(ok.body)
            await ear.wait_for("vm-box")
            seq = 0
            for key in "1002#4711#":
                seq = press_from(attacker, target, key, seq)
            ear.remote = target
            ear.press("#")  # 1001's own key is taken: no box number, goodbye (not in 10 s)
            await asyncio.wait_for(_serve_requests(ua, "BYE", ear.port, []), 8)
        finally:
            await ear.stop()
            ear.sock.close()
    assert "vm-pin" not in ear.tones()
    assert received(attacker) == 0
    [cdr] = await closed_cdrs(mailboxes)
    assert cdr.hangup_cause == "voicemail: no mailbox number entered"


async def test_hanging_up_in_the_star97_menu_ends_at_once(mailboxes: PbxServer, tap: Tap) -> None:
    tap.tone_map = VM_TONES
    async with SipClient(mailboxes.sip_port) as ua:
        invite, ok = await dial(ua, mailboxes, "*97", caller="1002", rtp_port=tap.port, events=True)
        assert ok.status == 200
        tap.remote = media_address(ok.body)
        await tap.wait_for("vm-pin")
        tap.press("4711#")
        await tap.wait_for("vm-main-menu")
        await asyncio.sleep(1.0)  # 1 s into the 10 s wait for a key
        hung_up = time.time()
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(mailboxes)
    assert cdr.hangup_cause == "voicemail 1002: menu"
    assert cdr.end is not None and cdr.end - hung_up < 1.0


class NattedClient(SipClient):
    """A phone behind NAT: its SDP names a private address (127.0.0.2 here) that its
    packets do not come from."""

    def invite(self, *args: Any, **kwargs: Any) -> bytes:
        return super().invite(*args, **kwargs).replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.2")


async def test_a_phone_behind_nat_is_latched_and_nothing_goes_to_its_sdp_address(
    server: PbxServer, tap: Tap, attacker: socket.socket
) -> None:
    private = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    private.bind(("127.0.0.2", 0))
    private.setblocking(False)
    try:
        async with NattedClient(server.sip_port) as ua:
            port = private.getsockname()[1]
            invite, ok = await dial(ua, server, "800", rtp_port=port, events=True)
            assert ok.status == 200
            tap.remote = media_address(ok.body)
            await tap.talk(np.zeros(800, np.int16))  # 5 packets, one SSRC: latched
            await tap.wait_for("timeout", "greeting")
            for seq in range(10):  # too late: the phone holds the latch
                rtp = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xBAD) + bytes(160)
                attacker.sendto(rtp, tap.remote)
            tap.press("1")
            await tap.wait_for("second")
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        assert received(private) == 0  # the SDP address never sent us anything
        assert received(attacker) == 0
    finally:
        private.close()


async def test_a_reinvite_in_the_ivr_moves_the_prompts(
    server: PbxServer, tap: Tap, attacker: socket.socket
) -> None:
    """A phone in a menu re-INVITEs to a new RTP port (PCMU only, no telephone-event):
    the switch answers from the same endpoint and the prompts follow the offer; the
    answer changed (no telephone-event), so its o= version is one up; the same offer
    again gets the same answer and version; a hold offer gets recvonly and one more,
    and the stream stops (RFC 3264: a recvonly side sends nothing) until the resume."""
    async with SipClient(server.sip_port) as ua:
        invite, ok = await dial(ua, server, "800", rtp_port=tap.port, events=True)
        assert ok.status == 200
        await tap.wait_for("greeting")
        session, version, address = _origin(ok.body)
        moved = Tap(attacker)  # the phone's new port (the fixture closes the socket)
        try:
            versions = []
            offers = ((3, "sendrecv"), (4, "sendrecv"), (5, "sendonly"), (6, "sendrecv"))
            for cseq, direction in offers:
                offer = ua.reinvite_for(invite, ok, cseq, direction, moved.port)
                answer = await ua.exchange(offer, timeout=10)
                assert answer.status == 200
                ua.send(ua.ack_2xx(offer, answer))
                assert media_address(answer.body) == media_address(ok.body)
                assert _origin(answer.body)[::2] == (session, address)
                versions.append(_origin(answer.body)[1])
                if cseq == 3:
                    await moved.wait_for("timeout", "greeting")
                if direction == "sendonly":
                    assert b"a=recvonly" in answer.body
                    await asyncio.sleep(0.2)  # what was on the way before the 200 lands
                    held = len(moved.packets)
                    await asyncio.sleep(0.5)
                    assert len(moved.packets) == held  # nothing while held
            moved.audio.clear()
            await moved.wait_for("greeting")  # resumed: the menu goes on
            assert versions == [version + 1, version + 1, version + 2, version + 3]
        finally:
            await moved.stop()
        bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 7), timeout=10)
        assert bye.status == 200


LINPHONE_CONFIG = """[sip]
sip_port={sip_port}
sip_tcp_port=0
sip_tls_port=0
default_proxy=0
register_only_when_network_is_up=0
guess_hostname=0
use_rfc2833=1
use_info=0
[rtp]
bind_address=127.0.0.1
audio_rtp_port={rtp_port}
nortp_timeout={nortp}
[video]
enabled=0
[proxy_0]
reg_proxy=<sip:127.0.0.1:{server};transport=udp>
reg_identity=sip:1001@127.0.0.1:{server}
reg_expires=600
reg_sendregister=1
[auth_info_0]
username=1001
passwd={password}
realm=aiopbx
"""
NORTP = 4  # Linphone's no-RTP timeout in this test (its default is 30 s)


async def test_linphone_stays_in_a_quiet_menu_past_its_no_rtp_timeout(
    server: PbxServer, tmp_path: Path
) -> None:
    """Linphone (with a 4 s no-RTP timeout) calls a menu that says its 0.4 s greeting
    and then waits 10 s for a key: it stays until the switch hangs up (the menu's
    fallback), instead of dropping the quiet call after 4 s."""
    linphonec = need("linphonec")
    home = tmp_path / "linphone-home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True)
    config = tmp_path / "linphonerc"
    config.write_text(
        LINPHONE_CONFIG.format(
            sip_port=free_port(),
            rtp_port=free_port(2),
            nortp=NORTP,
            server=server.sip_port,
            password=PASSWORDS["1001"],
        )
    )
    assert server._store is not None
    await server._store.ivr.put(
        MENUS.replace("timeout = 4.0\nretries = 1", "timeout = 10.0\nretries = 0")
    )
    output = (tmp_path / "linphone.log").open("wb")
    proc = subprocess.Popen(
        [linphonec, "-c", str(config)],
        stdin=subprocess.PIPE,
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(home)},
    )
    assert proc.stdin is not None

    def command(line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    try:
        assert server.registrar is not None
        location = server.registrar.location
        for _ in range(300):  # bounded: its account is set up once it has registered
            if location.get("1001"):
                break
            await asyncio.sleep(0.1)
        assert location.get("1001"), "Linphone did not register"
        command("soundcard use files")
        command(f"call sip:803@127.0.0.1:{server.sip_port}")
        [cdr] = await _closed_within(server, 40.0)
    finally:
        with contextlib.suppress(BrokenPipeError):
            command("quit")
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        output.close()
    log = (tmp_path / "linphone.log").read_text(errors="replace")
    assert cdr.disposition == "ANSWERED", log[-2000:]
    assert cdr.hangup_cause == "IVR hangup", log[-2000:]  # not Linphone giving up
    assert "ended (IO error)" not in log  # what Linphone says when it times out
    assert cdr.duration is not None and cdr.duration > NORTP + 2


async def _closed_within(server: PbxServer, seconds: float) -> list[Cdr]:
    """The CDRs once one exists and all are closed, waiting up to `seconds`."""
    assert server._store is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        rows = await server._store.cdrs.list()
        if rows and all(r.end is not None for r in rows):
            return rows
        await asyncio.sleep(0.1)
    return await server._store.cdrs.list()
