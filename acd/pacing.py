"""Outbound pacing: how many lines to dial now, as pure functions of a snapshot.

Modes (issue 17):
- preview: the agent sees the record and clicks to dial; the pacer never dials.
- progressive: one call per free agent: free agents minus calls already ringing or
  waiting for an agent. No call is ever answered without an agent counted for it
  (the only overflow comes from an agent logging out mid-ring).
- predictive: dials ahead. The rule (after US patent 5,640,445's "each busy agent is
  free within the next tau seconds with a probability"):

      grace = 2 s - AMD decision time          (the 2-second rule, AMD included)
      reach = q + AMD time + grace, for q each of 9 quantiles of the measured
              dial-to-live-answer times (when a call dialed now would need an agent)
      A     = idle - waiting + sum_i mean over reach of
              P(agent i free (wrap-up done) within reach | talked e_i so far)
      L(n)  = sum_j P(ringing call j turns live | rang r_j so far) + B(n, p_live)

  A and L are sums of independent Bernoulli trials; each sum is taken as a binomial
  with the same mean (more variance than the exact sum: it errs towards fewer
  abandons) and the expected overflow E[max(L - A, 0)] (live answers with no agent)
  is computed exactly from their pmfs. The pacer dials the largest n for which the
  expected overflow stays within `allowance` * E[L]: the allowance is the abandon
  fraction the governor (acd/governor.py) grants right now, so the model's bias is
  corrected by the measured abandon rate, not by a constant tuned here.
- agentless: a message or IVR to whoever answers: no agents, only a line budget.

Blending with inbound: outbound only uses the agents beyond the inbound reserve
(`outbound_agents`).
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pbx.api import ConfigError

# The 2-second rule (FTC TSR 16 CFR 310.4(b)(4)(i), Ofcom): a live person must reach
# an agent within 2 s of the end of the greeting, AMD decision time included.
CONNECT_LIMIT = 2.0


class PacingMode(enum.Enum):
    """How a campaign decides to dial (see the module docstring)."""

    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"
    AGENTLESS = "agentless"


@dataclass(frozen=True, slots=True)
class HandleModel:
    """Talk time lognormal (log mean `mu`, log sd `sigma`) plus a fixed wrap-up."""

    mu: float
    sigma: float
    wrap: float

    @classmethod
    def from_mean(cls, mean_talk: float, cv: float, wrap: float) -> HandleModel:
        """The lognormal with this mean talk time and coefficient of variation.

        Raises:
            ConfigError: a mean that is not > 0 or a negative cv or wrap-up.
        """
        if not mean_talk > 0 or cv < 0 or wrap < 0:
            raise ConfigError(f"bad handle model: mean {mean_talk}, cv {cv}, wrap {wrap}")
        sigma2 = math.log1p(cv * cv)
        return cls(math.log(mean_talk) - sigma2 / 2, math.sqrt(sigma2), wrap)

    def talk_cdf(self, seconds: float) -> float:
        """P(talk <= seconds)."""
        if seconds <= 0:
            return 0.0
        if self.sigma == 0:
            return 1.0 if math.log(seconds) >= self.mu else 0.0
        z = (math.log(seconds) - self.mu) / self.sigma
        return 0.5 * math.erfc(-z / math.sqrt(2))

    def p_free_within(self, talked: float, horizon: float) -> float:
        """P(an agent who has talked `talked` s is free (wrap-up done) within `horizon` s)."""
        return self.p_free_mean(talked, (horizon,))

    def p_free_mean(self, talked: float, horizons: Sequence[float]) -> float:
        """The mean of `p_free_within(talked, h)` over the horizons (one conditioning)."""
        before = self.talk_cdf(talked)
        survive = 1.0 - before
        if survive <= 1e-12:
            return 1.0  # far in the tail: the talk is about to end
        total = 0.0
        for h in horizons:
            done_by = talked + h - self.wrap  # the talk must end by then
            if done_by > talked:
                total += (self.talk_cdf(done_by) - before) / survive
        return min(1.0, max(0.0, total / len(horizons)))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the pacer sees at one instant (all times in seconds)."""

    idle_agents: int  # logged in, ready, no call
    talking: tuple[float, ...]  # per agent on a call: seconds talked so far
    wrapping: tuple[float, ...]  # per agent in wrap-up: seconds of wrap-up left
    ringing: tuple[float, ...]  # per call placed and not yet answered: seconds ringing
    waiting: int  # live answers waiting for an agent (inside the 2 s)


@dataclass(frozen=True, slots=True)
class DialEstimates:
    """Measured call behaviour the predictive rule needs."""

    p_live: float  # live answers per dial
    live_ring_s: tuple[float, ...]  # sorted recent dial-to-live-answer times
    p_other_answer: float  # machines (and other answers that reach AMD) per dial
    other_ring_s: tuple[float, ...]  # sorted recent dial-to-machine-answer times
    ring_timeout: float  # a call ringing this long is given up as no answer
    handle: HandleModel
    amd_seconds: float  # AMD decision time after the greeting


