"""The test's own RTP side of a call: hear the switch's audio as named tones (and the
RFC 4733 digits it sends, as `digits`), press keys as RFC 4733 events, and talk (send a
tone as paced PCMU).

Prompts in these tests are replaced by pure tones, one frequency each, so the order
in which a caller heard them can be read back from the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Mapping

import numpy as np
import numpy.typing as npt

from media.g711 import ulaw_decode, ulaw_encode
from media.telephone_event import TelephoneEventReceiver, event_packets

WINDOW = 800  # 100 ms at 8 kHz


def rtp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def peak_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(np.argmax(spectrum))])


def tones_in(samples: npt.NDArray[np.int16], tones: Mapping[str, int]) -> list[str]:
    """The names of the distinct tones heard in turn (100 ms windows; quiet ones skipped)."""
    heard: list[str] = []
    for start in range(0, len(samples) - WINDOW, WINDOW):
        chunk = samples[start : start + WINDOW].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) < 500:
            continue
        peak = peak_hz(samples[start : start + WINDOW])
        name = min(tones, key=lambda n: abs(tones[n] - peak))
        if abs(tones[name] - peak) < 30 and (not heard or heard[-1] != name):
            heard.append(name)
    return heard


def sine(hz: float, seconds: float, level: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(8000 * seconds)) / 8000
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


class Ear:
    """Collects the PCMU audio the switch sends to one RTP socket; sends keys and audio."""

    def __init__(self, sock: socket.socket, tones: Mapping[str, int]) -> None:
        self.sock = sock
        self.tone_map = tones
        self.audio: list[npt.NDArray[np.int16]] = []
        self.remote: tuple[str, int] | None = None
        #: Digits received as telephone-events (payload type 101), each once, in order.
        self.digits: list[str] = []
        self._events = TelephoneEventReceiver()
        self._seq = 0
        self._ts = 0
        self.task = asyncio.get_running_loop().create_task(self._listen())

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                self.audio.append(ulaw_decode(data[12:]))
            elif len(data) >= 16 and data[1] & 0x7F == 101:
                ts = struct.unpack_from("!I", data, 4)[0]
                for got in self._events.feed(data[12:16], ts, bool(data[1] & 0x80)):
                    self.digits.append(got.digit)

    def samples(self) -> npt.NDArray[np.int16]:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)

    def tones(self) -> list[str]:
        return tones_in(self.samples(), self.tone_map)

    async def wait_for(self, *names: str, timeout: float = 15.0) -> None:
        """Wait (polling, bounded) until the tones heard end with `names` in order,
        counting from anywhere in what was heard so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not _contains(self.tones(), names):
            assert loop.time() < deadline, f"waited for {names}, heard only {self.tones()}"
            await asyncio.sleep(0.05)

    def _send(self, payload_type: int, payload: bytes, ts: int, marker: bool) -> None:
        assert self.remote is not None, "set ear.remote to the switch's RTP address first"
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, self._seq, ts, 0x77
        )
        self.sock.sendto(header + payload, self.remote)
        self._seq = (self._seq + 1) & 0xFFFF

    def press(self, keys: str) -> None:
        """Keys as RFC 4733 events (payload type 101), 100 ms each."""
        for key in keys:
            start = self._ts
            for packet in event_packets(key, 100):
                self._send(101, packet.payload, start, packet.marker)
            self._ts += 800 + 400  # the event, then a gap

    async def talk(self, samples: npt.NDArray[np.int16]) -> None:
        """Send audio as PCMU at the real-time pace of a phone (20 ms a packet)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(len(samples) // 160):
            frame = ulaw_encode(samples[index * 160 : (index + 1) * 160]).tobytes()
            self._send(0, frame, self._ts, index == 0)
            self._ts += 160
            delay = start + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def listening(tones: Mapping[str, int]) -> AsyncIterator[Ear]:
    """An `Ear` on a fresh loopback socket, stopped and closed on the way out."""
    ear = Ear(rtp_socket(), tones)
    try:
        yield ear
    finally:
        await ear.stop()
        ear.sock.close()


def _contains(heard: list[str], names: tuple[str, ...]) -> bool:
    """Whether `names` occur in `heard` in order (not necessarily adjacent)."""
    it = iter(heard)
    return all(any(h == n for h in it) for n in names)
