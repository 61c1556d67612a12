"""Issue 12, acceptance 3: calls from a provider. The trunk "prov" vouches for INVITEs
from 127.0.0.2 (its inbound network 127.0.0.2/32); the provider is sipp (or the test's
own UAC) bound to that address. An INVITE from it to a DID reaches the DID's extension
(a registered sipp phone answers; audio both ways) or IVR menu (the caller hears the
greeting); the same INVITE from 127.0.0.3 is challenged; an unknown DID, a feature code,
an extension number and an external number that an outbound route would send to the
trunk are all refused 404 — and the trunk's far side (a sipp UAS at the trunk's address)
receives nothing. Trunk calls never count as failed logins."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from ivr.conference import ConferenceApplication
from ivr.player import PromptPlayer
from ivr.prompts import BEEP, DEFAULT_PROMPTS, PromptStore
from ivr.runner import IvrApplication
from ivr.voicemail import VoicemailApplication
from media.wav import write_wav
from pbx.b2bua import Reached
from pbx.calls import Call
from pbx.server import PbxServer
from pbx.store import Forwarding, RingGroup, Route, Trunk
from sip.message import Request, Response, make_response, parse_message
from tests.interop.ear import Ear, sine
from tests.interop.peers import (
    PbxProcess,
    SippUas,
    free_port,
    pbx_cli,
    run_sipp,
    running_pbx,
    wait_for,
)
from tests.interop.phones import SCENARIOS, closed_cdrs, in_thread, phone, running_server
from tests.interop.sipclient import SipClient, media_address

PROVIDER = "127.0.0.2"  # the trunk's inbound network: 127.0.0.2/32
STRANGER = "127.0.0.3"
CALLER = "+33612345678"
DID_EXT = "+33100000001"  # -> ext:1002
DID_IVR = "+33100000002"  # -> ivr:main (number 800)
DID_GROUP = "+33100000003"  # -> group:600 (member 1002)
DID_VM = "+33100000004"  # -> vm:1002
DID_FWD = "+33100000005"  # -> ext:1003, which forwards (always) to EXTERNAL
DID_CONF = "+33100000006"  # -> conf:8000
DID_ONWARD = "+33100000007"  # -> trunk:prov/+4930123456 (passed on to another site)
EXTERNAL = "0123456789"  # what the outbound route "out" would send to prov

MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "greeting"
timeout = 5.0
retries = 0
fallback = "hangup"
[menu.options]
"1" = "extension:0123456789"    # EXTERNAL: an outbound route's number
"""
GREETING_HZ = 700
BEEP_HZ = 1000
MESSAGE_HZ = 2300


def _bindable(host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


pytestmark = pytest.mark.skipif(
    not all(map(_bindable, (PROVIDER, STRANGER, "127.0.0.4"))),
    reason="needs 127.0.0.2, 127.0.0.3 and 127.0.0.4",
)


@pytest.fixture
async def far_side(tmp_path: Path) -> AsyncIterator[SippUas]:
    """What the trunk points at (the provider's side of outbound calls): a sipp UAS that
    logs every message it gets."""
    uas = SippUas(SCENARIOS / "uas_answer.xml", tmp_path / "far")
    try:
        yield uas
    finally:
        uas.kill()


@pytest.fixture
async def server(tmp_path: Path, far_side: SippUas) -> AsyncIterator[PbxServer]:
    prompts = PromptStore(tmp_path / "prompts")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(400, np.int16), 8000)
    for name in DEFAULT_PROMPTS:
        prompts.add(name, quiet)
    for name, hz in (("greeting", GREETING_HZ), (BEEP, BEEP_HZ)):
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, sine(hz, 0.6), 8000)
        prompts.add(name, wav)
    async with running_server(tmp_path) as pbx:
        store = pbx._store
        assert store is not None and pbx.b2bua is not None
        await store.trunks.add(
            Trunk("prov", "127.0.0.1", port=far_side.port, inbound_networks=(f"{PROVIDER}/32",))
        )
        await store.routes.add(Route("out", ("_0X.",), ("prov",)))
        await store.ivr.put(MENU, ["800"])
        await store.dids.add(DID_EXT, "ext:1002")
        await store.dids.add(DID_IVR, "ivr:main")
        await store.dialplan.add_ring_group(RingGroup("600", ("1002",)))
        await store.dids.add(DID_GROUP, "group:600")
        await store.dids.add(DID_VM, "vm:1002")
        await store.voicemail.set_pin("1002", "4711")
        await store.dids.add(DID_FWD, "ext:1003")
        await store.dialplan.set_forwarding(Forwarding("1003", always=EXTERNAL))
        await store.conferences.add("8000")
        await store.dids.add(DID_CONF, "conf:8000")
        await store.dids.add(DID_ONWARD, "trunk:prov/+4930123456")
        await pbx._reload_trunks()  # as the server does when `pbx trunk add` changes them
        # Voicemail is installed as for `pbx serve`: it owns *97/*98 for local phones.
        mailboxes = VoicemailApplication(tmp_path, silence_seconds=3.0, key_timeout=5.0)
        rooms = ConferenceApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
        pbx.b2bua.applications[:] = [IvrApplication(tmp_path), mailboxes, rooms]
        pbx.b2bua.voicemail = mailboxes
        yield pbx


