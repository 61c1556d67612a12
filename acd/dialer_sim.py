"""A seeded discrete-event simulation of an outbound shift, for any pacer.

The world (all times in seconds on a fake clock, randomness from one numpy Generator):
- each dial ends ringing as a live answer (probability p_live, which may step to
  p_live_after at step_at), a machine (p_machine), busy (p_busy) or no answer
  (the rest, and any answer that would come after the ring timeout);
- answer times are lognormal (live and machine each their own mean and cv), busy
  signals come after busy_s;
- a live answer is classified by AMD amd_seconds after the greeting, then goes to
  the longest-idle agent; if none is free it waits, and a call not with
  an agent 2 s after the greeting (AMD included) is abandoned (the safe-harbour
  message plays and the call ends);
- an agent talks a lognormal time (mean aht, coefficient of variation talk_cv),
  then wraps up for `wrap` seconds.
The pacer is asked for lines after every event (if it wants) and every
`interval` seconds; no dial is placed after the shift ends, and talk and idle
time are counted up to the end of the shift.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from acd.pacers import Pacer, PacerView
from acd.pacing import CONNECT_LIMIT, Snapshot
from pbx.api import ConfigError

_TICK, _RING_END, _AMD_DONE, _DEADLINE, _TALK_END, _FREE = range(6)
_LIVE, _MACHINE, _BUSY, _NOANSWER = "live", "machine", "busy", "noanswer"


@dataclass(frozen=True, slots=True)
class ShiftParams:
    """One simulated shift (defaults: the issue's acceptance scenario)."""

    agents: int = 20
    hours: float = 8.0
    p_live: float = 0.30
    p_machine: float = 0.20
    p_busy: float = 0.05
    aht: float = 180.0
    talk_cv: float = 1.0
    wrap: float = 15.0
    live_ring_mean: float = 8.0
    live_ring_cv: float = 0.5
    machine_ring_mean: float = 15.0
    machine_ring_cv: float = 0.3
    busy_s: float = 3.0
    ring_timeout: float = 25.0
    amd_seconds: float = 0.8
    step_at: float | None = None
    p_live_after: float | None = None

    def check(self) -> None:
        """Raises ConfigError on a world that makes no sense."""
        after = self.p_live if self.p_live_after is None else self.p_live_after
        for p in (self.p_live, after):
            if not p >= 0 or p + self.p_machine + self.p_busy > 1:
                raise ConfigError(f"answer probabilities do not add up: {self}")
        if self.agents < 1 or self.hours <= 0 or self.aht <= 0:
            raise ConfigError(f"bad shift: {self}")
        if self.amd_seconds >= CONNECT_LIMIT:
            raise ConfigError("AMD must decide within the 2 s allowed to reach an agent")


@dataclass(slots=True)
class ShiftResult:
    """What a shift produced."""

    pacer: str
    dials: int
    live: int
    abandoned: int
    talk_s: float
    idle_s: float
    agent_s: float
    waits: np.ndarray  # answer-to-agent seconds of every connected live answer
    live_times: np.ndarray  # answer time of every live answer, in order
    live_abandoned: np.ndarray  # bool, same order
    # every attempt: (dialed or answered at, outcome, wait to agent, agent or -1, AMD s)
    attempts: list[tuple[float, str, float, int, float]] = field(default_factory=list)

    @property
    def talk_min_per_agent_hour(self) -> float:
        return self.talk_s / 60 / (self.agent_s / 3600)

    @property
    def idle_pct(self) -> float:
        return 100 * self.idle_s / self.agent_s

    @property
    def abandon_pct(self) -> float:
        return 100 * self.abandoned / self.live if self.live else 0.0

    @property
    def p95_wait(self) -> float:
        return float(np.percentile(self.waits, 95)) if len(self.waits) else 0.0

    def worst_window_pct(self, window: float = 3600.0) -> float:
        """Worst abandon % over any full `window` seconds ending at a live answer."""
        t, ab = self.live_times, self.live_abandoned.astype(np.int64)
        if len(t) == 0 or t[-1] < window:
            return self.abandon_pct
        cum = np.concatenate(([0], np.cumsum(ab)))
        end = np.arange(1, len(t) + 1)
        start = np.searchsorted(t, t - window, side="right")
        full = t >= window
        rates = (cum[end] - cum[start])[full] / (end - start)[full]
        return float(100 * rates.max())

    def cumulative_pct(self, at: float) -> float:
        """Abandon % of the live answers up to `at` (the rolling 30-day rate, mid-shift)."""
        k = int(np.searchsorted(self.live_times, at, side="right"))
        return 100 * float(self.live_abandoned[:k].sum()) / k if k else 0.0


def _lognormal(rng: np.random.Generator, mean: float, cv: float) -> float:
    if cv <= 0:
        return mean
    s2 = math.log1p(cv * cv)
    return float(rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2)))


