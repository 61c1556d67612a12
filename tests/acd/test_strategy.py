"""Availability, empty-queue conditions and every strategy on constructed states
(acd/strategy.py): issue 13 acceptance 1."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from math import sqrt

import pytest

from acd.model import Agent, AgentState, Caller, Member, QueueConfig, SkillRule, Strategy
from acd.strategy import (
    EMPTY_CONDITIONS,
    Memory,
    agent_free,
    can_offer,
    dispatch,
    queue_is_empty,
    wrapup_seconds,
)

NOW = 1000.0
A = AgentState


def queue(strategy: Strategy = Strategy.RINGALL, **kw: object) -> QueueConfig:
    base: dict[str, object] = {"name": "q", "number": "800", "strategy": strategy}
    base.update(kw)
    return QueueConfig(**base)  # type: ignore[arg-type]


def agent(name: str, state: AgentState = A.AVAILABLE, **kw: object) -> Agent:
    return Agent(name=name, state=state, **kw)  # type: ignore[arg-type]


def caller(call_id: str = "c1", joined: float = 900.0, **kw: object) -> Caller:
    return Caller(call_id=call_id, queue="q", number="555", joined=joined, **kw)  # type: ignore[arg-type]


def members(*spec: tuple[str, int]) -> list[Member]:
    """Members in configured order: (name, penalty), positions 1, 2, ..."""
    return [Member(name, penalty=p, position=i) for i, (name, p) in enumerate(spec, 1)]


def pick(
    q: QueueConfig,
    mem: list[Member],
    agents: list[Agent],
    *,
    c: Caller | None = None,
    busy: tuple[str, ...] = (),
    rng: random.Random | None = None,
    memory: Memory | None = None,
    now: float = NOW,
) -> tuple[str, ...]:
    """The agents offered for one caller (empty tuple: none)."""
    offers = dispatch(
        now,
        {q.name: q},
        {q.name: mem},
        {a.name: a for a in agents},
        [c or caller()],
        busy,
        rng or random.Random(7),
        memory if memory is not None else Memory(),
    )
    assert len(offers) <= 1
    return offers[0].agents if offers else ()


# -- availability -----------------------------------------------------------------

FREE = agent("ann")


@pytest.mark.parametrize(
    ("who", "q", "busy", "ok"),
    [
        (FREE, queue(), (), True),
        (replace(FREE, state=A.LOGGED_OUT), queue(), (), False),
        (replace(FREE, state=A.PAUSED, pause_reason="lunch"), queue(), (), False),
        (replace(FREE, state=A.RINGING), queue(), (), False),
        (replace(FREE, state=A.ON_CALL), queue(), (), False),
        (replace(FREE, wrapup_until=NOW + 0.5), queue(), (), False),  # wrap-up not expired
        (replace(FREE, wrapup_until=NOW), queue(), (), True),  # expires at now
        (replace(FREE, state=A.WRAP_UP, wrapup_until=NOW + 1), queue(), (), False),
        (replace(FREE, state=A.WRAP_UP, wrapup_until=NOW - 1), queue(), (), True),  # by clock
        (replace(FREE, in_use=True), queue(), (), False),
        (replace(FREE, in_use=True), queue(ring_in_use=True), (), True),
        (replace(FREE, registered=False), queue(), (), False),
        (FREE, queue(), ("ann",), False),  # an offer already rings
        (FREE, queue(), ("bob",), True),
    ],
)
def test_agent_free(who: Agent, q: QueueConfig, busy: tuple[str, ...], ok: bool) -> None:
    assert agent_free(NOW, q, who, busy) is ok
    assert can_offer(NOW, q, [Member("ann")], who, busy) is ok
    assert (pick(q, [Member("ann")], [who], busy=busy) == ("ann",)) is ok


def test_can_offer_needs_membership_and_skills() -> None:
    q = queue(skills={"fr": 5})
    skilled = agent("ann", skills={"fr": 5})
    assert can_offer(NOW, q, [Member("ann")], skilled, (), caller())
    assert not can_offer(NOW, q, [Member("bob")], skilled, (), caller())
    assert not can_offer(NOW, q, [Member("ann")], replace(skilled, skills={"fr": 4}), (), caller())
    assert not can_offer(NOW, q, [Member("ann")], skilled, (), caller(skills={"de": 1}))


def test_wrapup_seconds_agent_overrides_queue() -> None:
    assert wrapup_seconds(queue(wrapup_seconds=30), agent("a")) == 30
    assert wrapup_seconds(queue(wrapup_seconds=30), agent("a", wrapup_seconds=5)) == 5
    assert wrapup_seconds(queue(wrapup_seconds=30), agent("a", wrapup_seconds=0)) == 0


# -- join empty / leave when empty ------------------------------------------------


@pytest.mark.parametrize(
    ("state_kw", "condition", "excluded"),
    [
        ({"state": A.PAUSED}, "paused", True),
        ({"state": A.PAUSED}, "inuse", False),
        ({"state": A.ON_CALL}, "inuse", True),
        ({"in_use": True}, "inuse", True),
        ({"state": A.RINGING}, "ringing", True),
        ({"state": A.WRAP_UP, "wrapup_until": NOW + 5}, "wrapup", True),
        ({"state": A.WRAP_UP, "wrapup_until": NOW - 5}, "wrapup", False),
        ({"wrapup_until": NOW + 5}, "wrapup", True),
        ({"registered": False}, "unavailable", True),
        ({"registered": False}, "paused", False),
        ({"skills": {}}, "penalty", True),  # lacks the caller's skill
        ({"skills": {"fr": 3}}, "penalty", False),
        ({"state": A.AVAILABLE}, "unknown", False),
        ({"state": A.ON_CALL}, "paused", False),
    ],
)
def test_queue_is_empty_per_condition(
    state_kw: dict[str, object], condition: str, excluded: bool
) -> None:
    q = queue(skills={"fr": 3})
    mem = [Member("ann")]
    agents = {"ann": agent("ann", **state_kw)}
    assert condition in EMPTY_CONDITIONS
    assert queue_is_empty(NOW, q, mem, agents, {condition}, caller()) is excluded


def test_queue_is_empty_rules() -> None:
    q = queue()
    mem = [Member("ann"), Member("bob"), Member("ghost")]
    agents = {"ann": agent("ann", A.PAUSED), "bob": agent("bob", A.LOGGED_OUT)}
    # no condition: the feature is off
    assert not queue_is_empty(NOW, q, mem, {}, set())
    # a member with no agent record counts unless "invalid" is listed
    assert not queue_is_empty(NOW, q, mem, agents, {"paused"})
    assert queue_is_empty(NOW, q, mem, agents, {"paused", "invalid"})
    # logged-out members never count; no member at all is empty
    assert queue_is_empty(NOW, q, [Member("bob")], agents, {"unknown"})
    assert queue_is_empty(NOW, q, [], agents, {"paused"})
    # one member left that no condition excludes: not empty
    agents["cid"] = agent("cid", A.ON_CALL)
    assert not queue_is_empty(NOW, q, [*mem, Member("cid")], agents, {"paused", "invalid"})
    assert queue_is_empty(NOW, q, [*mem, Member("cid")], agents, {"paused", "invalid", "inuse"})
    # an offer ringing counts as ringing
    agents["dan"] = agent("dan")
    assert queue_is_empty(NOW, q, [Member("dan")], agents, {"ringing"}, busy_offers={"dan"})


def test_queue_is_empty_penalty_condition_uses_relaxed_skills() -> None:
    q = queue(skills={"fr": 8}, skill_rules=(SkillRule(after=60, relax=4),))
    agents = {"ann": agent("ann", skills={"fr": 5})}
    assert queue_is_empty(NOW, q, [Member("ann")], agents, {"penalty"}, caller(joined=NOW - 10))
    assert not queue_is_empty(NOW, q, [Member("ann")], agents, {"penalty"}, caller(joined=0))


# -- strategies -------------------------------------------------------------------

THREE = members(("ann", 0), ("bob", 0), ("cid", 0))


def test_ringall_rings_every_available_member() -> None:
    agents = [agent("ann"), agent("bob"), agent("cid", A.PAUSED)]
    assert pick(queue(), THREE, agents) == ("ann", "bob")


def test_ringall_rings_only_the_lowest_penalty_until_exhausted() -> None:
    mem = members(("ann", 1), ("bob", 0), ("cid", 0), ("dan", 2))
    agents = [agent(n) for n in ("ann", "bob", "cid", "dan")]
    assert pick(queue(), mem, agents) == ("bob", "cid")
    assert pick(queue(), mem, agents, busy=("bob", "cid")) == ("ann",)
    assert pick(queue(), mem, agents, busy=("bob", "cid", "ann")) == ("dan",)


def test_penalties_ignored_with_at_most_penalty_members_limit_members() -> None:
    mem = members(("ann", 1), ("bob", 0), ("cid", 0), ("dan", 2))
    agents = [agent(n) for n in ("ann", "bob", "cid", "dan")]
    q = queue(penalty_members_limit=4)
    assert pick(q, mem, agents) == ("ann", "bob", "cid", "dan")
    assert pick(replace(q, penalty_members_limit=3), mem, agents) == ("bob", "cid")
    # the limit counts configured members, not available ones
    assert pick(q, mem, agents[:2]) == ("ann", "bob")
    lin = replace(q, strategy=Strategy.LINEAR)
    assert pick(lin, mem, agents) == ("ann",)
    assert pick(replace(lin, penalty_members_limit=0), mem, agents) == ("bob",)


@pytest.mark.parametrize(
    ("last_ends", "expected"),
    [
        ({"ann": 500.0, "bob": 300.0, "cid": 400.0}, "bob"),  # oldest end of last call
        ({"ann": 500.0, "cid": 400.0}, "bob"),  # never called from this queue first
        ({}, "ann"),  # all never called: configured order
        ({"ann": 100.0, "bob": 100.0, "cid": 200.0}, "ann"),  # tie: position
    ],
)
def test_leastrecent(last_ends: dict[str, float], expected: str) -> None:
    agents = [
        agent(n, last_call_end={"q": last_ends[n]} if n in last_ends else {"other": 1.0})
        for n in ("ann", "bob", "cid")
    ]
    assert pick(queue(Strategy.LEASTRECENT), THREE, agents) == (expected,)


def test_leastrecent_only_considers_this_queue_and_penalty_first() -> None:
    agents = [
        agent("ann", last_call_end={"q": 900.0, "other": 1.0}),
        agent("bob", last_call_end={"q": 100.0}),
        agent("cid", last_call_end={"q": 950.0}),
    ]
    assert pick(queue(Strategy.LEASTRECENT), THREE, agents) == ("bob",)
    mem = members(("ann", 0), ("bob", 1), ("cid", 0))
    assert pick(queue(Strategy.LEASTRECENT), mem, agents) == ("ann",)


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ({"ann": 5, "bob": 2, "cid": 3}, "bob"),
        ({"ann": 5, "cid": 3}, "bob"),  # none yet
        ({"ann": 1, "bob": 1, "cid": 1}, "ann"),  # tie: position
    ],
)
def test_fewestcalls(calls: dict[str, int], expected: str) -> None:
    agents = [
        agent(n, calls_taken={"q": calls[n], "other": 0} if n in calls else {"other": 99})
        for n in ("ann", "bob", "cid")
    ]
    assert pick(queue(Strategy.FEWESTCALLS), THREE, agents) == (expected,)


def test_fewestcalls_penalty_tier_first() -> None:
    mem = members(("ann", 1), ("bob", 0))
    agents = [agent("ann"), agent("bob", calls_taken={"q": 50})]
    assert pick(queue(Strategy.FEWESTCALLS), mem, agents) == ("bob",)


def test_random_uses_the_rng_and_respects_penalties() -> None:
    agents = [agent(n) for n in ("ann", "bob", "cid")]
    rng = random.Random(2024)
    counts = Counter(pick(queue(Strategy.RANDOM), THREE, agents, rng=rng)[0] for _ in range(3000))
    assert set(counts) == {"ann", "bob", "cid"}
    # draws in range(1000), ties to the earlier position: exact chances, 5 sigma bounds
    chances = wrandom_win_probabilities([0, 0, 0])
    for name, p in zip(("ann", "bob", "cid"), chances, strict=True):
        assert abs(counts[name] - 3000 * float(p)) < 5 * sqrt(3000 * float(p) * (1 - float(p)))
    # same seed, same choices
    a = [pick(queue(Strategy.RANDOM), THREE, agents, rng=random.Random(5)) for _ in range(3)]
    b = [pick(queue(Strategy.RANDOM), THREE, agents, rng=random.Random(5)) for _ in range(3)]
    assert a == b
    mem = members(("ann", 1), ("bob", 0), ("cid", 1))
    assert {pick(queue(Strategy.RANDOM), mem, agents, rng=rng) for _ in range(50)} == {("bob",)}


def wrandom_win_probabilities(penalties: list[int]) -> list[Fraction]:
    """Exact chance of each member winning wrandom: draws uniform in
    range((1 + penalty) * 1000), lowest wins, ties to the earlier member."""
    sizes = [(1 + p) * 1000 for p in penalties]
    out = []
    for i, size in enumerate(sizes):
        total = Fraction(0)
        for v in range(size):
            chance = Fraction(1, size)
            for j, other in enumerate(sizes):
                if j == i:
                    continue
                # earlier members win ties: they must draw > v; later ones >= v
                above = other - v - 1 if j < i else other - v
                chance *= Fraction(max(above, 0), other)
            total += chance
        out.append(total)
    return out


def test_wrandom_distribution_over_10000_seeded_draws() -> None:
    penalties = [0, 1, 3]
    mem = members(("ann", 0), ("bob", 1), ("cid", 3))
    agents = [agent(n) for n in ("ann", "bob", "cid")]
    expected = wrandom_win_probabilities(penalties)
    assert sum(expected) == 1
    rng = random.Random(13)
    memory = Memory()
    draws = 10_000
    counts = Counter(
        pick(queue(Strategy.WRANDOM), mem, agents, rng=rng, memory=memory)[0] for _ in range(draws)
    )
    for name, p in zip(("ann", "bob", "cid"), expected, strict=True):
        mean = draws * float(p)
        sigma = sqrt(draws * float(p) * (1 - float(p)))
        assert abs(counts[name] - mean) < 5 * sigma, (name, counts, mean)
    # a penalty widens the range, it is no tier: the highest penalty still wins sometimes
    assert counts["cid"] > 0


def test_wrandom_under_the_members_limit_is_uniform() -> None:
    mem = members(("ann", 0), ("bob", 9))
    agents = [agent("ann"), agent("bob")]
    rng = random.Random(3)
    q = queue(Strategy.WRANDOM, penalty_members_limit=5)
    counts = Counter(pick(q, mem, agents, rng=rng)[0] for _ in range(4000))
    p = float(wrandom_win_probabilities([0, 0])[1])
    assert abs(counts["bob"] - 4000 * p) < 5 * sqrt(4000 * p * (1 - p))


def test_rrmemory_continues_after_the_last_offered_and_wraps() -> None:
    mem = members(("ann", 0), ("bob", 0), ("cid", 0), ("dan", 0))
    agents = [agent(n) for n in ("ann", "bob", "cid", "dan")]
    memory = Memory()
    q = queue(Strategy.RRMEMORY)
    got = [pick(q, mem, agents, memory=memory)[0] for _ in range(6)]
    assert got == ["ann", "bob", "cid", "dan", "ann", "bob"]
    assert memory.last_offered == {"q": "bob"}
    # cid busy: skipped, dan next; then wrap round to ann
    assert pick(q, mem, agents, busy=("cid",), memory=memory) == ("dan",)
    assert pick(q, mem, agents, busy=("bob",), memory=memory) == ("ann",)
    # the last offered left the queue: start from the first again
    memory.last_offered["q"] = "zed"
    assert pick(q, mem, agents, memory=memory) == ("ann",)


def test_rrordered_uses_configured_position_not_name_and_penalty_tiers() -> None:
    mem = [
        Member("zoe", position=1),
        Member("amy", position=2),
        Member("max", penalty=1, position=3),
        Member("bea", position=4),
    ]
    agents = [agent(n) for n in ("zoe", "amy", "max", "bea")]
    memory = Memory()
    q = queue(Strategy.RRORDERED)
    got = [pick(q, mem, agents, memory=memory)[0] for _ in range(4)]
    assert got == ["zoe", "amy", "bea", "zoe"]  # max (penalty 1) only when tier 0 is busy
    assert pick(q, mem, agents, busy=("zoe", "amy", "bea"), memory=memory) == ("max",)
    # memory is per queue
    other = replace(q, name="q2")
    assert dispatch(
        NOW,
        {"q2": other},
        {"q2": mem},
        {a.name: a for a in agents},
        [replace(caller(), queue="q2")],
        (),
        random.Random(0),
        memory,
    )[0].agents == ("zoe",)
    assert memory.last_offered == {"q": "max", "q2": "zoe"}


def test_linear_starts_from_the_first_for_each_caller_and_advances_per_caller() -> None:
    mem = members(("ann", 0), ("bob", 0), ("cid", 0))
    agents = [agent(n) for n in ("ann", "bob", "cid")]
    memory = Memory()
    q = queue(Strategy.LINEAR)
    c1, c2 = caller("c1"), caller("c2")
    assert pick(q, mem, agents, c=c1, memory=memory) == ("ann",)
    # a new caller starts from the first again
    assert pick(q, mem, agents, c=c2, memory=memory) == ("ann",)
    # c1 offered again (ann did not answer): continues with bob, then cid, then wraps
    assert pick(q, mem, agents, c=c1, memory=memory) == ("bob",)
    assert pick(q, mem, agents, c=c1, memory=memory) == ("cid",)
    assert pick(q, mem, agents, c=c1, memory=memory) == ("ann",)
    memory.forget("c1")
    assert "c1" not in memory.linear_last and "c2" in memory.linear_last
    assert memory.last_offered == {}


def test_linear_memory_is_bounded() -> None:
    memory = Memory()
    for i in range(10_005):
        memory.remember_linear(f"c{i}", "ann")
    assert len(memory.linear_last) == 10_000
    assert "c0" not in memory.linear_last and "c10004" in memory.linear_last


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # (name, penalty, state_since, wrapup_until, last_call_end across queues)
        ([("ann", 0, 500, 0, {}), ("bob", 0, 300, 0, {}), ("cid", 0, 400, 0, {})], "bob"),
        # wrap-up ended later than the state change: idle since wrap-up end
        ([("ann", 0, 500, 0, {}), ("bob", 0, 300, 600, {}), ("cid", 0, 400, 0, {})], "cid"),
        # the lower tier level wins even when idle for less time
        ([("ann", 1, 100, 0, {}), ("bob", 0, 900, 0, {})], "bob"),
        # ties on idle time: oldest last call across queues, never called first
        ([("ann", 0, 300, 0, {"x": 250}), ("bob", 0, 300, 0, {"y": 200, "x": 10})], "bob"),
        ([("ann", 0, 300, 0, {"x": 250}), ("bob", 0, 300, 0, {})], "bob"),
        # full tie: position
        ([("ann", 0, 300, 0, {}), ("bob", 0, 300, 0, {})], "ann"),
    ],
)
def test_longest_idle_with_tiers(
    spec: list[tuple[str, int, float, float, dict[str, float]]], expected: str
) -> None:
    mem = [Member(n, penalty=p, position=i) for i, (n, p, *_rest) in enumerate(spec, 1)]
    agents = [
        agent(n, state_since=since, wrapup_until=until, last_call_end=ends)
        for n, _p, since, until, ends in spec
    ]
    assert pick(queue(Strategy.LONGEST_IDLE), mem, agents) == (expected,)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_offers_nobody_when_nobody_is_free(strategy: Strategy) -> None:
    agents = [
        agent("ann", A.PAUSED),
        agent("bob", A.ON_CALL),
        agent("cid", wrapup_until=NOW + 10),
    ]
    assert pick(queue(strategy), THREE, agents) == ()
    assert pick(queue(strategy), THREE, [*agents[:2], agent("cid")]) == ("cid",)


@pytest.mark.parametrize("strategy", [s for s in Strategy if s is not Strategy.RINGALL])
def test_best_skill_match_wins_within_a_tier_then_the_strategy(strategy: Strategy) -> None:
    q = queue(strategy, skills={"fr": 3})
    mem = members(("ann", 0), ("bob", 0), ("cid", 0), ("dan", 1))
    agents = [
        agent("ann", skills={"fr": 4}),
        agent("bob", skills={"fr": 9}),
        agent("cid", skills={"fr": 2}),  # does not qualify
        agent("dan", skills={"fr": 10}),  # better, but a higher penalty
    ]
    if strategy is Strategy.WRANDOM:
        # wrandom has no penalty tier (the penalty only widens its draw): best match
        assert pick(q, mem, agents, rng=random.Random(1)) == ("dan",)
        assert pick(q, mem, agents, busy=("dan", "bob")) == ("ann",)
        return
    assert pick(q, mem, agents, rng=random.Random(1)) == ("bob",)
    assert pick(q, mem, agents, busy=("bob",)) == ("ann",)


def test_ringall_with_skills_rings_every_qualifying_member_of_the_tier() -> None:
    q = queue(skills={"fr": 3})
    mem = members(("ann", 0), ("bob", 0), ("cid", 0))
    agents = [agent("ann", skills={"fr": 4}), agent("bob", skills={"fr": 9}), agent("cid")]
    assert pick(q, mem, agents) == ("ann", "bob")


def test_skill_relaxation_over_time_widens_the_agents() -> None:
    q = queue(
        Strategy.LINEAR,
        skills={"fr": 8},
        skill_rules=(SkillRule(after=30, relax=3), SkillRule(after=90, drop=True)),
    )
    mem = members(("ann", 0), ("bob", 0))
    agents = [agent("ann"), agent("bob", skills={"fr": 5})]
    assert pick(q, mem, agents, c=caller(joined=NOW - 10)) == ()
    assert pick(q, mem, agents, c=caller(joined=NOW - 30)) == ("bob",)
    # after the drop anyone qualifies, the better match still first
    assert pick(q, mem, agents, c=caller(joined=NOW - 90)) == ("bob",)
    assert pick(q, mem, agents, c=caller(joined=NOW - 90), busy=("bob",)) == ("ann",)
