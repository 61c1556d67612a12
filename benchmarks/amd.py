"""AMD accuracy, speed and cost per held-out synthesizer: aiopbx's detector beside an
app_amd-style reference.

Builds a corpus (tests/media/amd_corpus.py) from the `BENCH` phrase bank — words the
tests do not use — spoken by espeak-ng, flite and festival, with people answering in
every way (names, businesses, questions, hesitations, background talk) and machines
of every kind, under telephone conditions. Each engine is a fold: the detector has
nothing fitted, so a fold is that engine's calls judged by constants set without
them. Prints, per fold and overall, for both detectors: accuracy, humans classed
MACHINE, machines classed HUMAN, NOTSURE rate, median and p90 decision time (all
calls, and humans only), the humans' decision time after their greeting ended (the
two-second rule), and CPU per second of audio fed (= share of one core per
concurrent call).

    python benchmarks/amd.py                    # 100 people + 100 machines per engine
    python benchmarks/amd.py --calls 40 --seed 7

Not a test: it asserts nothing, it prints. Needs espeak-ng, flite, festival and sox.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.amd_reference import app_amd  # noqa: E402
from media.amd import AmdDetector  # noqa: E402
from media.amd_features import FRAME_SAMPLES  # noqa: E402
from tests.media.amd_corpus import BENCH, Call, build, draw  # noqa: E402
from tests.media.amd_voices import ENGINES  # noqa: E402


def ours(audio: np.ndarray) -> tuple[str, int, str, int]:
    detector = AmdDetector()
    x = audio.astype(np.float64)
    fed = 0
    for start in range(0, x.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        detector.feed(x[start : start + FRAME_SAMPLES])
        fed += 20
        if detector.done:
            break
    r = detector.finish()
    return r.result.value, r.decision_ms, r.reason, fed


Detector = Callable[[np.ndarray], tuple[str, int, str, int]]
Outcome = tuple[Call, str, int, float, int]  # call, result, decision ms, CPU s, ms fed


def run(calls: list[Call], detect: Detector) -> list[Outcome]:
    out: list[Outcome] = []
    for call in calls:
        t0 = time.process_time()
        result, at_ms, _, fed = detect(call.audio)
        out.append((call, result, at_ms, time.process_time() - t0, fed))
    return out


def p90(values: list[float]) -> float:
    values = sorted(values)
    return values[int(0.9 * (len(values) - 1))] if values else float("nan")


def measure(outcomes: list[Outcome]) -> dict[str, float]:
    humans = [o for o in outcomes if o[0].label == "HUMAN"]
    machines = [o for o in outcomes if o[0].label == "MACHINE"]
    times = [o[2] / 1000 for o in outcomes]
    human_times = [o[2] / 1000 for o in humans]
    after = [o[2] / 1000 - o[0].speech_end for o in humans if o[1] == "HUMAN"]
    return {
        "accuracy %": 100 * sum(o[1] == o[0].label for o in outcomes) / len(outcomes),
        "humans -> MACHINE %": 100 * sum(o[1] == "MACHINE" for o in humans) / len(humans),
        "machines -> HUMAN %": 100 * sum(o[1] == "HUMAN" for o in machines) / len(machines),
        "NOTSURE %": 100 * sum(o[1] == "NOTSURE" for o in outcomes) / len(outcomes),
        "median decision s": statistics.median(times),
        "p90 decision s": p90(times),
        "median human decision s": statistics.median(human_times),
        "p90 human decision s": p90(human_times),
        "p90 HUMAN after greeting s": p90(after),
        "CPU % of a core/call": 100
        * sum(o[3] for o in outcomes)
        / (sum(o[4] for o in outcomes) / 1000),
    }


def table(title: str, a: dict[str, float], b: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"{'':28}{'aiopbx':>10}{'app_amd-style':>15}{'ratio':>8}")
    for key in a:
        ratio = f"{a[key] / b[key]:.2f}" if b[key] else "-"
        print(f"{key:28}{a[key]:10.2f}{b[key]:15.2f}{ratio:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=100, help="people (and as many machines) per engine"
    )
    parser.add_argument("--seed", type=int, default=31337)
    args = parser.parse_args()
    t0 = time.monotonic()
    calls = build(draw(args.seed, args.calls, args.calls, ENGINES, BENCH))
    print(
        f"corpus: {len(calls)} calls from {', '.join(ENGINES)} built in "
        f"{time.monotonic() - t0:.0f} s (seed {args.seed})"
    )
    a = run(calls, ours)
    b = run(calls, lambda audio: app_amd(audio))
    worst = 100.0
    for engine in ENGINES:
        fa = measure([o for o in a if o[0].engine == engine])
        worst = min(worst, fa["accuracy %"])
        table(f"held out: {engine}", fa, measure([o for o in b if o[0].engine == engine]))
    table("overall", measure(a), measure(b))
    print(f"\nworst fold accuracy (aiopbx): {worst:.2f} %")


if __name__ == "__main__":
    main()
