"""The wait announced to a queued caller: when will the caller at position p be answered?

app_queue announces |hold average + 30 - elapsed| (rounded to minutes): the same for
the first and the tenth caller, blind to how many agents are staffed. Here:

The model. Callers are served first come first served by the queue's n staffed agents
(logged in, not paused). The caller at position p (1: next) is answered when the p-th
agent becomes free: agents free now (available, or ringing with an offer for a caller
in front) serve positions 1, 2, …; an agent in wrap-up frees at its known end; an
agent on a call for t seconds frees after the rest of a handle time H (talk +
wrap-up) known to be longer than t: H - t given H > t; an agent who frees takes the
next caller and frees again one full handle time H later. The estimate is the
expected time of the p-th "agent frees" event, E[W_p].

Under exponential handle times of mean AHT this is Erlang's conditional wait: with f
agents free, E[W_p] = 0 for p <= f, else (p - f) * AHT / n (n agents busy complete
at a rate n/AHT, whatever their elapsed times). Real handle times are not memoryless
(a call 10 min in is not a fresh call), so the distribution of H is the observed
one: the last completed calls, their mean tracked by an exponentially weighted
average (drifts during the day) and their shape kept as a window of samples. E[W_p]
is then computed by sampling: K independent draws of every busy agent's remaining
time and of the next handle times, the same draws for every position (so estimates
never decrease with the position), their p-th free event averaged.

Before `min_shape_samples` calls have completed the shape is unknown and H is taken
as exponential with the weighted mean (which starts at `prior_aht`): the memoryless
answer above. A call longer than almost every sample keeps the tail of the longest
samples (its remaining time is drawn from the excess of the `_TAIL` longest ones).

Not modelled: callers in front who abandon (the estimate is then a little long),
agents shared with other queues (they serve them too: a little short).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acd.model import Agent, AgentState
from pbx.api import ConfigError

# A busy agent whose call outlasts all but fewer than this many samples draws its
# remaining time from the excess of the _TAIL longest samples over the shortest of them.
_TAIL = 5
# Never offered: agents in these states do not count as staffed.
_NOT_STAFFED = frozenset({AgentState.LOGGED_OUT, AgentState.PAUSED})


class Estimator:
    """Announced-wait estimates for one queue from its recent handle times."""

    def __init__(
        self,
        prior_aht: float = 180.0,
        *,
        alpha: float = 0.05,
        window: int = 500,
        max_age: float = 4 * 3600.0,
        min_shape_samples: int = 30,
        draws: int = 256,
        seed: int = 0,
    ) -> None:
        """`prior_aht`: the AHT assumed before any call completed; `alpha`: the weight of
        a new call in the mean (about the last 1/alpha calls count); `window`, `max_age`:
        the samples kept for the shape; `draws`: K, the sampling's precision (its standard
        error is about the spread of the wait / sqrt(K)).

        Raises:
            ConfigError: a prior AHT that is not > 0, alpha outside (0, 1], a draw count,
                window or minimum shape below 1.
        """
        if not (math.isfinite(prior_aht) and prior_aht > 0):
            raise ConfigError(f"the prior AHT must be > 0 seconds, not {prior_aht}")
        if not 0 < alpha <= 1:
            raise ConfigError(f"the AHT weight must be in (0, 1], not {alpha}")
        if min(window, draws, min_shape_samples) < 1:
            raise ConfigError("the window, the draws and the minimum shape must be >= 1")
        self.aht = prior_aht
        self.alpha = alpha
        self.max_age = max_age
        self.min_shape_samples = min_shape_samples
        self.draws = draws
        self.seed = seed
        self.completed = 0
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=window)  # t, talk, wrap

    def observe_completion(self, talk: float, wrapup: float, now: float) -> None:
        """A queue call ended its wrap-up: its talk and wrap-up seconds feed the AHT
        (the prior counts as one call, so the first calls replace it quickly)."""
        talk, wrapup = max(0.0, talk), max(0.0, wrapup)
        self.completed += 1
        weight = max(self.alpha, 1.0 / (self.completed + 1))
        self.aht += weight * (talk + wrapup - self.aht)
        self._samples.append((now, talk, wrapup))

    def _shape(self, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Talk and wrap-up samples scaled to the weighted mean, or None: too few."""
        while self._samples and self._samples[0][0] < now - self.max_age:
            self._samples.popleft()
        if len(self._samples) < self.min_shape_samples:
            return None
        talk = np.array([s[1] for s in self._samples])
        wrap = np.array([s[2] for s in self._samples])
        mean = float(np.mean(talk + wrap))
        if mean <= 0:
            return None
        scale = self.aht / mean
        return talk * scale, wrap * scale

    def estimate(self, position: int, agents: Sequence[Agent], now: float) -> float | None:
        """Expected seconds until the caller at `position` (1: next) is answered, or None
        when no agent is staffed (all logged out, paused, or with no phone registered).
        `agents`: the queue's members as they are now (an agent on another queue's call
        counts as busy).

        Raises:
            ConfigError: position below 1.
        """
        waits = self.estimate_all(position, agents, now)
        return None if waits is None else waits[-1]

    def estimate_all(self, count: int, agents: Sequence[Agent], now: float) -> list[float] | None:
        """Expected waits of positions 1..count (one computation for a whole queue)."""
        if count < 1:
            raise ConfigError(f"a queue position starts at 1, not {count}")
        staffed = [a for a in agents if a.state not in _NOT_STAFFED and a.registered]
        if not staffed:
            return None
        rng = np.random.default_rng(self.seed)  # the same draws for every call: monotone
        shape = self._shape(now)
        free = np.empty((self.draws, len(staffed)))
        for column, agent in enumerate(staffed):
            free[:, column] = self._frees_in(agent, now, shape, rng)
        rows = np.arange(self.draws)
        waits = []
        for _ in range(count):
            first = np.argmin(free, axis=1)
            at = free[rows, first]
            waits.append(float(np.mean(at)))
            free[rows, first] = at + self._handle_times(shape, rng)
        return waits

    def _handle_times(
        self, shape: tuple[np.ndarray, np.ndarray] | None, rng: np.random.Generator
    ) -> np.ndarray:
        if shape is None:
            return rng.exponential(self.aht, self.draws)
        talk, wrap = shape
        picks = rng.integers(0, talk.size, self.draws)
        drawn: np.ndarray = talk[picks] + wrap[picks]
        return drawn

    def _frees_in(
        self,
        agent: Agent,
        now: float,
        shape: tuple[np.ndarray, np.ndarray] | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """K draws of the seconds until this agent is free for the queue."""
        if agent.state is AgentState.ON_CALL:
            elapsed = max(0.0, now - agent.state_since)
            if shape is None:
                return rng.exponential(self.aht, self.draws)
            talk, wrap = shape
            longer = talk > elapsed
            if int(np.count_nonzero(longer)) < _TAIL:
                # beyond the observed calls: the excess of the longest few over their floor
                order = np.argsort(talk)[-_TAIL:]
                rest, after = talk[order] - talk[order[0]], wrap[order]
            else:
                rest, after = talk[longer] - elapsed, wrap[longer]
            picks = rng.integers(0, rest.size, self.draws)
            remaining: np.ndarray = rest[picks] + after[picks]
            return remaining
        # available, ringing (an offer for a caller in front), or in wrap-up: free at the
        # wrap-up's end (now when it is over)
        return np.full(self.draws, max(0.0, agent.wrapup_until - now))


def app_queue_estimate(hold_average: float, elapsed: float) -> float:
    """What app_queue announces, in seconds: |hold average + 30 - elapsed| in whole
    minutes (its +30 rounds to the nearest minute)."""
    return 60.0 * math.floor(abs(hold_average + 30.0 - elapsed) / 60.0)


# ---------------------------------------------------------------- the simulation


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Mean absolute errors (seconds) of the announced waits against the real remaining
    waits, over every announcement: when a caller joins the queue, then every
    `announce_every` seconds while it waits (callers answered at once hear none)."""

    calls: int  # callers who queued, measured (after the warm-up)
    announcements: int
    mean_wait: float  # the true mean wait of those callers
    mae_estimator: float  # Estimator
    mae_app_queue: float  # app_queue's announcement
    mae_erlang: float  # (p - free) * AHT / n with the weighted AHT: memoryless
    mae_zero: float  # announcing nothing (0 s): the scale of the errors


def simulate(
    agents: int,
    occupancy: float,
    handle: str,
    *,
    aht: float = 180.0,
    wrapup: float = 30.0,
    calls: int = 3000,
    warmup: int = 300,
    announce_every: float = 0.0,
    seed: int = 1,
    draws: int = 128,
) -> SimulationResult:
    """A queue on a fake clock: Poisson arrivals at `occupancy * agents / aht` per second,
    handle time = talk (exponential or lognormal, sigma 0.6: `handle`) + a fixed wrap-up,
    FIFO, nobody abandons. When a caller joins the queue (and every `announce_every`
    seconds after, when > 0) each method announces the remaining wait; the errors
    against the real remaining wait are averaged.

    Raises:
        ConfigError: an unknown handle-time distribution or a load not in (0, 1).
    """
    if handle not in ("exponential", "lognormal"):
        raise ConfigError(f"handle times are exponential or lognormal, not {handle}")
    if not 0 < occupancy < 1 or agents < 1:
        raise ConfigError("the simulation needs at least one agent and a load in (0, 1)")
    rnd = random.Random(seed)
    mean_talk = aht - wrapup
    sigma = 0.6
    mu = math.log(mean_talk) - sigma * sigma / 2

    def talk_time() -> float:
        if handle == "exponential":
            return rnd.expovariate(1.0 / mean_talk)
        return rnd.lognormvariate(mu, sigma)

    rate = occupancy * agents / aht
    estimator = Estimator(prior_aht=aht, draws=draws, seed=seed)
    hold_average = 0.0  # app_queue's: (3 * old + sample) / 4 over answered calls
    names = [f"a{i}" for i in range(agents)]
    state = {name: Agent(name, AgentState.AVAILABLE) for name in names}
    # events: (time, order, kind, payload); kinds: arrive, announce, talk-end, wrap-end
    events: list[tuple[float, int, str, str]] = [(rnd.expovariate(rate), 0, "arrive", "")]
    queue: deque[tuple[int, float]] = deque()  # (caller number, arrival)
    order = 1
    arrived = 0
    errors: dict[str, list[float]] = {"est": [], "app": [], "erl": [], "zero": []}
    waits: list[float] = []
    # caller -> its announcements: (time, ours, app_queue, memoryless, zero)
    pending: dict[int, list[tuple[float, float, float, float, float]]] = {}

    def push(at: float, kind: str, payload: str) -> None:
        nonlocal order
        heapq.heappush(events, (at, order, kind, payload))
        order += 1

    def announce(caller: int, arrival: float, position: int, now: float) -> None:
        est = estimator.estimate(position, list(state.values()), now)
        pending.setdefault(caller, []).append(
            (
                now,
                est if est is not None else math.inf,
                app_queue_estimate(hold_average, now - arrival),
                position * estimator.aht / agents,
                0.0,
            )
        )
        if announce_every > 0:
            push(now + announce_every, "announce", str(caller))

    def start(name: str, caller: int, arrival: float, now: float) -> None:
        nonlocal hold_average
        wait = now - arrival
        hold_average = (3 * hold_average + wait) / 4
        talk = talk_time()
        state[name] = Agent(name, AgentState.ON_CALL, state_since=now)
        push(now + talk, "talk-end", f"{name} {talk}")
        if caller in pending:
            waits.append(wait)
            for at, *guesses in pending.pop(caller):
                for key, guess in zip(("est", "app", "erl", "zero"), guesses, strict=True):
                    errors[key].append(abs(guess - (now - at)))

    while events:  # bounded: `calls` arrivals, then the queue drains
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            arrived += 1
            if arrived < calls:
                push(now + rnd.expovariate(rate), "arrive", "")
            free = [n for n in names if state[n].state is AgentState.AVAILABLE]
            if free and not queue:
                start(free[0], arrived, now, now)  # answered at once: nothing announced
                continue
            queue.append((arrived, now))
            if arrived > warmup:
                announce(arrived, now, len(queue), now)
        elif kind == "announce":
            caller = int(payload)
            if caller in pending:  # still waiting (answered callers leave `pending`)
                place = next(i for i, (c, _) in enumerate(queue) if c == caller)
                announce(caller, queue[place][1], place + 1, now)
        elif kind == "talk-end":
            name, talk = payload.split()
            state[name] = Agent(name, AgentState.WRAP_UP, state_since=now,
                                wrapup_until=now + wrapup)  # fmt: skip
            push(now + wrapup, "wrap-end", payload)
        else:
            name, talk = payload.split()
            estimator.observe_completion(float(talk), wrapup, now)
            state[name] = Agent(name, AgentState.AVAILABLE, state_since=now)
            if queue:
                caller, arrival = queue.popleft()
                start(name, caller, arrival, now)
    measured, said = len(waits), len(errors["est"])
    return SimulationResult(
        calls=measured,
        announcements=said,
        mean_wait=sum(waits) / measured,
        mae_estimator=sum(errors["est"]) / said,
        mae_app_queue=sum(errors["app"]) / said,
        mae_erlang=sum(errors["erl"]) / said,
        mae_zero=sum(errors["zero"]) / said,
    )
