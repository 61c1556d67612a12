"""The ACD engine on a fake clock: each input and timer, then random sequences.

The engine's `dispatch` is a stand-in written here (ringall and linear), so these
tests need nothing of core's `acd.strategy`. `check` asserts the invariants after
every step.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.engine import AcdEngine, CallerState
from acd.engine_actions import (
    Action,
    AgentChanged,
    Announce,
    Bridge,
    CallbackDeleted,
    CallbackSaved,
    CancelRing,
    DialCallback,
    Emit,
    Exit,
    Overflow,
    Play,
    Requeue,
    Ring,
    RingCallback,
    Voicemail,
)
from acd.model import (
    Agent,
    AgentState,
    Caller,
    Member,
    Offer,
    QueueConfig,
    QueueEvent,
    SkillRule,
    Strategy,
)

# ---- stand-in dispatch (core writes the real one) ------------------------------------


def _free(agent: Agent, queue: QueueConfig, now: float) -> bool:
    if agent.state is not AgentState.AVAILABLE or agent.wrapup_until > now:
        return False
    if not agent.registered:
        return False
    return queue.ring_in_use or not agent.in_use


def _skilled(agent: Agent, queue: QueueConfig, caller: Caller) -> bool:
    need = {**queue.skills, **caller.skills}
    return all(agent.skills.get(s, 0) >= level for s, level in need.items())


def _stand_in(linear: bool) -> Any:
    def dispatch(
        now: float,
        queues: Mapping[str, QueueConfig],
        members: Mapping[str, Sequence[Member]],
        agents: Mapping[str, Agent],
        waiting: Sequence[Caller],
        busy_offers: Collection[str],
        rng: random.Random,
        memory: Any,
    ) -> list[Offer]:
        used = set(busy_offers)
        offers = []
        order = sorted(
            waiting, key=lambda c: (-queues[c.queue].weight, -c.priority, c.joined, c.call_id)
        )
        for caller in order:
            queue = queues[caller.queue]
            picked = [
                m.agent
                for m in sorted(members.get(caller.queue, ()), key=lambda m: m.position)
                if m.agent not in used
                and _free(agents[m.agent], queue, now)
                and _skilled(agents[m.agent], queue, caller)
            ]
            if linear:
                picked = picked[:1]
            if picked:
                used.update(picked)
                offers.append(Offer(caller.call_id, caller.queue, tuple(picked)))
        return offers

    return dispatch


ringall = _stand_in(linear=False)
linear = _stand_in(linear=True)


# ---- helpers ----------------------------------------------------------------------------


def build(
    *queues: QueueConfig,
    agents: Sequence[str | Agent] = ("a1", "a2", "a3"),
    members: Mapping[str, Sequence[Member]] | None = None,
    dispatch: Any = ringall,
    login: bool = True,
    **kw: Any,
) -> AcdEngine:
    if not queues:
        queues = (QueueConfig("sales", "600"),)
    objs = [a if isinstance(a, Agent) else Agent(a) for a in agents]
    if members is None:
        members = {q.name: [Member(a.name, 0, i) for i, a in enumerate(objs)] for q in queues}
    engine = AcdEngine(
        {q.name: q for q in queues},
        members,
        objs,
        dispatch=dispatch,
        rng=random.Random(1),
        **kw,
    )
    if login:
        for a in objs:
            engine.agent_login(a.name, 0.0)
    return engine


def events(actions: Sequence[Action]) -> list[tuple[str, str | None]]:
    return [(a.event.event, a.event.agent) for a in actions if isinstance(a, Emit)]


def event(actions: Sequence[Action], name: str) -> QueueEvent:
    found = [a.event for a in actions if isinstance(a, Emit) and a.event.event == name]
    assert len(found) == 1, (name, found)
    return found[0]


def only(actions: Sequence[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def state(engine: AcdEngine, agent: str) -> AgentState:
    found = engine.agent(agent)
    assert found is not None
    return found.state


def check(engine: AcdEngine, now: float | None = None) -> None:
    """The engine's invariants (round 6 brief): one offer or call per agent, one
    caller per ON_CALL agent, one queue per caller, positions 1..n."""
    offers = engine.offers()
    calls = engine.calls()
    ringing = [a for agents in offers.values() for a in agents]
    assert len(ringing) == len(set(ringing)), "an agent in two offers"
    assert not set(ringing) & set(calls), "an agent ringing and on a call"
    assert len(set(calls.values())) == len(calls), "two agents on one caller"
    for status in engine.agent_statuses(now or 0.0):
        if status.state is AgentState.RINGING:
            assert status.name in ringing, status
        if status.state is AgentState.ON_CALL:
            assert status.name in calls, status
        assert status.name not in ringing or status.state is AgentState.RINGING, status
        assert status.name not in calls or status.state is AgentState.ON_CALL, status
    callers = engine.caller_states()
    talking = (CallerState.CONNECTED, CallerState.DIALING)
    assert sorted(calls.values()) == sorted(c for c, s in callers.items() if s in talking)
    assert sorted(offers) == sorted(c for c, s in callers.items() if s is CallerState.RINGING)
    rows = engine.waiting(now or 0.0)
    assert len({r.call_id for r in rows}) == len(rows), "a caller in two queues"
    for queue in {r.queue for r in rows}:
        positions = [r.position for r in rows if r.queue == queue]
        assert positions == list(range(1, len(positions) + 1))
    if now is not None:
        # No agent waits for a moment nothing watches: AVAILABLE means offerable now,
        # WRAP_UP has its timer ahead.
        for name in {row.name for row in engine.agent_statuses(now)}:
            agent = engine.agent(name)
            assert agent is not None
            if agent.state is AgentState.AVAILABLE:
                assert agent.wrapup_until <= now, agent
            if agent.state is AgentState.WRAP_UP:
                assert agent.wrapup_until > now, agent
        deadline = engine.next_deadline()
        assert deadline is None or deadline > now, (deadline, now)


SALES = QueueConfig("sales", "600")


# ---- joining and offers -------------------------------------------------------------------


def test_join_rings_every_free_agent_with_ringall() -> None:
    engine = build()
    actions = engine.caller_joined("c1", "sales", "+3312", 10.0)
    enter = event(actions, "ENTERQUEUE")
    assert enter == QueueEvent(
        10.0, "c1", "sales", None, "ENTERQUEUE", {"caller": "+3312", "position": 1}
    )
    assert only(actions, Ring) == [Ring("c1", "sales", ("a1", "a2", "a3"), 15.0)]
    assert [state(engine, a) for a in ("a1", "a2", "a3")] == [AgentState.RINGING] * 3
    assert engine.next_deadline() == 25.0
    check(engine, 10.0)


def test_ringall_answer_connects_one_and_cancels_the_others() -> None:
    engine = build()
    engine.caller_joined("c1", "sales", "+3312", 10.0)
    actions = engine.offer_answered("c1", "a2", 14.0)
    connect = event(actions, "CONNECT")
    assert (connect.agent, connect.data) == ("a2", {"hold": 4.0, "ring": 4.0})
    assert only(actions, CancelRing) == [CancelRing("c1", ("a1", "a3"))]
    assert only(actions, Bridge) == [Bridge("c1", "a2")]
    assert state(engine, "a2") is AgentState.ON_CALL
    assert state(engine, "a1") is state(engine, "a3") is AgentState.AVAILABLE
    assert engine.calls() == {"a2": "c1"}
    check(engine, 14.0)


def test_one_offer_per_agent_across_queues() -> None:
    support = QueueConfig("support", "601")
    engine = build(SALES, support, agents=("a1",))
    r1 = engine.caller_joined("c1", "sales", "1", 1.0)
    r2 = engine.caller_joined("c2", "support", "2", 2.0)
    assert only(r1, Ring) == [Ring("c1", "sales", ("a1",), 15.0)]
    assert only(r2, Ring) == []
    check(engine, 2.0)


def test_a_dispatch_answer_that_breaks_the_rules_is_filtered() -> None:
    def rogue(*args: Any) -> list[Offer]:
        return [
            Offer("ghost", "sales", ("a1",)),
            Offer("c1", "sales", ("a1", "a1", "a2", "nobody")),
            Offer("c2", "sales", ("a1",)),
        ]

    engine = build(dispatch=rogue, login=False)
    engine.agent_login("a1", 0.0)
    engine.agent_login("a2", 0.0)
    engine.agent_pause("a2", 0.0, "lunch")
    engine.caller_joined("c2", "sales", "2", 1.0)
    actions = engine.caller_joined("c1", "sales", "1", 1.5)
    assert engine.offers() == {"c2": ("a1",)}
    assert only(actions, Ring) == []
    check(engine, 1.5)


def test_priority_callers_go_first_and_positions_have_no_gaps() -> None:
    engine = build(login=False)
    engine.caller_joined("c1", "sales", "1", 1.0)
    engine.caller_joined("c2", "sales", "2", 2.0)
    actions = engine.caller_joined("vip", "sales", "3", 3.0, priority=5)
    assert event(actions, "ENTERQUEUE").data["position"] == 1
    rows = engine.waiting(10.0, "sales")
    assert [(r.call_id, r.position, r.wait) for r in rows] == [
        ("vip", 1, 7.0),
        ("c1", 2, 9.0),
        ("c2", 3, 8.0),
    ]
    engine.caller_left("c1", 11.0)
    assert [(r.call_id, r.position) for r in engine.waiting(11.0)] == [("vip", 1), ("c2", 2)]
    assert engine.longest_wait(11.0) == 9.0
    check(engine, 11.0)


# ---- no answer, retry, auto-pause --------------------------------------------------------


def test_ring_timeout_gives_ringnoanswer_then_retries_after_the_pause() -> None:
    engine = build(dispatch=linear)
    engine.caller_joined("c1", "sales", "1", 0.0)
    assert engine.offers() == {"c1": ("a1",)}
    actions = engine.on_timer(15.0)
    assert only(actions, CancelRing) == [CancelRing("c1", ("a1",))]
    rna = event(actions, "RINGNOANSWER")
    assert (rna.agent, rna.data) == ("a1", {"ring": 15.0})
    assert only(actions, Ring) == []
    assert engine.agent("a1").missed_offers == 1  # type: ignore[union-attr]
    assert engine.next_deadline() == 20.0
    check(engine, 15.0)
    actions = engine.on_timer(20.0)
    assert only(actions, Ring) == [Ring("c1", "sales", ("a1",), 15.0)]
    check(engine, 20.0)


def test_offer_failed_in_ringall_waits_for_the_others() -> None:
    engine = build()
    engine.caller_joined("c1", "sales", "1", 0.0)
    actions = engine.offer_failed("c1", "a1", 2.0, 486)
    assert events(actions) == [("RINGNOANSWER", "a1")]
    assert engine.offers() == {"c1": ("a2", "a3")}
    engine.offer_failed("c1", "a2", 3.0, 603)
    engine.offer_failed("c1", "a3", 4.0, 480)
    assert engine.offers() == {}
    assert engine.caller_state("c1") is CallerState.WAITING
    assert engine.next_deadline() == 9.0  # retry_seconds 5
    check(engine, 4.0)


def test_n_missed_offers_auto_pause_the_agent() -> None:
    queue = QueueConfig("sales", "600", autopause_after=2, retry_seconds=1.0)
    engine = build(queue, agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    first = engine.on_timer(15.0)
    assert ("PAUSE", "a1") not in events(first)
    engine.on_timer(16.0)  # retry: rings again
    assert engine.offers() == {"c1": ("a1",)}
    second = engine.on_timer(31.0)
    pause = event(second, "PAUSE")
    assert (pause.agent, pause.queue, pause.data) == ("a1", "", {"reason": "auto-pause"})
    agent = engine.agent("a1")
    assert agent is not None
    assert (agent.state, agent.pause_reason, agent.missed_offers) == (
        AgentState.PAUSED,
        "auto-pause",
        2,
    )
    assert only(engine.on_timer(32.0), Ring) == []
    check(engine, 32.0)


def test_an_answer_resets_the_missed_offers() -> None:
    engine = build(dispatch=linear, agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.on_timer(15.0)
    engine.on_timer(20.0)
    engine.offer_answered("c1", "a1", 21.0)
    assert engine.agent("a1").missed_offers == 0  # type: ignore[union-attr]


# ---- calls end, wrap-up, pause ------------------------------------------------------------


def test_wrap_up_is_honoured_then_wrapupend() -> None:
    queue = QueueConfig("sales", "600", wrapup_seconds=30.0)
    engine = build(queue, dispatch=linear, agents=("a1", "a2"))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 5.0)
    actions = engine.call_completed("c1", 65.0, by_agent=True)
    done = event(actions, "COMPLETEAGENT")
    assert (done.agent, done.data) == ("a1", {"hold": 5.0, "talk": 60.0, "position": 1})
    agent = engine.agent("a1")
    assert agent is not None
    assert agent.state is AgentState.WRAP_UP and agent.wrapup_until == 95.0
    assert agent.calls_taken == {"sales": 1} and agent.last_call_end == {"sales": 65.0}
    assert agent.talk_seconds == 60.0
    # a2 takes the next caller; a third waits: a1 is in wrap-up.
    engine.caller_joined("c2", "sales", "2", 70.0)
    assert engine.offers() == {"c2": ("a2",)}
    engine.offer_answered("c2", "a2", 71.0)
    engine.caller_joined("c3", "sales", "3", 72.0)
    assert engine.offers() == {}
    assert engine.next_deadline() == 95.0
    actions = engine.on_timer(95.0)
    end = event(actions, "WRAPUPEND")
    assert (end.call_id, end.agent, end.queue, end.data) == ("c1", "a1", "sales", {"wrapup": 30.0})
    assert only(actions, Ring) == [Ring("c3", "sales", ("a1",), 15.0)]
    check(engine, 95.0)


def test_logout_during_wrap_up_ends_it() -> None:
    queue = QueueConfig("sales", "600", wrapup_seconds=30.0)
    engine = build(queue, agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 1.0)
    engine.call_completed("c1", 2.0, by_agent=True)
    engine.agent_logout("a1", 3.0)
    assert engine.next_deadline() is None
    engine.caller_joined("c2", "sales", "2", 4.0)
    actions = engine.agent_login("a1", 5.0)
    assert only(actions, Ring) == [Ring("c2", "sales", ("a1",), 15.0)]
    check(engine, 5.0)


def test_agent_wrapup_overrides_the_queue() -> None:
    queue = QueueConfig("sales", "600", wrapup_seconds=30.0)
    engine = build(queue, agents=(Agent("a1", wrapup_seconds=0.0),))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 1.0)
    actions = engine.call_completed("c1", 2.0, by_agent=False)
    assert events(actions)[0] == ("COMPLETECALLER", "a1")
    assert state(engine, "a1") is AgentState.AVAILABLE


def test_a_paused_agent_is_never_offered() -> None:
    engine = build(dispatch=ringall)
    actions = engine.agent_pause("a2", 1.0, "lunch")
    assert event(actions, "PAUSE").data == {"reason": "lunch"}
    rung: list[str] = []
    for i in range(6):
        now = 10.0 * (i + 1)
        actions = engine.caller_joined(f"c{i}", "sales", str(i), now)
        rung += [a for ring in only(actions, Ring) for a in ring.agents]
        engine.offer_answered(f"c{i}", "a1" if i % 2 else "a3", now + 1)
        actions = engine.call_completed(f"c{i}", now + 5, by_agent=True)
        rung += [a for ring in only(actions, Ring) for a in ring.agents]
        check(engine, now + 5)
    assert rung and "a2" not in rung
    actions = engine.agent_unpause("a2", 100.0)
    assert event(actions, "UNPAUSE").data == {"paused": 99.0}
    assert state(engine, "a2") is AgentState.AVAILABLE


def test_pause_and_logout_asked_during_a_call_apply_when_it_ends() -> None:
    queue = QueueConfig("sales", "600", wrapup_seconds=10.0)
    engine = build(queue, agents=("a1", "a2"))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 1.0)
    assert engine.agent_pause("a1", 2.0, "coffee") == []
    assert state(engine, "a1") is AgentState.ON_CALL
    actions = engine.call_completed("c1", 3.0, by_agent=False)
    assert event(actions, "PAUSE").data == {"reason": "coffee"}
    assert engine.agent("a1").pause_reason == "coffee"  # type: ignore[union-attr]
    engine.caller_joined("c2", "sales", "2", 4.0)
    engine.offer_answered("c2", "a2", 5.0)
    assert engine.agent_logout("a2", 6.0) == []
    actions = engine.call_completed("c2", 7.0, by_agent=True)
    assert event(actions, "AGENTLOGOFF").data == {"logged": 7.0}
    assert state(engine, "a2") is AgentState.LOGGED_OUT
    check(engine, 7.0)


def test_pause_while_ringing_cancels_that_ring() -> None:
    engine = build()
    engine.caller_joined("c1", "sales", "1", 0.0)
    actions = engine.agent_pause("a1", 1.0, "break")
    assert only(actions, CancelRing) == [CancelRing("c1", ("a1",))]
    assert ("RINGCANCELED", "a1") in events(actions)
    assert engine.offers() == {"c1": ("a2", "a3")}
    check(engine, 1.0)


def test_an_agent_busy_on_another_call_is_offered_only_with_ring_in_use() -> None:
    engine = build(agents=("a1",))
    engine.agent_in_use("a1", True, 0.5)
    assert only(engine.caller_joined("c1", "sales", "1", 1.0), Ring) == []
    actions = engine.agent_in_use("a1", False, 2.0)
    assert only(actions, Ring) == [Ring("c1", "sales", ("a1",), 15.0)]
    eager = build(QueueConfig("sales", "600", ring_in_use=True), agents=("a1",))
    eager.agent_in_use("a1", True, 0.5)
    assert only(eager.caller_joined("c1", "sales", "1", 1.0), Ring) != []


def test_an_unregistered_phone_is_not_offered_and_counts_unavailable() -> None:
    queue = QueueConfig("sales", "600", leave_when_empty=frozenset({"unavailable"}))
    engine = build(queue, agents=("a1", "a2"), login=False)
    engine.agent_login("a1", 0.0)
    engine.agent_login("a2", 0.0)
    engine.agent_registered("a1", False, 0.5)
    actions = engine.caller_joined("c1", "sales", "1", 1.0)
    assert only(actions, Ring) == [Ring("c1", "sales", ("a2",), 15.0)]
    engine.caller_joined("c2", "sales", "2", 2.0)
    actions = engine.agent_registered("a2", False, 3.0)  # a2 rings c1: c2 has no one left
    assert only(actions, Exit) == [Exit("c2", "empty")]
    actions = engine.agent_registered("a1", True, 4.0)
    assert engine.agent("a1").registered  # type: ignore[union-attr]
    check(engine, 4.0)


# ---- leaving ---------------------------------------------------------------------------------


def test_caller_left_while_ringing_abandons_and_frees_the_agents() -> None:
    engine = build(agents=("a1", "a2"))
    engine.caller_joined("c0", "sales", "0", 0.0)
    engine.offer_answered("c0", "a1", 1.0)
    engine.caller_joined("c1", "sales", "1", 2.0)
    actions = engine.caller_left("c1", 7.0)
    abandon = event(actions, "ABANDON")
    assert abandon.data == {"position": 1, "entry_position": 1, "wait": 5.0}
    assert event(actions, "RINGCANCELED").data == {"ring": 5.0}
    assert only(actions, CancelRing) == [CancelRing("c1", ("a2",))]
    assert state(engine, "a2") is AgentState.AVAILABLE
    # The agent's leg answers a moment too late: the shell is told to hang it up.
    assert engine.offer_answered("c1", "a2", 7.1) == [CancelRing("c1", ("a2",))]
    assert state(engine, "a2") is AgentState.AVAILABLE
    check(engine, 7.1)


def test_a_late_answer_to_an_older_offer_is_not_taken_for_the_new_one() -> None:
    queue = QueueConfig("sales", "600", retry_seconds=0.0)
    engine = build(queue, dispatch=linear, agents=("a1",))
    first = only(engine.caller_joined("c1", "sales", "1", 0.0), Ring)[0]
    second = only(engine.on_timer(15.0), Ring)[0]  # no retry pause: a1 rung again at once
    assert second.offer_id != first.offer_id
    # The first leg's answer arrives now: hung up, the second offer still rings.
    late = engine.offer_answered("c1", "a1", 15.2, offer_id=first.offer_id)
    assert late == [CancelRing("c1", ("a1",))] and late[0].offer_id == first.offer_id
    assert engine.offer_failed("c1", "a1", 15.3, 408, offer_id=first.offer_id) == []
    assert engine.offers() == {"c1": ("a1",)}
    actions = engine.offer_answered("c1", "a1", 16.0, offer_id=second.offer_id)
    assert only(actions, Bridge) == [Bridge("c1", "a1")]
    check(engine, 16.0)


def test_max_wait_overflows_to_the_target() -> None:
    queue = QueueConfig("sales", "600", max_wait_seconds=60.0, overflow="vm:100")
    engine = build(queue, agents=("a1",))
    engine.caller_joined("c0", "sales", "0", 0.0)
    engine.offer_answered("c0", "a1", 0.5)
    engine.caller_joined("c1", "sales", "1", 10.0)
    assert engine.next_deadline() == 70.0  # c0's max wait was disarmed on connect
    actions = engine.on_timer(70.0)
    assert event(actions, "EXITWITHTIMEOUT").data == {
        "position": 1,
        "entry_position": 1,
        "wait": 60.0,
    }
    assert only(actions, Overflow) == [Overflow("c1", "vm:100")]
    assert only(actions, Exit) == []
    assert engine.caller_state("c1") is None
    check(engine, 70.0)


def test_max_wait_without_overflow_exits_and_cancels_the_ring() -> None:
    queue = QueueConfig("sales", "600", max_wait_seconds=10.0, ring_seconds=30.0)
    engine = build(queue, agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    actions = engine.on_timer(10.0)
    assert events(actions) == [("RINGCANCELED", "a1"), ("EXITWITHTIMEOUT", None)]
    assert only(actions, Exit) == [Exit("c1", "timeout")]
    assert state(engine, "a1") is AgentState.AVAILABLE
    check(engine, 10.0)


def test_join_empty_and_max_callers_refuse_without_an_event() -> None:
    queue = QueueConfig("sales", "600", join_empty=frozenset({"paused"}), max_callers=1)
    engine = build(queue, agents=("a1",), login=False)
    assert engine.caller_joined("c1", "sales", "1", 0.0) == [Exit("c1", "joinempty")]
    engine.agent_login("a1", 1.0)
    engine.agent_pause("a1", 1.0, "lunch")
    assert engine.caller_joined("c1", "sales", "1", 2.0) == [Exit("c1", "joinempty")]
    engine.agent_unpause("a1", 3.0)
    engine.agent_in_use("a1", True, 3.0)  # not a join_empty condition here
    assert event(engine.caller_joined("c1", "sales", "1", 4.0), "ENTERQUEUE")
    assert engine.caller_joined("c2", "sales", "2", 5.0) == [Exit("c2", "full")]
    assert engine.caller_joined("c1", "sales", "1", 5.0) == []  # repeated: absorbed
    assert engine.caller_joined("c3", "nope", "3", 5.0) == [Exit("c3", "no-queue")]


def test_leave_when_empty_when_the_last_agent_pauses_or_leaves() -> None:
    queue = QueueConfig("sales", "600", leave_when_empty=frozenset({"paused"}), wrapup_seconds=60)
    engine = build(queue, agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 1.0)
    engine.call_completed("c1", 2.0, by_agent=True)
    engine.caller_joined("c2", "sales", "2", 3.0)  # a1 in wrap-up: not a condition
    assert engine.caller_state("c2") is CallerState.WAITING
    actions = engine.agent_pause("a1", 5.0, "lunch")
    assert event(actions, "EXITEMPTY").data == {"position": 1, "entry_position": 1, "wait": 2.0}
    assert only(actions, Exit) == [Exit("c2", "empty")]
    engine.agent_unpause("a1", 6.0)
    engine.caller_joined("c3", "sales", "3", 6.5)
    actions = engine.agent_logout("a1", 7.0)
    assert events(actions) == [("AGENTLOGOFF", "a1"), ("EXITEMPTY", None)]
    assert engine.caller_state("c3") is None
    check(engine, 7.0)


def test_voicemail_key_exits_with_key() -> None:
    queue = QueueConfig("sales", "600", voicemail_key="0")
    engine = build(queue, login=False)
    engine.caller_joined("c1", "sales", "1", 0.0)
    assert engine.key_pressed("c1", "7", 1.0) == []
    actions = engine.key_pressed("c1", "0", 4.0)
    assert event(actions, "EXITWITHKEY").data == {"key": "0", "position": 1, "wait": 4.0}
    assert only(actions, Voicemail) == [Voicemail("c1", "sales")]
    assert engine.caller_state("c1") is None


# ---- agents lost -------------------------------------------------------------------------------


def test_agent_lost_while_ringing_is_a_missed_offer() -> None:
    engine = build(agents=("a1", "a2"))
    engine.caller_joined("c1", "sales", "1", 0.0)
    actions = engine.agent_lost("a1", 3.0)
    assert only(actions, CancelRing) == [CancelRing("c1", ("a1",))]
    assert ("RINGNOANSWER", "a1") in events(actions)
    assert state(engine, "a1") is AgentState.AVAILABLE
    assert engine.offers() == {"c1": ("a2",)}
    check(engine, 3.0)


def test_agent_lost_on_call_ends_the_call_and_the_agent_is_not_stuck() -> None:
    engine = build(agents=("a1",))
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.offer_answered("c1", "a1", 2.0)
    actions = engine.agent_lost("a1", 12.0)
    assert event(actions, "COMPLETEAGENT").data == {"hold": 2.0, "talk": 10.0, "position": 1}
    assert only(actions, Exit) == [Exit("c1", "agent-lost")]
    assert state(engine, "a1") is AgentState.AVAILABLE
    assert engine.calls() == {} and engine.caller_state("c1") is None
    # Later reports about that call change nothing.
    assert engine.call_completed("c1", 13.0, by_agent=False) == []
    assert engine.caller_left("c1", 13.0) == []
    check(engine, 13.0)


def test_agent_lost_in_other_states_changes_nothing_but_in_use() -> None:
    engine = build(agents=("a1",))
    engine.agent_in_use("a1", True, 0.0)
    actions = engine.agent_lost("a1", 1.0)
    assert only(actions, AgentChanged)[0].agent.in_use is False
    assert state(engine, "a1") is AgentState.AVAILABLE


# ---- callbacks ------------------------------------------------------------------------------


def test_a_callback_keeps_its_place_and_is_served_before_later_callers() -> None:
    engine = build(dispatch=linear, agents=("a1",), login=False)
    engine.caller_joined("c1", "sales", "+1", 0.0)
    engine.caller_joined("c2", "sales", "+2", 10.0)
    engine.caller_joined("c3", "sales", "+3", 20.0)
    actions = engine.key_pressed("c2", "1", 30.0)
    assert event(actions, "CALLBACKREQUEST").data == {"number": "+2", "position": 2, "wait": 20.0}
    saved = only(actions, CallbackSaved)
    assert len(saved) == 1 and saved[0].caller.callback and saved[0].caller.joined == 10.0
    assert only(actions, Exit) == [Exit("c2", "callback")]
    assert engine.caller_left("c2", 31.0) == []  # the caller hangs up: the place stays
    assert [(r.call_id, r.position, r.callback) for r in engine.waiting(31.0)] == [
        ("c1", 1, False),
        ("c2", 2, True),
        ("c3", 3, False),
    ]
    engine.agent_login("a1", 40.0)
    assert engine.offers() == {"c1": ("a1",)}
    engine.offer_answered("c1", "a1", 41.0)
    actions = engine.call_completed("c1", 50.0, by_agent=False)
    assert only(actions, RingCallback) == [RingCallback("c2", "sales", ("a1",), "+2", 15.0)]
    actions = engine.offer_answered("c2", "a1", 52.0)
    assert only(actions, DialCallback) == [DialCallback("c2", "a1", "+2", 1)]
    assert only(actions, Bridge) == []
    assert engine.caller_state("c2") is CallerState.DIALING
    check(engine, 52.0)
    actions = engine.callback_result("c2", 60.0, answered=True)
    assert event(actions, "CALLBACKATTEMPT").data == {"attempt": 1, "status": "answered"}
    assert event(actions, "CONNECT").data == {"hold": 50.0, "ring": 2.0}
    assert only(actions, CallbackDeleted) == [CallbackDeleted("c2")]
    assert only(actions, Bridge) == [Bridge("c2", "a1")]
    assert engine.offers() == {}  # c3 waits for a1
    check(engine, 60.0)


def test_a_callback_retries_then_drops() -> None:
    queue = QueueConfig("sales", "600", callback_attempts=2)
    engine = build(queue, agents=("a1",), login=False, callback_retry_seconds=60.0)
    engine.caller_joined("c1", "sales", "+1", 0.0)
    engine.callback_requested("c1", 5.0)
    engine.agent_login("a1", 10.0)
    engine.offer_answered("c1", "a1", 11.0)
    actions = engine.callback_result("c1", 40.0, answered=False)
    assert event(actions, "CALLBACKATTEMPT").data == {"attempt": 1, "status": "no-answer"}
    assert only(actions, CallbackSaved)[0].attempts == 1
    assert state(engine, "a1") is AgentState.AVAILABLE
    assert engine.offers() == {}
    assert engine.next_deadline() == 100.0
    check(engine, 40.0)
    actions = engine.on_timer(100.0)
    assert only(actions, RingCallback) == [RingCallback("c1", "sales", ("a1",), "+1", 15.0)]
    actions = engine.offer_answered("c1", "a1", 101.0)
    assert only(actions, DialCallback) == [DialCallback("c1", "a1", "+1", 2)]
    actions = engine.caller_left("c1", 130.0)  # the customer's leg failed
    assert event(actions, "CALLBACKATTEMPT").data == {"attempt": 2, "status": "no-answer"}
    assert event(actions, "CALLBACKDROP").data == {"attempts": 2}
    assert only(actions, CallbackDeleted) == [CallbackDeleted("c1")]
    assert engine.caller_state("c1") is None and state(engine, "a1") is AgentState.AVAILABLE
    check(engine, 130.0)


def test_callback_cancel_and_agent_lost_while_dialling() -> None:
    engine = build(agents=("a1",), login=False)
    engine.caller_joined("c1", "sales", "+1", 0.0)
    engine.caller_joined("c2", "sales", "+2", 0.0)
    engine.callback_requested("c1", 1.0)
    engine.callback_requested("c2", 1.0)
    actions = engine.callback_cancel("c2", 2.0)
    assert event(actions, "CALLBACKDROP").data == {"attempts": 0}
    engine.agent_login("a1", 3.0)
    engine.offer_answered("c1", "a1", 4.0)
    actions = engine.agent_lost("a1", 5.0)
    assert event(actions, "CALLBACKATTEMPT").data == {"attempt": 1, "status": "agent-lost"}
    assert state(engine, "a1") is AgentState.AVAILABLE
    assert engine.caller_state("c1") is CallerState.WAITING
    check(engine, 5.0)


# ---- timers: announcements, relaxation --------------------------------------------------------


def test_position_and_periodic_announcements() -> None:
    queue = QueueConfig(
        "sales", "600", announce_frequency=30.0, periodic_announce="thanks", periodic_frequency=45.0
    )
    engine = build(queue, login=False, estimate=lambda pos, q, now: 60.0 * pos)
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.caller_joined("c2", "sales", "2", 5.0)
    assert engine.next_deadline() == 30.0
    assert engine.on_timer(30.0) == [Announce("c1", 1, 60.0)]
    assert engine.on_timer(35.0) == [Announce("c2", 2, 120.0)]
    assert engine.on_timer(45.0) == [Play("c1", "thanks")]
    actions = engine.on_timer(200.0)  # late timer: one of each, not a burst
    assert only(actions, Announce) == [Announce("c1", 1, 60.0), Announce("c2", 2, 120.0)]
    assert only(actions, Play) == [Play("c1", "thanks"), Play("c2", "thanks")]
    check(engine, 200.0)


def test_skill_relaxation_moments_redispatch() -> None:
    calls: list[float] = []

    def counting(now: float, *args: Any) -> list[Offer]:
        calls.append(now)
        return []

    queue = QueueConfig(
        "sales",
        "600",
        skills={"fr": 8},
        skill_rules=(SkillRule(20.0, relax=3), SkillRule(50.0, drop=True)),
    )
    engine = build(queue, dispatch=counting)
    engine.caller_joined("c1", "sales", "1", 5.0)
    assert engine.next_deadline() == 25.0
    engine.on_timer(25.0)
    assert engine.next_deadline() == 55.0
    engine.on_timer(55.0)
    assert engine.next_deadline() is None
    assert calls == [5.0, 25.0, 55.0]
    # An escalation restarts the rules' clock: the new requirement relaxes from then.
    engine.escalate("c1", 60.0, skill="de", level=6)
    assert engine.caller("c1").skills == {"de": 6}  # type: ignore[union-attr]
    assert engine.next_deadline() == 80.0


# ---- escalation, reload, restore --------------------------------------------------------------


def test_escalating_a_connected_call_to_a_specialist_queue_keeps_the_wait() -> None:
    support = QueueConfig("support", "601")
    members = {"sales": [Member("a1")], "support": [Member("s1")]}
    engine = build(SALES, support, agents=("a1", "s1"), members=members)
    engine.caller_joined("c1", "sales", "+1", 0.0)
    engine.offer_answered("c1", "a1", 10.0)
    actions = engine.escalate("c1", 70.0, queue="support", note="refund, order 42")
    transfer = event(actions, "TRANSFER")
    assert (transfer.queue, transfer.agent, transfer.data) == (
        "sales",
        "a1",
        {"target": "queue:support", "hold": 10.0, "talk": 60.0},
    )
    assert only(actions, Requeue) == [Requeue("c1", "support", "a1")]
    assert event(actions, "ENTERQUEUE").queue == "support"
    assert only(actions, Ring) == [Ring("c1", "support", ("s1",), 15.0, ("refund, order 42",))]
    caller = engine.caller("c1")
    assert caller is not None and caller.joined == 0.0 and caller.queue == "support"
    assert caller.relax_from == 70.0 and caller.notes == ("refund, order 42",)
    assert engine.agent("a1").calls_taken == {"sales": 1}  # type: ignore[union-attr]
    check(engine, 70.0)


def test_escalating_a_waiting_call_to_a_skill() -> None:
    agents = (Agent("a1"), Agent("a2", skills={"es": 7}))
    engine = build(agents=agents, dispatch=linear, login=False)
    engine.agent_login("a1", 0.0)
    engine.caller_joined("c1", "sales", "1", 1.0)
    assert engine.offers() == {"c1": ("a1",)}
    engine.agent_login("a2", 2.0)
    actions = engine.escalate("c1", 3.0, skill="es", level=5)
    assert events(actions) == [("RINGCANCELED", "a1")]  # no TRANSFER: same queue
    assert engine.offers() == {"c1": ("a2",)}
    assert engine.caller("c1").skills == {"es": 5}  # type: ignore[union-attr]
    check(engine, 3.0)


def test_update_config_keeps_waiting_callers_and_exits_removed_queues() -> None:
    support = QueueConfig("support", "601")
    engine = build(SALES, support, login=False)
    engine.caller_joined("c1", "sales", "1", 0.0)
    engine.caller_joined("c2", "support", "2", 1.0)
    actions = engine.update_config(
        {"sales": QueueConfig("sales", "600", announce_frequency=10.0)},
        {"sales": [Member("a1")]},
        5.0,
    )
    assert events(actions) == [("EXITEMPTY", None)]
    assert only(actions, Exit) == [Exit("c2", "queue-removed")]
    assert [r.call_id for r in engine.waiting(5.0)] == ["c1"]
    assert engine.next_deadline() == 15.0
    actions = engine.agent_login("a1", 6.0)
    assert only(actions, Ring) == [Ring("c1", "sales", ("a1",), 15.0)]
    check(engine, 6.0)


def test_update_config_with_agents_changes_skills_and_logs_out_the_removed() -> None:
    engine = build(agents=("a1", "a2"), login=False, dispatch=linear)
    engine.agent_login("a1", 0.0)
    engine.agent_login("a2", 0.0)
    engine.caller_joined("c1", "sales", "1", 1.0)
    engine.offer_answered("c1", "a1", 2.0)
    members = {"sales": [Member("a1"), Member("a3")]}
    agents = [Agent("a1", skills={"fr": 9}, wrapup_seconds=4.0), Agent("a3")]
    actions = engine.update_config({"sales": SALES}, members, 3.0, agents=agents)
    assert events(actions) == [("AGENTLOGOFF", "a2")]
    a1 = engine.agent("a1")
    assert a1 is not None and a1.state is AgentState.ON_CALL and a1.skills == {"fr": 9}
    assert state(engine, "a3") is AgentState.LOGGED_OUT
    engine.call_completed("c1", 5.0, by_agent=True)
    assert engine.agent("a1").wrapup_until == 9.0  # type: ignore[union-attr]
    check(engine, 5.0)


def test_restore_after_a_crash() -> None:
    agents = [
        Agent("a1", AgentState.ON_CALL, 50.0),
        Agent("a2", AgentState.PAUSED, 60.0, pause_reason="lunch"),
        Agent("a3", AgentState.LOGGED_OUT),
        Agent("a4", AgentState.RINGING, 70.0),
        Agent("a5", AgentState.WRAP_UP, 80.0, wrapup_until=999.0),
    ]
    members = {"sales": [Member(a.name, 0, i) for i, a in enumerate(agents)]}
    engine = AcdEngine({"sales": SALES}, members, dispatch=linear)
    callbacks = [Caller("cb1", "sales", "+1", 100.0, callback=True, entry_position=2)]
    actions = engine.restore(agents, callbacks, 500.0, attempts={"cb1": 1})
    assert [(e.event.event, e.event.agent, dict(e.event.data)) for e in only(actions, Emit)] == [
        ("AGENTRESTORED", "a1", {"state": "on-call", "since": 50.0}),
        ("AGENTRESTORED", "a4", {"state": "ringing", "since": 70.0}),
    ]
    assert state(engine, "a2") is AgentState.PAUSED
    assert engine.agent("a2").pause_reason == "lunch"  # type: ignore[union-attr]
    assert state(engine, "a3") is AgentState.LOGGED_OUT
    assert only(actions, RingCallback) == [RingCallback("cb1", "sales", ("a1",), "+1", 15.0)]
    engine.caller_joined("c9", "sales", "+9", 501.0)
    rows = engine.waiting(501.0)
    assert [(r.call_id, r.position) for r in rows] == [("cb1", 1), ("c9", 2)]
    engine.offer_answered("cb1", "a1", 502.0)
    actions = engine.callback_result("cb1", 503.0, answered=False)
    assert only(actions, CallbackSaved)[0].attempts == 2  # 1 stored + this one, of 3
    assert engine.caller_state("cb1") is CallerState.WAITING
    check(engine, 503.0)


def test_agent_statuses_for_the_wallboard() -> None:
    engine = build(agents=("a1", "a2"))
    engine.agent_pause("a2", 5.0, "training")
    engine.caller_joined("c1", "sales", "1", 6.0)
    rows = engine.agent_statuses(10.0)
    assert [(r.name, r.state, r.seconds, r.pause_reason, r.caller) for r in rows] == [
        ("a1", AgentState.RINGING, 4.0, None, "c1"),
        ("a2", AgentState.PAUSED, 5.0, "training", None),
    ]
    assert engine.logged_in_queues("a1") is None
    engine.agent_login("a1", 11.0, queues=["support"])
    assert engine.logged_in_queues("a1") == frozenset({"support"})


def test_the_default_dispatch_is_cores() -> None:
    """Without a stand-in the engine decides with acd.strategy: a linear queue offers
    its first member alone (the tests' ringall stand-in would ring all three)."""
    engine = build(QueueConfig("sales", "600", strategy=Strategy.LINEAR), dispatch=None)
    actions = engine.caller_joined("c1", "sales", "+3312", 10.0)
    assert only(actions, Ring) == [Ring("c1", "sales", ("a1",), 15.0)]
    check(engine, 10.0)


# ---- random sequences (hypothesis) ------------------------------------------------------------

AGENTS = ("a1", "a2", "a3")
CALLERS = tuple(f"c{i}" for i in range(6))

queue_configs = st.builds(
    QueueConfig,
    name=st.just("sales"),
    number=st.just("600"),
    ring_seconds=st.sampled_from([5.0, 15.0]),
    retry_seconds=st.sampled_from([0.0, 5.0]),
    wrapup_seconds=st.sampled_from([0.0, 10.0]),
    max_callers=st.sampled_from([0, 3]),
    max_wait_seconds=st.sampled_from([0.0, 40.0]),
    overflow=st.sampled_from([None, "vm:100"]),
    join_empty=st.sampled_from([frozenset(), frozenset({"paused", "inuse"})]),
    leave_when_empty=st.sampled_from([frozenset(), frozenset({"paused"}), frozenset({"ringing"})]),
    announce_frequency=st.sampled_from([0.0, 20.0]),
    ring_in_use=st.booleans(),
    autopause_after=st.sampled_from([0, 2]),
    skills=st.sampled_from([{}, {"fr": 3}]),
    skill_rules=st.sampled_from([(), (SkillRule(15.0, drop=True),)]),
    callback_attempts=st.sampled_from([1, 2]),
    voicemail_key=st.sampled_from([None, "0"]),
)

ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "join",
                "join",
                "join",
                "left",
                "answer",
                "answer",
                "answer",
                "fail",
                "complete",
                "complete",
                "complete",
                "callback",
                "result",
                "key",
                "login",
                "logout",
                "pause",
                "unpause",
                "in_use",
                "lost",
                "register",
                "escalate",
                "reload",
                "stray",
            ]
        ),
        st.integers(0, 5),
        st.integers(0, 5),
        st.booleans(),
        st.sampled_from([0.0, 0.0, 1.0, 3.0, 7.0, 20.0]),
    ),
    min_size=5,
    max_size=80,
)


