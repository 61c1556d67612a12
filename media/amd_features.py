"""Per-frame features for answering-machine detection: level, noise floor, voicing, tone.

Each 20 ms frame of 8 kHz audio is reduced to a few numbers that survive what
a telephone line does to a voice:

- `level_db`: frame power in dBFS. Never used alone: a gain change on the line
  moves speech and noise together, so activity is judged against
- `floor_db`: the line's noise floor, tracked from below. It follows quiet
  frames down at once and up within seconds; it climbs only slowly through
  loud voiced frames, and faster through loud frames that are not voiced (a
  noise step is aperiodic, speech is not), so neither a loud talker lifts it
  nor a noisier line leaves it behind. This is the *level steadiness* cue:
  what stays put is the line, what moves above it is the talker.
- `periodicity`: the peak normalized autocorrelation for pitch periods of
  2.5–20 ms (50–400 Hz), over 40 ms. Voiced speech scores 0.6–0.95 even
  after the 300–3400 Hz band filter has removed the fundamental (its harmonics
  keep the period) and after G.711 quantization; hiss, hum-free line noise and
  clicks score low. A word needs voiced frames, so noise bursts are no words.
- `tone_hz` and `tone_purity`: the strongest frequency of the frame and the
  share of the frame's power within ±2 bins of it (Hann window, 256-point FFT,
  31.25 Hz bins). A beep puts nearly all its power in one peak (purity > 0.9
  even at 15 dB SNR); a vowel spreads it over several harmonics and formants.
  This is the *spectral steadiness* cue, made temporal by the tracker, which
  asks the peak to stay put for a minimum time.

Cost: two small real FFTs and a handful of vector operations per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGITAL_SILENCE_DB",
    "FRAME_SAMPLES",
    "RATE",
    "FeatureExtractor",
    "FloorParams",
    "FrameFeatures",
]

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
_FFT_TONE = 256
_FFT_PITCH = 512  # >= 320-sample window + longest lag: linear, not circular, correlation
_MIN_LAG = 20  # 400 Hz
_MAX_LAG = 160  # 50 Hz
_FLOOR_DB = -90.0  # frames quieter than this count as this
#: Frames quieter than this are digital silence (a lost packet filled with zeros, a
#: phone's silence suppression), not the line: they leave the floor where it is. A
#: real line's noise (and G.711's quantization of it) is louder.
DIGITAL_SILENCE_DB = -70.0
_FULL_SCALE_POWER = 32768.0**2


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """What the detector knows about one 20 ms frame (see the module docstring)."""

    level_db: float
    floor_db: float
    periodicity: float
    tone_hz: float
    tone_purity: float


@dataclass(frozen=True, slots=True)
class FloorParams:
    """How the noise floor follows the line (dB per 20 ms frame).

    Attributes:
        fall: fraction of the distance covered per frame when the frame is quieter
            than the floor (0.3: a quieter line is found in ~100 ms).
        rise_quiet: rise per frame when an aperiodic frame is above the floor but
            within `active_db` of it (line noise drifting up): 0.25 dB = 12.5 dB/s.
        rise_unvoiced: rise per frame for a loud frame that is not voiced (a step
            in line noise, or a fricative): 0.15 dB = 7.5 dB/s.
        rise_voiced: rise per frame for a voiced frame, loud or not (speech): 0.01 dB.
        active_db: a frame this far above the floor is loud.
        voiced: periodicity above which a frame counts as voiced.
    """

    fall: float = 0.3
    rise_quiet: float = 0.25
    rise_unvoiced: float = 0.15
    rise_voiced: float = 0.01
    active_db: float = 9.0
    voiced: float = 0.5


class FeatureExtractor:
    """Turns consecutive 160-sample frames into `FrameFeatures` (stateful: floor, last frame)."""

    def __init__(self, floor: FloorParams | None = None) -> None:
        self._p = floor if floor is not None else FloorParams()
        self._previous = np.zeros(FRAME_SAMPLES)
        self._floor: float | None = None
        self._hann = np.hanning(FRAME_SAMPLES)
        lags = np.arange(_MIN_LAG, _MAX_LAG + 1)
        self._lags = lags
        n = 2 * FRAME_SAMPLES
        self._head_end = n - lags  # x[0 : n-lag] overlaps x[lag : n]

    def __call__(self, frame: npt.ArrayLike) -> FrameFeatures:
        """Features of the next frame (160 samples on the 16-bit scale; shorter is padded)."""
        x = np.asarray(frame, dtype=np.float64)
        if x.size != FRAME_SAMPLES:
            x = np.resize(np.concatenate([x, np.zeros(max(0, FRAME_SAMPLES - x.size))]), 160)
        power = float(np.dot(x, x)) / FRAME_SAMPLES
        level = max(_FLOOR_DB, 10.0 * math.log10(power / _FULL_SCALE_POWER + 1e-12))
        window = np.concatenate([self._previous, x])
        self._previous = x
        periodicity = self._periodicity(window)
        tone_hz, purity = self._tone(x)
        floor = self._update_floor(level, periodicity)
        return FrameFeatures(level, floor, periodicity, tone_hz, purity)

    def _periodicity(self, window: npt.NDArray[np.float64]) -> float:
        energy = float(np.dot(window, window))
        if energy <= 1e-3:
            return 0.0
        spectrum = np.fft.rfft(window, _FFT_PITCH)
        corr = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, _FFT_PITCH)
        cum = np.cumsum(window * window)
        head = cum[self._head_end - 1]  # energy of x[0 : n-lag]
        tail = cum[-1] - cum[self._lags - 1]  # energy of x[lag : n]
        norm = np.sqrt(head * tail) + 1e-9 * energy
        return float(np.max(corr[self._lags] / norm))

    def _tone(self, x: npt.NDArray[np.float64]) -> tuple[float, float]:
        spectrum = np.fft.rfft(x * self._hann, _FFT_TONE)
        power = spectrum.real**2 + spectrum.imag**2
        power[0] = 0.0  # DC says nothing about a tone
        total = float(power.sum())
        if total <= 1e-6:
            return 0.0, 0.0
        k = int(np.argmax(power))
        lo, hi = max(1, k - 2), min(power.size, k + 3)
        purity = float(power[lo:hi].sum()) / total
        offset = 0.0
        if 0 < k < power.size - 1:  # parabolic interpolation of the peak on a log scale
            a, b, c = np.log(power[k - 1 : k + 2] + 1e-12)
            denom = a - 2.0 * b + c
            offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return (k + offset) * RATE / _FFT_TONE, purity

    def _update_floor(self, level: float, periodicity: float) -> float:
        """Move the floor toward this frame; returns the floor *before* the update."""
        p = self._p
        if level < DIGITAL_SILENCE_DB:
            if self._floor is None:
                self._floor = DIGITAL_SILENCE_DB
            return self._floor
        if self._floor is None:
            self._floor = level
            return level
        floor = self._floor
        if level < floor:
            self._floor = floor + p.fall * (level - floor)
        elif periodicity >= p.voiced:
            self._floor = min(level, floor + p.rise_voiced)
        elif level < floor + p.active_db:
            self._floor = min(level, floor + p.rise_quiet)
        else:
            self._floor = floor + p.rise_unvoiced
        return floor
