"""Header names, the Headers multimap, NameAddr, Via, CSeq."""

from __future__ import annotations

import pytest

from sip.errors import SipParseError
from sip.headers import CSeq, Headers, NameAddr, Via, canonical_name
from sip.uri import AbsoluteUri, SipUri


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("i", "Call-ID"),
        ("v", "Via"),
        ("F", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("e", "Content-Encoding"),
        ("s", "Subject"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("call-id", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-FORWARDS", "Max-Forwards"),
        ("X-Custom-Thing", "X-Custom-Thing"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_headers_lookup_is_case_insensitive_with_compact_forms() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("VIA", "SIP/2.0/UDP b"), ("x-foo", "1")])
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("x-foo", "1")]
    assert h.get("via") == "SIP/2.0/UDP a"
    assert h.get("v") == "SIP/2.0/UDP a"
    assert h.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert "X-FOO" in h and "v" in h and "Route" not in h and 3 not in h
    assert h.get("Route") is None and h.get_all("Route") == []
    assert len(h) == 3


def test_get_all_splits_only_list_headers_at_top_level_commas() -> None:
    h = Headers(
        [
            ("Contact", '"Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>'),
            ("Supported", "timer, , 100rel"),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("X-Unknown", "a, b"),
        ]
    )
    assert h.get_all("m") == ['"Doe, John" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>"]
    assert h.get_all("Supported") == ["timer", "100rel"]
    assert h.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert h.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert h.get_all("X-Unknown") == ["a, b"]


def test_headers_are_immutable_copies() -> None:
    h = Headers([("Via", "1"), ("To", "<sip:a@b>"), ("Via", "2")])
    assert list(h.add("Route", "<sip:r>")) == [*h, ("Route", "<sip:r>")]
    assert list(h.prepend("v", "0")) == [("Via", "0"), *h]
    assert list(h.set("via", "9")) == [("Via", "9"), ("To", "<sip:a@b>")]
    assert list(h.set("Subject", "x"))[-1] == ("Subject", "x")
    assert list(h.remove("VIA")) == [("To", "<sip:a@b>")]
    assert list(h) == [("Via", "1"), ("To", "<sip:a@b>"), ("Via", "2")]
    assert h == Headers(list(h)) and hash(h) == hash(Headers(list(h)))


@pytest.mark.parametrize(("name", "value"), [("Bad Name", "x"), ("", "x"), ("X", "a\r\nY: b")])
def test_headers_refuse_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers([(name, value)])


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ("<sip:a@b>", None, "sip:a@b", ()),
        ('"Alice" <sip:a@b>;tag=1', "Alice", "sip:a@b", (("tag", "1"),)),
        ("Alice Smith <sip:a@b>", "Alice Smith", "sip:a@b", ()),
        ("caller<sip:c@d>;tag=3", "caller", "sip:c@d", (("tag", "3"),)),
        ('"" <sip:a@b>', "", "sip:a@b", ()),
        ('"a \\"b\\" \\\\" <sip:a@b>', 'a "b" \\', "sip:a@b", ()),
        ("sip:a@b;tag=x", None, "sip:a@b", (("tag", "x"),)),
        ("sip:a@b ; tag = x ; lr", None, "sip:a@b", (("tag", "x"), ("lr", None))),
        ("<sip:a@b;lr>;expires=60", None, "sip:a@b;lr", (("expires", "60"),)),
        (
            '<sip:a@b>;+sip.instance="<urn:x:1>"',
            None,
            "sip:a@b",
            (("+sip.instance", '"<urn:x:1>"'),),
        ),
        ("<tel:+1555>", None, "tel:+1555", ()),
    ],
)
def test_name_addr_parse(text: str, display: str | None, uri: str, params: tuple[()]) -> None:
    na = NameAddr.parse(text)
    assert (na.display_name, str(na.uri), na.params) == (display, uri, params)
    assert NameAddr.parse(str(na)) == na


