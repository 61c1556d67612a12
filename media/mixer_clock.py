"""The mixer's asyncio shell: one loop-clock tick every 20 ms mixes every room at once.

`media.mixer.Mixer` is pure; this drives it. While at least one party is in a room, a
`loop.call_at` timer fires on a schedule anchored to `loop.time()` (each slot is the
previous slot plus 20 ms, not "now plus 20 ms", so the rate does not drift with the
loop's latency), calls `Mixer.mix_all()` and hands each party its 160-octet payload
through the `send(payload)` callback it joined with. Packetising (SSRC, sequence number,
timestamp) is the caller's: `send` is its per-call media anchor's.

A tick a little late is followed at once by the slots it missed (the schedule catches
up, so the phones still get 50 frames a second); a tick more than `max_lag` behind (the
loop stalled) mixes once and re-anchors the schedule at the current time, never a burst
of stale frames. The timer stops when the last party leaves and `close()` stops it for
good; it is a timer handle, not a task, so nothing outlives the clock's owner.

A `send` that raises is a bug in that party's owner: the party is taken out of its room
and the error logged once; the other parties and rooms go on.

A party joined on `clock.mixer` directly, with no `send`, is mixed and sent nothing: a
source such as a room's join/leave tones or its music, fed pre-encoded frames by its
owner (it does not keep the clock running on its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Protocol

from media.mixer import FRAME, Law, Mixer, MixerError, Role

__all__ = ["MAX_LAG", "TICK", "LoopClock", "MixerClock", "Send"]

log = logging.getLogger(__name__)

TICK = FRAME / 8000
"""Seconds between ticks (20 ms)."""
MAX_LAG = 3 * TICK
"""How far behind its schedule a tick may run before the schedule is re-anchored."""

Send = Callable[[bytes], object]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class LoopClock(Protocol):
    """What the clock needs of an event loop (an `asyncio` loop, or a fake in tests)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Cancellable: ...


class MixerClock:
    """Ticks `mixer` every 20 ms on `loop` while it has parties; sends each its mix."""

    def __init__(
        self,
        mixer: Mixer | None = None,
        loop: LoopClock | None = None,
        *,
        max_lag: float = MAX_LAG,
    ) -> None:
        self.mixer = mixer if mixer is not None else Mixer()
        """The mixer: roles and gains are changed on it directly (`set_role`, `set_gain`)."""
        self._loop: LoopClock = loop if loop is not None else asyncio.get_running_loop()
        self._max_lag = max_lag
        self._sends: dict[Hashable, Send] = {}
        self._next = 0.0
        self._timer: Cancellable | None = None
        self._closed = False
        self.ticks = 0
        """Ticks mixed so far."""
        self.reanchors = 0
        """Times the schedule was re-anchored after the loop stalled."""

    @property
    def running(self) -> bool:
        """Whether the tick timer is scheduled."""
        return self._timer is not None

    def join(
        self,
        room: Hashable,
        party: Hashable,
        law: Law,
        send: Send,
        role: Role = Role.SPEAK,
        *,
        whisper_to: Hashable | None = None,
        talk_gain: float = 1.0,
        listen_gain: float = 1.0,
    ) -> None:
        """Put `party` in `room`; from the next tick on, `send` gets its 20 ms payloads.

        Raises:
            MixerError: as `Mixer.join` (already in a room, role and target disagree),
                or the clock is closed.
        """
        if self._closed:
            raise MixerError("the mixer clock is closed")
        self.mixer.join(
            room,
            party,
            law,
            role,
            whisper_to=whisper_to,
            talk_gain=talk_gain,
            listen_gain=listen_gain,
        )
        self._sends[party] = send
        if self._timer is None:
            # The first slot one frame from now: the new party's first packet can be in.
            self._next = self._loop.time() + TICK
            self._timer = self._loop.call_at(self._next, self._tick)

    def leave(self, party: Hashable) -> bool:
        """Take `party` out of its room; its `send` is not called again. Whether it was in."""
        self._sends.pop(party, None)
        left = self.mixer.leave(party)
        if not self._sends:
            self._stop()
        return left

    def feed(self, party: Hashable, payload: bytes) -> bool:
        """Queue G.711 octets `party` sent (see `Mixer.feed`)."""
        return self.mixer.feed(party, payload)

    def close(self) -> None:
        """Stop ticking for good and forget every party (idempotent)."""
        self._closed = True
        self._stop()
        for party in list(self._sends):
            self.mixer.leave(party)
        self._sends.clear()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = self._loop.time()
        if now - self._next > self._max_lag:  # the loop stalled: mix once, re-anchor
            self.reanchors += 1
            log.debug("mixer clock %.0f ms behind: re-anchored", (now - self._next) * 1000)
            self._next = now
        self._next += TICK
        # Scheduled before sending: whatever a send does, the clock goes on.
        self._timer = self._loop.call_at(self._next, self._tick)
        self.ticks += 1
        for party, payload in self.mixer.mix_all().items():
            send = self._sends.get(party)
            if send is None:
                continue
            try:
                send(payload)
            except Exception:
                log.exception("mixer: send of party %r failed; it leaves its room", party)
                self.leave(party)
