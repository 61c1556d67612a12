"""Property tests: the parser raises nothing but SipParseError, and what parses round-trips."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.errors import SipParseError
from sip.headers import NameAddr, Via
from sip.message import StreamFramer, parse_message
from sip.uri import parse_uri
from sip.validate import check_request

DATA = Path(__file__).parent.parent / "data" / "rfc4475"
TORTURE = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"})
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Octets that matter to the grammar, so mutations hit the interesting paths.
SPECIAL = st.sampled_from(
    [
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"=",
        b'"',
        b"\\",
        b"<",
        b">",
        b"@",
        b"%",
        b"?",
        b"&",
        b"/",
        b"\x00",
        b"\xff",
        b"\r\n ",
        b"\r\n\r\n",
        b"SIP/2.0",
        b"0",
    ]
)


def parse_or_reject(data: bytes) -> None:
    """The property: SipParseError, or a message equal to its own re-parse."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert 400 <= exc.status <= 599
        return
    again = parse_message(bytes(msg))
    assert again == msg
    assert again.via == msg.via and again.to == msg.to and again.from_ == msg.from_
    if hasattr(msg, "method"):
        check_request(msg, methods=METHODS)  # type: ignore[arg-type]


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    parse_or_reject(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(TORTURE)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            data[pos:pos] = draw(SPECIAL | st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif action == "replace" and pos < len(data):
            data[pos : pos + 1] = draw(SPECIAL)
        else:
            end = data.find(b"\r\n", pos)
            if end > 0:
                start = data.rfind(b"\r\n", 0, pos) + 2
                data[end:end] = b"\r\n" + data[start:end]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_torture_messages(data: bytes) -> None:
    parse_or_reject(data)


TEXT = st.text(
    alphabet=st.sampled_from([*list("abcAZ09 \t;:,=@<>\"\\%?&/[].-+*!~'()"), "é", "\x00"]),
    max_size=40,
)


@FUZZ
@given(TEXT)
def test_field_parsers_raise_only_sip_parse_error(text: str) -> None:
    for parse in (parse_uri, NameAddr.parse, NameAddr.parse_list, Via.parse_list):
        try:
            value = parse(text)  # type: ignore[operator]
        except SipParseError:
            continue
        if parse is parse_uri:
            assert parse_uri(str(value)) == value
        elif parse is NameAddr.parse:
            assert NameAddr.parse(str(value)) == value


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_framer_raises_only_sip_parse_error(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_size=1024)
    try:
        for chunk in chunks:
            for item in framer.feed(chunk):
                assert item
    except SipParseError as exc:
        assert exc.status in (400, 513)
