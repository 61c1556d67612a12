"""Outbound calling rules: abandon accounting, lockout, calling windows, retries.

The rules (checked facts in the project's contact-centre notes; read the primary
texts before claiming compliance):
- Abandoned: a live person not connected to an agent within 2 s of the end of
  their greeting (FTC TSR 16 CFR 310.4(b)(4)(i); Ofcom). AMD's decision time is
  inside those 2 s. Answers classified as machines are not in the denominator (US).
- Rate: at most 3 % of live answers per campaign, over a rolling 30 days (US
  profile) or per calendar day, midnight to midnight, UK time (UK profile), where
  AMD false positives (people AMD called machines and hung up on) count as
  abandoned, as a reasoned estimate: the AMD's measured false-positive rate times
  the machine verdicts.
- A number abandoned once is not called again within the profile's lockout (UK:
  72 h) unless an agent is reserved for the call.
- Calling window in the callee's local time (default 09:00-21:00; US law 08:00-21:00),
  zone from the contact or from the number (acd/callzones.py).
- Ring at least 15 s before giving up.
- Retries per outcome (busy, no answer, machine, failed, dropped): a delay and a
  maximum of attempts with that outcome, and a maximum of attempts overall.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acd.callzones import zones_for_number
from acd.pacing import CONNECT_LIMIT
from pbx.api import ConfigError

MIN_RING_TIMEOUT = 15.0  # seconds; FTC TSR 310.4(b)(4)(i): 15 s or four rings
DAY = 86400.0


class Outcome(enum.Enum):
    """How an attempt ended."""

    CONNECTED = "connected"  # a live person reached an agent (or the agentless message)
    DROPPED = "dropped"  # a live person got the safe-harbour message: abandoned
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # network or number failure


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dial, as recorded (times are epoch seconds).

    `answered_at` is the end of the callee's greeting; `amd` the AMD's verdict
    ("human", "machine" or None when AMD did not run) at `amd_decided_at`.
    """

    number: str
    dialed_at: float
    ended_at: float
    outcome: Outcome
    answered_at: float | None = None
    amd: str | None = None
    amd_decided_at: float | None = None
    agent: str | None = None
    connected_at: float | None = None

    @property
    def live(self) -> bool:
        """A person answered (as far as the dialer can know: AMD did not say machine)."""
        return self.answered_at is not None and self.amd != "machine"

    @property
    def wait_to_agent(self) -> float | None:
        """Seconds from the end of the greeting to the agent, when connected."""
        if self.answered_at is None or self.connected_at is None:
            return None
        return self.connected_at - self.answered_at

    @property
    def abandoned(self) -> bool:
        """Live, and not with an agent within 2 s of the greeting (AMD time included)."""
        if not self.live:
            return False
        wait = self.wait_to_agent
        return wait is None or wait > CONNECT_LIMIT


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local hours when a callee may be rung: [start, end)."""

    start: time = time(9, 0)
    end: time = time(21, 0)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ConfigError(f"a calling window must start before it ends: {self}")


@dataclass(frozen=True, slots=True)
class Profile:
    """A jurisdiction's abandon rules."""

    name: str
    target: float  # max abandoned / live
    rolling_days: int | None  # rolling window, or None for the calendar day
    day_zone: str  # the zone whose midnight starts a calendar day
    lockout: float  # seconds a dropped number rests (0: none)
    count_amd_false_positives: bool


US = Profile("US", 0.03, 30, "UTC", 0.0, False)
UK = Profile("UK", 0.03, None, "Europe/London", 72 * 3600.0, True)


@dataclass(frozen=True, slots=True)
class AbandonRate:
    """A window's abandon rate and what it is made of."""

    live: int
    abandoned: int
    estimated_false_positives: float
    rate: float  # (abandoned + est. FP) / (live + est. FP); 0 with no live answer

    def within(self, target: float) -> bool:
        return self.rate <= target


def abandon_rate(
    attempts: Iterable[Attempt], profile: Profile, now: float, amd_fp_rate: float = 0.0
) -> AbandonRate:
    """The profile's abandon rate at `now` over its window.

    Raises:
        ConfigError: an AMD false-positive rate outside [0, 1).
    """
    if not 0 <= amd_fp_rate < 1:
        raise ConfigError(f"the AMD false-positive rate must be in [0, 1), not {amd_fp_rate}")
    start, end = window_bounds(profile, now)
    live = dropped = machines = 0
    for a in attempts:
        t = a.answered_at
        if t is None or not start <= t < end:
            continue
        if a.live:
            live += 1
            dropped += a.abandoned
        elif a.amd == "machine":
            machines += 1
    fp = amd_fp_rate * machines if profile.count_amd_false_positives else 0.0
    total = live + fp
    return AbandonRate(live, dropped, fp, (dropped + fp) / total if total else 0.0)


def window_bounds(profile: Profile, now: float) -> tuple[float, float]:
    """[start, end) of the profile's window holding `now` (epoch seconds)."""
    if profile.rolling_days is not None:
        return now - profile.rolling_days * DAY, now + 1e-9
    zone = ZoneInfo(profile.day_zone)
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime.combine(local.date(), time(0), zone)
    following = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
    return midnight.timestamp(), following.timestamp()


