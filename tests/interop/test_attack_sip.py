"""Issue 10's SIP attacks against a real `pbx serve` process on loopback.

The attacker sends from its own loopback addresses (127.0.0.2 ...), so that bans and
per-address caps hit it and not the legitimate client on 127.0.0.1. Every wait is for
an answer, with a bound; counting "exactly one response" uses a fixed receive window
well past the retransmission points of Timer G (T1 = 0.5 s: 0.5, 1.5, 3.5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sip.digest import Challenge, make_credentials
from sip.message import Response, parse_message
from tests.interop.peers import (
    ROOT,
    PbxProcess,
    add_users,
    free_port,
    pbx_cli,
    running_pbx,
    wait_for,
)
from tests.interop.sipclient import SipClient

PASSWORD = "Xk3-secret-pass"
MB = 1024 * 1024


def _rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def _register(
    port: int, local: tuple[str, int], n: int, *, auth: str = "", transport: str = "UDP"
) -> bytes:
    host = f"127.0.0.1:{port}"
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};rport"
        f";branch=z9hG4bK{n}x{secrets.token_hex(4)}",
        "Max-Forwards: 70",
        f"From: <sip:1001@{host}>;tag=a{n}",
        f"To: <sip:1001@{host}>",
        f"Call-ID: flood{n}-{local[1]}",
        f"CSeq: {n + 1} REGISTER",
        f"Contact: <sip:1001@{local[0]}:{local[1]}>",
        "Expires: 600",
        *([f"Authorization: {auth}"] if auth else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _options(port: int, local: tuple[str, int], n: int) -> bytes:
    host = f"127.0.0.1:{port}"
    return (
        f"OPTIONS sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};rport;branch=z9hG4bKp{n}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{host}>;tag=p\r\nTo: <sip:{host}>\r\n"
        f"Call-ID: probe{n}\r\nCSeq: {n + 1} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _receive(sock: socket.socket, timeout: float) -> Response | None:
    sock.settimeout(timeout)
    try:
        data = sock.recv(65_535)
    except TimeoutError:
        return None
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def _challenge(response: Response) -> Challenge:
    header = response.headers.get("WWW-Authenticate") or response.headers.get("Proxy-Authenticate")
    assert header is not None
    return Challenge.parse(header)


class _Prober:
    """OPTIONS from 127.0.0.1: its answer shows the server has handled all sent before."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = _udp("127.0.0.1")
        self.n = 0

    def sync(self) -> None:
        self.n += 1
        self.sock.sendto(
            _options(self.port, self.sock.getsockname(), self.n), ("127.0.0.1", self.port)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = _receive(self.sock, 30)
            assert answer is not None, "the server stopped answering"
            if answer.call_id == f"probe{self.n}":
                return
        pytest.fail("no answer to the probe")


# -- attack 1: a banned source's flood costs no memory -------------------------------------


def test_banned_wrong_password_flood_does_not_grow_memory(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD})
    with running_pbx(tmp_path, None, "--ban-after", "3") as pbx:
        assert pbx.proc is not None
        port = pbx.port
        attacker = _udp("127.0.0.2")
        local = attacker.getsockname()
        prober = _Prober(port)
        try:
            attacker.sendto(_register(port, local, 0), ("127.0.0.1", port))
            first = _receive(attacker, 10)
            assert first is not None and first.status == 401
            creds = make_credentials(
                _challenge(first), "1001", "wrong-password", "REGISTER", f"sip:127.0.0.1:{port}"
            )
            # Fail until the switch stops answering this source (the ban, whatever its
            # policy: the address, or this user from this address).
            for n in range(1, 40):
                attacker.sendto(_register(port, local, n, auth=str(creds)), ("127.0.0.1", port))
                if _receive(attacker, 1.0) is None:
                    break
            else:
                pytest.fail("the wrong-password source was never ignored")

            def flood(start: int, count: int) -> None:
                for n in range(start, start + count):
                    attacker.sendto(_register(port, local, n, auth=str(creds)), ("127.0.0.1", port))
                    if n % 500 == 499:
                        prober.sync()
                prober.sync()

            flood(1_000, 5_000)  # warm-up: the allocator's pools, caches, code paths
            before = _rss(pbx.proc.pid)
            flood(10_000, 20_000)
            after_one = _rss(pbx.proc.pid)
            flood(40_000, 20_000)
            after_two = _rss(pbx.proc.pid)
            attacker.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                pytest.fail(f"the banned source got an answer: {attacker.recv(65_535)[:60]!r}")
        finally:
            attacker.close()
            prober.sock.close()
        assert "Traceback" not in pbx.log()
    print(f"RSS MB: before {before / MB:.1f}, +20k {after_one / MB:.1f}, +40k {after_two / MB:.1f}")
    assert after_one - before < 10 * MB, (before, after_one)
    assert after_two - before < 10 * MB, (before, after_one, after_two)  # it settles


