"""MediaEndpoint.record: what a phone sends, until a key, silence, the limit or hangup.

Real UDP on 127.0.0.1: a test socket plays the phone, sending PCMU packets (and
RFC 4733 events) to the endpoint's port.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest

from media.endpoint import FRAME, MediaEndpoint, Recording, tone
from media.g711 import ulaw_encode
from media.ports import PortAllocator
from media.rtp import RtpHeader
from media.sdp import AudioStream, Codec
from media.telephone_event import TelephoneEvent, event_code

PCMU = Codec(0, "PCMU", 8000)


class Phone:
    """A socket sending 20 ms PCMU frames (no pacing needed: the endpoint keeps arrival
    order), from the address its SDP named (`PHONES`)."""

    def __init__(self, endpoint: MediaEndpoint) -> None:
        self.sock = PHONES[endpoint]
        self.target = (endpoint.host, endpoint.port)
        self.seq = 0
        self.ts = 0

    def send_audio(self, samples: npt.NDArray[np.int16]) -> None:
        for start in range(0, len(samples) - FRAME + 1, FRAME):
            frame = ulaw_encode(samples[start : start + FRAME]).tobytes()
            self.sock.sendto(bytes(RtpHeader(0, self.seq, self.ts, 1234)) + frame, self.target)
            self.seq += 1
            self.ts += FRAME

    def send_key(self, digit: str) -> None:
        for end in (False, True, True, True):
            event = TelephoneEvent(event_code(digit), end=end, volume=10, duration=800)
            header = RtpHeader(101, self.seq, self.ts, 1234, marker=not end and self.seq == 0)
            self.sock.sendto(bytes(header) + bytes(event), self.target)
            self.seq += 1
        self.ts += 800


#: The phone socket of each endpoint under test: the address its SDP names.
PHONES: dict[MediaEndpoint, socket.socket] = {}


@pytest.fixture
async def endpoint() -> AsyncIterator[MediaEndpoint]:
    ep = MediaEndpoint(PortAllocator("127.0.0.1", 31000, 31100))
    phone_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone_sock.bind(("127.0.0.1", 0))
    ep.set_remote(AudioStream("127.0.0.1", phone_sock.getsockname()[1], 0, PCMU, 101, "sendrecv"))
    PHONES[ep] = phone_sock
    yield ep
    ep.close()
    del PHONES[ep]
    phone_sock.close()


def _peak_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(np.argmax(spectrum))])


async def _recorded(
    endpoint: MediaEndpoint, max_seconds: float, silence_seconds: float | None = None
) -> asyncio.Task[Recording]:
    task = asyncio.ensure_future(endpoint.record(max_seconds, silence_seconds=silence_seconds))
    await asyncio.sleep(0)  # let it start listening
    return task


async def test_ends_on_pound_and_keeps_the_audio(endpoint: MediaEndpoint) -> None:
    phone = Phone(endpoint)
    task = await _recorded(endpoint, max_seconds=10.0, silence_seconds=5.0)
    phone.send_audio(tone(700, 1.0))
    phone.send_key("5")  # not a stop key: ignored
    phone.send_audio(tone(700, 0.5))
    phone.send_key("#")
    got = await asyncio.wait_for(task, 5)
    assert got.reason == "digit" and got.digit == "#"
    assert got.seconds == pytest.approx(1.5, abs=0.03)
    assert got.sound_seconds == pytest.approx(1.5, abs=0.03)
    assert abs(_peak_hz(got.samples) - 700) < 5


async def test_ends_on_silence_and_cuts_it(endpoint: MediaEndpoint) -> None:
    phone = Phone(endpoint)
    task = await _recorded(endpoint, max_seconds=10.0, silence_seconds=1.0)
    phone.send_audio(tone(500, 0.8))
    phone.send_audio(np.zeros(8000 * 2, np.int16))  # 2 s of silence: 1 s ends it
    got = await asyncio.wait_for(task, 5)
    assert got.reason == "silence"
    assert got.seconds == pytest.approx(0.8, abs=0.03)


async def test_ends_at_the_limit(endpoint: MediaEndpoint) -> None:
    task = await _recorded(endpoint, max_seconds=0.3)
    got = await asyncio.wait_for(task, 5)
    assert got.reason == "max" and got.sound_seconds == 0.0


async def test_ends_when_the_call_goes(endpoint: MediaEndpoint) -> None:
    phone = Phone(endpoint)
    task = await _recorded(endpoint, max_seconds=10.0)
    phone.send_audio(tone(900, 0.4))
    for _ in range(200):  # bounded: until the packets are in
        if endpoint.received_packets >= 20:
            break
        await asyncio.sleep(0.01)
    endpoint.close()
    got = await asyncio.wait_for(task, 5)
    assert got.reason == "hangup"
    assert got.seconds == pytest.approx(0.4, abs=0.03)


async def test_keys_pressed_before_are_dropped(endpoint: MediaEndpoint) -> None:
    endpoint.push_digit("#")
    task = await _recorded(endpoint, max_seconds=0.5)
    got = await asyncio.wait_for(task, 5)
    assert got.reason == "max"
