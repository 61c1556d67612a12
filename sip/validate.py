"""Application-layer checks of an incoming request (RFC 3261 §8.2.1-8.2.3, §16.3).

`parse_message` already rejects what is not SIP (RFC 4475 §3.1.2, and §3.3.1 insuf,
§3.3.8 multi01, §3.3.9 mcl01). `check_request` takes a request that parsed and
decides, in the order the RFC gives, whether a UAS may process it:

1. reasonable syntax of the fields this element will use (Contact, Route,
   Record-Route, Content-Type, Require): 400 (RFC 4475 §3.1.2.13 regbadct);
2. §8.2.1 method inspection: 405 with Allow;
3. §8.2.2.1 To and Request-URI: 416 for a Request-URI scheme other than sip/sips
   (RFC 4475 §3.3.2 unkscm, §3.3.3 novelsc: "If an element will never accept this
   scheme as meaningful in a Request-URI, it is appropriate to treat it as unknown
   and return a 416"). tel: is refused too: this softswitch routes SIP URIs only,
   so after `check_request` passes `req.uri` is always a `SipUri`. A REGISTER whose
   To (the address of record) is not sip/sips is a 416 as well (§3.3.4 unksm2), and
   so is a sips: Request-URI that did not come over TLS (§26.2.2);
4. §16.3 step 3 Max-Forwards: 0 is 483, except for OPTIONS, which "the element
   MAY act as the final recipient" for (RFC 4475 §3.3.11 zeromf: an endpoint
   processes it as if Max-Forwards were positive);
5. §8.2.2.3 Require: 420 with Unsupported listing the unknown option-tags,
   ignored for CANCEL and ACK (RFC 4475 §3.3.5 bext01; Proxy-Require is for proxies);
6. §8.2.3 content processing: 415 with Accept (or Accept-Encoding) for a body of a
   type or encoding not understood (RFC 4475 §3.3.6 invut);
7. RFC 4475 §3.3.15 sdp01: an INVITE whose Accept rules out application/sdp cannot
   get an answer with SDP: 406.

ACK is never rejected: it has no response (RFC 3261 §17.2.3); it gets None.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip.errors import SipParseError
from sip.grammar import TOKEN_RE, is_token
from sip.headers import NameAddr
from sip.message import Request
from sip.uri import SipUri


@dataclass(frozen=True, slots=True)
class Rejection:
    """The response a UAS gives instead of processing the request."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def _media_type(value: str) -> tuple[str, str] | None:
    """`type/subtype` of a Content-Type or media-range, lower case; None if malformed."""
    media = value.split(";", 1)[0]
    kind, slash, sub = media.partition("/")
    kind = kind.strip(" \t").lower()
    sub = sub.strip(" \t").lower()
    if not slash or not is_token(kind) or not is_token(sub):
        return None
    return kind, sub


def _syntax_error(req: Request) -> str | None:
    headers = req.headers
    for name in ("Contact", "Route", "Record-Route"):
        for value in headers._lookup().get(name.lower(), ()):
            if name == "Contact" and value == "*":
                continue  # RFC 3261 §10.2.2: REGISTER removing all bindings
            try:
                NameAddr.parse_list(value)
            except SipParseError as exc:
                return f"Bad {name}: {exc.reason}"
    content_type = headers.get("Content-Type")
    if content_type is not None and _media_type(content_type) is None:
        return "Bad Content-Type"
    # RFC 3261 §20.15: "The Content-Type header field MUST be present if the body is not empty."
    if req.body and content_type is None:
        return "Missing Content-Type"
    for tag in headers.get_all("Require"):
        if TOKEN_RE.fullmatch(tag) is None:
            return "Bad Require"
    return None


def _accepts(ranges: list[str], kind: str, sub: str) -> bool:
    """Whether an Accept list takes `kind/sub`; the most specific matching range decides."""
    best = -1
    accepted = False
    for item in ranges:
        media = _media_type(item)
        if media is None:
            continue
        rk, rs = media
        if rk == kind and rs == sub:
            rank = 2
        elif rk == kind and rs == "*":
            rank = 1
        elif rk == "*" and rs == "*":
            rank = 0
        else:
            continue
        q = "1"
        for param in item.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip(" \t").lower() == "q":
                q = value.strip(" \t")
        zero = q.rstrip("0").rstrip(".") in ("0", "")
        if rank > best:
            best = rank
            accepted = not zero
    return accepted


