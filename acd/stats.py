"""Queue and agent statistics over a period, from queue events (acd.model.QueueEvent).

Pure: the caller reads the events (the store's queue_events table, or the bus) and
passes them with the period [since, until). Event names and data keys are round 6's
(Asterisk queue_log's): ENTERQUEUE, CONNECT {hold, ring}, COMPLETECALLER/COMPLETEAGENT
{hold, talk}, TRANSFER {hold, talk}, ABANDON/EXIT* {wait}, CALLBACK*, WRAPUPEND
{wrapup}, RINGNOANSWER, AGENTLOGIN, AGENTLOGOFF, PAUSE {reason}, UNPAUSE.

Rules at the period's edges (as queue reports built on queue_log do):
- A report for [since, until) is what a report run at `until` would say: events at or
  after `until` do not exist for it.
- A *call* belongs to the period its ENTERQUEUE falls in. Its outcome counts however
  late it came (before `until`): a call entering at 09:59 and answered at 10:01 is
  offered and answered in the 09:00-10:00 report run at 10:05, and in no report of
  10:00-11:00. A call with no outcome yet at `until` is `waiting`; its wait so far
  counts for the longest wait.
- The same caller in two queues (overflow) is two calls, one per queue.
- *Agent* figures are times and counts clipped to the period: talk from the call's
  CONNECT to its COMPLETE*, wrap-up the WRAPUPEND's interval, pauses PAUSE..UNPAUSE,
  logged time AGENTLOGIN..AGENTLOGOFF, each intersected with [since, until); a state
  still open at `until` runs to `until`. Login and pause events are per agent (a
  repeated PAUSE or AGENTLOGIN for several queues at once counts once); a state
  opened before the events given (an UNPAUSE or AGENTLOGOFF with no start) is rebuilt
  from its duration ({paused}, {logged}).
- Wrap-up belongs to the call named by WRAPUPEND's call id, else to the agent's last
  completed call; a wrap-up still running at `until` is not counted yet.
- Ratios with a zero denominator (SL with no answered call …) are None, printed "-".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from acd.erlang import agents_for, scheduled
from acd.model import QueueEvent
from pbx.api import ConfigError

logger = logging.getLogger(__name__)

# The default service-level threshold (Asterisk's servicelevel, QueueConfig's default).
DEFAULT_THRESHOLD = 20.0

_COMPLETE = frozenset({"COMPLETECALLER", "COMPLETEAGENT", "TRANSFER"})
_EXITS = {"EXITEMPTY": "empty", "EXITWITHTIMEOUT": "timeout", "EXITWITHKEY": "key"}
# A longer period is refused by staffing_by_hour (it walks the period hour by hour).
MAX_STAFFING_DAYS = 400


def _number(event: QueueEvent, key: str) -> float:
    """A data value in seconds; a missing or malformed one is 0 (and logged)."""
    value = event.data.get(key, 0.0)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        logger.warning("queue %s call %s: %s has a bad %s: %r", event.queue, event.call_id,
                       event.event, key, value)  # fmt: skip
        return 0.0
    return number


def _check_period(since: float, until: float) -> None:
    if not (math.isfinite(since) and math.isfinite(until)) or since >= until:
        raise ConfigError(f"the period must start before it ends (since {since}, until {until})")


def _ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom > 0 else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(slots=True)
class CallRecord:
    """One caller's visit to one queue, rebuilt from its events."""

    queue: str
    call_id: str
    entered: float
    number: str = ""
    entry_position: int = 0
    outcome: str | None = None  # answered, abandoned, empty, timeout, key, dropped
    outcome_time: float | None = None
    wait: float | None = None  # hold of CONNECT, or wait of ABANDON / EXIT*
    agent: str | None = None
    connected: float | None = None
    completed: float | None = None  # COMPLETE* or TRANSFER time
    talk: float = 0.0
    wrapup: float = 0.0
    transferred: bool = False
    callback_requested: bool = False
    callback_attempts: int = 0

    def wait_at(self, until: float) -> float:
        """How long this caller waited (so far, when still waiting at `until`)."""
        return self.wait if self.wait is not None else max(0.0, until - self.entered)


