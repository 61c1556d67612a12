"""SipUri / AbsoluteUri / parse_uri: parse, print back, reject."""

from __future__ import annotations

import pytest

from sip.errors import SipParseError
from sip.uri import AbsoluteUri, SipUri, parse_uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sips:alice:secret@example.com:5061;transport=tcp;lr",
        "sip:example.com",
        "sip:+15551234567@gw.example.net;user=phone",
        "sip:alice@[2001:db8::10]:5070;maddr=[2001:db8::1]",
        "sip:alice@192.0.2.1?Subject=hi&Priority=urgent",
        "sip:%75se%72@example.com;%6C%72;n%61me=v%61lue%25%34%31",
        "sip:user;par=u%40example.net@example.com",
    ],
)
def test_sip_uri_prints_back_as_written(text: str) -> None:
    uri = SipUri.parse(text)
    assert str(uri) == text
    assert SipUri.parse(str(uri)) == uri


def test_sip_uri_parts() -> None:
    uri = SipUri.parse("SIPS:bob:pw@Example.COM:5061;transport=TLS;lr?X=1")
    assert uri == SipUri(
        "sips",
        "bob",
        "pw",
        "Example.COM",
        5061,
        (("transport", "TLS"), ("lr", None)),
        (("X", "1"),),
    )
    assert uri.param("TRANSPORT") == "TLS"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None
    assert uri.transport == "tls"


def test_ipv6_reference_keeps_brackets() -> None:
    uri = SipUri.parse("sip:[::1]:5060")
    assert (uri.user, uri.host, uri.port) == (None, "[::1]", 5060)


def test_aor_is_canonical() -> None:
    assert SipUri.parse("SIP:%61lice@EXAMPLE.com:5070;transport=udp").aor == (
        "sip:alice@example.com:5070"
    )
    assert SipUri.parse("sip:example.com").aor == "sip:example.com"
    assert SipUri.parse("sip:null-%00-null@example.com").aor == "sip:null-\x00-null@example.com"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("sip:", 400),
        ("sip:alice@", 400),
        ("sip:alice@example.com:99999", 400),
        ("sip:alice@exa mple.com", 400),
        ("sip:al ice@example.com", 400),
        ("sip:alice@example.com;", 400),
        ("sip:alice@example.com?", 400),
        ("sip:al%zzice@example.com", 400),
        ("sip:alice@example.com>", 400),
        ("tel:+1555", 416),
        ("<sip:alice@example.com>", 416),
    ],
)
def test_sip_uri_rejects(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        SipUri.parse(text)
    assert info.value.status == status


def test_absolute_uri() -> None:
    uri = parse_uri("TEL:+1-555-0100;phone-context=example.com")
    assert uri == AbsoluteUri("tel", "+1-555-0100;phone-context=example.com")
    assert str(uri) == "tel:+1-555-0100;phone-context=example.com"
    assert parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6") == AbsoluteUri(
        "urn", "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    )


@pytest.mark.parametrize("text", ["", "nocolon", ":rest", "1tel:+1", "tel:", "tel:a b", "x:<y>"])
def test_absolute_uri_rejects(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


def test_parse_uri_dispatches_on_scheme() -> None:
    assert isinstance(parse_uri("sip:a@b"), SipUri)
    assert isinstance(parse_uri("Sips:a@b"), SipUri)
    assert isinstance(parse_uri("mailto:a@b"), AbsoluteUri)
