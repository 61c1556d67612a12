"""SIP and SIPS URIs (RFC 3261 §19.1, grammar §25.1) and opaque absolute URIs.

Escapes are kept as written (RFC 4475 §3.1.1.3 esc01: `sip:%75se%72@example.com`
stays so in `user`), so a URI prints back exactly as it was received; `aor` gives
the unescaped, canonical form a registrar keys bindings by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sip.errors import SipParseError
from sip.grammar import Params, find_param, format_params, unescape

_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER = rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+"
# password = *( unreserved / escaped / & = + $ , )
_PASSWORD = rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*"
# hostname / IPv4address / IPv6reference; checked loosely (labels are not validated).
_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+"
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PCHAR = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+"
# hname / hvalue chars: hnv-unreserved = [ ] / ? : + $
_HCHAR = rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})"

_SIP_URI_RE = re.compile(
    rf"(?:(?P<user>{_USER})(?::(?P<password>{_PASSWORD}))?@)?"
    rf"(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
    rf"(?P<params>(?:;{_PCHAR}(?:={_PCHAR})?)*)"
    rf"(?:\?(?P<headers>{_HCHAR}+={_HCHAR}*(?:&{_HCHAR}+={_HCHAR}*)*))?"
)
_USER_RE = re.compile(_USER)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# absoluteURI rest: uric chars (reserved / unreserved / escaped), nothing else.
_OPAQUE_RE = re.compile(rf"(?:[{_UNRESERVED};/?:@&=+$,\[\]#]|{_ESC})+")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A `sip:` or `sips:` URI, every part kept as written except the scheme."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP-URI or SIPS-URI.

        Raises:
            SipParseError: not sip/sips, or any part outside the RFC 3261 grammar
                (status 416 for another scheme, 400 otherwise).
        """
        colon = text.find(":")
        scheme = text[:colon].lower()
        if colon < 0 or scheme not in ("sip", "sips"):
            raise SipParseError("not a sip or sips URI", 416)
        m = _SIP_URI_RE.fullmatch(text, colon + 1)
        if m is None:
            raise SipParseError("malformed SIP URI")
        user, password, host, port, params, headers = m.group(
            "user", "password", "host", "port", "params", "headers"
        )
        port_num: int | None = None
        if port is not None:
            port_num = int(port)
            if port_num > 65535:
                raise SipParseError("URI port out of range")
        parsed_params: Params = ()
        if params:
            parsed_params = tuple(
                (name, value if sep else None)
                for name, sep, value in (p.partition("=") for p in params[1:].split(";"))
            )
        parsed_headers: tuple[tuple[str, str], ...] = ()
        if headers:
            parsed_headers = tuple(
                (name, value) for name, _, value in (h.partition("=") for h in headers.split("&"))
            )
        return cls(scheme, user, password, host, port_num, parsed_params, parsed_headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(parts)

    def param(self, name: str) -> str | None:
        """URI parameter value (name case-insensitive); "" for a flag like `;lr`."""
        return find_param(self.params, name)

    @property
    def aor(self) -> str:
        """Canonical `sip:user@host[:port]`: the registrar's key for an address of record.

        Scheme and host are lower-cased, the user part is unescaped (RFC 3261 §19.1.4:
        escaped and unescaped characters compare equal), parameters are dropped.
        """
        user = f"{unescape(self.user)}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}{port}"

    @property
    def transport(self) -> str | None:
        """The `transport` URI parameter, lower case, or None."""
        value = self.param("transport")
        return value.lower() if value else None


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any URI whose scheme is not sip/sips (tel:, mailto:, http:, urn: ...), kept opaque."""

    scheme: str
    rest: str

    @classmethod
    def parse(cls, text: str) -> AbsoluteUri:
        """Parse `scheme ":" rest` (RFC 3261 absoluteURI); the scheme is lower-cased.

        Raises:
            SipParseError: no scheme, or characters an absoluteURI cannot hold.
        """
        colon = text.find(":")
        if colon <= 0 or _SCHEME_RE.fullmatch(text, 0, colon) is None:
            raise SipParseError("malformed URI scheme")
        if _OPAQUE_RE.fullmatch(text, colon + 1) is None:
            raise SipParseError("malformed URI")
        return cls(text[:colon].lower(), text[colon + 1 :])

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | AbsoluteUri


@lru_cache(maxsize=4096)
def is_user(text: str) -> bool:
    """Whether `text` may stand as the user part of a SIP URI as it is (RFC 3261 `user`)."""
    return _USER_RE.fullmatch(text) is not None


def parse_uri(text: str) -> Uri:
    """Parse any URI: a `SipUri` for sip/sips, an `AbsoluteUri` for other schemes.

    Results are cached (URIs are immutable and the same few recur in every request
    of a dialog or registration); errors are not.

    Raises:
        SipParseError: malformed URI (status 400).
    """
    head = text[:5].lower()
    if head.startswith(("sip:", "sips:")):
        return SipUri.parse(text)
    return AbsoluteUri.parse(text)