class AbandonLedger:
    """A campaign's live answers in its compliance window, kept incrementally."""

    def __init__(self, profile: Profile, amd_fp_rate: float = 0.0) -> None:
        self.profile = profile
        self._fp = amd_fp_rate
        self._events: deque[tuple[float, bool, bool]] = deque()  # (answered, live, abandoned)

    def record(self, attempt: Attempt) -> None:
        """Keep an attempt that was answered (others do not count)."""
        if attempt.answered_at is not None:
            self._events.append((attempt.answered_at, attempt.live, attempt.abandoned))

    def rate(self, now: float) -> AbandonRate:
        """The window's rate at `now`; forgets what has left a rolling window."""
        start, end = window_bounds(self.profile, now)
        if self.profile.rolling_days is not None:
            while self._events and self._events[0][0] < start:
                self._events.popleft()
        live = dropped = machines = 0
        for t, is_live, is_abandoned in self._events:
            if start <= t < end:
                live += is_live
                dropped += is_abandoned
                machines += not is_live
        fp = self._fp * machines if self.profile.count_amd_false_positives else 0.0
        total = live + fp
        return AbandonRate(live, dropped, fp, (dropped + fp) / total if total else 0.0)


def may_redial(
    history: Sequence[Attempt], now: float, profile: Profile, *, reserved_agent: bool = False
) -> bool:
    """Whether a number may be dialled now under the drop lockout."""
    if reserved_agent or profile.lockout <= 0:
        return True
    return all(not a.abandoned or now - a.ended_at >= profile.lockout for a in history)


def contact_zones(number: str, zone: str | None = None) -> tuple[ZoneInfo, ...]:
    """The zones to check for a contact: its own field when set, else from its number.

    Raises:
        ConfigError: an unknown zone name, or a number no zone can be derived from.
    """
    names = (zone,) if zone else zones_for_number(number)
    try:
        return tuple(ZoneInfo(n) for n in names)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {zone!r} for {number[:32]!r}") from exc


def in_window(now: datetime, zones: Sequence[ZoneInfo], window: CallingWindow) -> bool:
    """Whether `now` (aware) is inside the window in every zone the callee may be in."""
    if now.tzinfo is None:
        raise ConfigError("calling windows need an aware datetime")
    return all(window.start <= now.astimezone(z).time() < window.end for z in zones)


def next_opening(now: datetime, zones: Sequence[ZoneInfo], window: CallingWindow) -> datetime:
    """The first instant at or after `now` when `in_window` holds (UTC).

    Raises:
        ConfigError: no such instant within 3 days (zones whose windows never overlap).
    """
    if in_window(now, zones, window):
        return now.astimezone(UTC)
    candidates = []
    for z in zones:
        day = now.astimezone(z).date()
        for k in range(4):
            opening = datetime.combine(day + timedelta(days=k), window.start, z)
            if opening > now:
                candidates.append(opening.astimezone(UTC))
    for c in sorted(candidates):
        if in_window(c, zones, window):
            return c
    raise ConfigError(f"the calling window {window} never opens in all of {zones}")


def check_ring_timeout(seconds: float) -> float:
    """The ring timeout, if it is at least 15 s.

    Raises:
        ConfigError: shorter than 15 s (the rules require 15 s or four rings).
    """
    if not math.isfinite(seconds) or seconds < MIN_RING_TIMEOUT:
        raise ConfigError(f"ring timeout must be at least {MIN_RING_TIMEOUT:g} s, not {seconds}")
    return seconds


@dataclass(frozen=True, slots=True)
class RetryRule:
    """After an attempt with this outcome: wait `delay` s; give up after `max_attempts`."""

    delay: float
    max_attempts: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay) or self.delay < 0 or self.max_attempts < 0:
            raise ConfigError(f"bad retry rule: {self}")


DEFAULT_RETRIES: Mapping[Outcome, RetryRule] = {
    Outcome.BUSY: RetryRule(600.0, 3),
    Outcome.NO_ANSWER: RetryRule(3600.0, 3),
    Outcome.MACHINE: RetryRule(4 * 3600.0, 2),
    Outcome.FAILED: RetryRule(3600.0, 1),
    Outcome.DROPPED: RetryRule(3600.0, 2),  # a person we failed: worth one more try
}


def next_attempt_at(
    history: Sequence[Attempt],
    profile: Profile,
    rules: Mapping[Outcome, RetryRule] = DEFAULT_RETRIES,
    max_total: int = 5,
) -> float | None:
    """When the number may be tried again after its last attempt, or None: done with it.

    A connected call is done; an outcome without a rule is not retried; a drop
    also waits out the profile's lockout.
    """
    if not history:
        return 0.0
    last = history[-1]
    rule = rules.get(last.outcome)
    if last.outcome is Outcome.CONNECTED or rule is None or len(history) >= max_total:
        return None
    same = sum(1 for a in history if a.outcome is last.outcome)
    if same >= rule.max_attempts:
        return None
    wait = rule.delay
    if last.outcome is Outcome.DROPPED:
        wait = max(wait, profile.lockout)
    return last.ended_at + wait
