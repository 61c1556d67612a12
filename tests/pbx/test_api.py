"""The Call API's pure parts: outcomes from SIP statuses, per-call event subscriptions
(bounded, a slow subscriber dropped), the header rule of `Switch.dial`."""

from __future__ import annotations

import pytest

from pbx.api import CallEvent, Cause, EventKind, Outcome, PbxError, Subscription
from pbx.api.switch import _checked_headers
from sip.uri import is_user


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (200, Cause.NORMAL),
        (486, Cause.BUSY),
        (600, Cause.BUSY),
        (408, Cause.NO_ANSWER),
        (480, Cause.UNAVAILABLE),
        (404, Cause.NOT_FOUND),
        (487, Cause.CANCELLED),
        (603, Cause.REJECTED),
        (482, Cause.LOOP),
        (500, Cause.FAILED),
        (0, Cause.FAILED),
    ],
)
def test_outcome_of_status(status: int, cause: Cause) -> None:
    outcome = Outcome.of_status(status, "why")
    assert (outcome.cause, outcome.status, outcome.reason) == (cause, status, "why")


def test_outcome_reads_as_status_and_words() -> None:
    assert str(Outcome(Cause.BUSY, 486, "486 from 1002")) == "486 from 1002"  # said once
    assert str(Outcome(Cause.BUSY, 486, "Busy Here")) == "486 Busy Here"
    assert str(Outcome(Cause.NORMAL)) == "normal"


async def test_subscription_ends_after_the_end_event() -> None:
    sub = Subscription("c1", maxsize=4)
    sub._offer(CallEvent(EventKind.DTMF, "c1", digit="5"))
    sub._offer(CallEvent(EventKind.ENDED, "c1", outcome=Outcome(Cause.NORMAL)))
    sub._offer(CallEvent(EventKind.DTMF, "c1", digit="6"))  # after the end: not kept
    got = [event async for event in sub]
    assert [(e.kind, e.digit) for e in got] == [(EventKind.DTMF, "5"), (EventKind.ENDED, "")]


async def test_a_subscriber_that_does_not_read_is_dropped() -> None:
    sub = Subscription("c1", maxsize=2)
    for digit in "1234":
        sub._offer(CallEvent(EventKind.DTMF, "c1", digit=digit))
    assert sub.dropped and sub.closed
    assert [e.digit async for e in sub] == ["1", "2"]  # what it had, then the end


def test_dial_headers_the_application_may_set() -> None:
    assert _checked_headers([("X-Campaign", "42"), ("Call-Info", "<urn:x>")]) == [
        ("X-Campaign", "42"),
        ("Call-Info", "<urn:x>"),
    ]
    for bad in [("Via", "x"), ("call-id", "x"), ("X-A", "1\r\nVia: evil"), ("X A", "1")]:
        with pytest.raises(PbxError):
            _checked_headers([bad])


@pytest.mark.parametrize(("text", "ok"), [("1001", True), ("+15551234", True), ("a/b;c", True),
                                          ("trunk:out/1", False), ("", False), ("a b", False),
                                          ("x@y", False)])  # fmt: skip
def test_caller_ids_are_checked_as_sip_user_parts(text: str, ok: bool) -> None:
    assert is_user(text) is ok
