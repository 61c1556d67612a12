"""The browser phone's gateway (acd.web.phone_webrtc) between a real aiortc peer (the
browser's part: ICE, DTLS-SRTP, its own codecs) and a UDP socket (the switch's part,
PCMU) on 127.0.0.1, without Chromium: tones both ways for every codec a browser may
choose; Opus and G.711 through the tap and `phone_codec`, G.722 aiortc's way."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import socket
import struct

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from acd.web import phone_webrtc
from acd.web.phone_rtp import SwitchLeg
from acd.web.phone_webrtc import BrowserMedia, gather_on
from media.g711 import ulaw_decode, ulaw_encode
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec
from tests.web.phone import peak_hz

BROWSER_HZ, SWITCH_HZ = 1000, 440


class Microphone(MediaStreamTrack):
    """The browser's microphone: BROWSER_HZ at 48 kHz, 20 ms frames in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        self._start = loop.time() if self._start is None else self._start
        due = self._start + self._n * 0.02
        if due > loop.time():
            await asyncio.sleep(due - loop.time())  # the microphone's clock, not a wait
        t = (np.arange(960) + self._n * 960) / 48000
        wave = (8000 * np.sin(2 * np.pi * BROWSER_HZ * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, self._n * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self._n += 1
        return frame


async def switch_talks(sock: socket.socket, to: int) -> None:
    """The switch's side: SWITCH_HZ in PCMU, one packet every 20 ms, to the leg."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(500):  # 10 s at most: the test ends it sooner
        t = (np.arange(160) + n * 160) / 8000
        body = ulaw_encode((8000 * np.sin(2 * np.pi * SWITCH_HZ * t)).astype(np.int16))
        sock.sendto(struct.pack("!BBHII", 0x80, 0, n, n * 160, 7) + body.tobytes(),
                    ("127.0.0.1", to))  # fmt: skip
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


async def browser_hears(
    track: MediaStreamTrack, seconds: float
) -> tuple[npt.NDArray[np.int16], int]:
    """`seconds` of what the browser's aiortc decodes, mono, and its rate (8, 16, 48k)."""
    parts: list[npt.NDArray[np.int16]] = []
    rate = 0
    while sum(len(p) for p in parts) < seconds * max(rate, 8000):
        frame = await track.recv()
        assert isinstance(frame, av.AudioFrame)
        rate = frame.sample_rate
        channels = len(frame.layout.channels)
        parts.append(np.asarray(frame.to_ndarray()).reshape(-1)[::channels])
    return np.concatenate(parts), rate


@pytest.mark.parametrize(
    ("codec", "tapped"),
    [("opus", True), ("PCMU", True), ("PCMA", True), ("G722", True), ("opus", False)],
)
async def test_gateway_tones_both_ways(
    codec: str, tapped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with a receiver that cannot be tapped (an aiortc without the queue): the
    browser's audio then comes decoded from aiortc's track, through libswresample."""
    if not tapped:
        monkeypatch.setattr(phone_webrtc, "install_tap", lambda receiver, sink: False)
    loop = asyncio.get_running_loop()
    switch = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    switch.bind(("127.0.0.1", 0))
    switch.setblocking(False)
    port = switch.getsockname()[1]
    leg = SwitchLeg(PortAllocator("127.0.0.1", 47400, 47500), "test")
    leg.set_remote(
        AudioStream("127.0.0.1", port, port + 1, Codec(0, "PCMU", 8000), None, "sendrecv")
    )
    media = BrowserMedia(leg, "test", host="127.0.0.1")
    gather_on("127.0.0.1")
    browser = RTCPeerConnection()
    talker: asyncio.Task[None] | None = None
    try:
        transceiver = browser.addTransceiver(Microphone(), direction="sendrecv")
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == f"audio/{codec}"])
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        browser.on("track", tracks.put_nowait)
        await browser.setLocalDescription(await browser.createOffer())
        answer = await media.answer(browser.localDescription.sdp)
        await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        talker = loop.create_task(switch_talks(switch, leg.port))
        async with asyncio.timeout(20):
            heard, rate = await browser_hears(await tracks.get(), 1.5)
            packets: list[bytes] = []
            while len(packets) < 75:  # 1.5 s of the browser's audio at the switch
                packets.append(await loop.sock_recv(switch, 2048))
        # What the switch got: PCMU, the browser's tone (after the first half second).
        assert {p[1] & 0x7F for p in packets} == {0}
        to_switch = ulaw_decode(b"".join(p[12:] for p in packets[25:]))
        assert np.sqrt(np.mean(to_switch.astype(np.float64) ** 2)) > 2000
        assert abs(peak_hz(to_switch) - BROWSER_HZ) < 15
        # What the browser heard: the switch's tone.
        steady = heard[len(heard) // 3 :]
        assert np.sqrt(np.mean(steady.astype(np.float64) ** 2)) > 2000
        assert abs(peak_hz(steady, rate) - SWITCH_HZ) < 15
        assert media.tapped == tapped
        if not tapped:
            assert media.browser_codec is None and media.track.to_browser is not None
        elif codec == "G722":
            assert media.track.to_browser is None and media.track.frames
        else:
            assert media.track.to_browser is not None
            assert media.browser_codec == media.track.to_browser.codec == codec.lower()
    finally:
        if talker is not None:
            talker.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await talker
        await browser.close()
        await media.close()
        leg.close()
        switch.close()