def calls(events: Iterable[QueueEvent], since: float, until: float) -> list[CallRecord]:
    """Every call that entered a queue in [since, until), with its outcome before `until`,
    in order of entry.

    Raises:
        ConfigError: since is not before until.
    """
    _check_period(since, until)
    records: dict[tuple[str, str], CallRecord] = {}  # the current visit per queue and call
    visits: list[CallRecord] = []  # every visit (a caller may enter a queue twice)
    by_call: dict[str, CallRecord] = {}  # the call's latest queue visit
    last_completed: dict[str, CallRecord] = {}  # agent -> last call completed
    for event in sorted(events, key=lambda e: e.time):
        if event.time >= until:
            break
        if event.event == "ENTERQUEUE":
            if not since <= event.time:
                continue
            record = CallRecord(
                event.queue,
                event.call_id,
                event.time,
                number=str(event.data.get("caller", "")),
                entry_position=int(_number(event, "position")),
            )
            records[(event.queue, event.call_id)] = record
            by_call[event.call_id] = record
            visits.append(record)
            continue
        if event.event == "WRAPUPEND":
            target = by_call.get(event.call_id) if event.call_id else None
            if target is None and event.agent is not None:
                target = last_completed.get(event.agent)
            if target is not None:
                target.wrapup += _number(event, "wrapup")
            continue
        found = records.get((event.queue, event.call_id)) or (
            by_call.get(event.call_id) if not event.queue else None
        )
        if found is None:  # entered before the period, or an agent event
            if event.event in _COMPLETE and event.agent is not None:
                last_completed.pop(event.agent, None)  # its wrap-up is not ours
            continue
        _apply(found, event, last_completed)
    return visits  # in order of entry: the events were sorted


