"""In-band DTMF: a streaming detector over 8 kHz linear audio, and a tone generator.

A DTMF digit is two sines sent together, one from the low group (697, 770, 852,
941 Hz: the keypad row) and one from the high group (1209, 1336, 1477, 1633 Hz:
the column). The receiver figures met here are those of ITU-T Q.24 and Bellcore
(GR-506) receivers: accept a frequency deviation of ±1.5% and reject ±3.5%,
detect tones of 40 ms and more and ignore tones under about 23 ms, accept a
twist of 8 dB with the low group stronger ("normal") and 4 dB with the high group
stronger ("reverse"), work down to 15 dB signal-to-noise, and rarely fire on
speech ("talk-off").

How it works, per 40 ms Hann window every 10 ms:

- One matrix product of the new windows against precomputed complex
  exponentials gives each tone's spectrum on a fine grid (±5% of its nominal
  frequency in 1.25% steps), the second harmonic of each tone, and (a second
  product) the window's power. Goertzel at the nominal frequencies alone cannot
  tell 1.5% from 3.5% at both 697 Hz (10 vs 24 Hz) and 1633 Hz: a 40 ms window's
  bins are 25 Hz wide. The peak of each group is refined by a parabola through
  the log power of its grid neighbours, which gives the tone's frequency within
  a fraction of a hertz, so the decision is made on the relative deviation.
- `classify_window` (pure, table-tested) names the digit of one window or None:
  both tones loud enough, each within `max_deviation` of its nominal frequency,
  the twist within limits, the two tones carrying most of the window's power,
  the other tones of each group and the second harmonics well below.
- `DtmfDetector` joins consecutive windows with the same digit into a run while
  the level stays stable, and estimates the tone's duration from energy-weighted
  coverage: with Hann windows every quarter window, the windows covering any one
  sample sum to 2, so the amplitudes the windows see (a partial window sees the
  tone in proportion to the window weight it covers), divided by the full
  amplitude, sum to duration / hop. Partial windows at the edges therefore count
  as the part of a window they are, and a 20 ms tone measures about 24 ms, not
  40. A run whose duration reaches `min_duration_ms` is reported once it ends.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "DBM0_PEAK",
    "DIGITS",
    "HIGH_GROUP",
    "LOW_GROUP",
    "RATE",
    "DtmfDetector",
    "DtmfDigit",
    "DtmfGenerator",
    "DtmfParams",
    "WindowFeatures",
    "classify_window",
    "detect_digits",
    "dtmf_tone",
    "tone_matrix",
    "window_features",
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


@dataclass(frozen=True, slots=True)
class DtmfParams:
    """Thresholds of the in-band detector; the defaults meet Q.24 / GR-506 receiver figures.

    window_ms: analysis window (Hann); 40 ms resolves 1.5% from 3.5% with margin.
    max_deviation: largest relative frequency error accepted, midway between 1.5% and 3.5%.
    normal_twist_db / reverse_twist_db: how much stronger the low (normal) or high
        (reverse) tone may be; 2 dB of margin over the required 8 dB / 4 dB.
    min_level_dbm0: quietest tone (each of the two) accepted.
    min_tone_share: the two tones' share of the window's power (talk-off: speech
        spreads its power over many harmonics; 15 dB SNR leaves a tone pair 97%).
    other_tone_db: the other tones of each group at least this far below its peak.
    harmonic_db: each tone's second harmonic at least this far below the tone.
    max_spread: largest change of a tone's frequency (relative) within one digit.
    drop_db: a window this much weaker than the digit's peak ends the digit.
    min_duration_ms: shortest tone reported, between the 23 ms to ignore and the
        40 ms to detect (a 23 ms tone measures about 27 ms, a 40 ms tone 40 ms).
    batch_ms: audio is analysed once this much has arrived (numpy costs per call,
        not per window: 80 ms batches keep a channel near 0.05% of a core); a digit
        is reported up to this much later.
    """

    window_ms: float = 40.0
    max_deviation: float = 0.025
    normal_twist_db: float = 10.0
    reverse_twist_db: float = 6.0
    min_level_dbm0: float = -38.0
    min_tone_share: float = 0.8
    other_tone_db: float = 12.0
    harmonic_db: float = 12.0
    max_spread: float = 0.01
    drop_db: float = 6.0
    min_duration_ms: float = 32.0
    batch_ms: float = 80.0


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A detected digit: `start_ms` from the start of the stream, `duration_ms` as measured."""

    digit: str
    start_ms: float
    duration_ms: float


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """What one analysis window shows; powers are squared amplitudes (a sine of peak A: A**2).

    low/high: index (0..3) of the strongest tone of each group; *_deviation its measured
    frequency relative to nominal (0.015 = 1.5% high); *_power its power; *_other the
    strongest other tone of the group at its nominal frequency; *_harmonic the power at
    twice the tone's nominal frequency; energy the whole window's power (a pure tone
    pair: low_power + high_power).
    """

    low: int
    high: int
    low_deviation: float
    high_deviation: float
    low_power: float
    high_power: float
    low_other: float
    high_other: float
    low_harmonic: float
    high_harmonic: float
    energy: float


