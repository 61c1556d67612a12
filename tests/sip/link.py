"""An in-memory link joining two TransactionLayers, with a fake clock and loss.

In the spirit of h11's tests/helpers.py: two sides, each a TransactionLayer plus a tiny
scripted TU, exchange messages as bytes (so every hop also runs the parser and the
serializer) over a wire that delays each datagram by `latency` and drops some of them.
Time advances only when `run` jumps the clock to the next event: a datagram arriving or
a layer's next deadline. Nothing sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sip.message import Message, Request, Response, parse_message
from sip.peer import Peer
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
)

#: A scripted TU: given a request delivered with its server transaction, the responses
#: to send through `send_response` right away.
Answer = Callable[[Request, ServerTransaction], list[Response]]


@dataclass
class Side:
    """One end of the link: its layer, its address and what its TU has seen."""

    name: str
    peer: Peer  # this side's address, as the other side sees it
    layer: TransactionLayer
    answer: Answer | None = None
    delivered: list[Deliver] = field(default_factory=list)
    timed_out: list[ClientTransaction | ServerTransaction] = field(default_factory=list)
    failed: list[ClientTransaction | ServerTransaction] = field(default_factory=list)

    def responses(self) -> list[Response]:
        """Responses delivered to this side's TU, in order."""
        return [d.message for d in self.delivered if isinstance(d.message, Response)]

    def requests(self) -> list[Request]:
        """Requests delivered to this side's TU, in order."""
        return [d.message for d in self.delivered if isinstance(d.message, Request)]


@dataclass(order=True)
class _Flight:
    arrives: float
    seq: int
    to: str = field(compare=False)
    data: bytes = field(compare=False)


class Link:
    """Two TransactionLayers ("a" and "b") joined by a lossy, delaying wire."""

    def __init__(
        self,
        timers: Timers = Timers(),  # noqa: B008 - frozen
        *,
        transport: str = "UDP",
        latency: float = 0.01,
        loss: float = 0.0,
        seed: int = 0,
        drop: Callable[[str, Message], bool] | None = None,
    ) -> None:
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.drop = drop
        self._random = random.Random(seed)
        self.a = Side("a", Peer(transport, "192.0.2.1", 5060), TransactionLayer(timers))
        self.b = Side("b", Peer(transport, "192.0.2.2", 5060), TransactionLayer(timers))
        self._flights: list[_Flight] = []
        self._seq = 0
        #: Every datagram put on the wire: (time, "a->b" or "b->a", message, dropped).
        self.wire: list[tuple[float, str, Message, bool]] = []

    def side(self, name: str) -> Side:
        return self.a if name == "a" else self.b

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    # -- driving ----------------------------------------------------------------

    def send_request(self, side: Side, request: Request) -> ClientTransaction:
        """Let `side` start a client transaction towards the other side."""
        tx, actions = side.layer.send_request(request, self.other(side).peer, self.now)
        self.apply(side, actions)
        return tx

    def send_response(self, side: Side, response: Response) -> None:
        """Let `side`'s TU send a response through its server transaction."""
        self.apply(side, side.layer.send_response(response, self.now))

    def apply(self, side: Side, actions: list[Action]) -> None:
        """Carry out a layer's actions: put Sends on the wire, hand the rest to the TU."""
        for action in actions:
            if isinstance(action, Send):
                self._transmit(side, action)
            elif isinstance(action, Deliver):
                side.delivered.append(action)
                tx = action.transaction
                if (
                    side.answer is not None
                    and isinstance(action.message, Request)
                    and isinstance(tx, ServerTransaction)
                ):
                    for response in side.answer(action.message, tx):
                        self.send_response(side, response)
            elif isinstance(action, TimedOut):
                side.timed_out.append(action.transaction)
            elif isinstance(action, TransportFailed):
                side.failed.append(action.transaction)

    def _transmit(self, side: Side, send: Send) -> None:
        to = self.other(side)
        assert send.peer == to.peer, f"{side.name} sent to {send.peer}, not to {to.name}"
        direction = f"{side.name}->{to.name}"
        dropped = (
            self.drop(direction, send.message)
            if self.drop is not None
            else self._random.random() < self.loss
        )
        self.wire.append((self.now, direction, send.message, dropped))
        if dropped:
            return
        self._seq += 1
        flight = _Flight(self.now + self.latency, self._seq, to.name, bytes(send.message))
        self._flights.append(flight)
        self._flights.sort()

    def next_event(self) -> float | None:
        """The time of the next arrival or timer on either side."""
        times = [f.arrives for f in self._flights[:1]]
        for side in (self.a, self.b):
            deadline = side.layer.next_deadline()
            if deadline is not None:
                times.append(deadline)
        return min(times) if times else None

    def run(self, until: float = float("inf")) -> None:
        """Process arrivals and timers in time order up to `until` (inclusive)."""
        while True:
            when = self.next_event()
            if when is None or when > until:
                break
            self.now = max(self.now, when)
            while self._flights and self._flights[0].arrives <= self.now:
                flight = self._flights.pop(0)
                to = self.side(flight.to)
                message = parse_message(flight.data)
                self.apply(to, to.layer.receive(message, self.other(to).peer, self.now))
            for side in (self.a, self.b):
                deadline = side.layer.next_deadline()
                if deadline is not None and deadline <= self.now:
                    self.apply(side, side.layer.on_timer(self.now))
        if until != float("inf"):
            self.now = max(self.now, until)

    def sent(self, direction: str, kind: str) -> list[float]:
        """Times at which messages of `kind` (a method or a status as text) went `direction`."""
        out = []
        for when, way, message, _ in self.wire:
            label = message.method if isinstance(message, Request) else str(message.status)
            if way == direction and label == kind:
                out.append(when)
        return out
