"""The event bus: fan-out in order, bounded queues, a slow subscriber dropped alone."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from pbx.errors import ConfigError
from pbx.events import (
    KINDS,
    CallAnswered,
    CallCreated,
    CallEnded,
    Event,
    EventBus,
    RegistrationDown,
    to_json,
)


def created(n: int) -> CallCreated:
    return CallCreated(f"c{n}", direction="in", caller="1001", callee="1002", at=float(n))


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    one, two = bus.subscribe(maxsize=10), bus.subscribe(maxsize=10)
    events = [created(1), CallAnswered("c1", at=2.0), CallEnded("c1", 0, "remote hangup")]
    for event in events:
        bus.publish(event)
    one.close()
    two.close()
    # close() ends the iterator at once: what was queued is not delivered after it
    assert [e async for e in one] == []
    bus2 = EventBus()
    sub = bus2.subscribe(maxsize=10)
    for event in events:
        bus2.publish(event)
    got = [await anext(sub) for _ in events]
    assert got == events
    assert bus.subscribers == 0 and bus2.subscribers == 1


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=4)
    waiting = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)
    assert not waiting.done()
    bus.publish(created(7))
    assert await asyncio.wait_for(waiting, 5) == created(7)
    sub.close()


async def test_close_ends_a_waiting_iterator() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=4)

    async def drain() -> list[Event]:
        return [e async for e in sub]

    task = asyncio.ensure_future(drain())
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(task, 5) == []
    assert sub.closed and not sub.dropped


async def test_a_full_subscriber_is_dropped_alone_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3, name="slow one")
    fast = bus.subscribe(maxsize=3)
    caplog.set_level(logging.WARNING, logger="pbx.events")
    for n in range(10):
        bus.publish(created(n))  # never blocks, whatever the subscribers do
        assert await anext(fast) == created(n)
    assert slow.dropped and slow.closed
    assert [e async for e in slow] == []  # its iterator has ended
    assert bus.subscribers == 1
    assert caplog.messages == ["events: slow one dropped: 3 events unread (it does not keep up)"]


async def test_following_subscribes_again_after_a_drop_and_ends_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=2, name="service")
    feed = sub.following()
    for n in range(3):  # one more than it holds, unread: the bus drops it
        bus.publish(created(n))
    assert sub.dropped
    got = asyncio.ensure_future(anext(feed))  # the iterator takes a new subscription ...
    await asyncio.sleep(0)
    assert bus.subscribers == 1
    bus.publish(created(9))  # ... which gets what comes next
    assert await asyncio.wait_for(got, 5) == created(9)
    ending = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0)
    [again] = bus._subscribers
    assert again.name == "service" and again.maxsize == 2
    again.close()  # closed, not dropped: the iterator ends
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(ending, 5)


def test_publish_without_a_loop_or_subscribers() -> None:
    bus = EventBus()
    bus.publish(created(1))  # nobody listens: nothing happens
    sub = bus.subscribe(maxsize=2)
    bus.publish(created(2))  # no running loop needed to publish
    assert len(sub) == 1
    assert sub.take() == [created(2)] and len(sub) == 0
    bus.publish(created(3))
    sub.close()
    assert len(sub) == 0


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        EventBus().subscribe(maxsize=0)


def test_json_is_flat_and_names_the_kind() -> None:
    event = CallEnded("5-abc", 487, "Request Terminated", by_remote=True, cdr_id=12, at=3.5)
    assert to_json(event) == {
        "kind": "call.ended",
        "call_id": "5-abc",
        "at": 3.5,
        "status": 487,
        "reason": "Request Terminated",
        "by_remote": True,
        "cdr_id": 12,
    }
    down = RegistrationDown("", aor="1001", contact="<sip:1001@h>", why="expired", at=1.0)
    assert json.loads(json.dumps(to_json(down)))["kind"] == "registration.down"


def test_kinds_are_unique_and_events_frozen() -> None:
    assert len(KINDS) == 16
    assert {k.split(".")[0] for k in KINDS} == {
        "call",
        "registration",
        "queue",
        "agent",
        "campaign",
    }
    event = created(1)
    with pytest.raises(AttributeError):
        event.call_id = "x"  # type: ignore[misc]