def _db(ratio_db: float) -> float:
    return float(10 ** (ratio_db / 10))


def classify_window(f: WindowFeatures, p: DtmfParams) -> str | None:
    """The digit one window shows, or None; pure, so it is tested with a table."""
    min_power = (DBM0_PEAK * 10 ** (p.min_level_dbm0 / 20)) ** 2
    if f.low_power < min_power or f.high_power < min_power:
        return None
    if abs(f.low_deviation) > p.max_deviation or abs(f.high_deviation) > p.max_deviation:
        return None
    if f.low_power > f.high_power * _db(p.normal_twist_db):
        return None
    if f.high_power > f.low_power * _db(p.reverse_twist_db):
        return None
    if f.low_power + f.high_power < p.min_tone_share * f.energy:
        return None
    if f.low_other * _db(p.other_tone_db) > f.low_power:
        return None
    if f.high_other * _db(p.other_tone_db) > f.high_power:
        return None
    if f.low_harmonic * _db(p.harmonic_db) > f.low_power:
        return None
    if f.high_harmonic * _db(p.harmonic_db) > f.high_power:
        return None
    return KEYPAD[f.low][f.high]


# The analysis grid: each tone from -5% to +5% of nominal in 1.25% steps.
_GRID = np.linspace(-0.05, 0.05, 9)
_STEP = float(_GRID[1] - _GRID[0])
_CENTER = len(_GRID) // 2
_TONES = np.array(LOW_GROUP + HIGH_GROUP)
# The screen: each low tone at nominal, each high tone at -2%, 0, +2% (a 40 ms Hann
# window's main lobe is ±50 Hz: 2.5% of 941 Hz is 24 Hz, but of 1633 Hz 41 Hz).
_SCREEN = np.concatenate(
    [np.array(LOW_GROUP), (np.array(HIGH_GROUP)[:, None] * [0.98, 1, 1.02]).ravel()]
)
_SCREEN_LOW = len(LOW_GROUP)
# A window can only show a digit if its screen says the pair has this much of min_tone_share:
# a tone 1.5% off lies at most 0.65 bin from the nearest screen frequency (-2.6 dB), so an
# accepted pair keeps over 0.55 of its power on the screen (tones 2-3% off may lose more:
# the screen, not classify_window, rejects some of those).
_SCREEN_SHARE = 0.5


@functools.cache
def _hann(n: int) -> FloatArray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic: a quarter apart sum to 2


def tone_matrix(freqs: npt.ArrayLike, n: int) -> npt.NDArray[np.float32]:
    """Columns cos|sin of Hann-weighted sines at `freqs`, scaled so that a sine of peak
    amplitude A at a column's frequency gives re**2 + im**2 == A**2."""
    window = _hann(n)
    phase = 2 * np.pi * np.outer(np.arange(n), np.asarray(freqs, dtype=np.float64)) / RATE
    matrix = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
    out: npt.NDArray[np.float32] = (matrix * (window * 2.0 / window.sum())[:, None]).astype(
        np.float32
    )
    return out


