"""DTMF out of band: RFC 4733 telephone-event payloads and SIP INFO dtmf-relay bodies.

An RFC 4733 event payload (§2.3) is four octets::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

event 0-9 are the digits, 10 is *, 11 is #, 12-15 are A-D, 16 is flash; volume is
the power level in -dBm0 (0..63); duration counts RTP timestamp units from the
event's start, which is the packet's RTP timestamp: every packet of one event
carries the same timestamp (§2.5.1.2), so a new timestamp means a new event.
The sender marks the first packet of an event with the RTP marker bit, repeats
the packet with a growing duration while the key is held, and ends with the E
bit set, sent three times (§2.5.1.4: "the final packet for each event and for
each segment SHOULD be sent a total of three times").

`TelephoneEventReceiver` turns such a stream back into digits, each reported
once, with its duration; `event_packets` makes the stream for one digit, and
`DigitSender` lays queued digits onto a stream's 20 ms send slots (its exact
counterpart: one timestamp per digit, marker first, updates every 50 ms, three
end packets).
`parse_dtmf_relay` reads the bodies of SIP INFO (application/dtmf-relay and
application/dtmf), which other user agents send instead.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from media.errors import MediaError

__all__ = [
    "EVENT_DIGITS",
    "DigitSender",
    "DtmfRelayError",
    "EventSlot",
    "ReceivedDigit",
    "SentPacket",
    "TelephoneEvent",
    "TelephoneEventError",
    "TelephoneEventReceiver",
    "event_packets",
    "parse_dtmf_relay",
]

logger = logging.getLogger(__name__)

EVENT_DIGITS = "0123456789*#ABCD"  # event codes 0..15 (RFC 4733 §3.2)
FLASH = 16
_MAX_DURATION = 0xFFFF


class TelephoneEventError(MediaError):
    """A telephone-event payload that cannot be parsed or built; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DtmfRelayError(MediaError):
    """A SIP INFO DTMF body that names no valid digit; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a digit. Raises: TelephoneEventError for a non-digit."""
    index = EVENT_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise TelephoneEventError(f"not a DTMF digit: {digit!r}")
    return index


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event block: event code, end bit, volume (-dBm0), duration (timestamp units)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise TelephoneEventError(f"event code {self.event} out of range 0..255")
        if not 0 <= self.volume <= 63:
            raise TelephoneEventError(f"volume {self.volume} out of range 0..63")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise TelephoneEventError(f"duration {self.duration} out of range 0..65535")

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """The first event block of a payload (RFC 4733 §2.3; the R bit is ignored).

        Raises:
            TelephoneEventError: fewer than four octets.
        """
        if len(data) < 4:
            raise TelephoneEventError(f"telephone-event payload of {len(data)} octets, need 4")
        event, flags, duration = struct.unpack_from("!BBH", data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit of this event, or None for flash and other events."""
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None

    def __bytes__(self) -> bytes:
        # RFC 4733 §2.3.2: the R bit "MUST be set to zero by the sender".
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )


@dataclass(frozen=True, slots=True)
class ReceivedDigit:
    """A digit received as telephone-events: its RTP timestamp and duration in milliseconds."""

    digit: str
    timestamp: int
    duration_ms: float
    volume: int


@dataclass(slots=True)
class _Current:
    event: TelephoneEvent
    timestamp: int
    duration: int  # total over segments, timestamp units
    ended: bool


class TelephoneEventReceiver:
    """Turns received telephone-event packets into digits, each reported exactly once.

    Rules (RFC 4733 §2.5.2): packets with the timestamp of the current event update
    its duration; the first with the E bit ends it and reports the digit; later
    copies (the end is sent three times) and duplicates are dropped. A new
    timestamp starts a new event — even without a marker bit, since the first
    packet may be lost — and reports a previous event whose end packets were all
    lost with the duration last seen. A long event continues in a new segment
    (new timestamp, same event, no marker: §2.5.1.3) without being reported twice.
    Packets of events already finished are recognised by timestamp and dropped.
    """

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._current: _Current | None = None
        self._finished: list[int] = []  # timestamps of recently finished events

    @property
    def active(self) -> str | None:
        """The digit currently held down (started, not ended), for barge-in; else None."""
        current = self._current
        if current is None or current.ended:
            return None
        return current.event.digit

    def feed(self, payload: bytes, timestamp: int, marker: bool = False) -> list[ReceivedDigit]:
        """One RTP packet's payload with its timestamp and marker bit; digits that ended.

        Raises:
            TelephoneEventError: a payload shorter than four octets.
        """
        event = TelephoneEvent.parse(payload)
        timestamp &= 0xFFFFFFFF
        out: list[ReceivedDigit] = []
        current = self._current
        if current is not None and timestamp == current.timestamp:
            if current.ended or event.event != current.event.event:
                return out  # a retransmitted end packet or a duplicate
            self._update(current, event, out)
            return out
        if timestamp in self._finished:
            return out  # a late copy of an event already reported
        if current is not None and not current.ended:
            continues = (
                not marker
                and event.event == current.event.event
                and timestamp == (current.timestamp + current.event.duration) & 0xFFFFFFFF
            )
            if continues:  # §2.5.1.3: the next segment of a long event
                self._finished.append(current.timestamp)
                current.timestamp = timestamp
                current.event = TelephoneEvent(event.event, False, event.volume, 0)
                self._update(current, event, out)
                return out
            logger.debug("telephone-event at %d ended without an end packet", current.timestamp)
            self._report(current, out)
        self._current = _Current(
            TelephoneEvent(event.event, False, event.volume, 0), timestamp, 0, False
        )
        self._update(self._current, event, out)
        return out

    def flush(self) -> list[ReceivedDigit]:
        """The stream stopped (call ended, media timeout): report an event never ended."""
        out: list[ReceivedDigit] = []
        if self._current is not None and not self._current.ended:
            self._report(self._current, out)
        return out

    def _update(self, current: _Current, event: TelephoneEvent, out: list[ReceivedDigit]) -> None:
        grown = max(0, event.duration - current.event.duration)
        current.duration += grown
        current.event = TelephoneEvent(
            current.event.event, False, event.volume, max(event.duration, current.event.duration)
        )
        if event.end:
            self._report(current, out)

    def _report(self, current: _Current, out: list[ReceivedDigit]) -> None:
        current.ended = True
        self._finished = [*self._finished[-7:], current.timestamp]
        digit = current.event.digit
        if digit is None:
            return  # flash and other events are not digits
        ms = 1000 * current.duration / self.clock_rate
        out.append(ReceivedDigit(digit, current.timestamp, ms, current.event.volume))


@dataclass(frozen=True, slots=True)
class SentPacket:
    """One telephone-event packet to send `offset_ms` after the digit starts."""

    payload: bytes
    marker: bool
    offset_ms: float


def event_packets(
    digit: str,
    duration_ms: float,
    *,
    volume: int = 10,
    clock_rate: int = 8000,
    interval_ms: float = 50.0,
) -> list[SentPacket]:
    """The packets of one digit, all with the RTP timestamp of its start.

    A first packet with the marker bit (duration 0), an update every `interval_ms`
    with the duration so far, and three packets with the E bit and the final
    duration at the end (RFC 4733 §2.5.1.4 leaves their spacing to the sender; the
    receiver drops the copies).

    Raises:
        TelephoneEventError: not a digit, a duration not above zero or over 8 s
            (segments of longer events are not made here), a volume outside 0..63.
    """
    code = event_code(digit)
    total = round(duration_ms * clock_rate / 1000)
    if not 0 < total <= _MAX_DURATION:
        raise TelephoneEventError(f"duration {duration_ms} ms out of range for one segment")
    step = interval_ms * clock_rate / 1000
    packets = [SentPacket(bytes(TelephoneEvent(code, False, volume, 0)), True, 0.0)]
    k = 1
    while k * step < total:
        units = round(k * step)
        packets.append(
            SentPacket(bytes(TelephoneEvent(code, False, volume, units)), False, k * interval_ms)
        )
        k += 1
    end = bytes(TelephoneEvent(code, True, volume, total))
    packets += [SentPacket(end, False, float(duration_ms))] * 3
    return packets


@dataclass(frozen=True, slots=True)
class EventSlot:
    """What a send slot carries while a digit is sent: a telephone-event packet
    (`payload`, `marker`, and the event's RTP `timestamp`), or nothing (`payload` None:
    the digit goes on, its audio is suppressed, no update is due in this slot)."""

    payload: bytes | None
    marker: bool = False
    timestamp: int = 0


class DigitSender:
    """Queued digits as RFC 4733 events on a stream that sends one packet per slot.

    Pure: the owner calls `slot(ts)` once per send slot with the RTP timestamp that
    slot's audio would carry, and sends what it returns instead of the audio (None:
    no digit, send audio). Rules:

    - a digit starts at a slot: its packets all carry that slot's timestamp
      (§2.5.1.2), the first with the marker bit and duration 0;
    - updates go every `interval_ms` (50 ms, RFC 4733's usual rate; the slot that
      first reaches an update's time carries it); slots in between send nothing, so
      no audio travels beside the event;
    - at the digit's end the E bit packet goes three times, one per slot (§2.5.1.4);
      updates not yet sent by then are skipped (each packet holds the whole duration);
    - then `gap_ms` of audio before the next digit (a receiver that also listens in
      band needs the pause; a new timestamp alone separates events for RFC 4733).
    """

    def __init__(
        self,
        *,
        duration_ms: float = 160.0,
        gap_ms: float = 100.0,
        interval_ms: float = 50.0,
        slot_ms: float = 20.0,
        volume: int = 10,
        clock_rate: int = 8000,
        max_queued: int = 32,
    ) -> None:
        self.duration_ms = duration_ms
        self.gap_ms = gap_ms
        self.interval_ms = interval_ms
        self.slot_ms = slot_ms
        self.volume = volume
        self.clock_rate = clock_rate
        self.max_queued = max_queued
        self._queued: list[str] = []
        self._packets: list[SentPacket] = []
        self._timestamp = 0
        self._elapsed = 0.0  # ms since the current digit (or gap) started
        self._gap_left = 0.0
        #: Digits whose end packets have all gone, in order.
        self.sent: list[str] = []

    @property
    def busy(self) -> bool:
        """Whether digits are queued or one is being sent."""
        return bool(self._queued or self._packets)

    def push(self, digits: str) -> None:
        """Queue `digits`.

        Raises:
            TelephoneEventError: a character that is no DTMF digit, or more than
                `max_queued` digits waiting.
        """
        for digit in digits:
            event_code(digit)
        if len(self._queued) + len(digits) > self.max_queued:
            raise TelephoneEventError(f"more than {self.max_queued} digits queued")
        self._queued.extend(d.upper() for d in digits)

    def slot(self, timestamp: int) -> EventSlot | None:
        """This slot's event packet, an empty slot inside a digit, or None (send audio)."""
        if not self._packets:
            if self._gap_left > 0:
                self._gap_left -= self.slot_ms
                return None
            if not self._queued:
                return None
            digit = self._queued.pop(0)
            self._packets = event_packets(
                digit,
                self.duration_ms,
                volume=self.volume,
                clock_rate=self.clock_rate,
                interval_ms=self.interval_ms,
            )
            self._timestamp = timestamp & 0xFFFFFFFF
            self._elapsed = 0.0
        else:
            self._elapsed += self.slot_ms
        due = [i for i, p in enumerate(self._packets) if p.offset_ms <= self._elapsed + 1e-6]
        if not due:
            return EventSlot(None)
        ends = [i for i in due if TelephoneEvent.parse(self._packets[i].payload).end]
        index = ends[0] if ends else due[-1]
        packet = self._packets[index]
        del self._packets[: index + 1]
        if not self._packets:
            self.sent.append(EVENT_DIGITS[TelephoneEvent.parse(packet.payload).event])
            self._gap_left = self.gap_ms
        return EventSlot(packet.payload, packet.marker, self._timestamp)


def parse_dtmf_relay(body: bytes) -> tuple[str, int | None]:
    """(digit, duration in ms or None) from a SIP INFO body.

    application/dtmf-relay is lines of `Signal=5` and `Duration=160` (names
    case-insensitive, blanks allowed around `=`, other lines ignored);
    application/dtmf is the digit alone, or its event code (`11` for #).

    Raises:
        DtmfRelayError: no Signal line, a signal that is not a digit, a bad duration,
            or a body that is not text.
    """
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DtmfRelayError("dtmf body is not UTF-8 text") from None
    if "=" not in text:  # application/dtmf
        return _signal(text), None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    if "signal" not in fields:
        raise DtmfRelayError("dtmf-relay body has no Signal line")
    digit = _signal(fields["signal"])
    duration = fields.get("duration")
    if duration is None:
        return digit, None
    if not duration.isdigit() or len(duration) > 6:
        raise DtmfRelayError(f"bad dtmf-relay Duration {duration!r}")
    return digit, int(duration)


def _signal(text: str) -> str:
    if len(text) == 1 and text.upper() in EVENT_DIGITS:
        return text.upper()
    if text.isdigit() and len(text) <= 2 and int(text) < len(EVENT_DIGITS):
        return EVENT_DIGITS[int(text)]
    raise DtmfRelayError(f"not a DTMF signal: {text[:20]!r}")
