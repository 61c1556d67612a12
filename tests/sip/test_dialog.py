"""Dialog state per RFC 3261 §12: creation on both sides, in-dialog requests, CSeq rules."""

from __future__ import annotations

import pytest

from sip.dialog import Dialog, DialogState, new_branch, new_tag
from sip.errors import SipParseError
from sip.message import Request, Response, make_response, parse_message

INVITE = (
    b"INVITE sip:1002@pbx.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1\r\n"
    b"Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:1001@pbx.example>;tag=alice1\r\n'
    b"To: <sip:1002@pbx.example>\r\n"
    b"Call-ID: c1@10.0.0.1\r\n"
    b"CSeq: 314 INVITE\r\n"
    b"Contact: <sip:1001@10.0.0.1:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def _ok(request: Request, contact: str = "<sip:1002@10.0.0.2:5062>") -> Response:
    return make_response(request, 200, to_tag="bob1", headers=[("Contact", contact)])


def test_uas_dialog_follows_12_1_1() -> None:
    d = Dialog.as_uas(_invite(), "bob1")
    assert d.id == ("c1@10.0.0.1", "bob1", "alice1")
    assert d.route_set == ("<sip:p2.example;lr>", "<sip:p1.example;lr>")
    assert str(d.remote_target) == "sip:1001@10.0.0.1:5060"
    assert d.remote_seq == 314
    assert d.state is DialogState.EARLY
    assert d.local_uri == "<sip:1002@pbx.example>"
    assert d.remote_uri == '"Alice" <sip:1001@pbx.example>'


def test_uac_dialog_reverses_the_route_set() -> None:
    invite = _invite()
    d = Dialog.as_uac(invite, _ok(invite))
    assert d.id == ("c1@10.0.0.1", "alice1", "bob1")
    assert d.route_set == ("<sip:p1.example;lr>", "<sip:p2.example;lr>")
    assert str(d.remote_target) == "sip:1002@10.0.0.2:5062"
    assert (d.local_seq, d.remote_seq, d.state) == (314, None, DialogState.CONFIRMED)


def test_bye_from_uac_side_with_loose_routes() -> None:
    invite = _invite()
    d = Dialog.as_uac(invite, _ok(invite))
    bye = d.create_request("BYE", via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb2")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:1002@10.0.0.2:5062"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert (bye.cseq.seq, bye.cseq.method) == (315, "BYE")
    assert bye.from_.tag == "alice1" and bye.to.tag == "bob1"
    # Round trip through bytes: a valid message.
    assert parse_message(bytes(bye)) == bye


def test_ack_and_cancel_reuse_the_invite_cseq() -> None:
    invite = _invite()
    d = Dialog.as_uac(invite, _ok(invite))
    ack = d.create_request("ACK", via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc3", cseq=314)
    assert (ack.cseq.seq, d.local_seq) == (314, 314)
    with pytest.raises(ValueError):
        d.create_request("ACK", via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc4")


def test_strict_router_becomes_the_request_uri() -> None:
    invite = parse_message(INVITE.replace(b"<sip:p2.example;lr>, ", b"<sip:p2.example>, "))
    assert isinstance(invite, Request)
    d = Dialog.as_uas(invite, "bob1")
    bye = d.create_request("BYE", via="SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKd5")
    assert str(bye.uri) == "sip:p2.example"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:1001@10.0.0.1:5060>"]


def test_remote_cseq_and_target_refresh() -> None:
    d = Dialog.as_uas(_invite(), "bob1")
    reinvite = parse_message(
        INVITE.replace(b"CSeq: 314", b"CSeq: 315")
        .replace(b"To: <sip:1002@pbx.example>", b"To: <sip:1002@pbx.example>;tag=bob1")
        .replace(b"10.0.0.1:5060>", b"10.0.0.9:5070>")
    )
    assert isinstance(reinvite, Request)
    assert d.receive(reinvite) is None
    assert str(d.remote_target) == "sip:1001@10.0.0.9:5070"
    assert d.remote_seq == 315
    stale = parse_message(bytes(reinvite).replace(b"CSeq: 315", b"CSeq: 300"))
    assert isinstance(stale, Request)
    assert d.receive(stale) == 500


def test_missing_contact_or_tag_is_an_error() -> None:
    no_contact = parse_message(INVITE.replace(b"Contact: <sip:1001@10.0.0.1:5060>\r\n", b""))
    assert isinstance(no_contact, Request)
    with pytest.raises(SipParseError):
        Dialog.as_uas(no_contact, "x")
    no_tag = parse_message(INVITE.replace(b";tag=alice1", b""))
    assert isinstance(no_tag, Request)
    with pytest.raises(SipParseError):
        Dialog.as_uas(no_tag, "x")


def test_fresh_tags_and_branches() -> None:
    assert new_tag() != new_tag()
    branch = new_branch()
    assert branch.startswith("z9hG4bK") and len(branch) > 20
