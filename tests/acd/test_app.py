"""The ACD application's shell duties without SIP: restore from the stores, agent
commands and their persistence (agent row and queue events in one transaction, in
input order, then on the bus), the snapshot, the control routes, a failed write that
leaves the engine's truth alone, offline CLI changes followed on reload, close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from acd import app as acd_app
from acd.app import AcdApplication
from acd.engine_actions import AgentChanged, CallbackDeleted, CallbackSaved, Emit
from acd.model import Agent, AgentState, Caller, QueueEvent
from acd.shell_calls import digits_prompts, wait_prompts
from ivr.player import PromptPlayer
from ivr.prompts import DEFAULT_PROMPTS, PromptStore, tone_pattern
from pbx.api import Cause, DialError, Outcome
from pbx.errors import ConfigError, NotFoundError
from pbx.events import (
    AgentStateChanged,
    Event,
    EventBus,
    QueueLogged,
    RegistrationDown,
    RegistrationUp,
)
from pbx.store import Store
from pbx.store.queues import Queue

PASSWORD = "Xk3-secret-pass"


class StoreSwitch:
    """The part of `pbx.api.Switch` a service uses, over a real store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events = EventBus()
        self.routes: dict[str, Any] = {}
        self.body_routes: dict[str, Any] = {}
        self.listeners: list[Any] = []
        self.queue_store = store.queues
        self.agent_store = store.agents
        self.callback_store = store.callbacks
        self.queue_event_store = store.queue_events
        self.voicemail = None
        self.dialled: list[str] = []

    async def user_role(self, name: str) -> str | None:
        try:
            return (await self.store.users.get(name)).role
        except NotFoundError:
            return None

    def registered(self, user: str) -> bool:
        return True

    async def dial(self, target: str, **_: Any) -> Any:
        self.dialled.append(target)
        await asyncio.sleep(0)
        raise DialError(Outcome(Cause.UNAVAILABLE, 480, "not registered"))

    def publish(self, event: Event) -> None:
        self.events.publish(event)

    def add_route(self, key: str, handler: Any) -> None:
        self.routes[key] = handler

    def add_body_route(self, key: str, handler: Any) -> None:
        self.body_routes[key] = handler

    def on_config_change(self, listener: Any) -> None:
        self.listeners.append(listener)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3")
    for user in ("1001", "1002", "1003"):
        await s.users.add(user, PASSWORD, "aiopbx")
    await s.queues.add(Queue("sales", "700", strategy="leastrecent"))
    await s.queues.add(Queue("support", "701"))
    await s.queues.add_member("sales", "1001")
    await s.queues.add_member("sales", "1002")
    await s.queues.add_member("support", "1002")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def app(store: Store, tmp_path: Path) -> AsyncIterator[tuple[AcdApplication, StoreSwitch]]:
    switch = StoreSwitch(store)
    application = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    await application.start(switch)  # type: ignore[arg-type]
    try:
        yield application, switch
    finally:
        await application.close()
        assert not application._tasks  # every task of its own ended


async def test_agent_commands_are_stored_and_published(
    app: tuple[AcdApplication, StoreSwitch], store: Store
) -> None:
    application, switch = app
    feed = switch.events.subscribe()
    assert await application.agent_command("1002", "login") == {
        "agent": "1002",
        "name": "1002",
        "state": "available",
        "since": pytest.approx(application._now(), abs=5),
        "reason": None,
        "queues": ["sales", "support"],
        "call": None,
    }
    paused = await application.agent_command("1002", "pause", reason="lunch")
    assert (paused["state"], paused["reason"]) == ("paused", "lunch")
    await application.flush()
    record = await store.agents.get("1002")
    assert (record.state, record.pause_reason) == ("paused", "lunch")
    events = [(e.agent, e.event, dict(e.data)) for e in await store.queue_events.between(0, 1e12)]
    assert events == [("1002", "AGENTLOGIN", {}), ("1002", "PAUSE", {"reason": "lunch"})]
    published = [await anext(feed) for _ in range(4)]
    assert [
        (type(e).__name__, getattr(e, "event", getattr(e, "state", ""))) for e in published
    ] == [
        ("AgentStateChanged", "available"),
        ("QueueLogged", "AGENTLOGIN"),
        ("AgentStateChanged", "paused"),
        ("QueueLogged", "PAUSE"),
    ]
    assert isinstance(published[2], AgentStateChanged) and published[2].reason == "lunch"
    assert isinstance(published[3], QueueLogged) and published[3].queue == ""


