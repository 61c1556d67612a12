"""RFC 4475 torture messages: one case per message, asserting what the RFC asks.

Outcome table (section of RFC 4475, file, what a correct element does here):

| §         | file       | outcome                                                         |
|-----------|------------|-----------------------------------------------------------------|
| 3.1.1.1   | wsinv      | parses: folding joined, LWS everywhere, 3 Vias, q=0.33          |
| 3.1.1.2   | intmeth    | parses: odd method token, user/password with odd characters     |
| 3.1.1.3   | esc01      | parses: escapes kept as written; aor unescapes                  |
| 3.1.1.4   | escnull    | parses: %00 kept in user parts                                  |
| 3.1.1.5   | esc02      | parses: method RE%47IST%45R is not REGISTER; 2 Contacts, not 3  |
| 3.1.1.6   | lwsdisp    | parses: display name with no LWS before <                       |
| 3.1.1.7   | longreq    | parses: long values, 34 Vias                                    |
| 3.1.1.8   | dblreq     | parses: REGISTER, body is only the Content-Length octets (0)    |
| 3.1.1.9   | semiuri    | parses: user part "user;par=u%40example.net"                    |
| 3.1.1.10  | transports | parses: UDP SCTP TLS UNKNOWN TCP                                |
| 3.1.1.11  | mpart01    | parses: binary multipart body kept                              |
| 3.1.1.12  | unreason   | parses: UTF-8 reason phrase                                     |
| 3.1.1.13  | noreason   | parses: empty reason phrase                                     |
| 3.1.2.1   | badinv01   | 400 (;;,;,, in Via)                                             |
| 3.1.2.2   | clerr      | 400 (Content-Length larger than the datagram)                   |
| 3.1.2.3   | ncl        | 400 (negative Content-Length)                                   |
| 3.1.2.4   | scalar02   | 400 (CSeq above 2**31-1)                                        |
| 3.1.2.5   | scalarlg   | SipParseError (a response: dropped)                             |
| 3.1.2.6   | quotbal    | 400 (unterminated quote)                                        |
| 3.1.2.7   | ltgtruri   | 400 (<> around the Request-URI)                                 |
| 3.1.2.8   | lwsruri    | 400 (LWS inside the Request-URI)                                |
| 3.1.2.9   | lwsstart   | 400 (several SP in the Request-Line)                            |
| 3.1.2.10  | trws       | 400 (SP after SIP-Version; the RFC calls rejecting reasonable)   |
| 3.1.2.11  | escruri    | 400 (headers in the Request-URI)                                |
| 3.1.2.12  | baddate    | parses (tolerated: Date is never interpreted; raw value kept)   |
| 3.1.2.13  | regbadct   | parses (Contact is lazy); check_request: 400 Bad Contact        |
| 3.1.2.14  | badaspec   | 400 (spaces inside <> of To)                                    |
| 3.1.2.15  | baddn      | 400 (non-token display name in From)                            |
| 3.1.2.16  | badvers    | 505                                                             |
| 3.1.2.17  | mismatch01 | 400 (CSeq method is not the request method)                     |
| 3.1.2.18  | mismatch02 | 400 (same, unknown method)                                      |
| 3.1.2.19  | bigcode    | SipParseError (a response: dropped)                             |
| 3.2.1     | badbranch  | parses; branch is exactly the magic cookie                      |
| 3.3.1     | insuf      | 400 (no From, To, Call-ID)                                      |
| 3.3.2     | unkscm     | parses; check_request 416                                       |
| 3.3.3     | novelsc    | parses (soap.beep kept opaque); check_request 416               |
| 3.3.4     | unksm2     | parses; check_request 416 (REGISTER To is isbn:)                |
| 3.3.5     | bext01     | parses; check_request 420, Unsupported lists both option-tags   |
| 3.3.6     | invut      | parses; check_request 415 with Accept                           |
| 3.3.7     | regaut01   | parses; check_request None (the registrar answers 401)          |
| 3.3.8     | multi01    | 400 (two From, To, Call-ID, CSeq, Max-Forwards)                 |
| 3.3.9     | mcl01      | 400 (two Content-Length)                                        |
| 3.3.10    | bcast      | parses; second Via host 255.255.255.255                         |
| 3.3.11    | zeromf     | parses; OPTIONS with Max-Forwards 0 is answered (None), others 483 |
| 3.3.12    | cparam01   | parses; unknownparam is a Contact (header) parameter            |
| 3.3.13    | cparam02   | parses; unknownparam is a URI parameter                         |
| 3.3.14    | regescrt   | parses; escaped Route header kept in the Contact URI            |
| 3.3.15    | sdp01      | parses; check_request 406 (Accept rules out application/sdp)    |
| 3.4.1     | inv2543    | parses: no Max-Forwards, no branch, no From tag                 |

A registrar storing regescrt's binding must keep the escaped `?Route=` in the
contact it returns and must not turn it into a Route header of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sip.errors import SipParseError
from sip.headers import Headers, NameAddr
from sip.message import Message, Request, Response, parse_message
from sip.uri import AbsoluteUri, SipUri
from sip.validate import check_request

DATA = Path(__file__).parent.parent / "data" / "rfc4475"
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE"})


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def request(name: str) -> Request:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    return msg


def check(msg: Message) -> int | None:
    assert isinstance(msg, Request)
    rejection = check_request(msg, methods=METHODS)
    return None if rejection is None else rejection.status


def sip_uri(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


# --- valid messages: what the RFC says must come out ---------------------------------


def wsinv(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "INVITE"
    assert sip_uri(m.uri).params == (("unknownparam", None),)
    assert str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.headers.get("Subject") == ""
    assert m.headers.get_all("Route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    (contact,) = m.headers.get_all("Contact")
    c = NameAddr.parse(contact)
    assert c.display_name == 'Quoted string ""'
    assert c.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(m.body) == 150


def intmeth(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = sip_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.max_forwards == 255


def esc01(m: Message) -> None:
    assert isinstance(m, Request)
    uri = sip_uri(m.uri)
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.aor == "sip:sips:user@example.com@example.net"
    assert sip_uri(m.to.uri).user == "%75se%72"
    assert sip_uri(m.to.uri).aor == "sip:user@example.com"
    assert sip_uri(m.from_.uri).user == "I%20have%20spaces"
    (contact,) = NameAddr.parse_list(m.headers.get("Contact") or "")
    assert sip_uri(contact.uri).params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))


def escnull(m: Message) -> None:
    assert isinstance(m, Request)
    assert sip_uri(m.to.uri).user == "null-%00-null"
    assert sip_uri(m.from_.uri).user == "null-%00-null"
    assert m.headers.get_all("Contact") == [
        "<sip:%00@host5.example.com>",
        "<sip:%00%00@host5.example.com>",
    ]


def esc02(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.method == "RE%47IST%45R"  # not REGISTER
    assert m.to.display_name == "%Z%45"
    assert m.from_.display_name == "%Z%45"
    assert m.via[0].branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is another header name, so there are two Contact values, not three
    assert len(m.headers.get_all("Contact")) == 2
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def lwsdisp(m: Message) -> None:
    assert m.from_.display_name == "caller"
    assert m.from_.tag == "323"


def longreq(m: Message) -> None:
    assert isinstance(m, Request)
    assert len(m.via) == 34
    assert m.to.display_name is not None and len(m.to.display_name) == 103
    assert sip_uri(m.to.uri).port == 6000
    assert len(sip_uri(m.to.uri).params) == 3
    assert len(sip_uri(m.from_.uri).user or "") == 115
    assert len(m.call_id) == 141
    assert m.via[-1].received == "192.0.2.5"


def dblreq(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.method == "REGISTER"
    assert m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def semiuri(m: Message) -> None:
    assert isinstance(m, Request)
    uri = sip_uri(m.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", ())
    assert len(m.headers.get_all("Accept")) == 6


def transports(m: Message) -> None:
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def mpart01(m: Message) -> None:
    assert len(m.body) == 553
    assert m.body == load("mpart01")[-553:]
    assert m.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"


def unreason(m: Message) -> None:
    assert isinstance(m, Response)
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def noreason(m: Message) -> None:
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (100, "")


def baddate(m: Message) -> None:
    assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def regbadct(m: Message) -> None:
    assert check(m) == 400


def badbranch(m: Message) -> None:
    assert m.via[0].branch == "z9hG4bK"


def unkscm(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    assert check(m) == 416


def novelsc(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.uri == AbsoluteUri("soap.beep", "//192.0.2.103:3002")
    assert check(m) == 416


def unksm2(m: Message) -> None:
    assert m.to.uri == AbsoluteUri("isbn", "2983792873")
    assert m.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert check(m) == 416


def bext01(m: Message) -> None:
    assert isinstance(m, Request)
    rejection = check_request(m, methods=METHODS)
    assert rejection is not None and rejection.status == 420
    assert rejection.headers == (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),)


def invut(m: Message) -> None:
    assert isinstance(m, Request)
    rejection = check_request(m, methods=METHODS)
    assert rejection is not None and rejection.status == 415
    assert rejection.headers == (("Accept", "application/sdp"),)


def regaut01(m: Message) -> None:
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert check(m) is None


def bcast(m: Message) -> None:
    assert isinstance(m, Response)
    assert m.via[1].host == "255.255.255.255"


def zeromf(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.max_forwards == 0
    assert check(m) is None  # OPTIONS: this element is the final recipient


def cparam01(m: Message) -> None:
    contact = NameAddr.parse(m.headers.get("Contact") or "")
    assert contact.params == (("unknownparam", None),)
    assert sip_uri(contact.uri).params == ()
    assert check(m) is None


def cparam02(m: Message) -> None:
    contact = NameAddr.parse(m.headers.get("Contact") or "")
    assert contact.params == ()
    assert sip_uri(contact.uri).params == (("unknownparam", None),)
    assert check(m) is None


def regescrt(m: Message) -> None:
    contact = NameAddr.parse(m.headers.get("Contact") or "")
    assert sip_uri(contact.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(contact) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"
    assert check(m) is None


def sdp01(m: Message) -> None:
    assert check(m) == 406


def inv2543(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.max_forwards is None
    assert m.via[0].branch is None
    assert m.from_.tag is None
    assert check(m) is None


VALID: list[tuple[str, str, Callable[[Message], None]]] = [
    ("3.1.1.1", "wsinv", wsinv),
    ("3.1.1.2", "intmeth", intmeth),
    ("3.1.1.3", "esc01", esc01),
    ("3.1.1.4", "escnull", escnull),
    ("3.1.1.5", "esc02", esc02),
    ("3.1.1.6", "lwsdisp", lwsdisp),
    ("3.1.1.7", "longreq", longreq),
    ("3.1.1.8", "dblreq", dblreq),
    ("3.1.1.9", "semiuri", semiuri),
    ("3.1.1.10", "transports", transports),
    ("3.1.1.11", "mpart01", mpart01),
    ("3.1.1.12", "unreason", unreason),
    ("3.1.1.13", "noreason", noreason),
    ("3.1.2.12", "baddate", baddate),
    ("3.1.2.13", "regbadct", regbadct),
    ("3.2.1", "badbranch", badbranch),
    ("3.3.2", "unkscm", unkscm),
    ("3.3.3", "novelsc", novelsc),
    ("3.3.4", "unksm2", unksm2),
    ("3.3.5", "bext01", bext01),
    ("3.3.6", "invut", invut),
    ("3.3.7", "regaut01", regaut01),
    ("3.3.10", "bcast", bcast),
    ("3.3.11", "zeromf", zeromf),
    ("3.3.12", "cparam01", cparam01),
    ("3.3.13", "cparam02", cparam02),
    ("3.3.14", "regescrt", regescrt),
    ("3.3.15", "sdp01", sdp01),
    ("3.4.1", "inv2543", inv2543),
]

INVALID: list[tuple[str, str, int, str]] = [
    ("3.1.2.1", "badinv01", 400, "Via"),
    ("3.1.2.2", "clerr", 400, "Content-Length"),
    ("3.1.2.3", "ncl", 400, "Content-Length"),
    ("3.1.2.4", "scalar02", 400, "CSeq"),
    ("3.1.2.5", "scalarlg", 400, "CSeq"),
    ("3.1.2.6", "quotbal", 400, "To"),
    ("3.1.2.7", "ltgtruri", 400, "Request-URI"),
    ("3.1.2.8", "lwsruri", 400, "Request-Line"),
    ("3.1.2.9", "lwsstart", 400, "Request-Line"),
    ("3.1.2.10", "trws", 400, "Request-Line"),
    ("3.1.2.11", "escruri", 400, "Request-URI"),
    ("3.1.2.14", "badaspec", 400, "To"),
    ("3.1.2.15", "baddn", 400, "From"),
    ("3.1.2.16", "badvers", 505, "version"),
    ("3.1.2.17", "mismatch01", 400, "CSeq method"),
    ("3.1.2.18", "mismatch02", 400, "CSeq method"),
    ("3.1.2.19", "bigcode", 400, "status code"),
    ("3.3.1", "insuf", 400, "missing From, To, Call-ID"),
    ("3.3.8", "multi01", 400, "more than one"),
    ("3.3.9", "mcl01", 400, "more than one Content-Length"),
]


def test_the_table_covers_every_file() -> None:
    names = {name for _, name, _ in VALID} | {name for _, name, _, _ in INVALID}
    assert names == {p.stem for p in DATA.glob("*.dat")}
    assert len(names) == 49


@pytest.mark.parametrize(
    ("section", "name", "expect"), VALID, ids=[f"{s}-{n}" for s, n, _ in VALID]
)
def test_valid_message_parses_as_the_rfc_says(
    section: str, name: str, expect: Callable[[Message], None]
) -> None:
    msg = parse_message(load(name))
    expect(msg)
    # every message that parses reads back equal from its own serialization
    again = parse_message(bytes(msg))
    assert again == msg
    assert (again.via, again.call_id, again.cseq, again.from_, again.to) == (
        msg.via,
        msg.call_id,
        msg.cseq,
        msg.from_,
        msg.to,
    )


@pytest.mark.parametrize(
    ("section", "name", "status", "reason"), INVALID, ids=[f"{s}-{n}" for s, n, _, _ in INVALID]
)
def test_invalid_message_is_rejected_with_the_rfc_status(
    section: str, name: str, status: int, reason: str
) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load(name))
    assert info.value.status == status
    assert reason in info.value.reason


def test_zeromf_as_an_invite_is_483() -> None:
    # RFC 3261 §16.3 step 3: only OPTIONS may be answered by the final recipient.
    m = request("zeromf")
    invite = Request(
        "INVITE",
        m.uri,
        m.headers.set("CSeq", "39234321 INVITE"),
    )
    rejection = check_request(invite, methods=METHODS)
    assert rejection is not None and rejection.status == 483


def test_dblreq_second_request_is_not_part_of_the_first() -> None:
    data = load("dblreq")
    m = request("dblreq")
    assert b"INVITE sip:joe@example.com" in data
    assert b"INVITE" not in bytes(m)


def test_headers_type_round_trips_raw_fields() -> None:
    m = request("esc02")
    assert Headers(list(m.headers)) == m.headers
