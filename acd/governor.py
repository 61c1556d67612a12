"""The abandon governor: how much overflow the predictive pacer may risk right now.

The pacer (acd/pacing.py) turns an allowance (a fraction of live answers it may
expect to abandon) into a number of lines. Its model is approximate (normal sums,
one horizon, estimates that lag a change of answer rate), so the governor closes
the loop on what really happened:

- aim = target * (1 - margin). The rolling rate of a window of N live answers
  wanders by about sqrt(aim / N) around the rate aimed at; for a shift of a few
  thousand live answers two of those are ~20 % of a 3 % target, hence margin 0.2.
- An integral controller on the log of a correction c (allowance = aim * c), starting
  cautious (c = 0.25: a new campaign earns its allowance rather than spends it first):
  each live answer moves log c by `gain` * (aim - abandoned), so an abandon cuts
  c by a factor exp(-gain*(1-aim)) and each connected answer raises it a little;
  c settles where the measured rate equals the aim. gain = ln 2 / (aim * react):
  at twice the aim, c halves within `react` live answers.
- A budget: the compliance window (30 days rolling in the US, the calendar day in
  the UK) may hold target * live abandons. Once fewer than two are left (one for
  the next decision, one for calls already ringing), the allowance is 0: the
  pacer only dials what cannot overflow (calls for agents already free).
  Optionally the same budget is also kept over a shorter guard window (say the
  last hour), spent only by abandons, so that a bad hour is cut
  short even when the long window still has room. Off by default: in simulation
  (benchmarks/dialer.py) it lowers the worst hour's rate by 0.1 to 3 points and
  costs 0.2 to 7 talk minutes per agent-hour (most with few live answers); the
  rules are about the 30-day or calendar-day rate, not the hour's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from pbx.api import ConfigError

DEFAULT_TARGET = 0.03
DEFAULT_MARGIN = 0.2
DEFAULT_REACT = 100  # live answers to halve the allowance at twice the aim
_C_MIN, _C_MAX = 0.02, 50.0
# Abandons the budget must still hold to dial ahead: one for the next decision and
# one for the calls already ringing, which can still be abandoned after a stop.
_RESERVE = 2.0


@dataclass(frozen=True, slots=True)
class GovernorState:
    """The controller's memory: the log of its correction."""

    log_c: float = math.log(0.25)  # a new campaign starts cautious and earns its allowance


def govern(state: GovernorState, abandoned: bool, aim: float, gain: float) -> GovernorState:
    """The state after one more live answer (abandoned or connected)."""
    log_c = state.log_c + gain * (aim - (1.0 if abandoned else 0.0))
    return GovernorState(min(math.log(_C_MAX), max(math.log(_C_MIN), log_c)))


def allowance(
    state: GovernorState, aim: float, target: float, window_live: int, window_abandoned: int
) -> float:
    """The abandon fraction the pacer may risk now (0 once the window's budget is spent)."""
    if target * window_live - window_abandoned < _RESERVE:
        return 0.0
    return min(0.5, aim * math.exp(state.log_c))


class AbandonGovernor:
    """Holds a campaign's abandon rate at or under `target` by feedback on the pacer."""

    def __init__(
        self,
        target: float = DEFAULT_TARGET,
        *,
        margin: float = DEFAULT_MARGIN,
        react: int = DEFAULT_REACT,
        guard: float | None = None,
    ) -> None:
        if not 0 < target < 1 or not 0 <= margin < 1 or react < 1:
            raise ConfigError(f"bad governor: target {target}, margin {margin}, react {react}")
        if guard is not None and not guard > 0:
            raise ConfigError(f"the guard window must be > 0 seconds, not {guard}")
        self._guard = guard
        self._recent: deque[tuple[float, bool]] = deque()  # (when, abandoned) in the guard
        self._recent_abandoned = 0
        self.target = target
        self.aim = target * (1 - margin)
        self._gain = math.log(2) / (self.aim * react)
        self._state = GovernorState()

    def live_answer(self, abandoned: bool, now: float) -> None:
        """Feed one live answer's fate."""
        self._state = govern(self._state, abandoned, self.aim, self._gain)
        if self._guard is not None:
            self._recent.append((now, abandoned))
            self._recent_abandoned += abandoned

    def allowance(self, window_live: int, window_abandoned: int, now: float) -> float:
        """The allowance for the pacer given the compliance window's counts."""
        if self._guard is not None:
            while self._recent and self._recent[0][0] <= now - self._guard:
                self._recent_abandoned -= self._recent.popleft()[1]
            # the guard window never holds more than the compliance window's calls
            live = min(len(self._recent), window_live)
            spent = min(self._recent_abandoned, window_abandoned)
            if spent and self.target * live - spent < _RESERVE:  # only abandons spend it
                return 0.0
        return allowance(self._state, self.aim, self.target, window_live, window_abandoned)

    @property
    def correction(self) -> float:
        """The controller's current multiplier on the aim (for logs and wallboards)."""
        return math.exp(self._state.log_c)
