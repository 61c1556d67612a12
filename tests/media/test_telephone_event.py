"""RFC 4733 telephone-events and SIP INFO DTMF bodies: payload bytes, receiver, sender."""

from __future__ import annotations

import pytest

from media.errors import MediaError
from media.telephone_event import (
    DigitSender,
    DtmfRelayError,
    EventSlot,
    ReceivedDigit,
    SentPacket,
    TelephoneEvent,
    TelephoneEventError,
    TelephoneEventReceiver,
    event_packets,
    parse_dtmf_relay,
)


@pytest.mark.parametrize(
    ("data", "event"),
    [
        (bytes.fromhex("050a0000"), TelephoneEvent(5, False, 10, 0)),
        (bytes.fromhex("0b8a0320"), TelephoneEvent(11, True, 10, 800)),
        (bytes.fromhex("0f3fffff"), TelephoneEvent(15, False, 63, 65535)),
        (bytes.fromhex("10800190"), TelephoneEvent(16, True, 0, 400)),
    ],
)
def test_payload_round_trip(data: bytes, event: TelephoneEvent) -> None:
    assert TelephoneEvent.parse(data) == event
    assert bytes(event) == data


def test_reserved_bit_ignored_extra_blocks_and_digits() -> None:
    two_blocks = bytes.fromhex("0a4a00a00b8a0320")
    assert TelephoneEvent.parse(two_blocks) == TelephoneEvent(10, False, 10, 160)
    assert [TelephoneEvent(i).digit for i in (0, 9, 10, 11, 12, 15, 16)] == [
        "0", "9", "*", "#", "A", "D", None,
    ]  # fmt: skip


def test_payload_errors() -> None:
    with pytest.raises(TelephoneEventError, match="payload of 3 octets, need 4"):
        TelephoneEvent.parse(b"\x05\x0a\x00")
    with pytest.raises(TelephoneEventError, match="volume 64 out of range"):
        TelephoneEvent(5, volume=64)
    with pytest.raises(MediaError, match="duration 65536"):
        TelephoneEvent(5, duration=65536)


def stream(digit: str, ms: float) -> list[tuple[bytes, bool]]:
    return [(p.payload, p.marker) for p in event_packets(digit, ms)]


def test_receiver_reports_once_despite_three_end_packets_and_duplicates() -> None:
    receiver = TelephoneEventReceiver()
    out: list[ReceivedDigit] = []
    packets = stream("5", 160)
    for payload, marker in packets[:2] + packets[1:2] + packets[2:]:  # one duplicate update
        out += receiver.feed(payload, 1000, marker)
        if not out:
            assert receiver.active == "5"
    out += receiver.feed(packets[-1][0], 1000)  # a fourth, late copy
    assert out == [ReceivedDigit("5", 1000, 160.0, 10)]
    assert receiver.active is None


def test_lost_start_packet_and_two_same_digits_in_a_row() -> None:
    receiver = TelephoneEventReceiver()
    out: list[ReceivedDigit] = []
    for payload, _ in stream("1", 120)[1:]:  # the marked first packet is lost
        out += receiver.feed(payload, 8000)
    for payload, marker in stream("1", 100):  # same digit again: a new timestamp
        out += receiver.feed(payload, 9600, marker)
    assert out == [ReceivedDigit("1", 8000, 120.0, 10), ReceivedDigit("1", 9600, 100.0, 10)]


def test_lost_end_packets_reported_at_next_event_or_flush() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.feed(bytes(TelephoneEvent(9, duration=0)), 100, True) == []
    assert receiver.feed(bytes(TelephoneEvent(9, duration=400)), 100) == []
    # every end packet of 9 lost; # starts
    assert receiver.feed(bytes(TelephoneEvent(11, duration=0)), 2100, True) == [
        ReceivedDigit("9", 100, 50.0, 10)
    ]
    assert receiver.feed(bytes(TelephoneEvent(9, True, 10, 800)), 100) == []  # too late
    assert receiver.feed(bytes(TelephoneEvent(11, duration=320)), 2100) == []
    assert receiver.flush() == [ReceivedDigit("#", 2100, 40.0, 10)]
    assert receiver.flush() == []


def test_long_event_in_segments_is_one_digit() -> None:
    receiver = TelephoneEventReceiver()
    out = receiver.feed(bytes(TelephoneEvent(0, duration=0)), 0xFFFF0000, True)
    out += receiver.feed(bytes(TelephoneEvent(0, duration=0xFFFF)), 0xFFFF0000)
    start = (0xFFFF0000 + 0xFFFF) & 0xFFFFFFFF  # the next segment: no marker
    out += receiver.feed(bytes(TelephoneEvent(0, duration=800)), start)
    out += receiver.feed(bytes(TelephoneEvent(0, True, 10, 1600)), start)
    out += receiver.feed(bytes(TelephoneEvent(0, True, 10, 1600)), start)
    assert out == [ReceivedDigit("0", start, 1000 * (0xFFFF + 1600) / 8000, 10)]


def test_flash_is_not_a_digit() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.feed(bytes(TelephoneEvent(16, True, 10, 800)), 5, True) == []


