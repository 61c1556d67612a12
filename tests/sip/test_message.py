"""parse_message, serialization, make_response, StreamFramer and check_request."""

from __future__ import annotations

import pytest

from sip.errors import SipParseError
from sip.headers import CSeq, Headers
from sip.message import (
    KEEPALIVE_PING,
    REASONS,
    Request,
    Response,
    StreamFramer,
    make_response,
    parse_message,
)
from sip.uri import SipUri
from sip.validate import Rejection, check_request

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1,"
    b" SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:proxy.example.com;lr>\r\n"
    b"Contact: <sip:alice@pc33.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"})


def invite(old: str = "", new: bytes = b"") -> Request:
    data = INVITE.replace(old.encode(), new) if old else INVITE
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def with_header(data: bytes, line: bytes) -> bytes:
    return data.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + line + b"\r\n")


def test_parse_request_fields() -> None:
    req = invite()
    assert req.method == "INVITE"
    assert req.uri == SipUri.parse("sip:bob@example.com")
    assert [v.branch for v in req.via] == ["z9hG4bK776asdhds", "z9hG4bK1", "z9hG4bK2"]
    assert req.call_id == "a84b4c76e66710@pc33.example.com"
    assert req.cseq == CSeq(314159, "INVITE")
    assert (req.from_.display_name, req.from_.tag) == ("Alice", "1928301774")
    assert (req.to.display_name, req.to.tag) == ("Bob", None)
    assert req.max_forwards == 70
    assert req.body == b"v=0\n"
    # Content-Length is framing: consumed by the parser, written by __bytes__
    assert "Content-Length" not in req.headers


def test_serialization_is_exact_and_round_trips() -> None:
    req = invite()
    wire = bytes(req)
    assert wire == INVITE
    assert parse_message(wire) == req


def test_compact_names_folding_and_case() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"f: <sip:c@d>;tag=1\r\n"
        b"t:\r\n <sip:a@b>\r\n"
        b"i: abc\r\n"
        b"CSEQ: 1\r\n\tOPTIONS\r\n"
        b"X-Folded: one\r\n two\r\n   three\r\n"
        b"l: 0\r\n\r\n"
    )
    req = parse_message(data)
    assert req.cseq == CSeq(1, "OPTIONS")
    assert req.headers.get("x-folded") == "one two three"
    assert list(req.headers)[:3] == [
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"),
        ("From", "<sip:c@d>;tag=1"),
        ("To", "<sip:a@b>"),
    ]
    assert bytes(req).startswith(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
    )


def test_version_is_case_insensitive_and_other_versions_are_505() -> None:
    assert parse_message(INVITE.replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1)) == invite()
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1))
    assert info.value.status == 505
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b" SIP/2.0\r\n", b" HTTP/1.1\r\n", 1))
    assert info.value.status == 400


def test_content_length_framing_of_datagrams() -> None:
    shorter = INVITE.replace(b"Content-Length: 4", b"Content-Length: 2")
    assert parse_message(shorter).body == b"v="
    absent = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(absent).body == b"v=0\n"
    for bad in (b"Content-Length: 5", b"Content-Length: x", b"Content-Length: 4\r\nl: 4"):
        with pytest.raises(SipParseError) as info:
            parse_message(INVITE.replace(b"Content-Length: 4", bad))
        assert info.value.status == 400


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"Max-Forwards: 256", "Max-Forwards out of range"),
        (b"Max-Forwards: -1", "Max-Forwards is not a number"),
        (b"Content-Type: text/plain", "more than one Content-Type"),
        (b"Call-ID: second", "more than one Call-ID"),
        (b"To: <sip:x@y>", "more than one To"),
        (b"Bad Header: x", "header line without a colon"),
        (b": novalue", "bad header name"),
        (b"NoColon", "header line without a colon"),
    ],
)
def test_header_errors(line: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        if line.startswith(b"Max-Forwards"):
            parse_message(INVITE.replace(b"Max-Forwards: 70", line))
        else:
            parse_message(with_header(INVITE, line))
    assert info.value.status == 400
    assert reason in info.value.reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"INVITE sip:a@b SIP/2.0\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: x\nTo: y\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"SIP/2.0 099 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 2x0 OK\r\n\r\n",
        b"INV=ITE sip:a@b SIP/2.0\r\n\r\n",
    ],
)
def test_start_line_and_framing_errors(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_response_parse_and_serialize() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\n"
        b"Call-ID: x\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    resp = parse_message(data)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason, resp.to.tag) == (180, "Ringing", "2")
    assert bytes(resp) == data
    with pytest.raises(SipParseError):
        Response(99, "x", resp.headers)


def test_leading_crlf_is_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + INVITE) == invite()


