"""Erlang C staffing: how many agents a queue needs for a service level.

The model (M/M/N, callers never abandon): calls arrive at random (Poisson) at a rate
lambda, each takes an exponential handle time of mean AHT (talk + wrap-up), N agents
serve them first come first served. The offered traffic is A = lambda * AHT Erlangs.

    P(wait) = C(N, A) = N*B / (N - A*(1 - B))      with B = Erlang B(N, A), computed by
    B_0 = 1,  B_k = A*B_{k-1} / (k + A*B_{k-1})    (no factorials, no powers: A = 500,
                                                    N = 520 is as exact as A = 10)
    SL(T)     = 1 - P(wait) * exp(-(N - A) * T / AHT)    answered within T seconds
    ASA       = P(wait) * AHT / (N - A)                  mean wait over all calls
    occupancy = A / N
    scheduled = ceil(N / (1 - shrinkage))                 paid heads for N in seats

With N <= A the queue grows without bound: every caller waits, the service level
is 0, the mean wait infinite. Such a head count is reported as unstable
(`Staffing.stable` False), never as a division by zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pbx.api import ConfigError

# A target no head count meets is refused after this many agents above the traffic
# (plus a margin that grows as sqrt(A), the square-root staffing rule's scale): a
# service level of 1 - 1e-12 at T = 0 needs about A + 7*sqrt(A) agents.
_SEARCH_MARGIN = 100
_SEARCH_SQRT_FACTOR = 20


@dataclass(frozen=True, slots=True)
class Staffing:
    """What N agents give for A Erlangs of traffic (see the module's formulas)."""

    agents: int
    traffic: float  # A, Erlangs
    p_wait: float  # probability that a caller waits at all
    service_level: float  # fraction answered within the threshold, 0..1
    asa: float  # average speed of answer, seconds (math.inf when unstable)
    occupancy: float  # A / N, at most 1
    stable: bool  # N > A

    def meets(self, target: float, max_occupancy: float | None = None) -> bool:
        """Whether this head count reaches the service-level target (and the cap)."""
        if not self.stable or self.service_level < target:
            return False
        return max_occupancy is None or self.occupancy <= max_occupancy


def _check_traffic(traffic: float) -> None:
    if not math.isfinite(traffic) or traffic < 0:
        raise ConfigError(f"traffic must be a finite number of Erlangs >= 0, not {traffic}")


def _check_agents(agents: int) -> None:
    if agents < 1:
        raise ConfigError(f"the number of agents must be at least 1, not {agents}")


def _check_seconds(name: str, value: float, *, positive: bool) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a finite number of seconds {bound}, not {value}")


def traffic(calls: float, period: float, aht: float) -> float:
    """Offered traffic in Erlangs: `calls` per `period` seconds, each `aht` seconds long.

    Raises:
        ConfigError: negative calls, a period or AHT that is not > 0.
    """
    if not math.isfinite(calls) or calls < 0:
        raise ConfigError(f"the number of calls must be >= 0, not {calls}")
    _check_seconds("the period", period, positive=True)
    _check_seconds("the AHT", aht, positive=True)
    return calls / period * aht


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability of N servers with no queue (Erlang B), by the recurrence.

    Raises:
        ConfigError: negative traffic or fewer than one agent.
    """
    _check_traffic(traffic)
    _check_agents(agents)
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def _c_from_b(traffic: float, agents: int, b: float) -> float:
    return agents * b / (agents - traffic * (1.0 - b))


def erlang_c(traffic: float, agents: int) -> float:
    """P(wait): the probability that a caller has to queue; 1.0 when N <= A (unstable).

    Raises:
        ConfigError: negative traffic or fewer than one agent.
    """
    b = erlang_b(traffic, agents)
    if agents <= traffic:
        return 1.0
    return _c_from_b(traffic, agents, b)


def _staffing(traffic: float, agents: int, threshold: float, aht: float, b: float) -> Staffing:
    if agents <= traffic:
        return Staffing(agents, traffic, 1.0, 0.0, math.inf, 1.0, stable=False)
    p = _c_from_b(traffic, agents, b)
    return Staffing(
        agents=agents,
        traffic=traffic,
        p_wait=p,
        service_level=1.0 - p * math.exp(-(agents - traffic) * threshold / aht),
        asa=p * aht / (agents - traffic),
        occupancy=traffic / agents,
        stable=True,
    )


def staffing(traffic: float, agents: int, threshold: float, aht: float) -> Staffing:
    """P(wait), SL within `threshold` seconds, ASA and occupancy of N agents.

    Raises:
        ConfigError: negative traffic, fewer than one agent, a bad threshold or AHT.
    """
    _check_seconds("the service-level threshold", threshold, positive=False)
    _check_seconds("the AHT", aht, positive=True)
    return _staffing(traffic, agents, threshold, aht, erlang_b(traffic, agents))


def service_level(traffic: float, agents: int, threshold: float, aht: float) -> float:
    """The fraction of calls answered within `threshold` seconds (0.0 when unstable)."""
    return staffing(traffic, agents, threshold, aht).service_level


def asa(traffic: float, agents: int, aht: float) -> float:
    """Average speed of answer in seconds over all calls (math.inf when unstable)."""
    return staffing(traffic, agents, 0.0, aht).asa


def occupancy(traffic: float, agents: int) -> float:
    """The fraction of logged-in time agents spend handling calls: A/N, at most 1."""
    _check_traffic(traffic)
    _check_agents(agents)
    return min(1.0, traffic / agents)


def _check_target(target: float) -> None:
    if not math.isfinite(target) or not 0.0 < target < 1.0:
        raise ConfigError(
            f"the service-level target must be above 0 % and below 100 %, not {target * 100:g} %"
        )


def agents_for(
    target: float,
    threshold: float,
    traffic: float,
    aht: float,
    max_occupancy: float | None = None,
) -> Staffing:
    """The fewest agents whose service level within `threshold` seconds reaches `target`
    (a fraction, 0.8 for 80 %) and, when given, whose occupancy is at most
    `max_occupancy` (a fraction).

    Raises:
        ConfigError: a target outside (0, 1), an occupancy cap outside (0, 1], bad
            traffic, threshold or AHT, or a target no reasonable head count reaches.
    """
    _check_target(target)
    _check_traffic(traffic)
    _check_seconds("the service-level threshold", threshold, positive=False)
    _check_seconds("the AHT", aht, positive=True)
    if max_occupancy is not None and (
        not math.isfinite(max_occupancy) or not 0.0 < max_occupancy <= 1.0
    ):
        raise ConfigError(
            f"the maximum occupancy must be above 0 % and at most 100 %, "
            f"not {max_occupancy * 100:g} %"
        )
    limit = (
        math.ceil(traffic) + _SEARCH_MARGIN + _SEARCH_SQRT_FACTOR * math.ceil(math.sqrt(traffic))
    )
    b = 1.0
    for n in range(1, limit + 1):
        b = traffic * b / (n + traffic * b)  # Erlang B(n, A), one step further
        result = _staffing(traffic, n, threshold, aht, b)
        if result.meets(target, max_occupancy):
            return result
    raise ConfigError(
        f"no head count up to {limit} agents reaches {target * 100:g} % "
        f"within {threshold:g} s for {traffic:.4g} Erlangs"
    )


def scheduled(agents: int, shrinkage: float) -> int:
    """Heads to schedule so that `agents` are in their seats when a fraction `shrinkage`
    of paid time goes to breaks, training and absence: ceil(N / (1 - shrinkage)).

    Raises:
        ConfigError: fewer than 0 agents, a shrinkage outside [0, 1).
    """
    if agents < 0:
        raise ConfigError(f"the number of agents must be >= 0, not {agents}")
    if not math.isfinite(shrinkage) or not 0.0 <= shrinkage < 1.0:
        raise ConfigError(
            f"the shrinkage must be at least 0 % and below 100 %, not {shrinkage * 100:g} %"
        )
    # 14 / (1 - 0.3) is 20.000000000000004 in binary floating point: round away the
    # representation error before the ceiling so that exact quotients stay exact.
    return math.ceil(round(agents / (1.0 - shrinkage), 9))
