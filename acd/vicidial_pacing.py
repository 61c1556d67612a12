"""VICIdial's dial methods, rewritten from their documented rules, as pacers.

For the benchmark only: they show what our predictive pacer is measured against.
The rules (VICIdial's AST_VDauto_dial.pl and AST_VDadapt.pl, read for facts):

RATIO: the dialer loop places `round(level * agents) - calls in progress` calls,
  where agents are those READY, QUEUE, INCALL or DONE (an agent in the disposition
  screen after a call is PAUSED and not counted) and calls in progress are every
  auto-call SENT, RINGING, LIVE (answered, waiting), XFER or CLOSER (with an agent).
  The level is fixed by the campaign.
ADAPT_*: the same loop, with the level moved by the adapt process:
  - every second it samples ready agents (READY or DONE), waiting calls (LIVE) and
    all agents, and keeps the last 15 samples;
  - every 15 s: differential = mean(ready) - mean(waiting) (+ dl_diff_target, 0);
    level *= 1 + differential / mean(agents) (intensity 0 leaves this factor as is:
    above 0 it multiplies a rise by 1 + i/100, a fall by |i/100 - 1|);
    clamp to [1.0, adaptive_maximum_level (3.0)];
  - drop rules (drop stats refreshed every 60 s; drop % = drops / human answers):
    more than 20 calls in the last minute with over 50 % dropped: level halves;
    more than 50 calls today and today's drop % over adaptive_dropped_percentage
    (3): ADAPT_HARD_LIMIT sets 1.0, ADAPT_AVERAGE halves the level;
  - the level never goes below 1.0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from acd.pacers import PacerView
from pbx.api import ConfigError

RATIO = "RATIO"
ADAPT_HARD_LIMIT = "ADAPT_HARD_LIMIT"
ADAPT_AVERAGE = "ADAPT_AVERAGE"
METHODS = (RATIO, ADAPT_HARD_LIMIT, ADAPT_AVERAGE)


def ratio_calls(level: float, agents: int, in_progress: int) -> int:
    """RATIO's calls to place: round(level * agents) minus the calls in progress."""
    return max(0, round(level * agents) - in_progress)


@dataclass(frozen=True, slots=True)
class DropStats:
    """Human answers and drops over the last minute and today."""

    minute_calls: int
    minute_drops: int
    today_calls: int
    today_drops: int


def adapt_level(
    level: float,
    method: str,
    ready_avg: float,
    waiting_avg: float,
    agents_avg: float,
    drops: DropStats,
    *,
    max_level: float = 3.0,
    drop_limit_pct: float = 3.0,
    intensity: float = 0.0,
    diff_target: float = 0.0,
) -> float:
    """One 15-second step of VICIdial's adaptive level (see the module docstring).

    Raises:
        ConfigError: an unknown method.
    """
    if method not in (ADAPT_HARD_LIMIT, ADAPT_AVERAGE):
        raise ConfigError(f"not an adaptive dial method: {method}")
    if agents_avg <= 0:
        return level
    pct = 100 * (ready_avg - waiting_avg + diff_target) / agents_avg
    mul = intensity / 100
    pct *= abs(mul - 1) if pct < 0 else mul + 1
    new = min(max_level, max(1.0, level * (1 + pct / 100)))
    if drops.minute_calls > 20 and 100 * drops.minute_drops / drops.minute_calls > 50:
        new /= 2
    if drops.today_calls > 50 and 100 * drops.today_drops / drops.today_calls > drop_limit_pct:
        new = 1.0 if method == ADAPT_HARD_LIMIT else new / 2
    return max(1.0, new)


class VicidialPacer:
    """RATIO or an ADAPT_* method driving the same pacer interface as ours."""

    interval = 1.0
    on_events = False  # VICIdial's dialer runs on its loop, not on call events

    def __init__(self, method: str, level: float = 1.0, *, max_level: float = 3.0) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown VICIdial dial method {method}; one of {METHODS}")
        if level < 1.0:
            raise ConfigError(f"the dial level must be >= 1.0, not {level}")
        self.name = method
        self.level = level
        self._max = max_level
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=15)
        self._last_adapt = 0.0
        self._last_drops = -60.0
        self._answers: deque[tuple[float, bool]] = deque()  # last minute's human answers
        self._today_calls = 0
        self._today_drops = 0
        self._drops = DropStats(0, 0, 0, 0)

    def lines(self, view: PacerView) -> int:
        snap = view.snapshot
        talking = len(snap.talking)
        if self.name != RATIO:
            self._adapt(view)
        counted = snap.idle_agents + talking  # READY/QUEUE/INCALL; wrap-up is PAUSED
        in_progress = len(snap.ringing) + snap.waiting + talking
        return ratio_calls(self.level, counted, in_progress)

    def _adapt(self, view: PacerView) -> None:
        snap = view.snapshot
        self._samples.append((snap.idle_agents, snap.waiting, view.agents))
        if view.now - self._last_drops >= 60:
            self._last_drops = view.now
            while self._answers and self._answers[0][0] <= view.now - 60:
                self._answers.popleft()
            minute_drops = sum(1 for _, dropped in self._answers if dropped)
            self._drops = DropStats(
                len(self._answers), minute_drops, self._today_calls, self._today_drops
            )
        if view.now - self._last_adapt >= 15:
            self._last_adapt = view.now
            k = len(self._samples)
            self.level = adapt_level(
                self.level,
                self.name,
                sum(s[0] for s in self._samples) / k,
                sum(s[1] for s in self._samples) / k,
                sum(s[2] for s in self._samples) / k,
                self._drops,
                max_level=self._max,
            )

    def dial_result(self, now: float, kind: str, ring_s: float) -> None:
        pass

    def live_answer(self, now: float, abandoned: bool) -> None:
        self._answers.append((now, abandoned))
        self._today_calls += 1
        self._today_drops += abandoned

    def handled(self, talk_s: float, wrap_s: float) -> None:
        pass