def test_request_construction_validates() -> None:
    req = invite()
    with pytest.raises(SipParseError, match="CSeq method"):
        Request("BYE", req.uri, req.headers)
    with pytest.raises(SipParseError, match="missing Via"):
        Request("INVITE", req.uri, req.headers.remove("Via"))
    built = Request("INVITE", req.uri, req.headers, b"v=0\n")
    assert built == req


def test_make_response_copies_what_rfc3261_8_2_6_asks() -> None:
    req = invite()
    resp = make_response(req, 180, to_tag="as83kd9bs", headers=[("Contact", "<sip:bob@h>")])
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.get_all("Via") == [
        "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1",
        "SIP/2.0/TCP p2.example.com;branch=z9hG4bK2",
    ]
    assert resp.via == req.via
    assert resp.to.tag == "as83kd9bs" and resp.from_ == req.from_
    assert (resp.call_id, resp.cseq) == (req.call_id, req.cseq)
    assert resp.headers.get("Record-Route") == "<sip:proxy.example.com;lr>"
    assert resp.headers.get("Contact") == "<sip:bob@h>"
    # what make_response derived equals what a parse of its bytes gives
    again = parse_message(bytes(resp))
    assert again == resp
    assert (again.via, again.to, again.from_, again.cseq) == (
        resp.via,
        resp.to,
        resp.from_,
        resp.cseq,
    )


def test_make_response_keeps_an_existing_to_tag_and_default_reasons() -> None:
    req = invite("Bob <sip:bob@example.com>", b"<sip:bob@example.com>;tag=old")
    resp = make_response(req, 200, to_tag="new")
    assert resp.to.tag == "old"
    assert make_response(req, 482).reason == REASONS[482] == "Loop Detected"
    assert make_response(req, 499).reason == "Bad Request"
    assert make_response(req, 404, "Nobody Here").reason == "Nobody Here"
    assert "Record-Route" not in make_response(req, 404).headers
    with pytest.raises(ValueError):
        make_response(invite(), 200, to_tag="bad tag")


def test_bytes_of_a_built_response() -> None:
    req = invite()
    resp = make_response(
        req, 200, to_tag="t", body=b"abc", headers=[("Content-Type", "text/plain")]
    )
    wire = bytes(resp)
    assert wire.startswith(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP pc33.example.com;")
    assert wire.endswith(b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc")
    assert b"To: Bob <sip:bob@example.com>;tag=t\r\n" in wire


# --- StreamFramer ----------------------------------------------------------------


def test_framer_splits_a_stream_fed_octet_by_octet() -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(INVITE) * 2):
        out += framer.feed((INVITE * 2)[i : i + 1])
    assert out == [INVITE, INVITE]


def test_framer_reports_pings_and_skips_single_crlf() -> None:
    framer = StreamFramer()
    items = framer.feed(b"\r\n\r\n" + INVITE + b"\r\n" + INVITE[:10])
    assert items[0] is KEEPALIVE_PING and items[1:] == [INVITE]
    assert framer.feed(INVITE[10:]) == [INVITE]
    # a ping split across reads is still one ping
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [KEEPALIVE_PING]


def test_framer_needs_content_length() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="missing Content-Length") as info:
        framer.feed(INVITE.replace(b"Content-Length: 4\r\n", b""))
    assert info.value.status == 400


def test_framer_limits_message_size() -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer(max_size=100).feed(INVITE)
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        StreamFramer(max_size=1000).feed(b"X" * 1001)
    assert info.value.status == 513
    big = INVITE.replace(b"Content-Length: 4", b"Content-Length: 999999")
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(big)
    assert info.value.status == 513


# --- check_request ------------------------------------------------------------------


def rejection(req: Request, **kw: frozenset[str]) -> Rejection | None:
    return check_request(req, methods=kw.pop("methods", METHODS), **kw)


def test_check_request_passes_a_good_invite() -> None:
    assert rejection(invite()) is None