def far_side_messages(uas: SippUas) -> list[str]:
    """The first lines of the messages the far side received (its -trace_msg log)."""
    texts = []
    for log in uas.workdir.glob("*_messages.log"):
        for block in log.read_text(errors="replace").split("message received")[1:]:
            lines = [line for line in block.splitlines()[1:] if line.strip()]
            if lines:
                texts.append(lines[0])
    return texts


def statuses(workdir: Path) -> list[int]:
    """The final statuses sipp received (its -trace_msg log)."""
    found = []
    for log in workdir.glob("*_messages.log"):
        for block in log.read_text(errors="replace").split("message received")[1:]:
            m = re.search(r"^SIP/2\.0 (\d{3}) ", block, re.MULTILINE)
            if m is not None and int(m.group(1)) >= 200:
                found.append(int(m.group(1)))
    return found


async def trunk_sipp(
    server: PbxServer, scenario: str, source: str, did: str, workdir: Path, **kwargs: object
) -> tuple[int, int, str]:
    """Run a trunk scenario from `source` (-i) to `did`; (return code, successful calls,
    output)."""
    result = await in_thread(
        run_sipp,
        SCENARIOS / scenario,
        server.sip_port,
        workdir=workdir,
        inf=[(CALLER, did)],
        extra=("-i", source),
        timeout=30,
        **kwargs,
    )
    return result.returncode, result.successful, result.output


