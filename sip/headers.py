"""Header fields: names, the `Headers` multimap and the typed values others rely on.

RFC 3261 §7.3: names are case-insensitive and have compact forms; a field whose
grammar is a comma-separated list may be split over several lines or combined on
one, and the two are equivalent. `Headers` keeps every field as written (after
unfolding) and splits lists only when asked (`get_all`), so a header nobody
reads costs nothing beyond one dictionary insert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from sip.errors import SipParseError
from sip.grammar import (
    CANONICAL,
    LIST_HEADERS,
    QUOTED_RE,
    TOKEN,
    TOKEN_CHARS,
    Params,
    find_param,
    format_params,
    is_token,
    parse_params,
    quote,
    replace_param,
    split_top_level,
    unquote,
)
from sip.uri import Uri, parse_uri


def canonical_name(name: str) -> str:
    """Expand a compact form and spell a known name canonically; others stay as written."""
    name = name.strip(" \t")
    return CANONICAL.get(name.lower(), name)


def _key(name: str) -> str:
    lower = name.strip(" \t").lower()
    canon = CANONICAL.get(lower)
    return canon.lower() if canon is not None else lower


def _clean(name: str, value: str) -> tuple[str, str]:
    canon = canonical_name(name)
    if not is_token(canon):
        raise ValueError(f"bad header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"CR or LF in the value of {canon}")
    return canon, value.strip(" \t")


class Headers:
    """Ordered, immutable multimap of header fields; names canonicalized on the way in,
    looked up case-insensitively (compact forms too).

    Values are kept as written, unfolded and stripped of surrounding SP/HT.
    """

    __slots__ = ("_fields", "_index")

    _fields: tuple[tuple[str, str], ...]
    # lower-case name -> values, built on first lookup (responses we build and send are
    # mostly never looked up). Tuples, not lists: the cyclic GC stops tracking a tuple of
    # strings, so the many messages that live transactions hold cost it less.
    _index: dict[str, tuple[str, ...]] | None

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        """Build from (name, value) pairs.

        Raises:
            ValueError: a name that is not a token, or a value holding CR or LF
                (which would let a value inject header lines).
        """
        self._fields = tuple(_clean(name, value) for name, value in fields)
        self._index = None

    def _lookup(self) -> dict[str, tuple[str, ...]]:
        """The index by lower-case name, built once."""
        index = self._index
        if index is None:
            index = {}
            # A name seen again collects its values in a list (not a tuple copy per
            # value: linear in the number of fields), made a tuple at the end.
            repeated: dict[str, list[str]] = {}
            for name, value in self._fields:
                key = name.lower()
                bucket = index.get(key)
                if bucket is None:
                    index[key] = (value,)
                else:
                    more = repeated.get(key)
                    if more is None:
                        repeated[key] = [*bucket, value]
                    else:
                        more.append(value)
            for key, values in repeated.items():
                index[key] = tuple(values)
            self._index = index
        return index

    @classmethod
    def _trusted(
        cls, fields: tuple[tuple[str, str], ...], index: dict[str, tuple[str, ...]] | None = None
    ) -> Headers:
        """Fast path for the parser: names already canonical, values already clean."""
        obj = cls.__new__(cls)
        obj._fields = fields
        obj._index = index
        return obj

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._lookup()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"

    def get(self, name: str) -> str | None:
        """The first field's raw value, or None."""
        values = self._lookup().get(_key(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value; list-valued headers split at top-level commas, empty items dropped."""
        key = _key(name)
        values = self._lookup().get(key)
        if not values:
            return []
        if key not in LIST_HEADERS:
            return list(values)
        return [item for value in values for item in split_top_level(value) if item]

    def values(self, name: str) -> tuple[str, ...]:
        """Every field's value as written, lists not split (an Authorization value holds
        commas that do not separate fields)."""
        return self._lookup().get(_key(name), ())

    def count(self, name: str) -> int:
        """How many fields (lines) of that name there are, without splitting lists."""
        return len(self._lookup().get(_key(name), ()))

    def add(self, name: str, value: str) -> Headers:
        """A copy with the field appended."""
        return Headers._trusted((*self._fields, _clean(name, value)))

    def prepend(self, name: str, value: str) -> Headers:
        """A copy with the field first (e.g. a proxy's Via on top)."""
        return Headers._trusted((_clean(name, value), *self._fields))

    def set(self, name: str, value: str) -> Headers:
        """A copy where one field replaces all fields of that name (at the first's place)."""
        key = _key(name)
        new = _clean(name, value)
        out: list[tuple[str, str]] = []
        placed = False
        for field in self._fields:
            if field[0].lower() == key:
                if not placed:
                    out.append(new)
                    placed = True
            else:
                out.append(field)
        if not placed:
            out.append(new)
        return Headers._trusted(tuple(out))

    def remove(self, name: str) -> Headers:
        """A copy without any field of that name."""
        key = _key(name)
        return Headers._trusted(tuple(f for f in self._fields if f[0].lower() != key))


_DISPLAY_TOKENS_RE = re.compile(f"{TOKEN}(?:[ \\t]+{TOKEN})*")
#: value of a parameter on the fast path: token or host (IPv6 included), no quotes
_FAST_PARAMS = f"(?:;{TOKEN}(?:=[{TOKEN_CHARS}:\\[\\]]+)?)*"
#: The usual shapes `"Name" <uri>;a=b` / `Name <uri>` / `<uri>;a` without stray LWS.
_NAME_ADDR_FAST_RE = re.compile(
    f'(?:"((?:[^"\\\\\\r\\n]|\\\\[^\\r\\n])*)" ?|({TOKEN}(?: {TOKEN})*) ?)?'
    f'<([^<>\\s"]+)>({_FAST_PARAMS})'
)


def split_fast_params(text: str) -> Params:
    """Split `;a=b;c` already validated by a fast-path regex."""
    if not text:
        return ()
    out = []  # a plain loop: half the cost of nested generators, and this runs per Via/From
    for param in text[1:].split(";"):
        name, sep, value = param.partition("=")
        out.append((name, value if sep else None))
    return tuple(out)


def _parse_angle_uri(text: str, start: int) -> tuple[Uri, int]:
    """The URI between `<` at text[start] and its `>`; returns it and the index after `>`."""
    end = text.find(">", start + 1)
    if end < 0:
        raise SipParseError("missing '>' after URI")
    return parse_uri(text[start + 1 : end]), end + 1


@dataclass(frozen=True, slots=True)
class NameAddr:
    """`[display-name] <URI> *(;param)` or a bare addr-spec: From, To, Contact, Route ...

    `display_name` is unquoted (quoted-pairs resolved); parameters are header
    parameters (tag, expires, q, +sip.instance ...) kept as written.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse one name-addr or addr-spec with its parameters.

        RFC 3261 §20: "If no "<" and ">" are present, all parameters after the URI
        are header parameters, not URI parameters" and the name-addr form "MUST be
        used if the addr-spec contains a comma, semicolon, or question mark".

        Raises:
            SipParseError: any syntax error (400), e.g. an unterminated quote or
                spaces inside <...> (RFC 4475 §3.1.2.6, §3.1.2.14).
        """
        return _parse_name_addr(text)

    @classmethod
    def _parse_slow(cls, text: str) -> NameAddr:
        s = text.strip(" \t")
        display: str | None = None
        if s.startswith('"'):
            m = QUOTED_RE.match(s)
            if m is None:
                raise SipParseError("unterminated quoted display name")
            display = unquote(m.group())
            lt = m.end()
            while lt < len(s) and s[lt] in " \t":
                lt += 1
            if lt >= len(s) or s[lt] != "<":
                raise SipParseError("missing '<' after display name")
            uri, pos = _parse_angle_uri(s, lt)
        else:
            lt = s.find("<")
            if lt >= 0:
                name = s[:lt].rstrip(" \t")
                if name:
                    if _DISPLAY_TOKENS_RE.fullmatch(name) is None:
                        raise SipParseError("bad display name")
                    display = name
                uri, pos = _parse_angle_uri(s, lt)
            else:
                pos = len(s)
                for i, c in enumerate(s):
                    if c in "; \t":
                        pos = i
                        break
                bare = s[:pos]
                if not bare:
                    raise SipParseError("missing URI")
                if "?" in bare or "," in bare:
                    raise SipParseError("URI with '?' or ',' must be enclosed in <>")
                uri = parse_uri(bare)
        params = parse_params(s, pos) if pos < len(s) else ()
        return cls(uri, display, params)

    @classmethod
    def parse_list(cls, text: str) -> list[NameAddr]:
        """Parse a comma-separated list (Contact, Route ...); commas in quotes/<> kept.

        Raises:
            SipParseError: an empty element or a bad one. `*` (Contact of a
                REGISTER that removes every binding) is not a NameAddr: check for
                it before calling.
        """
        out = []
        for item in split_top_level(text):
            if not item:
                raise SipParseError("empty element in a header list")
            out.append(cls.parse(item))
        return out

    def param(self, name: str) -> str | None:
        """Header parameter value (name case-insensitive); "" for a flag; None if absent."""
        return find_param(self.params, name)

    @property
    def tag(self) -> str | None:
        """The `tag` parameter (RFC 3261 §19.3), or None."""
        return find_param(self.params, "tag")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        """A copy with the parameter replaced or appended."""
        return NameAddr(self.uri, self.display_name, replace_param(self.params, name, value))

    def __str__(self) -> str:
        uri = f"<{self.uri}>"
        if self.display_name is not None:
            uri = f"{quote(self.display_name)} {uri}"
        return uri + format_params(self.params) if self.params else uri


@lru_cache(maxsize=4096)
def _parse_name_addr(text: str) -> NameAddr:
    m = _NAME_ADDR_FAST_RE.fullmatch(text)
    if m is None:
        return NameAddr._parse_slow(text)
    quoted, tokens, uri, params = m.groups()
    display = tokens
    if quoted is not None:
        display = unquote(f'"{quoted}"')
    return NameAddr(parse_uri(uri), display, split_fast_params(params))


_VIA_FAST_RE = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    f"({_FAST_PARAMS})"
)
_VIA_RE = re.compile(
    f"({TOKEN})[ \\t]*/[ \\t]*({TOKEN})[ \\t]*/[ \\t]*({TOKEN})[ \\t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*"
)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header field value (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm: `SIP/2.0/UDP host[:port];params`, LWS allowed as in §25.1.

        Raises:
            SipParseError: malformed sent-protocol, sent-by or parameters.
        """
        m = _VIA_FAST_RE.fullmatch(text)
        if m is not None:
            transport, host, port, params = m.groups()
            port_num: int | None = None
            if port is not None:
                port_num = int(port)
                if port_num > 65535:
                    raise SipParseError("Via port out of range")
            return cls(transport.upper(), host, port_num, split_fast_params(params))
        s = text.strip(" \t")
        m = _VIA_RE.match(s)
        if m is None:
            raise SipParseError("malformed Via")
        name, version, transport, host, port = m.groups()
        port_num = None
        if port is not None:
            port_num = int(port)
            if port_num > 65535:
                raise SipParseError("Via port out of range")
        params = parse_params(s, m.end(), "Via") if m.end() < len(s) else ()
        return cls(transport.upper(), host, port_num, params, f"{name.upper()}/{version}")

    @classmethod
    def parse_list(cls, text: str) -> list[Via]:
        """Parse a comma-separated list of via-parms.

        Raises:
            SipParseError: an empty element (RFC 4475 §3.1.2.1 badinv01) or a bad one.
        """
        out = []
        for item in split_top_level(text):
            if not item:
                raise SipParseError("empty element in Via")
            out.append(cls.parse(item))
        return out

    def param(self, name: str) -> str | None:
        """Parameter value (case-insensitive name); "" for a flag; None if absent."""
        return find_param(self.params, name)

    @property
    def branch(self) -> str | None:
        """The branch parameter (the transaction id when it starts with z9hG4bK)."""
        return find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The received parameter, or None."""
        return find_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        """RFC 3581 rport: "" when present without value, None when absent."""
        return find_param(self.params, "rport")

    def with_param(self, name: str, value: str | None) -> Via:
        """A copy with the parameter replaced or appended (received, rport ...)."""
        return Via(
            self.transport,
            self.host,
            self.port,
            replace_param(self.params, name, value),
            self.protocol,
        )

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


_CSEQ_RE = re.compile(f"[ \\t]*([0-9]+)[ \\t]+({TOKEN})[ \\t]*")

#: RFC 3261 §8.1.1.5: "The sequence number value MUST be expressible as a 32-bit
#: unsigned integer and MUST be less than 2**31."
CSEQ_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq header value: sequence number and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse `1*DIGIT LWS Method`; leading zeros allowed (RFC 4475 wsinv `0009`).

        Raises:
            SipParseError: malformed, or the number above 2**31-1 (RFC 4475 scalar02).
        """
        number, _, method = text.partition(" ")
        if 0 < len(number) <= 10 and number.isdigit() and number.isascii() and is_token(method):
            seq = int(number)
            if seq > CSEQ_MAX:
                raise SipParseError("CSeq number out of range")
            return cls(seq, method)
        m = _CSEQ_RE.fullmatch(text)
        if m is None:
            raise SipParseError("malformed CSeq")
        digits = m.group(1).lstrip("0") or "0"
        if len(digits) > 10 or int(digits) > CSEQ_MAX:
            raise SipParseError("CSeq number out of range")
        return cls(int(digits), m.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


__all__ = [
    "CANONICAL",
    "CSEQ_MAX",
    "LIST_HEADERS",
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
]
