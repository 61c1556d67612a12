"""MediaEndpoint for the Call API: two endpoints joined (each phone hears the other in
its own stream, transcoded across laws), pre-encoded loops, and handing the ports over
to a relay leg (`detach`)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest

from media.endpoint import MediaEndpoint
from media.errors import MediaError
from media.g711 import alaw_encode, ulaw_decode
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec


def _stream(port: int, name: str, pt: int) -> AudioStream:
    return AudioStream("127.0.0.1", port, port + 1, Codec(pt, name, 8000), None, "sendrecv")


@pytest.fixture
async def ports() -> AsyncIterator[PortAllocator]:
    yield PortAllocator("127.0.0.1", 42000, 42100)


def _phone() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def _receive(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(sock, 2048), 5) for _ in range(count)]


async def test_joined_endpoints_carry_each_others_audio_across_laws(
    ports: PortAllocator,
) -> None:
    pa, pb = _phone(), _phone()
    a, b = MediaEndpoint(ports, name="a"), MediaEndpoint(ports, name="b")
    try:
        a.set_remote(_stream(pa.getsockname()[1], "PCMA", 8), signalling_host="127.0.0.1")
        b.set_remote(_stream(pb.getsockname()[1], "PCMU", 0), signalling_host="127.0.0.1")
        a.join(b)
        with pytest.raises(MediaError):
            a.join(b)
        tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
        payload = alaw_encode(tone).tobytes()
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        for seq in range(40):  # phone A talks (PCMA); phone B must get it as PCMU
            header = struct.pack("!BBHII", 0x80, 8, seq, seq * 160, 0xA)
            pa.sendto(header + payload, ("127.0.0.1", a.port))
            data = await asyncio.wait_for(loop.sock_recv(pb, 2048), 5)
            if data[1] & 0x7F == 0 and np.abs(ulaw_decode(data[12:])).max() > 4000:
                got.append(data)
                if len(got) >= 5:
                    break
        assert len(got) >= 5
        ssrcs = {struct.unpack_from("!I", d, 8)[0] for d in got}
        assert len(ssrcs) == 1  # B's own stream
        a.unjoin()
        assert a.joined is None and b.joined is None
    finally:
        a.close()
        b.close()
        pa.close()
        pb.close()


async def test_loop_encoded_sends_the_frames_as_they_are(ports: PortAllocator) -> None:
    phone = _phone()
    media = MediaEndpoint(ports, name="moh")
    try:
        media.set_remote(_stream(phone.getsockname()[1], "PCMU", 0), signalling_host="127.0.0.1")
        frames = bytes(range(256)) * 5  # 8 frames of PCMU, recognisable
        task = asyncio.ensure_future(media.loop_encoded(lambda key: frames[: 160 * 8]))
        packets = await _receive(phone, 20)
        payloads = [p[12:] for p in packets]
        assert any(p == frames[:160] for p in payloads)
        task.cancel()
        media.close()
        assert await asyncio.gather(task, return_exceptions=True)
    finally:
        media.close()
        phone.close()


async def test_detach_keeps_the_ports_open_for_a_relay(ports: PortAllocator) -> None:
    media = MediaEndpoint(ports, name="ivr")
    pair, (ssrc, seq, ts) = media.detach()
    try:
        assert media.closed and ports.in_use == 1  # not given back: a relay leg takes it
        assert pair.rtp.fileno() >= 0 and pair.rtp_port == media.port
        assert 0 <= seq < 2**16 and 0 <= ts < 2**32 and 0 <= ssrc < 2**32
        with pytest.raises(MediaError):
            media.detach()
    finally:
        ports.release(pair)
