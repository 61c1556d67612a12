"""Skills: overlay, relaxation over the wait, matching, escalation (acd/skills.py)."""

from __future__ import annotations

import random

import pytest

from acd.model import Agent, AgentState, Caller, Member, QueueConfig, SkillRule, Strategy
from acd.skills import (
    escalate,
    match_score,
    move_to_queue,
    next_relax_at,
    qualifies,
    relaxed,
    required,
    requirements_at,
)
from acd.strategy import Memory, dispatch

RULES = (
    SkillRule(after=30, relax=2),
    SkillRule(after=60, relax=4),
    SkillRule(after=120, drop=True),
)


def queue(**kw: object) -> QueueConfig:
    base: dict[str, object] = {"name": "q", "number": "800"}
    base.update(kw)
    return QueueConfig(**base)  # type: ignore[arg-type]


def caller(call_id: str = "c1", joined: float = 0.0, **kw: object) -> Caller:
    return Caller(
        call_id=call_id, queue=str(kw.pop("queue", "q")), number="555", joined=joined, **kw
    )  # type: ignore[arg-type]


def test_required_overlays_caller_on_queue_taking_the_higher_level() -> None:
    q = queue(skills={"fr": 3, "billing": 5})
    c = caller(skills={"fr": 6, "billing": 2, "vip": 1})
    assert required(q, c) == {"fr": 6, "billing": 5, "vip": 1}
    assert required(queue(), caller()) == {}


@pytest.mark.parametrize(
    ("waited", "expected"),
    [
        (0.0, {"fr": 7, "de": 2}),
        (29.9, {"fr": 7, "de": 2}),
        (30.0, {"fr": 5, "de": 1}),  # relax 2, never below 1
        (59.0, {"fr": 5, "de": 1}),
        (60.0, {"fr": 3, "de": 1}),  # the largest relax in force, not the sum
        (119.9, {"fr": 3, "de": 1}),
        (120.0, {}),  # drop: nothing required any more
        (1e9, {}),
    ],
)
def test_relaxed_applies_rules_in_force(waited: float, expected: dict[str, int]) -> None:
    assert relaxed({"fr": 7, "de": 2}, waited, RULES) == expected


def test_relaxed_rule_order_does_not_matter_and_zero_relax_is_no_change() -> None:
    assert relaxed({"fr": 7}, 61, tuple(reversed(RULES[:2]))) == {"fr": 3}
    assert relaxed({"fr": 7}, 1000, (SkillRule(after=10),)) == {"fr": 7}
    assert relaxed({"fr": 7}, 5, ()) == {"fr": 7}


def test_requirements_at_counts_from_relax_from_else_joined() -> None:
    q = queue(skills={"fr": 7}, skill_rules=RULES)
    assert requirements_at(q, caller(joined=100), 131) == {"fr": 5}
    assert requirements_at(q, caller(joined=100, relax_from=125), 131) == {"fr": 7}
    assert requirements_at(q, caller(joined=100, relax_from=125), 186) == {"fr": 3}


@pytest.mark.parametrize(
    ("agent_skills", "needs", "ok"),
    [
        ({}, {}, True),
        ({"fr": 1}, {}, True),
        ({"fr": 5}, {"fr": 5}, True),
        ({"fr": 4}, {"fr": 5}, False),
        ({"fr": 9}, {"fr": 5, "de": 1}, False),
        ({"fr": 9, "de": 1}, {"fr": 5, "de": 1}, True),
    ],
)
def test_qualifies(agent_skills: dict[str, int], needs: dict[str, int], ok: bool) -> None:
    assert qualifies(agent_skills, needs) is ok


def test_match_score_sums_the_agents_levels_over_required_skills() -> None:
    assert match_score({"fr": 9, "de": 2, "es": 10}, {"fr": 1, "de": 1}) == 11
    assert match_score({"es": 10}, {"fr": 1}) == 0
    assert match_score({"es": 10}, {}) == 0


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (10.0, 130.0),  # joined at 100: first rule at 130
        (130.0, 160.0),
        (170.0, 220.0),
        (220.0, None),  # dropped: nothing left to relax
    ],
)
def test_next_relax_at(now: float, expected: float | None) -> None:
    q = queue(skills={"fr": 7}, skill_rules=RULES)
    assert next_relax_at(caller(joined=100), q, now) == expected