@pytest.mark.parametrize(("did", "target"), [(DID_EXT, "ext:1002"), (DID_GROUP, "group:600")])
async def test_did_reaches_the_extension(
    server: PbxServer, tmp_path: Path, far_side: SippUas, did: str, target: str
) -> None:
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "1002") as callee:
        rc, ok, output = await trunk_sipp(
            server, "trunk_call.xml", PROVIDER, did, tmp_path / "prov"
        )
        assert (rc, ok) == (0, 1), output
        assert await in_thread(callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == (CALLER, did, "ANSWERED")
    assert cdr.hangup_cause is not None and cdr.hangup_cause.endswith(f"(DID {did} -> {target})"), (
        cdr.hangup_cause
    )
    assert far_side_messages(far_side) == []


async def test_did_audio_both_ways(server: PbxServer, tmp_path: Path) -> None:
    """A provider's caller (the test's UAC bound to 127.0.0.2) and extension 1002 (sipp
    naming our RTP socket) hear each other through the relay."""
    caller_rtp, callee_rtp = _udp(), _udp()
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{callee_rtp.getsockname()[1]};0;PCMU\n")
    uas = await phone(server, "1002", "uas_answer_media.xml", tmp_path / "1002", "-inf", str(inf))
    try:
        async with SipClient(server.sip_port, host=PROVIDER) as provider:
            invite = provider.invite(CALLER, DID_EXT, rtp_port=caller_rtp.getsockname()[1])
            ok = await provider.exchange(invite, timeout=20)
            assert ok.status == 200, ok
            provider.send(provider.ack_2xx(invite, ok))
            assert server.calls is not None
            [leg] = [c for c in server.calls.calls.values() if not c.outbound]
            assert (leg.trunk, leg.caller, type(leg.caller)) == ("prov", CALLER, str)
            relay_a = media_address(ok.body)
            [log] = (tmp_path / "1002").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            there, back = bytes(range(160)), bytes(range(255, 95, -1))
            for seq in range(5):
                caller_rtp.sendto(_rtp(seq, there, 0x1111), relay_a)
            assert {p[12:] for p in await _receive(callee_rtp, 5)} == {there}
            for seq in range(5):
                callee_rtp.sendto(_rtp(seq, back, 0x2222), relay_b)
            assert {p[12:] for p in await _receive(caller_rtp, 5)} == {back}
            bye = await provider.exchange(provider.bye_for(invite, ok), timeout=10)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()


@contextlib.asynccontextmanager
async def provider_ear(tones: dict[str, int]) -> AsyncIterator[Ear]:
    """An `Ear` whose RTP socket is on the provider's address: the SDP address and the
    signalling address agree, so the switch sends to it at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((PROVIDER, 0))
    sock.setblocking(False)
    ear = Ear(sock, tones)
    try:
        yield ear
    finally:
        await ear.stop()
        sock.close()


async def provider_call(provider: SipClient, ear: Ear, did: str) -> tuple[bytes, Response]:
    """INVITE `did` from the provider (no credentials, media at `ear`), ACK the 200."""
    invite = provider.invite(CALLER, did, rtp_port=ear.port, events=True)
    for ours in (b"IN IP4 127.0.0.1", f"@127.0.0.1:{provider.port}>".encode()):
        invite = invite.replace(ours, ours.replace(b"127.0.0.1", PROVIDER.encode()))
    ok = await provider.exchange(invite, timeout=20)
    assert ok.status == 200, ok
    provider.send(provider.ack_2xx(invite, ok))
    ear.remote = media_address(ok.body)
    return invite, ok


async def test_did_reaches_the_ivr_menu(server: PbxServer) -> None:
    async with (
        provider_ear({"greeting": GREETING_HZ}) as ear,
        SipClient(server.sip_port, host=PROVIDER) as provider,
    ):
        invite, ok = await provider_call(provider, ear, DID_IVR)
        await ear.wait_for("greeting", timeout=20)
        bye = await provider.exchange(provider.bye_for(invite, ok), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == (CALLER, DID_IVR, "ANSWERED")
    assert cdr.hangup_cause is not None and cdr.hangup_cause.endswith(
        f"(DID {DID_IVR} -> ivr:main)"
    ), cdr.hangup_cause


async def test_did_goes_straight_into_the_mailbox(server: PbxServer) -> None:
    assert server._store is not None
    async with (
        provider_ear({"vm-beep": BEEP_HZ}) as ear,
        SipClient(server.sip_port, host=PROVIDER) as provider,
    ):
        invite, ok = await provider_call(provider, ear, DID_VM)
        await ear.wait_for("vm-beep", timeout=20)
        await ear.talk(sine(MESSAGE_HZ, 1.5))
        bye = await provider.exchange(provider.bye_for(invite, ok), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == (CALLER, DID_VM, "ANSWERED")
    assert cdr.hangup_cause == f"voicemail left for 1002 (DID {DID_VM} -> vm:1002)"
    [message] = await server._store.voicemail.messages("1002")
    assert (message.caller, message.folder) == (CALLER, "new")


async def test_did_ivr_by_sipp_answers(server: PbxServer, tmp_path: Path) -> None:
    rc, ok, output = await trunk_sipp(server, "trunk_call.xml", PROVIDER, DID_IVR, tmp_path)
    assert (rc, ok) == (0, 1), output


REFUSED = [
    (STRANGER, DID_EXT, 401),  # not the trunk's address: digest as for anyone
    (PROVIDER, "+33199999999", 404),  # no such DID
    (PROVIDER, EXTERNAL, 404),  # an outbound route's number: never planned for a trunk
    (PROVIDER, "*97", 404),  # feature codes are not DIDs
    (PROVIDER, "1002", 404),  # nor are extension numbers
    (PROVIDER, "800", 404),  # nor IVR numbers
]


@pytest.mark.parametrize(("source", "number", "status"), REFUSED)
async def test_refused(
    server: PbxServer,
    tmp_path: Path,
    far_side: SippUas,
    source: str,
    number: str,
    status: int,
) -> None:
    workdir = tmp_path / "prov"
    rc, ok, output = await trunk_sipp(server, "trunk_refused.xml", source, number, workdir)
    assert (rc, ok) == (0, 1), output
    assert statuses(workdir) == [status]
    if status == 404:
        [cdr] = await closed_cdrs(server)
        assert (cdr.caller, cdr.callee, cdr.disposition) == (CALLER, number, "FAILED")
        assert cdr.hangup_cause == f"404 unknown DID {number}"
    # The trunk's far side received nothing at all: no INVITE left for it.
    await asyncio.sleep(0)
    assert far_side_messages(far_side) == []
    assert not server.bans.entries(server._clock())


async def test_unknown_dids_never_ban_the_trunk(server: PbxServer, tmp_path: Path) -> None:
    """Many refused trunk calls in a row: no failed login is counted for the trunk's
    address (a scanner's INVITEs from elsewhere still are: see test_bans)."""
    rc, ok, output = await trunk_sipp(
        server, "trunk_refused.xml", PROVIDER, "+33199999999", tmp_path, calls=30, rate=30
    )
    assert (rc, ok) == (0, 30), output
    assert statuses(tmp_path) == [404] * 30
    assert not server.bans.entries(server._clock())
    assert server.bans.is_banned(PROVIDER, server._clock()) is False


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _rtp(seq: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


async def _receive(sock: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), deadline - loop.time()))
        except TimeoutError:
            break
    return got


async def test_the_far_side_count_sees_what_reaches_it(far_side: SippUas) -> None:
    """The control for "the far side received nothing": an INVITE that does reach it is
    in its count."""
    async with SipClient(far_side.port) as ua:
        response = await ua.exchange(ua.invite(CALLER, EXTERNAL), timeout=10)
        assert response.status in (180, 200)
    assert any(line.startswith(f"INVITE sip:{EXTERNAL}@") for line in far_side_messages(far_side))


async def test_only_invites_are_trusted_by_address(server: PbxServer) -> None:
    """A SUBSCRIBE for a mailbox (MWI) from the trunk's address still needs digest: the
    address vouches for a provider's calls, nothing else."""
    async with SipClient(server.sip_port, host=PROVIDER) as provider:
        host = f"127.0.0.1:{server.sip_port}"
        subscribe = (
            f"SUBSCRIBE sip:1002@{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {PROVIDER}:{provider.port};rport;branch=z9hG4bKsub1\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:1002@{host}>;tag=s1\r\n"
            f"To: <sip:1002@{host}>\r\n"
            "Call-ID: mwi-from-trunk\r\n"
            "CSeq: 1 SUBSCRIBE\r\n"
            f"Contact: <sip:1002@{PROVIDER}:{provider.port}>\r\n"
            "Event: message-summary\r\n"
            "Expires: 60\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        response = await provider.exchange(subscribe, timeout=10)
        assert response.status == 401


def test_trunk_added_with_the_cli_takes_effect_without_a_restart(tmp_path: Path) -> None:
    """`pbx trunk add --inbound` in another process: the running server trusts the
    address within a second or so (the INVITE from it is no longer challenged but
    routed: 404, an unknown DID); `pbx trunk del` takes the trust away again."""
    data_dir = tmp_path / "data"
    assert pbx_cli(data_dir, "init").returncode == 0

    def refused_with(server: PbxProcess, n: int) -> int:
        workdir = tmp_path / f"sipp{n}"
        result = run_sipp(
            SCENARIOS / "trunk_refused.xml",
            server.port,
            workdir=workdir,
            inf=[(CALLER, DID_EXT)],
            extra=("-i", PROVIDER),
            timeout=10,
        )
        assert result.successful == 1, result.output
        [status] = statuses(workdir)
        return status

    attempts = itertools.count()
    with running_pbx(data_dir) as server:
        assert refused_with(server, next(attempts)) == 401
        added = pbx_cli(
            data_dir, "trunk", "add", "prov", "--host", "127.0.0.1", "--inbound", f"{PROVIDER}/32"
        )
        assert added.returncode == 0, added.stderr
        wait_for(lambda: refused_with(server, next(attempts)) == 404, 20, "the trunk's trust")
        assert "unknown DID" in server.log()
        assert pbx_cli(data_dir, "trunk", "del", "prov").returncode == 0
        wait_for(lambda: refused_with(server, next(attempts)) == 401, 20, "the trust to go")


async def test_forwarding_to_an_external_number_is_not_followed_for_a_trunk_call(
    server: PbxServer, tmp_path: Path, far_side: SippUas
) -> None:
    """The DID's extension forwards to a number an outbound route sends to the trunk: a
    provider's call must not be sent back out (toll fraud); nothing reaches the far side."""
    workdir = tmp_path / "prov"
    rc, ok, output = await trunk_sipp(server, "trunk_refused.xml", PROVIDER, DID_FWD, workdir)
    assert (rc, ok) == (0, 1), output
    [status] = statuses(workdir)
    assert status in (403, 404, 480), status
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == (DID_FWD, "FAILED")
    assert far_side_messages(far_side) == []


async def test_ivr_transfer_to_an_external_number_is_refused_for_a_trunk_call(
    server: PbxServer, far_side: SippUas
) -> None:
    """The menu's key 1 dials a number an outbound route sends to the trunk: pressed by a
    provider's caller it reaches nothing (the IVR says goodbye); the far side gets
    nothing."""
    async with (
        provider_ear({"greeting": GREETING_HZ}) as ear,
        SipClient(server.sip_port, host=PROVIDER) as provider,
    ):
        await provider_call(provider, ear, DID_IVR)
        await ear.wait_for("greeting", timeout=20)
        ear.press("1")
        await _until_bye(provider)  # the menu's fallback hangs up
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition) == (DID_IVR, "ANSWERED")
    assert cdr.hangup_cause is not None and cdr.hangup_cause.startswith("IVR hangup")
    assert far_side_messages(far_side) == []


async def test_refer_from_the_provider_is_refused(server: PbxServer, tmp_path: Path) -> None:
    """A provider may not send its caller on (blind transfer to an external number):
    REFER from the trunk's leg gets 403; the call stays up."""
    with await phone(server, "1002", "uas_answer.xml", tmp_path / "1002") as callee:
        async with (
            provider_ear({}) as ear,
            SipClient(server.sip_port, host=PROVIDER) as provider,
        ):
            invite, ok = await provider_call(provider, ear, DID_EXT)
            assert server.b2bua is not None
            await _until(lambda: bool(server.b2bua and server.b2bua.bridges))
            refer = provider.in_dialog(
                invite, ok, "REFER", 2, (f"Refer-To: <sip:{EXTERNAL}@127.0.0.1>",)
            )
            response = await provider.exchange(refer, timeout=10)
            assert response.status == 403
            bye = await provider.exchange(provider.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        assert await in_thread(callee.finish) == 0
    [cdr] = await closed_cdrs(server)
    assert cdr.hangup_cause is not None and "transfer" not in cdr.hangup_cause


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _until_bye(ua: SipClient) -> None:
    """Answer what the switch sends in the dialog (200) until its BYE."""
    while True:
        raw = await ua.receive(timeout=20)
        assert raw is not None, "no BYE from the switch"
        message = parse_message(raw)
        if isinstance(message, Request) and message.method != "ACK":
            ua.send(bytes(make_response(message, 200, to_tag=None)))
            if message.method == "BYE":
                return


async def test_did_joins_the_conference_room(server: PbxServer) -> None:
    async with (
        provider_ear({}) as ear,
        SipClient(server.sip_port, host=PROVIDER) as provider,
    ):
        invite, ok = await provider_call(provider, ear, DID_CONF)
        switch = server.switch
        assert switch is not None
        await _until(lambda: bool(switch.conferences()))
        [room] = switch.live_conferences()["conferences"]
        assert room["room"] == "8000" and [m["caller"] for m in room["members"]] == [CALLER]
        bye = await provider.exchange(provider.bye_for(invite, ok), timeout=10)
        assert bye.status == 200
    [cdr] = await closed_cdrs(server)
    assert (cdr.caller, cdr.callee, cdr.disposition) == (CALLER, DID_CONF, "ANSWERED")
    assert cdr.hangup_cause is not None and cdr.hangup_cause.endswith(
        f"(DID {DID_CONF} -> conf:8000)"
    ), cdr.hangup_cause


@pytest.mark.parametrize(("did", "target"), [(DID_EXT, "ext:1002"), (DID_IVR, "ivr:main")])
async def test_a_did_whose_target_went_away_is_refused(
    server: PbxServer, tmp_path: Path, did: str, target: str
) -> None:
    """The extension is deleted (or the menu's document cleared) after the DID was added:
    the call is refused 404 with a log line and a CDR that say so, nothing crashes."""
    assert server._store is not None
    if target.startswith("ext:"):
        await server._store.users.delete("1002")
        await server._reload_users()  # as the server does when `pbx user del` runs
        expected = f"404 {target} is gone (DID {did} -> {target})"
    else:
        await server._store.ivr.clear()
        expected = f"404 DID {did}: {target} has no number"
    workdir = tmp_path / "prov"
    rc, ok, output = await trunk_sipp(server, "trunk_refused.xml", PROVIDER, did, workdir)
    assert (rc, ok) == (0, 1), output
    assert statuses(workdir) == [404]
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.disposition, cdr.hangup_cause) == (did, "FAILED", expected)


async def test_a_trunk_target_is_handed_to_reach(
    server: PbxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trunk:NAME/NUMBER` is dialled by the switch's one ringing routine (`B2bua.reach`,
    helper "outbound"): the DID's call hands it that target, on behalf of the trunk call.
    (reach is stubbed here to answer 503, so the test holds with or without trunk dialling.)"""
    assert server.b2bua is not None
    seen: list[tuple[str | None, str]] = []

    async def reach(caller: Call | None, number: str, offer: bytes, **kwargs: object) -> Reached:
        seen.append((caller.trunk if caller is not None else None, number))
        return Reached(status=503, reason="Service Unavailable", cause="503 stubbed")

    monkeypatch.setattr(server.b2bua, "reach", reach)
    workdir = tmp_path / "prov"
    rc, ok, output = await trunk_sipp(server, "trunk_refused.xml", PROVIDER, DID_ONWARD, workdir)
    assert (rc, ok) == (0, 1), output
    assert statuses(workdir) == [503]
    assert seen == [("prov", "trunk:prov/+4930123456")]
    [cdr] = await closed_cdrs(server)
    assert (cdr.callee, cdr.hangup_cause) == (
        DID_ONWARD,
        f"503 stubbed (DID {DID_ONWARD} -> trunk:prov/+4930123456)",
    )


async def test_inbound_contact_trusts_the_registrar_address_only(
    server: PbxServer, tmp_path: Path
) -> None:
    """A trunk recognised by its registered contact (`--inbound-contact`): INVITEs from the
    address and port its registrations go to are the provider's; from the same host's
    other ports they are challenged like anyone's."""
    assert server._store is not None
    registrar_port = free_port()
    await server._store.trunks.add(
        Trunk("site-b", "127.0.0.4", port=registrar_port, inbound_contact=True)
    )
    await server._reload_trunks()
    for n, (port, status) in enumerate([(registrar_port, 404), (free_port(), 401)]):
        workdir = tmp_path / f"sipp{n}"
        rc, ok, output = await trunk_sipp(
            server, "trunk_refused.xml", "127.0.0.4", "+339", workdir, local_port=port
        )
        assert (rc, ok) == (0, 1), output
        assert statuses(workdir) == [status], port
