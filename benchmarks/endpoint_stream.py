"""CPU of the switch's own media streams: N `MediaEndpoint`s, each sending its one
continuous RTP stream (a packet every 20 ms: prompt audio or G.711 silence) to a
loopback socket that discards it.

    python benchmarks/endpoint_stream.py              # N = 50 200 500, 5 s each
    python benchmarks/endpoint_stream.py -n 100 --seconds 2

Not a test: it prints CPU microseconds per sent packet and the share of one core,
with silence and with a prompt playing, and the packets that went out against the
20 ms schedule (a sender that falls behind skips ahead rather than bursting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.endpoint import MediaEndpoint, tone
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(count: int, seconds: float, playing: bool) -> tuple[float, float, float]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    host, port = sink.getsockname()
    allocator = PortAllocator("127.0.0.1", 40000, 40000 + 4 * count + 10)
    endpoints = [MediaEndpoint(allocator, name=f"bench{i}") for i in range(count)]
    stream = AudioStream(host, port, 0, Codec(0, "PCMU", 8000), 101, "sendrecv")
    for endpoint in endpoints:
        endpoint.set_remote(stream, signalling_host=host)
    loop = asyncio.get_running_loop()
    loop.add_reader(sink.fileno(), _discard, sink)  # read and dropped, as a phone would
    prompts = (
        [asyncio.ensure_future(e.play(tone(440, seconds + 2))) for e in endpoints]
        if playing
        else []
    )
    await asyncio.sleep(0.5)  # settle
    sent0, cpu0, wall0 = sum(e.sent_packets for e in endpoints), _cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    sent = sum(e.sent_packets for e in endpoints) - sent0
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    for endpoint in endpoints:
        endpoint.close()
    for prompt in prompts:
        with contextlib.suppress(asyncio.CancelledError):
            await prompt
    loop.remove_reader(sink.fileno())
    sink.close()
    expected = count * wall / 0.02
    return cpu / max(sent, 1) * 1e6, cpu / wall * 100, sent / expected * 100


def _discard(sock: socket.socket) -> None:
    for _ in range(64):
        try:
            sock.recv(2048)
        except BlockingIOError:
            return


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, nargs="*", default=[50, 200, 500])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{'N':>5} {'what':>8} {'us/packet':>10} {'core %':>7} {'on time %':>10}")
    for count in args.n:
        for playing in (False, True):
            per_packet, core, sent = await _run(count, args.seconds, playing)
            what = "prompt" if playing else "silence"
            print(f"{count:>5} {what:>8} {per_packet:>10.1f} {core:>7.1f} {sent:>10.1f}")


if __name__ == "__main__":
    asyncio.run(main())
