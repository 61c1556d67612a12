"""Outbound rules: windows across zones and DST, abandon accounting, lockout, retries."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from acd.callzones import NANP_ANY, zones_for_number
from acd.compliance import (
    UK,
    US,
    AbandonLedger,
    Attempt,
    CallingWindow,
    Outcome,
    Profile,
    RetryRule,
    abandon_rate,
    check_ring_timeout,
    contact_zones,
    in_window,
    may_redial,
    next_attempt_at,
    next_opening,
)
from pbx.api import ConfigError

W = CallingWindow()  # 09:00-21:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "zone", "at", "open_"),
    [
        # New York in summer (EDT, UTC-4) and winter (EST, UTC-5)
        ("+1 212 555 0100", None, utc(2026, 7, 1, 13, 0), True),  # 09:00 EDT
        ("+1 212 555 0100", None, utc(2026, 7, 1, 12, 59), False),  # 08:59 EDT
        ("+1 212 555 0100", None, utc(2026, 1, 15, 13, 30), False),  # 08:30 EST
        ("+1 212 555 0100", None, utc(2026, 1, 15, 14, 0), True),  # 09:00 EST
        ("+1 212 555 0100", None, utc(2026, 7, 2, 0, 59), True),  # 20:59 EDT
        ("+1 212 555 0100", None, utc(2026, 7, 2, 1, 0), False),  # 21:00: the end is out
        # the US switch to summer time, Sunday 8 March 2026
        ("+1 212 555 0100", None, utc(2026, 3, 7, 13, 0), False),  # 08:00 EST
        ("+1 212 555 0100", None, utc(2026, 3, 8, 13, 0), True),  # 09:00 EDT
        # Arizona keeps MST: 16:00 UTC is 09:00 there in July, while Denver is at 10:00
        ("+1 602 555 0100", None, utc(2026, 7, 1, 15, 59), False),
        ("+1 602 555 0100", None, utc(2026, 7, 1, 16, 0), True),
        ("+1 303 555 0100", None, utc(2026, 7, 1, 15, 0), True),  # 09:00 MDT
        # London across the UK switch (Sunday 29 March 2026)
        ("+44 20 7946 0000", None, utc(2026, 3, 28, 8, 59), False),  # 08:59 GMT
        ("+44 20 7946 0000", None, utc(2026, 3, 30, 8, 0), True),  # 09:00 BST
        ("+44 20 7946 0000", None, utc(2026, 3, 30, 20, 0), False),  # 21:00 BST
        # an area code across a zone line (850: Eastern and Central) must fit both
        ("+1 850 555 0100", None, utc(2026, 7, 1, 13, 30), False),  # 09:30 ET, 08:30 CT
        ("+1 850 555 0100", None, utc(2026, 7, 1, 14, 0), True),
        ("+1 850 555 0100", None, utc(2026, 7, 2, 0, 59), True),  # 20:59 ET
        ("+1 850 555 0100", None, utc(2026, 7, 2, 1, 0), False),  # 21:00 ET
        # an unknown area code: every contiguous zone, so from 09:00 Pacific to 21:00 Eastern
        ("+1 555 555 0100", None, utc(2026, 7, 1, 15, 59), False),
        ("+1 555 555 0100", None, utc(2026, 7, 1, 16, 0), True),
        # the contact's own zone wins over its number
        ("+1 212 555 0100", "America/Los_Angeles", utc(2026, 7, 1, 14, 0), False),
        ("+1 212 555 0100", "America/Los_Angeles", utc(2026, 7, 1, 16, 0), True),
        # Perth is UTC+8, Adelaide +9:30 in July: both must be in the window
        ("+61 8 9000 0000", None, utc(2026, 7, 1, 1, 0), True),  # 09:00 Perth, 10:30 Adelaide
        ("+61 8 9000 0000", None, utc(2026, 7, 1, 0, 59), False),
        ("+61 8 9000 0000", None, utc(2026, 7, 1, 11, 30), False),  # 21:00 Adelaide
    ],
)
def test_calling_window(number: str, zone: str | None, at: datetime, open_: bool) -> None:
    assert in_window(at, contact_zones(number, zone), W) is open_


@pytest.mark.parametrize(
    ("number", "at", "opens"),
    [
        ("+1 212 555 0100", utc(2026, 1, 15, 3, 0), utc(2026, 1, 15, 14, 0)),
        ("+1 212 555 0100", utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 13, 0)),  # DST that night
        ("+1 850 555 0100", utc(2026, 7, 1, 13, 30), utc(2026, 7, 1, 14, 0)),
        ("+44 20 7946 0000", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 8, 0)),  # BST from 01:00
        ("+1 212 555 0100", utc(2026, 7, 1, 15, 0), utc(2026, 7, 1, 15, 0)),  # already open
    ],
)
def test_next_opening(number: str, at: datetime, opens: datetime) -> None:
    zones = contact_zones(number)
    assert next_opening(at, zones, W) == opens
    assert in_window(opens, zones, W)


def test_zones_from_numbers() -> None:
    assert zones_for_number("+1 (212) 555-0100") == ("America/New_York",)
    assert zones_for_number("+1 604 555 0100") == ("America/Vancouver",)
    assert zones_for_number("+1 555 555 0100") == NANP_ANY
    assert zones_for_number("+353 1 555 0100") == ("Europe/Dublin",)
    assert zones_for_number("+34 928 00 00 00") == ("Europe/Madrid", "Atlantic/Canary")
    assert set(zones_for_number("+1 208 555 0100")) == {"America/Boise", "America/Los_Angeles"}


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("212 555 0100", None),  # not E.164
        ("+1 212 555 01x0", None),
        ("+" + "1" * 16, None),
        ("+999 555 0100", None),  # no zone known: the contact must carry one
        ("+1 212 555 0100", "Mars/Olympus_Mons"),
    ],
)
def test_bad_numbers_and_zones(number: str, zone: str | None) -> None:
    with pytest.raises(ConfigError):
        contact_zones(number, zone)


def test_naive_datetime_refused() -> None:
    with pytest.raises(ConfigError):
        in_window(datetime(2026, 7, 1, 12), (ZoneInfo("UTC"),), W)
    with pytest.raises(ConfigError):
        CallingWindow(W.end, W.start)


def _answered(
    at: float,
    connected: float | None,
    *,
    amd: str | None = "human",
    outcome: Outcome = Outcome.CONNECTED,
) -> Attempt:
    return Attempt(
        "+442079460000",
        at - 10,
        at + 60,
        outcome,
        answered_at=at,
        amd=amd,
        amd_decided_at=at + 0.8 if amd else None,
        agent="a1" if connected is not None else None,
        connected_at=connected,
    )


@pytest.mark.parametrize(
    ("attempt", "live", "abandoned", "wait"),
    [
        (_answered(100.0, 101.9), True, False, 1.9),
        (_answered(100.0, 102.0), True, False, 2.0),  # exactly 2 s: in time
        (_answered(100.0, 102.1), True, True, 2.1),  # an agent too late is an abandon
        (_answered(100.0, None, outcome=Outcome.DROPPED), True, True, None),
        (_answered(100.0, None, amd="machine", outcome=Outcome.MACHINE), False, False, None),
        (_answered(100.0, 100.5, amd=None), True, False, 0.5),  # no AMD: still a person
        (Attempt("+442079460000", 0.0, 20.0, Outcome.NO_ANSWER), False, False, None),
    ],
)
def test_abandon_accounting(
    attempt: Attempt, live: bool, abandoned: bool, wait: float | None
) -> None:
    assert attempt.live is live
    assert attempt.abandoned is abandoned
    assert attempt.wait_to_agent == (None if wait is None else pytest.approx(wait))


def test_us_rolling_30_days() -> None:
    day = 86400.0
    now = 100 * day
    old_drop = _answered(now - 31 * day, None, outcome=Outcome.DROPPED)
    recent = [_answered(now - 29 * day + i, now - 29 * day + i + 1) for i in range(97)]
    drops = [_answered(now - day + i, None, outcome=Outcome.DROPPED) for i in range(3)]
    machines = [_answered(now - 5, None, amd="machine", outcome=Outcome.MACHINE)] * 50
    attempts = [old_drop, *recent, *drops, *machines]
    r = abandon_rate(attempts, US, now, amd_fp_rate=0.04)
    assert (r.live, r.abandoned, r.estimated_false_positives) == (100, 3, 0.0)
    assert r.rate == pytest.approx(0.03) and r.within(0.03)
    ledger = AbandonLedger(US, amd_fp_rate=0.04)
    for a in attempts:
        ledger.record(a)
    assert ledger.rate(now) == r
    # one more drop tips it over
    r2 = abandon_rate([*attempts, _answered(now - 1, None, outcome=Outcome.DROPPED)], US, now)
    assert not r2.within(0.03)


def test_uk_calendar_day_counts_amd_false_positives() -> None:
    # 2 July 2026 00:30 BST is 1 July 23:30 UTC: the UK day began 30 minutes ago
    now = utc(2026, 7, 1, 23, 30).timestamp()
    yesterday = utc(2026, 7, 1, 22, 59).timestamp()  # 23:59 BST on 1 July
    today = utc(2026, 7, 1, 23, 1).timestamp()
    attempts = [_answered(yesterday, None, outcome=Outcome.DROPPED)]
    attempts += [_answered(today + i, today + i + 1) for i in range(98)]
    attempts += [_answered(today + 200 + i, None, outcome=Outcome.DROPPED) for i in range(2)]
    attempts += [_answered(today + 300, None, amd="machine", outcome=Outcome.MACHINE)] * 50
    uk = abandon_rate(attempts, UK, now, amd_fp_rate=0.04)
    assert (uk.live, uk.abandoned) == (100, 2)
    assert uk.estimated_false_positives == pytest.approx(2.0)
    assert uk.rate == pytest.approx(4 / 102)  # (2 + 2 estimated) / (100 + 2)
    us = abandon_rate(attempts, US, now, amd_fp_rate=0.04)
    assert (us.live, us.abandoned, us.rate) == (101, 3, pytest.approx(3 / 101))
    with pytest.raises(ConfigError):
        abandon_rate(attempts, UK, now, amd_fp_rate=1.5)


@pytest.mark.parametrize(
    ("profile", "hours_after", "reserved", "allowed"),
    [
        (UK, 71.9, False, False),
        (UK, 72.0, False, True),
        (UK, 1.0, True, True),  # a reserved agent lifts the lockout
        (US, 0.1, False, True),  # the US profile has no lockout
    ],
)
def test_drop_lockout(profile: Profile, hours_after: float, reserved: bool, allowed: bool) -> None:
    drop = _answered(1000.0, None, outcome=Outcome.DROPPED)
    now = drop.ended_at + hours_after * 3600
    assert may_redial([drop], now, profile, reserved_agent=reserved) is allowed
    assert may_redial([_answered(1000.0, 1001.0)], drop.ended_at + 1, profile)


def test_ring_timeout_at_least_15_s() -> None:
    assert check_ring_timeout(15.0) == 15.0
    assert check_ring_timeout(30.0) == 30.0
    for bad in (14.9, 0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            check_ring_timeout(bad)


def _tried(*outcomes: Outcome) -> list[Attempt]:
    return [Attempt("+12125550100", 1000.0 * i, 1000.0 * i + 30, o) for i, o in enumerate(outcomes)]


B, NA, M, F, D, C = (
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.MACHINE,
    Outcome.FAILED,
    Outcome.DROPPED,
    Outcome.CONNECTED,
)


@pytest.mark.parametrize(
    ("outcomes", "profile", "expected"),
    [
        ((), US, 0.0),
        ((B,), US, 30 + 600.0),
        ((B, B), US, 1030 + 600.0),
        ((B, B, B), US, None),  # three busies: done
        ((B, NA), US, 1030 + 3600.0),  # the last outcome's rule, counted on its own
        ((NA, NA, NA), US, None),
        ((M,), US, 30 + 4 * 3600.0),
        ((M, M), US, None),
        ((F,), US, None),  # one failure is the maximum
        ((D,), US, 30 + 3600.0),
        ((D,), UK, 30 + 72 * 3600.0),  # the UK lockout outlasts the retry delay
        ((D, D), US, None),
        ((C,), US, None),  # reached: nothing to retry
        ((B, NA, B, NA, M), US, None),  # five attempts overall
    ],
)
def test_retries(outcomes: tuple[Outcome, ...], profile: Profile, expected: float | None) -> None:
    assert next_attempt_at(_tried(*outcomes), profile) == expected


def test_bad_retry_rule() -> None:
    with pytest.raises(ConfigError):
        RetryRule(-1.0, 3)
    with pytest.raises(ConfigError):
        RetryRule(60.0, -1)
