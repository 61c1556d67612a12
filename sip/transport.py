"""SIP transports over asyncio: UDP datagrams and TCP streams (RFC 3261 §18).

This is the only module of `sip/` that touches sockets. Each transport turns
what arrives into `(bytes, Peer)` for one callback and sends bytes to a Peer.
Framing of TCP streams is the pure `StreamFramer`; CRLF keep-alive pings
(RFC 5626 §3.5.1) are answered with a single CRLF pong here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from sip.errors import SipParseError, TransportError
from sip.message import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer
from sip.peer import Peer

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


class _TcpConnection:
    """One TCP connection: reads framed messages, writes whole messages."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        on_message: OnMessage,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self._on_message = on_message
        self._framer = StreamFramer()

    async def serve(self) -> None:
        """Read until EOF or a framing error; a framing error closes the connection."""
        try:
            while True:
                data = await self.reader.read(65_536)
                if not data:
                    return
                try:
                    items = self._framer.feed(data)
                except SipParseError as exc:
                    log.warning("TCP %s: closing connection: %s", self.peer, exc.reason)
                    return
                for item in items:
                    if item == KEEPALIVE_PING:
                        self.writer.write(KEEPALIVE_PONG)  # RFC 5626 §3.5.1
                    elif item != KEEPALIVE_PONG:
                        self._on_message(item, self.peer)
        except (ConnectionError, OSError) as exc:
            log.debug("TCP %s: %s", self.peer, exc)
        finally:
            self.writer.close()


class TcpTransport:
    """A listening TCP socket plus the connections made to and from it.

    Responses go back over the connection the request came in on (RFC 3261
    §18.2.2); a request to a peer with no connection opens one.
    """

    def __init__(self, on_message: OnMessage, on_error: OnError) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._server: asyncio.Server | None = None
        self._connections: dict[tuple[str, int], _TcpConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.local: tuple[str, int] = ("", 0)

    @classmethod
    async def listen(
        cls, host: str, port: int, on_message: OnMessage, on_error: OnError
    ) -> TcpTransport:
        """Listen on host:port. Raises: OSError if the address is taken."""
        self = cls(on_message, on_error)
        self._server = await asyncio.start_server(self._accepted, host, port)
        sockname = self._server.sockets[0].getsockname()
        self.local = (sockname[0], sockname[1])
        return self

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        peer = Peer("TCP", str(addr[0]), int(addr[1]))
        await self._run(_TcpConnection(reader, writer, peer, self._on_message))

    async def _run(self, conn: _TcpConnection) -> None:
        key = (conn.peer.host, conn.peer.port)
        self._connections[key] = conn
        try:
            await conn.serve()
        finally:
            if self._connections.get(key) is conn:
                del self._connections[key]

    def send(self, data: bytes, peer: Peer) -> None:
        conn = self._connections.get((peer.host, peer.port))
        if conn is not None and not conn.writer.is_closing():
            conn.writer.write(data)
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
        conn = _TcpConnection(reader, writer, peer, self._on_message)
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
