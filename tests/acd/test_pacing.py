"""Pacing decisions as tables: progressive, predictive, agentless, blending, the
governor, and VICIdial's RATIO / ADAPT_* rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acd.governor import AbandonGovernor, GovernorState, allowance, govern
from acd.pacers import AgentlessPacer, PacerView, PredictivePacer, PreviewPacer, ProgressivePacer
from acd.pacing import (
    DialEstimates,
    DialMeter,
    HandleModel,
    PacingMode,
    Snapshot,
    _binom_pmf,
    _positive_part_by_shift,
    agentless_lines,
    outbound_agents,
    p_live_given_ringing,
    predictive_lines,
    progressive_lines,
)
from acd.vicidial_pacing import (
    ADAPT_AVERAGE,
    ADAPT_HARD_LIMIT,
    RATIO,
    DropStats,
    VicidialPacer,
    adapt_level,
    ratio_calls,
)
from pbx.api import ConfigError

HANDLE = HandleModel.from_mean(180.0, 1.0, 15.0)
RINGS = tuple(float(x) for x in range(4, 13))  # live answers after 4..12 s


def est(p_live: float = 0.3, handle: HandleModel = HANDLE) -> DialEstimates:
    return DialEstimates(
        p_live=p_live,
        live_ring_s=RINGS,
        p_other_answer=0.2,
        other_ring_s=(14.0, 15.0, 16.0),
        ring_timeout=25.0,
        handle=handle,
        amd_seconds=0.8,
    )


def snap(
    idle: int = 0,
    talking: tuple[float, ...] = (),
    wrapping: tuple[float, ...] = (),
    ringing: tuple[float, ...] = (),
    waiting: int = 0,
) -> Snapshot:
    return Snapshot(idle, talking, wrapping, ringing, waiting)


def test_modes() -> None:
    assert {m.value for m in PacingMode} == {"preview", "progressive", "predictive", "agentless"}


def test_handle_model() -> None:
    h = HandleModel.from_mean(180.0, 1.0, 15.0)
    assert math.exp(h.mu + h.sigma**2 / 2) == pytest.approx(180.0)  # the lognormal's mean
    assert h.talk_cdf(math.exp(h.mu)) == pytest.approx(0.5)  # its median
    assert h.talk_cdf(0.0) == 0.0
    with pytest.raises(ConfigError):
        HandleModel.from_mean(0.0, 1.0, 15.0)


@pytest.mark.parametrize(
    ("talked", "horizon", "p"),
    [
        # a fixed 180 s talk and 15 s wrap-up: free at exactly 195 s
        (100.0, 94.9, 0.0),
        (100.0, 95.0, 1.0),
        (0.0, 14.0, 0.0),  # not even the wrap-up fits
        (179.0, 16.0, 1.0),
    ],
)
def test_p_free_within_fixed_talk(talked: float, horizon: float, p: float) -> None:
    fixed = HandleModel(math.log(180.0), 0.0, 15.0)
    assert fixed.p_free_within(talked, horizon) == p


def test_p_free_within_lognormal() -> None:
    # longer horizons, more chance; the wrap-up comes first; a long tail is near the end
    ps = [HANDLE.p_free_within(60.0, h) for h in (10.0, 20.0, 60.0, 300.0)]
    assert ps[0] == 0.0 and ps == sorted(ps) and 0 < ps[2] < ps[3] < 1
    assert HANDLE.p_free_mean(60.0, (20.0, 60.0)) == pytest.approx((ps[1] + ps[2]) / 2)


def test_binomial_pmf() -> None:
    pmf = _binom_pmf(4, 0.5)
    assert pmf == pytest.approx([1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16])
    assert _binom_pmf(0, 0.3) == pytest.approx([1.0])
    assert _binom_pmf(3, 0.0) == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert _binom_pmf(3, 1.0) == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert _binom_pmf(200, 0.3).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("pmf", "offset", "expected"),
    [
        # G = -1 or +1, equally: E[max(G + b, 0)] = 0.5, 1, 2, 3
        ([0.5, 0.0, 0.5], -1, [0.5, 1.0, 2.0, 3.0]),
        # G = -3 for sure: nothing until b = 4
        ([1.0], -3, [0.0, 0.0, 0.0, 0.0]),
        ([1.0], 2, [2.0, 3.0, 4.0, 5.0]),
    ],
)
def test_positive_part_by_shift(pmf: list[float], offset: int, expected: list[float]) -> None:
    got = _positive_part_by_shift(np.asarray(pmf), offset, 3)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("s", "lines"),
    [
        (snap(idle=5), 5),
        (snap(idle=5, ringing=(1.0, 2.0)), 3),
        (snap(idle=5, ringing=(1.0,), waiting=1), 3),
        (snap(idle=1, ringing=(1.0, 2.0)), 0),
        (snap(idle=0, talking=(5.0,) * 20), 0),
    ],
)
def test_progressive(s: Snapshot, lines: int) -> None:
    assert progressive_lines(s) == lines


@pytest.mark.parametrize(
    ("in_use", "max_lines", "lines"), [(0, 30, 30), (25, 30, 5), (30, 30, 0), (31, 30, 0)]
)
def test_agentless(in_use: int, max_lines: int, lines: int) -> None:
    assert agentless_lines(in_use, max_lines) == lines


@pytest.mark.parametrize(
    ("free", "reserve", "usable"), [(5, 2, 3), (2, 2, 0), (1, 3, 0), (4, 0, 4), (4, -1, 4)]
)
def test_blending_reserve(free: int, reserve: int, usable: int) -> None:
    assert outbound_agents(free, reserve) == usable


def test_p_live_given_ringing() -> None:
    e = est()
    assert p_live_given_ringing(e, 0.0) == pytest.approx(0.3)
    assert p_live_given_ringing(e, 13.0) == 0.0  # later than every live answer seen
    assert p_live_given_ringing(e, 25.0) == 0.0  # at the ring timeout
    mid = p_live_given_ringing(e, 8.0)
    assert 0 < mid < 0.3


def test_predictive_dials_ahead_for_idle_agents() -> None:
    n = predictive_lines(snap(idle=20), est(), 0.03, 200)
    assert 20 < n < 20 / 0.3  # more than one per agent, fewer than would fill them all
    assert predictive_lines(snap(idle=20), est(), 0.10, 200) >= n  # more allowance
    assert predictive_lines(snap(idle=20), est(), 0.03, 25) == 25  # the line budget caps it


def test_predictive_monotone() -> None:
    e = est()
    base = predictive_lines(snap(idle=5, talking=(100.0,) * 15), e, 0.03, 200)
    assert (
        predictive_lines(snap(idle=5, talking=(100.0,) * 15, ringing=(1.0,) * 10), e, 0.03, 200)
        < base
    )
    assert predictive_lines(snap(idle=8, talking=(100.0,) * 12), e, 0.03, 200) > base
    assert predictive_lines(snap(idle=5, talking=(100.0,) * 15, waiting=3), e, 0.03, 200) < base
    soon = predictive_lines(snap(talking=(100.0,) * 19, wrapping=(1.0,)), e, 0.03, 200)
    late = predictive_lines(snap(talking=(100.0,) * 19, wrapping=(14.9,)), e, 0.03, 200)
    assert soon > late  # an agent 1 s from free is worth a call; one 15 s away is not yet


@pytest.mark.parametrize(
    ("s", "e", "allow", "budget"),
    [
        (snap(talking=(1.0,) * 20), est(handle=HandleModel(math.log(600), 0.0, 15.0)), 0.03, 200),
        (snap(idle=20), est(p_live=0.0), 0.03, 200),
        (snap(idle=20), est(), 0.03, 0),
        (snap(talking=(100.0,) * 20), est(), 0.0, 200),  # no allowance and no sure agent
    ],
)
def test_predictive_holds_back(s: Snapshot, e: DialEstimates, allow: float, budget: int) -> None:
    assert predictive_lines(s, e, allow, budget) == 0


def test_predictive_without_allowance_dials_only_what_cannot_overflow() -> None:
    # one sure agent: one call can never be abandoned, two could both turn live
    assert predictive_lines(snap(idle=1, talking=(100.0,) * 19), est(), 0.0, 200) == 1
    assert predictive_lines(snap(idle=4), est(), 0.0, 200) == 4


def test_predictive_bad_bounds() -> None:
    with pytest.raises(ConfigError):
        predictive_lines(snap(idle=1), est(), 1.0, 10)
    with pytest.raises(ConfigError):
        predictive_lines(snap(idle=1), est(), 0.03, -1)


def test_predictive_pacer_never_below_progressive() -> None:
    pacer = PredictivePacer(ring_timeout=25.0, amd_seconds=0.8, prior=HANDLE)
    s = snap(idle=3, talking=(10.0,) * 17)
    view = PacerView(0.0, s, 20, window_live=10, window_abandoned=5)  # budget spent
    assert pacer.lines(view) == progressive_lines(s) == 3
    assert ProgressivePacer().lines(view) == 3


def test_preview_and_agentless_pacers() -> None:
    s = snap(idle=5, talking=(10.0,) * 8, ringing=(1.0,) * 3, waiting=1)
    view = PacerView(0.0, s, 13, 0, 0)
    assert PreviewPacer().lines(view) == 0  # the agent clicks to dial
    assert AgentlessPacer(max_lines=30).lines(view) == 30 - 8 - 3 - 1
    assert AgentlessPacer(max_lines=10).lines(view) == 0


def test_dial_meter_learns() -> None:
    prior = HandleModel.from_mean(120.0, 1.0, 10.0)
    m = DialMeter(ring_timeout=25.0, amd_seconds=0.8, prior=prior, prior_p_live=0.25)
    assert m.estimates().p_live == 0.25 and m.estimates().handle == prior
    for i in range(100):
        m.dial_result("live" if i % 10 < 3 else "machine" if i % 10 < 5 else "noanswer", 7.0)
        m.handled(180.0 * (1.5 if i % 2 else 0.5), 15.0)
    e = m.estimates()
    assert (e.p_live, e.p_other_answer) == (pytest.approx(0.3), pytest.approx(0.2))
    assert math.exp(e.handle.mu) == pytest.approx(180.0 * math.sqrt(0.75))  # geometric mean
    assert e.handle.wrap == 15.0


# -- the governor -------------------------------------------------------------------


def test_governor_steps() -> None:
    aim, gain = 0.024, 0.5
    s0 = GovernorState(0.0)
    assert govern(s0, True, aim, gain).log_c == pytest.approx(-gain * (1 - aim))
    assert govern(s0, False, aim, gain).log_c == pytest.approx(gain * aim)
    # one abandon in 1/aim live answers: back where it started
    s = s0
    for i in range(125):
        s = govern(s, i == 0, 0.008, gain)
    assert s.log_c == pytest.approx(0.0, abs=1e-9)


def test_governor_halves_at_twice_the_aim() -> None:
    aim = 0.024
    gain = math.log(2) / (aim * 100)  # react = 100 live answers
    s = GovernorState(0.0)
    for i in range(250):  # 12 abandons in 250: 0.048, twice the aim
        s = govern(s, i % 125 < 6, aim, gain)
    # 2.5 x react live answers at twice the aim: 2.5 halvings
    assert math.exp(s.log_c) == pytest.approx(2.0**-2.5)
    # the class starts cautious (a quarter) and never goes under its floor
    g = AbandonGovernor(0.03, react=100)
    assert g.aim == pytest.approx(aim) and g.correction == pytest.approx(0.25)
    for _ in range(100):
        g.live_answer(True, 0.0)
    assert g.correction == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("live", "abandoned", "zero"),
    [(100, 1, False), (100, 2, True), (0, 0, True), (1000, 28, False), (1000, 29, True)],
)
def test_governor_budget(live: int, abandoned: int, zero: bool) -> None:
    a = allowance(GovernorState(0.0), 0.024, 0.03, live, abandoned)
    assert (a == 0.0) is zero
    if not zero:
        assert a == pytest.approx(0.024)


def test_governor_guard_window() -> None:
    g = AbandonGovernor(0.03, guard=3600.0)
    for i in range(100):  # 3 abandons in the first hour's 100 live answers
        g.live_answer(i < 3, float(i))
    for i in range(1000):  # then a clean day, 100 live answers an hour
        g.live_answer(False, 3600.0 + 36.0 * i)
    # the day (1100 live, 3 abandoned) has room; the first hour had none
    assert g.allowance(1100, 3, 3599.0 + 36.0 * 1000) > 0
    h = AbandonGovernor(0.03, guard=3600.0)
    for i in range(1000):  # a clean morning, long ago
        h.live_answer(False, float(i) - 10000.0)
    for i in range(100):
        h.live_answer(i < 3, 3000.0 + i)
    assert h.allowance(1100, 3, 3100.0) == 0.0  # the last hour's budget is spent
    assert h.allowance(1100, 3, 3100.0 + 3600.0) > 0  # an hour later it has left the guard
    off = AbandonGovernor(0.03)  # no guard unless asked for
    for i in range(100):
        off.live_answer(i < 3, 3000.0 + i)
    assert off.allowance(1100, 3, 3100.0) > 0


def test_governor_bad_config() -> None:
    for bad in (
        {"target": 0.0},
        {"target": 1.0},
        {"margin": 1.0},
        {"react": 0},
        {"guard": 0.0},
    ):
        with pytest.raises(ConfigError):
            AbandonGovernor(**bad)  # type: ignore[arg-type]


# -- VICIdial's rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "agents", "in_progress", "calls"),
    [
        (1.0, 10, 10, 0),
        (2.0, 10, 12, 8),
        (1.25, 10, 0, 12),  # round(12.5): half to even, as Perl's sprintf("%.0f")
        (3.0, 0, 3, 0),
        (1.0, 10, 15, 0),
    ],
)
def test_ratio_calls(level: float, agents: int, in_progress: int, calls: int) -> None:
    assert ratio_calls(level, agents, in_progress) == calls


NO_DROPS = DropStats(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("level", "method", "ready", "waiting", "agents", "drops", "kw", "new"),
    [
        (1.0, ADAPT_HARD_LIMIT, 5.0, 0.0, 20.0, NO_DROPS, {}, 1.25),
        (2.0, ADAPT_HARD_LIMIT, 0.0, 4.0, 20.0, NO_DROPS, {}, 1.6),
        (2.8, ADAPT_AVERAGE, 10.0, 0.0, 20.0, NO_DROPS, {}, 3.0),  # capped at the maximum
        (1.0, ADAPT_AVERAGE, 0.0, 10.0, 20.0, NO_DROPS, {}, 1.0),  # never under 1.0
        (2.0, ADAPT_AVERAGE, 0.0, 0.0, 20.0, DropStats(21, 11, 21, 0), {}, 1.0),  # minute rule
        (2.0, ADAPT_AVERAGE, 0.0, 0.0, 20.0, DropStats(20, 11, 20, 0), {}, 2.0),  # 20: too few
        (2.4, ADAPT_HARD_LIMIT, 0.0, 0.0, 20.0, DropStats(0, 0, 51, 2), {}, 1.0),
        (2.4, ADAPT_AVERAGE, 0.0, 0.0, 20.0, DropStats(0, 0, 51, 2), {}, 1.2),
        (2.4, ADAPT_AVERAGE, 0.0, 0.0, 20.0, DropStats(0, 0, 50, 2), {}, 2.4),  # 50: too few
        (2.4, ADAPT_AVERAGE, 0.0, 0.0, 20.0, DropStats(0, 0, 100, 3), {}, 2.4),  # 3 % is ok
        (1.0, ADAPT_HARD_LIMIT, 5.0, 0.0, 20.0, NO_DROPS, {"intensity": 20.0}, 1.3),
        (2.0, ADAPT_HARD_LIMIT, 0.0, 4.0, 20.0, NO_DROPS, {"intensity": 20.0}, 1.68),
        (1.5, ADAPT_HARD_LIMIT, 3.0, 1.0, 0.0, NO_DROPS, {}, 1.5),  # no agents: unchanged
    ],
)
def test_adapt_level(
    level: float,
    method: str,
    ready: float,
    waiting: float,
    agents: float,
    drops: DropStats,
    kw: dict[str, float],
    new: float,
) -> None:
    assert adapt_level(level, method, ready, waiting, agents, drops, **kw) == pytest.approx(new)


def test_vicidial_pacer_counts_like_vicidial() -> None:
    p = VicidialPacer(RATIO, 2.0)
    # 4 idle + 10 talking are counted (6 in wrap-up are PAUSED); 10 talking + 5 ringing
    # + 1 waiting are in progress: round(2 * 14) - 16 = 12
    s = snap(idle=4, talking=(30.0,) * 10, wrapping=(5.0,) * 6, ringing=(1.0,) * 5, waiting=1)
    assert p.lines(PacerView(0.0, s, 20, 0, 0)) == 12
    with pytest.raises(ConfigError):
        VicidialPacer("ADAPT_TAPERED")
    with pytest.raises(ConfigError):
        VicidialPacer(RATIO, 0.5)
    with pytest.raises(ConfigError):
        adapt_level(1.0, RATIO, 1.0, 0.0, 1.0, NO_DROPS)


def test_vicidial_adapt_moves_every_15_s() -> None:
    p = VicidialPacer(ADAPT_HARD_LIMIT, 1.0)
    s = snap(idle=5, talking=(30.0,) * 15)
    for t in range(15):
        p.lines(PacerView(float(t), s, 20, 0, 0))
    assert p.level == 1.0  # not yet: the first adapt happens at 15 s
    p.lines(PacerView(15.0, s, 20, 0, 0))
    assert p.level == pytest.approx(1.25)  # 5 ready of 20 on average: +25 %