def check_request(
    req: Request,
    *,
    methods: frozenset[str],
    extensions: frozenset[str] = frozenset(),
    accept: frozenset[str] = frozenset({"application/sdp"}),
    secure: bool = False,
) -> Rejection | None:
    """Return the rejection RFC 3261 §8.2 asks for, or None when the request may proceed.

    `methods` are the methods this element processes (the Allow list), `extensions`
    the option-tags it supports, `accept` the body types it understands
    (lower-case `type/subtype`), `secure` whether the request came over TLS. See the
    module docstring for the order of checks.
    """
    method = req.method
    if method == "ACK":
        return None
    problem = _syntax_error(req)
    if problem is not None:
        return Rejection(400, problem)

    # RFC 3261 §8.2.1: "the UAS SHOULD generate a 405 (Method Not Allowed) response.
    # ... The UAS MUST also add an Allow header field to the 405".
    if method not in methods:
        return Rejection(405, "Method Not Allowed", (("Allow", ", ".join(sorted(methods))),))

    # RFC 3261 §8.2.2.1: "If the Request-URI uses a scheme not supported by the UAS,
    # it SHOULD reject the request with a 416 (Unsupported URI Scheme) response."
    if not isinstance(req.uri, SipUri):
        return Rejection(416, "Unsupported URI Scheme")
    # RFC 3261 §26.2.2: a sips: URI asks for TLS on every hop; over UDP or TCP this
    # element cannot honour it, so the scheme is not supported here (as Kamailio and
    # Asterisk refuse it off TLS).
    if req.uri.scheme.lower() == "sips" and not secure:
        return Rejection(416, "Unsupported URI Scheme")
    if method == "REGISTER" and not isinstance(req.to.uri, SipUri):
        return Rejection(416, "Unsupported URI Scheme")

    # RFC 3261 §16.3 step 3: "If the request was for OPTIONS, the element MAY act as
    # the final recipient and respond per Section 11. Otherwise, the element MUST
    # return a 483 (Too many hops) response."
    if req.max_forwards == 0 and method != "OPTIONS":
        return Rejection(483, "Too Many Hops")

    # RFC 3261 §8.2.2.3: "If a UAS does not understand an option-tag listed in a
    # Require header field, it MUST respond by generating a response with status code
    # 420 (Bad Extension). The UAS MUST add an Unsupported header field".
    # "Require ... SHOULD be ignored for CANCEL" (and ACK, handled above).
    if method != "CANCEL":
        known = {e.lower() for e in extensions}
        unknown = [tag for tag in req.headers.get_all("Require") if tag.lower() not in known]
        if unknown:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))

    # RFC 3261 §8.2.3: "If a UAS does not understand the header field describing the
    # content type, encoding, or language of the message body, the UAS MUST reject
    # the request with a 415 (Unsupported Media Type) response. The response MUST
    # contain an Accept header field listing the types of all bodies it understands".
    if req.body:
        media = _media_type(req.headers.get("Content-Type") or "")
        if media is None or f"{media[0]}/{media[1]}" not in {a.lower() for a in accept}:
            return Rejection(
                415, "Unsupported Media Type", (("Accept", ", ".join(sorted(accept))),)
            )
        for coding in req.headers.get_all("Content-Encoding"):
            if coding.lower() != "identity":
                return Rejection(415, "Unsupported Media Type", (("Accept-Encoding", "identity"),))

    # RFC 4475 §3.3.15: the recipient "could respond with a 406 Not Acceptable".
    if (
        method == "INVITE"
        and "Accept" in req.headers
        and not _accepts(req.headers.get_all("Accept"), "application", "sdp")
    ):
        return Rejection(406, "Not Acceptable")
    return None


__all__ = ["Rejection", "check_request"]
