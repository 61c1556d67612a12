"""CPU, latency and loss of the RTP relay under N concurrent G.711 calls, beside rtpengine.

Three processes per run, so each one's CPU can be read on its own:

- the relay under test: `media.relay.RelaySession` x N in one asyncio loop (uvloop when
  importable), started as `python benchmarks/relay.py --serve` and fed the phones'
  addresses as one JSON line, like the B2BUA would feed SDP;
- the driver (a `multiprocessing` child): 2N UDP sockets, one per phone, each sending a
  172-byte RTP packet (160-byte PCMU payload) every 20 ms, the sends of all phones spread
  evenly over the period as independent phones would be. Each packet carries its send time
  (`time.monotonic_ns()`) and a 32-bit sequence in the payload; on receipt the driver
  counts loss and out-of-order and records the one-way latency. It reads the target's
  CPU time (utime + stime of every thread, from /proc/PID/stat) at the start and end of
  the measured window itself, so the window and the counts are the same;
- this script, which orchestrates and prints the table.

The same streams are run three ways per N: `direct` (phone to phone, no relay: the
driver's own latency floor), `pbx` and, when installed, `rtpengine` (userspace, one
thread, set up through its ng control protocol as in ../shared/peers/anchors.md).
"added" latency is the target's percentile minus the direct run's.

    python benchmarks/relay.py                     # N = 100 500 1000 2000
    python benchmarks/relay.py -n 200 --seconds 2  # a quick look
    python benchmarks/relay.py --hot-path          # the Python packet path alone

`--hot-path` takes the loop and the driver out: one process queues 200 datagrams on
leg a's socket, calls the channel's reader 200 times and drains phone B, and reports the
process CPU per call of the reader (median of 7 repetitions of 20,000 packets): the plain
path, and the path of a leg that had music on hold (its packets rewritten onto one
stream). On a loaded 2-core box this is the number that can show a few percent.

Not a test: it prints a table. The driver is Python too and on a 2-core machine shares
the box with the relay; when it cannot keep the 20 ms schedule it skips packets rather
than bursting, and the "offered" column shows the rate it really sent.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media.ports import PortAllocator  # noqa: E402
from media.relay import RelaySession  # noqa: E402
from media.sdp import AudioStream, Codec, SessionDescription  # noqa: E402

HOST = "127.0.0.1"
PERIOD_NS = 20_000_000
PACKET = struct.Struct("!BBHIIQI")  # RTP fixed header, then send time (ns) and sequence
PAYLOAD_BYTES = 160
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PCMU = Codec(0, "PCMU", 8000)
RTPENGINE_NG = (HOST, 2223)


def raise_fd_limit() -> None:
    """Let this process open as many sockets as the hard limit allows (4 per relayed call)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) in seconds of every thread of `pid` (fields 14, 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK


# --- the relay under test (runs in its own process) -------------------------------------


async def serve() -> None:
    """`--serve`: read the phones' addresses, relay their calls until stdin closes."""
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    request = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    phones: list[list[Any]] = request["phones"]
    allocator = PortAllocator(HOST, request["min_port"], request["min_port"] + 4 * len(phones) + 64)
    sessions: list[RelaySession] = []
    for ah, ap, bh, bp in phones:
        session = RelaySession(allocator, name=f"bench-{len(sessions)}")
        session.set_remote("a", AudioStream(ah, ap, ap + 1, PCMU, None, "sendrecv"))
        session.set_remote("b", AudioStream(bh, bp, bp + 1, PCMU, None, "sendrecv"))
        session.set_signalling("a", ah)  # as the B2BUA does: the phones' SIP host
        session.set_signalling("b", bh)
        sessions.append(session)
    reply = {"pid": os.getpid(), "ports": [[s.a.port, s.b.port] for s in sessions]}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.readline)  # EOF: the run is over
    for session in sessions:
        session.close()


