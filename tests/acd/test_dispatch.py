"""dispatch(): callers in order across queues, one offer per agent, weights,
priorities, no line-jumping, no head-of-line blocking across skills."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from acd.model import Agent, AgentState, Caller, Member, Offer, QueueConfig, SkillRule, Strategy
from acd.strategy import Memory, caller_order, can_offer, dispatch

NOW = 1000.0


def q(name: str, strategy: Strategy = Strategy.LINEAR, **kw: object) -> QueueConfig:
    return QueueConfig(name=name, number="8" + name, strategy=strategy, **kw)  # type: ignore[arg-type]


def free(name: str, **skills: int) -> Agent:
    return Agent(name=name, state=AgentState.AVAILABLE, skills=skills)


def c(call_id: str, queue: str, joined: float, **kw: object) -> Caller:
    return Caller(call_id=call_id, queue=queue, number="555" + call_id, joined=joined, **kw)  # type: ignore[arg-type]


def run(
    queues: Sequence[QueueConfig],
    members: Mapping[str, Sequence[Member]],
    agents: Sequence[Agent],
    waiting: Sequence[Caller],
    busy: Sequence[str] = (),
    memory: Memory | None = None,
    seed: int = 0,
) -> list[tuple[str, tuple[str, ...]]]:
    offers = dispatch(
        NOW,
        {x.name: x for x in queues},
        members,
        {a.name: a for a in agents},
        waiting,
        busy,
        random.Random(seed),
        memory if memory is not None else Memory(),
    )
    agents_offered = [name for offer in offers for name in offer.agents]
    assert len(agents_offered) == len(set(agents_offered)), "an agent in two offers"
    assert not set(agents_offered) & set(busy), "an agent with an offer ringing"
    assert all(isinstance(o, Offer) and o.agents for o in offers)
    return [(o.caller, o.agents) for o in offers]


def ordered(*names: str) -> list[Member]:
    return [Member(n, position=i) for i, n in enumerate(names, 1)]


def test_callers_served_in_joined_order_whatever_the_input_order() -> None:
    members = {"a": ordered("ann", "bob")}
    waiting = [c("late", "a", 30), c("first", "a", 10), c("second", "a", 20)]
    got = run([q("a")], members, [free("ann"), free("bob")], waiting)
    assert got == [("first", ("ann",)), ("second", ("bob",))]


def test_priority_beats_joined_within_a_queue() -> None:
    members = {"a": ordered("ann")}
    waiting = [c("old", "a", 10), c("vip", "a", 50, priority=5)]
    assert run([q("a")], members, [free("ann")], waiting) == [("vip", ("ann",))]


def test_heavier_queue_gets_a_shared_agent_first() -> None:
    queues = [q("sales", weight=0), q("support", weight=10)]
    members = {"sales": ordered("ann"), "support": ordered("ann")}
    waiting = [c("s1", "sales", 1), c("p1", "support", 500)]
    assert run(queues, members, [free("ann")], waiting) == [("p1", ("ann",))]
    # equal weights: the earlier caller, across queues
    queues = [q("sales"), q("support")]
    assert run(queues, members, [free("ann")], waiting) == [("s1", ("ann",))]


def test_weight_before_priority_and_agents_not_shared_still_serve_the_light_queue() -> None:
    queues = [q("sales", weight=1), q("support", weight=5)]
    members = {"sales": ordered("ann", "bob"), "support": ordered("ann")}
    waiting = [c("s1", "sales", 1, priority=9), c("p1", "support", 500)]
    got = run(queues, members, [free("ann"), free("bob")], waiting)
    assert got == [("p1", ("ann",)), ("s1", ("bob",))]


def test_one_offer_per_agent_across_queues_and_busy_offers_respected() -> None:
    queues = [q("a"), q("b")]
    members = {"a": ordered("ann", "bob"), "b": ordered("bob", "ann", "cid")}
    agents = [free("ann"), free("bob"), free("cid")]
    waiting = [c("a1", "a", 1), c("b1", "b", 2), c("a2", "a", 3), c("b2", "b", 4)]
    got = run(queues, members, agents, waiting)
    assert got == [("a1", ("ann",)), ("b1", ("bob",)), ("b2", ("cid",))]
    got = run(queues, members, agents, waiting, busy=["ann"])
    assert got == [("a1", ("bob",)), ("b1", ("cid",))]


def test_ringall_first_caller_takes_the_tier_the_next_gets_the_next_tier() -> None:
    members = {"r": [Member("ann"), Member("bob"), Member("cid", penalty=2)]}
    agents = [free("ann"), free("bob"), free("cid")]
    waiting = [c("c2", "r", 20), c("c1", "r", 10), c("c3", "r", 30)]
    got = run([q("r", Strategy.RINGALL)], members, agents, waiting)
    assert got == [("c1", ("ann", "bob")), ("c2", ("cid",))]


def test_no_line_jumping_within_a_queue_without_skills() -> None:
    # the first caller gets nobody: no later caller of the same queue does either
    members = {"a": ordered("ann", "bob")}
    agents = [free("ann"), Agent(name="bob", state=AgentState.PAUSED)]
    waiting = [c("c1", "a", 1), c("c2", "a", 2), c("c3", "a", 3)]
    assert run([q("a")], members, agents, waiting) == [("c1", ("ann",))]
    assert run([q("a")], members, agents, waiting, busy=["ann"]) == []


def test_no_head_of_line_blocking_across_skills() -> None:
    # the head caller needs German nobody free has; later callers needing French
    # or nothing get the agents the head cannot use
    members = {"a": ordered("fritz", "marie", "bob")}
    agents = [
        Agent(name="fritz", state=AgentState.ON_CALL, skills={"de": 9}),
        free("marie", fr=8),
        free("bob"),
    ]
    waiting = [
        c("head", "a", 1, skills={"de": 5}),
        c("french", "a", 2, skills={"fr": 5}),
        c("plain", "a", 3),
        c("more", "a", 4),
    ]
    got = run([q("a")], members, agents, waiting)
    assert got == [("french", ("marie",)), ("plain", ("bob",))]


def test_a_generalist_caller_does_not_take_the_only_specialist_a_later_caller_needs() -> None:
    # linear would give marie (position 1) to the plain caller; the French caller
    # behind it can only be served by marie, and bob can serve the plain caller
    members = {"a": ordered("marie", "bob")}
    agents = [free("marie", fr=8), free("bob")]
    waiting = [c("plain", "a", 1), c("french", "a", 2, skills={"fr": 5})]
    got = run([q("a")], members, agents, waiting)
    assert got == [("plain", ("bob",)), ("french", ("marie",))]
    # without a French caller waiting the plain caller gets marie as linear says
    assert run([q("a")], members, agents, waiting[:1]) == [("plain", ("marie",))]
    # bob not free: marie is the plain caller's only agent; first come, first served
    got = run([q("a")], members, agents, waiting, busy=["bob"])
    assert got == [("plain", ("marie",))]


def test_specialist_spared_across_queues_too() -> None:
    queues = [q("general", weight=5), q("french")]
    members = {"general": ordered("marie", "bob"), "french": ordered("marie")}
    agents = [free("marie", fr=8), free("bob")]
    waiting = [c("g1", "general", 1), c("f1", "french", 0)]
    got = run(queues, members, agents, waiting)
    assert sorted(got) == [("f1", ("marie",)), ("g1", ("bob",))]


def test_unknown_queue_and_duplicate_callers_are_skipped() -> None:
    members = {"a": ordered("ann", "bob")}
    waiting = [c("x", "nope", 0), c("c1", "a", 1), c("c1", "a", 1)]
    assert run([q("a")], members, [free("ann"), free("bob")], waiting) == [("c1", ("ann",))]


def test_member_without_agent_record_or_listed_twice_is_offered_once_or_never() -> None:
    members = {"a": [Member("ghost"), Member("ann"), Member("ann", position=5)]}
    waiting = [c("c1", "a", 1), c("c2", "a", 2)]
    assert run([q("a", Strategy.RINGALL)], members, [free("ann")], waiting) == [("c1", ("ann",))]


def test_rr_memory_updated_once_per_offer_in_one_pass() -> None:
    memory = Memory()
    members = {"rr": ordered("ann", "bob", "cid")}
    agents = [free("ann"), free("bob"), free("cid")]
    waiting = [c("c1", "rr", 1), c("c2", "rr", 2)]
    got = run([q("rr", Strategy.RRMEMORY)], members, agents, waiting, memory=memory)
    assert got == [("c1", ("ann",)), ("c2", ("bob",))]
    assert memory.last_offered == {"rr": "bob"}
    got = run([q("rr", Strategy.RRMEMORY)], members, agents, waiting, memory=memory)
    assert got == [("c1", ("cid",)), ("c2", ("ann",))]


def test_callbacks_queue_like_callers_by_their_original_joined_time() -> None:
    members = {"a": ordered("ann")}
    waiting = [c("live", "a", 100), c("cb", "a", 40, callback=True)]
    assert run([q("a")], members, [free("ann")], waiting) == [("cb", ("ann",))]


def test_wrap_up_and_in_use_across_queues() -> None:
    queues = [q("a", ring_in_use=True), q("b")]
    members = {"a": ordered("ann", "bob"), "b": ordered("ann", "bob")}
    agents = [
        Agent(name="ann", state=AgentState.AVAILABLE, in_use=True),
        Agent(name="bob", state=AgentState.WRAP_UP, wrapup_until=NOW + 3),
    ]
    waiting = [c("b1", "b", 1), c("a1", "a", 2)]
    # b does not ring agents on another call; a does; bob's wrap-up holds everywhere
    assert run(queues, members, agents, waiting) == [("a1", ("ann",))]


def random_state(
    rng: random.Random,
) -> tuple[
    dict[str, QueueConfig], dict[str, list[Member]], dict[str, Agent], list[Caller], set[str]
]:
    names = [f"ag{i}" for i in range(8)]
    queues = {
        f"q{i}": QueueConfig(
            name=f"q{i}",
            number=f"80{i}",
            strategy=rng.choice(list(Strategy)),
            weight=rng.choice([0, 0, 5]),
            ring_in_use=rng.random() < 0.3,
            penalty_members_limit=rng.choice([0, 0, 3]),
            skills=rng.choice([{}, {}, {"fr": rng.randint(1, 6)}]),
            skill_rules=rng.choice([(), (SkillRule(after=60, relax=2), SkillRule(120, drop=True))]),
        )
        for i in range(3)
    }
    members = {
        name: [
            Member(agent, penalty=rng.randint(0, 2), position=rng.randint(0, 9))
            for agent in rng.sample(names, rng.randint(0, len(names)))
        ]
        for name in queues
    }
    agents = {
        name: Agent(
            name=name,
            state=rng.choice(list(AgentState)),
            state_since=rng.uniform(0, NOW),
            wrapup_until=rng.choice([0.0, NOW - 1, NOW + 5]),
            in_use=rng.random() < 0.2,
            registered=rng.random() < 0.9,
            skills={s: rng.randint(1, 10) for s in rng.sample(["fr", "de"], rng.randint(0, 2))},
            last_call_end={q: rng.uniform(0, NOW) for q in queues if rng.random() < 0.5},
            calls_taken={q: rng.randint(0, 9) for q in queues if rng.random() < 0.5},
        )
        for name in names
        if rng.random() < 0.95  # now and then a member with no agent record
    }
    waiting = [
        Caller(
            call_id=f"c{i}",
            queue=rng.choice([*queues, "gone"] if rng.random() < 0.05 else list(queues)),
            number="555",
            joined=rng.uniform(NOW - 300, NOW),
            priority=rng.choice([0, 0, 0, 3]),
            skills=rng.choice([{}, {}, {"de": rng.randint(1, 8)}]),
        )
        for i in range(rng.randint(0, 10))
    ]
    busy = {name for name in names if rng.random() < 0.15}
    return queues, members, agents, waiting, busy


def test_dispatch_invariants_on_random_states() -> None:
    rng = random.Random(20261203)
    memory = Memory()
    served_total = 0
    for _ in range(1500):
        queues, members, agents, waiting, busy = random_state(rng)
        offers = dispatch(NOW, queues, members, agents, waiting, busy, rng, memory)
        by_id = {x.call_id: x for x in waiting}
        offered = [name for offer in offers for name in offer.agents]
        assert len(offered) == len(set(offered)) and not set(offered) & busy
        assert len({o.caller for o in offers}) == len(offers)
        served = {o.caller: o for o in offers}
        served_total += len(served)
        for offer in offers:
            caller = by_id[offer.caller]
            queue = queues[caller.queue]
            assert offer.queue == caller.queue
            assert offer.agents and (queue.strategy is Strategy.RINGALL or len(offer.agents) == 1)
            for name in offer.agents:
                assert can_offer(NOW, queue, members[caller.queue], agents[name], busy, caller)
        order = sorted(
            (x for x in by_id.values() if x.queue in queues),
            key=lambda x: caller_order(queues, x),
        )
        for i, caller in enumerate(order):
            if caller.call_id in served:
                continue
            queue, mem = queues[caller.queue], members[caller.queue]
            usable = {a for a in agents if can_offer(NOW, queue, mem, agents[a], busy, caller)}
            # maximal: an unserved caller has no usable agent left unpromised
            assert usable <= set(offered)
            # no line-jumping: no later caller holds an agent this one could use
            for later in order[i + 1 :]:
                if later.call_id in served:
                    assert not usable & set(served[later.call_id].agents)
    assert served_total > 1000  # the states are not all degenerate


def test_next_dispatch_at_wrapup_end_or_skill_relaxation() -> None:
    from acd.strategy import next_dispatch_at

    queues = {
        "a": q("a", skills={"fr": 6}, skill_rules=(SkillRule(after=45, relax=3),)),
        "b": q("b"),
    }
    agents = {
        "ann": Agent(name="ann", state=AgentState.WRAP_UP, wrapup_until=NOW + 20),
        "bob": Agent(name="bob", state=AgentState.AVAILABLE, wrapup_until=NOW - 5),
        "old": Agent(name="old", state=AgentState.LOGGED_OUT, wrapup_until=NOW + 1),
    }
    assert next_dispatch_at(NOW, queues, agents, []) == NOW + 20
    relaxing = c("c1", "a", NOW - 40)  # relaxes at NOW + 5
    assert next_dispatch_at(NOW, queues, agents, [relaxing]) == NOW + 5
    assert next_dispatch_at(NOW, queues, agents, [c("c2", "b", NOW), c("x", "gone", 0)]) == (
        NOW + 20
    )
    assert next_dispatch_at(NOW + 30, queues, agents, [c("c2", "b", NOW)]) is None


def test_sparing_never_takes_from_a_ringall_offer() -> None:
    queues = [q("all", Strategy.RINGALL), q("french")]
    members = {"all": ordered("marie", "bob"), "french": ordered("marie")}
    agents = [free("marie", fr=8), free("bob")]
    waiting = [c("r1", "all", 1), c("f1", "french", 2)]
    assert run(queues, members, agents, waiting) == [("r1", ("marie", "bob"))]


def test_sparing_keeps_every_earlier_caller_served_and_memory_follows_final_offers() -> None:
    memory = Memory()
    queues = [q("rr", Strategy.RRORDERED, weight=1), q("fr")]
    members = {"rr": ordered("marie", "bob", "cid"), "fr": ordered("marie")}
    agents = [free("marie", fr=8), free("bob"), Agent(name="cid", state=AgentState.PAUSED)]
    waiting = [c("g1", "rr", 1), c("f1", "fr", 0)]
    got = run(queues, members, agents, waiting, memory=memory)
    assert got == [("g1", ("bob",)), ("f1", ("marie",))]
    assert memory.last_offered == {"rr": "bob"}


def test_sparing_chain_serves_as_many_callers_as_agents_allow() -> None:
    # two generalists take the two specialists first; two specialist callers behind
    members = {"a": ordered("marie", "fritz", "bob", "bea")}
    agents = [free("marie", fr=8), free("fritz", de=8), free("bob"), free("bea")]
    waiting = [
        c("g1", "a", 1),
        c("g2", "a", 2),
        c("fr", "a", 3, skills={"fr": 5}),
        c("de", "a", 4, skills={"de": 5}),
    ]
    got = dict(run([q("a")], members, agents, waiting))
    assert got == {"g1": ("bob",), "g2": ("bea",), "fr": ("marie",), "de": ("fritz",)}
