"""Music on hold through the switch: the caller (the test's SIP client) holds, the
callee (sipp signalling, the test's own UDP socket for media) hears the music from
the relay in its own codec, and nothing of it after the resume. Plus `pbx moh`."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.wav import write_wav
from pbx.server import PbxServer
from tests.interop.peers import SippUas, free_port, pbx_cli
from tests.interop.phones import closed_cdrs, dial, in_thread, phone, running_server
from tests.interop.sipclient import SipClient, media_address

MOH_HZ = 700.0
WAIT = 5.0  # bound on every wait for a packet; never reached when things work


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    base = free_port(40)
    # The music the switch must play: a known tone, as `pbx moh add` would store it.
    (tmp_path / "moh").mkdir()
    write_wav(tmp_path / "moh" / "test-tone.wav", tone(MOH_HZ, 2.0), 8000)
    async with running_server(tmp_path, rtp_port_min=base, rtp_port_max=base + 39) as pbx:
        yield pbx


def tone(hz: float, seconds: float) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * 8000)) / 8000
    return np.round(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(x: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / 8000)[int(np.argmax(spectrum))])


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    data, address = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), timeout)
    return data, address


def drain(sock: socket.socket) -> int:
    """Discard what is queued now; how many datagrams."""
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


def rtp(seq: int, pt: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


async def held_phone(
    server: PbxServer, tmp_path: Path, rtp_port: int, pt: int, codec: str
) -> SippUas:
    """1002: answers with `codec` at `rtp_port`, then takes hold and resume re-INVITEs."""
    inf = tmp_path / "media.csv"
    inf.write_text(f"SEQUENTIAL\n{rtp_port};{pt};{codec}\n")
    return await phone(server, "1002", "moh_held.xml", tmp_path / "callee", "-inf", str(inf))


Decoder = Callable[[bytes], npt.NDArray[np.int16]]


@pytest.mark.parametrize(
    ("pt", "codec", "decode"), [(0, "PCMU", ulaw_decode), (8, "PCMA", alaw_decode)]
)
async def test_held_party_hears_music_until_resume(
    server: PbxServer, tmp_path: Path, pt: int, codec: str, decode: Decoder
) -> None:
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    uas = await held_phone(server, tmp_path, callee_rtp.getsockname()[1], pt, codec)
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", rtp_port=caller_rtp.getsockname()[1])
            assert ok.status == 200
            relay_a = media_address(ok.body)
            [log] = (tmp_path / "callee").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            assert drain(callee_rtp) == 0  # no music before the hold

            hold = ua.reinvite_for(invite, ok, 3, "sendonly", caller_rtp.getsockname()[1])
            answer = await ua.exchange(hold, timeout=10)
            assert answer.status == 200 and b"a=recvonly" in answer.body
            ua.send(ua.ack_2xx(hold, answer))
            # The caller keeps sending while it holds: the callee must hear only music.
            for seq in range(10):
                caller_rtp.sendto(rtp(seq, 0, b"\x00" * 160, 0xCA11E4), relay_a)
            packets = [await receive(callee_rtp) for _ in range(50)]  # one second
            assert {source for _, source in packets} == {relay_b}
            assert {p[1] & 0x7F for p, _ in packets} == {pt}  # the callee's codec
            [ssrc] = {p[8:12] for p, _ in packets}
            assert ssrc != struct.pack("!I", 0xCA11E4)
            assert packets[0][0][1] & 0x80  # marker on the first packet
            assert not any(p[1] & 0x80 for p, _ in packets[1:])
            seqs = [struct.unpack("!H", p[2:4])[0] for p, _ in packets]
            assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(50)]
            stamps = [struct.unpack("!I", p[4:8])[0] for p, _ in packets]
            assert stamps == [(stamps[0] + 160 * i) & 0xFFFFFFFF for i in range(50)]
            audio = np.concatenate([decode(p[12:]) for p, _ in packets])
            assert len(audio) == 8000
            assert abs(peak_hz(audio) - MOH_HZ) < 10
            level = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
            assert level > 4000  # the tone itself (8000 peak), not silence

            resume = ua.reinvite_for(invite, ok, 4, "sendrecv", caller_rtp.getsockname()[1])
            answer = await ua.exchange(resume, timeout=10)
            assert answer.status == 200 and b"a=sendrecv" in answer.body
            ua.send(ua.ack_2xx(resume, answer))
            # The music stopped before the 200 was sent: what is queued is all of it.
            drain(callee_rtp)
            with pytest.raises(TimeoutError):
                await receive(callee_rtp, 0.3)
            # And the caller is heard again, in the callee's codec, on the one stream the
            # callee has been hearing (issue 9 §8): the music's SSRC, a marker bit.
            caller_rtp.sendto(rtp(20, 0, b"\xff" * 160, 0xCA11E4), relay_a)
            data, source = await receive(callee_rtp)
            assert source == relay_b and data[8:12] == ssrc and data[1] & 0x80

            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 5), timeout=10)
            assert bye.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()
    [cdr] = await closed_cdrs(server)
    assert (cdr.disposition, cdr.hangup_cause) == ("ANSWERED", "caller hung up")


async def test_music_stops_when_the_holder_hangs_up(server: PbxServer, tmp_path: Path) -> None:
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    uas = await held_phone(server, tmp_path, callee_rtp.getsockname()[1], 0, "PCMU")
    try:
        async with SipClient(server.sip_port) as ua:
            invite, ok = await dial(ua, server, "1002", rtp_port=caller_rtp.getsockname()[1])
            assert ok.status == 200
            hold = ua.reinvite_for(invite, ok, 3, "inactive", caller_rtp.getsockname()[1])
            answer = await ua.exchange(hold, timeout=10)
            assert answer.status == 200
            ua.send(ua.ack_2xx(hold, answer))
            data, _ = await receive(callee_rtp)
            assert data[1] & 0x7F == 0
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 4), timeout=10)
            assert bye.status == 200
            # The music stops as the BYE arrives: a packet or two in flight, then silence.
            late = 0
            with pytest.raises(TimeoutError):
                while late < 5:
                    await receive(callee_rtp, 0.3)
                    late += 1
            assert late < 5
    finally:
        uas.kill()
        caller_rtp.close()
        callee_rtp.close()


def test_pbx_moh_list_add_del(tmp_path: Path) -> None:
    music = tmp_path / "music.wav"
    left = tone(MOH_HZ, 1.0)
    write_wav(music, np.stack([left, left], axis=1), 8000)  # stereo: stored mono
    refused = pbx_cli(tmp_path, "moh", "add", "lounge", str(music))  # no database: a typo?
    assert refused.returncode == 1
    assert refused.stderr.startswith("pbx: error: no database in "), refused.stderr
    assert pbx_cli(tmp_path, "init").returncode == 0
    empty = pbx_cli(tmp_path, "moh", "list")
    assert (empty.returncode, empty.stdout.strip()) == (
        0,
        "no music on hold files; callers hear the built-in music",
    )
    added = pbx_cli(tmp_path, "moh", "add", "lounge", str(music))
    assert (added.returncode, added.stdout.strip()) == (0, "saved music on hold lounge (1.00 s)")
    assert (tmp_path / "moh" / "lounge.wav").is_file()
    listed = pbx_cli(tmp_path, "moh", "list")
    assert listed.stdout.splitlines() == ["NAME    SECONDS", "lounge  1.00"]
    deleted = pbx_cli(tmp_path, "moh", "del", "lounge")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "deleted music on hold lounge")
    assert not (tmp_path / "moh" / "lounge.wav").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("del", "nope"), "pbx: error: no music on hold 'nope' in "),
        (("add", "Bad Name", "x.wav"), "pbx: error: bad music name 'Bad Name': use 1-64"),
        (("add", "ok", "missing.wav"), "pbx: error: missing.wav: "),
    ],
)
def test_pbx_moh_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    assert pbx_cli(tmp_path, "init").returncode == 0
    done = pbx_cli(tmp_path, "moh", *args)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