async def test_refusals_and_routes(app: tuple[AcdApplication, StoreSwitch]) -> None:
    application, switch = app
    with pytest.raises(NotFoundError, match="no agent '9999'"):
        await application.agent_command("9999", "login")
    with pytest.raises(ConfigError, match="1003 is in no queue"):
        await application.agent_command("1003", "login")
    with pytest.raises(ConfigError, match="1001 is not a member of queue support"):
        await application.agent_command("1001", "login", queue="support")
    with pytest.raises(ConfigError, match="1001 is not logged in"):
        await application.agent_command("1001", "pause")
    with pytest.raises(ConfigError, match="unknown agent action 'dance'"):
        await application.agent_command("1001", "dance")
    route = switch.body_routes["POST /acd/agent"]
    assert await route({"agent": "1001", "action": "login", "queue": "sales"}) == (
        200,
        await application.agent_command("1001", "login", queue="sales"),
    )
    assert await route({"agent": "1001", "action": "unpause"}) == (
        409,
        {"error": "1001 is not paused (available)"},
    )
    assert await route({"agent": "nobody", "action": "logout"}) == (
        404,
        {"error": "no agent 'nobody'"},
    )
    assert (await route({"agent": 5}))[0] == 400
    snapshot = switch.routes["GET /acd"]({})
    sales, _ = snapshot["queues"]
    assert (sales["name"], sales["number"], sales["strategy"]) == ("sales", "700", "leastrecent")
    assert sales["waiting"] == [] and sales["longest_wait"] == 0.0
    assert sales["agents"]["available"] == 1 and sales["agents"]["logged-out"] == 1
    assert [(a["name"], a["state"], a["queues"]) for a in snapshot["agents"]] == [
        ("1001", "available", ["sales"]),
        ("1002", "logged-out", []),
    ]
    assert application.bridge_of("1001") is None


