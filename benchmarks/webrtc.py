"""Browser phones under load: CPU of `pbx serve` per WebRTC call (Opus <-> G.711, DTLS-SRTP).

For each count N (1, 10, 50 by default) a fresh `pbx serve` runs with its web console;
this process plays N browsers with aiortc: each logs in to the console as its own user,
switches its phone on (/ws/phone: the gateway registers a contact for it), and calls the
queue 700, which has no agents: the switch answers and plays its music to every caller
for as long as the run lasts. Each browser sends a 1 kHz tone as Opus (libopus at 48 kHz,
32 kbit/s, as Chromium sends it: encoded once and looped, `EncodedTone`) or as PCMU
(`--codec pcmu`), and counts the packets it receives (not decoding them). So each call
is: Opus/DTLS-SRTP between the browser and the gateway, the gateway's Opus <-> G.711
transcoding and its RTP leg to the switch, and the switch's own queue call with music.

Measured over a steady window once every call is up: the server's CPU (user + system,
all threads, from /proc) with the N browser calls up, minus its CPU with the N browser
phones registered and idle (the idle console costs almost nothing), per call; and beside
it, first, the same N callers placed by sipp as plain G.711 SIP phones into the same
queue on the same server (the reference: what a call costs the switch without the
browser gateway; it also makes the queue's music before the browsers' window), so the
gateway's own price per call is the difference. `audio` is what the browsers received
against 50 frames a second each: under 100 % the machine could not keep up. Also
printed: the gateway's own per-frame codec work (acd.web.phone_codec, on the loop),
timed in this process over the same code, beside aiortc's own 48 kHz stereo Opus
encode/decode per frame (what the gateway left to aiortc before: its executor and its
decoder thread).

The goal (issue 16): 50 concurrent browser calls on one core, at most 2 % of a core each.
This process (the browsers) has its own CPU, printed too: on a 2-core machine it competes
with the server's (aiortc's DTLS-SRTP and RTP work for 50 peers is most of a core).

    python benchmarks/webrtc.py
    python benchmarks/webrtc.py --calls 1,10 --seconds 5

Measured on the 2-core shared test machine (load 1-4 from other work; `uptime` beside
each run), server CPU per call at 1 / 10 / 50 calls, with `audio` in brackets:
Opus 11.3 / 5.8 (84 %) / 1.9 (4 %: overloaded) % before the gateway did its own codec
work, 6.0 / 2.1-2.6 / 1.8 (95 %) % after; PCMU 7.5 / 3.4 / 1.4 (38 %) % before,
4.7 / 1.7 / 1.2 (100 %) % after. At 50 Opus calls the server needs about 90 % of one
core: when the machine gives it less, `audio` falls below 100 % (the loop is starved).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from acd.web.phone_webrtc import gather_on, install_tap
from benchmarks.common import (
    ROOT,
    SIP_OPTIONS,
    Popen,
    cpu_times,
    free_port,
    spawn,
    stop,
    udp_answers,
    wait_for,
)
from media.g711 import ulaw_encode
from pbx.store import Store
from pbx.store.queues import Queue

SCENARIOS = Path(__file__).resolve().parent / "sipp"
PASSWORD = "Bench-webrtc-secret-7"
QUEUE = "700"
CALLER = "1999"
RATE = 48000
FRAME = 960


class Tone(MediaStreamTrack):
    """A browser's microphone: a 1 kHz tone, 20 ms frames at 48 kHz, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        t = np.arange(FRAME * 50) / RATE
        self._wave = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._n * 0.02
        if due > loop.time():
            await asyncio.sleep(due - loop.time())  # the microphone's own clock
        at = (self._n % 50) * FRAME
        frame = av.AudioFrame.from_ndarray(
            self._wave[at : at + FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._n * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += 1
        return frame


class EncodedTone(MediaStreamTrack):
    """A browser's microphone already encoded: one second of the 1 kHz tone as 20 ms
    packets (Opus by libopus at 48 kHz mono, 32 kbit/s, VoIP, as Chromium sends it; or
    PCMU), made once and looped, paced in real time. aiortc only packs them: the
    browsers' own codec work would otherwise take most of this 2-core machine at 50."""

    kind = "audio"
    _made: ClassVar[dict[str, list[bytes]]] = {}

    def __init__(self, codec: str) -> None:
        super().__init__()
        if codec not in self._made:
            self._made[codec] = self._encode(codec)
        self._packets = self._made[codec]
        self._step, self._base = (FRAME, RATE) if codec == "opus" else (160, 8000)
        self._n = 0
        self._start: float | None = None

    @staticmethod
    def _encode(codec: str) -> list[bytes]:
        t = np.arange(FRAME * 50) / RATE
        wave = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        if codec != "opus":
            codes = ulaw_encode(wave[::6]).tobytes()
            return [codes[i : i + 160] for i in range(0, len(codes), 160)]
        encoder = av.CodecContext.create("libopus", "w")
        assert isinstance(encoder, av.AudioCodecContext)
        encoder.sample_rate, encoder.layout, encoder.format = RATE, "mono", "s16"
        encoder.bit_rate = 32000
        encoder.time_base = fractions.Fraction(1, RATE)
        encoder.options = {"application": "voip"}
        packets: list[bytes] = []
        for second in range(2):  # the second second: the encoder past its start-up
            packets = []
            for i in range(50):
                frame = av.AudioFrame.from_ndarray(
                    wave[i * FRAME : (i + 1) * FRAME].reshape(1, -1), format="s16", layout="mono"
                )
                frame.sample_rate, frame.pts = RATE, (second * 50 + i) * FRAME
                packets += [bytes(p) for p in encoder.encode(frame)]
        return packets

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._n * 0.02
        if due > loop.time():
            await asyncio.sleep(due - loop.time())  # the microphone's own clock
        packet = av.Packet(self._packets[self._n % len(self._packets)])
        packet.pts = self._n * self._step
        packet.time_base = fractions.Fraction(1, self._base)
        self._n += 1
        return packet


class BrowserClient:
    """One aiortc 'browser': a console login, its phone socket, one call."""

    def __init__(self, base: str, user: str) -> None:
        self.base = base
        self.user = user
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.frames = 0  # audio frames received from the switch (through the gateway)
        self._sinks: list[asyncio.Task[None]] = []
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def phone_on(self) -> None:
        async with self.http.get(self.base + "/login") as page:
            found = re.search(r'name=csrf value="([^"]+)"', await page.text())
        assert found is not None
        form = {"csrf": found.group(1), "username": self.user, "password": PASSWORD}
        async with self.http.post(self.base + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 303, r.status
        self.ws = await self.http.ws_connect(self.base.replace("http", "ws") + "/ws/phone")
        self._reader = asyncio.create_task(self._read())
        await self.expect(lambda m: m["type"] == "ready")

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            await self.messages.put(json.loads(msg.data))

    async def expect(self, match: Any, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.messages.get()
                if message["type"] == "error":
                    raise RuntimeError(f"{self.user}: {message['message']}")
                if match(message):
                    return message

    async def call(self, number: str, codec: str) -> None:
        assert self.ws is not None
        gather_on("127.0.0.1")  # the browsers' candidates on loopback too, as the switch's
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = pc.addTransceiver(EncodedTone(codec), direction="sendrecv")
        if codec != "opus":  # a browser offering G.711 only
            wanted = f"audio/{codec.upper()}"
            codecs = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType == wanted])
        # The switch's packets are counted as aiortc's receiver gives them, not decoded
        # (the gateway's tap, here on the browsers' side: their decoding is not measured).
        if not install_tap(transceiver.receiver, self._count_payload):

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                self._sinks.append(asyncio.create_task(self._count(track)))

        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send_json({"type": "call", "number": number, "sdp": pc.localDescription.sdp})
        answer = await self.expect(lambda m: m["type"] == "sdp")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await self.expect(lambda m: m["type"] == "call" and m["state"] == "up")

    def _count_payload(self, codec: Any, payload: bytes) -> None:
        self.frames += 1

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1

    async def close(self) -> None:
        for sink in self._sinks:
            sink.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self.http.close()


async def prepare(data: Path, users: list[str]) -> None:
    store = await Store.open(data / "pbx.sqlite3")
    try:
        await store.settings.set_default("realm", "aiopbx")
        for user in [*users, CALLER]:
            await store.users.add(user, PASSWORD, "aiopbx")
        await store.queues.add(Queue("bench", QUEUE))  # no agents: callers hear music
    finally:
        await store.close()


def start_server(work: Path, users: list[str]) -> tuple[Popen, int, int]:
    data = work / "aiopbx"
    data.mkdir()
    asyncio.run(prepare(data, users))
    sip, web = free_port(), free_port()
    args = [sys.executable, "-m", "cli", "serve", "--data-dir", str(data), "--port", str(sip)]
    args += ["--no-tcp", "--max-calls-per-user", "0", "--web-port", str(web)]
    args += ["--log-level", "WARNING"]
    log = work / "aiopbx.log"
    proc = spawn(args, log, cwd=ROOT)
    wait_for(lambda: udp_answers(sip, SIP_OPTIONS, b"SIP/2.0 "), "aiopbx", proc, log)
    wait_for(lambda: tcp_open(web), "the web console", proc, log)
    return proc, sip, web


def tcp_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def cpu(pid: int) -> float:
    return sum(cpu_times(pid))


async def window(pid: int, seconds: float) -> tuple[float, float]:
    """(server CPU seconds, this process's CPU seconds) over `seconds` of wall time."""
    server, mine, wall = cpu(pid), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the measuring window
    elapsed = time.monotonic() - wall
    return (cpu(pid) - server) / elapsed, (time.process_time() - mine) / elapsed


async def browsers(
    pid: int, web: int, users: list[str], seconds: float, codec: str
) -> dict[str, float]:
    base = f"http://127.0.0.1:{web}"
    clients = [BrowserClient(base, user) for user in users]
    try:
        for client in clients:
            await client.phone_on()
        idle, _ = await window(pid, seconds)
        started = time.monotonic()
        for group in range(0, len(clients), 10):
            await asyncio.gather(*(c.call(QUEUE, codec) for c in clients[group : group + 10]))
        setup = time.monotonic() - started
        await asyncio.sleep(2.0)  # settle: jitter buffers filled, DTLS done everywhere
        frames = sum(c.frames for c in clients)
        busy, mine = await window(pid, seconds)
        # Frames the browsers got in the window against 50 a second each: under 100 %
        # means someone (the server or these browsers) could not keep up.
        got = (sum(c.frames for c in clients) - frames) / (len(clients) * 50 * seconds)
        return {"idle": idle, "busy": busy, "client": mine, "setup": setup, "audio": got}
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def settle(pid: int) -> float:
    """Until the server is quiet (after a start it prepares its default prompts once);
    its CPU (cores) over the last second."""
    quiet = 1.0
    for _ in range(60):
        before, wall = cpu(pid), time.monotonic()
        time.sleep(1.0)
        quiet = (cpu(pid) - before) / (time.monotonic() - wall)
        if quiet < 0.03:
            break
    return quiet


def sipp_reference(pid: int, sip: int, calls: int, seconds: float, work: Path) -> float | None:
    """Server CPU (cores) with `calls` plain G.711 callers from sipp in the same queue."""
    if shutil.which("sipp") is None:
        return None
    csv = work / "callers.csv"
    csv.write_text(
        f"SEQUENTIAL\n{CALLER};[authentication username={CALLER} password={PASSWORD}];{QUEUE}\n"
    )
    args = ["sipp", f"127.0.0.1:{sip}", "-sf", str(SCENARIOS / "acd_caller.xml")]
    args += ["-inf", str(csv), "-i", "127.0.0.1", "-p", str(free_port())]
    args += ["-r", "50", "-l", str(calls), "-m", str(calls), "-nostdin"]
    args += ["-auth_uri", f"{QUEUE}@127.0.0.1:{sip}", "-mp", str(free_port())]
    proc = spawn(args, work / "sipp.out", cwd=work)
    try:
        # The calls start at 50 a second, then settle (the first queue call of a run also
        # makes the default music once).
        time.sleep(4.0 + calls / 50)
        before, wall = cpu(pid), time.monotonic()
        time.sleep(seconds)
        return (cpu(pid) - before) / (time.monotonic() - wall)
    finally:
        stop(proc)


def frame_costs() -> dict[str, float]:
    """Microseconds per 20 ms frame: aiortc's own Opus codec path (48 kHz stereo, what the
    gateway used to leave to aiortc: encode in an executor, decode in a thread) beside
    the gateway's (acd.web.phone_codec: Opus decoded to and encoded from 8 kHz by
    libopus, G.711 by tables, on the loop)."""
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from acd.web.phone_codec import FromBrowser, ToBrowser
    from media.g711 import ulaw_encode

    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)
    encoder, decoder = get_encoder(opus), get_decoder(opus)
    tone = Tone()
    loop = asyncio.new_event_loop()
    frames = [loop.run_until_complete(tone.recv()) for _ in range(5)]  # warm the pacing
    tone._start = -1e9  # no pacing from here on
    frames = [loop.run_until_complete(tone.recv()) for _ in range(500)]
    loop.close()
    out: dict[str, float] = {}

    def timed(name: str, work: Any, items: list[Any]) -> list[Any]:
        started = time.perf_counter()
        made = [work(item) for item in items]
        out[name] = (time.perf_counter() - started) / len(items) * 1e6
        return made

    # A browser's packets: aiortc's encoder at 48 kHz (as the benchmark's browsers send).
    made = timed("aiortc: Opus encode 48k stereo", encoder.encode, frames)
    packets = [payload for payloads, _ in made for payload in payloads]
    timed(
        "aiortc: Opus decode 48k stereo",
        lambda p: decoder.decode(JitterFrame(data=p, timestamp=0)),
        packets,
    )
    switch = [ulaw_encode(np.asarray(f.to_ndarray()).reshape(-1)[::6]).tobytes() for f in frames]
    from_browser, to_browser = FromBrowser("opus"), ToBrowser("opus")
    timed("gateway: browser Opus -> PCMU", lambda p: from_browser.feed(p, "pcmu"), packets)
    timed("gateway: PCMU -> browser Opus", lambda p: to_browser.packet(p, "pcmu"), switch)
    same, other = ToBrowser("pcmu"), ToBrowser("pcma")
    timed("gateway: PCMU -> browser PCMU", lambda p: av.Packet(same.packet(p, "pcmu")), switch)
    timed("gateway: PCMU -> browser PCMA", lambda p: other.packet(p, "pcmu"), switch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1,10,50", help="Call counts, comma-separated.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Measuring window (s).")
    parser.add_argument("--keep", type=Path, help="Keep the work directories here.")
    parser.add_argument(
        "--codec", choices=("opus", "pcmu"), default="opus", help="What the browsers offer."
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.calls.split(",")]
    print("per-frame work (us per 20 ms frame):")
    for name, value in frame_costs().items():
        print(f"  {name:40s} {value:8.1f}")
    rows = []
    for n in counts:
        work = Path(tempfile.mkdtemp(prefix=f"webrtc-bench-{n}-", dir=args.keep))
        users = [f"{2000 + i}" for i in range(1, n + 1)]
        proc, sip, web = start_server(work, users)
        try:
            quiet = settle(proc.pid)
            reference = sipp_reference(proc.pid, sip, n, args.seconds, work)
            settle(proc.pid)
            result = asyncio.run(browsers(proc.pid, web, users, args.seconds, args.codec))
        finally:
            stop(proc)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        rows.append((n, result, reference, quiet))
    print()
    head = (
        f"{'calls':>5} {'server idle':>11} {'server busy':>11} {'per call':>9}"
        f" {'sipp G.711':>10} {'per call':>9} {'ratio':>6} {'browsers':>9} {'setup s':>8}"
        f" {'audio':>6}"
    )
    print(head)
    for n, r, ref, quiet in rows:
        per = (r["busy"] - r["idle"]) / n
        ref_per = None if ref is None else max(ref - quiet, 0.0) / n
        ratio = f"{per / ref_per:6.1f}" if ref_per else "     -"
        print(
            f"{n:5d} {r['idle']:10.1%} {r['busy']:11.1%} {per:9.2%}"
            f" {(ref if ref is not None else float('nan')):10.1%}"
            f" {(ref_per if ref_per is not None else float('nan')):9.2%} {ratio}"
            f" {r['client']:9.1%} {r['setup']:8.1f} {r['audio']:6.0%}"
        )
    print("\nCPU in cores (100% = one core); 'per call' = (busy - idle) / calls;")
    print("'sipp G.711' = the same calls as plain SIP phones (no gateway); ratio = browser/plain;")
    print("'audio' = frames the browsers received / 50 a second each (under 100%: overloaded).")
    print(f"browsers offered {args.codec}")


if __name__ == "__main__":
    main()
