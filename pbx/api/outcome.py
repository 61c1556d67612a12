"""Structured outcomes and per-call events of the Call API (`pbx.api`)."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

from pbx.errors import PbxError

log = logging.getLogger(__name__)


class Cause(enum.Enum):
    """Why a call ended or a dial failed."""

    NORMAL = "normal"
    BUSY = "busy"
    NO_ANSWER = "no answer"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not found"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    LOOP = "forwarding loop"
    FAILED = "failed"


_CAUSE_OF_STATUS = {
    486: Cause.BUSY,
    600: Cause.BUSY,
    408: Cause.NO_ANSWER,
    480: Cause.UNAVAILABLE,
    404: Cause.NOT_FOUND,
    487: Cause.CANCELLED,
    603: Cause.REJECTED,
    482: Cause.LOOP,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How something ended: a `Cause`, the SIP status behind it (0: none, e.g. a BYE)
    and words for logs and CDRs."""

    cause: Cause
    status: int = 0
    reason: str = ""

    @classmethod
    def of_status(cls, status: int, reason: str = "") -> Outcome:
        """The outcome a final SIP status stands for."""
        if 200 <= status < 300:
            return cls(Cause.NORMAL, status, reason)
        return cls(_CAUSE_OF_STATUS.get(status, Cause.FAILED), status, reason)

    def __str__(self) -> str:
        words = self.reason or self.cause.value
        if not self.status or words.startswith(f"{self.status} "):
            return words  # a reason that names its status already ("486 from 1002")
        return f"{self.status} {words}"


class DialError(PbxError):
    """`Switch.dial` reached nobody; `outcome` says why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"dial failed: {outcome}")
        self.outcome = outcome


class EventKind(enum.Enum):
    ANSWERED = "answered"
    DTMF = "dtmf"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One thing that happened to a call (`digit` for DTMF, `outcome` when ENDED)."""

    kind: EventKind
    call_id: str
    digit: str = ""
    outcome: Outcome | None = None


class Subscription:
    """A subscriber's bounded queue of one call's events; an async iterator that ends
    after ENDED. A subscriber that lets `maxsize` events pile up is dropped (its
    iterator ends), never slowing the call."""

    def __init__(self, call_id: str, maxsize: int) -> None:
        self.call_id = call_id
        self._queue: asyncio.Queue[CallEvent | None] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self.dropped = False
        self.closed = False

    def _offer(self, event: CallEvent) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._maxsize:
            log.warning("call %s: event subscriber too slow, dropped", self.call_id)
            self.dropped = True
            self.close()
            return
        self._queue.put_nowait(event)
        if event.kind is EventKind.ENDED:
            self.close()

    def close(self) -> None:
        """Stop receiving; the iterator ends after the events already queued."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> CallEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event
