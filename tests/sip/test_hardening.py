"""What hostile input may cost the SIP layer (issue 10: attacks 1, 2, 8, 11 and the table).

The pure parts run on a fake clock; the endpoint and TCP parts on real loopback sockets
in this process, with small limits so that every wait is short and bounded.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import sip.message
from sip.endpoint import DROP, Endpoint, Stateless
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import (
    MAX_HEADER_LINES,
    Request,
    Response,
    make_response,
    parse_message,
)
from sip.peer import Peer
from sip.ratelimit import RateLimitedLog
from sip.transaction import Timers, TransactionLayer
from sip.transport import TcpLimits, UdpTransport
from sip.validate import check_request

UDP = Peer("UDP", "192.0.2.1", 5060)


def _request(
    method: str = "REGISTER",
    *,
    n: int = 1,
    uri: str = "sip:example.com",
    extra: str = "",
    host: str = "192.0.2.1:5060",
    transport: str = "UDP",
) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host};rport;branch=z9hG4bK{n}x\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:1001@example.com>;tag=f{n}\r\n"
        "To: <sip:1001@example.com>\r\n"
        f"Call-ID: c{n}@x\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _hostile(lines: int = 15_000) -> bytes:
    """One ~60 KB datagram of tiny header lines (the issue's one-packet CPU attack)."""
    head = _request(extra="").split(b"Content-Length")[0]
    return head + b"a:\r\n" * lines + b"\r\n"


# -- parsing: linear, limits before work --------------------------------------------------


def test_hostile_datagram_is_cut_before_any_header_is_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _hostile()
    assert 59_000 < len(data) <= 65_535
    calls: list[int] = []
    real = sip.message._HEADER_LINE_RE

    class Spy:
        def findall(self, text: str, pos: int = 0) -> list[tuple[str, str]]:
            calls.append(pos)
            return real.findall(text, pos)

    monkeypatch.setattr(sip.message, "_HEADER_LINE_RE", Spy())
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert (info.value.status, info.value.reason) == (400, "too many header lines")
    assert calls == []  # bounded work: the line count is taken on the raw octets
    parse_message(_request())  # a normal message still goes through the splitter
    assert len(calls) == 1


def test_repeated_headers_up_to_the_limit_parse_and_index() -> None:
    base = _request().count(b"\r\n") - 2  # header lines of the plain request
    room = MAX_HEADER_LINES - base
    data = _request(extra="X-A: v\r\n" * room)
    message = parse_message(data)
    assert message.headers.values("X-A") == ("v",) * room
    with pytest.raises(SipParseError, match="too many header lines"):
        parse_message(_request(extra="X-A: v\r\n" * (room + 1)))
    # Headers built from pairs index the same way (lists while filling, then tuples).
    many = Headers([("Route", f"<sip:{i}@h>") for i in range(5000)])
    assert len(many.values("route")) == 5000 and many.count("Route") == 5000


def test_oversized_message_is_513_before_parsing() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(_request(extra="X: " + "a" * 70_000 + "\r\n"))
    assert info.value.status == 513


# -- every response but 100 carries a To tag ------------------------------------------------


def test_make_response_adds_a_to_tag_except_to_100() -> None:
    request = parse_message(_request())
    assert isinstance(request, Request)
    tags = {make_response(request, status).to.tag for status in (180, 200, 401, 500)}
    assert None not in tags and len(tags) == 4
    assert make_response(request, 100).to.tag is None
    assert make_response(request, 200, to_tag=None).to.tag is None  # explicitly none
    assert make_response(request, 200, to_tag="mine").to.tag == "mine"


# -- sips over a transport that is not TLS ----------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "secure", "status"),
    [
        ("sips:1001@example.com", False, 416),
        ("SIPS:1001@example.com", False, 416),
        ("sips:1001@example.com", True, None),
        ("sip:1001@example.com", False, None),
    ],
)
def test_sips_request_uri_needs_tls(uri: str, secure: bool, status: int | None) -> None:
    request = parse_message(_request("OPTIONS", uri=uri))
    assert isinstance(request, Request)
    rejection = check_request(request, methods=frozenset({"OPTIONS"}), secure=secure)
    assert (rejection.status if rejection else None) == status


