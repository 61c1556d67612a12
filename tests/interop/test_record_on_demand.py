"""Recording on demand: in a bridged call, the phone of an extension whose recording
mode is on_demand starts and stops the recording with `*1` (RFC 4733 events or SIP
INFO); the CDR links one two-channel WAV of the parts recorded. sipp signals as the
callee, the test's own UDP sockets are both phones' media."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import ulaw_encode
from media.ports import PortAllocator
from media.recorder import CallRecorder
from media.relay import RelaySession
from media.sdp import AudioStream, Codec
from media.telephone_event import TelephoneEvent, event_packets
from media.wav import read_wav
from pbx.bridge import Bridge, FeatureCode
from pbx.server import PbxServer
from tests.interop.peers import SippUas, free_port
from tests.interop.phones import closed_cdrs, dial, in_thread, phone, running_server
from tests.interop.sipclient import SipClient, media_address

WAIT = 5.0  # bound on every wait; never reached when things work
Address = tuple[str, int]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    base = free_port(40)
    async with running_server(tmp_path, rtp_port_min=base, rtp_port_max=base + 39) as pbx:
        yield pbx


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class Phone:
    """One side's media: a socket, where the relay listens for it, its RTP counters."""

    def __init__(self, sock: socket.socket, relay: Address, ssrc: int) -> None:
        self.sock, self.relay, self.ssrc = sock, relay, ssrc
        self.seq = 0
        self.ts = 0
        self.event_ts = 100_000

    def audio(self, samples: npt.NDArray[np.float64]) -> None:
        payload = ulaw_encode(samples).tobytes()
        self._send(0, False, self.ts, payload)
        self.ts += 160

    def digits(self, digits: str) -> None:
        """RFC 4733 events, payload type 101, one timestamp per digit."""
        for digit in digits:
            for packet in event_packets(digit, 100):
                self._send(101, packet.marker, self.event_ts, packet.payload)
            self.event_ts += 2000

    def _send(self, pt: int, marker: bool, ts: int, payload: bytes) -> None:
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq, ts, self.ssrc)
        self.sock.sendto(header + payload, self.relay)
        self.seq += 1


async def talk(a: Phone, b: Phone, hz_a: float, hz_b: float, seconds: float) -> None:
    """Both phones send a tone each, 20 ms packets in real time (as phones do)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    t = np.arange(160) / 8000
    for n in range(round(seconds / 0.02)):
        a.audio(8000 * np.sin(2 * np.pi * hz_a * (t + n * 0.02)))
        b.audio(8000 * np.sin(2 * np.pi * hz_b * (t + n * 0.02)))
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


def bridge_of(server: PbxServer) -> Bridge:
    assert server.b2bua is not None
    [bridge] = set(server.b2bua.bridges.values())
    return bridge


async def recording_is(server: PbxServer, running: bool) -> None:
    """Wait (bounded) until the call's on-demand recorder is running, or stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        recorder = bridge_of(server).recorder
        assert recorder is not None, "the call has no on-demand recorder"
        if recorder.running is running:
            return
        assert loop.time() < deadline, f"recording never {'started' if running else 'stopped'}"
        await asyncio.sleep(0.01)


def peak_hz(x: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / 8000)[int(np.argmax(spectrum))])


def share(x: npt.NDArray[np.float64], hz: float) -> float:
    """The share of `x`'s energy within 30 Hz of `hz`."""
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    return float(spectrum[np.abs(freqs - hz) < 30].sum() / spectrum.sum())


