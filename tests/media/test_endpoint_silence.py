"""MediaEndpoint.watch_silence over real UDP on 127.0.0.1: a phone that sends nothing is
reported once after the timeout; RTP or RTCP keeps it alive; a held call waits for the
hold timeout (or for ever without one); closing the endpoint ends the watch."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from media.endpoint import MediaEndpoint
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec

PCMU = Codec(0, "PCMU", 8000)
TIMEOUT = 0.4


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MediaEndpoint, socket.socket]]:
    endpoint = MediaEndpoint(PortAllocator("127.0.0.1", 31400, 31500))
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    host, port = phone.getsockname()
    endpoint.set_remote(AudioStream(host, port, 0, PCMU, None, "sendrecv"), signalling_host=host)
    yield endpoint, phone
    endpoint.close()
    phone.close()


def _rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0x1234) + b"\xff" * 160


async def _keep_sending(
    endpoint: MediaEndpoint, phone: socket.socket, seconds: float, rtcp: bool = False
) -> None:
    """Send a packet every 50 ms for `seconds` (RTCP to port + 1 when `rtcp`)."""
    target = (endpoint.host, endpoint.port + (1 if rtcp else 0))
    for seq in range(int(seconds / 0.05)):
        phone.sendto(_rtp(seq) if not rtcp else b"\x81\xc9\x00\x01" + b"\x00" * 4, target)
        await asyncio.sleep(0.05)


async def test_a_silent_phone_is_reported_once(pair: tuple[MediaEndpoint, socket.socket]) -> None:
    endpoint, _ = pair
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    gone = asyncio.Event()
    start = loop.time()
    endpoint.watch_silence(TIMEOUT, None, lambda: (fired.append(loop.time()), gone.set()))
    await asyncio.wait_for(gone.wait(), 5)
    # Reported after the timeout, within a quarter of it (the watch's step) plus slack.
    assert TIMEOUT <= fired[0] - start < TIMEOUT * 1.25 + 0.2
    await asyncio.sleep(TIMEOUT * 2)
    assert len(fired) == 1


@pytest.mark.parametrize("rtcp", [False, True])
async def test_rtp_or_rtcp_keeps_the_phone_alive(
    pair: tuple[MediaEndpoint, socket.socket], rtcp: bool
) -> None:
    endpoint, phone = pair
    fired: list[bool] = []
    endpoint.watch_silence(TIMEOUT, None, lambda: fired.append(True))
    await _keep_sending(endpoint, phone, TIMEOUT * 3, rtcp=rtcp)
    assert fired == []
    assert (endpoint.rtcp_packets if rtcp else endpoint.received_packets) > 0
    gone = asyncio.Event()
    endpoint.watch_silence(TIMEOUT, None, gone.set)  # then it stops: reported
    await asyncio.wait_for(gone.wait(), 5)


async def test_a_held_call_waits_for_the_hold_timeout(
    pair: tuple[MediaEndpoint, socket.socket],
) -> None:
    endpoint, _ = pair
    assert endpoint.stream is not None
    endpoint.set_remote(endpoint.stream, send=False)  # the phone holds the call
    fired: list[bool] = []
    endpoint.watch_silence(TIMEOUT, None, lambda: fired.append(True))
    await asyncio.sleep(TIMEOUT * 3)
    assert fired == []  # no hold timeout: held for ever
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    start = loop.time()
    endpoint.watch_silence(TIMEOUT, TIMEOUT * 2, gone.set)
    await asyncio.wait_for(gone.wait(), 5)
    assert loop.time() - start >= TIMEOUT * 2


async def test_closing_the_endpoint_ends_the_watch(
    pair: tuple[MediaEndpoint, socket.socket],
) -> None:
    endpoint, _ = pair
    fired: list[bool] = []
    endpoint.watch_silence(TIMEOUT, None, lambda: fired.append(True))
    endpoint.close()
    await asyncio.sleep(TIMEOUT * 2)
    assert fired == []
