"""media.mixer_clock: the 20 ms schedule (drift-free, catch-up, re-anchor after a stall),
start and stop with the parties, sends, a failing send; on a fake loop clock, and once on
a real asyncio loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import pytest

from media.mixer import FRAME, Law, MixerError, Role
from media.mixer_clock import MAX_LAG, TICK, MixerClock

START = 1000.0


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """A loop clock that runs each timer `latency` seconds after it is due."""

    def __init__(self, latency: float = 0.0) -> None:
        self.now = START
        self.latency = latency
        self._heap: list[tuple[float, int, FakeHandle]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeHandle:
        handle = FakeHandle(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        return handle

    def pending(self) -> int:
        return sum(not h.cancelled for _, _, h in self._heap)

    def run_until(self, until: float) -> None:
        """Run every timer due up to `until` (each at due time + latency), in order."""
        for _ in range(100_000):  # bounded
            if not self._heap or self._heap[0][0] > until:
                break
            when, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self.now = max(self.now, when + self.latency)
            handle.callback()
        else:
            raise AssertionError("timer storm")
        self.now = max(self.now, until)

    def stall(self, seconds: float) -> None:
        """Time passes and nothing runs (a blocked loop)."""
        self.now += seconds


class Recorder:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.times: list[float] = []
        self.payloads: list[bytes] = []

    def __call__(self, payload: bytes) -> None:
        self.times.append(self.loop.now)
        self.payloads.append(payload)


def test_one_payload_per_party_every_20ms_from_one_tick_after_joining() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    a, b = Recorder(loop), Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    clock.join("r", "b", Law.PCMA, b)
    loop.run_until(START + 1.0 + TICK / 2)
    assert len(a.times) == len(b.times) == 50
    assert a.times == pytest.approx([START + TICK * (i + 1) for i in range(50)])
    assert all(len(p) == FRAME for p in a.payloads + b.payloads)
    assert clock.ticks == 50


def test_the_schedule_does_not_drift_with_the_loops_latency() -> None:
    """Each slot is the previous slot + 20 ms: 3 ms of lateness per timer loses no tick."""
    loop = FakeLoop(latency=0.003)
    clock = MixerClock(loop=loop)
    a = Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    loop.run_until(START + 10.0 + TICK / 2)
    assert len(a.times) == 500
    assert a.times[-1] == pytest.approx(START + 10.0 + 0.003)


def test_a_short_stall_is_caught_up_with_the_slots_it_missed() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    a = Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    loop.run_until(START + 0.1 + TICK / 2)  # 5 ticks
    loop.stall(2 * TICK + 0.005)  # 45 ms, under MAX_LAG
    loop.run_until(START + 1.0 + TICK / 2)
    assert len(a.times) == 50
    assert clock.reanchors == 0


def test_a_long_stall_mixes_once_and_reanchors_instead_of_bursting() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    a = Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    loop.run_until(START + 0.1 + TICK / 2)  # 5 ticks
    loop.stall(0.5)
    resumed = loop.now
    loop.run_until(resumed)  # what runs as soon as the loop is free again
    assert len(a.times) == 6  # one tick, not the 25 missed
    assert clock.reanchors == 1
    loop.run_until(resumed + 0.2 + TICK / 2)
    assert len(a.times) == 16
    assert a.times[6:] == pytest.approx([resumed + TICK * (i + 1) for i in range(10)])
    assert MAX_LAG < 0.5


def test_the_timer_runs_only_while_someone_is_in_a_room() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    assert not clock.running
    a = Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    assert clock.running
    loop.run_until(START + 0.1)
    assert clock.leave("a")
    assert not clock.leave("a")
    assert not clock.running and loop.pending() == 0
    sent = len(a.times)
    loop.run_until(START + 1.0)
    assert len(a.times) == sent
    clock.join("r2", "a", Law.PCMU, a)
    loop.run_until(START + 1.0 + TICK)
    assert len(a.times) == sent + 1


def test_sends_carry_the_mix() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    a, b, m = Recorder(loop), Recorder(loop), Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    clock.join("r", "b", Law.PCMU, b)
    clock.join("r", "m", Law.PCMU, m, Role.LISTEN)
    frame = bytes(range(0x80, 0x100)) + bytes(range(0x80, 0xA0))
    assert clock.feed("a", frame)
    loop.run_until(START + TICK)
    assert b.payloads == [frame]
    assert m.payloads == [frame]
    assert a.payloads == [b"\xff" * FRAME]  # a does not hear itself
    assert not clock.feed("nobody", frame)


def test_a_failing_send_takes_that_party_out_and_the_rest_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    b = Recorder(loop)

    def broken(payload: bytes) -> None:
        raise OSError("socket closed")

    clock.join("r", "a", Law.PCMU, broken)
    clock.join("r", "b", Law.PCMU, b)
    loop.run_until(START + 0.2 + TICK / 2)
    assert "a" not in clock.mixer
    assert len(b.times) == 10
    assert sum("party 'a'" in r.getMessage() for r in caplog.records) == 1


def test_the_last_party_failing_stops_the_timer() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)

    def broken(payload: bytes) -> None:
        raise RuntimeError("boom")

    clock.join("r", "a", Law.PCMU, broken)
    loop.run_until(START + 0.2)
    assert not clock.running and loop.pending() == 0


def test_close_stops_for_good() -> None:
    loop = FakeLoop()
    clock = MixerClock(loop=loop)
    a = Recorder(loop)
    clock.join("r", "a", Law.PCMU, a)
    clock.close()
    clock.close()
    loop.run_until(START + 1.0)
    assert a.times == [] and len(clock.mixer) == 0 and loop.pending() == 0
    with pytest.raises(MixerError):
        clock.join("r", "a", Law.PCMU, a)


async def test_on_a_real_event_loop() -> None:
    clock = MixerClock()
    got: list[bytes] = []
    done = asyncio.Event()

    def send(payload: bytes) -> None:
        got.append(payload)
        if len(got) == 5:
            done.set()

    frame = bytes(range(0x80, 0x100)) + bytes(range(0x80, 0xA0))
    clock.join("r", "a", Law.PCMU, lambda payload: clock.feed("a", frame))  # a loops a frame
    clock.join("r", "b", Law.PCMU, send)
    clock.feed("a", frame)
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        clock.close()
    assert frame in got
    assert not clock.running