async def test_one_input_is_one_transaction_and_a_failed_write_is_only_logged(
    app: tuple[AcdApplication, StoreSwitch], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    application, _ = app
    agent = Agent("1001", AgentState.AVAILABLE, 10.0)
    good = QueueEvent(10.0, "", "", "1001", "AGENTLOGIN")
    bad = QueueEvent(10.0, "", "", "1001", "UNPAUSE", {"paused": object()})  # not JSON
    with caplog.at_level("ERROR"):
        application._writes.put_nowait(([AgentChanged(agent, None), Emit(good), Emit(bad)], False))
        await application.flush()
    assert "actions not stored" in caplog.text
    # Nothing of the failed batch landed: neither the row nor the good event.
    assert (await store.agents.get("1001")).state == "logged-out"
    assert await store.queue_events.between(0, 1e12) == []


async def test_offline_cli_changes_are_followed_on_reload(
    app: tuple[AcdApplication, StoreSwitch], store: Store
) -> None:
    application, switch = app
    await store.agents.login("1001", 50.0)
    await store.agents.pause("1001", 51.0, "training")
    [reload] = switch.listeners
    await reload()
    agent = application.engine.agent("1001")
    assert agent is not None and (agent.state, agent.pause_reason) == (
        AgentState.PAUSED,
        "training",
    )
    await application.flush()
    events = [e.event for e in await store.queue_events.between(0, 1e12)]
    assert events == ["AGENTLOGIN", "PAUSE"]  # the CLI's own, not written twice
    assert (await store.agents.get("1001")).state == "paused"


async def test_restart_restores_logins_pauses_and_callbacks(store: Store, tmp_path: Path) -> None:
    await store.agents.login("1001", 10.0)
    await store.agents.login("1002", 10.0, queue="support")
    await store.agents.pause("1002", 11.0, "lunch")
    await store.callbacks.add("sales", "c-1", "0611", joined=5.0, now=6.0)
    application = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    switch = StoreSwitch(store)
    await application.start(switch)  # type: ignore[arg-type]
    try:
        engine = application.engine
        # The callback was offered to 1001 at once; its phone failed: a missed offer.
        await until(lambda: switch.dialled == ["1001"] and not engine.offers())
        await application.flush()
        agent = engine.agent("1001")
        assert agent is not None and (agent.state, agent.missed_offers) == (
            AgentState.AVAILABLE,
            1,
        )
        assert engine.agent("1002").state is AgentState.PAUSED  # type: ignore[union-attr]
        assert engine.logged_in_queues("1001") is None
        assert engine.logged_in_queues("1002") == frozenset({"support"})
        [waiting] = engine.waiting(application._now())
        assert (waiting.call_id, waiting.callback, waiting.number) == ("c-1", True, "0611")
        assert application._callback_ids == {"c-1": 1}
    finally:
        await application.close()
    assert not application._tasks


async def test_close_stops_the_timer_even_while_it_waits(
    app: tuple[AcdApplication, StoreSwitch],
) -> None:
    application, _ = app
    await asyncio.sleep(0)
    names = sorted(t.get_name() for t in application._tasks)
    assert names == ["ACD switch events", "ACD timer", "ACD writer"]


async def until(condition: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_two_agents_changed_by_one_input_land_in_one_transaction(
    app: tuple[AcdApplication, StoreSwitch], store: Store
) -> None:
    application, _ = app
    one = Agent("1001", AgentState.AVAILABLE, 10.0)
    two = Agent("1002", AgentState.PAUSED, 10.0, "lunch")
    bad = QueueEvent(10.0, "", "", "1002", "UNPAUSE", {"paused": object()})
    application._writes.put_nowait(([AgentChanged(one, None), AgentChanged(two, None)], False))
    application._writes.put_nowait(
        ([AgentChanged(Agent("1001", AgentState.PAUSED, 11.0), None), Emit(bad)], False)
    )
    await application.flush()
    assert (await store.agents.get("1001")).state == "available"  # the second batch failed
    record = await store.agents.get("1002")
    assert (record.state, record.pause_reason) == ("paused", "lunch")


@pytest.mark.parametrize(
    ("wait", "said"),
    [
        (None, []),
        (0.0, ["queue-wait-about", "queue-less-than-minute"]),
        (59.9, ["queue-wait-about", "queue-less-than-minute"]),
        (60.0, ["queue-wait-about", "digit-1", "queue-minutes"]),
        (61.0, ["queue-wait-about", "digit-2", "queue-minutes"]),
        (725.0, ["queue-wait-about", "digit-1", "digit-3", "queue-minutes"]),
    ],
)
def test_the_announced_wait_in_words(wait: float | None, said: list[str]) -> None:
    assert wait_prompts(wait) == said


def test_positions_are_said_digit_by_digit_and_every_prompt_exists() -> None:
    assert digits_prompts(12) == ["digit-1", "digit-2"]
    assert digits_prompts("+33 61") == ["digit-3", "digit-3", "digit-6", "digit-1"]
    used = {
        "queue-you-are",
        "queue-in-line",
        "queue-wait-about",
        "queue-minutes",
        "queue-less-than-minute",
        "queue-callback-offer",
        "queue-callback-saved",
        "queue-unavailable",
        "queue-callback-for",
        "agent-logged-in",
        "agent-logged-out",
        "agent-paused",
        "agent-unpaused",
        "agent-not-member",
    }
    assert used <= DEFAULT_PROMPTS.keys()
    patterns = {name: tone_pattern(name).tobytes() for name in DEFAULT_PROMPTS}
    assert len(set(patterns.values())) == len(patterns)  # each tone fallback its own


async def test_registrations_and_configuration_changes_reach_the_engine(
    app: tuple[AcdApplication, StoreSwitch], store: Store
) -> None:
    application, switch = app
    await application.agent_command("1001", "login")
    phones = {"1001": False}
    switch.registered = lambda user: phones.get(user, True)  # type: ignore[method-assign]
    switch.publish(RegistrationDown("", "1001", "sip:1001@127.0.0.1:5062", "expired"))
    await until(lambda: not application.engine.agent("1001").registered)  # type: ignore[union-attr]
    phones["1001"] = True
    switch.publish(RegistrationUp("", "1001", "sip:1001@127.0.0.1:5062"))
    await until(lambda: application.engine.agent("1001").registered)  # type: ignore[union-attr]
    assert not await application.handles("702", switch)  # type: ignore[arg-type]
    await store.queues.add(Queue("billing", "702", strategy="linear"))
    await store.agents.set_skills("1001", {"french": 4})
    [reload] = switch.listeners
    await reload()
    assert await application.handles("702", switch)  # type: ignore[arg-type]
    assert await application.handles("queue:billing", switch)  # type: ignore[arg-type]
    assert await application.handles("*50", switch)  # type: ignore[arg-type]
    assert await application.handles("*2231001", switch)  # type: ignore[arg-type]
    assert not await application.handles("*223", switch)  # type: ignore[arg-type]
    assert application.engine.agent("1001").skills == {"french": 4}  # type: ignore[union-attr]
    assert application.engine.agent("1001").state is AgentState.AVAILABLE  # type: ignore[union-attr]


async def test_a_callback_row_lands_with_the_agent_rows_of_its_input_or_not_at_all(
    app: tuple[AcdApplication, StoreSwitch], store: Store
) -> None:
    application, _ = app
    caller = Caller("c-1", "sales", "+4930111", 5.0)
    ringing = Agent("1001", AgentState.RINGING, 10.0)
    bad = QueueEvent(10.0, "c-1", "sales", "1001", "CONNECT", {"hold": object()})  # not JSON
    application._writes.put_nowait(
        ([CallbackSaved(caller, 0), AgentChanged(ringing, None), Emit(bad)], False)
    )
    await application.flush()
    assert await store.callbacks.pending() == []  # rolled back with the agent row
    assert (await store.agents.get("1001")).state == "logged-out"
    application._writes.put_nowait(([CallbackSaved(caller, 0), AgentChanged(ringing, None)], False))
    await application.flush()
    [saved] = await store.callbacks.pending()
    assert (saved.call_id, saved.number, saved.joined) == ("c-1", "+4930111", 5.0)
    assert (await store.agents.get("1001")).state == "ringing"
    attempt = QueueEvent(12.0, "c-1", "sales", "1001", "CALLBACKATTEMPT", {"status": "answered"})
    talking = Agent("1001", AgentState.ON_CALL, 12.0)
    application._writes.put_nowait(
        ([Emit(attempt), CallbackDeleted("c-1"), AgentChanged(talking, None)], False)
    )
    await application.flush()
    assert await store.callbacks.pending() == []
    assert (await store.callbacks.get(saved.id)).state == "done"
    assert (await store.agents.get("1001")).state == "on-call"
    rows = [(e.event, e.data.get("status")) for e in await store.queue_events.between(0, 1e12)]
    assert rows == [("CALLBACKREQUEST", None), ("CALLBACKATTEMPT", "answered")]


async def test_a_dropped_bus_subscription_is_taken_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus drops a subscriber that does not keep up; the ACD subscribes again and
    still follows its agents' phones."""
    monkeypatch.setattr(acd_app, "BUS_QUEUE", 5)
    switch = StoreSwitch(store)
    application = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    await application.start(switch)  # type: ignore[arg-type]
    try:
        await application.agent_command("1001", "login")
        phones = {"1001": False}
        switch.registered = lambda user: phones.get(user, True)  # type: ignore[method-assign]
        [first] = _acd_subscriptions(switch)
        for _ in range(6):  # more than it may hold, with no chance to read: dropped
            switch.publish(RegistrationDown("", "1003", "sip:1003@127.0.0.1:5062", "expired"))
        assert first.dropped
        await until(lambda: _acd_subscriptions(switch) not in ([], [first]))
        switch.publish(RegistrationDown("", "1001", "sip:1001@127.0.0.1:5062", "expired"))
        await until(lambda: not application.engine.agent("1001").registered)  # type: ignore[union-attr]
    finally:
        await application.close()


def _acd_subscriptions(switch: StoreSwitch) -> list[Any]:
    return [s for s in switch.events._subscribers if s.name == "ACD"]
