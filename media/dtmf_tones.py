"""DTMF tones: the keypad's frequency pairs, and synthesized digits (test signals,
in-band sending, benchmarks). The detector is `media.dtmf`.

A digit is two sines sent together, one from the low group (the keypad row) and
one from the high group (the column).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DBM0_PEAK",
    "DIGITS",
    "HIGH_GROUP",
    "KEYPAD",
    "LOW_GROUP",
    "RATE",
    "DtmfGenerator",
    "dtmf_tone",
    "frequencies",
]

FloatArray = npt.NDArray[np.float64]

RATE = 8000
LOW_GROUP = (697.0, 770.0, 852.0, 941.0)
HIGH_GROUP = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # row = low tone, column = high tone
DIGITS = "0123456789*#ABCD"
# Peak amplitude (16-bit scale) of a 0 dBm0 sine: G.711 μ-law's largest sine
# (peak 8159 on its 14-bit scale, 32636 on 16 bits) is +3.17 dBm0.
DBM0_PEAK = 32636.0 / 10 ** (3.17 / 20)


@functools.cache
def frequencies(digit: str) -> tuple[float, float]:
    """The (low, high) tone pair of a digit. Raises: ValueError for a non-digit."""
    for row, keys in enumerate(KEYPAD):
        column = keys.find(digit.upper())
        if column >= 0 and len(digit) == 1:
            return LOW_GROUP[row], HIGH_GROUP[column]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def dtmf_tone(
    digit: str,
    duration_ms: float,
    *,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    low_deviation: float = 0.0,
    high_deviation: float = 0.0,
    rate: int = RATE,
) -> FloatArray:
    """One digit's tone pair on the 16-bit scale (floats).

    `level_dbm0` is the mean of the two tones' levels; `twist_db` how much stronger the
    low tone is (negative: the high tone is stronger). Raises: ValueError for a non-digit.
    """
    low, high = frequencies(digit)
    t = np.arange(round(duration_ms * rate / 1000)) / rate
    low_amp = DBM0_PEAK * 10 ** ((level_dbm0 + twist_db / 2) / 20)
    high_amp = DBM0_PEAK * 10 ** ((level_dbm0 - twist_db / 2) / 20)
    tone: FloatArray = low_amp * np.sin(2 * np.pi * low * (1 + low_deviation) * t)
    tone += high_amp * np.sin(2 * np.pi * high * (1 + high_deviation) * t)
    return tone


@dataclass(frozen=True, slots=True)
class DtmfGenerator:
    """Synthesizes digit strings as in-band audio: each tone `tone_ms` long, `gap_ms` apart."""

    tone_ms: float = 100.0
    gap_ms: float = 100.0
    level_dbm0: float = -10.0
    twist_db: float = 0.0
    rate: int = RATE

    def generate(self, digits: str) -> npt.NDArray[np.int16]:
        """The audio of `digits` (16-bit), ending with a gap. Raises: ValueError for a non-digit."""
        gap = np.zeros(round(self.gap_ms * self.rate / 1000))
        parts: list[FloatArray] = []
        for digit in digits:
            parts.append(
                dtmf_tone(
                    digit,
                    self.tone_ms,
                    level_dbm0=self.level_dbm0,
                    twist_db=self.twist_db,
                    rate=self.rate,
                )
            )
            parts.append(gap)
        audio = np.concatenate(parts) if parts else np.zeros(0)
        return np.clip(np.round(audio), -32768, 32767).astype(np.int16)
