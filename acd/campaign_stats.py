"""A campaign's figures from its attempts (pure): what `pbx campaign stats` prints and the
wallboard's campaign tiles show: dialled, answered, human / machine, connected, dropped,
abandon % today and over the profile's window (US: rolling 30 days; UK: the calendar
day, AMD false positives estimated), and each agent's talk share of the day so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from acd.campaign import as_attempt
from acd.compliance import DAY, Profile, abandon_rate, window_bounds
from pbx.api import DialAttempt

__all__ = ["campaign_figures"]


def campaign_figures(
    attempts: Sequence[DialAttempt],
    profile: Profile,
    now: float,
    *,
    amd_fp_rate: float = 0.0,
    contacts: Mapping[str, int] | None = None,
    agents_since: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The figures at `now`. `agents_since` maps each agent logged in to when its day's
    time started (talk % = connected seconds today / seconds since then)."""
    day_start = now - DAY
    if profile.rolling_days is None:
        day_start = window_bounds(profile, now)[0]
    today = [a for a in attempts if a.dialed_at >= day_start]
    answered = [a for a in today if a.answered_at is not None]
    machine = sum(1 for a in answered if a.amd == "machine")
    records = [as_attempt(a) for a in attempts]
    rolling = abandon_rate(records, profile, now, amd_fp_rate)
    day_profile = Profile("day", profile.target, None, profile.day_zone, 0.0,
                          profile.count_amd_false_positives)  # fmt: skip
    daily = abandon_rate(records, day_profile, now, amd_fp_rate)
    talk: dict[str, float] = {}
    for a in today:
        if a.agent and a.connected_at is not None:
            talk[a.agent] = talk.get(a.agent, 0.0) + max(0.0, a.ended_at - a.connected_at)
    share = {
        agent: round(100 * talk.get(agent, 0.0) / max(1.0, now - since), 1)
        for agent, since in (agents_since or {}).items()
    }
    return {
        "dialled": len(today),
        "answered": len(answered),
        "human": len(answered) - machine,
        "machine": machine,
        "connected": _count(today, "connected"),
        "dropped": _count(today, "dropped"),
        "busy": _count(today, "busy"),
        "no_answer": _count(today, "no_answer"),
        "failed": _count(today, "failed"),
        "abandon_today_pct": round(100 * daily.rate, 2),
        "abandon_rolling_pct": round(100 * rolling.rate, 2),
        "window_live": rolling.live,
        "window_abandoned": rolling.abandoned,
        "talk_pct": share,
        "contacts": dict(contacts or {}),
    }


def _count(attempts: Iterable[DialAttempt], outcome: str) -> int:
    return sum(1 for a in attempts if a.outcome == outcome)
