"""Pacers: the pacing rules of acd/pacing.py wrapped with what they measure.

One interface for every dialing policy (ours and VICIdial's reimplemented ones in
acd/vicidial_pacing.py), so the shift simulation (acd/dialer_sim.py) and the live
dialer drive them the same way: the owner reports what happened (a dial's result,
a live answer's fate, a finished call) and asks `lines(view)` how many calls to
place now. Pacers never see the clock except through `view.now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from acd.governor import AbandonGovernor
from acd.pacing import (
    DialMeter,
    HandleModel,
    Snapshot,
    agentless_lines,
    predictive_lines,
    progressive_lines,
)


@dataclass(frozen=True, slots=True)
class PacerView:
    """The campaign at one instant, as a pacer sees it."""

    now: float
    snapshot: Snapshot
    agents: int  # logged in and not paused (idle, talking or in wrap-up)
    window_live: int  # live answers in the compliance window so far
    window_abandoned: int  # of which abandoned


class Pacer(Protocol):
    """A dialing policy."""

    name: str
    interval: float  # seconds between decisions when nothing happens
    on_events: bool  # also decide after every event

    def lines(self, view: PacerView) -> int:
        """Calls to place now."""
        ...

    def dial_result(self, now: float, kind: str, ring_s: float) -> None:
        """A dial stopped ringing: 'live', 'machine', 'busy', 'noanswer' or 'failed'."""
        ...

    def live_answer(self, now: float, abandoned: bool) -> None:
        """A live answer reached an agent in time, or was abandoned."""
        ...

    def handled(self, talk_s: float, wrap_s: float) -> None:
        """An agent finished a call (talk and wrap-up seconds)."""
        ...


class _Quiet:
    """Pacers that learn nothing from outcomes."""

    def dial_result(self, now: float, kind: str, ring_s: float) -> None:
        pass

    def live_answer(self, now: float, abandoned: bool) -> None:
        pass

    def handled(self, talk_s: float, wrap_s: float) -> None:
        pass


class PreviewPacer(_Quiet):
    """Preview: the agent dials from the record on screen; the pacer never does."""

    name = "preview"
    interval = 1.0
    on_events = False

    def lines(self, view: PacerView) -> int:
        return 0


class AgentlessPacer(_Quiet):
    """Agentless: a message or IVR to whoever answers; only the line budget limits it.

    Every call placed and not yet over uses a line: ringing, waiting, or with its
    message (the view's talking calls).
    """

    name = "agentless"
    interval = 1.0
    on_events = True

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines

    def lines(self, view: PacerView) -> int:
        snap = view.snapshot
        in_use = len(snap.ringing) + snap.waiting + len(snap.talking)
        return agentless_lines(in_use, self.max_lines)


class ProgressivePacer(_Quiet):
    """One call per free agent."""

    name = "progressive"
    interval = 1.0
    on_events = True

    def lines(self, view: PacerView) -> int:
        return progressive_lines(view.snapshot)


class PredictivePacer:
    """Dials ahead by acd/pacing.py's rule, with the allowance from the governor.

    It never dials fewer lines than progressive would (an idle agent always gets a
    call started for it); `max_ratio` caps lines in progress per agent; `guard`
    (seconds) also holds the governor's budget over that trailing window.
    """

    name = "predictive"
    interval = 1.0
    on_events = True

    def __init__(
        self,
        *,
        ring_timeout: float,
        amd_seconds: float,
        prior: HandleModel,
        target: float = 0.03,
        max_ratio: float = 5.0,
        guard: float | None = None,
    ) -> None:
        self.meter = DialMeter(ring_timeout=ring_timeout, amd_seconds=amd_seconds, prior=prior)
        self.governor = AbandonGovernor(target, guard=guard)
        if guard is not None:
            self.name = f"predictive+{guard / 3600:g}h guard"
        self._max_ratio = max_ratio

    def lines(self, view: PacerView) -> int:
        snap = view.snapshot
        in_progress = len(snap.ringing) + snap.waiting
        budget = max(0, int(self._max_ratio * view.agents) - in_progress)
        share = self.governor.allowance(view.window_live, view.window_abandoned, view.now)
        ahead = predictive_lines(snap, self.meter.estimates(), share, budget)
        return max(ahead, progressive_lines(snap))

    def dial_result(self, now: float, kind: str, ring_s: float) -> None:
        self.meter.dial_result(kind, ring_s)

    def live_answer(self, now: float, abandoned: bool) -> None:
        self.governor.live_answer(abandoned, now)

    def handled(self, talk_s: float, wrap_s: float) -> None:
        self.meter.handled(talk_s, wrap_s)
