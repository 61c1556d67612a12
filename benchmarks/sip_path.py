"""Python cost of one REGISTER through the whole server, in process, without sockets.

Starts a `PbxServer` (real store, registrar, authenticator, transaction layer) whose
UDP transport is replaced by a sink, then feeds pre-built datagrams straight into
`Endpoint._received`, the function `UdpTransport.datagram_received` calls:

- challenge path: a REGISTER without credentials -> new server transaction, parse,
  check_request, 401 with a fresh nonce, serialize;
- authenticated path: the REGISTER with MD5 digest (qop=auth) that answers it, in a
  new transaction of its own -> digest check, nonce-count, binding, 200, serialize.

`--backlog` registrations are run first so that the transaction layer holds as many
live transactions as a loaded server does (Timer J keeps each for 64*T1 = 32 s, so a
server at 3,000 registrations/s holds ~200,000); that is where the cyclic garbage
collector starts to cost. Then per-stage timings of the same messages.

    python benchmarks/sip_path.py
    python benchmarks/sip_path.py -n 20000 --backlog 200000

Not a test: it asserts only that the answers are the expected 401s and 200s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx.config import Settings  # noqa: E402
from pbx.registrar import RegistrarPolicy, apply_register  # noqa: E402
from pbx.server import PbxServer, tune_gc  # noqa: E402
from pbx.store import Store  # noqa: E402
from sip.digest import Challenge, make_credentials  # noqa: E402
from sip.endpoint import Endpoint  # noqa: E402
from sip.message import Request, make_response, parse_message  # noqa: E402
from sip.peer import Peer  # noqa: E402
from sip.validate import check_request  # noqa: E402

PASSWORD = "Bench-pass-2026"
REALM = "aiopbx"
URI = "sip:127.0.0.1:5080"
PEER = Peer("UDP", "127.0.0.1", 5099)
# What sipp's register_auth.xml scenario sends (tests/data/sipp/register_auth.xml).
TEMPLATE = (
    "REGISTER sip:127.0.0.1:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{run}-{i}-{cseq}\r\n"
    "From: <sip:{user}@127.0.0.1:5080>;tag={i}SIPpTag0{run}\r\n"
    "To: <sip:{user}@127.0.0.1:5080>\r\n"
    "Call-ID: {run}-{i}@127.0.0.1\r\n"
    "CSeq: {cseq} REGISTER\r\n"
    "Contact: <sip:{user}@127.0.0.1:5099>\r\n"
    "{auth}"
    "Max-Forwards: 70\r\n"
    "Expires: 3600\r\n"
    "User-Agent: sipp\r\n"
    "Content-Length: 0\r\n\r\n"
)


class GcTimer:
    """Time spent in the cyclic garbage collector, through `gc.callbacks`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            pause = time.perf_counter() - self._start
            self.seconds += pause
            self.longest = max(self.longest, pause)
            self.full += info["generation"] == 2

    def reset(self) -> tuple[float, float, int]:
        """(seconds, longest pause, full collections) since the last reset."""
        seen = (self.seconds, self.longest, self.full)
        self.seconds, self.longest, self.full = 0.0, 0.0, 0
        return seen


GC = GcTimer()


