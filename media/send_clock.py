"""One 20 ms clock for every RTP stream the switch sends itself.

Each `MediaEndpoint` sends one packet every 20 ms for its whole life. With a loop timer
of its own per endpoint, 250 calls meant 12,500 timer callbacks a second, and the timer
work (a handle made, pushed on the loop's heap and popped, a callback dispatched) cost
about as much as building and sending the packet: measured with uvloop, 250 endpoints,
15.0 -> 9.4 us a packet with one shared timer. So the endpoints of a loop share one
`SendClock`: a `loop.call_at` timer on a schedule anchored to `loop.time()` (each slot is
the previous slot plus 20 ms, so the rate does not drift with the loop's latency) that
calls every member's `tick()` once a slot, in the order they joined.

A member joins from the next slot on and leaves at once. A tick a little late is
followed by the slots it missed as the loop catches up (phones still get 50 frames a
second); one more than `max_lag` behind (the loop stalled) sends once and re-anchors,
never a burst of stale frames. The timer runs only while the clock has members, and the
clock of a loop is dropped with its last member (`SendClock.of` makes a new one).

A member whose `tick` raises is a bug in that member: it is dropped from the clock and
the error logged once; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from media.mixer_clock import Cancellable, LoopClock

__all__ = ["MAX_LAG", "TICK", "SendClock", "Ticking"]

log = logging.getLogger(__name__)

TICK = 0.02
"""Seconds between slots."""
MAX_LAG = 0.2
"""How far behind its schedule the clock may fall before it skips instead of catching up."""

_CLOCKS: dict[int, SendClock] = {}  # id(loop) -> its clock, while it has members


class Ticking(Protocol):
    """A member: sends its one frame of this slot."""

    def tick(self) -> None: ...


class SendClock:
    """Calls `tick()` of every member once every 20 ms on `loop`."""

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> SendClock:
        """The clock of `loop` (made at its first member)."""
        clock = _CLOCKS.get(id(loop))
        if clock is None or clock._loop is not loop:
            clock = _CLOCKS[id(loop)] = cls(loop)
        return clock

    def __init__(self, loop: LoopClock, *, max_lag: float = MAX_LAG) -> None:
        self._loop = loop
        self._max_lag = max_lag
        self._members: dict[Ticking, None] = {}  # insertion-ordered set
        self._next = 0.0
        self._timer: Cancellable | None = None
        self.ticks = 0
        """Slots ticked so far."""
        self.reanchors = 0
        """Times the schedule was re-anchored after the loop stalled."""

    def __len__(self) -> int:
        return len(self._members)

    @property
    def running(self) -> bool:
        """Whether the timer is scheduled."""
        return self._timer is not None

    def add(self, member: Ticking) -> None:
        """Tick `member` from the next slot on."""
        self._members[member] = None
        if self._timer is None:
            self._next = self._loop.time() + TICK
            self._timer = self._loop.call_at(self._next, self._tick)

    def discard(self, member: Ticking) -> None:
        """Tick `member` no more (a member not in the clock is ignored)."""
        if member in self._members:
            del self._members[member]
            if not self._members:
                self._stop()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if _CLOCKS.get(id(self._loop)) is self:
            del _CLOCKS[id(self._loop)]

    def _tick(self) -> None:
        self._timer = None
        self.ticks += 1
        for member in list(self._members):
            try:
                member.tick()
            except Exception:
                log.exception("send clock: %r failed; it is dropped", member)
                self._members.pop(member, None)
        if not self._members:
            self._stop()
            return
        now = self._loop.time()
        self._next += TICK
        if now - self._next > self._max_lag:  # the loop stalled: skip, do not burst
            self._next = now + TICK
            self.reanchors += 1
        self._timer = self._loop.call_at(self._next, self._tick)