CLOSING = {
    "ABANDON",
    "COMPLETEAGENT",
    "COMPLETECALLER",
    "EXITEMPTY",
    "EXITWITHTIMEOUT",
    "EXITWITHKEY",
    "CALLBACKDROP",
    "TRANSFER",
}


class Ledger:
    """Reads the emitted events as the stats will: every stay in a queue opens with
    ENTERQUEUE and closes with exactly one closing event; CONNECT once per stay;
    per-call events only inside a stay; logins and logoffs alternate."""

    def __init__(self, logged: Collection[str]) -> None:
        self.open: dict[str, str] = {}
        self.connected: set[str] = set()
        self.logged = set(logged)

    def feed(self, actions: Any) -> Any:
        for action in actions if isinstance(actions, list) else ():
            if not isinstance(action, Emit):
                continue
            e = action.event
            if e.event == "ENTERQUEUE":
                assert e.call_id not in self.open, e
                self.open[e.call_id] = e.queue
            elif e.event in CLOSING:
                assert self.open.get(e.call_id) == e.queue, e
                assert (e.event in ("COMPLETEAGENT", "COMPLETECALLER")) == (
                    e.call_id in self.connected
                ) or e.event == "TRANSFER", e
                del self.open[e.call_id]
                self.connected.discard(e.call_id)
            elif e.event == "CONNECT":
                assert self.open.get(e.call_id) == e.queue and e.call_id not in self.connected, e
                self.connected.add(e.call_id)
            elif e.event in ("RINGNOANSWER", "RINGCANCELED", "CALLBACKREQUEST", "CALLBACKATTEMPT"):
                assert self.open.get(e.call_id) == e.queue, e
            elif e.event == "AGENTLOGIN":
                assert e.agent not in self.logged, e
                self.logged.add(e.agent or "")
            elif e.event == "AGENTLOGOFF":
                assert e.agent in self.logged, e
                self.logged.discard(e.agent or "")
        return actions


