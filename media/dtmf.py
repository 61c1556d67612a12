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

- Each window is tapered once. A cheap screen (one product: each tone at nominal,
  the high tones also at ±2%, and the window's power) picks the windows that may
  show a pair and, in each group, the tone strongest at nominal. Only those windows
  get the fine analysis, one product per tone pair: the two tones' spectrum on a
  fine grid (±5% of nominal in 1.25% steps) and their second harmonics; the other
  tones' nominal power comes from the screen. Goertzel at the nominal frequencies alone cannot
  tell 1.5% from 3.5% at both 697 Hz (10 vs 24 Hz) and 1633 Hz: a 40 ms window's
  bins are 25 Hz wide. The peak of each group is refined by a parabola through
  the log power of its grid neighbours, which gives the tone's frequency within
  a fraction of a hertz, so the decision is made on the relative deviation.
- `classify_window` (pure, table-tested) names the digit of one window or None
  (the detector runs the same tests, thresholds precomputed, on plain numbers):
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
  40. A run whose duration reaches `min_duration_ms` is reported once it ends:
  three windows after it, and once its batch is analysed, 40 to 120 ms after the
  tone ends. A run measures its pair at the frequencies its first window found,
  rounded to 0.5 Hz so that the columns are cached; in the batches after its first,
  those columns ride on the screen's product.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.dtmf_tones import (
    DBM0_PEAK,
    DIGITS,
    HIGH_GROUP,
    KEYPAD,
    LOW_GROUP,
    RATE,
    frequencies,
)

__all__ = [
    "DBM0_PEAK",
    "DIGITS",
    "HIGH_GROUP",
    "LOW_GROUP",
    "RATE",
    "DtmfDetector",
    "DtmfDigit",
    "DtmfParams",
    "WindowFeatures",
    "classify_window",
    "detect_digits",
    "tone_matrix",
    "window_features",
]

FloatArray = npt.NDArray[np.float64]


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
        not per window); a digit is reported up to this much later: with 80 ms,
        40 to 120 ms after its tone ends.
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


@dataclass(frozen=True, slots=True)
class _Limits:
    """`DtmfParams` as the numbers `classify_window` compares with: powers and factors."""

    min_power: float
    max_deviation: float
    normal_twist: float
    reverse_twist: float
    min_tone_share: float
    other_tone: float
    harmonic: float


@functools.cache
def _limits(p: DtmfParams) -> _Limits:
    return _Limits(
        (DBM0_PEAK * 10 ** (p.min_level_dbm0 / 20)) ** 2,
        p.max_deviation,
        _db(p.normal_twist_db),
        _db(p.reverse_twist_db),
        p.min_tone_share,
        _db(p.other_tone_db),
        _db(p.harmonic_db),
    )


def _passes(
    t: _Limits,
    low_deviation: float,
    high_deviation: float,
    low_power: float,
    high_power: float,
    low_other: float,
    high_other: float,
    low_harmonic: float,
    high_harmonic: float,
    energy: float,
) -> bool:
    """The tests of `classify_window` on plain numbers (the detector's hot path calls it)."""
    return (
        low_power >= t.min_power
        and high_power >= t.min_power
        and abs(low_deviation) <= t.max_deviation
        and abs(high_deviation) <= t.max_deviation
        and low_power <= high_power * t.normal_twist
        and high_power <= low_power * t.reverse_twist
        and low_power + high_power >= t.min_tone_share * energy
        and low_other * t.other_tone <= low_power
        and high_other * t.other_tone <= high_power
        and low_harmonic * t.harmonic <= low_power
        and high_harmonic * t.harmonic <= high_power
    )


def classify_window(f: WindowFeatures, p: DtmfParams) -> str | None:
    """The digit one window shows, or None; pure, so it is tested with a table."""
    ok = _passes(
        _limits(p),
        f.low_deviation,
        f.high_deviation,
        f.low_power,
        f.high_power,
        f.low_other,
        f.high_other,
        f.low_harmonic,
        f.high_harmonic,
        f.energy,
    )
    return KEYPAD[f.low][f.high] if ok else None