class Call:
    """A bridged call 1001 -> 1002: the SIP client as caller, sipp as callee."""

    def __init__(self, server: PbxServer, tmp_path: Path) -> None:
        self.server, self.tmp_path = server, tmp_path
        self.caller_sock, self.callee_sock = udp_socket(), udp_socket()
        self.uas: SippUas | None = None

    async def __aenter__(self) -> Call:
        inf = self.tmp_path / "media.csv"
        inf.write_text(f"SEQUENTIAL\n{self.callee_sock.getsockname()[1]};0;PCMU\n")
        self.uas = await phone(
            self.server,
            "1002",
            "uas_answer_media.xml",
            self.tmp_path / "callee",
            "-inf",
            str(inf),
        )
        self.ua = SipClient(self.server.sip_port)
        await self.ua.__aenter__()
        self.invite, self.ok = await dial(
            self.ua,
            self.server,
            "1002",
            rtp_port=self.caller_sock.getsockname()[1],
            events=True,
        )
        assert self.ok.status == 200
        [log] = (self.tmp_path / "callee").glob("*_messages.log")
        relay_b = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])
        self.caller = Phone(self.caller_sock, media_address(self.ok.body), 0x1111)
        self.callee = Phone(self.callee_sock, relay_b, 0x2222)
        return self

    async def info(self, digit: str, cseq: int) -> None:
        body = f"Signal={digit}\r\nDuration=160\r\n"
        info = self.ua.in_dialog(
            self.invite, self.ok, "INFO", cseq, ("Content-Type: application/dtmf-relay",)
        ).replace(
            b"Content-Length: 0\r\n\r\n",
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode(),
        )
        assert (await self.ua.exchange(info, timeout=WAIT)).status == 200

    async def hang_up(self) -> None:
        bye = await self.ua.exchange(self.ua.in_dialog(self.invite, self.ok, "BYE", 9), WAIT)
        assert bye.status == 200
        assert self.uas is not None and await in_thread(self.uas.finish) == 0

    async def __aexit__(self, *exc: object) -> None:
        await self.ua.__aexit__(*exc)
        if self.uas is not None:
            self.uas.kill()
        self.caller_sock.close()
        self.callee_sock.close()


def events_received(sock: socket.socket) -> list[int]:
    """The telephone-event codes that reached `sock` (each event once)."""
    codes: list[int] = []
    stamps: set[int] = set()
    while True:
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            return codes
        stamp = int.from_bytes(data[4:8], "big")
        if data[1] & 0x7F == 101 and stamp not in stamps:
            stamps.add(stamp)
            codes.append(TelephoneEvent.parse(data[12:]).event)


def recorded(path: str | None) -> npt.NDArray[np.float64]:
    assert path is not None, "the CDR links no recording"
    wav = read_wav(path)
    assert (wav.rate, wav.samples.shape[1]) == (8000, 2)
    return wav.samples


async def test_star_one_starts_and_stops_recording_in_parts(
    server: PbxServer, tmp_path: Path
) -> None:
    assert server._store is not None
    await server._store.dialplan.set_recording_mode("1001", "on_demand")
    async with Call(server, tmp_path) as call:
        a, b = call.caller, call.callee
        await talk(a, b, 300, 1500, 0.4)  # before the code: not recorded
        assert not bridge_of(server).recorder.running  # type: ignore[union-attr]
        a.digits("*1")
        await recording_is(server, True)
        await talk(a, b, 440, 1000, 0.6)  # part one
        a.digits("*1")
        await recording_is(server, False)
        await talk(a, b, 2000, 2500, 0.4)  # paused: not recorded
        a.digits("*1")
        await recording_is(server, True)
        await talk(a, b, 600, 1200, 0.6)  # part two, recorded until the hangup
        # The digits still reached the callee as RFC 4733 events (10 is *).
        assert [c for c in events_received(call.callee_sock) if c in (1, 10)] == [10, 1] * 3
        await call.hang_up()
    [cdr] = await closed_cdrs(server)
    x = recorded(cdr.recording)
    assert 1.1 * 8000 <= len(x) <= 1.5 * 8000  # the two parts, back to back, no gap
    for channel, (first, second) in enumerate(((440, 600), (1000, 1200))):
        one, two = x[400:4400, channel], x[5200:9200, channel]
        assert abs(peak_hz(one) - first) < 10, (channel, peak_hz(one))
        assert abs(peak_hz(two) - second) < 10, (channel, peak_hz(two))
        for absent in (300, 1500, 2000, 2500):
            assert share(x[:, channel], absent) < 0.01, (channel, absent)


