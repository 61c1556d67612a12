"""acd.campaign: a stored campaign as compliance rules, and what to do with a contact
now (DNC, zone, window, lockout) and after an attempt (retries), as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acd.campaign import CampaignRules, Verdict, after_attempt, contact_verdict
from acd.compliance import Attempt, Outcome
from pbx.api import Campaign


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def rules(**kw: object) -> CampaignRules:
    values: dict[str, object] = {"name": "c", "caller_id": "+442071234567", "queue": "q"}
    values.update(kw)
    return CampaignRules.of(Campaign(**values))  # type: ignore[arg-type]


NOON_UTC = ts("2026-06-01T12:00:00")  # 13:00 London, 08:00 New York, 05:00 Los Angeles


@pytest.mark.parametrize(
    ("number", "zone", "dnc", "verdict", "at"),
    [
        ("+442071234567", "", False, Verdict.DIAL, 0.0),
        ("+442071234567", "", True, Verdict.DNC, 0.0),
        # New York 08:00 < 09:00: later, at 09:00 New York = 13:00 UTC
        ("+12125550100", "", False, Verdict.LATER, ts("2026-06-01T13:00:00")),
        # the contact's own zone wins over the number's
        ("+12125550100", "Europe/London", False, Verdict.DIAL, 0.0),
        ("+13105550100", "", False, Verdict.LATER, ts("2026-06-01T16:00:00")),
        ("+12125550100", "Mars/Base", False, Verdict.FAILED, 0.0),
    ],
)
def test_contact_verdict(number: str, zone: str, dnc: bool, verdict: Verdict, at: float) -> None:
    found = contact_verdict(rules(), number, zone, NOON_UTC, dnc=dnc)
    assert (found.verdict, found.at) == (verdict, at)


def test_window_setting_moves_the_opening() -> None:
    found = contact_verdict(rules(window_start="07:30"), "+12125550100", "", NOON_UTC, dnc=False)
    assert found.verdict is Verdict.DIAL
    late = contact_verdict(rules(window_end="12:30"), "+442071234567", "", NOON_UTC, dnc=False)
    assert (late.verdict, late.at) == (Verdict.LATER, ts("2026-06-02T08:00:00"))  # 09:00 BST


def dropped(at: float) -> Attempt:
    return Attempt("+442071234567", at - 30, at, Outcome.DROPPED, answered_at=at - 20, amd="human")


def test_uk_lockout_after_a_drop() -> None:
    uk = rules(profile="UK")
    history = [dropped(NOON_UTC - 3600)]
    found = contact_verdict(uk, "+442071234567", "", NOON_UTC, dnc=False, history=history)
    assert (found.verdict, found.at) == (Verdict.LATER, NOON_UTC - 3600 + 72 * 3600)
    reserved = contact_verdict(
        uk, "+442071234567", "", NOON_UTC, dnc=False, history=history, reserved_agent=True
    )
    assert reserved.verdict is Verdict.DIAL
    us = contact_verdict(rules(), "+442071234567", "", NOON_UTC, dnc=False, history=history)
    assert us.verdict is Verdict.DIAL  # the US profile has no lockout


def attempt(outcome: Outcome, end: float) -> Attempt:
    return Attempt("+442071234567", end - 20, end, outcome)


@pytest.mark.parametrize(
    ("retries", "history", "expected"),
    [
        ('{"busy": [60, 2]}', [Outcome.BUSY], 1060.0),
        ('{"busy": [60, 2]}', [Outcome.BUSY, Outcome.BUSY], None),
        ('{"no_answer": [30, 3]}', [Outcome.NO_ANSWER, Outcome.BUSY], 1600.0),  # busy default
        ('{"machine": [0, 0]}', [Outcome.MACHINE], None),
        ("{}", [Outcome.CONNECTED], None),
        ('{"failed": [5, 9]}', [Outcome.FAILED] * 3, 1005.0),
    ],
)
def test_after_attempt(retries: str, history: list[Outcome], expected: float | None) -> None:
    done = [attempt(o, 1000.0) for o in history]
    assert after_attempt(rules(retries=retries, max_attempts=4), done) == expected


def test_max_attempts_overall() -> None:
    done = [attempt(Outcome.BUSY, 1000.0), attempt(Outcome.NO_ANSWER, 1000.0)]
    assert after_attempt(rules(max_attempts=2), done) is None
