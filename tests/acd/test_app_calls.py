"""The ACD shell's call duties against an in-memory switch (no SIP): an offer the
caller abandons is cancelled (the ring task's dial is cancelled: the switch CANCELs),
an answered offer is bridged and its end is reported at once whoever hangs up, and
no agent is left ringing or on call."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from acd.app import AcdApplication
from acd.model import AgentState
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import CallEvent, Cause, EventKind, Outcome, Subscription
from pbx.store import Store
from pbx.store.queues import Queue
from tests.acd.test_app import StoreSwitch, until

_ids = itertools.count(1)


class Leg:
    """The surface of `pbx.api.Call` the ACD shell uses."""

    def __init__(self, caller: str, callee: str) -> None:
        self.id = f"leg-{next(_ids)}"
        self.caller, self.callee = caller, callee
        self.tags: dict[str, str] = {}
        self.up = True
        self.has_media = True
        self._ended = asyncio.Event()
        self._subs: list[Subscription] = []

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def answer(self) -> bool:
        return self.up

    async def hangup(self, status: int = 0, reason: str = "") -> None:
        if not self.ended:
            self.up = False
            self._ended.set()
            for sub in self._subs:
                sub._offer(CallEvent(EventKind.ENDED, self.id, outcome=Outcome(Cause.NORMAL)))

    async def wait_ended(self) -> Outcome:
        await self._ended.wait()
        return Outcome(Cause.NORMAL)

    async def music(self) -> None:
        await self._ended.wait()

    async def play(self, samples: Any, *, stop_on_digit: bool = False) -> bool:
        return self.up

    def subscribe(self, maxsize: int = 64) -> Subscription:
        sub = Subscription(self.id, maxsize)
        self._subs.append(sub)
        return sub


class FakeBridge:
    def __init__(self, a: Leg, b: Leg) -> None:
        self.a, self.b = a, b
        self.active = True

    async def wait(self) -> Outcome:
        ends = {
            asyncio.ensure_future(self.a.wait_ended()),
            asyncio.ensure_future(self.b.wait_ended()),
        }
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        for end in ends:
            end.cancel()
        await self.a.hangup()
        await self.b.hangup()
        self.active = False
        return Outcome(Cause.NORMAL)

    def split(self) -> None:
        self.active = False


class CallSwitch(StoreSwitch):
    """Dials ring until the test answers them (`answer`) or they are cancelled."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.ringing: dict[str, asyncio.Future[Leg]] = {}
        self.cancelled: list[str] = []

    async def dial(self, target: str, **_: Any) -> Any:
        self.dialled.append(target)
        future: asyncio.Future[Leg] = asyncio.get_running_loop().create_future()
        self.ringing[target] = future
        try:
            return await future
        except asyncio.CancelledError:
            self.cancelled.append(target)
            raise
        finally:
            self.ringing.pop(target, None)

    def answer(self, target: str) -> Leg:
        leg = Leg("queue", target)
        self.ringing[target].set_result(leg)
        return leg

    def bridge(self, a: Leg, b: Leg) -> FakeBridge:
        return FakeBridge(a, b)


@pytest.fixture
async def shell(tmp_path: Path) -> AsyncIterator[tuple[AcdApplication, CallSwitch]]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.users.add("1001", "Xk3-secret-pass", "aiopbx")
    await store.queues.add(Queue("sales", "700", ring_seconds=30.0))
    await store.queues.add_member("sales", "1001")
    switch = CallSwitch(store)
    app = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    await app.start(switch)  # type: ignore[arg-type]
    await app.agent_command("1001", "login")
    try:
        yield app, switch
    finally:
        await app.close()
        await store.close()


def _state(app: AcdApplication) -> AgentState:
    agent = app.engine.agent("1001")
    assert agent is not None
    return agent.state


async def test_a_caller_who_hangs_up_while_the_agent_rings_cancels_the_ring(
    shell: tuple[AcdApplication, CallSwitch],
) -> None:
    app, switch = shell
    caller = Leg("2000", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    assert _state(app) is AgentState.RINGING
    await caller.hangup()
    assert await asyncio.wait_for(served, 5) == "queue sales: caller hung up"
    await until(lambda: switch.cancelled == ["1001"])
    assert _state(app) is AgentState.AVAILABLE
    await app.flush()
    events = [e.event for e in await switch.store.queue_events.between(0, 1e12)]
    assert events == ["AGENTLOGIN", "ENTERQUEUE", "RINGCANCELED", "ABANDON"]


@pytest.mark.parametrize("first", ["agent", "caller"])
async def test_an_answered_offer_is_bridged_and_its_end_reported(
    shell: tuple[AcdApplication, CallSwitch], first: str
) -> None:
    app, switch = shell
    caller = Leg("2000", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    agent = switch.answer("1001")
    await until(lambda: app.bridge_of("1001") is not None)
    assert _state(app) is AgentState.ON_CALL
    await (agent if first == "agent" else caller).hangup()
    cause = await asyncio.wait_for(served, 5)
    assert cause == f"queue sales: answered by 1001, {first} hung up"
    assert agent.ended and caller.ended
    assert _state(app) is AgentState.AVAILABLE and app.bridge_of("1001") is None
    await app.flush()
    events = [e.event for e in await switch.store.queue_events.between(0, 1e12)]
    complete = "COMPLETEAGENT" if first == "agent" else "COMPLETECALLER"
    assert events == ["AGENTLOGIN", "ENTERQUEUE", "CONNECT", complete]


async def test_the_timer_task_ends_wrap_up_and_the_clock_never_goes_back(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.users.add("1001", "Xk3-secret-pass", "aiopbx")
    await store.queues.add(Queue("sales", "700", wrapup_seconds=0.2))
    await store.queues.add_member("sales", "1001")
    switch = CallSwitch(store)
    times = [1000.0]

    def clock() -> float:
        import time

        return time.time() - times[0]  # starts 1000 s late, jumps forward below

    app = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")), clock=clock)
    try:
        await app.start(switch)  # type: ignore[arg-type]
        await app.agent_command("1001", "login")
        caller = Leg("2000", "700")
        served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
        await until(lambda: "1001" in switch.ringing)
        switch.answer("1001")
        await until(lambda: app.bridge_of("1001") is not None)
        seen = app._now()
        times[0] = 1010.0  # the wall clock steps back 10 s: the engine keeps its time
        await caller.hangup()
        await asyncio.wait_for(served, 5)
        assert _state(app) is AgentState.WRAP_UP
        assert app._now() >= seen
        times[0] = 990.0  # and forward 20 s: the wrap-up is over, the timer sees it
        app._wake.set()
        await until(lambda: _state(app) is AgentState.AVAILABLE)
        await app.flush()
        events = [e.event for e in await store.queue_events.between(0, 1e12)]
        assert events[-2:] == ["COMPLETECALLER", "WRAPUPEND"]
        assert [e.time for e in await store.queue_events.between(0, 1e12)] == sorted(
            e.time for e in await store.queue_events.between(0, 1e12)
        )
    finally:
        await app.close()
        await store.close()