# -- attack 2: one-datagram CPU DoS ---------------------------------------------------------


def _hostile(port: int, local: tuple[str, int]) -> bytes:
    head = _options(port, local, 0).split(b"Content-Length")[0]
    return head + b"a:\r\n" * 15_000 + b"\r\n"


def test_register_succeeds_while_hostile_datagrams_arrive(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD})
    with running_pbx(tmp_path) as pbx:
        sent = asyncio.run(_register_under_attack(pbx))
        log = pbx.log()
    assert sent == 30
    assert "Traceback" not in log
    # One log line per bad packet no longer: at most the burst of the rate limiter.
    assert 1 <= log.count("unparseable message") <= 10


async def _register_under_attack(pbx: PbxProcess) -> int:
    """Register 1001 while 60 KB datagrams of 15,000 lines arrive at 6/s; returns how
    many were sent."""
    hostile = _udp("127.0.0.3")
    hostile.setblocking(False)
    data = _hostile(pbx.port, hostile.getsockname())
    assert len(data) > 60_000
    sent = 0
    stop = asyncio.Event()

    async def attack() -> None:
        nonlocal sent
        while sent < 30 and not stop.is_set():
            hostile.sendto(data, ("127.0.0.1", pbx.port))
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / 6)  # 6 datagrams/s

    task = asyncio.create_task(attack())
    try:
        async with SipClient(pbx.port) as ua:
            await asyncio.wait_for(_wait_sent(lambda: sent, 6), 10)
            first = await ua.exchange(ua.register("1001"), timeout=10)
            assert first.status == 401
            creds = ua.answer(ua.challenge(first, "MD5"), "1001", PASSWORD)
            ok = await ua.exchange(ua.register("1001", authorization=str(creds)), timeout=10)
            assert ok.status == 200
            assert ok.to.tag is not None  # RFC 3261 §8.2.6.2
            await asyncio.wait_for(_wait_sent(lambda: sent, 30), 30)
    finally:
        stop.set()
        await task
        hostile.close()
    return sent


async def _wait_sent(count: Callable[[], int], at_least: int) -> None:
    while count() < at_least:
        await asyncio.sleep(0.05)


# -- attack 11: 401 amplification -------------------------------------------------------------


