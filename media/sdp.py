"""SDP (RFC 4566) as frozen dataclasses, RFC 3264 offer/answer, and relay rewriting.

Why our own parser and not `aiortc.sdp`: aiortc's model is WebRTC's (ICE, DTLS, bundle,
rtcp-mux) and serializes only the attributes it knows, so a SIP phone's description would
not survive a round trip. A B2BUA needs the opposite: change two things (address, port)
and keep every other line, in order, byte for byte. So each section keeps its lines as
`(type, value)` pairs; `m=` and `c=` are parsed into fields because the relay rewrites
them, and attributes are read on demand (`rtpmap`, `fmtp`, `ptime`, direction).

Untrusted input (issue 10): whatever the bytes, parsing and negotiating raise only
`SdpError`. Media addresses must be IP literals of the declared type (`c=IN IP4 <host
name>` is refused: resolving it would block the loop, and a B2BUA answers 488), numbers
are ASCII digits of bounded length checked against their ranges before use (ports
1..65535 for an active stream and its RTCP, payload types 0..127, clock rates up to
`MAX_CLOCK_RATE`, ptime up to `MAX_PTIME`), and a body has at most `MAX_SDP_BYTES`
octets and `MAX_SDP_LINES` lines.

Serialization writes the RFC 4566 §5 order (v o s [i u e p] c [b t r z k a]; m [i] c
[b k a]), so a description that followed it round-trips exactly (CRLF line ends).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from media.errors import SdpError

Line = tuple[str, str]  # (type letter, value) of one "x=value" line

MAX_SDP_BYTES = 65536
MAX_SDP_LINES = 2000
MAX_CLOCK_RATE = 192000
MAX_CHANNELS = 8
MAX_PTIME = 1000  # ms
_MAX_DIGITS = 9  # no number of an SDP body needs more (and int() stays cheap)

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
DEFAULT_CODECS = ("PCMU", "PCMA", "G722", "opus", "telephone-event")
"""Codec names aiopbx accepts, best first (names compare case-insensitively)."""

# RFC 3551 §6 static payload types a phone may list without an a=rtpmap.
STATIC_PAYLOADS: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
    18: ("G729", 8000, 1),
}
# Attributes that describe the phone's own transport; meaningless once the relay anchors it.
_TRANSPORT_ATTRIBUTES = frozenset(
    {"candidate", "remote-candidates", "end-of-candidates", "ice-ufrag", "ice-pwd",
     "ice-options", "ice-lite", "ice-mismatch", "rtcp-mux", "rtcp-mux-only"}
)  # fmt: skip
_ANSWER_DIRECTION = {  # RFC 3264 §6.1
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "sendrecv": "sendrecv",
    "inactive": "inactive",
}


@dataclass(frozen=True, slots=True)
class Connection:
    """A `c=` line: where media goes (`0.0.0.0` is the RFC 2543 way to say hold)."""

    address: str
    addr_type: str = "IP4"
    net_type: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Connection:
        """Raises: SdpError: not `IN IP4|IP6 address` with an IP literal of that type.

        A host name is refused rather than resolved: resolving it on the event loop would
        stall every call (issue 10 §3), and RFC 3264 phones put literals there anyway.
        """
        parts = text.split()
        if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
            raise SdpError(f"bad c= line {text[:60]!r}: expected 'IN IP4|IP6 address'")
        address = parts[2]
        if not is_ip_literal(address, parts[1]):
            raise SdpError(f"c= address {address[:60]!r} is not an {parts[1]} address literal")
        return cls(address, parts[1], parts[0])

    @classmethod
    def of_host(cls, host: str) -> Connection:
        return cls(host, "IP6" if ":" in host else "IP4")

    def __str__(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


def is_ip_literal(address: str, addr_type: str) -> bool:
    """Whether `address` is a literal IPv4 (`addr_type` "IP4") or IPv6 ("IP6") address."""
    if len(address) > 45 or not address.isascii():
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == (4 if addr_type == "IP4" else 6)


def parse_number(text: str, low: int, high: int, what: str) -> int:
    """`text` as an integer in `low`..`high`: ASCII digits only, bounded length.

    Raises:
        SdpError: anything else (Unicode digits, signs, exponents, 5,000 digits).
    """
    if not (0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()):
        raise SdpError(f"{what} {text[:20]!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise SdpError(f"{what} {value} is outside {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload format of an m= line, from its rtpmap (or the RFC 3551 static table)."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    @property
    def key(self) -> str:
        """Lower-case name: what preferences and transcoding compare."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One `m=` section: the m= line's fields, its c= if any, and every other line in order."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    lines: tuple[Line, ...] = ()
    port_count: int | None = None

    @classmethod
    def parse_m_line(cls, text: str) -> MediaDescription:
        """Raises: SdpError: not `media port[/count] proto fmt...`."""
        parts = text.split()
        if len(parts) < 3:
            raise SdpError(f"bad m= line {text!r}: expected 'media port proto formats'")
        port_text, _, count_text = parts[1].partition("/")
        try:
            port = parse_number(port_text, 0, 65535, "port")
            count = parse_number(count_text, 1, 65535, "port count") if count_text else None
        except SdpError as exc:
            raise SdpError(f"bad m= line {text[:60]!r}: {exc.reason}") from None
        return cls(parts[0], port, parts[2], tuple(parts[3:]), port_count=count)

    def __str__(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={' '.join((self.media, port, self.proto, *self.formats))}"]
        out += [f"i={v}" for t, v in self.lines if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in self.lines if t != "i"]
        return "\r\n".join(out) + "\r\n"

    @property
    def attributes(self) -> tuple[tuple[str, str | None], ...]:
        """`a=` lines as `(name, value)`; value None for a flag like `a=sendonly`."""
        return _attributes(self.lines)

    def attribute(self, name: str) -> str | None:
        """Value of the first `a=name:value` ("" for a flag), None when absent."""
        return _attribute(self.lines, name)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, None when absent (then the session's rules)."""
        return _direction(self.lines)

    @property
    def ptime(self) -> int | None:
        """The a=ptime in whole milliseconds (RFC 4566 allows a fraction), None when absent
        or not a plain number in 1..MAX_PTIME (ignored, as a phone would)."""
        value = (self.attribute("ptime") or "").strip()
        whole, _, fraction = value.partition(".")
        if not (0 < len(whole) <= 4 and whole.isascii() and whole.isdigit()):
            return None
        if fraction and not (fraction.isascii() and fraction.isdigit()):
            return None
        ms = int(whole)
        return ms if 0 < ms <= MAX_PTIME else None

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """Payload formats in m= line order, named by a=rtpmap or the static table.

        A dynamic payload type without an rtpmap is left out: nobody can know what it is.
        """
        rtpmaps: dict[str, str] = {}
        fmtps: dict[str, str] = {}
        for name, value in self.attributes:
            if name in ("rtpmap", "fmtp") and value:
                fmt, _, rest = value.partition(" ")
                (rtpmaps if name == "rtpmap" else fmtps).setdefault(fmt, rest.strip())
        out = []
        for fmt in self.formats:
            if not (0 < len(fmt) <= 3 and fmt.isascii() and fmt.isdigit()):
                continue
            pt = int(fmt)
            if pt > 127:
                raise SdpError(f"payload type {pt} is outside 0..127")
            if fmt in rtpmaps:
                enc, _, rest = rtpmaps[fmt].partition("/")
                rate_text, _, chan_text = rest.partition("/")
                what = f"a=rtpmap:{fmt}"
                rate = parse_number(rate_text, 1, MAX_CLOCK_RATE, f"{what} clock rate")
                channels = (
                    parse_number(chan_text, 1, MAX_CHANNELS, f"{what} channels")
                    if chan_text
                    else None
                )
                out.append(Codec(pt, enc, rate, channels, fmtps.get(fmt)))
            elif pt in STATIC_PAYLOADS:
                enc, rate, channels = STATIC_PAYLOADS[pt]
                out.append(Codec(pt, enc, rate, channels, fmtps.get(fmt)))
        return tuple(out)

    def with_lines(self, lines: Iterable[Line]) -> MediaDescription:
        return dataclasses.replace(self, lines=tuple(lines))


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body: v=, o=, s=, session c=, the other session lines, the m= sections."""

    origin: str
    name: str = "-"
    connection: Connection | None = None
    lines: tuple[Line, ...] = (("t", "0 0"),)
    media: tuple[MediaDescription, ...] = ()
    version: str = "0"

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse an SDP body (CRLF or LF line ends).

        Raises:
            SdpError: not UTF-8, a line that is not `x=value`, a missing v=/o=/s=, or a
                bad c=/m= line (the message names the line).
        """
        if len(data) > MAX_SDP_BYTES:
            raise SdpError(f"SDP longer than {MAX_SDP_BYTES} octets")
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("SDP is not UTF-8") from None
        fields: dict[str, str] = {}
        session_lines: list[Line] = []
        connection: Connection | None = None
        sections: list[MediaDescription] = []
        current: MediaDescription | None = None
        current_lines: list[Line] = []
        raw_lines = data.splitlines()
        if len(raw_lines) > MAX_SDP_LINES:
            raise SdpError(f"SDP has more than {MAX_SDP_LINES} lines")
        for number, raw in enumerate(raw_lines, 1):
            if not raw.strip():
                continue
            kind, eq, value = raw.partition("=")
            if not eq or len(kind) != 1 or not kind.isalpha():
                raise SdpError(f"SDP line {number} {raw[:40]!r} is not 'x=value'")
            if kind == "m":
                if current is not None:
                    sections.append(current.with_lines(current_lines))
                current, current_lines = MediaDescription.parse_m_line(value), []
            elif kind == "c":
                parsed = Connection.parse(value)
                if current is None:
                    connection = parsed
                else:
                    current = dataclasses.replace(current, connection=parsed)
            elif current is not None:
                current_lines.append((kind, value))
            elif kind in "vos" and kind not in fields:
                fields[kind] = value
            else:
                session_lines.append((kind, value))
        if current is not None:
            sections.append(current.with_lines(current_lines))
        for kind in "vos":
            if kind not in fields:
                raise SdpError(f"SDP has no {kind}= line")
        if fields["v"] != "0":
            raise SdpError(f"SDP version {fields['v']!r} is not 0")
        return cls(fields["o"], fields["s"], connection, tuple(session_lines), tuple(sections))

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.name}"]
        out += [f"{t}={v}" for t, v in self.lines if t in "iuep"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in self.lines if t not in "iuep"]
        return "\r\n".join(out) + "\r\n" + "".join(str(m) for m in self.media)

    def __bytes__(self) -> bytes:
        return str(self).encode()

    def attribute(self, name: str) -> str | None:
        """Session-level attribute value ("" for a flag), None when absent."""
        return _attribute(self.lines, name)

    def direction_of(self, media: MediaDescription) -> str:
        """Effective direction of a section: its own, else the session's, else sendrecv."""
        return media.direction or _direction(self.lines) or "sendrecv"

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """Effective c= of a section: its own, else the session's (RFC 4566 §5.7)."""
        return media.connection or self.connection

    def audio(self) -> MediaDescription:
        """The first active (port != 0) audio section.

        Raises:
            SdpError: there is none.
        """
        for media in self.media:
            if media.media == "audio" and media.port != 0:
                return media
        raise SdpError("SDP has no active audio stream")


@dataclass(frozen=True, slots=True)
class AudioStream:
    """What the relay needs from one side's description: where to send, what it carries."""

    host: str
    port: int
    rtcp_port: int
    codec: Codec
    telephone_event: int | None
    direction: str

    @property
    def on_hold(self) -> bool:
        """True when the side sends us nothing (sendonly hold is the *other* side's hold)."""
        return self.direction in ("recvonly", "inactive") or self.host in ("0.0.0.0", "::")


def audio_stream(sdp: SessionDescription) -> AudioStream:
    """The first active audio stream of a description (an answer: its first codec is the one
    in use).

    Raises:
        SdpError: no active audio stream, no c= for it, no codec we can name, or an RTCP
            port outside 1..65535 (a=rtcp, or m= port 65535 + 1).
    """
    media = sdp.audio()
    connection = sdp.connection_of(media)
    if connection is None:
        raise SdpError("audio stream has no c= line at media or session level")
    codecs = media.codecs
    audio = [c for c in codecs if c.key != "telephone-event"]
    if not audio:
        raise SdpError(f"audio stream lists no known codec (formats {' '.join(media.formats)})")
    events = [c.payload_type for c in codecs if c.key == "telephone-event"]
    return AudioStream(
        connection.address, media.port, _rtcp_port(media), audio[0],
        events[0] if events else None, sdp.direction_of(media),
    )  # fmt: skip


def answer(
    offer: SessionDescription,
    host: str,
    port: int,
    *,
    preferences: Sequence[str] = DEFAULT_CODECS,
    origin: str = "aiopbx 0 0 IN IP4 0.0.0.0",
    direction: str | None = None,
) -> SessionDescription:
    """RFC 3264 §6 answer to `offer`, with media at `host`:`port` (the relay's leg).

    One m= line per offered one, same order (RFC 3264 §6: "The answer MUST contain exactly
    the same number of "m=" lines as the offer"). The first audio section gets the best
    codec of `preferences` the offer has — one audio codec, so the relay knows what each
    side sends — plus telephone-event at the same clock rate when both have it, with the
    offerer's payload type numbers, rtpmap and fmtp. Every other section is refused with
    port 0 (§6: "the stream is rejected"). The direction answers the offer's (§6.1:
    sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive) unless `direction`
    overrides it.

    Raises:
        SdpError: no active audio section, or no codec in common (a 488 for the B2BUA).
    """
    wanted = [p.lower() for p in preferences]
    audio = offer.audio()
    offered = audio.codecs
    chosen = next(
        (c for name in wanted if name != "telephone-event" for c in offered if c.key == name),
        None,
    )
    if chosen is None:
        names = " ".join(c.name for c in offered) or " ".join(audio.formats)
        raise SdpError(f"no codec in common: offer has {names}, we accept {' '.join(preferences)}")
    kept = [chosen]
    if "telephone-event" in wanted:
        kept += [
            c for c in offered if c.key == "telephone-event" and c.clock_rate == chosen.clock_rate
        ][:1]
    sections = []
    for media in offer.media:
        if media is not audio:
            sections.append(MediaDescription(media.media, 0, media.proto, media.formats))
            continue
        lines: list[Line] = []
        for codec in kept:
            pt = str(codec.payload_type)
            for name, value in media.attributes:
                if name in ("rtpmap", "fmtp") and value and value.split(" ", 1)[0] == pt:
                    lines.append(("a", f"{name}:{value}"))
        if media.ptime is not None:
            lines.append(("a", f"ptime:{media.ptime}"))
        lines.append(("a", direction or _ANSWER_DIRECTION[offer.direction_of(media)]))
        formats = tuple(str(c.payload_type) for c in kept)
        sections.append(MediaDescription("audio", port, media.proto, formats, None, tuple(lines)))
    return SessionDescription(
        origin, "-", Connection.of_host(host), (("t", "0 0"),), tuple(sections)
    )


def rewrite(
    sdp: SessionDescription, host: str, port: int, *, origin: str | None = None
) -> SessionDescription:
    """The same description with media anchored at the relay: `host`:`port` for the first
    audio stream, RTCP on `port + 1`; with `origin`, our own o= line (a B2BUA's leg keeps
    one o= and raises its version at each change, RFC 3264 §8).

    c= is replaced where it is (session level, or media level, or added at session level);
    an a=rtcp line is fixed to the new port and address; ICE candidates and rtcp-mux are
    dropped, since they describe the phone's transport, which the relay hides. Other active
    streams (video) are disabled with port 0: the relay carries audio only. Everything
    else is kept.

    Raises:
        SdpError: no active audio stream.
    """
    audio = sdp.audio()
    connection = Connection.of_host(host)
    rtcp = f"rtcp:{port + 1} {connection}"
    sections = []
    for media in sdp.media:
        if media is not audio:
            sections.append(dataclasses.replace(media, port=0) if media.port else media)
            continue
        lines = [
            ("a", rtcp) if _is_attribute(line, "rtcp") else line
            for line in media.lines
            if not any(_is_attribute(line, name) for name in _TRANSPORT_ATTRIBUTES)
        ]
        media_connection = connection if media.connection or sdp.connection is None else None
        sections.append(
            dataclasses.replace(media, port=port, connection=media_connection, lines=tuple(lines))
        )
    session_lines = tuple(
        line for line in sdp.lines if not any(_is_attribute(line, n) for n in _TRANSPORT_ATTRIBUTES)
    )
    session_connection = connection if sdp.connection is not None else None
    return dataclasses.replace(
        sdp, origin=origin or sdp.origin, connection=session_connection, lines=session_lines,
        media=tuple(sections),
    )  # fmt: skip


def with_direction(sdp: SessionDescription, direction: str) -> SessionDescription:
    """The description with the first audio stream's direction attribute set (for hold)."""
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    audio = sdp.audio()
    sections = []
    for media in sdp.media:
        if media is audio:
            lines = [line for line in media.lines if not _direction((line,))]
            media = media.with_lines([*lines, ("a", direction)])
        sections.append(media)
    return dataclasses.replace(sdp, media=tuple(sections))


class SdpOrigin:
    """The o= line of every SDP the switch sends on one dialog leg (RFC 3264 §8).

    One session id and one address for the leg's life; the version goes up by one
    each time the description changes ("the version in the origin field MUST
    increment by one from the previous SDP"), and stays when the same one is sent
    again (a retransmission, or an offer repeated unchanged: §8 "MUST be identical").
    """

    def __init__(self, host: str) -> None:
        self.session_id = secrets.randbelow(2**31) + 1
        self.version = self.session_id
        family = "IP6" if ":" in host else "IP4"
        self.address = f"IN {family} {host}"
        self._last: bytes | None = None

    @property
    def line(self) -> bytes:
        return f"o=aiopbx {self.session_id} {self.version} {self.address}".encode()

    def stamp(self, sdp: bytes) -> bytes:
        """`sdp` with this leg's o= line (version raised when the rest changed)."""
        lines = sdp.split(b"\n")
        at = next((i for i, line in enumerate(lines) if line.startswith(b"o=")), None)
        if at is None:
            return sdp
        rest = b"\n".join(lines[:at] + lines[at + 1 :])
        if self._last is not None and rest != self._last:
            self.version += 1
        self._last = rest
        ending = b"\r" if lines[at].endswith(b"\r") else b""
        lines[at] = self.line + ending
        return b"\n".join(lines)


def answer_direction(offered: str, holding: bool = False) -> str:
    """The direction answering an offered one (RFC 3264 §6.1), for a side that itself
    holds the call (`holding`: it will not receive) or not."""
    mine = _ANSWER_DIRECTION[offered]
    if not holding:
        return mine
    return {"sendrecv": "sendonly", "recvonly": "inactive"}.get(mine, mine)


def g711_offer(host: str, port: int, *, event_payload: int = 101) -> bytes:
    """An offer of our own at `host`:`port`: PCMU, PCMA and telephone-event (what the
    switch offers a phone that sent a late-offer INVITE, or a callee of such a call)."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=aiopbx 0 0 IN {family} {host}",
        "s=-",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8 {event_payload}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        f"a=rtpmap:{event_payload} telephone-event/8000",
        f"a=fmtp:{event_payload} 0-16",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def with_g711_fallback(sdp: SessionDescription) -> SessionDescription:
    """The description with PCMA added after PCMU (or PCMU after PCMA) when it has only one.

    What the B2BUA offers the callee so that a PCMU-only caller can still reach a PCMA-only
    phone: the relay transcodes between the two laws (`media.relay`).

    Raises:
        SdpError: no active audio stream.
    """
    audio = sdp.audio()
    keys = {c.key for c in audio.codecs}
    if ("pcmu" in keys) == ("pcma" in keys):
        return sdp
    pt, name = ("8", "PCMA") if "pcmu" in keys else ("0", "PCMU")
    if pt in audio.formats:  # listed under another name: leave it alone
        return sdp
    events = [i for i, fmt in enumerate(audio.formats) if _is_event(audio, fmt)]
    at = events[0] if events else len(audio.formats)
    formats = (*audio.formats[:at], pt, *audio.formats[at:])
    lines = list(audio.lines)
    maps = [i for i, line in enumerate(lines) if _is_attribute(line, "rtpmap")]
    lines.insert(maps[-1] + 1 if maps else 0, ("a", f"rtpmap:{pt} {name}/8000"))
    media = dataclasses.replace(audio, formats=formats, lines=tuple(lines))
    return dataclasses.replace(sdp, media=tuple(media if m is audio else m for m in sdp.media))


def _is_event(media: MediaDescription, fmt: str) -> bool:
    return any(c.key == "telephone-event" and str(c.payload_type) == fmt for c in media.codecs)


def _rtcp_port(media: MediaDescription) -> int:
    """RFC 3605 a=rtcp:port [IN IP4 addr], else the RTP port + 1 (RFC 3550 §11).

    Raises:
        SdpError: the port is not a number in 1..65535.
    """
    value = media.attribute("rtcp")
    if value and value.split():
        return parse_number(value.split()[0], 1, 65535, "a=rtcp port")
    if media.port >= 65535:
        raise SdpError(f"m= port {media.port} leaves no RTCP port (port + 1 > 65535)")
    return media.port + 1


def _attributes(lines: Iterable[Line]) -> tuple[tuple[str, str | None], ...]:
    out = []
    for kind, value in lines:
        if kind == "a":
            name, colon, rest = value.partition(":")
            out.append((name, rest if colon else None))
    return tuple(out)


def _attribute(lines: Iterable[Line], name: str) -> str | None:
    for attr, value in _attributes(lines):
        if attr == name:
            return "" if value is None else value
    return None


def _is_attribute(line: Line, name: str) -> bool:
    kind, value = line
    return kind == "a" and (value == name or value.startswith(name + ":"))


def _direction(lines: Iterable[Line]) -> str | None:
    for attr, value in _attributes(lines):
        if value is None and attr in DIRECTIONS:
            return attr
    return None