def simulate(params: ShiftParams, pacer: Pacer, seed: int) -> ShiftResult:
    """Run one shift with `pacer` on the world `params`, seeded."""
    params.check()
    rng = np.random.default_rng(seed)
    end = params.hours * 3600
    events: list[tuple[float, int, int, int]] = []
    seq = 0

    def push(t: float, kind: int, arg: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, arg))

    n = params.agents
    idle: list[int] = list(range(n))
    talk_start = [0.0] * n
    talk_len = [0.0] * n
    wrap_end = [0.0] * n
    talking: set[int] = set()
    wrapping: set[int] = set()
    ringing: dict[int, float] = {}  # call -> dial time
    outcome: dict[int, tuple[str, float]] = {}  # call -> (kind, ring seconds)
    answered_at: dict[int, float] = {}
    waiting: deque[int] = deque()
    waiting_set: set[int] = set()
    waits: list[float] = []
    live_times: list[float] = []
    live_abandoned: list[bool] = []
    attempts: list[tuple[float, str, float, int, float]] = []
    dials = abandoned = in_amd = 0
    talk_s = idle_s = 0.0
    last_t = 0.0

    def p_live_at(t: float) -> float:
        if params.step_at is not None and params.p_live_after is not None and t >= params.step_at:
            return params.p_live_after
        return params.p_live

    def dial(t: float) -> None:
        nonlocal dials
        dials += 1
        call = dials
        u = float(rng.random())
        pl = p_live_at(t)
        if u < pl:
            kind, ring = _LIVE, _lognormal(rng, params.live_ring_mean, params.live_ring_cv)
        elif u < pl + params.p_machine:
            kind, ring = _MACHINE, _lognormal(rng, params.machine_ring_mean, params.machine_ring_cv)
        elif u < pl + params.p_machine + params.p_busy:
            kind, ring = _BUSY, params.busy_s
        else:
            kind, ring = _NOANSWER, params.ring_timeout
        if ring > params.ring_timeout:
            kind, ring = _NOANSWER, params.ring_timeout
        ringing[call] = t
        outcome[call] = (kind, ring)
        push(t + ring, _RING_END, call)

    def connect(t: float, call: int, agent: int) -> None:
        nonlocal talk_s
        wait = t - answered_at.pop(call)
        waits.append(wait)
        live_times.append(t - wait)
        live_abandoned.append(False)
        attempts.append((t - wait, _LIVE, wait, agent, params.amd_seconds))
        pacer.live_answer(t, False)
        talk = _lognormal(rng, params.aht, params.talk_cv)
        talk_start[agent], talk_len[agent] = t, talk
        talking.add(agent)
        talk_s += max(0.0, min(talk, end - t))
        push(t + talk, _TALK_END, agent)

    def decide(t: float) -> None:
        if t >= end:
            return
        snap = Snapshot(
            idle_agents=len(idle),
            talking=tuple(t - talk_start[a] for a in talking),
            wrapping=tuple(wrap_end[a] - t for a in wrapping),
            ringing=tuple(t - d for d in ringing.values()),
            waiting=len(waiting) + in_amd,
        )
        window_live = len(live_times)
        view = PacerView(t, snap, n, window_live, sum(live_abandoned))
        for _ in range(pacer.lines(view)):
            dial(t)

    push(0.0, _TICK, 0)
    while events:
        t, _, kind, arg = heapq.heappop(events)
        if t > end and kind != _TICK:
            break
        if t > end:
            continue
        idle_s += len(idle) * (t - last_t)
        last_t = t
        if kind == _TICK:
            decide(t)
            push(t + pacer.interval, _TICK, 0)
            continue
        if kind == _RING_END:
            dial_t = ringing.pop(arg)
            what, ring = outcome.pop(arg)
            pacer.dial_result(t, what, ring)
            if what == _LIVE:
                in_amd += 1
                answered_at[arg] = t
                push(t + params.amd_seconds, _AMD_DONE, arg)
            else:
                attempts.append((dial_t, what, 0.0, -1, 0.0))
        elif kind == _AMD_DONE:
            in_amd -= 1
            if idle:
                connect(t, arg, idle.pop(0))
            else:
                waiting.append(arg)
                waiting_set.add(arg)
                push(answered_at[arg] + CONNECT_LIMIT, _DEADLINE, arg)
        elif kind == _DEADLINE:
            if arg in waiting_set:
                waiting_set.discard(arg)
                waiting.remove(arg)
                abandoned += 1
                at = answered_at.pop(arg)
                live_times.append(at)
                live_abandoned.append(True)
                attempts.append((at, "dropped", CONNECT_LIMIT, -1, params.amd_seconds))
                pacer.live_answer(t, True)
        elif kind == _TALK_END:
            talking.discard(arg)
            wrapping.add(arg)
            wrap_end[arg] = t + params.wrap
            push(t + params.wrap, _FREE, arg)
        elif kind == _FREE:
            wrapping.discard(arg)
            pacer.handled(talk_len[arg], params.wrap)
            if waiting:
                call = waiting.popleft()
                waiting_set.discard(call)
                connect(t, call, arg)
            else:
                idle.append(arg)
        if pacer.on_events:
            decide(t)
    idle_s += len(idle) * max(0.0, end - last_t)
    order = np.argsort(np.asarray(live_times), kind="stable")
    return ShiftResult(
        pacer=pacer.name,
        dials=dials,
        live=len(live_times),
        abandoned=abandoned,
        talk_s=talk_s,
        idle_s=idle_s,
        agent_s=n * end,
        waits=np.asarray(waits),
        live_times=np.asarray(live_times)[order],
        live_abandoned=np.asarray(live_abandoned, dtype=bool)[order],
        attempts=attempts,
    )