class Sink:
    """Stands in for the UDP transport: keeps what the server sends."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def send(self, data: bytes, peer: Peer) -> None:
        self.out.append(data)

    def close(self) -> None:
        pass


def user_of(i: int, users: int) -> str:
    return str(1001 + i % users)


def first_requests(run: str, n: int, users: int) -> list[bytes]:
    return [
        TEMPLATE.format(run=run, i=i, cseq=1, user=user_of(i, users), auth="").encode()
        for i in range(n)
    ]


def answers(run: str, challenges: list[bytes], users: int) -> list[bytes]:
    """The authenticated REGISTER for each 401, as sipp builds it."""
    out = []
    for i, raw in enumerate(challenges):
        response = parse_message(raw)
        value = response.headers.get("WWW-Authenticate")
        assert value is not None, raw[:200]
        user = user_of(i, users)
        creds = make_credentials(Challenge.parse(value), user, PASSWORD, "REGISTER", URI)
        auth = f"Authorization: {creds}\r\n"
        out.append(TEMPLATE.format(run=run, i=i, cseq=2, user=user, auth=auth).encode())
    return out


Timing = tuple[float, float, float, int]  # seconds, in the gc, longest gc pause, full gcs


def feed(endpoint: Endpoint, sink: Sink, messages: list[bytes]) -> tuple[Timing, list[bytes]]:
    """Time spent (and gc share), and what came out."""
    sink.out.clear()
    received = endpoint._received
    GC.reset()
    start = time.perf_counter()
    for data in messages:
        received(data, PEER)
    elapsed = time.perf_counter() - start
    return (elapsed, *GC.reset()), list(sink.out)


def expect(out: list[bytes], status: bytes, n: int) -> None:
    good = sum(1 for data in out if data.startswith(b"SIP/2.0 " + status))
    if good != n:
        bad = next((d for d in out if not d.startswith(b"SIP/2.0 " + status)), b"")
        raise SystemExit(f"expected {n} x {status.decode()}, got {good}: {bad[:120]!r}")


def registrations(
    endpoint: Endpoint, sink: Sink, run: str, n: int, users: int
) -> tuple[Timing, Timing]:
    """Run n full registrations; timings of the challenge path and the auth path."""
    first = first_requests(run, n, users)
    challenge, out = feed(endpoint, sink, first)
    expect(out, b"401", n)
    second = answers(run, out, users)
    auth, out = feed(endpoint, sink, second)
    expect(out, b"200", n)
    return challenge, auth


def per_call(fn: Callable[[], object], number: int) -> float:
    """Microseconds per call, best of three."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def stages(server: PbxServer, number: int) -> list[tuple[str, float]]:
    """Per-stage costs of the same messages, outside the endpoint."""
    assert server.registrar is not None and server._endpoint is not None
    auth = server.registrar.auth
    endpoint = server._endpoint
    first_raw = first_requests("stage", 1, 1)[0]
    first = parse_message(first_raw)
    assert isinstance(first, Request)
    outcome = auth.challenge(time.time())
    challenge = make_response(first, 401, headers=outcome.headers)
    second_raw = answers("stage", [bytes(challenge)], 1)[0]
    second = parse_message(second_raw)
    assert isinstance(second, Request)
    ok_headers = [("Contact", "<sip:1001@127.0.0.1:5099>;expires=3600"), ("Date", "x")]
    policy = RegistrarPolicy()
    methods = frozenset(endpoint._handlers)
    return [
        ("parse_message (no credentials)", per_call(lambda: parse_message(first_raw), number)),
        ("parse_message (with credentials)", per_call(lambda: parse_message(second_raw), number)),
        ("check_request", per_call(lambda: check_request(second, methods=methods), number)),
        ("Authenticator.challenge", per_call(lambda: auth.challenge(time.time()), number)),
        (
            "make_response 401 + bytes",
            per_call(lambda: bytes(make_response(first, 401, headers=outcome.headers)), number),
        ),
        (
            "apply_register",
            per_call(
                lambda: apply_register(
                    second, {}, aor="1001", source="UDP x", now=0.0, policy=policy
                ),
                number,
            ),
        ),
        (
            "make_response 200 + bytes",
            per_call(lambda: bytes(make_response(second, 200, headers=ok_headers)), number),
        ),
        (
            "hostile 60 KB datagram, 15,000 lines",
            per_call(lambda: endpoint._received(HOSTILE, HOSTILE_PEER), max(1, number // 10)),
        ),
    ]


#: Issue 10's one-datagram CPU attack: a 60 KB datagram of 15,000 tiny header lines
#: (before the limits, ~0.25-0.5 s of the loop each; now cut on a byte count).
HOSTILE = (
    b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKh\r\n"
    b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: h\r\nCSeq: 1 OPTIONS\r\n"
    + b"a:\r\n" * 15_000
    + b"\r\n"
)
HOSTILE_PEER = Peer("UDP", "127.0.0.9", 5060)


async def make_store(data_dir: Path, users: int) -> None:
    store = await Store.open(data_dir / "pbx.sqlite3")
    await store.settings.set_default("realm", REALM)
    for i in range(users):
        await store.users.add(user_of(i, users), PASSWORD, REALM)
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="registrations measured")
    parser.add_argument("--backlog", type=int, default=30000, help="registrations run first")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--number", type=int, default=3000, help="calls per stage timing")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's GC thresholds (no tune_gc)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pbx-path-") as tmp:
        data_dir = Path(tmp)
        await make_store(data_dir, args.users)
        server = PbxServer(Settings(data_dir=data_dir, sip_host="127.0.0.1", sip_port=0, tcp=False))
        await server.start()
        if not args.default_gc:
            tune_gc()  # as `pbx serve` does
        try:
            endpoint = server._endpoint
            assert endpoint is not None
            sink = Sink()
            endpoint._udp = sink  # type: ignore[assignment]
            if args.backlog:
                registrations(endpoint, sink, "warm", args.backlog, args.users)
                await asyncio.sleep(0.2)  # let the registrar flush what the backlog wrote
            challenge, auth = registrations(endpoint, sink, "run", args.n, args.users)
            live = len(endpoint.layer)
            rows = stages(server, args.number)
        finally:
            await server.stop()

    n = args.n
    print(f"{n} registrations, {live} live transactions at the end, {sys.version.split()[0]}")
    print(f"{'path':36}{'µs/msg':>10}{'of it gc':>10}{'full gcs':>10}{'gc pause ms':>13}")
    for name, (seconds, in_gc, longest, full) in (
        ("challenge (REGISTER -> 401)", challenge),
        ("authenticated (REGISTER -> 200)", auth),
    ):
        micros, gc_micros = seconds / n * 1e6, in_gc / n * 1e6
        print(f"{name:36}{micros:10.1f}{gc_micros:10.1f}{full:10}{longest * 1e3:13.1f}")
    total = challenge[0] + auth[0]
    print(f"{'mean per message':36}{total / (2 * n) * 1e6:10.1f}")
    print(f"{'registrations/s (Python only)':36}{n / total:10.0f}")
    print()
    print(f"{'stage':36}{'µs/call':>10}")
    for name, micros in rows:
        print(f"{name:36}{micros:10.1f}")


if __name__ == "__main__":
    asyncio.run(main())