def test_name_addr_str_always_writes_angle_brackets() -> None:
    assert str(NameAddr.parse("sip:a@b;tag=x")) == "<sip:a@b>;tag=x"
    assert str(NameAddr.parse("A <sip:a@b>")) == '"A" <sip:a@b>'


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@b>',
        "< sip:a@b >",
        "<sip:a@b",
        "Bell, Alexander <sip:a@b>",
        "sip:a@b?x=y",
        "<sip:a@b>;;tag=1",
        "<sip:a@b>;tag=",
        "<sip:a@b> junk",
        '"x" sip:a@b',
    ],
)
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_name_addr_params_and_tag() -> None:
    na = NameAddr.parse("<sip:a@b>;TAG=abc;q=0.5")
    assert na.tag == "abc" and na.param("Q") == "0.5" and na.param("x") is None
    tagged = NameAddr.parse("<sip:a@b>").with_param("tag", "t1")
    assert tagged.tag == "t1" and str(tagged) == "<sip:a@b>;tag=t1"
    assert na.with_param("q", "1").params == (("TAG", "abc"), ("q", "1"))


def test_name_addr_parse_list() -> None:
    items = NameAddr.parse_list('"Doe, J" <sip:a@b>, sip:c@d;expires=0, <urn:x:y>')
    assert [str(i.uri) for i in items] == ["sip:a@b", "sip:c@d", "urn:x:y"]
    assert isinstance(items[0].uri, SipUri) and isinstance(items[2].uri, AbsoluteUri)
    with pytest.raises(SipParseError):
        NameAddr.parse_list("<sip:a@b>,,<sip:c@d>")
    with pytest.raises(SipParseError):
        NameAddr.parse_list("*")


def test_via_parse_and_print() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1;received=10.0.0.1")
    assert (via.transport, via.host, via.port, via.protocol) == (
        "UDP",
        "192.0.2.1",
        5060,
        "SIP/2.0",
    )
    assert via.branch == "z9hG4bK1" and via.rport == "" and via.received == "10.0.0.1"
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1;received=10.0.0.1"
    filled = via.with_param("rport", "5062").with_param("received", "192.0.2.9")
    assert str(filled) == "SIP/2.0/UDP 192.0.2.1:5060;rport=5062;branch=z9hG4bK1;received=192.0.2.9"
    assert Via.parse("SIP/2.0/TCP h").rport is None


def test_via_with_lws_everywhere() -> None:
    via = Via.parse("sip / 2.0 / tcp   spindle.example.com : 5070 ; branch = z9hG4bK9")
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "TCP",
        "spindle.example.com",
        5070,
    )
    assert via.params == (("branch", "z9hG4bK9"),)
    assert Via.parse(str(via)) == via


def test_via_list_and_ipv6() -> None:
    vias = Via.parse_list("SIP/2.0/UDP [2001:db8::1]:5060;branch=a, SIP/2.0/WSS h.invalid;branch=b")
    assert [(v.host, v.transport) for v in vias] == [("[2001:db8::1]", "UDP"), ("h.invalid", "WSS")]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0 UDP h",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP h;;branch=1",
        "SIP/2.0/UDP h x",
    ],
)
def test_via_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_via_list_rejects_empty_elements() -> None:
    with pytest.raises(SipParseError):
        Via.parse_list("SIP/2.0/UDP 192.0.2.15;;,;,,")


def test_cseq() -> None:
    assert CSeq.parse("1 INVITE") == CSeq(1, "INVITE")
    assert CSeq.parse(" 0009   REGISTER ") == CSeq(9, "REGISTER")
    assert CSeq.parse("2147483647 ACK") == CSeq(2**31 - 1, "ACK")
    assert str(CSeq(42, "BYE")) == "42 BYE"
    assert CSeq.parse(str(CSeq(7, "NEW-METHOD"))) == CSeq(7, "NEW-METHOD")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "INVITE",
        "-1 INVITE",
        "2147483648 INVITE",
        "1 IN VITE",
        "1x INVITE",
        "1" * 30 + " A",
    ],
)
def test_cseq_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        CSeq.parse(text)
