"""How well the announced wait predicts the real one: acd.estimate against app_queue.

A queue on a fake clock (`acd.estimate.simulate`): Poisson arrivals, FIFO, n agents,
handle time = talk (exponential, or lognormal with sigma 0.6) + 30 s wrap-up, AHT 180 s,
nobody abandons. When a caller has to queue, each method estimates its wait:
- ours: `acd.estimate.Estimator` (position, agents staffed, elapsed call times,
  the observed handle-time distribution);
- app_queue: |hold average + 30 - elapsed| in whole minutes, hold average
  (3 * old + sample) / 4 over answered calls;
- memoryless: position * AHT / n (Erlang's conditional wait, exponential handle times).
The tables show the mean absolute error in seconds against the real remaining wait,
over announcements made when callers join, then also every 60 s while they wait (where
app_queue subtracts the elapsed time); and the cost of one estimate for a whole queue
(all positions at once).

    python benchmarks/estimate.py                 # 20000 calls per row
    python benchmarks/estimate.py --calls 5000 --seed 7

Not a test: it asserts nothing, it prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd.estimate import Estimator, simulate  # noqa: E402
from acd.model import Agent, AgentState  # noqa: E402


def accuracy(calls: int, seed: int, draws: int, every: float) -> None:
    when = "when the caller joins" if every == 0 else f"at joining and every {every:g} s"
    print(f"announced vs real remaining wait, {when}; MAE in seconds")
    header = (
        f"{'agents':>6} {'load':>5} {'handle':>12} {'queued':>7} {'said':>6} {'mean wait':>9} "
        f"{'MAE ours':>9} {'app_queue':>9} {'memoryless':>10} {'app/ours':>8}"
    )
    print(header)
    for agents in (3, 10, 30):
        for load in (0.7, 0.9):
            for handle in ("exponential", "lognormal"):
                r = simulate(agents, load, handle, calls=calls, warmup=calls // 10,
                             announce_every=every, seed=seed, draws=draws)  # fmt: skip
                print(
                    f"{agents:>6} {load:>5.0%} {handle:>12} {r.calls:>7} {r.announcements:>6} "
                    f"{r.mean_wait:>8.1f}s {r.mae_estimator:>8.1f}s {r.mae_app_queue:>8.1f}s "
                    f"{r.mae_erlang:>9.1f}s {r.mae_app_queue / r.mae_estimator:>8.2f}"
                )
    print()


def cost(draws: int) -> None:
    print(f"cost of estimate_all (K = {draws} draws), process time:")
    for agents, positions in ((10, 10), (50, 50), (50, 200)):
        est = Estimator(draws=draws)
        for i in range(100):
            est.observe_completion(120.0 + i, 30.0, 1000.0 + i)
        staff = [Agent(f"a{i}", AgentState.ON_CALL, state_since=1000.0 + i) for i in range(agents)]
        rounds = 20
        start = time.process_time()
        for _ in range(rounds):
            est.estimate_all(positions, staff, 1200.0)
        per = (time.process_time() - start) / rounds
        print(
            f"  {agents:>3} agents, {positions:>3} callers: {per * 1000:7.2f} ms per queue, "
            f"{per / positions * 1e6:7.1f} us per caller"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=256)
    parser.add_argument("--announce-every", type=float, default=60.0)
    args = parser.parse_args()
    for every in (0.0, args.announce_every):
        accuracy(args.calls, args.seed, args.draws, every)
    cost(args.draws)


if __name__ == "__main__":
    main()
