"""The announced-wait estimator: structural facts (no wait with a free agent, monotone in
the position, None with nobody staffed), the closed forms it reduces to, and the
simulation's report against app_queue's formula (printed, asserted only for sanity)."""

from __future__ import annotations

import itertools
import math

import pytest

from acd.estimate import Estimator, app_queue_estimate, simulate
from acd.model import Agent, AgentState
from pbx.errors import ConfigError

NOW = 10_000.0


def on_call(name: str, since: float) -> Agent:
    return Agent(name, AgentState.ON_CALL, state_since=since)


def test_free_agent_means_no_wait() -> None:
    est = Estimator()
    agents = [on_call("a", NOW - 30), Agent("b", AgentState.AVAILABLE)]
    assert est.estimate(1, agents, NOW) == 0.0
    assert est.estimate(2, agents, NOW) > 0.0  # b takes position 1, 2 waits for a
    # a ringing agent is about to take the caller in front: it counts as free too
    ringing = [Agent("c", AgentState.RINGING), Agent("d", AgentState.AVAILABLE)]
    assert est.estimate_all(2, ringing, NOW) == [0.0, 0.0]


def test_nobody_staffed_is_none() -> None:
    est = Estimator()
    away = [Agent("a", AgentState.PAUSED, pause_reason="lunch"), Agent("b")]
    assert est.estimate(1, away, NOW) is None
    assert est.estimate(3, [], NOW) is None
    gone = Agent("c", AgentState.AVAILABLE, registered=False)  # its phone is unreachable
    assert est.estimate(1, [gone], NOW) is None
    assert est.estimate(1, [gone, Agent("d", AgentState.AVAILABLE)], NOW) == 0.0


def test_monotone_in_position() -> None:
    est = Estimator()
    agents = [on_call("a", NOW - 10), on_call("b", NOW - 200), Agent("c", AgentState.WRAP_UP,
              wrapup_until=NOW + 15)]  # fmt: skip
    waits = est.estimate_all(30, agents, NOW)
    assert waits is not None
    assert all(x <= y for x, y in itertools.pairwise(waits))
    singles = [est.estimate(p, agents, NOW) for p in (1, 5, 6, 30)]
    assert singles == [waits[0], waits[4], waits[5], waits[29]]
    assert waits[0] <= 15.0  # c frees in 15 s at the latest


def test_memoryless_prior_gives_erlangs_closed_form() -> None:
    # no completed call yet: handle times exponential with the prior 180 s; 3 agents busy
    # complete at a rate 3/180: the p-th completion comes after p * 60 s on average
    est = Estimator(prior_aht=180.0, draws=20_000)
    agents = [on_call(n, NOW - age) for n, age in (("a", 5), ("b", 500), ("c", 60))]
    for p, waits in zip((1, 2, 4), (60.0, 120.0, 240.0), strict=True):
        assert est.estimate(p, agents, NOW) == pytest.approx(waits, rel=0.03)


def test_known_wrapup_ends_are_exact() -> None:
    est = Estimator(prior_aht=100.0, draws=20_000)
    agents = [Agent("a", AgentState.WRAP_UP, wrapup_until=NOW + 10),
              Agent("b", AgentState.WRAP_UP, wrapup_until=NOW + 40)]  # fmt: skip
    waits = est.estimate_all(2, agents, NOW)
    assert waits is not None
    assert waits[0] == 10.0  # a's wrap-up ends: position 1 is answered
    # position 2: b at 40 s, unless a's call (10 s + X, X exponential of mean 100) ends
    # first: E[min(40, 10 + X)] = 10 + E[min(30, X)] = 10 + 100 * (1 - e^(-0.3)) = 35.92
    assert waits[1] == pytest.approx(10 + 100 * (1 - math.exp(-0.3)), rel=0.02)


