"""The asyncio shell around the sans-I/O SIP core.

An `Endpoint` owns the transports and one `TransactionLayer`. It parses what
arrives, stamps the top Via (RFC 3261 §18.2.1, RFC 3581), feeds the transaction
layer, carries out the actions it returns, runs its timers with `loop.call_at`,
and routes new requests to handlers by method. It answers what no handler
takes: 501 for methods it does not know, 405 (with Allow) for known methods
nobody handles, and the RFC 3261 §8.2 checks of `sip.validate`; unparseable
requests get a 400 with the parse error as reason where a response can be
addressed at all.

A handler gets `(request, peer)` and returns a `Response`, `None` (it will
answer later with `respond`), `DROP` (no answer at all: the request's transaction
is forgotten at once), a `Stateless` response (sent once, outside any transaction:
a challenge to a request anyone could have spoofed), or an awaitable of one of
these; awaitables run as tasks the endpoint owns and cancels on close.

An INVITE a handler takes on (None or an awaitable) gets its 100 (Trying) at once
(RFC 3261 §17.2.1); one answered at once, dropped or answered statelessly gets none.

Hostile input costs little: limits are checked before parsing (`parse_message`),
and unparseable messages are logged at a bounded rate (`RateLimitedLog`).
"""

from __future__ import annotations

import asyncio
import enum
import errno
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from sip.errors import SipParseError, TransportError
from sip.message import (
    MAX_HEADER_LINES,
    MAX_MESSAGE_SIZE,
    Message,
    Request,
    Response,
    make_response,
    parse_message,
)
from sip.peer import Peer
from sip.ratelimit import RateLimitedLog
from sip.transaction import (
    Action,
    ClientTransaction,
    Deliver,
    Send,
    ServerTransaction,
    TimedOut,
    Timers,
    TransactionLayer,
    TransportFailed,
    make_trying,
)
from sip.transport import TcpLimits, TcpTransport, UdpTransport
from sip.validate import check_request

log = logging.getLogger(__name__)


class Drop(enum.Enum):
    """The type of `DROP`."""

    DROP = "drop"


#: A handler's result meaning "no answer, and keep nothing" (a banned source).
DROP: Final = Drop.DROP


@dataclass(frozen=True, slots=True)
class Stateless:
    """A handler's answer sent once, without a transaction (RFC 3261 §8.2.7 stateless UAS).

    For a challenge to a request anyone could have sent: no retransmissions (a spoofed
    INVITE costs one response, not Timer G's eleven) and nothing kept. A retransmitted
    request meets the handler again and gets the same kind of answer.
    """

    response: Response


HandlerResult: TypeAlias = Response | Stateless | Drop | None
Handler: TypeAlias = Callable[[Request, Peer], HandlerResult | Awaitable[HandlerResult]]

#: Methods this library knows (RFC 3261 and the usual extensions); others get 501.
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip

#: Bodies a request may carry here: SDP, DTMF in INFO (application/dtmf-relay, the
#: older application/dtmf) and the sipfrag of a transfer NOTIFY (RFC 3515).
DEFAULT_ACCEPT = frozenset(
    {"application/sdp", "application/dtmf-relay", "application/dtmf", "message/sipfrag"}
)

_HEADER_LINE = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:", re.IGNORECASE)
_TO_LINE = re.compile(rb"^(?:to|t)[ \t]*:", re.IGNORECASE)
_TAG_PARAM = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)


