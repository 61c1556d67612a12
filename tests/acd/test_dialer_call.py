"""acd.dialer_call's flow for one attempt, as a table over an in-memory call: how a
failed dial maps to an outcome, AMD's verdicts with the campaign's policies, the
hand-over and its wait, the safe-harbour message with its opt-out key, agentless.
(The same flow on real SIP: tests/interop/test_dialer.py; the simulator presses no
keys, so the keys are here.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import acd.dialer_call as dialer_call
from acd.dialer_call import AttemptState, Prompts, place_call
from media.amd import Result
from pbx.api import Campaign, Cause, DialAttempt, DialError, MachineDetection, Outcome

T0 = 1000.0
HARBOUR = np.full(800, 1, np.int16)
MACHINE_MSG = np.full(800, 2, np.int16)
AGENTLESS_MSG = np.full(800, 3, np.int16)


@dataclass
class FakeCall:
    keys: str = ""
    id: str = "c1"
    up: bool = True
    ended: bool = False
    played: list[int] = field(default_factory=list)

    def since_answer(self) -> float:
        return 0.25  # the switch handed it over a quarter second after the answer

    async def play(self, samples: Any, *, stop_on_digit: bool = False) -> bool:
        self.played.append(int(samples[0]))
        return True

    async def collect_digits(self, max_digits: int, **kw: Any) -> str:
        taken, self.keys = self.keys[:max_digits], self.keys[max_digits:]
        return taken

    async def hangup(self, status: int = 0, reason: str = "") -> None:
        self.up, self.ended = False, True

    async def wait_ended(self) -> None:
        self.up, self.ended = False, True


@dataclass
class FakeSwitch:
    answer: FakeCall | Outcome
    events: list[Any] = field(default_factory=list)

    async def dial(self, target: str, **kw: Any) -> FakeCall:
        self.target = target
        if isinstance(self.answer, Outcome):
            raise DialError(self.answer)
        return self.answer

    def publish(self, event: Any) -> None:
        self.events.append(event)


@dataclass
class Ctx:
    switch: FakeSwitch
    free: bool = True
    connect_after: float | None = 1.0
    opted: list[str] = field(default_factory=list)
    now: float = T0 + 0.25

    @property
    def clock(self) -> Callable[[], float]:
        return lambda: self.now

    def agent_free(self, queue: str) -> bool:
        return self.free

    async def hand_over(self, call: Any, queue: str, number: str) -> tuple[str, float] | None:
        if self.connect_after is None:
            return None
        return ("1001", T0 + self.connect_after)

    async def opt_out(self, number: str, campaign: str) -> None:
        self.opted.append(number)


def campaign(**kw: Any) -> Campaign:
    values: dict[str, Any] = {"name": "c", "caller_id": "+442071230000", "queue": "sales",
                              "trunk": "trunk:prov", "machine_policy": "message",
                              "machine_message": "m"}  # fmt: skip
    values.update(kw)
    return Campaign(**values)


def verdict(result: Result, ms: int = 1200) -> Callable[..., Any]:
    async def detect(call: Any, **kw: Any) -> MachineDetection:
        return MachineDetection(result, ms, "test")

    return detect


async def attempt(
    monkeypatch: pytest.MonkeyPatch, ctx: Ctx, amd: Result | None, **settings: Any
) -> DialAttempt:
    if amd is not None:
        monkeypatch.setattr(dialer_call, "detect_machine", verdict(amd))
    prompts = Prompts(HARBOUR, MACHINE_MSG, AGENTLESS_MSG)
    state = AttemptState("+442079460001", T0 - 3)
    return await place_call(ctx, campaign(**settings), None, "+442079460001", prompts, state)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome(Cause.BUSY, 486), "busy"),
        (Outcome(Cause.UNAVAILABLE, 480), "no_answer"),
        (Outcome(Cause.NO_ANSWER, 408), "no_answer"),
        (Outcome(Cause.NOT_FOUND, 404), "failed"),
        (Outcome(Cause.FAILED, 503), "failed"),
    ],
)
async def test_failed_dials(
    monkeypatch: pytest.MonkeyPatch, outcome: Outcome, expected: str
) -> None:
    switch = FakeSwitch(outcome)
    row = await attempt(monkeypatch, Ctx(switch), None)
    assert (row.outcome, row.sip_status, row.answered_at) == (expected, outcome.status, None)
    assert switch.target == "trunk:prov/+442079460001"


NOTSURE_HANGUP = {"notsure_policy": "hangup"}
MACHINE_HANGUP = {"machine_policy": "hangup"}
AGENTLESS = {"mode": "agentless"}


@pytest.mark.parametrize(
    ("amd", "free", "connect_after", "keys", "settings", "expected"),
    [
        # (AMD, agent free, CONNECT after the answer, keys, settings, expected)
        # a person, an agent free: connected 1 s after the answer (the answer, not the
        # moment the switch handed the call over, starts the clock)
        (Result.HUMAN, True, 1.0, "", {}, ("connected", "1001", 1.0, [], False)),
        (Result.HUMAN, True, 2.5, "", {}, ("connected", "1001", 2.5, [], False)),  # late
        (Result.HUMAN, True, None, "", {}, ("dropped", None, None, [], False)),  # hung up
        # no agent free: the safe-harbour message; 9 puts the number on the DNC list
        (Result.HUMAN, False, 1.0, "", {}, ("dropped", None, None, [1], False)),
        (Result.HUMAN, False, 1.0, "9", {}, ("dropped", None, None, [1], True)),
        (Result.HUMAN, False, 1.0, "5", {}, ("dropped", None, None, [1], False)),
        # a stray key does not cut the required message short, nor hide a 9 after it
        (Result.HUMAN, False, 1.0, "59", {}, ("dropped", None, None, [1], True)),
        # NOTSURE: to an agent by default, or hung up (a possible person: a drop)
        (Result.NOTSURE, True, 1.5, "", {}, ("connected", "1001", 1.5, [], False)),
        (Result.NOTSURE, True, 1.5, "", NOTSURE_HANGUP, ("dropped", None, None, [], False)),
        # machines: the message after the beep, or nothing
        (Result.MACHINE, True, 1.0, "", {}, ("machine", None, None, [2], False)),
        (Result.MACHINE, True, 1.0, "", MACHINE_HANGUP, ("machine", None, None, [], False)),
        # agentless: the message; 1 to a free agent, 9 to opt out
        (Result.HUMAN, True, 1.5, "1", AGENTLESS, ("connected", "1001", 1.5, [3], False)),
        (Result.HUMAN, True, 1.5, "9", AGENTLESS, ("connected", None, None, [3], True)),
        (Result.HUMAN, True, 1.5, "", AGENTLESS, ("connected", None, None, [3], False)),
        (Result.HUMAN, True, 1.5, "41", AGENTLESS, ("connected", "1001", 1.5, [3], False)),
        # 1 with no agent free: the person waits in the queue for one
        (Result.HUMAN, False, 20.0, "1", AGENTLESS, ("connected", "1001", 20.0, [3], False)),
        # no queue: 1 means nothing, 9 still opts out
        (Result.HUMAN, True, 1.5, "1", AGENTLESS | {"queue": ""},
         ("connected", None, None, [3], False)),
        (Result.HUMAN, True, 1.5, "9", AGENTLESS | {"queue": ""},
         ("connected", None, None, [3], True)),
    ],
)  # fmt: skip
async def test_answered(
    monkeypatch: pytest.MonkeyPatch,
    amd: Result,
    free: bool,
    connect_after: float | None,
    keys: str,
    settings: dict[str, Any],
    expected: tuple[str, str | None, float | None, list[int], bool],
) -> None:
    call = FakeCall(keys)
    ctx = Ctx(FakeSwitch(call), free=free, connect_after=connect_after)
    row = await attempt(monkeypatch, ctx, amd, **settings)
    outcome, agent, wait, played, opted = expected
    assert (row.outcome, row.agent, row.wait_to_agent, call.played) == (
        outcome,
        agent,
        wait,
        played,
    )
    assert row.opted_out is opted and ctx.opted == (["+442079460001"] if opted else [])
    assert row.answered_at == T0 and row.amd == amd.value.lower() and row.amd_ms == 1200
    assert row.amd_decided_at == T0 + 1.2
    assert row.message_left is (played == [2])
    assert call.ended  # every attempt ends its call
    kinds = [e.event for e in ctx.switch.events]
    assert kinds[:2] == ["dialled", "answered"]
