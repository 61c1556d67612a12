"""Outbound pacing in simulation: our predictive pacer against VICIdial's dial methods.

Every policy runs on the same seeded shifts (acd.dialer_sim: lognormal talk, fixed
wrap-up, live / machine / busy / no-answer dials, AMD 0.8 s, the 2-second rule):
- progressive: one call per free agent (acd.pacing);
- predictive: ours (acd.pacing + acd.governor), started from a wrong prior (120 s talk,
  10 s wrap-up, 25 % live) so it has to learn each shift;
- predictive+1h guard: the same, with the governor's budget also held over the last
  hour (acd.governor's optional guard window);
- RATIO: VICIdial's fixed dial level, rewritten from its documented rule
  (acd.vicidial_pacing), at the best level a supervisor could set knowing the day in
  advance, twice: "RATIO@3%" is the highest level (steps of 0.05) whose shift abandon
  rate stays at or under 3 % on a calibration shift (seed 1000) of the same scenario;
  "RATIO@pred" the highest level at or under predictive's own mean abandon rate in
  that scenario (talk time compared at an equal abandon rate);
- ADAPT_HARD_LIMIT, ADAPT_AVERAGE: VICIdial's adaptive levels with their defaults
  (drop limit 3 %, maximum level 3.0, intensity 0), starting at 1.0.

Columns: talk minutes per agent-hour, agent idle % (ready with no call), abandon % of
live answers over the shift and over the worst full hour, p95 wait from the end of the
greeting to an agent (AMD time included). Each cell is the mean over the seeds. The
last columns compare predictive with each VICIdial mode: the ratio of talk time, and
whether predictive's shift abandon % is equal or lower ("=<").

    python benchmarks/dialer.py                   # 3 seeds, all scenarios, 2 processes
    python benchmarks/dialer.py --seeds 1 --only base

Not a test: it asserts nothing, it prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd.dialer_sim import ShiftParams, ShiftResult, simulate  # noqa: E402
from acd.pacers import Pacer, PredictivePacer, ProgressivePacer  # noqa: E402
from acd.pacing import HandleModel  # noqa: E402
from acd.vicidial_pacing import ADAPT_AVERAGE, ADAPT_HARD_LIMIT, RATIO, VicidialPacer  # noqa: E402

BASE = ShiftParams()
SCENARIOS: dict[str, ShiftParams] = {
    "base: 20 ag, 30 % live, AHT 180": BASE,
    "5 agents": replace(BASE, agents=5),
    "50 agents": replace(BASE, agents=50),
    "15 % live": replace(BASE, p_live=0.15),
    "60 % live": replace(BASE, p_live=0.60),
    "AHT 60 s": replace(BASE, aht=60.0),
    "AHT 600 s": replace(BASE, aht=600.0),
    "step 30->60 % at 4 h": replace(BASE, step_at=4 * 3600.0, p_live_after=0.60),
}
GUARDED = "predictive+1h guard"
RATIO_3, RATIO_PRED = "RATIO@3%", "RATIO@pred"
POLICIES = (
    "progressive",
    "predictive",
    GUARDED,
    RATIO_3,
    RATIO_PRED,
    ADAPT_HARD_LIMIT,
    ADAPT_AVERAGE,
)
VICI = (RATIO_3, RATIO_PRED, ADAPT_HARD_LIMIT, ADAPT_AVERAGE)
CALIBRATION_SEED = 1000
TARGET_PCT = 3.0


def make(policy: str, params: ShiftParams, ratio_level: float) -> Pacer:
    if policy == "progressive":
        return ProgressivePacer()
    if policy in ("predictive", GUARDED):
        return PredictivePacer(
            ring_timeout=params.ring_timeout,
            amd_seconds=params.amd_seconds,
            prior=HandleModel.from_mean(120.0, 1.0, 10.0),
            guard=3600.0 if policy == GUARDED else None,
        )
    if policy in (RATIO_3, RATIO_PRED):
        return VicidialPacer(RATIO, ratio_level)
    return VicidialPacer(policy, 1.0)


def calibrate_ratio(args: tuple[ShiftParams, float]) -> float:
    """The highest RATIO level (steps of 0.05) at or under `limit` % on the calibration shift."""
    params, limit = args
    lo, hi = 0, 40  # level = 1 + 0.05 * k; k = 0 is progressive and never abandons here
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = simulate(params, VicidialPacer(RATIO, 1 + 0.05 * mid), CALIBRATION_SEED)
        if r.abandon_pct <= limit:
            lo = mid
        else:
            hi = mid
    return round(1 + 0.05 * lo, 2)


@dataclass(frozen=True)
class Row:
    talk: float
    idle: float
    abandon: float
    worst_hour: float
    p95: float


def run_one(args: tuple[str, str, int, float]) -> tuple[str, str, int, Row]:
    scenario, policy, seed, level = args
    params = SCENARIOS[scenario]
    r: ShiftResult = simulate(params, make(policy, params, level), seed)
    row = Row(
        r.talk_min_per_agent_hour, r.idle_pct, r.abandon_pct, r.worst_window_pct(), r.p95_wait
    )
    return scenario, policy, seed, row


def mean_row(rows: list[Row]) -> Row:
    n = len(rows)
    return Row(
        sum(r.talk for r in rows) / n,
        sum(r.idle for r in rows) / n,
        sum(r.abandon for r in rows) / n,
        sum(r.worst_hour for r in rows) / n,
        sum(r.p95 for r in rows) / n,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="shifts per scenario (seeds 1..N)")
    ap.add_argument("--only", default="", help="run the scenarios whose name contains this")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = ap.parse_args()
    names = [s for s in SCENARIOS if args.only in s]
    started = time.perf_counter()
    pool: Callable[..., ProcessPoolExecutor] = ProcessPoolExecutor
    seeds = range(1, args.seeds + 1)
    results: dict[tuple[str, str], list[Row]] = {}
    levels: dict[tuple[str, str], float] = {}
    with pool(args.jobs) as ex:
        # first predictive (RATIO@pred needs its abandon rate), beside RATIO@3%'s search
        first = [(s, "predictive", seed, 0.0) for s in names for seed in seeds]
        at_3 = ex.map(calibrate_ratio, [(SCENARIOS[s], TARGET_PCT) for s in names])
        for scenario, policy, _seed, row in ex.map(run_one, first):
            results.setdefault((scenario, policy), []).append(row)
        for s, level in zip(names, at_3, strict=True):
            levels[(s, RATIO_3)] = level
        matched = [(SCENARIOS[s], mean_row(results[(s, "predictive")]).abandon) for s in names]
        for s, level in zip(names, ex.map(calibrate_ratio, matched), strict=True):
            levels[(s, RATIO_PRED)] = level
        jobs = [
            (s, p, seed, levels.get((s, p), 1.0))
            for s in names
            for p in POLICIES
            if p != "predictive"
            for seed in seeds
        ]
        for scenario, policy, _seed, row in ex.map(run_one, jobs):
            results.setdefault((scenario, policy), []).append(row)
    print(
        f"8-hour shifts, {args.seeds} seed(s) each, AMD 0.8 s, wrap-up 15 s, ring timeout 25 s;"
        f" RATIO level calibrated on seed {CALIBRATION_SEED}"
    )
    head = (
        f"{'scenario':32} {'policy':24} {'talk min/ag-h':>13} {'idle %':>7} {'aband %':>8}"
        f" {'worst h %':>9} {'p95 wait s':>10}   {'pred talk ratio, aband =<':>26}"
    )
    print(head)
    print("-" * len(head))
    for s in names:
        rows = {p: mean_row(results[(s, p)]) for p in POLICIES}
        pred = rows["predictive"]
        for p in POLICIES:
            r = rows[p]
            label = f"{p} {levels[(s, p)]:.2f}" if (s, p) in levels else p
            cmp = ""
            if p in VICI:
                ok = "yes" if pred.abandon <= r.abandon + 1e-9 else "no"
                cmp = f"x{pred.talk / r.talk:.3f}  {ok}"
            print(
                f"{s if p == POLICIES[0] else '':32} {label:24} {r.talk:13.1f} {r.idle:7.1f}"
                f" {r.abandon:8.2f} {r.worst_hour:9.2f} {r.p95:10.2f}   {cmp:>26}"
            )
        print()
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
