"""SIP requests and responses: parsing, serializing, framing (RFC 3261 §7, §18.3).

Parsing is one pass over the header block: unfold (CRLF + SP/HT is LWS, §7.3.1),
split lines, canonicalize names. Only the fields every layer needs are parsed into
typed values (Via, From, To, Call-ID, CSeq: the derived fields of `Request` and
`Response`); the rest stay raw strings in `Headers` until someone asks.

Content-Length is framing, not content: the parser consumes it (it is not kept in
`headers`) and `__bytes__` always writes `Content-Length: len(body)`. That is also
what makes `parse_message(bytes(m)) == m` hold for every message that parses.

Text is decoded as UTF-8 with `surrogateescape`, so octets that are not UTF-8
survive a parse/serialize round trip unchanged.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sip.errors import SipParseError
from sip.grammar import TOKEN_RE, is_token, parse_int
from sip.headers import CANONICAL, CSeq, Headers, NameAddr, Via
from sip.uri import SipUri, Uri, parse_uri

_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
#: name HCOLON value CRLF, values unfolded already (greedy classes: no backtracking)
_HEADER_LINE_RE = re.compile(r"^([^:\r\n \t]*)[ \t]*:[ \t]*([^\r\n]*)\r\n", re.MULTILINE)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# callid = word ["@" word] (RFC 3261 §25.1)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(f"{_WORD}(?:@{_WORD})?")

#: lower-case name -> (canonical name, index key)
_NAMES: dict[str, tuple[str, str]] = {k: (v, v.lower()) for k, v in CANONICAL.items()}

#: Single-valued fields: a second field of the same name is a 400 (RFC 4475 §3.3.8 multi01).
_SINGLE = ("from", "to", "call-id", "cseq", "max-forwards", "content-type")

_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})

#: Largest Content-Length accepted at all (a datagram or framed message is far smaller).
_MAX_CONTENT_LENGTH = 2**31 - 1

#: Most header lines (after unfolding) a message may have. Real requests carry 10-30; a
#: REGISTER or INVITE with 200 is already odd. Checked on the raw octets before any
#: decoding or splitting, so a datagram of 15,000 tiny lines costs one `bytes.count`.
MAX_HEADER_LINES = 256
#: Largest message `parse_message` takes: a UDP datagram's limit; the TCP framer has
#: its own (`StreamFramer.max_size`).
MAX_MESSAGE_SIZE = 65_535

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
}


def _derive(headers: Headers) -> tuple[tuple[Via, ...], str, CSeq, NameAddr, NameAddr]:
    """Parse the five fields every message must carry (RFC 3261 §8.1.1)."""
    index = headers._lookup()
    for key in _SINGLE:
        values = index.get(key)
        if values is not None and len(values) > 1:
            raise SipParseError(f"more than one {CANONICAL.get(key, key)} header field")
    vias = index.get("via")
    call_ids = index.get("call-id")
    cseqs = index.get("cseq")
    froms = index.get("from")
    tos = index.get("to")
    if not (vias and call_ids and cseqs and froms and tos):
        missing = [
            name
            for name, values in (
                ("Via", vias),
                ("From", froms),
                ("To", tos),
                ("Call-ID", call_ids),
                ("CSeq", cseqs),
            )
            if not values
        ]
        raise SipParseError("missing " + ", ".join(missing))
    try:
        if len(vias) == 1 and "," not in vias[0]:
            via: tuple[Via, ...] = (Via.parse(vias[0]),)
        else:
            via = tuple(v for value in vias for v in Via.parse_list(value))
    except SipParseError as exc:
        raise SipParseError(f"bad Via: {exc.reason}") from exc
    call_id = call_ids[0]
    if _CALL_ID_RE.fullmatch(call_id) is None:
        raise SipParseError("bad Call-ID")
    try:
        cseq = CSeq.parse(cseqs[0])
    except SipParseError as exc:
        raise SipParseError(f"bad CSeq: {exc.reason}") from exc
    try:
        from_ = NameAddr.parse(froms[0])
    except SipParseError as exc:
        raise SipParseError(f"bad From: {exc.reason}") from exc
    try:
        to = NameAddr.parse(tos[0])
    except SipParseError as exc:
        raise SipParseError(f"bad To: {exc.reason}") from exc
    return via, call_id, cseq, from_, to


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    parts = [start, "\r\n"]
    for name, value in headers._fields:
        if name != "Content-Length":
            parts.append(f"{name}: {value}\r\n")
    parts.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape") + body


@dataclass(frozen=True, slots=True)
class Request:
    """A SIP request. The derived fields are parsed from `headers` on construction.

    Equality compares method, URI, headers and body (the derived fields follow
    from the headers).
    """

    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""
    via: tuple[Via, ...] = field(init=False, compare=False, repr=False)
    call_id: str = field(init=False, compare=False, repr=False)
    cseq: CSeq = field(init=False, compare=False, repr=False)
    from_: NameAddr = field(init=False, compare=False, repr=False)
    to: NameAddr = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Raises: SipParseError (400) for a missing or malformed mandatory field."""
        if TOKEN_RE.fullmatch(self.method) is None:
            raise SipParseError("bad method")
        via, call_id, cseq, from_, to = _derive(self.headers)
        # RFC 3261 §8.1.1.5: "The method MUST match that of the request."
        if cseq.method != self.method:
            raise SipParseError("CSeq method does not match the request method")
        max_forwards = self.headers._lookup().get("max-forwards")
        if max_forwards is not None:
            parse_int(max_forwards[0], "Max-Forwards", 255)
        setter = object.__setattr__
        setter(self, "via", via)
        setter(self, "call_id", call_id)
        setter(self, "cseq", cseq)
        setter(self, "from_", from_)
        setter(self, "to", to)

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards as an int (validated 0..255 on construction), None when absent."""
        values = self.headers._lookup().get("max-forwards")
        return int(values[0]) if values else None

    def __bytes__(self) -> bytes:
        """The wire form; always writes `Content-Length: len(body)` (RFC 3261 §18.3)."""
        return _serialize(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)

    def with_top_via(self, via: Via) -> Request:
        """The same request with its top Via replaced (the transport stamps received
        and rport there), without parsing the other fields again."""
        vias = (via, *self.via[1:])
        headers = self.headers.remove("Via")
        for one in reversed(vias):
            headers = headers.prepend("Via", str(one))
        obj = object.__new__(Request)
        setter = object.__setattr__
        setter(obj, "method", self.method)
        setter(obj, "uri", self.uri)
        setter(obj, "headers", headers)
        setter(obj, "body", self.body)
        setter(obj, "via", vias)
        setter(obj, "call_id", self.call_id)
        setter(obj, "cseq", self.cseq)
        setter(obj, "from_", self.from_)
        setter(obj, "to", self.to)
        return obj


@dataclass(frozen=True, slots=True)
class Response:
    """A SIP response. The derived fields are parsed from `headers` on construction."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    via: tuple[Via, ...] = field(init=False, compare=False, repr=False)
    call_id: str = field(init=False, compare=False, repr=False)
    cseq: CSeq = field(init=False, compare=False, repr=False)
    from_: NameAddr = field(init=False, compare=False, repr=False)
    to: NameAddr = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Raises: SipParseError for a bad status or a missing/malformed mandatory field."""
        if not 100 <= self.status <= 699:
            raise SipParseError("status code out of range")
        if "\r" in self.reason or "\n" in self.reason:
            raise SipParseError("CR or LF in the reason phrase")
        via, call_id, cseq, from_, to = _derive(self.headers)
        setter = object.__setattr__
        setter(self, "via", via)
        setter(self, "call_id", call_id)
        setter(self, "cseq", cseq)
        setter(self, "from_", from_)
        setter(self, "to", to)

    @classmethod
    def _prederived(
        cls,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes,
        derived: tuple[tuple[Via, ...], str, CSeq, NameAddr, NameAddr],
    ) -> Response:
        """Build without re-parsing fields the caller already holds parsed."""
        obj = object.__new__(cls)
        setter = object.__setattr__
        setter(obj, "status", status)
        setter(obj, "reason", reason)
        setter(obj, "headers", headers)
        setter(obj, "body", body)
        via, call_id, cseq, from_, to = derived
        setter(obj, "via", via)
        setter(obj, "call_id", call_id)
        setter(obj, "cseq", cseq)
        setter(obj, "from_", from_)
        setter(obj, "to", to)
        return obj

    def __bytes__(self) -> bytes:
        """The wire form; always writes `Content-Length: len(body)`."""
        return _serialize(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)


Message = Request | Response


def _check_version(version: str) -> None:
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise SipParseError("SIP version not supported", 505)
        raise SipParseError("malformed SIP-Version")


def parse_message(
    data: bytes, *, max_lines: int = MAX_HEADER_LINES, max_size: int = MAX_MESSAGE_SIZE
) -> Message:
    """Parse one datagram or one framed stream message, in time linear in its size.

    Limits are checked before the work they bound: more than `max_size` octets is a
    513, more than `max_lines` header lines (folded continuation lines count) a 400.

    Content-Length (RFC 3261 §18.3): a value smaller than what follows the blank
    line means only that many octets are the body (RFC 4475 §3.1.1.8 dblreq); a
    larger one is an error (§3.1.2.2 clerr); absent means the rest of the datagram.

    Raises:
        SipParseError: anything malformed; `status` is 505 for another SIP version,
            513 for a message over `max_size`, 400 otherwise (a response that fails is
            to be dropped, not answered).
    """
    if len(data) > max_size:
        raise SipParseError("message too large", 513)
    start = 0
    # RFC 3261 §7.5: CRLFs before the start-line are ignored.
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("no empty line after the header fields")
    # A header line takes at least 3 octets (a continuation " x" and CRLF), so only a
    # head longer than that many lines can hold too many.
    if end - start > 3 * max_lines and data.count(b"\n", start, end) > max_lines:
        raise SipParseError("too many header lines")
    head = data[start:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    breaks = head.count("\r\n")
    if head.count("\r") != breaks or head.count("\n") != breaks:
        raise SipParseError("bare CR or LF in the header")
    first_end = head.find("\r\n")
    first = head if first_end < 0 else head[:first_end]
    if first[:4].upper() == "SIP/":
        parts = first.split(" ", 2)
        _check_version(parts[0])
        code = parts[1] if len(parts) > 1 else ""
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
            raise SipParseError("bad status code")
        status = int(code)
        reason = parts[2] if len(parts) > 2 else ""
        method = ""
        uri: Uri | None = None
    else:
        parts = first.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise SipParseError("malformed Request-Line")
        method, uri_text, version = parts
        if TOKEN_RE.fullmatch(method) is None:
            raise SipParseError("bad method")
        _check_version(version)
        try:
            uri = parse_uri(uri_text)
        except SipParseError as exc:
            raise SipParseError(f"bad Request-URI: {exc.reason}") from exc
        # RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 escruri).
        if isinstance(uri, SipUri) and uri.headers:
            raise SipParseError("header parameters in the Request-URI")

    pairs: list[tuple[str, str]] = []
    if first_end >= 0:
        head += "\r\n"
        pairs = _HEADER_LINE_RE.findall(head, first_end + 2)
        if len(pairs) != breaks:
            raise SipParseError("header line without a colon")

    fields: list[tuple[str, str]] = []
    index: dict[str, tuple[str, ...]] = {}
    # A name seen again collects its values in a list (growing a tuple would copy it
    # each time: quadratic in the number of fields of one name), made a tuple at the end.
    repeated: dict[str, list[str]] = {}
    content_lengths: list[str] = []
    names = _NAMES
    for raw, value in pairs:
        if value and value[-1] in " \t":
            value = value.rstrip(" \t")
        known = names.get(raw.lower())
        if known is None:
            if not raw or not is_token(raw):
                raise SipParseError("bad header name")
            name = raw
            key = raw.lower()
        else:
            name, key = known
        if key == "content-length":
            content_lengths.append(value)
            continue
        fields.append((name, value))
        bucket = index.get(key)
        if bucket is None:
            index[key] = (value,)
        else:
            more = repeated.get(key)
            if more is None:
                repeated[key] = [*bucket, value]
            else:
                more.append(value)

    body_start = end + 4
    if content_lengths:
        if len(content_lengths) > 1:
            raise SipParseError("more than one Content-Length")
        length = parse_int(content_lengths[0], "Content-Length", _MAX_CONTENT_LENGTH)
        if length > len(data) - body_start:
            raise SipParseError("Content-Length larger than the message")
        body = bytes(data[body_start : body_start + length])
    else:
        body = bytes(data[body_start:])

    for key, values in repeated.items():
        index[key] = tuple(values)
    headers = Headers._trusted(tuple(fields), index)
    if uri is None:
        return Response(status, reason, headers, body)
    return Request(method, uri, headers, body)


class _NewTag(enum.Enum):
    NEW_TAG = "new"


#: `make_response`'s default for `to_tag`: a fresh random tag when the request has none.
NEW_TAG: Final = _NewTag.NEW_TAG


class _TagPool:
    """64-bit random tags (RFC 3261 §19.3: "cryptographically random with at least 32
    bits of randomness"), cut from one `os.urandom` call per 512 tags: every response
    needs one, and a system call each was a measurable part of a registration."""

    __slots__ = ("_hex", "_next")

    def __init__(self) -> None:
        self._hex = ""
        self._next = 0

    def __call__(self) -> str:
        start = self._next
        if start >= len(self._hex):
            self._hex = os.urandom(4096).hex()
            start = 0
        self._next = start + 16
        return self._hex[start : start + 16]

    def reset(self) -> None:
        """Forget the pool (a forked child must not hand out its parent's tags)."""
        self._hex = ""
        self._next = 0


_new_tag = _TagPool()
os.register_at_fork(after_in_child=_new_tag.reset)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | _NewTag | None = NEW_TAG,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to `request` (RFC 3261 §8.2.6).

    Copies every Via in order, From, To (adding `to_tag` when To has none), Call-ID
    and CSeq, then `headers`. RFC 3261 §8.2.6.2: "the UAS MUST add a tag to the To
    header field in the response (with the exception of the 100 (Trying) response, in
    which a tag MAY be present)": by default (`NEW_TAG`) a To without a tag gets a fresh
    one, except in a 100; `to_tag=None` leaves To as it is. Record-Route is copied
    too for 101..299 responses to a dialog-creating request (§12.1.1: the UAS "MUST
    copy all Record-Route header field values from the request into the response").

    Raises:
        ValueError: a bad status, a `to_tag` that is not a token, or a bad header.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} out of range")
    if reason is None:
        reason = REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")
    index = request.headers._lookup()
    fields: list[tuple[str, str]] = [("Via", v) for v in index["via"]]
    to_value = index["to"][0]
    to = request.to
    if to_tag is not None and to.tag is None:
        if to_tag is NEW_TAG:
            tag = _new_tag() if status != 100 else None
        elif is_token(to_tag):
            tag = to_tag
        else:
            raise ValueError(f"bad To tag {to_tag!r}")
        if tag is not None:
            to_value = f"{to_value};tag={tag}"
            # No tag param yet: append it (what `with_param` does, without its scan).
            to = NameAddr(to.uri, to.display_name, (*to.params, ("tag", tag)))
    fields.append(("From", index["from"][0]))
    fields.append(("To", to_value))
    fields.append(("Call-ID", request.call_id))
    fields.append(("CSeq", index["cseq"][0]))
    if 100 < status < 300 and request.method in _DIALOG_CREATING:
        fields.extend(("Record-Route", v) for v in index.get("record-route", ()))
    if headers:
        fields.extend(Headers(headers))
    derived = (request.via, request.call_id, request.cseq, request.from_, to)
    return Response._prederived(status, reason, Headers._trusted(tuple(fields)), body, derived)


#: `StreamFramer.feed` yields this for a CRLFCRLF keep-alive ping (RFC 5626 §3.5.1):
#: the transport answers it with `KEEPALIVE_PONG`. No SIP message equals it.
KEEPALIVE_PING = b"\r\n\r\n"
#: What the transport writes back for a ping. A single CRLF received (a pong to our
#: own ping, or a stray CRLF before a start-line, which RFC 3261 §7.5 says to
#: ignore) is consumed by the framer silently.
KEEPALIVE_PONG = b"\r\n"

_STREAM_CL_RE = re.compile(
    rb"\n(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?([^\r\n]*)", re.IGNORECASE
)


class StreamFramer:
    """Splits a TCP byte stream into messages (Content-Length mandatory), passes CRLF keep-alives.

    `feed(data)` returns a list whose items are complete messages (bytes to give
    to `parse_message`) or the object `KEEPALIVE_PING` (test with `is`) for each
    CRLFCRLF ping, which the transport answers with `KEEPALIVE_PONG` (RFC 5626
    §3.5.1). A single CRLF is skipped; one at the very end of the buffered data is
    held until the next octets show whether it is the first half of a ping.

    RFC 3261 §18.3: "In the case of stream-oriented transports such as TCP, the
    Content-Length header field indicates the size of the body. The Content-Length
    header field MUST be used with stream oriented transports."
    """

    def __init__(self, max_size: int = 65536) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Octets held of a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return the messages and keep-alives now complete.

        Raises:
            SipParseError: a message without Content-Length (400), or larger than
                `max_size` (513). The stream cannot be resynchronized after that:
                the transport should answer if it can, then close the connection.
        """
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        while buf:
            if buf[0] == 0x0D:
                if buf.startswith(b"\r\n\r\n"):
                    out.append(KEEPALIVE_PING)
                    del buf[:4]
                    continue
                if len(buf) < 4 and KEEPALIVE_PING.startswith(buf):
                    break  # a ping may be arriving in pieces
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise SipParseError("message too large", 513)
                break
            length = self._content_length(bytes(buf[:end]))
            total = end + 4 + length
            if total > self.max_size:
                raise SipParseError("message too large", 513)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @staticmethod
    def _content_length(head: bytes) -> int:
        found = _STREAM_CL_RE.findall(head)
        if not found:
            raise SipParseError("missing Content-Length on a stream transport")
        if len(found) > 1:
            raise SipParseError("more than one Content-Length")
        return parse_int(found[0].strip(b" \t").decode("latin-1"), "Content-Length", 2**31 - 1)


__all__ = [
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "MAX_HEADER_LINES",
    "MAX_MESSAGE_SIZE",
    "NEW_TAG",
    "REASONS",
    "Message",
    "Request",
    "Response",
    "StreamFramer",
    "make_response",
    "parse_message",
]