class Recorded:
    """The engine with every returned action list fed to a ledger."""

    def __init__(self, engine: AcdEngine, ledger: Ledger) -> None:
        self._engine = engine
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr
        return lambda *args, **kw: self._ledger.feed(attr(*args, **kw))


def _advance(engine: AcdEngine, now: float) -> None:
    """Like the shell: fire every deadline up to `now`, in order, a bounded number of times."""
    for _ in range(200):
        deadline = engine.next_deadline()
        if deadline is None or deadline > now:
            return
        engine.on_timer(deadline)
        check(engine)
    raise AssertionError("timers never settle")


@settings(max_examples=1000, deadline=None)
@given(sales=queue_configs, linear_dispatch=st.booleans(), steps=ops)
def test_random_sequences_keep_the_invariants(
    sales: QueueConfig, linear_dispatch: bool, steps: list[tuple[str, int, int, bool, float]]
) -> None:
    support = QueueConfig("support", "601", wrapup_seconds=5.0)
    agents = (Agent("a1", skills={"fr": 5}), Agent("a2"), Agent("a3", skills={"fr": 2}))
    members = {
        "sales": [Member("a1", 0, 0), Member("a2", 1, 1), Member("a3", 0, 2)],
        "support": [Member("a2"), Member("a3")],
    }
    ledger = Ledger(AGENTS)
    engine: Any = Recorded(
        build(
            sales,
            support,
            agents=agents,
            members=members,
            dispatch=linear if linear_dispatch else ringall,
        ),
        ledger,
    )
    now = 0.0
    for kind, i, j, flag, dt in steps:
        now += dt
        _advance(engine, now)
        caller, agent = CALLERS[i], AGENTS[j % 3]
        offers = list(engine.offers().items())
        calls = sorted(engine.calls().items())
        if kind == "join":
            engine.caller_joined(caller, "support" if i == 5 else "sales", f"+{i}", now, j % 2)
        elif kind == "left":
            engine.caller_left(caller, now)
        elif kind == "answer" and offers:
            call_id, ringing = offers[i % len(offers)]
            engine.offer_answered(call_id, ringing[j % len(ringing)], now)
        elif kind == "fail" and offers:
            call_id, ringing = offers[i % len(offers)]
            engine.offer_failed(call_id, ringing[j % len(ringing)], now, 486)
        elif kind == "complete" and calls:
            engine.call_completed(calls[i % len(calls)][1], now, flag)
        elif kind == "callback":
            engine.callback_requested(caller, now)
        elif kind == "result" and calls:
            engine.callback_result(calls[i % len(calls)][1], now, flag)
        elif kind == "key":
            engine.key_pressed(caller, "0" if flag else "1", now)
        elif kind == "login":
            engine.agent_login(agent, now, None if flag else ["sales"])
        elif kind == "logout":
            engine.agent_logout(agent, now)
        elif kind == "pause":
            engine.agent_pause(agent, now, "break")
        elif kind == "unpause":
            engine.agent_unpause(agent, now)
        elif kind == "in_use":
            engine.agent_in_use(agent, flag, now)
        elif kind == "lost":
            engine.agent_lost(agent, now)
        elif kind == "register":
            engine.agent_registered(agent, flag, now)
        elif kind == "escalate":
            engine.escalate(caller, now, queue="support" if flag else None, skill="fr", level=j)
        elif kind == "reload":
            keep = {"sales": members["sales"][: 1 + j % 3], "support": members["support"]}
            queues = {"sales": sales} if flag else {"sales": sales, "support": support}
            defs = agents[: 2 + j % 2] if i % 2 else None  # maybe a3 removed
            engine.update_config(queues, keep, now, agents=defs)
        elif kind == "stray":  # reports about legs the engine no longer knows
            engine.offer_answered(caller, agent, now)
            engine.offer_failed(caller, agent, now, 408)
            engine.callback_result(caller, now, flag)
        _advance(engine, now)
        check(engine, now)
        assert set(ledger.open) == set(engine.caller_states())
    # Whatever happened, every agent can be brought back: lost phones end ringing and calls.
    for agent in AGENTS:
        engine.agent_lost(agent, now)
    _advance(engine, now)
    assert engine.offers() == {} or all(
        state(engine, a) is AgentState.RINGING
        for ringing in engine.offers().values()
        for a in ringing
    )
    assert engine.calls() == {}
    check(engine, now)


