"""HTTP Digest authentication as SIP uses it: RFC 3261 §22.4, RFC 7616, RFC 8760.

Pure functions and value types, no state: `Challenge` is a WWW-Authenticate /
Proxy-Authenticate value, `Credentials` an Authorization / Proxy-Authorization
value; `ha1`, `verify` and `make_credentials` do the arithmetic.

The arithmetic (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2.1 for the qop-less form):

    HA1      = H(username ":" realm ":" password)
    HA1-sess = H(HA1 ":" nonce ":" cnonce)                  for the "-sess" algorithms
    HA2      = H(method ":" digest-uri)                     qop absent or "auth"
    HA2      = H(method ":" digest-uri ":" H(body))         qop "auth-int"
    response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)    with qop
    response = H(HA1 ":" nonce ":" HA2)                     without qop (RFC 2069)

Every H is the lower-case hex digest of the UTF-8 bytes. A server keeps only
HA1 per user and algorithm, never the password.

Quoting (RFC 7616 §3.3, §3.4): a sender MUST quote realm, domain, nonce, opaque
and qop in a challenge and MUST NOT quote stale and algorithm; in credentials
it MUST quote username, realm, nonce, uri, response, cnonce and opaque, and MUST
NOT quote algorithm, qop and nc. We write exactly that and read either form.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sip.errors import SipParseError

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "canonical_algorithm",
    "ha1",
    "make_credentials",
    "pick_challenge",
    "response_digest",
    "verify",
]


class _HashObject(Protocol):
    def hexdigest(self) -> str: ...


_Hash = Callable[[bytes], _HashObject]

# Canonical spelling (RFC 7616 §6.1 registry) -> hash constructor.
_HASHES: dict[str, _Hash] = {
    "MD5": hashlib.md5,
    "MD5-sess": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-sess": hashlib.sha256,
}
_BY_UPPER = {name.upper(): name for name in _HASHES}

ALGORITHMS: tuple[str, ...] = tuple(_HASHES)
"""Algorithms this module computes, in their canonical spelling."""

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# One auth-param with the separators before it: name = (quoted-string / token). Unquoted
# values are read leniently (any run without blanks, commas or quotes) because real clients
# write e.g. algorithm="SHA-256" or nc=1. The quoted-string is written unrolled
# and possessive ("[^"\\]*+(\\.[^"\\]*+)*+"): an alternation per character is several times
# slower, and an unterminated quote must fail without backtracking.
_PARAM = re.compile(
    r"[ \t\r\n,]*(" + _TOKEN + r")[ \t\r\n]*=[ \t\r\n]*"
    r'(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|([^ \t\r\n,"]++))[ \t\r\n]*(?:,|$)',
    re.DOTALL,
)
_TRAILER = re.compile(r"[ \t\r\n,]*")
_SCHEME = re.compile(r"[ \t\r\n]*(" + _TOKEN + r")(?:[ \t\r\n]+|$)")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_NC = re.compile(r"[0-9A-Fa-f]{1,8}")


def canonical_algorithm(name: str) -> str | None:
    """The canonical spelling of a supported algorithm name (case-insensitive), else None."""
    return _BY_UPPER.get(name.upper())


def _parse_params(value: str, kind: str) -> dict[str, str]:
    """Split `Digest a=b, c="d"` into {"a": "b", "c": "d"} with lower-case names.

    Raises:
        SipParseError: not the Digest scheme, bad syntax, or a parameter given twice.
    """
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise SipParseError(f"{kind}: no auth-scheme")
    if scheme.group(1).lower() != "digest":
        raise SipParseError(f"{kind}: auth-scheme {scheme.group(1)!r} is not Digest")
    params: dict[str, str] = {}
    pos = scheme.end()
    end = len(value)
    # match() at each position, never search(): a failed param fails at once, so a long
    # hostile header costs linear time.
    while (match := _PARAM.match(value, pos)) is not None:
        name, quoted, token = match.group(1, 2, 3)
        name = name.lower()
        if name in params:
            raise SipParseError(f"{kind}: parameter {name!r} given twice")
        if quoted is None:
            params[name] = token
        elif "\\" in quoted:
            params[name] = _UNESCAPE.sub(r"\1", quoted)
        else:
            params[name] = quoted
        pos = match.end()
    trailer = _TRAILER.match(value, pos)
    if trailer is None or trailer.end() != end:
        raise SipParseError(f"{kind}: bad auth-param at offset {pos}")
    return params


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _require(params: dict[str, str], names: tuple[str, ...], kind: str) -> None:
    for name in names:
        if name not in params:
            raise SipParseError(f"{kind}: missing parameter {name!r}")


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 7616 §3.3).

    `qop` is the tuple of offered qop values; () means a challenge without qop
    (RFC 2069 style). `algorithm` is kept as written by the peer; a missing
    algorithm parameter means MD5 (RFC 7616 §3.3).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse one header value; unknown parameters (domain, charset ...) are ignored.

        Raises:
            SipParseError: not Digest, bad syntax, duplicate or missing realm/nonce.
        """
        params = _parse_params(value, "challenge")
        _require(params, ("realm", "nonce"), "challenge")
        qop_text = params.get("qop")
        qop = tuple(q.strip() for q in qop_text.split(",") if q.strip()) if qop_text else ()
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    def __str__(self) -> str:
        parts = [f"Digest realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An Authorization / Proxy-Authorization value (RFC 7616 §3.4).

    `nc` is kept as written (8 hex digits on the wire) because it enters the
    hash verbatim; `int(nc, 16)` is its value. `qop` is None for RFC 2069 style
    credentials, which then carry neither nc nor cnonce.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """Parse one header value; unknown parameters are ignored.

        Raises:
            SipParseError: not Digest, bad syntax, a duplicate parameter, a missing
                username/realm/nonce/uri/response, or qop without a valid nc and cnonce.
        """
        params = _parse_params(value, "credentials")
        _require(params, ("username", "realm", "nonce", "uri", "response"), "credentials")
        qop = params.get("qop")
        nc = params.get("nc")
        cnonce = params.get("cnonce")
        if qop is not None:
            # RFC 7616 §3.4: cnonce and nc MUST be sent when qop is.
            _require(params, ("nc", "cnonce"), "credentials")
        if nc is not None and not _NC.fullmatch(nc):
            raise SipParseError(f"credentials: nonce-count {nc!r} is not hexadecimal")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=params.get("opaque"),
        )

    def __str__(self) -> str:
        parts = [
            f"Digest username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return ", ".join(parts)


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) in lower-case hex: what a server stores per user.

    For a "-sess" algorithm this is still the base HA1; the session key needs the
    nonce and cnonce and is derived by `verify` / `response_digest`.

    Raises:
        ValueError: the algorithm is not one of ALGORITHMS.
    """
    name = canonical_algorithm(algorithm)
    if name is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return _HASHES[name](f"{username}:{realm}:{password}".encode()).hexdigest()


def response_digest(
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str | None:
    """The request-digest ("response" parameter) for these inputs, or None when they
    cannot produce one (unknown algorithm or qop, or nc/cnonce missing where needed)."""
    name = canonical_algorithm(algorithm)
    if name is None:
        return None
    new = _HASHES[name]
    if name.endswith("-sess"):
        if cnonce is None:
            return None
        ha1_hex = new(f"{ha1_hex}:{nonce}:{cnonce}".encode()).hexdigest()
    if qop is None:
        ha2 = new(f"{method}:{uri}".encode()).hexdigest()
        return new(f"{ha1_hex}:{nonce}:{ha2}".encode()).hexdigest()
    if nc is None or cnonce is None:
        return None
    qop_l = qop.lower()
    if qop_l == "auth":
        ha2 = new(f"{method}:{uri}".encode()).hexdigest()
    elif qop_l == "auth-int":
        ha2 = new(f"{method}:{uri}:{new(body).hexdigest()}".encode()).hexdigest()
    else:
        return None
    return new(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()


def verify(credentials: Credentials, ha1_hex: str, method: str, body: bytes = b"") -> bool:
    """True when `credentials.response` is right for this HA1, method and body.

    Compares in constant time. An unsupported algorithm or qop is simply False.
    Checks nothing else: realm, nonce freshness, nonce-count and digest-uri are
    the caller's business (see pbx.auth).
    """
    expected = response_digest(
        credentials.algorithm,
        ha1_hex.lower(),
        credentials.nonce,
        method,
        credentials.uri,
        qop=credentials.qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        body=body,
    )
    if expected is None:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str, and the response is peer input.
    return hmac.compare_digest(expected.encode(), credentials.response.lower().encode())


def make_credentials(
    challenge: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> Credentials:
    """The client's answer to `challenge` (UAC side: our tests, later SIP trunks).

    Picks qop "auth" when offered, else "auth-int", else none (RFC 2069 style).
    The values of opaque and algorithm are those of the challenge (RFC 7616 §3.4).

    Raises:
        ValueError: the challenge's algorithm is not supported, it offers only
            unknown qop values, or nc is outside 1..0xffffffff.
    """
    algorithm = canonical_algorithm(challenge.algorithm)
    if algorithm is None:
        raise ValueError(f"unsupported digest algorithm {challenge.algorithm!r}")
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce-count {nc} is outside 1..0xffffffff")
    offered = {q.lower() for q in challenge.qop}
    qop: str | None
    if not challenge.qop:
        qop = None
    elif "auth" in offered:
        qop = "auth"
    elif "auth-int" in offered:
        qop = "auth-int"
    else:
        raise ValueError(f"no supported qop among {challenge.qop!r}")
    nc_text = f"{nc:08x}" if qop is not None else None
    if qop is None and not algorithm.endswith("-sess"):
        cnonce = None  # RFC 2069 style: no cnonce on the wire
    elif cnonce is None:
        cnonce = secrets.token_urlsafe(12)
    response = response_digest(
        algorithm,
        ha1(username, challenge.realm, password, algorithm),
        challenge.nonce,
        method,
        uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    assert response is not None  # algorithm and qop were checked above
    return Credentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        opaque=challenge.opaque,
    )


#: UAC preference among offered algorithms (RFC 8760 §2.4: the strongest one it supports).
_PREFERENCE = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")


def pick_challenge(values: list[str]) -> Challenge | None:
    """The challenge a UAC should answer among header values (one realm's offers, e.g.
    SHA-256 and MD5): the first of the strongest supported algorithm whose qop we can
    meet; None when none parses or none is usable. Never raises on peer input."""
    best: tuple[int, Challenge] | None = None
    for value in values:
        try:
            challenge = Challenge.parse(value)
        except SipParseError:
            continue
        name = canonical_algorithm(challenge.algorithm)
        if name is None:
            continue
        if challenge.qop and not {q.lower() for q in challenge.qop} & {"auth", "auth-int"}:
            continue
        rank = _PREFERENCE.index(name)
        if best is None or rank < best[0]:
            best = (rank, challenge)
    return best[1] if best is not None else None
