"""Shared lexical helpers of the SIP grammar (RFC 3261 §25.1).

Everything here works on header values that the message parser has already
unfolded (RFC 3261 §7.3.1: a CRLF followed by SP or HT is LWS and is replaced by a
single SP), so the only whitespace left is SP and HT.

The regular expressions are written so that no two alternatives can match the same
character, which keeps them linear on hostile input (no backtracking traps).
"""

from __future__ import annotations

import re

from sip.errors import SipParseError

#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = f"[{TOKEN_CHARS}]+"
TOKEN_RE = re.compile(TOKEN)

#: quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE; quoted-pair excludes CR and LF.
QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
QUOTED_RE = re.compile(QUOTED)

#: gen-value = token / host / quoted-string; host adds ":" "[" "]" (IPv6 references).
_GEN_VALUE = f"{QUOTED}|[{TOKEN_CHARS}:\\[\\]]+"

#: One generic-param with its leading SEMI, LWS allowed around ";" and "=".
_PARAM_RE = re.compile(f"[ \\t]*;[ \\t]*({TOKEN})(?:[ \\t]*=[ \\t]*({_GEN_VALUE}))?[ \\t]*")

_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")

Params = tuple[tuple[str, str | None], ...]

_KNOWN = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Transfer-Encoding",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "Flow-Timer",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Join",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Target-Dialog",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]

#: RFC 3261 §7.3.3 and later RFCs' compact forms.
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "x": "Session-Expires",
    "y": "Identity",
    "n": "Identity-Info",
}

#: lower-case name or compact letter -> canonical spelling
CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN} | _COMPACT

#: Headers whose grammar is `#element` (RFC 3261 §7.3.1), split by `get_all`. Headers
#: absent here (WWW-Authenticate, Authorization, Date, Retry-After, unknown ones ...)
#: are never split: their values contain commas that are not separators.
LIST_HEADERS = frozenset(
    name.lower()
    for name in [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Accept-Resource-Priority",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Resource-Priority",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    ]
)


def is_token(text: str) -> bool:
    """True when `text` is one RFC 3261 token (method, header name, option-tag ...)."""
    return TOKEN_RE.fullmatch(text) is not None


def parse_params(text: str, pos: int = 0, what: str = "header") -> Params:
    """Parse `*( SEMI generic-param )` from `text[pos:]` up to its end.

    Values are kept as written (a quoted-string keeps its quotes), so
    `format_params(parse_params(t))` reads back equal.

    Raises:
        SipParseError: an empty parameter (";;"), a bad name or value, or trailing junk.
    """
    params: list[tuple[str, str | None]] = []
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise SipParseError(f"bad {what} parameter near {text[pos : pos + 20]!r}")
        params.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(params)


def format_params(params: Params) -> str:
    """Write parameters back as `;name=value;flag`."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def find_param(params: Params, name: str) -> str | None:
    """Value of the first parameter called `name` (case-insensitive); "" for a flag."""
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return "" if v is None else v
    return None


def replace_param(params: Params, name: str, value: str | None) -> Params:
    """Replace the first parameter called `name` (case-insensitive) or append it."""
    lname = name.lower()
    out = list(params)
    for i, (n, _) in enumerate(out):
        if n.lower() == lname:
            out[i] = (n, value)
            return tuple(out)
    out.append((name, value))
    return tuple(out)


def split_top_level(text: str) -> list[str]:
    """Split a header value at commas outside quoted strings and <...>.

    Items are stripped of SP/HT; empty items are kept so that callers can decide
    whether `a,,b` is an error (Via, Contact) or tolerable (Supported).
    """
    if "," not in text:
        return [text.strip(" \t")]
    if '"' not in text and "<" not in text:
        return [item.strip(" \t") for item in text.split(",")]
    items: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif in_angle:
            if c == ">":
                in_angle = False
        elif c == "<":
            in_angle = True
        elif c == ",":
            items.append(text[start:i].strip(" \t"))
            start = i + 1
        i += 1
    items.append(text[start:].strip(" \t"))
    return items


def unquote(quoted: str) -> str:
    """The content of a quoted-string with its quoted-pairs resolved."""
    inner = quoted[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner):
            i += 1
            c = inner[i]
        out.append(c)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Write `text` as a quoted-string, escaping backslash and DQUOTE."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unescape(text: str) -> str:
    """Resolve %HH escapes (RFC 3261 §19.1.2); bytes are read as UTF-8."""
    if "%" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def parse_int(text: str, what: str, maximum: int) -> int:
    """A 1*DIGIT field as an int in 0..maximum.

    Raises:
        SipParseError: not all digits, or out of range (checked before conversion,
            so a thousand-digit value costs nothing).
    """
    if not text.isdigit() or not text.isascii():
        raise SipParseError(f"{what} is not a number")
    if len(text) < 9:
        value = int(text)
        if value > maximum:
            raise SipParseError(f"{what} out of range")
        return value
    stripped = text.lstrip("0") or "0"
    if len(stripped) > len(str(maximum)) or int(stripped) > maximum:
        raise SipParseError(f"{what} out of range")
    return int(stripped)