# ---- a simulated day (fake clock, a shell played by the test) ----------------------------------


def test_a_simulated_day_the_events_tell_what_happened() -> None:
    """Eight hours of random callers (every 40 s on average, patience about 4 min, some
    asking for a callback) for six agents (answering after 1-20 s, 15 % declining,
    180 s talks, 15 s wrap-up, auto-pause after 3 misses, a supervisor unpausing a
    minute later). The test plays the shell; what it saw happen must equal what the
    emitted events say, and no agent or caller is left stuck."""
    import heapq
    from collections import Counter, defaultdict

    rng = random.Random(7)
    queue = QueueConfig(
        "sales",
        "600",
        wrapup_seconds=15.0,
        retry_seconds=3.0,
        autopause_after=3,
        max_wait_seconds=900.0,
        overflow="vm:100",
    )
    names = [f"a{i}" for i in range(6)]
    engine = build(queue, agents=names, dispatch=linear)
    emitted: list[QueueEvent] = []
    heap: list[tuple[float, int, tuple[Any, ...]]] = []
    seen: Counter[str] = Counter()
    talk: defaultdict[str, float] = defaultdict(float)
    bridged: dict[str, tuple[float, str]] = {}
    serial = 0

    def at(when: float, *what: Any) -> None:
        nonlocal serial
        serial += 1
        heapq.heappush(heap, (when, serial, what))

    def run(actions: list[Action], now: float) -> None:
        for a in actions:
            if isinstance(a, Emit):
                emitted.append(a.event)
            elif isinstance(a, (Ring, RingCallback)):
                for agent in a.agents:
                    kind = "answer" if rng.random() < 0.85 else "fail"
                    at(now + rng.uniform(1, 20), kind, a.caller, agent, a.offer_id)
            elif isinstance(a, Bridge):
                seen["answered"] += 1
                bridged[a.caller] = (now, a.agent)
                at(now + rng.expovariate(1 / 180), "end", a.caller, rng.random() < 0.5)
            elif isinstance(a, DialCallback):
                at(now + 8, "reached", a.caller, rng.random() < 0.6)
            elif isinstance(a, AgentChanged) and a.agent.pause_reason == "auto-pause":
                if a.agent.state is AgentState.PAUSED:
                    seen["auto-paused"] += 1
                    at(now + 60, "unpause", a.agent.name)
            elif isinstance(a, Overflow):
                seen["overflow"] += 1

    arrival = 0.0
    for i in range(1, 10_000):
        arrival += rng.expovariate(1 / 40)
        if arrival > 8 * 3600:
            break
        at(arrival, "join", f"c{i}")
    now = 0.0
    for _ in range(200_000):  # bounded: the day has a few thousand steps
        if not heap:
            break
        when, order, what = heapq.heappop(heap)
        deadline = engine.next_deadline()
        if deadline is not None and deadline <= when:  # a timer first
            heapq.heappush(heap, (when, order, what))
            now = deadline
            run(engine.on_timer(now), now)
            check(engine, now)
            continue
        now = when
        kind, call_id = what[0], what[1]
        state_now = engine.caller_state(call_id)
        waiting = state_now in (CallerState.WAITING, CallerState.RINGING)
        caller = engine.caller(call_id)
        if kind == "join":
            run(engine.caller_joined(call_id, "sales", "+33" + call_id[1:], now), now)
            seen["entered"] += 1
            if rng.random() < 0.1:
                at(now + rng.uniform(20, 120), "callback", call_id)
            at(now + rng.expovariate(1 / 240), "patience", call_id)
        elif kind == "patience" and waiting and caller is not None and not caller.callback:
            seen["abandoned"] += 1
            run(engine.caller_left(call_id, now), now)
        elif kind == "callback" and waiting and caller is not None and not caller.callback:
            seen["callback"] += 1
            run(engine.callback_requested(call_id, now), now)
        elif kind == "answer":
            run(engine.offer_answered(call_id, what[2], now, offer_id=what[3]), now)
        elif kind == "fail":
            run(engine.offer_failed(call_id, what[2], now, 603, offer_id=what[3]), now)
        elif kind == "end" and state_now is CallerState.CONNECTED:
            start, agent = bridged.pop(call_id)
            talk[agent] += now - start
            seen["completed"] += 1
            run(engine.call_completed(call_id, now, by_agent=what[2]), now)
        elif kind == "reached" and state_now is CallerState.DIALING:
            run(engine.callback_result(call_id, now, answered=what[2]), now)
        elif kind == "unpause":
            run(engine.agent_unpause(call_id, now), now)
        check(engine, now)
    assert not heap
    for _ in range(100):  # drain the timers left (wrap-ups, retries of callbacks)
        deadline = engine.next_deadline()
        if deadline is None:
            break
        now = deadline
        run(engine.on_timer(now), now)
        check(engine, now)

    count = Counter(e.event for e in emitted)
    assert [e.time for e in emitted] == sorted(e.time for e in emitted)
    assert count["ENTERQUEUE"] == seen["entered"] > 600
    assert count["CONNECT"] == seen["answered"] > 500
    assert count["COMPLETEAGENT"] + count["COMPLETECALLER"] == seen["completed"]
    assert count["ABANDON"] == seen["abandoned"] > 50
    assert count["CALLBACKREQUEST"] == seen["callback"] > 10
    assert count["EXITWITHTIMEOUT"] == seen["overflow"]
    assert count["PAUSE"] == seen["auto-paused"] > 0
    assert count["RINGNOANSWER"] > 0
    closed = {"ABANDON", "COMPLETEAGENT", "COMPLETECALLER", "EXITWITHTIMEOUT", "CALLBACKDROP"}
    still = {c for c, s in engine.caller_states().items()}
    assert count["ENTERQUEUE"] == sum(count[n] for n in closed) + len(still)
    events_talk: defaultdict[str, float] = defaultdict(float)
    for e in emitted:
        if e.event in ("COMPLETEAGENT", "COMPLETECALLER") and e.agent is not None:
            events_talk[e.agent] += e.data["talk"]
    assert events_talk.keys() == talk.keys()
    for agent in talk:
        assert events_talk[agent] == pytest.approx(talk[agent])
    # Every call that was answered ended: nobody is left on a call or ringing.
    assert engine.calls() == {} and engine.offers() == {}
    assert all(r.state is AgentState.AVAILABLE for r in engine.agent_statuses(now))
