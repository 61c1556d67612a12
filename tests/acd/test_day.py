"""Issue 13, acceptance 5: a simulated day on a fake clock.

A pure model of a contact-centre morning — seeded arrivals, handle times, patience
(abandons), ring delays, an unattended phone (ring-no-answers) and pauses — drives the
real `acd.engine.AcdEngine` with core's dispatch (no SIP, no store). The test plays the
shell: it answers the offers the engine makes, hangs up connected calls when their talk
time is over, and collects the queue events the engine emits. `acd.stats` over those
events must then equal the figures worked out here from the model's own log — what the
test itself decided and saw as a shell (when each caller arrived, was connected or gave
up, how long each talked, each agent's logins and pauses) — never from the events.

2 queues (sales: leastrecent, 30 s wrap-up; support: rrmemory, no wrap-up), 3 agents
(a1 in both, a2 in sales, a3 in support), 40 calls between 09:00 and 11:00.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from acd.engine import AcdEngine
from acd.engine_actions import Action, Bridge, Emit, Ring
from acd.model import Agent, Member, QueueConfig, QueueEvent, Strategy
from acd.stats import agent_stats, queue_stats

H = 3600.0
DAY = 1_796_198_400.0  # 2026-12-01 00:00 UTC; only differences matter
LOGIN, LOGOUT = DAY + 8.5 * H, DAY + 17 * H
SINCE, UNTIL = DAY + 8 * H, DAY + 18 * H
CALLS = 40
WRAPUP = {"sales": 30.0, "support": 0.0}
THRESHOLD = {"sales": 20.0, "support": 30.0}
RING_DELAY = {"a1": 3.0, "a2": 5.0, "a3": 4.0}  # seconds an agent takes to answer
UNATTENDED = ("a3", DAY + 9.5 * H, DAY + 9.75 * H)  # a3's phone rings unanswered then
PAUSES = [("a1", DAY + 9.75 * H, 300.0, "break"), ("a2", DAY + 10 * H, 1200.0, "lunch")]
RING_SECONDS = 15.0


@dataclass
class CallPlan:
    """What the model decided about one caller."""

    call_id: str
    queue: str
    arrival: float
    talk: float
    patience: float
    by_agent: bool
    connected: float | None = None  # seen as a shell: the Bridge
    agent: str | None = None
    abandoned: float | None = None
    ended: float | None = None


@dataclass
class AgentLog:
    pauses: list[tuple[float, float, str]] = field(default_factory=list)
    busy_until: float = 0.0  # end of its last call's wrap-up, as the model knows it
    pause_wanted: tuple[float, str] | None = None


def plan_day(seed: int) -> list[CallPlan]:
    rng = random.Random(seed)
    arrivals = sorted(round(rng.uniform(9 * H, 11 * H)) for _ in range(CALLS))
    plans = []
    for i, at in enumerate(arrivals):
        queue = "sales" if rng.random() < 0.6 else "support"
        plans.append(
            CallPlan(
                call_id=f"c{i:02d}",
                queue=queue,
                arrival=DAY + at,
                talk=float(rng.randint(60, 420)),
                patience=float(rng.randint(5, 240)),
                by_agent=rng.random() < 0.5,
            )
        )
    return plans


class Shell:
    """The test as the ACD's shell: a heap of its own future inputs, the engine's timers."""

    def __init__(self, plans: list[CallPlan]) -> None:
        self.plans = {p.call_id: p for p in plans}
        self.engine = AcdEngine(
            {
                "sales": QueueConfig("sales", "700", strategy=Strategy.LEASTRECENT,
                                     wrapup_seconds=WRAPUP["sales"], ring_seconds=RING_SECONDS,
                                     retry_seconds=5.0, callback_key=None),
                "support": QueueConfig("support", "701", strategy=Strategy.RRMEMORY,
                                       ring_seconds=RING_SECONDS, retry_seconds=5.0,
                                       service_level_seconds=30.0, callback_key=None),
            },
            {"sales": [Member("a1", 0, 0), Member("a2", 0, 1)],
             "support": [Member("a1", 0, 0), Member("a3", 0, 1)]},
            [Agent("a1"), Agent("a2"), Agent("a3")],
            rng=random.Random(3),
        )  # fmt: skip
        self.events: list[QueueEvent] = []
        self.agents = {name: AgentLog() for name in RING_DELAY}
        self.ignored: list[tuple[str, float]] = []  # (caller, ring start) left unanswered
        self._heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        for plan in plans:
            self.at(plan.arrival, "arrive", plan.call_id)
            self.at(plan.arrival + plan.patience, "give-up", plan.call_id)
        for name in RING_DELAY:
            self.at(LOGIN, "login", name)
            self.at(LOGOUT, "logout", name)
        for name, start, _, reason in PAUSES:
            self.at(start, "want-pause", name, reason)

    def at(self, when: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, args))

    def run(self) -> None:
        for _ in range(100_000):  # bounded: the day has a few hundred steps
            mine = self._heap[0][0] if self._heap else math.inf
            timer = self.engine.next_deadline()
            timer = math.inf if timer is None else timer
            if mine == timer == math.inf:
                return
            if timer <= mine:
                self.handle(self.engine.on_timer(timer), timer)
                continue
            now, _, kind, args = heapq.heappop(self._heap)
            self.handle(getattr(self, "_" + kind.replace("-", "_"))(now, *args), now)
        raise AssertionError("the day never ended")

    # ---- the shell's inputs, decided by the model -------------------------------------

    def _arrive(self, now: float, call_id: str) -> list[Action]:
        plan = self.plans[call_id]
        return self.engine.caller_joined(call_id, plan.queue, f"555{call_id[1:]}", now)

    def _give_up(self, now: float, call_id: str) -> list[Action]:
        plan = self.plans[call_id]
        if plan.connected is not None:
            return []
        plan.abandoned = now
        return self.engine.caller_left(call_id, now)

    def _answer(self, now: float, call_id: str, agent: str, offer_id: int) -> list[Action]:
        if self.plans[call_id].abandoned is not None:
            return []  # the caller is gone; the engine cancelled the ring already
        return self.engine.offer_answered(call_id, agent, now, offer_id)

    def _hang_up(self, now: float, call_id: str) -> list[Action]:
        plan = self.plans[call_id]
        plan.ended = now
        assert plan.agent is not None
        log = self.agents[plan.agent]
        log.busy_until = now + WRAPUP[plan.queue]
        if log.pause_wanted is not None:  # pause once the wrap-up is over
            self.at(log.busy_until + 1.0, "want-pause", plan.agent, log.pause_wanted[1])
        return self.engine.call_completed(call_id, now, by_agent=plan.by_agent)

    def _login(self, now: float, agent: str) -> list[Action]:
        return self.engine.agent_login(agent, now)

    def _logout(self, now: float, agent: str) -> list[Action]:
        return self.engine.agent_logout(agent, now)

    def _want_pause(self, now: float, agent: str, reason: str) -> list[Action]:
        """Agents pause between calls (never during one or its wrap-up)."""
        log = self.agents[agent]
        on_call = any(p.agent == agent and p.ended is None for p in self.plans.values())
        if on_call or now < log.busy_until:
            log.pause_wanted = (now, reason)
            if not on_call:
                self.at(log.busy_until + 1.0, "want-pause", agent, reason)
            return []
        if log.pause_wanted is None and any(r == reason for _, _, r in log.pauses):
            return []  # already taken (a duplicate retry)
        log.pause_wanted = None
        length = next(s for n, _, s, r in PAUSES if n == agent and r == reason)
        log.pauses.append((now, now + length, reason))
        self.at(now + length, "unpause", agent)
        return self.engine.agent_pause(agent, now, reason)

    def _unpause(self, now: float, agent: str) -> list[Action]:
        return self.engine.agent_unpause(agent, now)

    # ---- what the engine asks -----------------------------------------------------------

    def handle(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Emit):
                self.events.append(action.event)
            elif isinstance(action, Ring):
                for agent in action.agents:
                    name, start, end = UNATTENDED
                    if agent == name and start <= now < end:
                        self.ignored.append((action.caller, now))
                        continue
                    self.at(now + RING_DELAY[agent], "answer", action.caller, agent,
                            action.offer_id)  # fmt: skip
            elif isinstance(action, Bridge):
                plan = self.plans[action.caller]
                plan.connected, plan.agent = now, action.agent
                self.at(now + plan.talk, "hang-up", plan.call_id)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@pytest.fixture(scope="module")
def day() -> Shell:
    shell = Shell(plan_day(seed=13))
    shell.run()
    return shell


def test_every_call_ended_one_way(day: Shell) -> None:
    for plan in day.plans.values():
        assert (plan.connected is None) != (plan.abandoned is None), plan
        if plan.connected is not None:
            assert plan.ended is not None and plan.connected - plan.arrival < plan.patience
    answered = sum(p.connected is not None for p in day.plans.values())
    # The day is busy enough to test something: waits, abandons, unanswered rings.
    assert 0 < answered < CALLS and day.ignored
    assert any(p.connected and p.connected - p.arrival > THRESHOLD[p.queue]
               for p in day.plans.values())  # fmt: skip


def test_queue_figures_equal_the_models(day: Shell) -> None:
    check_queues(day)


def test_agent_figures_equal_the_models(day: Shell) -> None:
    check_agents(day)


@pytest.mark.parametrize("seed", [1, 2, 42, 2026])
def test_other_days(seed: int) -> None:
    shell = Shell(plan_day(seed))
    shell.run()
    check_queues(shell)
    check_agents(shell)


def check_queues(day: Shell) -> None:
    stats = queue_stats(day.events, SINCE, UNTIL, THRESHOLD)
    assert sorted(stats) == ["sales", "support"]
    for queue, got in stats.items():
        t = THRESHOLD[queue]
        plans = [p for p in day.plans.values() if p.queue == queue]
        answered = [p for p in plans if p.connected is not None]
        abandoned = [p for p in plans if p.abandoned is not None]
        holds = [p.connected - p.arrival for p in answered if p.connected is not None]
        waits = [p.patience for p in abandoned]
        a_within = sum(h <= t for h in holds)
        b_within = sum(w <= t for w in waits)
        expected = {
            "offered": len(plans),
            "answered": len(answered),
            "answered_within": a_within,
            "abandoned": len(abandoned),
            "abandoned_within": b_within,
            "waiting": 0,
            "completed": len(answered),
            "sl": a_within / len(answered) if answered else None,
            "sl2": (a_within + b_within) / (len(answered) + len(abandoned)),
            "asa": _mean(holds),
            "aht": _mean([p.talk + WRAPUP[queue] for p in answered]),
            "avg_talk": _mean([p.talk for p in answered]),
            "longest_wait": max(holds + waits),
        }
        actual = {name: getattr(got, name) for name in expected}
        assert actual == pytest.approx(expected, rel=1e-12), queue


def check_agents(day: Shell) -> None:
    stats = agent_stats(day.events, SINCE, UNTIL)
    assert sorted(stats) == ["a1", "a2", "a3"]
    for name, got in stats.items():
        mine = [p for p in day.plans.values() if p.agent == name]
        talk = sum(p.talk for p in mine)
        wrapup = sum(WRAPUP[p.queue] for p in mine)
        pauses: dict[str, float] = {}
        for start, end, reason in day.agents[name].pauses:
            pauses[reason] = pauses.get(reason, 0.0) + (end - start)
        paused = sum(pauses.values())
        logged = LOGOUT - LOGIN
        # An ignored ring is a ring-no-answer unless its caller gave up first.
        unanswered = sum(
            1
            for caller, start in day.ignored
            if name == UNATTENDED[0]
            and not (
                (gone := day.plans[caller].abandoned) is not None
                and gone < start + RING_SECONDS
            )
        )  # fmt: skip
        expected = {
            "answered": len(mine),
            "completed": len(mine),
            "ring_no_answer": unanswered,
            "talk": talk,
            "wrapup": wrapup,
            "paused": paused,
            "logged": logged,
            "occupancy": (talk + wrapup) / (logged - paused),
        }
        actual = {key: getattr(got, key) for key in expected}
        assert actual == pytest.approx(expected, rel=1e-12), name
        assert dict(got.pauses) == pauses, name
    assert set(stats["a1"].pauses) == {"break"} and set(stats["a2"].pauses) == {"lunch"}


def test_the_same_seed_gives_the_same_day() -> None:
    again = Shell(plan_day(seed=13))
    again.run()
    first = Shell(plan_day(seed=13))
    first.run()
    assert again.events == first.events
