"""AMD accuracy, speed and cost: aiopbx's detector against an app_amd-style reference.

Builds a synthetic corpus of answered calls (tests/media/amd_corpus.py: espeak-ng
through a 300–3400 Hz band, gain change, noise at 15–40 dB SNR, G.711, random
lead-in 0.2–1.0 s) with phrases, voices, speeds and a seed that the tests do not
use — the detector was developed on the tests' set only. Runs both detectors on
the same audio and prints, for each: accuracy, humans classed as machines,
machines classed as humans, NOTSURE rate, median and p90 decision time, and CPU
per second of audio fed (= share of one core per concurrent call).

    python benchmarks/amd.py                 # 200 humans + 200 machines
    python benchmarks/amd.py --calls 100 --seed 7

Not a test: it asserts nothing, it prints. Needs espeak-ng and sox.
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
from tests.media.amd_corpus import Call, human_call, machine_call  # noqa: E402

HUMANS = [
    "Hallo?", "Hey, hello?", "Yes, speaking.", "Hi there.", "Good evening?", "Hello, Anna here.",
    "Who's calling?", "Yes, hello?", "Hi, this is Tom.", "Hello, yes?", "Mm, hello?", "Speaking.",
]  # fmt: skip
MACHINES = [
    "Hey, it's Dave. Can't get to the phone, leave me a message and I'll get back to you.",
    "You have reached the voicemail of Laura Chen. Please leave your name, number and a short "
    "message.",
    "Hi! You've got Pete and Maria. We're out, so leave a message at the beep.",
    "Welcome to the mailbox of extension four two one. The subscriber is unavailable.",
    "Hello, you've reached Green Valley Dental. Our office is closed. Please call again "
    "during business hours.",
    "Sorry, nobody can answer right now. Leave a message after the tone and we will return "
    "your call.",
    "This is Jim. I'm away from my desk. Leave a message.",
    "Your call has been forwarded to an automatic voice message system.",
]
VOICES = [
    ("en-us", 140), ("en-gb-scotland", 170), ("en-029", 160), ("en-gb-x-rp+m3", 190),
    ("en-us+f2", 175), ("en-gb+f4", 155), ("en-us-nyc", 200), ("en+m7", 150),
]  # fmt: skip


def build(n: int, seed: int) -> list[Call]:
    rng = np.random.default_rng(seed)
    calls: list[Call] = []
    for i in range(n):
        voice, speed = VOICES[int(rng.integers(len(VOICES)))]
        speed += int(rng.integers(-15, 16))
        calls.append(human_call(rng, f"h{i}", HUMANS, voice, speed, float(rng.uniform(15, 40))))
        voice, speed = VOICES[int(rng.integers(len(VOICES)))]
        speed += int(rng.integers(-15, 16))
        snr = float(rng.uniform(15, 40))
        calls.append(machine_call(rng, f"m{i}", MACHINES, voice, speed, snr, rng.random() < 0.6))
    return calls


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


def measure(calls: list[Call], detect: Detector) -> dict[str, float]:
    right = h2m = m2h = unsure = 0
    times: list[int] = []
    cpu = 0.0
    fed_ms = 0
    for call in calls:
        t0 = time.process_time()
        result, at_ms, _, fed = detect(call.audio)
        cpu += time.process_time() - t0
        fed_ms += fed
        times.append(at_ms)
        right += result == call.label
        unsure += result == "NOTSURE"
        h2m += call.label == "HUMAN" and result == "MACHINE"
        m2h += call.label == "MACHINE" and result == "HUMAN"
    humans = sum(c.label == "HUMAN" for c in calls)
    machines = len(calls) - humans
    times.sort()
    return {
        "accuracy %": 100 * right / len(calls),
        "humans -> MACHINE %": 100 * h2m / humans,
        "machines -> HUMAN %": 100 * m2h / machines,
        "NOTSURE %": 100 * unsure / len(calls),
        "median decision s": statistics.median(times) / 1000,
        "p90 decision s": times[int(0.9 * (len(times) - 1))] / 1000,
        "CPU % of a core/call": 100 * cpu / (fed_ms / 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="humans (and as many machines)")
    parser.add_argument("--seed", type=int, default=31337)
    args = parser.parse_args()
    t0 = time.monotonic()
    calls = build(args.calls, args.seed)
    print(f"corpus: {len(calls)} calls built in {time.monotonic() - t0:.0f} s (seed {args.seed})")
    a = measure(calls, ours)
    b = measure(calls, lambda audio: app_amd(audio))
    print(f"{'':24}{'aiopbx':>10}{'app_amd-style':>15}{'ratio':>8}")
    for key in a:
        ratio = f"{a[key] / b[key]:.2f}" if b[key] else "-"
        print(f"{key:24}{a[key]:10.2f}{b[key]:15.2f}{ratio:>8}")


if __name__ == "__main__":
    main()