def _survival(sorted_samples: Sequence[float], t: float) -> float:
    if not sorted_samples:
        return 1.0
    return 1.0 - bisect.bisect_right(sorted_samples, t) / len(sorted_samples)


def p_live_given_ringing(est: DialEstimates, rang: float) -> float:
    """P(a call that has rung `rang` s without answer is answered live), by Bayes."""
    if rang >= est.ring_timeout:
        return 0.0
    live = est.p_live * _survival(est.live_ring_s, rang)
    other = est.p_other_answer * _survival(est.other_ring_s, rang)
    rest = max(0.0, 1.0 - est.p_live - est.p_other_answer)  # no answer: rings to timeout
    total = live + other + rest
    return live / total if total > 0 else 0.0


_LOG_FACT = np.array([math.lgamma(i + 1) for i in range(1024)])  # log k!, grown on demand
_RANGE = np.arange(1024)


def _live_chances(est: DialEstimates, ringing: Sequence[float]) -> np.ndarray:
    """`p_live_given_ringing` for every ringing call at once."""
    r = np.asarray(ringing, dtype=float)

    def survival(samples: tuple[float, ...]) -> np.ndarray:
        if not samples:
            return np.ones(len(r))
        found = np.searchsorted(np.asarray(samples), r, side="right")
        out: np.ndarray = 1.0 - found / len(samples)
        return out

    live = est.p_live * survival(est.live_ring_s)
    other = est.p_other_answer * survival(est.other_ring_s)
    total = live + other + max(0.0, 1.0 - est.p_live - est.p_other_answer)
    chance = np.divide(live, total, out=np.zeros(len(r)), where=total > 0)
    result: np.ndarray = np.where(r >= est.ring_timeout, 0.0, chance)
    return result


def _binom_pmf(n: int, p: float) -> np.ndarray:
    """P(B = b) for b = 0..n, B binomial(n, p)."""
    if n == 0 or p <= 0.0:
        out = np.zeros(n + 1)
        out[0] = 1.0
        return out
    if p >= 1.0:
        out = np.zeros(n + 1)
        out[n] = 1.0
        return out
    global _LOG_FACT
    if n >= len(_LOG_FACT):
        _LOG_FACT = np.array([math.lgamma(i + 1) for i in range(2 * n + 1)])
    k = _RANGE[: n + 1] if n < len(_RANGE) else np.arange(n + 1)
    lf = _LOG_FACT
    pmf: np.ndarray = np.exp(lf[n] - lf[k] - lf[n - k] + k * math.log(p) + (n - k) * math.log1p(-p))
    return pmf


def _positive_part_by_shift(pmf: np.ndarray, offset: int, max_shift: int) -> np.ndarray:
    """E[max(G + b, 0)] for b = 0..max_shift, G taking value offset + i with pmf[i]."""
    values = offset + np.arange(len(pmf))
    tail_p = np.concatenate((np.cumsum(pmf[::-1])[::-1], [0.0]))  # P(G >= values[i])
    tail_v = np.concatenate((np.cumsum((values * pmf)[::-1])[::-1], [0.0]))
    shifts = np.arange(max_shift + 1)
    first = np.clip(1 - shifts - offset, 0, len(pmf))  # first index with G + b >= 1
    out: np.ndarray = tail_v[first] + shifts * tail_p[first]
    return out


def predictive_lines(snap: Snapshot, est: DialEstimates, allowance: float, max_new: int) -> int:
    """Lines to dial now so that expected abandons stay within `allowance` of live answers.

    `allowance` is a fraction (0.03 = 3 %); `max_new` caps the answer (line budget).

    Raises:
        ConfigError: an allowance outside [0, 1) or a negative line budget.
    """
    if not 0 <= allowance < 1 or max_new < 0:
        raise ConfigError(f"bad pacing bounds: allowance {allowance}, max_new {max_new}")
    if est.p_live <= 0 or max_new == 0:
        return 0
    grace = max(0.0, CONNECT_LIMIT - est.amd_seconds)
    # When would a call dialed now be answered? At one of these times (quantiles of
    # the measured dial-to-answer times), and it may wait `grace` for an agent.
    reach = [q + est.amd_seconds + grace for q in _quantiles(est.live_ring_s, _POINTS)]
    k = len(reach)
    frees = [est.handle.p_free_mean(t, reach) for t in snap.talking]
    frees += [sum(1 for h in reach if left <= h) / k for left in snap.wrapping]
    sure = snap.idle_agents + sum(1 for f in frees if f >= 1.0) - snap.waiting
    maybe = [f for f in frees if 0.0 < f < 1.0]
    chances = _live_chances(est, snap.ringing)
    lives = chances[chances > 0]
    # Overflow D = L - A: ringing calls' live answers (binomial with their mean chance),
    # minus agents that may be free (binomial likewise; both overstate the variance of
    # the exact sums of unequal trials, so they err on the side of fewer abandons).
    g = np.convolve(
        _binom_pmf(len(lives), float(lives.mean()) if len(lives) else 0.0),
        _binom_pmf(len(maybe), _mean(maybe))[::-1],
    )
    h = _positive_part_by_shift(g, -len(maybe) - sure, max_new)
    p = est.p_live
    l_mean = float(lives.sum())

    def fits(n: int) -> bool:
        over = float(np.dot(_binom_pmf(n, p), h[: n + 1]))  # E[max(D + B(n, p), 0)]
        return over <= allowance * (l_mean + n * p)

    if not fits(1):
        return 0
    lo, hi = 1, 2  # the overflow grows with n: double, then bisect to the last n that fits
    while hi <= max_new and fits(hi):
        lo, hi = hi, 2 * hi
    hi = min(hi, max_new + 1)  # fits(lo); hi does not fit or is past the budget
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def progressive_lines(snap: Snapshot) -> int:
    """One call per free agent: idle agents not already spoken for by a call in progress."""
    return max(0, snap.idle_agents - len(snap.ringing) - snap.waiting)


