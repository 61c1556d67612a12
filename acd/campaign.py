"""A stored campaign as the dialer's rules, and the pure decision of what to do with a
contact now (issue 17).

`CampaignRules.of(campaign)` turns the stored settings into acd.compliance's types
(calling window, profile, retry rules per outcome). `contact_verdict` decides, for one
contact at `now`, in this order (each rule from acd/compliance.py):

1. on a do-not-call list (global or the campaign's)      -> DNC: never dialled
2. its time zone(s) cannot be known or never overlap      -> FAILED: never dialled
3. outside the calling window in its local time           -> LATER at the next opening
4. dropped within the profile's lockout, no reserved agent -> LATER when it ends
5. otherwise                                              -> DIAL

`after_attempt` says what follows an attempt: done, or pending again at a time (the
retry rule of its outcome, the overall maximum, a drop's lockout).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from acd.compliance import (
    DEFAULT_RETRIES,
    UK,
    US,
    Attempt,
    CallingWindow,
    Outcome,
    Profile,
    RetryRule,
    contact_zones,
    in_window,
    may_redial,
    next_attempt_at,
    next_opening,
)
from acd.pacing import PacingMode
from pbx.api import Campaign, ConfigError, DialAttempt, parse_retries

__all__ = ["CampaignRules", "Decision", "Verdict", "after_attempt", "as_attempt", "contact_verdict"]


class Verdict(enum.Enum):
    DIAL = "dial"
    LATER = "later"
    DNC = "dnc"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    at: float = 0.0  # LATER: when to look again
    why: str = ""


@dataclass(frozen=True, slots=True)
class CampaignRules:
    """What acd.compliance needs of a campaign."""

    name: str
    mode: PacingMode
    window: CallingWindow
    profile: Profile
    retries: Mapping[Outcome, RetryRule]
    max_attempts: int
    ring_timeout: float
    amd_fp_rate: float = 0.0

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignRules:
        """Raises: ConfigError (settings acd.compliance refuses)."""
        rules = dict(DEFAULT_RETRIES)
        for outcome, (delay, most) in parse_retries(campaign.retries).items():
            rules[Outcome(outcome)] = RetryRule(delay, most)
        return cls(
            campaign.name,
            PacingMode(campaign.mode),
            CallingWindow(_hhmm(campaign.window_start), _hhmm(campaign.window_end)),
            UK if campaign.profile == "UK" else US,
            rules,
            campaign.max_attempts,
            campaign.ring_timeout,
            campaign.amd_fp_rate,
        )


def _hhmm(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"calling window time {text!r}: write HH:MM") from None


def as_attempt(a: DialAttempt) -> Attempt:
    """A stored attempt as acd.compliance's record."""
    return Attempt(
        a.number,
        a.dialed_at,
        a.ended_at,
        Outcome(a.outcome),
        a.answered_at,
        a.amd if a.amd in ("human", "machine") else None,
        a.amd_decided_at,
        a.agent,
        a.connected_at,
    )


def contact_verdict(
    rules: CampaignRules,
    number: str,
    zone: str,
    now: float,
    *,
    dnc: bool,
    history: Sequence[Attempt] = (),
    reserved_agent: bool = False,
) -> Decision:
    """What to do with the contact at `now` (see the module doc)."""
    if dnc:
        return Decision(Verdict.DNC, why="on a do-not-call list")
    moment = datetime.fromtimestamp(now, UTC)
    try:
        zones = contact_zones(number, zone or None)
        if not in_window(moment, zones, rules.window):
            opening = next_opening(moment, zones, rules.window)
            return Decision(Verdict.LATER, opening.timestamp(), "outside the calling window")
    except ConfigError as exc:
        return Decision(Verdict.FAILED, why=str(exc))
    if not may_redial(history, now, rules.profile, reserved_agent=reserved_agent):
        last_drop = max(a.ended_at for a in history if a.abandoned)
        return Decision(Verdict.LATER, last_drop + rules.profile.lockout, "drop lockout")
    return Decision(Verdict.DIAL)


def after_attempt(rules: CampaignRules, history: Sequence[Attempt]) -> float | None:
    """When the contact may be tried again after its attempts, or None: done with it."""
    return next_attempt_at(history, rules.profile, rules.retries, rules.max_attempts)
