"""SIP transports over asyncio: UDP datagrams and TCP streams (RFC 3261 §18).

This is the only module of `sip/` that touches sockets. Each transport turns
what arrives into `(bytes, Peer)` for one callback and sends bytes to a Peer.
Framing of TCP streams is the pure `StreamFramer`; CRLF keep-alive pings
(RFC 5626 §3.5.1) are answered with a single CRLF pong here.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sip.errors import SipParseError, TransportError
from sip.message import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer
from sip.peer import Peer
from sip.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

#: Called with one whole message (datagram or framed stream message) and where it came from.
OnMessage = Callable[[bytes, Peer], None]
#: Called when sending to a peer failed (ICMP unreachable, connection refused or reset).
OnError = Callable[[Peer], None]

MAX_DATAGRAM = 65_535
#: Receive buffer asked for UDP sockets (Linux caps it at net.core.rmem_max, 4 MiB by
#: default; the default buffer is 208 KiB). Each queued datagram costs the kernel a few
#: KiB, so the default holds only ~100 requests: a burst of a thousand phones
#: re-registering, or a few milliseconds of garbage collection, and the rest is dropped
#: and comes back as retransmissions 500 ms later, on top of new traffic.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


class UdpTransport(asyncio.DatagramProtocol):
    """One bound UDP socket. `datagram_received` never awaits."""

    def __init__(self, on_message: OnMessage, on_error: OnError) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)

    @classmethod
    async def bind(
        cls, host: str, port: int, on_message: OnMessage, on_error: OnError
    ) -> UdpTransport:
        """Bind a UDP socket. Raises: OSError if the address is taken."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(on_message, on_error), local_addr=(host, port)
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            except OSError as exc:
                log.warning("UDP: cannot enlarge the receive buffer: %s", exc)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if data in (b"\r\n\r\n", b"\r\n", b"\0\0\0\0"):
            return  # NAT keep-alives (RFC 5626 §3.5.1 / common phone behaviour)
        self._on_message(data, Peer("UDP", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable ...) of *some* earlier sendto(): an unconnected
        # socket is not told which destination it was for, and blaming the last one
        # would fail a healthy transaction under load. The transaction's timers decide.
        log.debug("UDP error %s (destination unknown; left to the transaction timers)", exc)

    def send(self, data: bytes, peer: Peer) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError("UDP transport is closed")
        self._transport.sendto(data, (peer.host, peer.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """What one TCP peer may cost (the connection-exhaustion defences).

    - `first_message_timeout`: a new connection must deliver one whole SIP message
      within this (keep-alive pings do not count): idle or trickling connections of a
      peer that never speaks SIP are closed (a header timeout, as Kamailio's
      tcp_connection_lifetime for unused connections or a web server's).
    - `message_timeout`: once a message has begun, the rest must come within this.
    - `idle_timeout`: a connection that has carried SIP and then stays silent (no
      message, no ping) this long is closed; longer than the longest registration, so a
      registered phone behind NAT stays reachable over its own connection.
    - `max_per_address`: connections at once from one source address; more are closed
      at once on accept.
    - `max_connections`: connections at once in all; None means half the process's
      file descriptor limit (the rest is for RTP, the database, prompts). Over it, the
      oldest connection that has not yet delivered a message is dropped for the new one.
    - `max_write_buffer`: octets queued to a peer that does not read; over it the
      connection is dropped. Reading from a peer pauses while its replies are queued
      past the transport's high-water mark, for at most `drain_timeout`, then the
      connection is dropped.
    - `max_message`: the largest framed message (513 and close beyond, RFC 3261 §18.3).
    """

    first_message_timeout: float = 10.0
    message_timeout: float = 30.0
    idle_timeout: float = 3900.0
    max_per_address: int = 100
    max_connections: int | None = None
    max_write_buffer: int = 1 << 20
    drain_timeout: float = 10.0
    max_message: int = 65_536

    def connection_cap(self) -> int:
        """`max_connections`, or half the soft RLIMIT_NOFILE when it is None."""
        if self.max_connections is not None:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 10_000
        return max(16, soft // 2)


_log_refused = RateLimitedLog(log, logging.WARNING)


class _TcpConnection:
    """One TCP connection: reads framed messages, writes whole messages."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        on_message: OnMessage,
        limits: TcpLimits,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self._on_message = on_message
        self._limits = limits
        self._framer = StreamFramer(limits.max_message)
        #: Whether the peer has sent one whole SIP message (else it may be evicted).
        self.proven = False

    def send(self, data: bytes) -> None:
        """Queue `data`; a peer that lets too much pile up is dropped.

        Raises: TransportError when the connection is closing or was just dropped.
        """
        writer = self.writer
        if writer.is_closing():
            raise TransportError(f"TCP connection to {self.peer} is closing")
        writer.write(data)
        queued = writer.transport.get_write_buffer_size()
        if queued > self._limits.max_write_buffer:
            _log_refused("TCP %s: dropped, %d octets unread", self.peer, queued)
            self.abort()
            raise TransportError(f"TCP peer {self.peer} does not read")

    def abort(self) -> None:
        """Drop the connection now (no FIN handshake, queued data discarded)."""
        self.writer.transport.abort()

    async def serve(self) -> None:
        """Read until EOF, a framing error or a timeout; then close the connection."""
        limits = self._limits
        loop = asyncio.get_running_loop()
        opened = loop.time()
        started: float | None = None  # when the partial message in the framer began
        try:
            while True:
                if self.writer.transport.get_write_buffer_size() > 0:
                    # Back-pressure: a peer that does not read its replies is not read
                    # either, until they drain (bounded in time).
                    try:
                        async with asyncio.timeout(limits.drain_timeout):
                            await self.writer.drain()
                    except TimeoutError:
                        _log_refused("TCP %s: dropped, replies not read", self.peer)
                        self.abort()
                        return
                now = loop.time()
                if not self.proven:
                    deadline = opened + limits.first_message_timeout
                elif started is not None:
                    deadline = started + limits.message_timeout
                else:
                    deadline = now + limits.idle_timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await self.reader.read(65_536)
                except TimeoutError:
                    log.debug("TCP %s: closing after a timeout", self.peer)
                    return
                if not data:
                    return
                try:
                    items = self._framer.feed(data)
                except SipParseError as exc:
                    _log_refused("TCP %s: closing connection: %s", self.peer, exc.reason)
                    return
                for item in items:
                    if item is KEEPALIVE_PING:
                        self.writer.write(KEEPALIVE_PONG)  # RFC 5626 §3.5.1
                    else:
                        self.proven = True
                        self._on_message(item, self.peer)
                if self._framer.buffered == 0:
                    started = None
                elif started is None:
                    started = loop.time()
        except (ConnectionError, OSError) as exc:
            log.debug("TCP %s: %s", self.peer, exc)
        finally:
            self.writer.close()


class TcpTransport:
    """A listening TCP socket plus the connections made to and from it.

    Responses go back over the connection the request came in on (RFC 3261
    §18.2.2); a request to a peer with no connection opens one. `TcpLimits`
    bounds what each peer may hold.
    """

    def __init__(
        self, on_message: OnMessage, on_error: OnError, limits: TcpLimits | None = None
    ) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self.limits = limits or TcpLimits()
        self._cap = self.limits.connection_cap()
        self._server: asyncio.Server | None = None
        # Insertion order is age: the eviction of unproven connections takes the oldest.
        self._connections: dict[tuple[str, int], _TcpConnection] = {}
        self._per_address: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.local: tuple[str, int] = ("", 0)

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        on_message: OnMessage,
        on_error: OnError,
        limits: TcpLimits | None = None,
    ) -> TcpTransport:
        """Listen on host:port. Raises: OSError if the address is taken."""
        self = cls(on_message, on_error, limits)
        self._server = await asyncio.start_server(self._accepted, host, port)
        sockname = self._server.sockets[0].getsockname()
        self.local = (sockname[0], sockname[1])
        return self

    def __len__(self) -> int:
        """Open connections."""
        return len(self._connections)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        peer = Peer("TCP", str(addr[0]), int(addr[1]))
        if self._per_address.get(peer.host, 0) >= self.limits.max_per_address:
            _log_refused("TCP %s: refused, %s has too many connections", peer, peer.host)
            writer.transport.abort()
            return
        if len(self._connections) >= self._cap and not self._evict_unproven():
            _log_refused("TCP %s: refused, %d connections open", peer, len(self._connections))
            writer.transport.abort()
            return
        await self._run(_TcpConnection(reader, writer, peer, self._on_message, self.limits))

    def _evict_unproven(self) -> bool:
        """Drop the oldest connection that has not delivered a message; False if none."""
        for conn in self._connections.values():
            if not conn.proven and not conn.writer.is_closing():
                _log_refused("TCP %s: dropped for a newer connection (table full)", conn.peer)
                conn.abort()
                return True
        return False

    async def _run(self, conn: _TcpConnection) -> None:
        key = (conn.peer.host, conn.peer.port)
        host = conn.peer.host
        self._connections[key] = conn
        self._per_address[host] = self._per_address.get(host, 0) + 1
        try:
            await conn.serve()
        finally:
            if self._connections.get(key) is conn:
                del self._connections[key]
            left = self._per_address.get(host, 1) - 1
            if left > 0:
                self._per_address[host] = left
            else:
                self._per_address.pop(host, None)

    def send(self, data: bytes, peer: Peer) -> None:
        """Send over the peer's connection, or open one.

        Raises: TransportError when the peer's connection is dropped for not reading.
        """
        conn = self._connections.get((peer.host, peer.port))
        if conn is not None and not conn.writer.is_closing():
            conn.send(data)
            return
        # No connection yet: open one (RFC 3261 §18.1.1) and send once it is up.
        task = asyncio.get_running_loop().create_task(self._connect_and_send(data, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        try:
            reader, writer = await asyncio.open_connection(peer.host, peer.port)
        except OSError as exc:
            log.info("TCP connect to %s failed: %s", peer, exc)
            self._on_error(peer)
            return
        conn = _TcpConnection(reader, writer, peer, self._on_message, self.limits)
        conn.proven = True  # we opened it: it is ours, not a peer's spare
        writer.write(data)
        await self._run(conn)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections.values()):
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
