"""How many agents of a queue the dialer may still hand a call to (`Dialer.capacity`,
`agent_free`), as a table over the ACD's agents and callers: ringall offers ringing
every agent for one caller, inbound callers waiting, calls handed over the ACD has not
seen yet, unreachable or busy agents, the inbound reserve."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from acd.dialer import Dialer
from acd.engine_core import CallerState, WaitingCaller
from acd.model import Agent, AgentState

A, R, T, W, P = (
    AgentState.AVAILABLE,
    AgentState.RINGING,
    AgentState.ON_CALL,
    AgentState.WRAP_UP,
    AgentState.PAUSED,
)


@dataclass
class FakeEngine:
    callers: list[tuple[str, CallerState]] = field(default_factory=list)

    def waiting(self, now: float, queue: str | None = None) -> list[WaitingCaller]:
        return [
            WaitingCaller(c, "sales", "+1", i, 1.0, s, False, 0)
            for i, (c, s) in enumerate(self.callers, 1)
        ]

    def caller_states(self) -> dict[str, CallerState]:
        return dict(self.callers)


@dataclass
class FakeAcd:
    agents: list[Agent]
    engine: FakeEngine

    def queue_agents(self, queue: str) -> list[Agent]:
        return self.agents


def agents(*states: AgentState, unregistered: int = 0, in_use: int = 0) -> list[Agent]:
    out = [Agent(f"10{i:02d}", s) for i, s in enumerate(states)]
    for i in range(unregistered):
        out.append(Agent(f"20{i:02d}", A, registered=False))
    for i in range(in_use):
        out.append(Agent(f"30{i:02d}", A, in_use=True))
    return out


@pytest.mark.parametrize(
    ("staff", "callers", "ours", "handing", "theirs_only", "with_ours"),
    [
        (agents(A, A, A), [], set(), set(), 3, 3),
        # ringall: one caller of ours rings all three agents; two are still free for more
        (agents(R, R, R), [("d1", CallerState.RINGING)], {"d1"}, set(), 3, 2),
        # an inbound caller waiting takes one of the two free agents first
        (agents(A, A), [("in1", CallerState.WAITING)], set(), set(), 1, 1),
        # connected callers need no agent; talking, wrapping, paused agents are not free
        (agents(A, T, W, P), [("in2", CallerState.CONNECTED)], set(), set(), 1, 1),
        # unreachable phones and agents on calls of their own are not free
        (agents(A, unregistered=2, in_use=1), [], set(), set(), 1, 1),
        # a call handed over that the ACD has not taken in yet holds an agent
        (agents(A, A), [], {"d2"}, {"d2"}, 2, 1),
        # more callers than agents: none free (negative: the pacer waits)
        (
            agents(A),
            [("in3", CallerState.WAITING), ("in4", CallerState.WAITING)],
            set(),
            set(),
            -1,
            -1,
        ),
    ],
)
def test_capacity(
    staff: list[Agent],
    callers: list[tuple[str, CallerState]],
    ours: set[str],
    handing: set[str],
    theirs_only: int,
    with_ours: int,
) -> None:
    dialer = Dialer(FakeAcd(staff, FakeEngine(callers)), prompts=None, clock=lambda: 0.0)  # type: ignore[arg-type]
    for call_id in ours | handing:
        dialer._connects[call_id] = None  # type: ignore[assignment]
    dialer._handing = set(handing)
    dialer._queue_of = dict.fromkeys(handing, "sales")
    assert dialer.capacity("sales", ours=False) == theirs_only
    assert dialer.capacity("sales", ours=True) == with_ours
    assert dialer.capacity("", ours=True) == 0


@pytest.mark.parametrize(
    ("free", "reserve", "expected"), [(2, 0, True), (2, 1, True), (2, 2, False), (0, 0, False)]
)
def test_agent_free_keeps_the_inbound_reserve(free: int, reserve: int, expected: bool) -> None:
    dialer = Dialer(FakeAcd(agents(*[A] * free), FakeEngine()), prompts=None)  # type: ignore[arg-type]

    @dataclass
    class Runner:
        campaign: Any

    @dataclass
    class Settings:
        queue: str = "sales"
        inbound_reserve: int = reserve

    dialer.runners["c"] = Runner(Settings())  # type: ignore[assignment]
    assert dialer.agent_free("sales") is expected