def test_spoofed_invite_costs_exactly_one_response(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD, "1002": PASSWORD + "2"})
    with running_pbx(tmp_path) as pbx:
        sock = _udp("127.0.0.1")
        try:
            local = sock.getsockname()
            host = f"127.0.0.1:{pbx.port}"
            invite = (
                f"INVITE sip:1002@{host} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bKspoof1\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:1001@{host}>;tag=s1\r\nTo: <sip:1002@{host}>\r\n"
                "Call-ID: spoofed-invite-1\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:1001@{local[0]}:{local[1]}>\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            sock.sendto(invite, ("127.0.0.1", pbx.port))
            # A bounded receive window past Timer G's 0.5, 1.5 and 3.5 s points.
            got: list[Response] = []
            end = time.monotonic() + 4.5
            while (left := end - time.monotonic()) > 0:
                answer = _receive(sock, left)
                if answer is None:
                    break
                got.append(answer)
        finally:
            sock.close()
        log = pbx.log()
    assert [r.status for r in got] in ([401], [407])  # no 100 Trying, no retransmission
    assert got[0].to.tag is not None
    assert log.count("spoofed-invite-1") <= 1


# -- attack 8: TCP exhaustion under the common 1,024-descriptor limit ------------------------------


@contextlib.contextmanager
def _pbx_with_fd_limit(data_dir: Path, limit: int) -> Iterator[PbxProcess]:
    """`pbx serve` in a child whose RLIMIT_NOFILE is `limit` (as `ulimit -n`)."""
    server = PbxProcess(data_dir, free_port())
    control = data_dir / "control.json"
    with contextlib.suppress(FileNotFoundError):
        control.unlink()

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with server.log_path.open("ab") as log:
        server.proc = subprocess.Popen(
            [
                sys.executable, "-m", "cli", "serve", "--data-dir", str(data_dir),
                "--host", "127.0.0.1", "--port", str(server.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=lower,
        )  # fmt: skip
    try:
        wait_for(
            lambda: control.exists() or server.proc is None or server.proc.poll() is not None,
            20,
            "pbx serve to start",
        )
        assert server.proc.poll() is None, server.log()
        yield server
    finally:
        server.stop()


def _tcp_exchange(sock: socket.socket, data: bytes) -> Response:
    sock.sendall(data)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65_536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65_536)
    message = parse_message(head + b"\r\n\r\n" + rest[:length])
    assert isinstance(message, Response)
    return message


def test_tcp_register_served_with_1100_idle_connections_under_ulimit_1024(
    tmp_path: Path,
) -> None:
    add_users(tmp_path, {"1001": PASSWORD})
    idle: list[socket.socket] = []
    with _pbx_with_fd_limit(tmp_path, 1024) as pbx:
        try:
            # 1,100 idle connections from eleven addresses, 100 each.
            for n in range(1100):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((f"127.0.0.{2 + n // 100}", 0))
                sock.settimeout(10)
                with contextlib.suppress(OSError):
                    sock.connect(("127.0.0.1", pbx.port))
                idle.append(sock)
            with socket.create_connection(("127.0.0.1", pbx.port), timeout=10) as sock:
                local = sock.getsockname()
                first = _tcp_exchange(sock, _register(pbx.port, local, 1, transport="TCP"))
                assert first.status == 401
                creds = make_credentials(
                    _challenge(first), "1001", PASSWORD, "REGISTER", f"sip:127.0.0.1:{pbx.port}"
                )
                ok = _tcp_exchange(
                    sock, _register(pbx.port, local, 2, auth=str(creds), transport="TCP")
                )
                assert ok.status == 200
            status = pbx_cli(tmp_path, "status")
            assert status.returncode == 0, status.stderr
            assert "1001" in status.stdout
        finally:
            for sock in idle:
                sock.close()
        log = pbx.log()
    assert "Too many open files" not in log
    assert "Traceback" not in log


# -- issue 9 §8: 100 Trying at once for an INVITE the switch takes on ------------------------------


async def _invite_with_credentials(port: int) -> list[Response]:
    async with SipClient(port) as ua:
        first = await ua.exchange(ua.invite("1001", "1002", cseq=1), timeout=10)
        assert first.status in (401, 407) and first.to.tag is not None
        ua.send(ua.ack_for(ua.invite("1001", "1002", cseq=1), first))
        header = "Authorization" if first.status == 401 else "Proxy-Authorization"
        creds = make_credentials(
            _challenge(first), "1001", PASSWORD, "INVITE", f"sip:1002@127.0.0.1:{port}"
        )
        invite = ua.invite("1001", "1002", cseq=2).replace(
            b"Content-Length:", f"{header}: {creds}\r\nContent-Length:".encode(), 1
        )
        ua.send(invite)
        got: list[Response] = []
        while not got or got[-1].status < 200:
            raw = await ua.receive(10)
            assert raw is not None, f"no final response after {[r.status for r in got]}"
            message = parse_message(raw)
            if isinstance(message, Response) and message.cseq.seq == 2:
                got.append(message)
        return got


def test_authenticated_invite_gets_100_trying_first(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD, "1002": PASSWORD + "2"})
    with running_pbx(tmp_path) as pbx:
        got = asyncio.run(_invite_with_credentials(pbx.port))
    # 1002 is not registered: the switch works on it, then refuses it.
    assert got[0].status == 100 and got[0].to.tag is None
    assert got[-1].status >= 400 and got[-1].to.tag is not None