# -- the transaction layer keeps nothing that is not answered -----------------------------------


def test_dropped_requests_leave_no_transaction() -> None:
    layer = TransactionLayer(Timers(t1=0.5))
    for n in range(20_000):
        request = parse_message(_request(n=n))
        assert isinstance(request, Request)
        [deliver] = layer.receive(request, UDP, n * 0.0001)
        tx = deliver.transaction  # type: ignore[union-attr]
        layer.discard(tx)  # type: ignore[arg-type]
    assert len(layer) == 0
    assert layer.next_deadline() is None  # stale heap entries are skipped


def test_unanswered_transactions_end_on_their_own() -> None:
    timers = Timers(t1=0.5, c=200.0)
    layer = TransactionLayer(timers)
    for n in range(1000):
        request = parse_message(_request("REGISTER" if n % 2 else "INVITE", n=n))
        assert isinstance(request, Request)
        layer.receive(request, UDP, 0.0)
    assert len(layer) == 1000
    layer.on_timer(timers.trying)  # INVITEs send their 100 Trying, nothing ends
    assert len(layer) == 1000
    # Non-INVITE: swept between 64*T1 and 128*T1, nothing sent.
    assert layer.next_deadline() == 64 * timers.t1
    assert layer.on_timer(64 * timers.t1) == []
    assert len(layer) == 1000  # the first sweep only starts a new generation
    late = parse_message(_request(n=5000))
    assert isinstance(late, Request)
    layer.receive(late, UDP, 40.0)  # joins the generation after
    assert layer.next_deadline() == 128 * timers.t1
    assert layer.on_timer(128 * timers.t1) == []
    assert len(layer) == 501  # 500 INVITEs and the late REGISTER
    assert layer.on_timer(192 * timers.t1) == []
    assert len(layer) == 500
    assert layer.on_timer(timers.c) == []  # INVITE in Proceeding: Timer C
    assert len(layer) == 0 and layer.next_deadline() is None


def test_answered_transactions_leave_the_sweep() -> None:
    layer = TransactionLayer(Timers(t1=0.5))
    for n in range(100):
        request = parse_message(_request(n=n))
        assert isinstance(request, Request)
        layer.receive(request, Peer("TCP", "192.0.2.1", 5060), 0.0)
        layer.send_response(make_response(request, 200), 0.0)
    assert len(layer) == 0 and layer.next_deadline() is None


def test_a_provisional_restarts_timer_c() -> None:
    timers = Timers(c=200.0)
    layer = TransactionLayer(timers)
    invite = parse_message(_request("INVITE"))
    assert isinstance(invite, Request)
    layer.receive(invite, UDP, 0.0)
    layer.send_response(make_response(invite, 180, to_tag="t"), 150.0)
    layer.on_timer(200.0)
    assert len(layer) == 1
    layer.on_timer(350.0)
    assert len(layer) == 0


# -- rate-limited logging --------------------------------------------------------------------------


def test_rate_limited_log_counts_what_it_suppresses(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("tests.ratelimit")
    limited = RateLimitedLog(logger, logging.INFO, burst=3, interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tests.ratelimit"):
        results = [limited("bad packet %d", n) for n in range(1000)]
        now[0] = 10.0
        limited("bad packet %d", 1000)
    assert results.count(True) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bad packet 0",
        "bad packet 1",
        "bad packet 2",
        "bad packet 1000 (997 similar lines suppressed)",
    ]


# -- the endpoint: DROP, Stateless, 100 Trying, on real UDP ----------------------------------------


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)


async def _client() -> tuple[asyncio.DatagramTransport, _Udp, int]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Udp, local_addr=("127.0.0.1", 0))
    return transport, proto, transport.get_extra_info("sockname")[1]