def _power_weights(n: int) -> npt.NDArray[np.float32]:
    """`frames**2 @ weights`: the window's power on the tone scale (a pure sine: A**2)."""
    window = _hann(n)
    out: npt.NDArray[np.float32] = (2.0 * window**2 / (window**2).sum()).astype(np.float32)
    return out


def _refine(grid: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Relative deviation and peak power of each row of tone grids (parabola on log power).

    A peak on the edge of the grid is reported at the edge: beyond any accepted deviation.
    """
    rows = np.arange(grid.shape[0])
    g = grid.argmax(axis=1)
    inner = np.minimum(np.maximum(g, 1), len(_GRID) - 2)
    logs = np.log(np.maximum(grid, 1e-12))
    a, b, c = logs[rows, inner - 1], logs[rows, inner], logs[rows, inner + 1]
    curve = a - 2 * b + c
    edge = (g != inner) | (curve >= 0)
    delta = np.where(edge, 0.0, 0.5 * (a - c) / np.where(curve < 0, curve, -1.0))
    deviation = _GRID[g] + delta * _STEP
    power = np.where(edge, grid[rows, g], np.exp(b - 0.25 * (a - c) * delta))
    return deviation, power


def window_features(powers: FloatArray, energy: FloatArray) -> list[WindowFeatures]:
    """The features of windows from their powers (rows: 8 tones x grid, then 8 harmonics)."""
    m, g = powers.shape[0], len(_GRID)
    rows = np.arange(m)
    grid = powers[:, : 8 * g].reshape(m, 8, g)
    harmonics = powers[:, 8 * g :]
    peaks = grid.max(axis=2)
    low = peaks[:, :4].argmax(axis=1)
    high = peaks[:, 4:].argmax(axis=1)
    low_dev, low_power = _refine(grid[rows, low])
    high_dev, high_power = _refine(grid[rows, 4 + high])
    nominal = grid[:, :, _CENTER].copy()
    nominal[rows, low] = 0.0
    nominal[rows, 4 + high] = 0.0
    columns = (
        low,
        high,
        low_dev,
        high_dev,
        low_power,
        high_power,
        nominal[:, :4].max(axis=1),
        nominal[:, 4:].max(axis=1),
        harmonics[rows, low],
        harmonics[rows, 4 + high],
        energy,
    )
    return [WindowFeatures(*row) for row in zip(*(col.tolist() for col in columns), strict=True)]


@dataclass(slots=True)
class _Run:
    """Consecutive windows showing one digit, plus the partial windows on either side.

    `matrix` measures the pair at the frequencies the first window found, so every
    window of the run (partial ones too) is measured the same way.
    """

    digit: str
    matrix: npt.NDArray[np.float32]
    peak: float = 0.0
    centers: list[float] = field(default_factory=list)  # window centres, ms
    levels: list[float] = field(default_factory=list)  # amplitude of the pair per window
    low_devs: list[float] = field(default_factory=list)
    high_devs: list[float] = field(default_factory=list)
    after: int = 0  # windows added after the run ended
    misses: int = 0  # steady windows that showed no digit since the last passing one

    batch: int = -1  # the batch `batch_levels` belong to
    batch_levels: list[float] = field(default_factory=list)

    def level(self, frame: npt.NDArray[np.float32]) -> float:
        """The pair's amplitude (sum of the two tones') in one window."""
        re_l, re_h, im_l, im_h = (frame @ self.matrix).tolist()
        return math.hypot(re_l, im_l) + math.hypot(re_h, im_h)

    def level_at(self, frames: npt.NDArray[np.float32], batch: int, j: int) -> float:
        """`level(frames[j])`, computed for the whole batch with one product."""
        if batch != self.batch:
            x = frames @ self.matrix
            x *= x
            self.batch_levels = (np.sqrt(x[:, 0] + x[:, 2]) + np.sqrt(x[:, 1] + x[:, 3])).tolist()
            self.batch = batch
        return self.batch_levels[j]

    def add(self, center: float, level: float) -> None:
        self.centers.append(center)
        self.levels.append(level)


class DtmfDetector:
    """Streaming in-band DTMF detector: feed 8 kHz samples in frames of any size.

    `feed` returns the digits that ended in the audio fed so far (a digit is
    reported about 40 ms after its tone ends, once its duration is known);
    `flush` reports a digit still sounding at the end of the stream.

    Raises:
        ValueError: a window that is not a whole multiple of 4 samples.
    """

    def __init__(self, params: DtmfParams = DtmfParams()) -> None:
        self.params = params
        self._n = round(params.window_ms * RATE / 1000)
        if self._n % 4 or self._n < 8:
            raise ValueError("window_ms must be a positive multiple of 0.5 ms")
        self._hop = self._n // 4  # Hann windows a quarter apart sum to 2 everywhere
        self._hop_ms = 1000 * self._hop / RATE
        freqs = np.concatenate([(_TONES[:, None] * (1 + _GRID[None, :])).ravel(), 2 * _TONES])
        self._fine = tone_matrix(freqs, self._n)
        self._fine_half = freqs.size
        self._screen = tone_matrix(_SCREEN, self._n)
        self._screen_half = _SCREEN.size
        self._weights = _power_weights(self._n)
        self._min_power = (DBM0_PEAK * 10 ** (params.min_level_dbm0 / 20)) ** 2
        self._share = _SCREEN_SHARE * params.min_tone_share
        # Samples from three hops before the next window on: a new run measures the
        # windows before it too.
        # The stream is taken to follow silence, so a tone at its very start is seen
        # by partial windows like any other (the first windows start before sample 0).
        self._lead = self._n - self._hop
        self._buffer = np.zeros(self._lead, dtype=np.float32)
        self._offset = 0  # index in _buffer of the next window's first sample
        self._windows = 0  # windows analysed so far
        self._run: _Run | None = None
        self._closing: list[_Run] = []
        # Audio is analysed in batches: numpy's cost per call, not per window, dominates.
        self._batch = round(params.batch_ms * RATE / 1000)
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_size = 0

    def feed(self, samples: npt.ArrayLike) -> list[DtmfDigit]:
        """Analyse more audio (int16 or float on the 16-bit scale); return the digits that ended."""
        n, hop = self._n, self._hop
        frame = np.asarray(samples, dtype=np.float32).ravel()
        self._pending.append(frame)
        self._pending_size += frame.size
        if self._pending_size < self._batch:
            return []
        buffer = np.concatenate([self._buffer, *self._pending])
        self._pending.clear()
        self._pending_size = 0
        count = (buffer.size - self._offset - n) // hop + 1
        if count <= 0:
            self._buffer = buffer
            return []
        frames: npt.NDArray[np.float32] = np.ndarray(
            (count, n), np.float32, buffer, 4 * self._offset, (4 * hop, 4)
        )
        screen = frames @ self._screen
        energy: FloatArray = ((frames * frames) @ self._weights).astype(np.float64)
        screen *= screen
        power = screen[:, : self._screen_half] + screen[:, self._screen_half :]
        low = power[:, :_SCREEN_LOW].max(axis=1)
        high = power[:, _SCREEN_LOW:].max(axis=1)
        candidate = (low + high >= self._share * energy) & (
            np.minimum(low, high) >= 0.25 * self._min_power
        )
        digits: list[DtmfDigit] = []
        if self._run is not None or self._closing or candidate.any():
            self._scan(buffer, frames, candidate.tolist(), energy, digits)
        self._windows += count
        keep = max(0, self._offset + count * hop - 3 * hop)
        self._buffer = buffer[keep:]
        self._offset = self._offset + count * hop - keep
        return digits

    def flush(self) -> list[DtmfDigit]:
        """End of stream: report a digit still in progress (silence is fed to close it)."""
        return self.feed(np.zeros(2 * self._n + self._batch))

    def _scan(
        self,
        buffer: npt.NDArray[np.float32],
        frames: npt.NDArray[np.float32],
        candidate: list[bool],
        energy: FloatArray,
        out: list[DtmfDigit],
    ) -> None:
        """The slow path: windows that may show a digit, or belong to a run."""
        chosen = [j for j, c in enumerate(candidate) if c]
        found: dict[int, WindowFeatures] = {}
        if chosen:
            fine = (frames[chosen] @ self._fine).astype(np.float64)
            fine *= fine
            power = fine[:, : self._fine_half] + fine[:, self._fine_half :]
            found = dict(zip(chosen, window_features(power, energy[chosen]), strict=True))
        for j in range(frames.shape[0]):
            center = 1000 * ((self._windows + j) * self._hop + self._n / 2 - self._lead) / RATE
            features = found.get(j)
            digit = None if features is None else classify_window(features, self.params)
            self._close_runs(center, frames, j, out)
            run = self._run
            if run is not None:
                level = run.level_at(frames, self._windows, j)
                steady = level >= run.peak * 10 ** (-self.params.drop_db / 20)
                if digit == run.digit and steady:
                    assert features is not None
                    self._extend(run, center, level, features)
                    continue
                if digit is None and steady and run.misses == 0:
                    # One window at a threshold's edge (twist, share) while the level holds:
                    # keep the run open for one more window rather than split the digit.
                    run.add(center, level)
                    run.misses = 1
                    continue
                run.add(center, level)
                run.after = 1
                self._closing.append(run)
                self._run = None
            if digit is None or features is None:
                continue
            f = features
            freqs = [
                LOW_GROUP[f.low] * (1 + f.low_deviation),
                HIGH_GROUP[f.high] * (1 + f.high_deviation),
            ]
            run = _Run(digit, tone_matrix(freqs, self._n))
            start = self._offset + j * self._hop
            for back in (3, 2, 1):  # the partial windows before it
                if start - back * self._hop >= 0:
                    first = start - back * self._hop
                    past = buffer[first : first + self._n]
                    run.add(center - back * self._hop_ms, run.level(past))
            self._extend(run, center, run.level_at(frames, self._windows, j), f)
            self._run = run

    def _close_runs(
        self, center: float, frames: npt.NDArray[np.float32], j: int, out: list[DtmfDigit]
    ) -> None:
        """Partial windows after a run's end count for its duration; three of them finish it."""
        still: list[_Run] = []
        for run in self._closing:
            run.add(center, run.level_at(frames, self._windows, j))
            run.after += 1
            if run.after >= 3:
                self._finish(run, out)
            else:
                still.append(run)
        self._closing = still

    @staticmethod
    def _extend(run: _Run, center: float, level: float, f: WindowFeatures) -> None:
        run.add(center, level)
        run.peak = max(run.peak, level)
        run.misses = 0
        run.low_devs.append(f.low_deviation)
        run.high_devs.append(f.high_deviation)

    def _finish(self, run: _Run, out: list[DtmfDigit]) -> None:
        """Measure a finished run and report it if it lasted long enough and held steady."""
        p = self.params
        if max(run.low_devs) - min(run.low_devs) > p.max_spread:
            return
        if max(run.high_devs) - min(run.high_devs) > p.max_spread:
            return
        # Windows before/after showing under 5% of the peak are noise, not tone (at 15 dB
        # SNR a window of noise shows 2-3%; 5 ms of tone at the edge of a window, 5%).
        kept = [
            (c, v) for c, v in zip(run.centers, run.levels, strict=True) if v >= 0.05 * run.peak
        ]
        coverage = sum(v for _, v in kept) / run.peak
        duration = coverage * self._hop_ms
        if duration < p.min_duration_ms:
            return
        centroid = sum(c * v for c, v in kept) / sum(v for _, v in kept)
        out.append(DtmfDigit(run.digit, round(centroid - duration / 2, 1), round(duration, 1)))


def detect_digits(samples: npt.ArrayLike, params: DtmfParams = DtmfParams()) -> list[DtmfDigit]:
    """Run the detector over a whole recording (8 kHz, 16-bit scale) and return its digits."""
    detector = DtmfDetector(params)
    return detector.feed(samples) + detector.flush()


def _frequencies(digit: str) -> tuple[float, float]:
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
    low, high = _frequencies(digit)
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