# The analysis grid: each tone from -5% to +5% of nominal in 1.25% steps.
_GRID = np.linspace(-0.05, 0.05, 9)
_STEP = float(_GRID[1] - _GRID[0])
_CENTER = len(_GRID) // 2
_TONES = np.array(LOW_GROUP + HIGH_GROUP)
# For a grid peak at g, the three points the parabola goes through; at the edge of the
# grid the peak itself three times (a flat parabola: the peak is reported where it is).
_NEAR = np.array([[g - 1, g, g + 1] if 0 < g < len(_GRID) - 1 else [g] * 3 for g in range(9)])
# Log powers (a, b, c) of those points @ _PARABOLA: the curvature a - 2b + c, (a - c) / 2, b.
_PARABOLA = np.array([[1.0, 0.5, 0.0], [-2.0, 0.0, 1.0], [1.0, -0.5, 0.0]])
_GRID_AT = _GRID.tolist()
# The screen: each tone at nominal, then each high tone at -2% and +2% (a 40 ms Hann
# window's main lobe is ±50 Hz: 2.5% of 941 Hz is 24 Hz, but of 1633 Hz 41 Hz).
_HIGH = np.array(HIGH_GROUP)
_SCREEN = np.concatenate([_TONES, _HIGH * 0.98, _HIGH * 1.02])
_SCREENED = len(_SCREEN)
_SCREEN_GROUPS = np.array([0, len(LOW_GROUP)])  # reduceat: the low group, the high group
# A window can only show a digit if its screen says the pair has this much of min_tone_share:
# a tone 1.5% off lies at most 0.65 bin from the nearest screen frequency (-2.6 dB), so an
# accepted pair keeps over 0.55 of its power on the screen (tones 2-3% off may lose more:
# the screen, not classify_window, rejects some of those).
_SCREEN_SHARE = 0.5
# A run measures its tones at their frequency rounded to this (Hz): the measuring
# columns are cached, and 0.25 Hz off moves a 40 ms window's response by 0.001 dB.
_RUN_RESOLUTION = 0.5


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


@functools.cache
def _taper(n: int) -> npt.NDArray[np.float32]:
    """The Hann window scaled so that a tapered window's sum of squares is its power on
    the tone scale (a pure sine: A**2); the detector tapers each window once."""
    window = _hann(n)
    out: npt.NDArray[np.float32] = (window * math.sqrt(2.0 / (window**2).sum())).astype(np.float32)
    return out


def _sines(freqs: npt.ArrayLike, n: int) -> npt.NDArray[np.float32]:
    """`tone_matrix` for windows tapered by `_taper`: tapered @ _sines == frame @ tone_matrix."""
    window = _hann(n)
    phase = 2 * np.pi * np.outer(np.arange(n), np.asarray(freqs, dtype=np.float64)) / RATE
    scale = 2.0 / window.sum() / math.sqrt(2.0 / (window**2).sum())
    out: npt.NDArray[np.float32] = (
        np.concatenate([np.cos(phase), np.sin(phase)], axis=1) * scale
    ).astype(np.float32)
    out.flags.writeable = False
    return out


@functools.cache
def _screen_sines(n: int) -> npt.NDArray[np.float32]:
    return _sines(_SCREEN, n)


@functools.cache
def _pair_sines(n: int, low: int, high: int) -> npt.NDArray[np.float32]:
    """The fine analysis of one tone pair: its two grids, then its two second harmonics."""
    tones = np.array([LOW_GROUP[low], HIGH_GROUP[high]])
    return _sines(np.concatenate([(tones[:, None] * (1 + _GRID)).ravel(), 2 * tones]), n)


