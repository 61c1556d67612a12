"""The event bus: what happens in the switch, as typed events, for anyone listening.

The switch publishes one event per state change of a call leg (created, ringing,
answered, bridged, unbridged, held, resumed, transferred, dtmf, ended) and of a
registration (up, down). Every event is a frozen, slotted dataclass with a `kind`
(its JSON name), the `call_id` of the leg it is about (the switch's own call id, as
`pbx calls` and `POST /hangup` use it; empty for registrations) and `at`, the wall
time it happened.

Rules:
- `EventBus.publish` never awaits and never blocks: it appends the event to each
  subscriber's bounded queue. A subscriber whose queue is full is dropped at once
  (one WARNING line), its iterator ends; the publisher (a call) never waits for it.
- `EventBus.subscribe(maxsize=...)` gives a `Subscription`: an async iterator of
  events, ended by `close()` (or by being dropped; `dropped` says which).
- Events carry plain values only (str, int, float, bool, None; a queue event's `data`
  is one flat object of them), so `to_json` of an event is a JSON object: the CTI feed
  of `GET /events` and `pbx events --json`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pbx.errors import ConfigError

log = logging.getLogger(__name__)

#: Events a subscriber may have waiting before it is dropped, unless it says otherwise.
DEFAULT_MAXSIZE = 1000


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: which leg, and when (wall time, seconds)."""

    kind: ClassVar[str] = "event"
    call_id: str
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True, slots=True)
class CallCreated(Event):
    """A leg exists: an INVITE came in ("in") or the switch sent one ("out")."""

    kind: ClassVar[str] = "call.created"
    direction: str
    caller: str
    callee: str
    sip_call_id: str = ""


@dataclass(frozen=True, slots=True)
class CallRinging(Event):
    """The leg rings: 180/183 sent to the caller, or received from the callee."""

    kind: ClassVar[str] = "call.ringing"
    status: int = 180


@dataclass(frozen=True, slots=True)
class CallAnswered(Event):
    """The leg is answered (200 sent to the caller or received from the callee)."""

    kind: ClassVar[str] = "call.answered"


@dataclass(frozen=True, slots=True)
class CallBridged(Event):
    """Two legs are joined: `call_id` (the caller's side) with `other_call_id`."""

    kind: ClassVar[str] = "call.bridged"
    other_call_id: str


@dataclass(frozen=True, slots=True)
class CallUnbridged(Event):
    """Two legs are no longer joined (one ended, or a transfer took one away)."""

    kind: ClassVar[str] = "call.unbridged"
    other_call_id: str


@dataclass(frozen=True, slots=True)
class CallHeld(Event):
    """The leg's phone put the other side on hold."""

    kind: ClassVar[str] = "call.held"


@dataclass(frozen=True, slots=True)
class CallResumed(Event):
    """The leg's phone took the other side off hold."""

    kind: ClassVar[str] = "call.resumed"


@dataclass(frozen=True, slots=True)
class CallTransferred(Event):
    """The leg (the transferee) now talks to `target`'s leg `new_call_id`, on the
    request of the leg `by_call_id` (the transferor)."""

    kind: ClassVar[str] = "call.transferred"
    target: str
    new_call_id: str
    by_call_id: str


@dataclass(frozen=True, slots=True)
class CallDtmf(Event):
    """The leg's phone pressed `digit` (seen by the switch)."""

    kind: ClassVar[str] = "call.dtmf"
    digit: str


@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    """The leg ended: the SIP status it ended with (0 for a BYE), the reason, whether
    the far end ended it, and the CDR the leg belongs to (None: none, or not known)."""

    kind: ClassVar[str] = "call.ended"
    status: int
    reason: str
    by_remote: bool = False
    cdr_id: int | None = None


@dataclass(frozen=True, slots=True)
class RegistrationUp(Event):
    """A new contact of `aor` registered (a refresh of a known one is not an event)."""

    kind: ClassVar[str] = "registration.up"
    aor: str
    contact: str


@dataclass(frozen=True, slots=True)
class RegistrationDown(Event):
    """A contact of `aor` went away: `why` is "removed" (by a REGISTER: expires 0, a new
    contact of the same instance, or over the binding limit), "expired" or "user deleted"."""

    kind: ClassVar[str] = "registration.down"
    aor: str
    contact: str
    why: str