def _apply(record: CallRecord, event: QueueEvent, last_completed: dict[str, CallRecord]) -> None:
    """One call event into its record; outcomes after the first are ignored."""
    name = event.event
    if name == "CONNECT":
        if record.outcome is None:
            record.outcome, record.outcome_time = "answered", event.time
            record.wait = _number(event, "hold")
            record.agent, record.connected = event.agent, event.time
    elif name in _COMPLETE:
        if record.outcome == "answered" and record.completed is None:
            record.completed = event.time
            record.talk = _number(event, "talk")
            record.transferred = name == "TRANSFER"
            agent = event.agent or record.agent
            if agent is not None:
                last_completed[agent] = record
    elif name == "ABANDON" or name in _EXITS or name == "CALLBACKDROP":
        if record.outcome is None:
            record.outcome = _EXITS.get(name, "abandoned" if name == "ABANDON" else "dropped")
            record.outcome_time = event.time
            record.wait = _number(event, "wait") if "wait" in event.data else (
                event.time - record.entered
            )  # fmt: skip
    elif name == "CALLBACKREQUEST":
        record.callback_requested = True
    elif name == "CALLBACKATTEMPT":
        record.callback_attempts += 1


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's figures over a period (see the module's rules)."""

    queue: str
    threshold: float  # the service-level threshold T, seconds
    offered: int  # ENTERQUEUE
    answered: int  # CONNECT
    answered_within: int  # CONNECT with hold <= T
    abandoned: int  # ABANDON
    abandoned_within: int  # ABANDON with wait <= T (short abandons)
    exit_empty: int
    exit_timeout: int
    exit_key: int
    callbacks_requested: int
    callback_attempts: int
    callbacks_connected: int  # requested and later answered
    callbacks_dropped: int  # CALLBACKDROP: attempts exhausted
    transferred: int
    waiting: int  # entered, no outcome yet at `until`
    completed: int  # answered calls that ended (COMPLETE* or TRANSFER)
    sl: float | None  # answered_within / answered
    sl2: float | None  # (answered_within + abandoned_within) / (answered + abandoned)
    asa: float | None  # mean hold of answered calls, seconds
    aht: float | None  # mean talk + wrap-up of completed calls, seconds
    avg_talk: float | None
    longest_wait: float | None  # the longest wait of the period's calls, seconds

    def as_row(self) -> dict[str, Any]:
        """Raw values by column name (for JSON and CSV), in a stable order."""
        return {name: getattr(self, name) for name in self.__slots__}


def queue_stats(
    events: Iterable[QueueEvent],
    since: float,
    until: float,
    thresholds: Mapping[str, float] | None = None,
    default_threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, QueueStats]:
    """Per queue, the figures of the calls entering it in [since, until).

    Raises:
        ConfigError: since is not before until.
    """
    grouped: dict[str, list[CallRecord]] = {}
    for record in calls(events, since, until):
        grouped.setdefault(record.queue, []).append(record)
    result = {}
    for queue, records in sorted(grouped.items()):
        threshold = (thresholds or {}).get(queue, default_threshold)
        result[queue] = _queue_figures(queue, records, threshold, until)
    return result


def _queue_figures(queue: str, records: list[CallRecord], t: float, until: float) -> QueueStats:
    def count(outcome: str) -> int:
        return sum(1 for r in records if r.outcome == outcome)

    answered = [r for r in records if r.outcome == "answered"]
    abandoned = [r for r in records if r.outcome == "abandoned"]
    done = [r for r in answered if r.completed is not None]
    a_within = sum(1 for r in answered if r.wait_at(until) <= t)
    b_within = sum(1 for r in abandoned if r.wait_at(until) <= t)
    return QueueStats(
        queue=queue,
        threshold=t,
        offered=len(records),
        answered=len(answered),
        answered_within=a_within,
        abandoned=len(abandoned),
        abandoned_within=b_within,
        exit_empty=count("empty"),
        exit_timeout=count("timeout"),
        exit_key=count("key"),
        callbacks_requested=sum(1 for r in records if r.callback_requested),
        callback_attempts=sum(r.callback_attempts for r in records),
        callbacks_connected=sum(1 for r in answered if r.callback_requested),
        callbacks_dropped=count("dropped"),
        transferred=sum(1 for r in done if r.transferred),
        waiting=sum(1 for r in records if r.outcome is None),
        completed=len(done),
        sl=_ratio(a_within, len(answered)),
        sl2=_ratio(a_within + b_within, len(answered) + len(abandoned)),
        asa=_mean([r.wait_at(until) for r in answered]),
        aht=_mean([r.talk + r.wrapup for r in done]),
        avg_talk=_mean([r.talk for r in done]),
        longest_wait=max((r.wait_at(until) for r in records), default=None),
    )


@dataclass(frozen=True, slots=True)
class AgentStats:
    """An agent's figures over a period, times clipped to it (see the module's rules)."""

    agent: str
    answered: int  # CONNECT in the period
    completed: int  # COMPLETE* / TRANSFER in the period
    ring_no_answer: int
    talk: float  # seconds
    wrapup: float
    paused: float
    logged: float
    pauses: Mapping[str, float] = field(default_factory=dict)  # reason -> seconds
    occupancy: float | None = None  # (talk + wrapup) / (logged - paused)

    def as_row(self) -> dict[str, Any]:
        """Raw values by column name; pauses as `reason=seconds` joined by `;`."""
        row = {name: getattr(self, name) for name in self.__slots__}
        row["pauses"] = ";".join(f"{r}={s:g}" for r, s in sorted(self.pauses.items()))
        return row


@dataclass(slots=True)
class _AgentTimes:
    answered: int = 0
    completed: int = 0
    ring_no_answer: int = 0
    talk: float = 0.0
    wrapup: float = 0.0
    logged: float = 0.0
    pauses: dict[str, float] = field(default_factory=dict)
    login_at: float | None = None
    pause_at: float | None = None
    pause_reason: str = ""
    known_login: bool = False  # a login or logoff seen: a lone logoff is a repeat
    known_pause: bool = False
    talking: dict[str, float] = field(default_factory=dict)  # call id -> CONNECT time


def _overlap(start: float, end: float, since: float, until: float) -> float:
    return max(0.0, min(end, until) - max(start, since))


def agent_stats(events: Iterable[QueueEvent], since: float, until: float) -> dict[str, AgentStats]:
    """Per agent, counts of the period and times clipped to [since, until).

    Events before `since` matter (a login at 08:00 makes 09:00-10:00 a logged hour).

    Raises:
        ConfigError: since is not before until.
    """
    _check_period(since, until)
    agents: dict[str, _AgentTimes] = {}

    def pause_end(a: _AgentTimes, end: float) -> None:
        if a.pause_at is not None:
            spent = _overlap(a.pause_at, end, since, until)
            if spent > 0 or since <= a.pause_at < until:
                a.pauses[a.pause_reason] = a.pauses.get(a.pause_reason, 0.0) + spent
            a.pause_at = None

    answered_by: dict[str, str] = {}  # call id -> agent of its CONNECT
    for event in sorted(events, key=lambda e: e.time):
        if event.time >= until:
            break
        agent = event.agent
        if event.event == "CONNECT" and agent is not None:
            answered_by[event.call_id] = agent
        elif agent is None and event.event in _COMPLETE:
            agent = answered_by.get(event.call_id)  # a COMPLETECALLER naming no agent
        if agent is None:
            continue
        a = agents.setdefault(agent, _AgentTimes())
        t, name, inside = event.time, event.event, event.time >= since
        if name == "AGENTLOGIN":
            if a.login_at is None:
                a.login_at = t
            a.known_login = True
        elif name == "AGENTLOGOFF":
            if a.login_at is None and not a.known_login:
                a.login_at = t - _number(event, "logged")  # logged in before the events
            if a.login_at is not None:
                a.logged += _overlap(a.login_at, t, since, until)
            a.login_at, a.known_login = None, True
            pause_end(a, t)
        elif name == "PAUSE":
            reason = str(event.data.get("reason") or "")
            if a.pause_at is None or reason != a.pause_reason:
                pause_end(a, t)
                a.pause_at, a.pause_reason = t, reason
            a.known_pause = True
        elif name == "UNPAUSE":
            if a.pause_at is None and not a.known_pause:
                a.pause_at = t - _number(event, "paused")  # paused before the events
                a.pause_reason = str(event.data.get("reason") or "")
            pause_end(a, t)
            a.known_pause = True
        elif name == "CONNECT":
            a.talking[event.call_id] = t
            a.answered += inside
        elif name in _COMPLETE:
            start = a.talking.pop(event.call_id, t - _number(event, "talk"))
            a.talk += _overlap(start, t, since, until)
            a.completed += inside
        elif name == "WRAPUPEND":
            a.wrapup += _overlap(t - _number(event, "wrapup"), t, since, until)
        elif name == "RINGNOANSWER":
            a.ring_no_answer += inside
    result = {}
    for agent, a in sorted(agents.items()):
        if a.login_at is not None:
            a.logged += _overlap(a.login_at, until, since, until)
        pause_end(a, until)
        a.talk += sum(_overlap(start, until, since, until) for start in a.talking.values())
        paused = sum(a.pauses.values())
        result[agent] = AgentStats(
            agent=agent,
            answered=a.answered,
            completed=a.completed,
            ring_no_answer=a.ring_no_answer,
            talk=a.talk,
            wrapup=a.wrapup,
            paused=paused,
            logged=a.logged,
            pauses=dict(sorted(a.pauses.items())),
            occupancy=_ratio(a.talk + a.wrapup, a.logged - paused),
        )
    return result


def as_rows(stats: Iterable[QueueStats | AgentStats]) -> list[dict[str, Any]]:
    """Raw rows for JSON or CSV."""
    return [s.as_row() for s in stats]


def text_cell(name: str, value: Any) -> str:
    """A value as a table prints it: None as "-", ratios in percent, seconds to 0.1 s."""
    if value is None:
        return "-"
    if name in {"sl", "sl2", "occupancy"}:
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def text_rows(stats: Iterable[QueueStats | AgentStats]) -> list[dict[str, str]]:
    """Rows of printed cells, for a terminal table."""
    return [{k: text_cell(k, v) for k, v in row.items()} for row in as_rows(stats)]


@dataclass(frozen=True, slots=True)
class HourStaffing:
    """What the history says one hour of the day needs."""

    hour: int  # 0..23 in the given time zone
    observed_hours: float  # how much of this hour of day the period covered
    calls_per_hour: float  # offered calls per hour, averaged over the period's days
    aht: float | None  # measured talk + wrap-up of calls entering in this hour
    traffic: float  # Erlangs
    agents: int | None  # None: no AHT measured at all
    scheduled: int | None


def _coverage(since: float, until: float, tz: tzinfo) -> dict[int, float]:
    """Hours of each hour of day in [since, until), by local clock."""
    if until - since > MAX_STAFFING_DAYS * 86400:
        raise ConfigError(f"the staffing period is longer than {MAX_STAFFING_DAYS} days")
    covered: dict[int, float] = {}
    t = since
    while t < until:  # at most 24 * MAX_STAFFING_DAYS + 1 steps
        local = datetime.fromtimestamp(t, tz)
        into = local.minute * 60 + local.second + local.microsecond / 1e6
        end = min(until, t - into + 3600.0)
        covered[local.hour] = covered.get(local.hour, 0.0) + (end - t) / 3600.0
        t = end
    return covered


def staffing_by_hour(
    events: Iterable[QueueEvent],
    since: float,
    until: float,
    target: float,
    threshold: float,
    *,
    queue: str | None = None,
    max_occupancy: float | None = None,
    shrinkage: float | None = None,
    tz: tzinfo = UTC,
) -> list[HourStaffing]:
    """Agents each hour of the day needs (Erlang C) from the measured history:
    offered calls per hour (calls entering in that hour of day divided by the hours of
    it the period covers), the AHT of those calls (talk + wrap-up; the whole period's
    when the hour has no completed call). Hours the period does not cover are left out.

    Raises:
        ConfigError: a bad period (or one over MAX_STAFFING_DAYS), target or cap.
    """
    records = [r for r in calls(events, since, until) if queue is None or r.queue == queue]
    covered = _coverage(since, until, tz)
    done = [r for r in records if r.completed is not None]
    overall = _mean([r.talk + r.wrapup for r in done])
    result = []
    for hour in sorted(covered):
        mine = [r for r in records if datetime.fromtimestamp(r.entered, tz).hour == hour]
        rate = len(mine) / covered[hour]
        aht = _mean([r.talk + r.wrapup for r in mine if r.completed is not None])
        if aht is None:
            aht = overall
        agents = heads = None
        offered = rate / 3600.0 * aht if aht is not None else 0.0
        if aht is not None:
            agents = (
                agents_for(target, threshold, offered, aht, max_occupancy).agents if rate else 0
            )
            heads = scheduled(agents, shrinkage) if shrinkage is not None else None
        result.append(HourStaffing(hour, covered[hour], rate, aht, offered, agents, heads))
    return result
