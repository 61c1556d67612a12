"""In-band DTMF detector conformance and cost: the receiver figures of issue 4, measured.

Each row feeds random digit strings (random digit, level -5..-25 dBm0 unless the row
varies it, gaps of 45-120 ms, a random number of leading samples so tones fall
anywhere against the analysis windows, light noise at 35 dB SNR, and a G.711 μ-law
or A-law round trip) through `media.dtmf.DtmfDetector` in 20 ms frames, and counts
digits found at the right place (start within 20 ms) and digits found where there
was none. Rows: tone duration 20..100 ms, twist, frequency deviation, SNR (white
noise). Talk-off: espeak-ng speech of phrases, voices, speeds and a seed that the
tests do not use, telephone-band (sox), random level, G.711; false digits per hour.
CPU: process time per 20 ms frame on speech, on silence with noise, and on
back-to-back digits, and the share of one core per channel that makes.

    python benchmarks/dtmf.py                  # 40 digits per row
    python benchmarks/dtmf.py --digits 100 --seed 11

Not a test: it asserts nothing, it prints. Speech rows need espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media.dtmf import DtmfDetector, DtmfDigit  # noqa: E402
from media.dtmf_tones import DIGITS, dtmf_tone  # noqa: E402
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode  # noqa: E402
from tests.media.amd_corpus import speak  # noqa: E402

Audio = np.ndarray
FRAME = 160

PHRASES = [
    "Hi, I'm calling about the invoice you sent last Tuesday.",
    "Could you transfer me to the billing department, please?",
    "Our new opening hours are seven to nine on weekdays.",
    "Remember to bring your passport and two photographs.",
    "I would like to book a table for four at eight o'clock.",
    "The weather will be cloudy with occasional showers in the north.",
    "Your account balance is one hundred and twenty dollars and fifty cents.",
    "Yes, that's right, the delivery should arrive on Thursday morning.",
    "Please say or enter your seven digit customer number.",
    "Mmm, hello, hello? Can you hear me? I think the line is bad.",
    "Twenty nine, thirty, thirty one, forty four, fifty seven, ninety nine.",
    "Welcome to the conference, please state your name after the beep.",
]
VOICES = [
    ("en-us", 150), ("en-gb-scotland", 165), ("en-029", 175), ("en-gb-x-rp+m3", 190),
    ("en-us+f2", 170), ("en-gb+f4", 160), ("en-us-nyc", 200), ("en+m7", 145),
    ("en+f5", 180), ("en-us+m2", 135),
]  # fmt: skip


def g711(rng: np.random.Generator, x: Audio) -> Audio:
    clipped = np.clip(np.round(x), -32768, 32767)
    if rng.random() < 0.5:
        return ulaw_decode(ulaw_encode(clipped)).astype(float)
    return alaw_decode(alaw_encode(clipped)).astype(float)


def detect(x: Audio) -> list[DtmfDigit]:
    detector = DtmfDetector()
    out: list[DtmfDigit] = []
    for i in range(0, x.size, FRAME):
        out += detector.feed(x[i : i + FRAME])
    return out + detector.flush()


def trial(
    rng: np.random.Generator,
    count: int,
    tone_ms: float,
    *,
    twist_db: float = 0.0,
    deviation: tuple[float, float] = (0.0, 0.0),
    snr_db: float = 35.0,
    level: tuple[float, float] = (-25.0, -5.0),
) -> tuple[int, int, int]:
    """(digits sent, found right, found where none was) for `count` random digits."""
    parts: list[Audio] = [np.zeros(int(rng.integers(400, 800)))]
    truth: list[tuple[str, float]] = []
    at = parts[0].size
    levels = []
    for _ in range(count):
        digit = DIGITS[int(rng.integers(16))]
        dbm0 = float(rng.uniform(*level))
        tone = dtmf_tone(
            digit,
            tone_ms,
            level_dbm0=dbm0,
            twist_db=twist_db,
            low_deviation=deviation[0],
            high_deviation=deviation[1],
        )
        levels.append(float(np.mean(tone**2)))
        truth.append((digit, 1000 * at / 8000))
        gap = int(rng.integers(360, 960))
        parts += [tone, np.zeros(gap)]
        at += tone.size + gap
    x = np.concatenate(parts)
    noise = math.sqrt(min(levels) / 10 ** (snr_db / 10))
    x = g711(rng, x + rng.standard_normal(x.size) * noise)
    found = detect(x)
    unmatched = list(truth)
    for d in found:
        match = next(
            (t for t in unmatched if t[0] == d.digit and abs(d.start_ms - t[1]) <= 20), None
        )
        if match is not None:
            unmatched.remove(match)
    right = count - len(unmatched)
    return count, right, len(found) - right


Row = tuple[str, str, float, Callable[[float], bool]]


def table_rows(args: argparse.Namespace) -> list[Row]:
    rng = np.random.default_rng(args.seed)
    n = args.digits
    rows: list[Row] = []

    def rate(**kw: object) -> float:
        sent = right = 0
        for _ in range(max(1, n // 10)):
            s, r, _ = trial(rng, 10, **kw)  # type: ignore[arg-type]
            sent, right = sent + s, right + r
        return 100 * right / sent

    accept, reject = (lambda r: r >= 99.0), (lambda r: r <= 1.0)
    anything = lambda r: True  # noqa: E731
    for ms in (20, 23, 25, 30, 35, 40, 50, 70, 100):
        goal = accept if ms >= 40 else reject if ms <= 23 else anything
        rows.append((f"duration {ms} ms", goal_text(goal, accept, reject), rate(tone_ms=ms), goal))
    for tw in (-12, -10, -8, -6, -4, -2, 0, 4, 8, 10, 12, 14, 16):
        goal = accept if -4 <= tw <= 8 else reject if (tw <= -10 or tw >= 14) else anything
        label = f"twist {tw:+d} dB ({'normal' if tw > 0 else 'reverse' if tw < 0 else 'none'})"
        rows.append((label, goal_text(goal, accept, reject), rate(tone_ms=50, twist_db=tw), goal))
    for dev in (-5.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 5.0):
        a = abs(dev)
        goal = accept if a <= 1.5 else reject if a >= 3.5 else anything
        for name, pair in (("both", (dev, dev)), ("low", (dev, 0.0)), ("high", (0.0, dev))):
            r = rate(tone_ms=50, deviation=(pair[0] / 100, pair[1] / 100))
            rows.append((f"deviation {dev:+.1f}% {name}", goal_text(goal, accept, reject), r, goal))
    for snr in (30, 20, 18, 15, 12, 10, 6):
        goal = accept if snr >= 15 else anything
        r = rate(tone_ms=40, snr_db=snr, level=(-15.0, -5.0))
        rows.append((f"SNR {snr} dB (40 ms tones)", goal_text(goal, accept, reject), r, goal))
    return rows


def goal_text(goal: object, accept: object, reject: object) -> str:
    return ">= 99%" if goal is accept else "<= 1%" if goal is reject else "-"


def speech(rng: np.random.Generator) -> Audio:
    """Every phrase in several voices, at a random level and speed, with pauses, through G.711."""
    parts: list[Audio] = []
    for phrase in PHRASES:
        for voice, speed in VOICES:
            x = speak(phrase, voice, speed + int(rng.integers(-15, 16)))
            x = x / np.abs(x).max() * 10 ** float(rng.uniform(3.4, 4.4))
            parts += [x, np.zeros(int(rng.integers(800, 4000)))]
    return g711(rng, np.concatenate(parts))


def cpu_us_per_frame(x: Audio, repeat: int = 3) -> float:
    frames = [x[i : i + FRAME].astype(np.int16) for i in range(0, x.size - FRAME + 1, FRAME)]
    best = math.inf
    for _ in range(repeat):
        detector = DtmfDetector()
        start = time.process_time()
        for frame in frames:
            detector.feed(frame)
        best = min(best, (time.process_time() - start) / len(frames))
    return 1e6 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, default=40, help="digits per row")
    parser.add_argument("--seed", type=int, default=20250607)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed + 1)

    print(f"{'ROW':34} {'GOAL':>8} {'DETECTED':>9}  MET")
    for label, goal, value, ok in table_rows(args):
        met = "" if goal == "-" else "yes" if ok(value) else "NO"
        print(f"{label:34} {goal:>8} {value:8.1f}%  {met}")

    have_tools = shutil.which("espeak-ng") and shutil.which("sox")
    talk = speech(rng) if have_tools else None
    if talk is not None:
        hours = talk.size / 8000 / 3600
        false = detect(talk)
        per_hour = len(false) / hours
        bound = 3.0 / hours  # 95% upper bound when none are seen
        print(
            f"{'talk-off: false digits per hour':34} {'<= 10':>8} {per_hour:8.1f}/h "
            f"{'yes' if per_hour <= 10 else 'NO'}  ({len(false)} in {60 * hours:.1f} min of "
            f"speech; none seen bounds the rate below {bound:.0f}/h at 95%) "
            + "".join(d.digit for d in false)
        )
    else:
        print("talk-off: skipped (espeak-ng or sox missing)")

    quiet = g711(rng, rng.standard_normal(8000 * 60) * 30)
    digits_audio = np.concatenate(
        [np.concatenate([dtmf_tone(DIGITS[i % 16], 60), np.zeros(320)]) for i in range(160)]
    )
    loads = [("silence with noise", quiet), ("back-to-back digits", digits_audio)]
    if talk is not None:
        loads.insert(0, ("speech", talk))
    for name, audio in loads:
        us = cpu_us_per_frame(audio)
        share = 100 * us / 20000
        print(
            f"{'CPU ' + name:34} {'<= 0.1%':>8} {share:8.3f}%  {'yes' if share <= 0.1 else 'NO'}"
            f"  ({us:.1f} us per 20 ms frame, {us / 20:.2f} ms per s of audio)"
        )


if __name__ == "__main__":
    main()
