"""The ACD's data model: what the pure decisions (strategy, skills) see.

Plain frozen values shared by the engine (which owns the live state), the store
(which persists it) and the statistics (which read queue events). Nothing here
does I/O or knows about SIP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AgentState(StrEnum):
    LOGGED_OUT = "logged-out"
    AVAILABLE = "available"
    RINGING = "ringing"  # an offer is ringing its phone
    ON_CALL = "on-call"  # talking to a queue caller
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


class Strategy(StrEnum):
    RINGALL = "ringall"
    LEASTRECENT = "leastrecent"
    FEWESTCALLS = "fewestcalls"
    RANDOM = "random"
    RRMEMORY = "rrmemory"
    RRORDERED = "rrordered"
    LINEAR = "linear"
    WRANDOM = "wrandom"
    LONGEST_IDLE = "longest-idle"


@dataclass(frozen=True, slots=True)
class Member:
    """An agent's membership of one queue (Asterisk member / FreeSWITCH tier)."""

    agent: str
    penalty: int = 0  # Asterisk penalty; FreeSWITCH tier level (lower first)
    position: int = 0  # configured order (linear, rrordered, tier position)


@dataclass(frozen=True, slots=True)
class SkillRule:
    """After `after` seconds of waiting, required levels drop by `relax` (never
    below 1); `drop=True`: the skill is no longer required at all."""

    after: float
    relax: int = 0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    number: str
    strategy: Strategy = Strategy.RINGALL
    ring_seconds: float = 15.0  # one offer rings this long
    retry_seconds: float = 5.0  # pause before the next offer after a no-answer
    wrapup_seconds: float = 0.0  # queue default; Agent.wrapup_seconds overrides
    max_callers: int = 0  # 0: unlimited
    max_wait_seconds: float = 0.0  # 0: none; then -> overflow (or exit)
    overflow: str | None = None  # queue:NAME, vm:BOX, ivr:MENU, ext number, trunk:N/X
    join_empty: frozenset[str] = frozenset()  # Asterisk condition names
    leave_when_empty: frozenset[str] = frozenset()
    service_level_seconds: float = 20.0
    announce_frequency: float = 0.0  # position/wait announcements, 0: off
    periodic_announce: str | None = None  # prompt name
    periodic_frequency: float = 0.0
    music: str | None = None  # MOH class name, None: default
    weight: int = 0  # higher weight wins an agent shared by queues
    penalty_members_limit: int = 0  # penalties ignored with <= this many members
    ring_in_use: bool = False  # offer agents busy on a non-queue call
    autopause_after: int = 0  # pause after N missed offers in a row, 0: off
    skills: Mapping[str, int] = field(default_factory=dict)  # required skill -> min level
    skill_rules: tuple[SkillRule, ...] = ()
    callback_key: str | None = "1"  # DTMF key for "call me back", None: off
    voicemail_key: str | None = None  # DTMF key to leave for voicemail
    callback_attempts: int = 3


@dataclass(frozen=True, slots=True)
class Agent:
    """What the decisions see of one agent (a user) at a given moment."""

    name: str
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    pause_reason: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> level 1..10
    wrapup_seconds: float | None = None  # overrides the queue's
    wrapup_until: float = 0.0  # no offer before this time
    in_use: bool = False  # on a non-queue call (ring_in_use decides)
    missed_offers: int = 0  # in a row; reset by an answer
    last_call_end: Mapping[str, float] = field(default_factory=dict)  # queue -> time
    calls_taken: Mapping[str, int] = field(default_factory=dict)  # queue -> count
    talk_seconds: float = 0.0  # today's total (agent-with-least-talk-time)
    # Defaulted additions (core):
    registered: bool = True  # the agent's phone is reachable; False: never offered


@dataclass(frozen=True, slots=True)
class Caller:
    """A call waiting in a queue (or a stored callback keeping its place)."""

    call_id: str
    queue: str
    number: str  # caller ID (what a callback dials)
    joined: float  # when it entered (a callback keeps it)
    priority: int = 0  # higher first (Asterisk QUEUE_PRIO)
    skills: Mapping[str, int] = field(default_factory=dict)  # extra required skills
    callback: bool = False  # a caller who hung up and waits to be called
    entry_position: int = 0
    # Defaulted additions (core):
    relax_from: float | None = None  # skill rules count from here (None: joined)
    notes: tuple[str, ...] = ()  # what earlier agents noted (escalation carries it)


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring `agents` (together: ringall gives several) for `caller`."""

    caller: str  # call_id
    queue: str
    agents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One queue_log line (Asterisk names); `data` keys per event in round 6's list."""

    time: float
    call_id: str  # the caller's call id ("" for agent events)
    queue: str  # "" for events of an agent across all queues
    agent: str | None
    event: str  # one of the event names
    data: Mapping[str, Any] = field(default_factory=dict)