@contextlib.contextmanager
def pbx_relay(phones: list[tuple[str, int]], min_port: int) -> Iterator[tuple[int, list[Any]]]:
    """Start the relay process for these phones; yields (pid, targets of each phone)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        pairs = [[*phones[i], *phones[i + 1]] for i in range(0, len(phones), 2)]
        proc.stdin.write(json.dumps({"phones": pairs, "min_port": min_port}) + "\n")
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        targets: list[Any] = []
        for a_port, b_port in reply["ports"]:
            targets += [(HOST, a_port), (HOST, b_port)]
        yield reply["pid"], targets
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- rtpengine through its ng protocol ---------------------------------------------------


def bencode(value: Any) -> bytes:
    """Bencode a str/bytes/int/list/dict (dict keys sorted, as the format requires)."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value (byte strings come back as str when they are UTF-8)."""

    def value(i: int) -> tuple[Any, int]:
        kind = data[i : i + 1]
        if kind == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if kind in (b"l", b"d"):
            items, i = [], i + 1
            while data[i : i + 1] != b"e":
                item, i = value(i)
                items.append(item)
            if kind == b"l":
                return items, i + 1
            return dict(zip(items[::2], items[1::2], strict=True)), i + 1
        colon = data.index(b":", i)
        end = colon + 1 + int(data[i:colon])
        raw = data[colon + 1 : end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return raw, end

    result, end = value(0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes after the bencoded value")
    return result


class NgClient:
    """One ng control socket: `COOKIE <bencoded dict>` out, the same cookie back."""

    def __init__(self, address: tuple[str, int] = RTPENGINE_NG) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.sock.connect(address)

    def __call__(self, command: str, **args: Any) -> dict[str, Any]:
        cookie = secrets.token_hex(6).encode()
        args = {k.replace("_", "-"): v for k, v in args.items()}
        self.sock.send(cookie + b" " + bencode({"command": command, **args}))
        while True:
            data = self.sock.recv(65536)
            got, _, body = data.partition(b" ")
            if got == cookie:
                reply: dict[str, Any] = bdecode(body)
                if reply.get("result") not in ("ok", "pong"):
                    raise RuntimeError(f"rtpengine {command}: {reply}")
                return reply

    def close(self) -> None:
        self.sock.close()


def phone_sdp(host: str, port: int, session: int) -> str:
    return (
        f"v=0\r\no=- {session} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )


@contextlib.contextmanager
def rtpengine_daemon() -> Iterator[int]:
    """Start rtpengine as in anchors.md (userspace, one thread); yields its pid."""
    with tempfile.TemporaryDirectory() as tmp:
        pidfile = Path(tmp) / "rtpengine.pid"
        log = (Path(tmp) / "rtpengine.log").open("w")
        proc = subprocess.Popen(
            ["rtpengine", "--table=-1", f"--interface={HOST}",
             f"--listen-ng={RTPENGINE_NG[0]}:{RTPENGINE_NG[1]}", "--port-min=40000",
             "--port-max=60000", "--foreground", "--log-stderr", "--log-level=3",
             "--num-threads=1", f"--pidfile={pidfile}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            ng = NgClient()
            for _ in range(50):
                try:
                    ng("ping")
                    break
                except (TimeoutError, ConnectionRefusedError):
                    if proc.poll() is not None:
                        raise RuntimeError("rtpengine exited at start") from None
            ng.close()
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


@contextlib.contextmanager
def rtpengine_calls(phones: list[tuple[str, int]], tag: str) -> Iterator[list[Any]]:
    """Set up one rtpengine call per phone pair; yields each phone's target address."""
    ng = NgClient()
    calls, targets = [], []
    try:
        for i in range(0, len(phones), 2):
            (ah, ap), (bh, bp) = phones[i], phones[i + 1]
            call = {"call_id": f"{tag}-{i}", "from_tag": f"a{i}"}
            offer = ng("offer", sdp=phone_sdp(ah, ap, i), **call)
            calls.append(call)
            answer = ng("answer", sdp=phone_sdp(bh, bp, i + 1), to_tag=f"b{i}", **call)
            to_b = SessionDescription.parse(offer["sdp"]).audio().port  # where B sends
            to_a = SessionDescription.parse(answer["sdp"]).audio().port  # where A sends
            targets += [(HOST, to_a), (HOST, to_b)]
        yield targets
    finally:
        for call in calls:
            with contextlib.suppress(RuntimeError, TimeoutError):
                ng("delete", **call)
        ng.close()


# --- the driver (runs in its own process) ------------------------------------------------


def drive(conn: Connection, indices: list[int], total: int) -> None:
    """Driver process: bind one socket per phone of `indices` (out of `total` phones),
    then run each stream plan the parent sends, until it sends None."""
    raise_fd_limit()
    socks = []
    for _ in indices:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    conn.send([s.getsockname() for s in socks])
    while (plan := conn.recv()) is not None:
        conn.send(run_streams(socks, indices, total, *plan))


def run_streams(
    socks: list[socket.socket], indices: list[int], total: int, targets: list[Any],
    pid: int | None, start: int, warmup: float, seconds: float, run: int,
) -> dict[str, Any]:  # fmt: skip
    """Send 20 ms RTP on every socket for warmup + seconds from `start` (monotonic ns, the
    same clock in every driver process); measure the second part.

    Phone `g` of `total` sends at `start + cycle * 20 ms + g * 20 ms / total`, so the
    phones of all drivers together are spread evenly over each period.
    """
    count = len(socks)
    poller = select.epoll()
    by_fd: dict[int, int] = {}
    for i, (sock, target) in enumerate(zip(socks, targets, strict=True)):
        sock.connect(tuple(target))
        with contextlib.suppress(OSError):
            while True:
                sock.recv(2048)  # left over from the previous run
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = i
    sends = [s.send for s in socks]
    recvs = {fd: socks[i].recv_into for fd, i in by_fd.items()}
    buffers = [bytearray(PACKET.size + PAYLOAD_BYTES - 12) for _ in socks]
    ssrcs = [(run << 20) | g for g in indices]
    offsets = [g * PERIOD_NS // total for g in indices]
    highest = dict.fromkeys(by_fd, -1)
    rbuf = bytearray(2048)
    latencies = array.array("q")
    sent_window = received_window = out_of_order = skipped = 0
    now_ns = time.monotonic_ns
    unpack = struct.Struct("!QI").unpack_from
    pack = PACKET.pack_into

    window_start = start + int(warmup * 1e9)
    window_end = window_start + int(seconds * 1e9)
    stop = window_end + 300_000_000  # keep receiving what is in flight
    cpu_start = cpu_end = (0.0, 0.0)
    cycle = j = 0
    due = start + offsets[0]
    sending = True
    while True:
        now = now_ns()
        while sending and due <= now:
            if now - due > PERIOD_NS:
                skipped += 1  # too late: a phone would not burst to catch up
            else:
                t = now_ns()
                pack(buffers[j], 0, 0x80, 0, cycle & 0xFFFF, cycle * 160, ssrcs[j], t, cycle)
                try:
                    sends[j](buffers[j])
                    if window_start <= t < window_end:
                        sent_window += 1
                except OSError:
                    pass
            j += 1
            if j == count:
                j = 0
                cycle += 1
            due = start + cycle * PERIOD_NS + offsets[j]
            if due >= window_end:
                sending = False
        if pid is not None and not cpu_start[0] and now >= window_start:
            cpu_start = cpu_times(pid)
        if pid is not None and not cpu_end[0] and now >= window_end:
            cpu_end = cpu_times(pid)
        if now >= stop:
            break
        wait = (due - now) / 1e9 if sending else 0.01
        for fd, _ in poller.poll(wait if wait > 0.001 else 0):
            try:
                n = recvs[fd](rbuf)
            except OSError:
                continue
            got = now_ns()
            if n < PACKET.size:
                continue
            sent_at, seq = unpack(rbuf, 12)
            if seq <= highest[fd]:
                out_of_order += 1
            else:
                highest[fd] = seq
            if window_start <= sent_at < window_end:
                received_window += 1
                latencies.append(got - sent_at)
    poller.close()
    return {
        "sent": sent_window, "received": received_window, "out_of_order": out_of_order,
        "skipped": skipped, "user": cpu_end[0] - cpu_start[0], "sys": cpu_end[1] - cpu_start[1],
        "latencies": latencies.tobytes(),
    }  # fmt: skip


# --- orchestration and the table ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    target: str
    calls: int
    seconds: float
    sent: int
    received: int
    out_of_order: int
    user: float  # CPU seconds of the target in the window
    sys: float
    p50: float  # one-way latency, µs
    p99: float

    @property
    def us_per_packet(self) -> float:
        return (self.user + self.sys) / self.received * 1e6 if self.received else float("nan")

    @property
    def user_us_per_packet(self) -> float:
        return self.user / self.received * 1e6 if self.received else float("nan")

    @property
    def loss(self) -> float:
        return (self.sent - self.received) / self.sent if self.sent else float("nan")


class Drivers:
    """K driver processes sharing the 2N phones round-robin; runs merge their counts."""

    def __init__(self, phones: int, count: int) -> None:
        self.total = phones
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.Process] = []
        self.indices = [list(range(k, phones, count)) for k in range(count)]
        for indices in self.indices:
            parent, child = multiprocessing.Pipe()
            proc = multiprocessing.Process(target=drive, args=(child, indices, phones), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.phones: list[tuple[str, int]] = [("", 0)] * phones
        for conn, indices in zip(self.conns, self.indices, strict=True):
            for g, address in zip(indices, conn.recv(), strict=True):
                self.phones[g] = tuple(address)

    def measure(
        self, target: str, targets: list[Any], pid: int | None, args: argparse.Namespace,
        run: int,
    ) -> Result:  # fmt: skip
        """One run against `targets` (per phone); driver 0 reads `pid`'s CPU in the window."""
        start = time.monotonic_ns() + 200_000_000
        for k, (conn, indices) in enumerate(zip(self.conns, self.indices, strict=True)):
            mine = [targets[g] for g in indices]
            conn.send((mine, pid if k == 0 else None, start, args.warmup, args.seconds, run))
        raws = [conn.recv() for conn in self.conns]
        lat = array.array("q")
        for raw in raws:
            lat.frombytes(raw["latencies"])
        ordered = sorted(lat)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e3 if ordered else 0.0

        return Result(
            target, self.total // 2, args.seconds, sum(r["sent"] for r in raws),
            sum(r["received"] for r in raws), sum(r["out_of_order"] for r in raws),
            raws[0]["user"], raws[0]["sys"], pct(0.50), pct(0.99),
        )  # fmt: skip

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(10)


HEADER = (
    f"{'calls':>6} {'target':10s} {'pkt/s':>7} {'µs/pkt':>7} {'user':>6} {'%core':>6} "
    f"{'p50 µs':>8} {'p99 µs':>8} {'+p50':>7} {'+p99':>8} {'loss %':>7} {'ooo':>4}"
)


def row(r: Result, direct: Result) -> str:
    """One line of the table; `*` marks a run where the driver sent < 98% of 50 packets/s."""
    late = " *" if r.sent < 0.98 * 100 * r.calls * r.seconds else ""
    if r.user or r.sys:
        core = (r.user + r.sys) / r.seconds * 100
        cpu = f"{r.us_per_packet:7.2f} {r.user_us_per_packet:6.2f} {core:6.1f}"
    else:
        cpu = f"{'-':>7} {'-':>6} {'-':>6}"
    added = (
        f"{r.p50 - direct.p50:7.1f} {r.p99 - direct.p99:8.1f}"
        if r is not direct
        else f"{'-':>7} {'-':>8}"
    )
    return (
        f"{r.calls:6d} {r.target:10s} {r.sent / r.seconds:7.0f} {cpu} "
        f"{r.p50:8.1f} {r.p99:8.1f} {added} {r.loss * 100:7.3f} {r.out_of_order:4d}{late}"
    )


def hot_path(packets: int = 20_000, repetitions: int = 7) -> None:
    """Print the CPU per packet of the relay's reader, without loop or driver."""

    async def measure(after_moh: bool) -> float:
        loop = asyncio.get_running_loop()
        a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        a.bind((HOST, 0))
        b.bind((HOST, 0))
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        session = RelaySession(PortAllocator(HOST, 36000, 36100), name="hot")
        for leg in (session.a, session.b):
            for channel in (leg.rtp, leg.rtcp):
                loop.remove_reader(channel.sock.fileno())
        for name, sock in (("a", a), ("b", b)):
            port = sock.getsockname()[1]
            session.set_remote(name, AudioStream(HOST, port, port + 1, PCMU, None, "sendrecv"))
            session.set_signalling(name, HOST)
        channel = session.a.rtp
        step = channel.readable
        if after_moh:  # what music on hold leaves behind on the leg toward B
            session.b.send_own(0, b"\xff" * PAYLOAD_BYTES, PAYLOAD_BYTES)
            b.recv(2048)
            loop.remove_reader(channel.sock.fileno())
            step = channel.readable_continuous
        b.setblocking(False)
        packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x1234) + b"\xff" * PAYLOAD_BYTES
        target = (HOST, session.a.port)
        results = []
        for _ in range(repetitions):
            cpu = 0.0
            for _ in range(packets // 200):
                for _ in range(200):
                    a.sendto(packet, target)
                start = time.process_time()
                for _ in range(200):
                    step()
                cpu += time.process_time() - start
                with contextlib.suppress(BlockingIOError):
                    while True:
                        b.recv(2048)
            results.append(cpu / packets * 1e6)
        session.close()
        a.close()
        b.close()
        return sorted(results)[len(results) // 2]

    for after_moh in (False, True):
        us = asyncio.run(measure(after_moh))
        label = "leg that had music on hold" if after_moh else "plain relay (no MOH)"
        print(f"hot path, {label}: {us:.3f} µs CPU per packet "
              f"(median of {repetitions} x {packets})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--calls", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--drivers", type=int, default=1, help="driver processes (cores)")
    parser.add_argument("--min-port", type=int, default=10000)
    parser.add_argument("--no-rtpengine", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hot-path", action="store_true", help="the reader alone, in-process")
    args = parser.parse_args()
    if args.hot_path:
        hot_path()
        return
    if args.serve:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve())
        else:
            uvloop.run(serve())
        return

    raise_fd_limit()  # inherited by rtpengine
    have_rtpengine = shutil.which("rtpengine") is not None and not args.no_rtpengine
    try:
        import uvloop

        loop_name = f"uvloop {getattr(uvloop, '__version__', '')}"
    except ImportError:
        loop_name = "asyncio"
    print(f"RTP relay: G.711 20 ms ({PACKET.size + PAYLOAD_BYTES - 12}-byte RTP) both ways; "
          f"warmup {args.warmup:g} s, measured {args.seconds:g} s; pbx on {loop_name}; "
          f"{os.cpu_count()} CPUs, {args.drivers} driver process(es)")  # fmt: skip
    print("µs/pkt = target CPU (user+sys, all threads) per relayed packet; user = its user part;"
          " +p50/+p99 = latency minus the direct run's; * = the driver fell behind"
          " (sent < 98% of 50 packets/s per phone)")  # fmt: skip
    if not have_rtpengine:
        print("rtpengine not installed (or --no-rtpengine): comparison skipped")
    print(HEADER)
    ratios = []
    with contextlib.ExitStack() as stack:
        engine_pid = stack.enter_context(rtpengine_daemon()) if have_rtpengine else None
        for run, calls in enumerate(args.calls):
            drivers = Drivers(2 * calls, args.drivers)
            try:
                phones = drivers.phones
                direct_targets = []
                for i in range(0, len(phones), 2):
                    direct_targets += [phones[i + 1], phones[i]]
                direct = drivers.measure("direct", direct_targets, None, args, 3 * run)
                print(row(direct, direct), flush=True)
                nominal = 2 * calls * 50 * args.seconds
                saturated = direct.loss > 0.001 or direct.sent < 0.98 * nominal
                with pbx_relay(phones, args.min_port) as (pid, targets):
                    pbx = drivers.measure("pbx", targets, pid, args, 3 * run + 1)
                print(row(pbx, direct), flush=True)
                if engine_pid is not None:
                    with rtpengine_calls(phones, f"bench{run}") as targets:
                        engine = drivers.measure(
                            "rtpengine", targets, engine_pid, args, 3 * run + 2
                        )
                    print(row(engine, direct), flush=True)
                    ratios.append((calls, engine.us_per_packet / pbx.us_per_packet, saturated))
                if saturated:
                    print(f"       ^ driver saturated at {calls} calls (direct run: "
                          f"{direct.sent / nominal:.0%} of the packets offered, "
                          f"{direct.loss:.1%} lost): these rows measure the driver")  # fmt: skip
            finally:
                drivers.close()
    for calls, ratio, saturated in ratios:
        note = " (driver saturated: not comparable)" if saturated else ""
        print(f"{calls} calls: rtpengine CPU per packet / pbx CPU per packet = {ratio:.2f}{note}")


if __name__ == "__main__":
    main()
