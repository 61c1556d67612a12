"""The ACD engine's decision cost: time per input with many callers and agents.

The pure part of the issue's benchmark (200 queued callers, 50 agents): how long
`AcdEngine` takes to answer the inputs of a busy queue — a call ends (the agent
goes free and the next caller is offered), an agent answers, a timer fires
(announcements to every waiting caller) — with no SIP around it. The offer
latency the issue asks for (agent frees -> its phone gets the INVITE) is this
plus the shell's work; this part must be a small share of the 50 ms goal.

    python benchmarks/acd_engine.py
    python benchmarks/acd_engine.py --callers 200 --agents 50 --rounds 2000
    python benchmarks/acd_engine.py --stand-in

Uses core's `acd.strategy.dispatch` when present, else a linear stand-in (the
engine's own cost is then what is measured). Not a test: it prints.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd.engine import AcdEngine  # noqa: E402
from acd.engine_actions import Ring  # noqa: E402
from acd.model import (  # noqa: E402
    Agent,
    AgentState,
    Caller,
    Member,
    Offer,
    QueueConfig,
    Strategy,
)


def linear(
    now: float,
    queues: Mapping[str, QueueConfig],
    members: Mapping[str, Sequence[Member]],
    agents: Mapping[str, Agent],
    waiting: Sequence[Caller],
    busy_offers: Collection[str],
    rng: random.Random,
    memory: Any,
) -> list[Offer]:
    """First free member by position for each caller in order (a stand-in)."""
    used = set(busy_offers)
    offers = []
    for caller in sorted(waiting, key=lambda c: (-c.priority, c.joined)):
        for member in members.get(caller.queue, ()):
            agent = agents[member.agent]
            if (
                member.agent not in used
                and agent.state is AgentState.AVAILABLE
                and agent.wrapup_until <= now
            ):
                used.add(member.agent)
                offers.append(Offer(caller.call_id, caller.queue, (member.agent,)))
                break
    return offers


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--stand-in", action="store_true", help="the linear stand-in dispatch")
    args = parser.parse_args()

    dispatch: Any = linear
    which = "stand-in linear dispatch"
    if not args.stand_in and importlib.util.find_spec("acd.strategy") is not None:
        dispatch, which = None, "acd.strategy.dispatch (linear)"  # None: the engine's default
    queue = QueueConfig("sales", "600", strategy=Strategy.LINEAR, announce_frequency=30.0)
    names = [f"a{i:03d}" for i in range(args.agents)]
    engine = AcdEngine(
        {"sales": queue},
        {"sales": [Member(n, 0, i) for i, n in enumerate(names)]},
        [Agent(n) for n in names],
        dispatch=dispatch,
        rng=random.Random(1),
    )
    now = 0.0
    for name in names:
        engine.agent_login(name, now)
    serial = 0
    timings: dict[str, list[float]] = {"call_completed": [], "offer_answered": [], "on_timer": []}

    def timed(kind: str, fn: Any, *a: Any) -> Any:
        start = time.perf_counter()
        out = fn(*a)
        timings[kind].append(time.perf_counter() - start)
        return out

    def answer_all(actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Ring):
                timed("offer_answered", engine.offer_answered, action.caller, action.agents[0], now)

    while serial < args.callers + args.agents:
        serial += 1
        answer_all(engine.caller_joined(f"c{serial}", "sales", str(serial), now))
        now += 0.01
    rng = random.Random(2)
    for _ in range(args.rounds):
        now += 0.5
        calls = sorted(engine.calls().values())
        done = calls[rng.randrange(len(calls))]
        answer_all(timed("call_completed", engine.call_completed, done, now, rng.random() < 0.5))
        serial += 1
        engine.caller_joined(f"c{serial}", "sales", str(serial), now)  # keep the queue full
        deadline = engine.next_deadline()
        if deadline is not None and deadline <= now:
            answer_all(timed("on_timer", engine.on_timer, now))

    waiting = len(engine.waiting(now))
    print(f"ACD engine, {which}: {waiting} callers waiting, {args.agents} agents busy")
    print(f"{'input':<16}{'count':>8}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    for kind, values in timings.items():
        if not values:
            continue
        us = [v * 1e6 for v in values]
        print(
            f"{kind:<16}{len(us):>8}{statistics.median(us):>10.0f}"
            f"{percentile(us, 99):>10.0f}{max(us):>10.0f}"
        )


if __name__ == "__main__":
    main()
