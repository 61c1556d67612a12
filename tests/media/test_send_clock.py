"""media.send_clock: every member ticked once a slot from the slot after it joins, in
join order; a late loop catches up, a stalled one re-anchors (no burst); the timer runs
only while there are members; a member that raises is dropped alone; on a fake loop
clock, and endpoints sharing one clock on a real loop."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from media.endpoint import MediaEndpoint
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec
from media.send_clock import MAX_LAG, TICK, SendClock
from tests.media.test_mixer_clock import START, FakeLoop


class Member:
    def __init__(self, loop: FakeLoop, name: str, log: list[tuple[str, float]]) -> None:
        self.loop, self.name, self.log = loop, name, log

    def tick(self) -> None:
        self.log.append((self.name, round(self.loop.now - START, 6)))


def test_members_tick_once_a_slot_in_join_order_from_the_next_slot() -> None:
    loop = FakeLoop()
    clock = SendClock(loop)
    log: list[tuple[str, float]] = []
    a, b = Member(loop, "a", log), Member(loop, "b", log)
    clock.add(a)
    loop.run_until(START + 0.03)
    clock.add(b)  # between the first and second slots
    loop.run_until(START + 0.065)
    assert log == [("a", 0.02), ("a", 0.04), ("b", 0.04), ("a", 0.06), ("b", 0.06)]
    clock.discard(a)
    clock.discard(a)  # twice: ignored
    loop.run_until(START + 0.085)
    assert log[-1] == ("b", 0.08) and ("a", 0.08) not in log
    clock.discard(b)
    assert not clock.running and loop.pending() == 0


def test_a_late_loop_catches_up_and_a_stalled_one_reanchors() -> None:
    loop = FakeLoop(latency=0.005)  # every timer runs 5 ms late
    clock = SendClock(loop)
    log: list[tuple[str, float]] = []
    clock.add(Member(loop, "a", log))
    loop.run_until(START + 1.0)
    assert len(log) == 50  # one a slot, late but on schedule (no drift)
    loop.stall(MAX_LAG + 0.5)  # blocked 0.7 s: one frame, then on from now
    loop.run_until(loop.now + 0.1)
    assert clock.reanchors == 1
    times = [t for _, t in log[50:]]
    assert len(times) <= 7  # not 35 stale frames in a burst
    steps = [round(b - a, 6) for a, b in itertools.pairwise(times[1:])]
    assert steps and all(abs(s - TICK) < 1e-6 for s in steps)


def test_a_member_that_raises_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    loop = FakeLoop()
    clock = SendClock(loop)
    log: list[tuple[str, float]] = []

    class Broken:
        def tick(self) -> None:
            raise RuntimeError("bug")

    clock.add(Broken())
    clock.add(Member(loop, "ok", log))
    with caplog.at_level("ERROR"):
        loop.run_until(START + 0.05)
    assert [name for name, _ in log] == ["ok", "ok"]
    assert len(clock) == 1 and caplog.text.count("failed; it is dropped") == 1


async def test_endpoints_of_a_loop_share_one_clock_that_ends_with_the_last() -> None:
    loop = asyncio.get_running_loop()
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.setblocking(False)
    host, port = phone.getsockname()
    allocator = PortAllocator("127.0.0.1", 31600, 31700)
    endpoints = [MediaEndpoint(allocator, name=f"e{i}") for i in range(3)]
    try:
        clock = SendClock.of(loop)
        assert len(clock) == 3 and clock.running
        stream = AudioStream(host, port, 0, Codec(0, "PCMU", 8000), None, "sendrecv")
        for endpoint in endpoints:
            endpoint.set_remote(stream, signalling_host=host)
        for _ in range(200):  # bounded: about 10 frames each
            if all(e.sent_packets >= 10 for e in endpoints):
                break
            await asyncio.sleep(0.02)
        sent = [e.sent_packets for e in endpoints]
        assert min(sent) >= 10 and max(sent) - min(sent) <= 1  # one slot, every endpoint
    finally:
        for endpoint in endpoints:
            endpoint.close()
        phone.close()
    assert not clock.running and len(clock) == 0
    assert SendClock.of(loop) is not clock  # dropped with its last member
