"""Erlang C against the published vectors of shared/peers/callcentre.md, to their printed
precision, plus stability at large traffic and the errors a user can cause."""

from __future__ import annotations

import math

import pytest

from acd.erlang import (
    agents_for,
    asa,
    erlang_b,
    erlang_c,
    occupancy,
    scheduled,
    service_level,
    staffing,
    traffic,
)
from pbx.errors import ConfigError


def pct(x: float) -> str:
    """A fraction printed as the sources print percentages: two decimals."""
    return f"{x * 100:.2f}"


def test_traffic_of_the_three_vectors() -> None:
    assert traffic(100, 30 * 60, 180) == 10.0
    assert f"{traffic(1000, 3600, 120):.2f}" == "33.33"
    assert traffic(25, 10 * 60, 180) == 7.5


def test_100_calls_per_30_min_aht_180() -> None:
    # A = 10; 80/20 needs 14: P_wait 0.1741, SL 88.84 %, ASA 7.84 s, occupancy 71.4 %
    best = agents_for(0.80, 20, 10.0, 180)
    assert best.agents == 14
    assert f"{best.p_wait:.4f}" == "0.1741"
    assert pct(best.service_level) == "88.84"
    assert f"{best.asa:.2f}" == "7.84"
    assert f"{best.occupancy * 100:.1f}" == "71.4"
    assert scheduled(best.agents, 0.30) == 20
    # N = 13 misses: 79.56 %
    assert pct(service_level(10.0, 13, 20, 180)) == "79.56"
    # N = 11: P_wait 0.6821, SL 38.96 %
    eleven = staffing(10.0, 11, 20, 180)
    assert f"{eleven.p_wait:.4f}" == "0.6821"
    assert pct(eleven.service_level) == "38.96"


def test_1000_calls_per_hour_with_occupancy_cap() -> None:
    a = traffic(1000, 3600, 120)
    by_sl = agents_for(0.80, 20, a, 120)
    assert (by_sl.agents, pct(by_sl.service_level)) == (38, "84.68")
    capped = agents_for(0.80, 20, a, 120, max_occupancy=0.85)
    assert capped.agents == 40
    assert pct(capped.p_wait) == "19.07"
    assert pct(capped.service_level) == "93.72"
    assert f"{capped.asa:.2f}" == "3.43"
    assert pct(capped.occupancy) == "83.33"
    assert scheduled(capped.agents, 0.30) == 58
    # 39 meets the SL but is over the cap (85.47 %)
    assert not staffing(a, 39, 20, 120).meets(0.80, 0.85)
    assert staffing(a, 39, 20, 120).meets(0.80)


def test_25_calls_per_10_min() -> None:
    a = traffic(25, 600, 180)
    best = agents_for(0.80, 20, a, 180)
    assert (best.agents, pct(best.service_level)) == (11, "88.08")
    assert pct(service_level(a, 10, 20, 180)) == "76.78"
    assert scheduled(11, 0.30) == 16


def _erlang_c_by_logs(a: float, n: int) -> float:
    """The textbook formula in log space (lgamma, log-sum-exp): an independent reference."""
    terms = [i * math.log(a) - math.lgamma(i + 1) for i in range(n)]
    top = n * math.log(a) - math.lgamma(n + 1) + math.log(n / (n - a))
    peak = max([*terms, top])
    total = sum(math.exp(t - peak) for t in terms) + math.exp(top - peak)
    return math.exp(top - peak) / total


@pytest.mark.parametrize(("a", "n"), [(10.0, 14), (33.3, 38), (500.0, 520), (2000.0, 2050)])
def test_stable_at_large_traffic(a: float, n: int) -> None:
    # 500^520 / 520! overflows a float; the recurrence never forms it
    assert erlang_c(a, n) == pytest.approx(_erlang_c_by_logs(a, n), rel=1e-9)
    result = staffing(a, n, 20, 180)
    assert 0.0 < result.p_wait < 1.0 and 0.0 < result.service_level < 1.0
    assert math.isfinite(result.asa)


def test_large_call_centre_search_terminates() -> None:
    best = agents_for(0.80, 20, 500.0, 180)
    assert best.agents > 500 and best.service_level >= 0.80
    assert not staffing(500.0, best.agents - 1, 20, 180).meets(0.80)


@pytest.mark.parametrize("n", [5, 9, 10])
def test_unstable_when_agents_do_not_exceed_traffic(n: int) -> None:
    result = staffing(10.0, n, 20, 180)
    assert (result.stable, result.p_wait, result.service_level) == (False, 1.0, 0.0)
    assert result.asa == math.inf and result.occupancy == 1.0
    assert erlang_c(10.0, n) == 1.0
    assert asa(10.0, n, 180) == math.inf
    assert occupancy(10.0, n) == 1.0
    assert not result.meets(0.01)


def test_erlang_b_and_zero_traffic() -> None:
    # B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2
    assert erlang_b(1.0, 2) == pytest.approx(0.2)
    assert erlang_c(0.0, 3) == 0.0
    assert service_level(0.0, 1, 20, 180) == 1.0
    assert agents_for(0.8, 20, 0.0, 180).agents == 1
    assert scheduled(0, 0.3) == 0
    assert scheduled(14, 0.0) == 14


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: erlang_c(-1.0, 3), "traffic must be a finite number of Erlangs >= 0, not -1.0"),
        (lambda: erlang_c(math.nan, 3), "traffic must be a finite number of Erlangs >= 0, not nan"),
        (lambda: erlang_c(1.0, 0), "the number of agents must be at least 1, not 0"),
        (
            lambda: staffing(1.0, 2, -1, 180),
            "the service-level threshold must be a finite number of seconds >= 0, not -1",
        ),
        (lambda: staffing(1.0, 2, 20, 0), "the AHT must be a finite number of seconds > 0, not 0"),
        (
            lambda: agents_for(1.0, 20, 10.0, 180),
            "the service-level target must be above 0 % and below 100 %, not 100 %",
        ),
        (
            lambda: agents_for(0.0, 20, 10.0, 180),
            "the service-level target must be above 0 % and below 100 %, not 0 %",
        ),
        (
            lambda: agents_for(0.8, 20, 10.0, 180, max_occupancy=0.0),
            "the maximum occupancy must be above 0 % and at most 100 %, not 0 %",
        ),
        (
            lambda: agents_for(0.8, 20, 10.0, 180, max_occupancy=1.5),
            "the maximum occupancy must be above 0 % and at most 100 %, not 150 %",
        ),
        (
            lambda: scheduled(14, 1.0),
            "the shrinkage must be at least 0 % and below 100 %, not 100 %",
        ),
        (lambda: scheduled(-1, 0.3), "the number of agents must be >= 0, not -1"),
        (lambda: traffic(10, 0, 180), "the period must be a finite number of seconds > 0, not 0"),
        (lambda: traffic(-5, 60, 180), "the number of calls must be >= 0, not -5"),
    ],
)
def test_bad_inputs_are_one_line_config_errors(call: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message