def test_check_request_405_lists_allow() -> None:
    assert rejection(invite(), methods=frozenset({"REGISTER", "OPTIONS"})) == Rejection(
        405, "Method Not Allowed", (("Allow", "OPTIONS, REGISTER"),)
    )


def test_check_request_416_483_420_415_406() -> None:
    tel = parse_message(INVITE.replace(b"INVITE sip:bob@example.com", b"INVITE tel:+15550100"))
    assert isinstance(tel, Request)
    assert rejection(tel) == Rejection(416, "Unsupported URI Scheme")
    mf0 = invite("Max-Forwards: 70", b"Max-Forwards: 0")
    assert rejection(mf0) == Rejection(483, "Too Many Hops")
    req = parse_message(with_header(INVITE, b"Require: 100rel, foo"))
    assert isinstance(req, Request)
    assert rejection(req) == Rejection(420, "Bad Extension", (("Unsupported", "100rel, foo"),))
    assert rejection(req, extensions=frozenset({"100rel", "FOO"})) is None
    enc = parse_message(with_header(INVITE, b"Content-Encoding: gzip"))
    assert isinstance(enc, Request)
    assert rejection(enc) == Rejection(
        415, "Unsupported Media Type", (("Accept-Encoding", "identity"),)
    )
    txt = invite("Content-Type: application/sdp", b"Content-Type: text/plain")
    assert rejection(txt, accept=frozenset({"text/plain"})) is None
    assert rejection(txt) == Rejection(
        415, "Unsupported Media Type", (("Accept", "application/sdp"),)
    )
    for accept, status in [
        (b"Accept: application/*", None),
        (b"Accept: */*;q=0.5", None),
        (b"Accept: application/sdp;q=0", 406),
        (b"Accept: text/html", 406),
    ]:
        acc = parse_message(with_header(INVITE, accept))
        assert isinstance(acc, Request)
        result = rejection(acc)
        assert (result.status if result else None) == status


def test_check_request_ignores_require_for_cancel_and_never_rejects_ack() -> None:
    data = with_header(INVITE, b"Require: foo").replace(b"INVITE", b"CANCEL")
    data = data.replace(b"Content-Type: application/sdp\r\n", b"").replace(b"v=0\n", b"")
    cancel = parse_message(data.replace(b"Content-Length: 4", b"Content-Length: 0"))
    assert isinstance(cancel, Request)
    assert rejection(cancel) is None
    ack = parse_message(INVITE.replace(b"INVITE", b"ACK").replace(b"Contact: <", b"Contact: "))
    assert isinstance(ack, Request)
    assert rejection(ack) is None


def test_check_request_400_for_bad_contact_route_or_missing_content_type() -> None:
    bad_contact = invite("Contact: <sip:alice@pc33.example.com>", b"Contact: <sip:a@b")
    assert rejection(bad_contact) == Rejection(400, "Bad Contact: missing '>' after URI")
    no_type = invite("Content-Type: application/sdp\r\n", b"")
    assert rejection(no_type) == Rejection(400, "Missing Content-Type")
    star = parse_message(
        INVITE.replace(b"Contact: <sip:alice@pc33.example.com>", b"Contact: *").replace(
            b"INVITE", b"REGISTER"
        )
    )
    assert isinstance(star, Request)
    assert rejection(star) is None


def test_headers_equality_drives_message_equality() -> None:
    a = invite()
    b = Request(a.method, a.uri, Headers(list(a.headers)), a.body)
    assert a == b and hash(a) == hash(b)
    assert a != Request(a.method, a.uri, a.headers.add("Subject", "x"), a.body)


def test_with_top_via_keeps_the_rest_and_round_trips() -> None:
    raw = (
        b"REGISTER sip:pbx SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1,"
        b" SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\n"
        b"From: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    request = parse_message(raw)
    assert isinstance(request, Request)
    top = request.via[0].with_param("received", "192.0.2.7").with_param("rport", "5062")
    stamped = request.with_top_via(top)
    assert [str(v) for v in stamped.via] == [
        "SIP/2.0/UDP 10.0.0.1:5060;rport=5062;branch=z9hG4bK1;received=192.0.2.7",
        "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0",
    ]
    assert (stamped.call_id, stamped.cseq, stamped.from_, stamped.to) == (
        request.call_id, request.cseq, request.from_, request.to,
    )  # fmt: skip
    assert parse_message(bytes(stamped)) == stamped
    assert parse_message(bytes(stamped)).via == stamped.via