def test_observed_shape_uses_elapsed_time() -> None:
    est = Estimator(prior_aht=300.0, min_shape_samples=30)
    for i in range(30):  # every call: 100 s talk + 20 s wrap-up
        est.observe_completion(100.0, 20.0, NOW - 1000 + i)
    assert est.aht == pytest.approx(120.0, rel=0.05)
    # the mean moved from the prior 300 to about 120; samples are scaled to that mean
    scale = est.aht / 120.0
    # 30 s into a call that always lasts 100 s (+ 20 s wrap-up): 90 s left (scaled)
    one = [on_call("a", NOW - 30)]
    assert est.estimate(1, one, NOW) == pytest.approx(120 * scale - 30)
    # past every observed call: only the wrap-up is left (the tail has no spread)
    assert est.estimate(1, [on_call("a", NOW - 500)], NOW) == pytest.approx(20 * scale)
    # after the first free event, one handle time per further position
    assert est.estimate(2, one, NOW) == pytest.approx(120 * scale - 30 + 120 * scale)


def test_weighted_mean_starts_from_the_prior() -> None:
    est = Estimator(prior_aht=180.0, alpha=0.05)
    est.observe_completion(100.0, 20.0, NOW)  # weight 1/2: (180 + 120) / 2
    assert est.aht == 150.0
    est.observe_completion(50.0, 10.0, NOW)  # weight 1/3: 150 + (60 - 150) / 3
    assert est.aht == 120.0
    for _ in range(100):
        est.observe_completion(200.0, 0.0, NOW)
    before = est.aht
    est.observe_completion(0.0, 0.0, NOW)  # weight alpha now: drops by 5 %
    assert est.aht == pytest.approx(before * 0.95)


def test_old_samples_age_out() -> None:
    est = Estimator(prior_aht=120.0, max_age=3600.0, draws=20_000)
    for i in range(40):
        est.observe_completion(100.0, 20.0, NOW + i)
    one = [on_call("a", NOW + 100)]
    assert est.estimate(1, one, NOW + 130) == pytest.approx(90.0)
    # hours later the samples are gone: back to the memoryless mean (120)
    later = NOW + 3 * 3600
    assert est.estimate(1, [on_call("a", later - 30)], later) == pytest.approx(120.0, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior_aht": 0.0}, "the prior AHT must be > 0 seconds, not 0.0"),
        ({"alpha": 0.0}, "the AHT weight must be in (0, 1], not 0.0"),
        ({"draws": 0}, "the window, the draws and the minimum shape must be >= 1"),
    ],
)
def test_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Estimator(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_position_starts_at_one() -> None:
    with pytest.raises(ConfigError, match="a queue position starts at 1, not 0"):
        Estimator().estimate(0, [Agent("a", AgentState.AVAILABLE)], NOW)


def test_app_queue_formula() -> None:
    # |60 + 30 - 0| = 90 s: one whole minute; after 200 s of waiting |90 - 200| = 110: 1 min
    assert app_queue_estimate(60.0, 0.0) == 60.0
    assert app_queue_estimate(60.0, 200.0) == 60.0
    assert app_queue_estimate(100.0, 0.0) == 120.0


def test_simulation_report() -> None:
    """Printed with `pytest -s`: MAE (s) of each method's announcements (at joining, then
    every 60 s) against the real remaining wait; benchmarks/estimate.py prints more."""
    lines = ["agents load  handle       callers  mean wait  ours  app_queue  memoryless"]
    for agents in (3, 10):
        for load in (0.7, 0.9):
            for handle in ("exponential", "lognormal"):
                r = simulate(agents, load, handle, calls=1500, warmup=150, draws=64,
                             announce_every=60.0)  # fmt: skip
                assert r.announcements >= r.calls > 0
                for value in (r.mean_wait, r.mae_estimator, r.mae_app_queue, r.mae_erlang):
                    assert math.isfinite(value) and value >= 0
                lines.append(
                    f"{agents:<6} {load:<5} {handle:<12} {r.calls:<8} {r.mean_wait:<10.1f} "
                    f"{r.mae_estimator:<5.1f} {r.mae_app_queue:<10.1f} {r.mae_erlang:.1f}"
                )
    print("\n" + "\n".join(lines))


def test_simulation_refuses_bad_setups() -> None:
    with pytest.raises(ConfigError):
        simulate(3, 1.2, "exponential")
    with pytest.raises(ConfigError):
        simulate(3, 0.7, "uniform")
