"""kill -9 during a recorded call: the recording is streamed to disk and linked from the
CDR as it starts, so after a restart the CDR (closed as interrupted) points at a valid
two-channel WAV holding what each phone said until shortly before the kill.

`pbx serve` runs in a child process; sipp answers as 1002 (recorded always), the
test's own SIP client calls as 1001, and the test's UDP sockets are both phones' RTP.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from media.g711 import ulaw_encode
from media.wav import WavError, read_wav
from pbx.server import PbxServer
from tests.interop.peers import PbxProcess, SippUas, add_users, free_port, pbx_cli, run_sipp
from tests.interop.phones import PASSWORDS, SCENARIOS, dial, sipp_auth
from tests.interop.sipclient import SipClient, media_address

WAIT = 15.0  # bound on every wait; never reached when things work
RATE = 8000
FIRST = (440.0, 1000.0)  # caller, callee: the first second
THEN = (600.0, 1200.0)  # until the kill


def cdrs(data_dir: Path) -> list[dict[str, object]]:
    out = pbx_cli(data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def talk(
    caller: socket.socket,
    relay_a: tuple[str, int],
    callee: socket.socket,
    relay_b: tuple[str, int],
) -> None:
    """Both phones send their tone in 20 ms packets, in real time, until cancelled."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    t = np.arange(160) / RATE
    n = 0
    while True:
        hz = FIRST if n < 50 else THEN
        for sock, to, f, ssrc in ((caller, relay_a, hz[0], 1), (callee, relay_b, hz[1], 2)):
            payload = ulaw_encode(8000 * np.sin(2 * np.pi * f * (t + n * 0.02))).tobytes()
            sock.sendto(struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, ssrc) + payload, to)
        n += 1
        await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))


class Switch:
    """What `dial` needs of the switch: its SIP port."""

    def __init__(self, sip_port: int) -> None:
        self.sip_port = sip_port


def frames_on_disk(path: Path) -> int:
    """Frames in the WAV as it is on disk now (0 while it cannot be read)."""
    try:
        return len(read_wav(path).samples)
    except WavError:
        return 0


def peak_hz(x: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spectrum))])


async def test_kill_9_leaves_the_recording_so_far(tmp_path: Path) -> None:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    users = {user: PASSWORDS[user] for user in ("1001", "1002")}
    await asyncio.to_thread(add_users, data_dir, users)  # it runs its own event loop
    record = pbx_cli(data_dir, "user", "record", "1002", "--mode", "always")
    assert record.returncode == 0, record.stderr
    server = PbxProcess(data_dir, free_port())
    server.start()
    switch = cast(PbxServer, Switch(server.port))
    caller_rtp, callee_rtp = udp_socket(), udp_socket()
    uas: SippUas | None = None
    try:
        phone_port = free_port()
        registered = await asyncio.to_thread(
            run_sipp,
            SCENARIOS / "register_auth.xml",
            server.port,
            workdir=tmp_path / "reg",
            inf=[("1002", sipp_auth("1002"))],
            local_port=phone_port,
            timeout=15,
        )
        assert (registered.returncode, registered.successful) == (0, 1), registered.output
        inf = tmp_path / "media.csv"
        inf.write_text(f"SEQUENTIAL\n{callee_rtp.getsockname()[1]};0;PCMU\n")
        uas = SippUas(
            SCENARIOS / "uas_answer_media.xml",
            tmp_path / "callee",
            port=phone_port,
            extra=("-inf", str(inf)),
        )
        async with SipClient(server.port) as ua:
            _, ok = await dial(ua, switch, "1002", rtp_port=caller_rtp.getsockname()[1])
            assert ok.status == 200
            [log] = (tmp_path / "callee").glob("*_messages.log")
            relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
            sender = asyncio.create_task(
                talk(caller_rtp, media_address(ok.body), callee_rtp, relay_b)
            )
            try:
                # The CDR of the call in progress links the file at once ...
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT
                while True:
                    rows = await asyncio.to_thread(cdrs, data_dir)
                    if rows and rows[0]["recording"]:
                        break
                    assert loop.time() < deadline, f"no recording linked: {rows}"
                    await asyncio.sleep(0.05)
                [live] = rows
                assert live["end"] is None
                path = Path(str(live["recording"]))
                # ... and the file grows as the call goes: wait for 2.5 s on disk.
                while frames_on_disk(path) < 2.5 * RATE:
                    assert loop.time() < deadline, f"{path} holds {frames_on_disk(path)} frames"
                    await asyncio.sleep(0.05)
                server.stop(signal.SIGKILL)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        server.start()  # closes the interrupted call's CDR
        [cut] = await asyncio.to_thread(cdrs, data_dir)
    finally:
        server.stop()
        if uas is not None:
            uas.kill()
        caller_rtp.close()
        callee_rtp.close()
    assert cut["disposition"] == "ANSWERED" and "interrupted" in str(cut["hangup_cause"])
    assert cut["recording"] == str(path)
    wav = read_wav(path)
    assert (wav.rate, wav.channels) == (RATE, 2)
    assert len(wav.samples) >= 2.5 * RATE
    # The header counts every byte of audio (written after each append).
    assert path.stat().st_size == 44 + 4 * len(wav.samples)
    x = wav.samples
    for channel in (0, 1):  # channel 0 is the caller (leg a), 1 the callee
        first = peak_hz(x[int(0.1 * RATE) : int(0.9 * RATE), channel])
        then = peak_hz(x[int(1.2 * RATE) : int(2.4 * RATE), channel])
        assert abs(first - FIRST[channel]) < 10, (channel, first)
        assert abs(then - THEN[channel]) < 10, (channel, then)
