"""The pure parts of MWI: the RFC 3842 body, Expires decisions, Subscription-State."""

from __future__ import annotations

import pytest

from pbx.config import Settings
from pbx.mwi import (
    CONTENT_TYPE,
    EVENT,
    MessageSummary,
    MwiPolicy,
    Refusal,
    accepts_summary,
    event_package,
    granted_expires,
    subscription_state,
)
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import Request
from sip.uri import parse_uri


def test_constants_name_the_rfc_3842_package() -> None:
    assert EVENT == "message-summary"
    assert CONTENT_TYPE == "application/simple-message-summary"


@pytest.mark.parametrize(
    ("summary", "wire"),
    [
        (
            MessageSummary.of(0, 0, "sip:1001@127.0.0.1"),
            b"Messages-Waiting: no\r\nMessage-Account: sip:1001@127.0.0.1\r\n"
            b"Voice-Message: 0/0\r\n",
        ),
        (
            MessageSummary.of(1, 0, "sip:1001@pbx.example"),
            b"Messages-Waiting: yes\r\nMessage-Account: sip:1001@pbx.example\r\n"
            b"Voice-Message: 1/0\r\n",
        ),
        (
            MessageSummary.of(0, 7),
            b"Messages-Waiting: no\r\nVoice-Message: 0/7\r\n",
        ),
        (
            MessageSummary.of(12, 3),
            b"Messages-Waiting: yes\r\nVoice-Message: 12/3\r\n",
        ),
    ],
)
def test_summary_bytes_and_round_trip(summary: MessageSummary, wire: bytes) -> None:
    assert bytes(summary) == wire
    assert MessageSummary.parse(wire) == summary


def test_light_follows_new_messages_only() -> None:
    assert MessageSummary.of(1, 0).waiting
    assert not MessageSummary.of(0, 5).waiting


def test_parse_reads_what_other_notifiers_send() -> None:
    # RFC 3842 §5.2's example shape: urgent counts in parentheses, other classes,
    # names in any case, LF line ends.
    body = (
        b"messages-waiting: YES\n"
        b"Message-Account: sip:alice@vmail.example.com\n"
        b"Voice-Message: 2/8 (0/2)\n"
        b"Fax-Message: 1/1\n"
    )
    assert MessageSummary.parse(body) == MessageSummary(True, 2, 8, "sip:alice@vmail.example.com")


def test_parse_without_voice_line_has_zero_counts() -> None:
    assert MessageSummary.parse(b"Messages-Waiting: no\r\n") == MessageSummary(False, 0, 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "message-summary body without Messages-Waiting"),
        (b"Voice-Message: 1/0\r\n", "message-summary body without Messages-Waiting"),
        (b"Messages-Waiting: maybe\r\n", "bad Messages-Waiting value 'maybe'"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 1\r\n", "bad Voice-Message value '1'"),
        (b"Messages-Waiting: yes\r\nVoice-Message: a/b\r\n", "bad Voice-Message value 'a/b'"),
        (b"Messages-Waiting: \xff\r\n", "message-summary body is not UTF-8"),
    ],
)
def test_parse_errors(body: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        MessageSummary.parse(body)
    assert caught.value.reason == reason
    assert caught.value.status == 400


POLICY = MwiPolicy(min_expires=60, max_expires=3600, default_expires=1800)


@pytest.mark.parametrize(
    ("value", "granted"),
    [
        (None, 1800),  # absent: the default
        ("3600", 3600),
        (" 600 ", 600),
        ("60", 60),  # the minimum itself is fine
        ("86400", 3600),  # longer than allowed: shortened, never lengthened
        ("9" * 5000, 3600),  # absurdly long: the maximum, not an int() error
        ("0" * 30 + "30", Refusal(423, None, (("Min-Expires", "60"),))),  # long but small
        ("0", 0),  # unsubscribe (or a one-time fetch)
        ("59", Refusal(423, None, (("Min-Expires", "60"),))),
        ("1", Refusal(423, None, (("Min-Expires", "60"),))),
        ("-5", Refusal(400, "Bad Expires")),
        ("soon", Refusal(400, "Bad Expires")),
        ("", Refusal(400, "Bad Expires")),
        ("\u00b2", Refusal(400, "Bad Expires")),  # a digit to str.isdigit, not to SIP
    ],
)
def test_granted_expires(value: str | None, granted: int | Refusal) -> None:
    assert granted_expires(value, POLICY) == granted


def test_policy_follows_the_registrar_settings() -> None:
    settings = Settings(min_expires=30, max_expires=900, default_expires=600)
    assert MwiPolicy.from_settings(settings) == MwiPolicy(30, 900, 600)


@pytest.mark.parametrize(
    ("expires_at", "now", "ending", "state"),
    [
        (1000.0, 400.0, None, "active;expires=600"),
        (1000.0, 400.2, None, "active;expires=600"),  # rounded up: never claims less
        (1000.0, 1000.0, None, "active;expires=0"),
        (1000.0, 1200.0, None, "active;expires=0"),
        (1000.0, 400.0, "timeout", "terminated;reason=timeout"),
        (1000.0, 400.0, "noresource", "terminated;reason=noresource"),
    ],
)
def test_subscription_state(expires_at: float, now: float, ending: str | None, state: str) -> None:
    assert subscription_state(expires_at, now, ending) == state


@pytest.mark.parametrize(
    ("value", "package"),
    [
        ("message-summary", "message-summary"),
        ("message-summary;id=7", "message-summary"),
        (" Message-Summary ", "message-summary"),
        ("presence", "presence"),
        ("", None),
        (None, None),
    ],
)
def test_event_package(value: str | None, package: str | None) -> None:
    assert event_package(value) == package


def _subscribe(*extra: tuple[str, str]) -> Request:
    fields = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1"),
        ("From", "<sip:1001@127.0.0.1>;tag=a"),
        ("To", "<sip:1001@127.0.0.1>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 SUBSCRIBE"),
        *extra,
    ]
    return Request("SUBSCRIBE", parse_uri("sip:1001@127.0.0.1"), Headers(fields))


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        ((), True),  # no Accept: the package's default type
        ((("Accept", "application/simple-message-summary"),), True),
        ((("Accept", "application/sdp, application/simple-message-summary;q=0.5"),), True),
        ((("Accept", "application/*"),), True),
        ((("Accept", "*/*"),), True),
        ((("Accept", "application/sdp"),), False),
        ((("Accept", "text/plain"), ("Accept", "application/pidf+xml")), False),
    ],
)
def test_accepts_summary(accept: tuple[tuple[str, str], ...], ok: bool) -> None:
    assert accepts_summary(_subscribe(*accept)) is ok