async def _collect(proto: _Udp, window: float) -> list[Response]:
    """Every response that arrives within `window` seconds (a bounded receive window)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + window
    got: list[Response] = []
    while (left := end - loop.time()) > 0:
        try:
            raw = await asyncio.wait_for(proto.queue.get(), left)
        except TimeoutError:
            break
        message = parse_message(raw)
        assert isinstance(message, Response)
        got.append(message)
    return got


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, int]]:
    # Fast timers: Timer G would retransmit at 20, 60, 140 ... ms; 100 Trying after 10 s.
    ep = Endpoint(timers=Timers(t1=0.02, t2=0.16, trying=10.0))
    port = await ep.listen("127.0.0.1", 0)
    try:
        yield ep, port
    finally:
        await ep.close()


async def test_dropped_flood_keeps_no_state(endpoint: tuple[Endpoint, int]) -> None:
    ep, port = endpoint
    ep.route("REGISTER", lambda request, peer: DROP)
    transport, proto, local = await _client()
    try:
        for n in range(2000):
            transport.sendto(_request(n=n, host=f"127.0.0.1:{local}"), ("127.0.0.1", port))
            if n % 200 == 199:
                # UDP on loopback keeps order: the OPTIONS answer means all were handled.
                transport.sendto(
                    _request("OPTIONS", n=100_000 + n, host=f"127.0.0.1:{local}"),
                    ("127.0.0.1", port),
                )
                answer = parse_message(await asyncio.wait_for(proto.queue.get(), 10))
                assert isinstance(answer, Response) and answer.cseq.method == "OPTIONS"
        assert len(ep.layer) == 10  # the OPTIONS transactions in Completed; no REGISTER
        assert proto.queue.empty()
    finally:
        transport.close()


async def test_stateless_challenge_is_sent_exactly_once(endpoint: tuple[Endpoint, int]) -> None:
    ep, port = endpoint

    def challenge(request: Request, peer: Peer) -> Stateless:
        return Stateless(make_response(request, 401, headers=[("WWW-Authenticate", "x")]))

    ep.route("INVITE", challenge)
    transport, proto, local = await _client()
    try:
        transport.sendto(_request("INVITE", host=f"127.0.0.1:{local}"), ("127.0.0.1", port))
        # 1.5 s is Timer G's 20, 60, 140, 300, 460 ... ms points many times over.
        got = await _collect(proto, 1.5)
        assert [r.status for r in got] == [401]
        assert got[0].to.tag is not None
        assert len(ep.layer) == 0
    finally:
        transport.close()


async def test_invite_taken_on_gets_100_trying_at_once(endpoint: tuple[Endpoint, int]) -> None:
    ep, port = endpoint
    later: list[Request] = []
    ep.route("INVITE", lambda request, peer: later.append(request))
    transport, proto, local = await _client()
    try:
        transport.sendto(_request("INVITE", host=f"127.0.0.1:{local}"), ("127.0.0.1", port))
        # The transaction's own 100 would come only after `trying` (10 s here).
        trying = parse_message(await asyncio.wait_for(proto.queue.get(), 5))
        assert isinstance(trying, Response) and trying.status == 100
        assert trying.to.tag is None
        ep.respond(make_response(later[0], 486, to_tag="x"))
        busy = parse_message(await asyncio.wait_for(proto.queue.get(), 5))
        assert isinstance(busy, Response) and busy.status == 486
    finally:
        transport.close()


async def test_hostile_datagrams_get_400_and_bounded_logging(
    endpoint: tuple[Endpoint, int], caplog: pytest.LogCaptureFixture
) -> None:
    _, port = endpoint
    transport, proto, local = await _client()
    try:
        hostile = _hostile().replace(b"192.0.2.1:5060", f"127.0.0.1:{local}".encode())
        with caplog.at_level(logging.INFO, logger="sip.endpoint"):
            for _ in range(30):
                transport.sendto(hostile, ("127.0.0.1", port))
            got = [await asyncio.wait_for(proto.queue.get(), 10) for _ in range(30)]
        assert all(g.startswith(b"SIP/2.0 400 too many header lines\r\n") for g in got)
        assert all(re.search(rb"\r\nTo: <sip:1001@example.com>;tag=\w+\r\n", g) for g in got)
        logged = [r for r in caplog.records if "unparseable" in r.getMessage()]
        assert len(logged) == 10
    finally:
        transport.close()


# -- TCP: caps, timeouts, back-pressure -----------------------------------------------------------


async def _tcp_endpoint(limits: TcpLimits) -> tuple[Endpoint, int]:
    ep = Endpoint(tcp_limits=limits)
    port = await ep.listen("127.0.0.1", 0, udp=False)
    return ep, port


async def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def _connections(ep: Endpoint) -> int:
    assert ep._tcp is not None
    return len(ep._tcp)


async def test_tcp_per_address_cap_and_first_message_timeout() -> None:
    ep, port = await _tcp_endpoint(TcpLimits(max_per_address=5, first_message_timeout=0.5))
    streams = []
    try:
        for _ in range(12):
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        await _wait(lambda: _connections(ep) == 5)
        # A connection that speaks SIP is served and outlives the silent ones.
        reader, writer = streams[0]
        writer.write(_request("OPTIONS", transport="TCP"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"SIP/2.0 200 ")
        await _wait(lambda: _connections(ep) == 1)  # the four silent ones timed out
    finally:
        for _, writer in streams:
            writer.close()
        await ep.close()


async def test_tcp_table_full_evicts_the_oldest_silent_connection() -> None:
    ep, port = await _tcp_endpoint(TcpLimits(max_connections=4))
    streams = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        streams.append((reader, writer))
        writer.write(_request("OPTIONS", transport="TCP"))
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # proven
        for _ in range(10):
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        await _wait(lambda: _connections(ep) == 4)
        writer.write(_request("OPTIONS", n=2, transport="TCP"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"SIP/2.0 200 ")  # the SIP-speaking one was kept
    finally:
        for _, w in streams:
            w.close()
        await ep.close()


async def test_tcp_peer_that_never_reads_is_dropped_with_bounded_buffer() -> None:
    limit = 128 * 1024
    ep, port = await _tcp_endpoint(TcpLimits(max_write_buffer=limit, drain_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    assert ep._tcp is not None
    tcp = ep._tcp
    most = 0
    sent = 0
    try:
        # Up to ~40 MB of replies asked for; the server must give up long before.
        for n in range(200_000):
            try:
                await asyncio.wait_for(
                    loop.sock_sendall(sock, _request("OPTIONS", n=n, transport="TCP")), 2
                )
            except (TimeoutError, ConnectionError):
                break  # the server stopped reading us, then dropped us
            sent += 1
            for conn in tcp._connections.values():
                most = max(most, conn.writer.transport.get_write_buffer_size())
        await _wait(lambda: len(tcp) == 0)
        assert most <= limit + 1024
        assert sent < 200_000
    finally:
        sock.close()
        await ep.close()


async def test_port_0_takes_another_port_when_tcp_has_the_udp_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Port 0 gives a free UDP port whose number may be taken on TCP: listen() then
    picks again instead of failing; a fixed port taken on TCP still fails."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real_bind = UdpTransport.bind
    asked: list[int] = []

    async def first_on_the_busy_number(host: str, port: int, *rest: Any) -> UdpTransport:
        asked.append(port)
        # The kernel's first pick "happens" to be the number TCP already uses.
        return await real_bind(host, busy if len(asked) == 1 else port, *rest)

    monkeypatch.setattr(UdpTransport, "bind", staticmethod(first_on_the_busy_number))
    try:
        ep = Endpoint()
        try:
            port = await ep.listen("127.0.0.1", 0)
            assert port != busy and asked == [0, 0]
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        finally:
            await ep.close()
        fixed = Endpoint()
        with pytest.raises(OSError):
            await fixed.listen("127.0.0.1", busy)
        await fixed.close()
    finally:
        taken.close()