def test_sender_packet_sequence() -> None:
    assert event_packets("#", 160, volume=7) == [
        SentPacket(bytes.fromhex("0b070000"), True, 0.0),
        SentPacket(bytes.fromhex("0b070190"), False, 50.0),
        SentPacket(bytes.fromhex("0b070320"), False, 100.0),
        SentPacket(bytes.fromhex("0b0704b0"), False, 150.0),
        *[SentPacket(bytes.fromhex("0b870500"), False, 160.0)] * 3,
    ]
    assert len(event_packets("1", 50)) == 4  # start, no update, three ends
    for bad, match in (("x", "not a DTMF digit"), ("12", "not a DTMF digit")):
        with pytest.raises(TelephoneEventError, match=match):
            event_packets(bad, 100)
    with pytest.raises(TelephoneEventError, match="out of range"):
        event_packets("1", 0)
    with pytest.raises(TelephoneEventError, match="out of range"):
        event_packets("1", 9000)


def _slots(sender: DigitSender, count: int, ts: int = 1000) -> list[EventSlot | None]:
    """`count` 20 ms slots whose audio timestamps start at `ts`."""
    return [sender.slot((ts + 160 * i) & 0xFFFFFFFF) for i in range(count)]


def test_digit_sender_slots_of_one_digit() -> None:
    """One 160 ms digit on 20 ms slots: marker first, updates each 50 ms in the first
    slot that reaches them (60, 100, 160 ms: 150's is skipped for the end), nothing
    between them, three end packets in a row, all with the first slot's timestamp, then
    audio for the 100 ms gap."""
    sender = DigitSender()
    sender.push("5")
    assert sender.busy
    got = _slots(sender, 15)
    quiet = EventSlot(None)
    start = EventSlot(bytes.fromhex("050a0000"), True, 1000)
    end = EventSlot(bytes.fromhex("058a0500"), False, 1000)
    assert got == [
        start,  # 0 ms
        quiet,  # 20
        quiet,  # 40
        EventSlot(bytes.fromhex("050a0190"), False, 1000),  # 60: the 50 ms update
        quiet,  # 80
        EventSlot(bytes.fromhex("050a0320"), False, 1000),  # 100
        quiet,  # 120
        quiet,  # 140
        end,  # 160: the end is due, the 150 ms update is skipped
        end,
        end,
        None, None, None, None,  # audio again
    ]  # fmt: skip
    assert sender.sent == ["5"] and not sender.busy


def test_digit_sender_two_digits_gap_and_the_receiver_gets_both() -> None:
    """What the sender lays on the slots is what `TelephoneEventReceiver` (the switch's
    receiving side) turns back into digits: each once, with its duration; the second
    digit starts after the gap (5 slots of audio), at its own timestamp."""
    sender = DigitSender(volume=7)
    sender.push("1#")
    receiver = TelephoneEventReceiver()
    heard: list[ReceivedDigit] = []
    audio_slots = 0
    ts0 = 0xFFFFFF00  # the timestamps wrap on the way
    for i, slot in enumerate(_slots(sender, 40, ts0)):
        if slot is None:
            audio_slots += 1
        elif slot.payload is not None:
            heard += receiver.feed(slot.payload, slot.timestamp, slot.marker)
        if i == 10:
            assert audio_slots == 0
    second_ts = (ts0 + 160 * 16) & 0xFFFFFFFF  # 11 slots of "1", 5 of gap
    assert heard == [ReceivedDigit("1", ts0, 160.0, 7), ReceivedDigit("#", second_ts, 160.0, 7)]
    assert sender.sent == ["1", "#"]
    assert audio_slots == 40 - 22


def test_digit_sender_refuses_bad_digits_and_floods() -> None:
    sender = DigitSender(max_queued=4)
    with pytest.raises(TelephoneEventError, match="not a DTMF digit: 'x'"):
        sender.push("1x")
    assert not sender.busy  # nothing of a refused string is queued
    sender.push("1234")
    with pytest.raises(TelephoneEventError, match="more than 4 digits queued"):
        sender.push("5")
    sender.push("")
    assert sender.slot(0) == EventSlot(bytes.fromhex("010a0000"), True, 0)


@pytest.mark.parametrize(
    ("body", "result"),
    [
        (b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        (b"signal = #\nduration= 250", ("#", 250)),
        (b"Signal=*\r\n", ("*", None)),
        (b"Signal=a\r\nDuration=100\r\nX-Other=1\r\n", ("A", 100)),
        (b"Signal=11\r\nDuration=100\r\n", ("#", 100)),
        (b"7", ("7", None)),
        (b"10\r\n", ("*", None)),
        (b"d", ("D", None)),
    ],
)
def test_dtmf_relay_bodies(body: bytes, result: tuple[str, int | None]) -> None:
    assert parse_dtmf_relay(body) == result


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"Duration=160\r\n", "dtmf-relay body has no Signal line"),
        (b"Signal=x\r\n", "not a DTMF signal: 'x'"),
        (b"Signal=16\r\n", "not a DTMF signal: '16'"),
        (b"Signal=5\r\nDuration=-3\r\n", "bad dtmf-relay Duration '-3'"),
        (b"", "not a DTMF signal: ''"),
        (b"\xff\xfe", "dtmf body is not UTF-8 text"),
    ],
)
def test_dtmf_relay_errors(body: bytes, reason: str) -> None:
    with pytest.raises(DtmfRelayError) as info:
        parse_dtmf_relay(body)
    assert info.value.reason == reason
    assert isinstance(info.value, MediaError)