def test_next_relax_at_skips_rules_that_change_nothing() -> None:
    rules = (
        SkillRule(after=10, relax=3),
        SkillRule(after=20, relax=1),
        SkillRule(after=30, relax=5),
    )
    q = queue(skills={"fr": 8}, skill_rules=rules)
    assert next_relax_at(caller(), q, 10) == 30
    # a level already at 1 cannot relax further: no re-dispatch is needed
    assert next_relax_at(caller(), queue(skills={"fr": 1}, skill_rules=rules), 0) is None


def test_next_relax_at_none_without_requirements_or_rules() -> None:
    assert next_relax_at(caller(), queue(skill_rules=RULES), 0) is None
    assert next_relax_at(caller(), queue(skills={"fr": 3}), 0) is None


def test_escalate_keeps_the_place_and_restarts_the_relax_clock() -> None:
    c = caller(joined=100, skills={"fr": 3}, notes=("billing issue",))
    e = escalate(c, "legal", 12, now=400, note="wants a refund over 1000")
    assert e.joined == 100 and e.call_id == c.call_id and e.queue == c.queue
    assert dict(e.skills) == {"fr": 3, "legal": 10}  # clamped to 10
    assert e.relax_from == 400
    assert e.notes == ("billing issue", "wants a refund over 1000")
    # an existing higher requirement is not lowered
    assert dict(escalate(e, "fr", 1).skills) == {"fr": 3, "legal": 10}
    assert escalate(c, "x", 0).skills["x"] == 1
    q = queue(skill_rules=RULES)
    # at 430 the escalated requirement has relaxed only by the first rule
    assert requirements_at(q, e, 430) == {"fr": 1, "legal": 8}
    # without `now` an old caller's new skill is relaxed at once (documented)
    assert requirements_at(q, escalate(c, "legal", 7), 400) == {}


def test_move_to_queue_keeps_joined_and_optionally_skills() -> None:
    c = caller(joined=50, skills={"fr": 4}, priority=2)
    m = move_to_queue(c, "specialists", now=90, note="second line")
    assert (m.queue, m.joined, m.priority, dict(m.skills)) == ("specialists", 50, 2, {"fr": 4})
    assert m.relax_from == 90 and m.notes == ("second line",)
    assert dict(move_to_queue(c, "s", keep_skills=False).skills) == {}


def avail(name: str, **skills: int) -> Agent:
    return Agent(name=name, state=AgentState.AVAILABLE, skills=skills)


def test_escalated_caller_goes_only_to_the_specialist_and_keeps_its_place() -> None:
    q = queue(strategy=Strategy.LINEAR, skill_rules=RULES)
    members = {"q": [Member("ann", position=1), Member("bob", position=2)]}
    agents = {"ann": avail("ann"), "bob": avail("bob", legal=8)}
    first = caller("early", joined=10)
    late = caller("late", joined=20)
    # without escalation linear gives ann to the earliest caller
    offers = dispatch(200, {"q": q}, members, agents, [late, first], (), random.Random(1), Memory())
    assert [(o.caller, o.agents) for o in offers] == [("early", ("ann",)), ("late", ("bob",))]
    # escalated, the early caller needs legal >= 7: bob; it keeps its place before "late"
    esc = escalate(first, "legal", 7, now=200)
    offers = dispatch(200, {"q": q}, members, agents, [late, esc], (), random.Random(1), Memory())
    assert [(o.caller, o.agents) for o in offers] == [("early", ("bob",)), ("late", ("ann",))]
    # bob busy: the escalated caller waits (no ann), the later one still gets ann
    offers = dispatch(
        200, {"q": q}, members, agents, [late, esc], ("bob",), random.Random(1), Memory()
    )
    assert [(o.caller, o.agents) for o in offers] == [("late", ("ann",))]


def test_caller_moved_to_a_specialist_queue_is_served_before_newer_callers_there() -> None:
    queues = {
        "first": queue(name="first"),
        "spec": queue(name="spec", strategy=Strategy.LINEAR),
    }
    members = {"first": [Member("ann")], "spec": [Member("sam")]}
    agents = {"ann": avail("ann"), "sam": avail("sam")}
    newer = caller("newer", joined=100, queue="spec")
    moved = move_to_queue(caller("old", joined=5, queue="first"), "spec", now=150)
    offers = dispatch(150, queues, members, agents, [newer, moved], (), random.Random(0), Memory())
    assert [(o.caller, o.queue, o.agents) for o in offers] == [("old", "spec", ("sam",))]