@functools.lru_cache(maxsize=128)
def _run_sines(
    n: int, low: float, high: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The columns that measure a run's pair (see _Run), alone and after the screen's:
    while a run lasts, the screen's product measures it too."""
    pair, screen = _sines([low, high], n), _screen_sines(n)
    half = screen.shape[1] // 2
    both = np.concatenate([screen[:, :half], pair[:, :2], screen[:, half:], pair[:, 2:]], axis=1)
    both.flags.writeable = False
    return pair, both


@functools.cache
def _rows(m: int) -> npt.NDArray[np.intp]:
    return np.arange(m)[:, None]


def _refine(grid: FloatArray) -> list[tuple[float, float]]:
    """Relative deviation and peak power of each row of tone grids (parabola on log power):
    numpy up to each row's parabola, plain floats after (a dozen numpy calls fewer).

    A peak on the edge of the grid is reported at the edge: beyond any accepted deviation.
    """
    g = grid.argmax(axis=1)
    logs = np.log(np.maximum(grid[_rows(grid.shape[0]), _NEAR[g]], 1e-12))
    exp, out = math.exp, []
    for top, (curve, half, log_peak) in zip(g.tolist(), (logs @ _PARABOLA).tolist(), strict=True):
        # A true peak has curve < 0; a flat top (0 / -1e-300) stays where it is.
        delta = half / (curve - 1e-300)
        out.append((_GRID_AT[top] + delta * _STEP, exp(log_peak - half * delta)))
    return out


def window_features(powers: FloatArray, energy: FloatArray) -> list[WindowFeatures]:
    """The features of windows from their powers (rows: 8 tones x grid, then 8 harmonics).

    The tone of each group is the one strongest at its nominal frequency (as the
    detector's screen picks it): in any window that passes, it is also the one whose
    grid peaks highest, the others being 12 dB below at nominal.
    """
    m, g = powers.shape[0], len(_GRID)
    rows = np.arange(m)
    grid = powers[:, : 8 * g].reshape(m, 8, g)
    harmonics = powers[:, 8 * g :]
    nominal = grid[:, :, _CENTER].copy()
    low = nominal[:, :4].argmax(axis=1)
    high = nominal[:, 4:].argmax(axis=1)
    low_tone, high_tone = _refine(grid[rows, low]), _refine(grid[rows, 4 + high])
    nominal[rows, low] = 0.0
    nominal[rows, 4 + high] = 0.0
    arrays = (
        low,
        high,
        nominal[:, :4].max(axis=1),
        nominal[:, 4:].max(axis=1),
        harmonics[rows, low],
        harmonics[rows, 4 + high],
        energy,
    )
    return [
        WindowFeatures(low, high, low_dev, high_dev, low_power, high_power, *rest)
        for (low_dev, low_power), (high_dev, high_power), (low, high, *rest) in zip(
            low_tone, high_tone, zip(*(a.tolist() for a in arrays), strict=True), strict=True
        )
    ]


@dataclass(slots=True)
class _Run:
    """Consecutive windows showing one digit, plus the partial windows on either side.

    `sines` measures the pair at the frequencies the first window found, so every
    window of the run (partial ones too) is measured the same way.
    """

    digit: str
    sines: npt.NDArray[np.float32]
    screen: npt.NDArray[np.float32]  # the screen's columns, then `sines`
    peak: float = 0.0
    centers: list[float] = field(default_factory=list)  # window centres, ms
    levels: list[float] = field(default_factory=list)  # amplitude of the pair per window
    low_devs: list[float] = field(default_factory=list)
    high_devs: list[float] = field(default_factory=list)
    after: int = 0  # windows added after the run ended
    misses: int = 0  # steady windows that showed no digit since the last passing one

    batch: int = -1  # the batch `batch_levels` belong to
    batch_first: int = 0  # the window of the batch `batch_levels` start with
    batch_levels: list[float] = field(default_factory=list)

    def level_at(self, tapered: npt.NDArray[np.float32], batch: int, j: int) -> float:
        """The pair's amplitude (sum of the two tones') in window `j` of `tapered`,
        computed for the rest of the batch with one product (unless the screen's did)."""
        if batch != self.batch:
            self.batch, self.batch_first = batch, j
            hypot = math.hypot
            self.batch_levels = [
                hypot(a, c) + hypot(b, d) for a, b, c, d in (tapered[j:] @ self.sines).tolist()
            ]
        return self.batch_levels[j - self.batch_first]

    def add(self, center: float, level: float) -> None:
        self.centers.append(center)
        self.levels.append(level)


class DtmfDetector:
    """Streaming in-band DTMF detector: feed 8 kHz samples in frames of any size.

    `feed` returns the digits that ended in the audio fed so far (a digit is
    reported 40 to 120 ms after its tone ends, once its duration is known and its
    batch analysed); `flush` reports a digit still sounding at the end of the stream.

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
        self._taper = _taper(self._n)
        self._screen = _screen_sines(self._n)
        self._limits = _limits(params)
        self._share = _SCREEN_SHARE * params.min_tone_share
        self._screen_min = 0.25 * self._limits.min_power
        self._drop = 10 ** (-params.drop_db / 20)
        # The buffer starts three hops before the next window: a new run measures the
        # three windows before it too. The stream is taken to follow silence, so a tone
        # at its very start is seen by partial windows like any other (the first windows
        # start before sample 0).
        self._lead = self._n - self._hop
        self._buffer = np.zeros(3 * self._hop + self._lead, dtype=np.float32)
        self._windows = 0  # windows analysed so far
        self._run: _Run | None = None
        self._closing: list[_Run] = []
        # Audio is analysed in batches: numpy's cost per call, not per window, dominates.
        self._batch = round(params.batch_ms * RATE / 1000)
        self._pending: list[npt.NDArray[np.generic]] = []
        self._pending_size = 0

    def feed(self, samples: npt.ArrayLike) -> list[DtmfDigit]:
        """Analyse more audio (int16 or float on the 16-bit scale); return the digits that ended."""
        frame = np.asarray(samples).ravel()
        self._pending.append(frame)
        self._pending_size += frame.size
        if self._pending_size < self._batch:
            return []
        n, hop = self._n, self._hop
        buffer = np.concatenate([self._buffer, *self._pending], dtype=np.float32)
        self._pending.clear()
        self._pending_size = 0
        count = (buffer.size - 3 * hop - n) // hop + 1
        if count <= 0:
            self._buffer = buffer
            return []
        # The batch's windows and the three before them, each tapered once.
        tapered = np.ndarray((count + 3, n), np.float32, buffer, 0, (4 * hop, 4)) * self._taper
        windows = tapered[3:]
        alive = self._closing if self._run is None else [*self._closing, self._run]
        screen, energy = self._screen_of(windows, alive[0] if len(alive) == 1 else None)
        groups = np.maximum.reduceat(screen, _SCREEN_GROUPS, axis=1).tolist()
        share, floor = self._share, self._screen_min
        chosen = [
            j
            for j, ((low, high), e) in enumerate(zip(groups, energy, strict=True))
            if low + high >= share * e and min(low, high) >= floor
        ]
        digits: list[DtmfDigit] = []
        if self._run is not None or self._closing or chosen:
            found = self._classify(windows, screen, energy, chosen) if chosen else {}
            self._scan(tapered, count, found, digits)
        self._windows += count
        self._buffer = buffer[count * hop :]
        return digits

    def flush(self) -> list[DtmfDigit]:
        """End of stream: report a digit still in progress (silence is fed to close it)."""
        return self.feed(np.zeros(2 * self._n + self._batch))

    def _screen_of(
        self, windows: npt.NDArray[np.float32], run: _Run | None = None
    ) -> tuple[npt.NDArray[np.float32], list[float]]:
        """The power at each screen frequency and the whole power of tapered windows;
        with `run`, its levels in those windows come from the same product."""
        matrix = self._screen if run is None else run.screen
        x = windows @ matrix
        x *= x
        half = matrix.shape[1] // 2
        power = x[:, :half] + x[:, half:]
        if run is not None:
            sqrt = math.sqrt
            run.batch, run.batch_first = self._windows, 3  # the windows after the three before
            run.batch_levels = [sqrt(a) + sqrt(b) for a, b in power[:, _SCREENED:].tolist()]
            power = power[:, :_SCREENED]
        return power, np.einsum("ij,ij->i", windows, windows).tolist()

    def _classify(
        self,
        windows: npt.NDArray[np.float32],
        screen: npt.NDArray[np.float32],
        energy: list[float],
        chosen: list[int],
    ) -> dict[int, tuple[str, float, float]]:
        """`classify_window` of the chosen windows: {window: (digit, low and high deviation)}
        for those that show a digit.

        Each window's tones are those its screen shows strongest at nominal; the windows
        of one pair share one product with the pair's grids and harmonics.
        """
        nominal = screen[:, :8].reshape(-1, 2, 4)
        picks = nominal.argmax(axis=2).tolist()
        others = np.sort(nominal, axis=2)[:, :, 2].tolist()  # the second strongest of each group
        pairs: dict[tuple[int, int], list[int]] = {}
        for j in chosen:
            low, high = picks[j]
            pairs.setdefault((low, high), []).append(j)
        order: list[int] = []
        parts: list[npt.NDArray[np.float32]] = []
        for (low, high), js in pairs.items():
            rows = windows[js[0] : js[-1] + 1] if js[-1] - js[0] < len(js) else windows[js]
            parts.append(rows @ _pair_sines(self._n, low, high))
            order += js
        x = (parts[0] if len(parts) == 1 else np.concatenate(parts)).astype(np.float64)
        x *= x
        half = x.shape[1] // 2
        power = x[:, :half] + x[:, half:]
        g = len(_GRID)
        tones = _refine(power[:, : 2 * g].reshape(-1, g))
        harmonics = power[:, 2 * g :].tolist()
        t = self._limits
        found: dict[int, tuple[str, float, float]] = {}
        for i, j in enumerate(order):
            (low_dev, low_power), (high_dev, high_power) = tones[2 * i], tones[2 * i + 1]
            (low_other, high_other), (low_harm, high_harm) = others[j], harmonics[i]
            if _passes(
                t,
                low_dev,
                high_dev,
                low_power,
                high_power,
                low_other,
                high_other,
                low_harm,
                high_harm,
                energy[j],
            ):
                low, high = picks[j]
                found[j] = (KEYPAD[low][high], low_dev, high_dev)
        return found

    def _scan(
        self,
        tapered: npt.NDArray[np.float32],
        count: int,
        found: dict[int, tuple[str, float, float]],
        out: list[DtmfDigit],
    ) -> None:
        """Join the batch's windows into runs (`tapered`: three windows before the batch first)."""
        batch, hop_ms = self._windows, self._hop_ms
        first = 1000 * (batch * self._hop + self._n / 2 - self._lead) / RATE  # centre, ms
        for j in range(count):
            center = first + j * hop_ms
            window = found.get(j)
            digit = None if window is None else window[0]
            if self._closing:
                self._close_runs(center, tapered, j + 3, out)
            run = self._run
            if run is not None:
                level = run.level_at(tapered, batch, j + 3)
                steady = level >= run.peak * self._drop
                if digit == run.digit and steady:
                    assert window is not None
                    self._extend(run, center, level, window)
                    continue
                if window is None and steady and run.misses == 0:
                    # One window at a threshold's edge (twist, share) while the level holds:
                    # keep the run open for one more window rather than split the digit.
                    run.add(center, level)
                    run.misses = 1
                    continue
                run.add(center, level)
                run.after = 1
                self._closing.append(run)
                self._run = None
            if window is None:
                continue
            low, high = frequencies(window[0])
            r = _RUN_RESOLUTION
            low, high = low * (1 + window[1]), high * (1 + window[2])
            run = _Run(window[0], *_run_sines(self._n, round(low / r) * r, round(high / r) * r))
            for back in (3, 2, 1):  # the partial windows before it
                run.add(center - back * hop_ms, run.level_at(tapered, batch, j + 3 - back))
            self._extend(run, center, run.level_at(tapered, batch, j + 3), window)
            self._run = run

    def _close_runs(
        self,
        center: float,
        tapered: npt.NDArray[np.float32],
        j: int,
        out: list[DtmfDigit],
    ) -> None:
        """Partial windows after a run's end count for its duration; three of them finish it."""
        still: list[_Run] = []
        for run in self._closing:
            run.add(center, run.level_at(tapered, self._windows, j))
            run.after += 1
            if run.after >= 3:
                self._finish(run, out)
            else:
                still.append(run)
        self._closing = still

    @staticmethod
    def _extend(run: _Run, center: float, level: float, window: tuple[str, float, float]) -> None:
        run.add(center, level)
        run.peak = max(run.peak, level)
        run.misses = 0
        run.low_devs.append(window[1])
        run.high_devs.append(window[2])

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