def agentless_lines(lines_in_use: int, max_lines: int) -> int:
    """Agentless campaigns fill the line budget; nobody waits for an agent."""
    return max(0, max_lines - lines_in_use)


def outbound_agents(free_agents: int, inbound_reserve: int) -> int:
    """Free agents the dialer may use when blended: only those beyond the inbound reserve."""
    return max(0, free_agents - max(0, inbound_reserve))


_POINTS = 9  # answer-time quantiles the availability of each agent is averaged over


def _quantiles(sorted_xs: Sequence[float], k: int) -> list[float]:
    """k evenly spaced quantiles (mid-points of k equal slices) of sorted samples."""
    if not sorted_xs:
        return [0.0]
    n = len(sorted_xs)
    return [sorted_xs[min(n - 1, int((i + 0.5) * n / k))] for i in range(k)]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class DialMeter:
    """Measures what the predictive rule needs from recent attempts (a sliding window).

    Until `warmup` dials have finished, the answer rates are the priors given.
    """

    def __init__(
        self,
        *,
        ring_timeout: float,
        amd_seconds: float,
        prior: HandleModel,
        prior_p_live: float = 0.25,
        window: int = 400,
        warmup: int = 30,
    ) -> None:
        self._ring_timeout = ring_timeout
        self._amd = amd_seconds
        self._prior = prior
        self._prior_p_live = prior_p_live
        self._warmup = warmup
        self._results: deque[str] = deque(maxlen=window)
        self._live_ring: deque[float] = deque(maxlen=window)
        self._other_ring: deque[float] = deque(maxlen=window)
        self._logtalk: deque[float] = deque(maxlen=window)
        self._wraps: deque[float] = deque(maxlen=window)
        self._cached: DialEstimates | None = None
        self._sorted: dict[str, tuple[float, ...]] = {}  # kind -> sorted ring times
        self._handle_cache: HandleModel | None = None

    def dial_result(self, kind: str, ring_s: float) -> None:
        """A dial ended ringing: kind is 'live', 'machine' or anything else (no answer)."""
        self._cached = None
        self._results.append(kind)
        if kind == "live":
            self._live_ring.append(ring_s)
        elif kind == "machine":
            self._other_ring.append(ring_s)
        self._sorted.pop(kind, None)

    def handled(self, talk_s: float, wrap_s: float) -> None:
        """An agent finished a call: its talk and wrap-up times."""
        self._cached = None
        self._handle_cache = None
        if talk_s > 0:
            self._logtalk.append(math.log(talk_s))
        self._wraps.append(wrap_s)

    def estimates(self) -> DialEstimates:
        """The current estimates (priors until enough data)."""
        if self._cached is None:
            self._cached = self._estimate()
        return self._cached

    def _estimate(self) -> DialEstimates:
        n = len(self._results)
        if n < self._warmup:
            p_live, p_other = self._prior_p_live, 0.0
        else:
            p_live = self._results.count("live") / n
            p_other = self._results.count("machine") / n
        return DialEstimates(
            p_live=p_live,
            live_ring_s=self._ring_times("live", self._live_ring),
            p_other_answer=p_other,
            other_ring_s=self._ring_times("machine", self._other_ring),
            ring_timeout=self._ring_timeout,
            handle=self._handle(),
            amd_seconds=self._amd,
        )

    def _ring_times(self, kind: str, samples: deque[float]) -> tuple[float, ...]:
        if kind not in self._sorted:
            self._sorted[kind] = tuple(sorted(samples))
        return self._sorted[kind]

    def _handle(self) -> HandleModel:
        if self._handle_cache is None:
            k = len(self._logtalk)
            if k < self._warmup:
                self._handle_cache = self._prior
            else:
                logs = np.fromiter(self._logtalk, float, k)
                sd = float(logs.std(ddof=1))
                self._handle_cache = HandleModel(float(logs.mean()), sd, _mean(self._wraps))
        return self._handle_cache