class Endpoint:
    """One SIP element's transports, transaction layer and request routing."""

    def __init__(
        self,
        *,
        timers: Timers | None = None,
        server_header: str = "aiopbx",
        extensions: frozenset[str] = frozenset(),
        accept: frozenset[str] = DEFAULT_ACCEPT,
        tcp_limits: TcpLimits | None = None,
    ) -> None:
        self.tcp_limits = tcp_limits or TcpLimits()
        self.layer = TransactionLayer(timers or Timers())
        # Timers fire up to this late so that one loop timer serves every transaction
        # whose deadline falls in the window: at thousands of transactions a second
        # ending (Timer J), one TimerHandle per transaction was churn. T1/50 is 10 ms
        # by default, far inside what RFC 3261 timers (T1 = 500 ms) care about.
        self._slack = self.layer.timers.t1 / 50
        self.server_header = server_header
        self.extensions = extensions
        self.accept = accept
        self._handlers: dict[str, Handler] = {}
        self._methods: frozenset[str] = frozenset()
        self._udp: UdpTransport | None = None
        self._tcp: TcpTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: dict[ClientTransaction, _Waiter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called with responses no client transaction waits for (2xx retransmissions
        #: of an INVITE, RFC 6026): the dialog layer above re-sends its ACK.
        self.on_stray_response: Callable[[Response, Peer], None] | None = None
        #: Event packages this endpoint is a notifier for (RFC 6665 §4.4.4): named in an
        #: Allow-Events header of the OPTIONS answer when not empty.
        self.allow_events: frozenset[str] = frozenset()
        #: Optional trace hook (`pbx serve --sip-trace`): called with "in"/"out", the raw
        #: message bytes and the peer, for every message received or sent.
        self.on_trace: Callable[[str, bytes, Peer], None] | None = None
        self._log_unparseable = RateLimitedLog(log, logging.INFO)

    # -- set-up ---------------------------------------------------------------

    def route(self, method: str, handler: Handler) -> None:
        """Send new requests of `method` to `handler`."""
        self._handlers[method.upper()] = handler
        self._methods = frozenset(self._handlers)

    @property
    def allow(self) -> str:
        """The Allow header value: the methods this endpoint answers."""
        return ", ".join(sorted({*self._handlers, "OPTIONS", "ACK", "CANCEL"}))

    async def listen(self, host: str, port: int, *, udp: bool = True, tcp: bool = True) -> int:
        """Open UDP and/or TCP on host:port (port 0 picks one, shared by both).

        Returns the port. Raises: OSError when the address cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        # With port 0 the kernel picks a free UDP port, but the same number may be taken
        # on TCP: then take another one (a few times), as a fixed port simply fails.
        tries = 20 if port == 0 and udp and tcp else 1
        for attempt in range(1, tries + 1):
            try:
                return await self._listen_once(host, port, udp=udp, tcp=tcp)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == tries:
                    raise
        raise OSError(errno.EADDRINUSE, "no free port")  # tries >= 1: not reached

    async def _listen_once(self, host: str, port: int, *, udp: bool, tcp: bool) -> int:
        if udp:
            self._udp = await UdpTransport.bind(host, port, self._received, self._send_failed)
            port = self._udp.local[1]
        if tcp:
            try:
                self._tcp = await TcpTransport.listen(
                    host, port, self._received, self._send_failed, self.tcp_limits
                )
            except OSError:
                if self._udp is not None:
                    self._udp.close()
                    self._udp = None
                raise
            port = self._tcp.local[1]
        return port

    async def close(self) -> None:
        """Stop the timer, cancel handler tasks, close the transports."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for waiter in self._waiters.values():
            if not waiter.final.done():
                waiter.final.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            await self._tcp.close()

    # -- sending --------------------------------------------------------------

    def respond(self, response: Response) -> None:
        """Answer a request through its server transaction."""
        self._run(self.layer.send_response(response, self._now()))

    async def request(
        self,
        request: Request,
        peer: Peer,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send a request in a client transaction and return its final response.

        A timeout or transport failure comes back as a synthesized 408 or 503
        (RFC 3261 §8.1.3.1 and §8.1.2).
        """
        txn, actions = self.layer.send_request(request, peer, self._now())
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_provisional)
        self._waiters[txn] = waiter
        self._run(actions)
        try:
            return await waiter.final
        finally:
            self._waiters.pop(txn, None)

    def send_stateless(self, message: Message, peer: Peer) -> None:
        """Send outside any transaction (an ACK for a 2xx, a 2xx retransmission)."""
        self._transmit(bytes(message), peer)

    # -- receiving ------------------------------------------------------------

    def _received(self, data: bytes, peer: Peer) -> None:
        if self.on_trace is not None:
            self.on_trace("in", data, peer)
        try:
            # Size limit per transport: a datagram's, or the TCP framer's (which has
            # cut the stream message at that size already).
            limit = MAX_MESSAGE_SIZE if peer.transport == "UDP" else self.tcp_limits.max_message
            message = parse_message(data, max_size=limit)
        except SipParseError as exc:
            self._reject_unparseable(data, peer, exc)
            return
        if isinstance(message, Request):
            try:
                message = _stamp_via(message, peer)
            except SipParseError as exc:
                self._reject_unparseable(data, peer, exc)
                return
        self._run(self.layer.receive(message, peer, self._now()))

    def _reject_unparseable(self, data: bytes, peer: Peer, exc: SipParseError) -> None:
        """Answer a request we cannot parse with `exc.status` (RFC 4475 §3.1.2); drop responses.

        The response echoes the raw Via/From/To/Call-ID/CSeq lines so the
        sender can match it; without a Via there is nobody to answer.
        """
        self._log_unparseable("unparseable message from %s: %s", peer, exc.reason)
        if data.startswith(b"SIP/"):
            return
        # Bounded: a message of thousands of lines is answered only if its Via comes
        # among the first MAX_HEADER_LINES.
        head = data[: data.find(b"\r\n\r\n")].split(b"\r\n", MAX_HEADER_LINES)
        echoed = [line for line in head[1:MAX_HEADER_LINES] if _HEADER_LINE.match(line)]
        if not any(line[:1].lower() == b"v" for line in echoed):
            return
        # §8.2.6.2: a To tag in every response but 100.
        echoed = [
            line + b";tag=" + os.urandom(8).hex().encode()
            if _TO_LINE.match(line) and not _TAG_PARAM.search(line)
            else line
            for line in echoed
        ]
        reason = exc.reason.replace("\r", " ").replace("\n", " ")[:100]
        out = [f"SIP/2.0 {exc.status} {reason}".encode("utf-8", "replace"), *echoed]
        out.append(b"Content-Length: 0")
        self._transmit(b"\r\n".join(out) + b"\r\n\r\n", peer)

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._transmit(bytes(action.message), action.peer)
            elif isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, TimedOut):
                self._fail(action.transaction, 408, "Request Timeout")
            elif isinstance(action, TransportFailed):
                self._fail(action.transaction, 503, "Service Unavailable")
        self._schedule()

    def _deliver(self, action: Deliver) -> None:
        message = action.message
        if isinstance(message, Response):
            waiter = (
                self._waiters.get(action.transaction)
                if isinstance(action.transaction, ClientTransaction)
                else None
            )
            if waiter is None:
                if self.on_stray_response is not None:
                    self.on_stray_response(message, action.peer)
                else:
                    log.debug("stray response %s (Call-ID %s)", message.status, message.call_id)
            elif message.status < 200:
                if waiter.on_provisional is not None:
                    waiter.on_provisional(message)
            elif not waiter.final.done():
                waiter.final.set_result(message)
            return
        self._dispatch(message, action.peer, action.transaction)

    def _dispatch(
        self, request: Request, peer: Peer, txn: ServerTransaction | ClientTransaction | None
    ) -> None:
        method = request.method
        handler = self._handlers.get(method)
        if method == "ACK":
            if handler is not None:
                self._call(handler, request, peer, None)
            return
        if handler is None:
            self.respond(self._default_answer(request))
            return
        rejection = check_request(
            request,
            methods=self._methods,
            extensions=self.extensions,
            accept=self.accept,
            secure=peer.transport == "TLS",
        )
        if rejection is not None:
            self.respond(
                make_response(
                    request, rejection.status, rejection.reason, headers=rejection.headers
                )
            )
            return
        self._call(handler, request, peer, txn)

    def _default_answer(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            headers = [("Allow", self.allow), ("Accept", "application/sdp")]
            if self.allow_events:
                headers.append(("Allow-Events", ", ".join(sorted(self.allow_events))))
            return make_response(request, 200, headers=headers)
        if method == "CANCEL":
            # No handler owns INVITEs, so there is nothing to cancel (RFC 3261 §9.2).
            return make_response(request, 481)
        if method in KNOWN_METHODS:
            return make_response(request, 405, headers=[("Allow", self.allow)])
        return make_response(request, 501)

    def _call(
        self,
        handler: Handler,
        request: Request,
        peer: Peer,
        txn: ServerTransaction | ClientTransaction | None,
    ) -> None:
        try:
            result = handler(request, peer)
        except Exception:
            # A handler bug must not take the server down; the caller still gets an answer.
            log.exception("handler for %s failed (Call-ID %s)", request.method, request.call_id)
            result = make_response(request, 500) if request.method != "ACK" else None
        if isinstance(result, Response):
            self.respond(result)
            return
        if result is None or inspect.isawaitable(result):
            if request.method == "INVITE" and isinstance(txn, ServerTransaction):
                # §17.2.1: the TU will take a while (it rings, routes, answers later):
                # quench the client's Timer A retransmissions now.
                self._run(self.layer.send_response(make_trying(request), self._now()))
            if result is not None:
                task = asyncio.get_running_loop().create_task(
                    self._await(result, request, peer, txn)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        self._answer(result, request, peer, txn)

    def _answer(
        self,
        result: Response | Stateless | Drop,
        request: Request,
        peer: Peer,
        txn: ServerTransaction | ClientTransaction | None,
    ) -> None:
        if isinstance(result, Response):
            self.respond(result)
            return
        if isinstance(txn, ServerTransaction):
            self.layer.discard(txn)
        if isinstance(result, Stateless):
            self._transmit(bytes(result.response), peer)

    async def _await(
        self,
        pending: Awaitable[HandlerResult],
        request: Request,
        peer: Peer,
        txn: ServerTransaction | ClientTransaction | None,
    ) -> None:
        try:
            result = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler for %s failed (Call-ID %s)", request.method, request.call_id)
            result = make_response(request, 500) if request.method != "ACK" else None
        if result is not None:
            self._answer(result, request, peer, txn)

    def _fail(self, txn: ClientTransaction | ServerTransaction, status: int, reason: str) -> None:
        if isinstance(txn, ClientTransaction):
            waiter = self._waiters.get(txn)
            if waiter is not None and not waiter.final.done():
                waiter.final.set_result(make_response(txn.request, status, reason))
        else:
            log.info("server transaction %s ended: %s", txn.request.call_id, reason)

    # -- transport and timers -------------------------------------------------

    def _transmit(self, data: bytes, peer: Peer) -> None:
        transport: UdpTransport | TcpTransport | None = (
            self._udp if peer.transport == "UDP" else self._tcp
        )
        if transport is None:
            log.warning("no %s transport to reach %s", peer.transport, peer)
            return
        if self.on_trace is not None:
            self.on_trace("out", data, peer)
        try:
            transport.send(data, peer)
        except (TransportError, OSError) as exc:
            log.info("send to %s failed: %s", peer, exc)
            self._send_failed(peer)

    def _send_failed(self, peer: Peer) -> None:
        self._run(self.layer.transport_error(peer, self._now()))

    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def _schedule(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        when = deadline + self._slack
        if self._timer_at is not None and self._timer_at <= when:
            return  # the armed timer fires in time and re-arms for the rest
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = when
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._run(self.layer.on_timer(self._now()))


class _Waiter:
    __slots__ = ("final", "on_provisional")

    def __init__(
        self,
        final: asyncio.Future[Response],
        on_provisional: Callable[[Response], None] | None,
    ) -> None:
        self.final = final
        self.on_provisional = on_provisional


def _stamp_via(request: Request, peer: Peer) -> Request:
    """Record where a request really came from in its top Via.

    RFC 3261 §18.2.1: the server MUST add a "received" parameter when the
    sent-by host differs from the source address; RFC 3581 §4: when the
    top Via has an "rport" parameter with no value, the server MUST set it
    to the source port (and then add "received" too).
    """
    top = request.via[0]
    stamped = top
    if top.rport == "":
        stamped = stamped.with_param("received", peer.host).with_param("rport", str(peer.port))
    elif top.host != peer.host:
        stamped = stamped.with_param("received", peer.host)
    if stamped is top:
        return request
    return request.with_top_via(stamped)


__all__ = ["DROP", "KNOWN_METHODS", "Drop", "Endpoint", "Handler", "RateLimitedLog", "Stateless"]