async def test_callee_code_records_until_the_hangup(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None
    await server._store.dialplan.set_recording_mode("1002", "on_demand")
    async with Call(server, tmp_path) as call:
        a, b = call.caller, call.callee
        await talk(a, b, 300, 1500, 0.2)
        a.digits("*1")  # the caller is not on_demand: its code does nothing
        b.digits("*1")
        await recording_is(server, True)
        await talk(a, b, 440, 1000, 1.0)
        assert [c for c in events_received(call.caller_sock) if c in (1, 10)] == [10, 1]
        await call.hang_up()
    [cdr] = await closed_cdrs(server)
    x = recorded(cdr.recording)
    assert 0.9 * 8000 <= len(x) <= 1.3 * 8000
    assert abs(peak_hz(x[:, 0]) - 440) < 10 and abs(peak_hz(x[:, 1]) - 1000) < 10


async def test_info_digits_start_recording(server: PbxServer, tmp_path: Path) -> None:
    assert server._store is not None
    await server._store.dialplan.set_recording_mode("1001", "on_demand")
    async with Call(server, tmp_path) as call:
        a, b = call.caller, call.callee
        await talk(a, b, 300, 1500, 0.2)
        await call.info("*", 3)
        await call.info("1", 4)
        await recording_is(server, True)
        await talk(a, b, 440, 1000, 1.0)
        await call.hang_up()
    [cdr] = await closed_cdrs(server)
    x = recorded(cdr.recording)
    assert abs(peak_hz(x[:, 0]) - 440) < 10 and abs(peak_hz(x[:, 1]) - 1000) < 10
    assert share(x[:, 0], 300) < 0.01 and share(x[:, 1], 1500) < 0.01
    # The digits went on to the other phone as the same INFO.
    [log] = (tmp_path / "callee").glob("*_messages.log")
    infos = log.read_bytes().split(b"INFO sip:")[1:]
    assert [b"Signal=*" in i for i in infos] == [True, False]
    assert [b"Signal=1" in i for i in infos] == [False, True]


@pytest.mark.parametrize(
    ("mode", "code"), [("on_demand", ""), ("on_demand", "*2"), ("never", "*1")]
)
async def test_no_code_no_recording(
    server: PbxServer, tmp_path: Path, mode: str, code: str
) -> None:
    assert server._store is not None
    await server._store.dialplan.set_recording_mode("1001", mode)
    async with Call(server, tmp_path) as call:
        a, b = call.caller, call.callee
        a.digits(code)
        await talk(a, b, 440, 1000, 0.4)
        await call.hang_up()
    [cdr] = await closed_cdrs(server)
    assert cdr.recording is None
    assert not list((tmp_path / "recordings").rglob("*.wav"))


# -- the parts: feature code matching, the recorder's pause and resume ---------------


@pytest.mark.parametrize(
    ("presses", "hits"),
    [
        ([("*", 0.0), ("1", 0.5)], [False, True]),
        ([("1", 0.0), ("*", 0.1)], [False, False]),
        ([("*", 0.0), ("1", 2.5)], [False, False]),  # too slow: a new start
        ([("*", 0.0), ("*", 0.2), ("1", 0.4)], [False, False, True]),
        ([("5", 0.0), ("*", 0.1), ("1", 0.2), ("1", 0.3)], [False, False, True, False]),
        ([("*", 0.0), ("1", 0.1), ("*", 0.2), ("1", 0.3)], [False, True, False, True]),
    ],
)
def test_feature_code(presses: list[tuple[str, float]], hits: list[bool]) -> None:
    code = FeatureCode("*1", timeout=2.0)
    assert [code.feed(digit, now) for digit, now in presses] == hits


async def test_recorder_parts_follow_each_other_without_the_gap() -> None:
    base = free_port(4)
    session = RelaySession(PortAllocator("127.0.0.1", base, base + 3))
    now = [100.0]
    try:
        pcmu = Codec(0, "PCMU", 8000)
        stream = AudioStream("127.0.0.1", 9, 10, pcmu, None, "sendrecv")
        session.set_remote("a", stream)
        session.set_remote("b", stream)
        recorder = CallRecorder(session, clock=lambda: now[0])
        assert not recorder.recorded
        packet = struct.pack("!BBHII", 0x80, 0, 1, 0, 1) + ulaw_encode(np.full(160, 1000)).tobytes()
        recorder.start()
        for _ in range(10):  # 200 ms on leg a
            recorder.feed("a", packet)
            now[0] += 0.02
        recorder.stop()
        now[0] += 60.0  # a minute not recorded
        recorder.start()
        for _ in range(5):  # 100 ms on leg b
            recorder.feed("b", packet)
            now[0] += 0.02
        recorder.stop()
        x = recorder.samples()
        assert recorder.recorded and x.shape == (2400, 2)
        assert np.all(x[:1600, 0] != 0) and np.all(x[1600:, 0] == 0)
        assert np.all(x[:1600, 1] == 0) and np.all(x[1600:, 1] != 0)
    finally:
        session.close()