@dataclass(frozen=True, slots=True)
class QueueLogged(Event):
    """A queue event the ACD wrote (Asterisk queue_log names: ENTERQUEUE, CONNECT,
    ABANDON, AGENTLOGIN, PAUSE ...), as stored: `call_id` is the caller's ("" for an
    agent's own events), `data` a flat object of plain values."""

    kind: ClassVar[str] = "queue.event"
    queue: str
    agent: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Event):
    """An ACD agent's state changed (logged-out, available, ringing, on-call, wrap-up,
    paused): what a wallboard shows; `reason` is the pause reason."""

    kind: ClassVar[str] = "agent.state"
    agent: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QueueOffered(Event):
    """The ACD offers a queued caller to `agent`: sent as its phone is rung, so a screen
    pop can show the caller before the agent answers. Not a stored queue event (an
    offer that ends unanswered is logged as RINGNOANSWER or RINGCANCELED). `caller` is
    the number to look up, `wait` the seconds queued so far, `notes` what earlier
    agents noted when they escalated the call (one line each), `callback` true for a
    stored callback (the agent will call `caller` back), `ivr` the IVR menus and keys the
    caller chose on the way in."""

    kind: ClassVar[str] = "queue.offer"
    queue: str
    agent: str
    caller: str
    wait: float = 0.0
    notes: str = ""
    callback: bool = False
    ivr: str = ""  # the caller's IVR choices ("main 4 > support 2"), if it came that way


@dataclass(frozen=True, slots=True)
class CampaignEvent(Event):
    """An outbound campaign's event (acd.dialer): `event` is one of started, paused,
    stopped, finished, dialled, answered (with `amd`), connected (with `agent`), dropped,
    ended (with `outcome`); `call_id` is the dialled call's ("" for the campaign's own),
    `data` a flat object of plain values."""

    kind: ClassVar[str] = "campaign.event"
    campaign: str
    event: str
    number: str = ""
    data: dict[str, Any] = field(default_factory=dict)


#: Every event type by its kind (for readers of the JSON feed).
KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        CallCreated,
        CallRinging,
        CallAnswered,
        CallBridged,
        CallUnbridged,
        CallHeld,
        CallResumed,
        CallTransferred,
        CallDtmf,
        CallEnded,
        RegistrationUp,
        RegistrationDown,
        QueueLogged,
        QueueOffered,
        AgentStateChanged,
        CampaignEvent,
    )
}


def to_json(event: Event) -> dict[str, Any]:
    """The event as a flat JSON object: {"kind": ..., "call_id": ..., "at": ..., ...}."""
    out: dict[str, Any] = {"kind": event.kind}
    for f in dataclasses.fields(event):
        out[f.name] = getattr(event, f.name)
    return out


class Subscription:
    """One listener's bounded queue of events; iterate it with `async for`.

    The iterator ends when `close()` is called or when the bus dropped it (queue full).
    """

    def __init__(self, bus: EventBus, maxsize: int, name: str) -> None:
        if maxsize < 1:
            raise ConfigError(f"an event queue holds at least 1 event, not {maxsize}")
        self.name = name
        self.maxsize = maxsize
        #: True once the bus dropped this subscriber for not keeping up.
        self.dropped = False
        self._bus = bus
        self._items: deque[Event] = deque()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def take(self) -> list[Event]:
        """Every event queued now, without waiting (for synchronous readers and tests)."""
        items = list(self._items)
        self._items.clear()
        return items

    def _offer(self, event: Event) -> bool:
        """Queue `event`; False when the queue is full (the bus then drops us)."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(event)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, dropped: bool) -> None:
        self._closed = True
        self.dropped = dropped
        self._items.clear()
        self._wake()
        self._ended.set()

    async def wait_ended(self) -> None:
        """Return once the subscription is closed or dropped (e.g. to abort a blocked
        write to a slow network client)."""
        await self._ended.wait()

    def close(self) -> None:
        """Stop listening: the bus forgets us and the iterator ends."""
        if not self._closed:
            self._bus._remove(self)
            self._end(dropped=False)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._items:
                return self._items.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def following(self) -> AsyncIterator[Event]:
        """Its events, and when the bus drops it (too many unread) those of a new
        subscription of the same size and name, taken at once: for services that must
        go on (what came between is lost). Ends when a subscription is closed."""
        sub = self
        while True:
            async for event in sub:
                yield event
            if not sub.dropped:
                return
            log.warning("events: %s subscribes again", sub.name)
            sub = sub._bus.subscribe(sub.maxsize, sub.name)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscribers, each with its own bounded queue."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._names = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, maxsize: int = DEFAULT_MAXSIZE, name: str = "") -> Subscription:
        """A new subscription receiving every event published from now on."""
        self._names += 1
        sub = Subscription(self, maxsize, name or f"subscriber {self._names}")
        self._subscribers.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        """Hand `event` to every subscriber; never awaits, never blocks, never raises."""
        if not self._subscribers:
            return
        slow: list[Subscription] | None = None
        for sub in self._subscribers:
            if not sub._offer(event):
                slow = slow or []
                slow.append(sub)
        if slow:
            for sub in slow:
                self._remove(sub)
                log.warning(
                    "events: %s dropped: %d events unread (it does not keep up)",
                    sub.name,
                    sub.maxsize,
                )
                sub._end(dropped=True)

    def _remove(self, sub: Subscription) -> None:
        # Rebuilt, not mutated: publish() may be iterating the old list.
        self._subscribers = [s for s in self._subscribers if s is not sub]
