"""Queue and agent statistics on constructed queue-event lists; every expected value is
worked out by hand in the comments beside it."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import pytest

from acd.model import QueueEvent
from acd.stats import (
    AgentStats,
    agent_stats,
    as_rows,
    calls,
    queue_stats,
    staffing_by_hour,
    text_rows,
)
from pbx.errors import ConfigError


def ev(t: float, call: str, queue: str, agent: str | None, event: str, **data: Any) -> QueueEvent:
    return QueueEvent(t, call, queue, agent, event, data)


SINCE, UNTIL = 1000.0, 2000.0

# One period [1000, 2000) of two queues and five agents. Call ids: cN in sales, sN in
# support; c5 overflows from sales to support.
EVENTS = [
    # before the period: a1 logs in; c0 enters (not the period's call) and a1 takes it
    ev(900, "", "", "a1", "AGENTLOGIN"),
    ev(990, "c0", "sales", None, "ENTERQUEUE", caller="100", position=1),
    ev(1005, "c0", "sales", "a1", "CONNECT", hold=15, ring=2),
    ev(1105, "c0", "sales", "a1", "COMPLETECALLER", hold=15, talk=100, position=1),
    # a2 logs in to both queues at once (one login), a3 ends a pause begun before
    ev(1000, "", "sales", "a2", "AGENTLOGIN"),
    ev(1000, "", "support", "a2", "AGENTLOGIN"),
    ev(1050, "", "", "a3", "UNPAUSE", paused=100, reason="training"),
    # c1: answered in 10 s by a2, 180 s talk, 30 s wrap-up named by call id
    ev(1010, "c1", "sales", None, "ENTERQUEUE", caller="101", position=1),
    ev(1020, "c1", "sales", "a2", "CONNECT", hold=10, ring=3),
    ev(1200, "c1", "sales", "a2", "COMPLETEAGENT", hold=10, talk=180, position=1),
    ev(1230, "c1", "sales", "a2", "WRAPUPEND", wrapup=30),
    # c2 abandons after 10 s (within 20), c3 after 60 s
    ev(1030, "c2", "sales", None, "ENTERQUEUE", caller="102", position=1),
    ev(1040, "c2", "sales", None, "ABANDON", position=1, entry_position=1, wait=10),
    ev(1050, "c3", "sales", None, "ENTERQUEUE", caller="103", position=1),
    ev(1110, "c3", "sales", None, "ABANDON", position=1, entry_position=1, wait=60),
    # c4: a1 misses it once, then answers after 30 s; 120 s talk, 10 s wrap-up without a
    # call id (it goes to a1's last completed call)
    ev(1100, "c4", "sales", None, "ENTERQUEUE", caller="104", position=1),
    ev(1102, "c4", "sales", "a1", "RINGNOANSWER", ring=15),
    ev(1130, "c4", "sales", "a1", "CONNECT", hold=30, ring=4),
    ev(1250, "c4", "sales", "a1", "COMPLETECALLER", hold=30, talk=120, position=1),
    ev(1260, "", "", "a1", "WRAPUPEND", wrapup=10),
    # support: s1 answered by a3 after 25 s (within support's 30), 175 s talk
    ev(1100, "s1", "support", None, "ENTERQUEUE", caller="201", position=1),
    ev(1125, "s1", "support", "a3", "CONNECT", hold=25, ring=5),
    ev(1300, "s1", "support", "a3", "COMPLETECALLER", hold=25, talk=175, position=1),
    # c5 times out of sales after 300 s and overflows to support: answered there in 10 s
    ev(1200, "c5", "sales", None, "ENTERQUEUE", caller="105", position=2),
    ev(1500, "c5", "sales", None, "EXITWITHTIMEOUT", position=1, entry_position=2, wait=300),
    ev(1500, "c5", "support", None, "ENTERQUEUE", caller="105", position=1),
    ev(1510, "c5", "support", "a3", "CONNECT", hold=10, ring=6),
    ev(1600, "c5", "support", "a3", "COMPLETEAGENT", hold=10, talk=90, position=1),
    # a2 pauses for a break (announced by both queues: one pause), a1 for lunch
    ev(1250, "", "sales", "a2", "PAUSE", reason="break"),
    ev(1250, "", "support", "a2", "PAUSE", reason="break"),
    ev(1280, "", "sales", "a2", "UNPAUSE", paused=30),
    ev(1280, "", "support", "a2", "UNPAUSE", paused=30),
    ev(1300, "", "", "a1", "PAUSE", reason="lunch"),
    ev(1600, "", "", "a1", "UNPAUSE", paused=300),
    # c6 leaves with key 9, c7 finds the queue empty
    ev(1300, "c6", "sales", None, "ENTERQUEUE", caller="106", position=1),
    ev(1305, "c6", "sales", None, "EXITWITHKEY", key="9", position=1, wait=5),
    ev(1400, "c7", "sales", None, "ENTERQUEUE", caller="107", position=1),
    ev(1400, "c7", "sales", None, "EXITEMPTY", position=1, entry_position=1, wait=0),
    # c8 asks for a callback, is called back twice, answered by a2 after 200 s and
    # transferred after 100 s of talk
    ev(1500, "c8", "sales", None, "ENTERQUEUE", caller="108", position=1),
    ev(1520, "c8", "sales", None, "CALLBACKREQUEST", number="108", position=1, wait=20),
    ev(1600, "c8", "sales", None, "CALLBACKATTEMPT", attempt=1, status="no-answer"),
    ev(1700, "c8", "sales", None, "CALLBACKATTEMPT", attempt=2, status="answered"),
    ev(1700, "c8", "sales", "a2", "CONNECT", hold=200, ring=1),
    ev(1800, "c8", "sales", "a2", "TRANSFER", target="2000", hold=200, talk=100),
    # a5 logs in and pauses at once: no time to be occupied (occupancy None)
    ev(1500, "", "", "a5", "AGENTLOGIN"),
    ev(1500, "", "", "a5", "PAUSE", reason="meeting"),
    # a3 logs off (it logged in at 1700 - 1200 = 500, before the events)
    ev(1700, "", "", "a3", "AGENTLOGOFF", logged=1200),
    # a1 logs off; a2 pauses without a reason until the end
    ev(1900, "", "", "a1", "AGENTLOGOFF", logged=1000),
    ev(1900, "", "", "a2", "PAUSE"),
    # c9 and c10 still wait at 2000 (c9's answer comes too late for this report)
    ev(1900, "c9", "sales", None, "ENTERQUEUE", caller="109", position=1),
    ev(1950, "c10", "sales", None, "ENTERQUEUE", caller="110", position=2),
    # s2: a4 logs in, misses one offer, answers s2 after 30 s and still talks at 2000
    ev(1950, "s2", "support", None, "ENTERQUEUE", caller="202", position=1),
    ev(1970, "", "", "a4", "AGENTLOGIN"),
    ev(1975, "s2", "support", "a4", "RINGNOANSWER", ring=5),
    ev(1980, "s2", "support", "a4", "CONNECT", hold=30, ring=5),
    # after the period: none of this counts
    ev(2000, "c11", "sales", None, "ENTERQUEUE", caller="111", position=3),
    ev(2010, "c9", "sales", "a1", "CONNECT", hold=110, ring=2),
]


def test_queue_figures_by_hand() -> None:
    stats = queue_stats(EVENTS, SINCE, UNTIL, thresholds={"support": 30.0})
    assert list(stats) == ["sales", "support"]
    sales = stats["sales"]
    # c1..c10 entered in [1000, 2000); c0 (990) and c11 (2000) did not
    assert sales.offered == 10
    # answered c1 (hold 10), c4 (30), c8 (200); within 20 s: c1 only
    assert (sales.answered, sales.answered_within) == (3, 1)
    # abandoned c2 (10 s, within 20) and c3 (60 s)
    assert (sales.abandoned, sales.abandoned_within) == (2, 1)
    assert (sales.exit_empty, sales.exit_timeout, sales.exit_key) == (1, 1, 1)
    # c8: requested, 2 attempts, connected; nothing dropped
    assert (sales.callbacks_requested, sales.callback_attempts) == (1, 2)
    assert (sales.callbacks_connected, sales.callbacks_dropped) == (1, 0)
    assert (sales.transferred, sales.completed, sales.waiting) == (1, 3, 2)
    assert sales.sl == pytest.approx(1 / 3)  # 1 within / 3 answered
    assert sales.sl2 == pytest.approx(0.4)  # (1 + 1) / (3 + 2)
    assert sales.asa == pytest.approx(80.0)  # (10 + 30 + 200) / 3
    # (180 + 30) + (120 + 10) + (100 + 0) = 440 over 3 completed calls
    assert sales.aht == pytest.approx(440 / 3)
    assert sales.avg_talk == pytest.approx(400 / 3)  # (180 + 120 + 100) / 3
    # waits: 10 10 60 30 300 5 0 200, c9 2000-1900 = 100, c10 50: the longest is c5's
    assert sales.longest_wait == 300.0
    assert sales.threshold == 20.0

    support = stats["support"]
    # s1 (25 s), c5 (10 s), s2 (30 s): all within support's 30 s
    assert (support.offered, support.answered, support.answered_within) == (3, 3, 3)
    assert (support.sl, support.sl2) == (1.0, 1.0)  # 3/3 and (3 + 0)/(3 + 0)
    assert support.asa == pytest.approx(65 / 3)  # (25 + 10 + 30) / 3
    assert (support.completed, support.waiting) == (2, 0)  # s2 still talking
    assert support.aht == pytest.approx(132.5)  # (175 + 90) / 2, no wrap-up
    assert support.longest_wait == 30.0


def test_agent_figures_clipped_to_the_period() -> None:
    stats = agent_stats(EVENTS, SINCE, UNTIL)
    assert list(stats) == ["a1", "a2", "a3", "a4", "a5"]
    # a1: logged 900..1900, clipped 1000..1900 = 900; lunch 1300..1600 = 300; talk c0
    # 1005..1105 = 100 and c4 1130..1250 = 120; wrap-up 10; c9's CONNECT at 2010 is late
    assert stats["a1"] == AgentStats(
        "a1", answered=2, completed=2, ring_no_answer=1, talk=220.0, wrapup=10.0,
        paused=300.0, logged=900.0, pauses={"lunch": 300.0},
        occupancy=pytest.approx(230 / 600),  # (220 + 10) / (900 - 300)
    )  # fmt: skip
    # a2: logged 1000..2000 = 1000 (one login for two queues); break 1250..1280 = 30 (once),
    # no reason 1900..2000 = 100; talk c1 180 + c8 100; wrap-up 30
    assert stats["a2"] == AgentStats(
        "a2", answered=2, completed=2, ring_no_answer=0, talk=280.0, wrapup=30.0,
        paused=130.0, logged=1000.0, pauses={"": 100.0, "break": 30.0},
        occupancy=pytest.approx(310 / 870),  # (280 + 30) / (1000 - 130)
    )  # fmt: skip
    # a3: logged 500..1700 (from the logoff's 1200 s), clipped 1000..1700 = 700; training
    # 950..1050 (from the unpause's 100 s), clipped 1000..1050 = 50; talk 175 + 90
    assert stats["a3"] == AgentStats(
        "a3", answered=2, completed=2, ring_no_answer=0, talk=265.0, wrapup=0.0,
        paused=50.0, logged=700.0, pauses={"training": 50.0},
        occupancy=pytest.approx(265 / 650),  # 265 / (700 - 50)
    )  # fmt: skip
    # a4: logged 1970..2000 = 30, talking 1980..2000 = 20 at the end of the period
    assert stats["a4"] == AgentStats(
        "a4", answered=1, completed=0, ring_no_answer=1, talk=20.0, wrapup=0.0,
        paused=0.0, logged=30.0, pauses={}, occupancy=pytest.approx(20 / 30),
    )  # fmt: skip
    # a5: logged 500 s, all of it paused: occupancy has no denominator
    assert stats["a5"].occupancy is None
    assert (stats["a5"].logged, stats["a5"].pauses) == (500.0, {"meeting": 500.0})


def test_a_later_period_sees_only_its_part() -> None:
    # [1100, 1400): a1 logged all 300 s, lunch 1300..1400 = 100; talk c0 1100..1105 = 5
    # and c4 1130..1250 = 120; c4's CONNECT (1130) counts, c0's (1005) does not
    a1 = agent_stats(EVENTS, 1100, 1400)["a1"]
    assert (a1.logged, a1.paused, a1.talk, a1.wrapup) == (300.0, 100.0, 125.0, 10.0)
    assert (a1.answered, a1.completed) == (1, 2)
    # the calls entering in [1100, 1400): c4, s1, c5, c6 (c7 enters at 1400)
    assert [(r.queue, r.call_id) for r in calls(EVENTS, 1100, 1400)] == [
        ("sales", "c4"), ("support", "s1"), ("sales", "c5"), ("sales", "c6"),
    ]  # fmt: skip
    sales = queue_stats(EVENTS, 1100, 1400)["sales"]
    # c5 has no outcome before 1400: waiting, 1400 - 1200 = 200 s so far
    assert (sales.offered, sales.answered, sales.waiting, sales.longest_wait) == (3, 1, 1, 200.0)
    # c4 entered at 1100 and ended at 1250, its wrap-up at 1260: all before 1400
    assert sales.aht == pytest.approx(130.0)


def test_zero_denominators_print_a_dash() -> None:
    events = [
        ev(10, "x1", "q", None, "ENTERQUEUE", caller="1", position=1),
        ev(50, "x1", "q", None, "ABANDON", position=1, entry_position=1, wait=40),
    ]
    q = queue_stats(events, 0, 100)["q"]
    assert (q.sl, q.asa, q.aht, q.avg_talk) == (None, None, None, None)
    assert q.sl2 == 0.0  # (0 + 0) / (0 + 1): the abandon took longer than 20 s
    row = text_rows([q])[0]
    assert (row["sl"], row["asa"], row["aht"], row["sl2"]) == ("-", "-", "-", "0.0 %")
    assert as_rows([q])[0]["sl"] is None
    assert queue_stats([], 0, 100) == {} and agent_stats([], 0, 100) == {}


def test_rows_have_every_column_in_order() -> None:
    q = queue_stats(EVENTS, SINCE, UNTIL)["sales"]
    row = as_rows([q])[0]
    assert list(row)[:4] == ["queue", "threshold", "offered", "answered"]
    assert text_rows([q])[0]["sl"] == "33.3 %"
    a2 = as_rows([agent_stats(EVENTS, SINCE, UNTIL)["a2"]])[0]
    assert a2["pauses"] == "=100;break=30"
    assert text_rows([agent_stats(EVENTS, SINCE, UNTIL)["a2"]])[0]["occupancy"] == "35.6 %"


def test_malformed_data_counts_zero() -> None:
    events = [
        ev(10, "x1", "q", None, "ENTERQUEUE", caller="1", position="?"),
        ev(15, "x1", "q", "a", "CONNECT", hold="nan"),
    ]
    q = queue_stats(events, 0, 100)["q"]
    assert (q.answered, q.asa) == (1, 0.0)


@pytest.mark.parametrize(("since", "until"), [(10, 10), (20, 10), (float("nan"), 10)])
def test_bad_period(since: float, until: float) -> None:
    with pytest.raises(ConfigError, match=r"^the period must start before it ends"):
        queue_stats([], since, until)


DAY = 86400.0
DAY0 = 20000 * DAY  # a midnight UTC (2024-10-04)


def _completed_call(t: float, call: str, talk: float, wrapup: float) -> list[QueueEvent]:
    return [
        ev(t, call, "q", None, "ENTERQUEUE", caller="1", position=1),
        ev(t + 5, call, "q", "a", "CONNECT", hold=5, ring=1),
        ev(t + 5 + talk, call, "q", "a", "COMPLETEAGENT", hold=5, talk=talk, position=1),
        ev(t + 5 + talk + wrapup, call, "q", "a", "WRAPUPEND", wrapup=wrapup),
    ]


def test_staffing_by_hour_over_two_days() -> None:
    events: list[QueueEvent] = []
    # 09:00-10:00: 10 calls on day 0, 20 on day 1; each 100 s talk + 20 s wrap-up
    for day, count in ((0, 10), (1, 20)):
        for i in range(count):
            t = DAY0 + day * DAY + 9 * 3600 + i * 60
            events += _completed_call(t, f"d{day}-{i}", 100, 20)
    # 14:00-15:00: one abandoned call each day (no AHT of its own: the period's, 120)
    for day in (0, 1):
        t = DAY0 + day * DAY + 14 * 3600
        events += [
            ev(t, f"ab{day}", "q", None, "ENTERQUEUE", caller="1", position=1),
            ev(t + 30, f"ab{day}", "q", None, "ABANDON", position=1, wait=30),
        ]
    events.append(ev(DAY0 + 9 * 3600, "other", "elsewhere", None, "ENTERQUEUE"))
    hours = staffing_by_hour(events, DAY0, DAY0 + 2 * DAY, 0.8, 20, queue="q", shrinkage=0.3)
    assert [h.hour for h in hours] == list(range(24))
    assert all(h.observed_hours == 2.0 for h in hours)
    nine, ten, two = hours[9], hours[10], hours[14]
    # 30 calls over two 09:00 hours: 15 an hour; A = 15/3600 * 120 = 0.5 Erlang;
    # N = 1: P_wait = A = 0.5, SL = 1 - 0.5 e^(-0.5*20/120) = 0.54; N = 2: B = 0.125/1.625,
    # C = 0.1, SL = 1 - 0.1 e^(-1.5*20/120) = 0.92: two agents, ceil(2/0.7) = 3 scheduled
    assert (nine.calls_per_hour, nine.aht, nine.traffic) == (15.0, 120.0, pytest.approx(0.5))
    assert (nine.agents, nine.scheduled) == (2, 3)
    assert (ten.calls_per_hour, ten.traffic, ten.agents, ten.scheduled) == (0.0, 0.0, 0, 0)
    # 1 call an hour, A = 120/3600: one agent (SL 1 - A e^(-(1-A)*20/120) = 0.97)
    assert (two.calls_per_hour, two.aht, two.agents) == (1.0, 120.0, 1)


def test_staffing_by_hour_partial_hours_and_time_zone() -> None:
    since = DAY0 + 9 * 3600 + 1800  # 09:30 UTC
    until = DAY0 + 10 * 3600 + 900  # 10:15 UTC
    events = [e for i in range(3) for e in _completed_call(since + 600 + i * 60, f"c{i}", 60, 0)]
    hours = staffing_by_hour(events, since, until, 0.8, 20)
    # 3 calls in the half hour 09:30-10:00: 6 an hour; 10:00-10:15 covered, no calls
    assert [(h.hour, h.observed_hours, h.calls_per_hour) for h in hours] == [
        (9, 0.5, 6.0), (10, 0.25, 0.0),
    ]  # fmt: skip
    assert hours[1].aht == 60.0  # the period's AHT for an hour without calls
    plus2 = staffing_by_hour(events, since, until, 0.8, 20, tz=timezone(timedelta(hours=2)))
    assert [h.hour for h in plus2] == [11, 12]
    # no completed call at all: no AHT, no head count
    empty = staffing_by_hour([], since, until, 0.8, 20)
    assert [(h.aht, h.agents) for h in empty] == [(None, None), (None, None)]


def test_staffing_period_limit() -> None:
    with pytest.raises(ConfigError, match="longer than 400 days"):
        staffing_by_hour([], 0, 401 * DAY, 0.8, 20)


def test_second_visit_and_completion_without_agent() -> None:
    events = [
        # x1 enters q, leaves with a key, comes back to q and is answered by b after 5 s
        ev(10, "x1", "q", None, "ENTERQUEUE", caller="1", position=1),
        ev(20, "x1", "q", None, "EXITWITHKEY", key="5", position=1, wait=10),
        ev(30, "x1", "q", None, "ENTERQUEUE", caller="1", position=1),
        ev(35, "x1", "q", "b", "CONNECT", hold=5, ring=1),
        # the caller hangs up; the event names no agent: the talk is b's all the same
        ev(95, "x1", "q", None, "COMPLETECALLER", hold=5, talk=60, position=1),
    ]
    q = queue_stats(events, 0, 100)["q"]
    # two visits: one exit by key (10 s), one answered in 5 s with 60 s talk
    assert (q.offered, q.exit_key, q.answered, q.completed) == (2, 1, 1, 1)
    assert (q.asa, q.aht, q.longest_wait) == (5.0, 60.0, 10.0)
    b = agent_stats(events, 0, 100)["b"]
    assert (b.answered, b.completed, b.talk) == (1, 1, 60.0)


def test_wrapup_without_call_id_of_an_earlier_call_is_not_misplaced() -> None:
    events = [
        ev(5, "old", "q", None, "ENTERQUEUE", caller="1", position=1),  # before the period
        ev(20, "new", "q", None, "ENTERQUEUE", caller="2", position=2),
        ev(21, "new", "q", "a", "CONNECT", hold=1, ring=1),
        ev(30, "new", "q", "a", "COMPLETEAGENT", hold=1, talk=9, position=2),
        ev(31, "new", "q", "a", "WRAPUPEND", wrapup=1),
        ev(32, "old", "q", "a", "CONNECT", hold=27, ring=1),
        ev(40, "old", "q", "a", "COMPLETEAGENT", hold=27, talk=8, position=1),
        ev(50, "", "", "a", "WRAPUPEND", wrapup=10),  # old's wrap-up: not new's
    ]
    q = queue_stats(events, 10, 100)["q"]
    assert (q.offered, q.completed, q.aht) == (1, 1, 10.0)  # new: 9 talk + 1 wrap-up
