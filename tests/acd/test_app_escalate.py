"""An agent escalates its queue call to a specialist, or transfers it out of the queues
(the app's public inputs, no SIP). Escalation:
the caller goes back on music keeping its place, the first agent's leg ends and it
wraps up, the specialist's offer carries the note and is bridged; bad requests are
refused with the right error and change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acd.app import AcdApplication
from acd.engine_core import CallerState
from acd.model import AgentState
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import Cause, Outcome
from pbx.errors import ConfigError, NotFoundError
from pbx.events import QueueOffered
from pbx.store import Store
from pbx.store.queues import Queue
from tests.acd.test_app import until
from tests.acd.test_app_calls import CallSwitch, Leg

PASSWORD = "Xk3-secret-pass"


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[tuple[AcdApplication, CallSwitch]]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    for user in ("1001", "1002"):
        await store.users.add(user, PASSWORD, "aiopbx")
    await store.queues.add(Queue("sales", "700", ring_seconds=30.0, wrapup_seconds=60.0))
    await store.queues.add(Queue("refunds", "701", ring_seconds=30.0))
    await store.queues.add_member("sales", "1001")
    await store.queues.add_member("refunds", "1002")
    switch = CallSwitch(store)
    app = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    await app.start(switch)  # type: ignore[arg-type]
    await app.agent_command("1001", "login")
    await app.agent_command("1002", "login")
    try:
        yield app, switch
    finally:
        await app.close()
        await store.close()


def _state(app: AcdApplication, name: str) -> AgentState:
    agent = app.engine.agent(name)
    assert agent is not None
    return agent.state


async def test_escalating_a_call_hands_it_with_the_note_to_the_specialist(
    desk: tuple[AcdApplication, CallSwitch],
) -> None:
    app, switch = desk
    offers = switch.events.subscribe()
    caller = Leg("+4930123456", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    first = switch.answer("1001")
    await until(lambda: app.bridge_of("1001") is not None)
    joined = app.engine.caller(caller.id)
    assert joined is not None

    result = await app.escalate("1001", queue="refunds", note="wants a refund for order 42")

    assert result == {"call_id": caller.id, "queue": "refunds", "skills": {}}
    await until(lambda: "1002" in switch.ringing)
    assert first.ended and not caller.ended
    assert _state(app, "1001") is AgentState.WRAP_UP  # the sales queue's 60 s wrap-up
    moved = app.engine.caller(caller.id)
    assert moved is not None and moved.joined == joined.joined  # its place is kept
    popped = [e for e in offers.take() if isinstance(e, QueueOffered)]
    assert [(e.agent, e.queue, e.caller, e.notes) for e in popped] == [
        ("1001", "sales", "+4930123456", ""),
        ("1002", "refunds", "+4930123456", "1001: wants a refund for order 42"),
    ]
    second = switch.answer("1002")
    await until(lambda: app.bridge_of("1002") is not None)
    await second.hangup()
    assert await asyncio.wait_for(served, 5) == "queue refunds: answered by 1002, agent hung up"
    await app.flush()
    events = [(e.event, e.queue, e.agent) for e in await switch.store.queue_events.between(0, 1e12)]
    assert events[2:] == [
        ("ENTERQUEUE", "sales", None),
        ("CONNECT", "sales", "1001"),
        ("TRANSFER", "sales", "1001"),
        ("ENTERQUEUE", "refunds", None),
        ("CONNECT", "refunds", "1002"),
        ("COMPLETEAGENT", "refunds", "1002"),
    ]
    transfer = [e for e in await switch.store.queue_events.between(0, 1e12)][4]
    assert transfer.data["target"] == "queue:refunds"


async def test_a_skill_escalation_in_the_same_queue_requires_the_skill(
    desk: tuple[AcdApplication, CallSwitch],
) -> None:
    app, switch = desk
    caller = Leg("2000", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    switch.answer("1001")
    await until(lambda: app.bridge_of("1001") is not None)
    result = await app.escalate("1001", skill="german", level=7)
    assert result == {"call_id": caller.id, "queue": "sales", "skills": {"german": 7}}
    # 1001 has no German: nobody in sales can take it, so it waits on music.
    assert app.engine.caller_state(caller.id) is CallerState.WAITING
    await caller.hangup()
    assert await asyncio.wait_for(served, 5) == "queue sales: caller hung up"


async def test_bad_escalations_are_refused_and_change_nothing(
    desk: tuple[AcdApplication, CallSwitch],
) -> None:
    app, switch = desk
    with pytest.raises(ConfigError, match="on no queue call"):
        await app.escalate("1001", queue="refunds")
    with pytest.raises(NotFoundError, match="no queue 'nowhere'"):
        await app.escalate("1001", queue="nowhere")
    with pytest.raises(ConfigError, match="level 11"):
        await app.escalate("1001", skill="german", level=11)
    with pytest.raises(ConfigError, match="skill '1x'"):
        await app.escalate("1001", skill="1x")
    with pytest.raises(ConfigError, match="a queue, a skill or both"):
        await app.escalate("1001")
    route = switch.body_routes["POST /acd/escalate"]
    assert await route({"agent": 1001}) == (400, {"error": "agent is a required string"})
    assert (await route({"agent": "1001", "level": "7"}))[0] == 400
    assert (await route({"agent": "1001", "queue": "nowhere"}))[0] == 404
    assert (await route({"agent": "1001", "queue": "refunds"}))[0] == 409
    caller = Leg("2000", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    switch.answer("1001")
    await until(lambda: app.bridge_of("1001") is not None)
    with pytest.raises(ConfigError, match="already in queue sales"):
        await app.escalate("1001", queue="sales")
    assert app.bridge_of("1001") is not None  # refused: the call goes on
    await caller.hangup()
    assert await asyncio.wait_for(served, 5) == "queue sales: answered by 1001, caller hung up"


class TransferLeg(Leg):
    """A caller leg that records where it was transferred (the switch would ring it)."""

    def __init__(self, caller: str, callee: str) -> None:
        super().__init__(caller, callee)
        self.transferred: list[str] = []

    async def transfer(self, target: str) -> Outcome:
        self.transferred.append(target)
        await self.hangup()  # the transferred call is over once the target hangs up
        return Outcome(Cause.NORMAL, 200, "answered")


async def test_a_transfer_sends_the_caller_on_and_frees_the_agent(
    desk: tuple[AcdApplication, CallSwitch],
) -> None:
    app, switch = desk
    caller = TransferLeg("+4930123456", "700")
    served = asyncio.ensure_future(app.serve_caller(caller, "sales"))  # type: ignore[arg-type]
    await until(lambda: "1001" in switch.ringing)
    agent = switch.answer("1001")
    await until(lambda: app.bridge_of("1001") is not None)
    assert await app.transfer("1001", "2002") == {"call_id": caller.id, "target": "2002"}
    cause = await asyncio.wait_for(served, 5)
    assert cause.startswith("queue sales: transfer to 2002: ")
    assert caller.transferred == ["2002"] and agent.ended
    assert _state(app, "1001") is AgentState.WRAP_UP
    assert app.engine.caller(caller.id) is None  # out of the queues
    await app.flush()
    rows = await switch.store.queue_events.between(0, 1e12)
    assert [(e.event, e.agent) for e in rows if e.call_id] == [
        ("ENTERQUEUE", None),
        ("CONNECT", "1001"),
        ("TRANSFER", "1001"),
    ]
    assert rows[-1].data["target"] == "2002"


async def test_bad_transfers_are_refused(desk: tuple[AcdApplication, CallSwitch]) -> None:
    app, switch = desk
    with pytest.raises(ConfigError, match="on no queue call"):
        await app.transfer("1001", "2002")
    with pytest.raises(ConfigError, match="escalate"):
        await app.transfer("1001", "queue:refunds")
    with pytest.raises(ConfigError, match="transfer target"):
        await app.transfer("1001", "20 02")
    route = switch.body_routes["POST /acd/transfer"]
    assert (await route({"agent": "1001"}))[0] == 400
    assert (await route({"agent": "1001", "target": "2002"}))[0] == 409
