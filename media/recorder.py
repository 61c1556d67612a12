"""Two-channel recording of a relayed call: channel 0 is what leg a's phone sends,
channel 1 what leg b's phone sends, each decoded from G.711.

The relay hands every accepted RTP datagram to `feed` (`RelaySession.record`).
Packets are placed by arrival time, so silence (a phone on hold, lost packets)
stays silence and the two channels stay aligned; a packet arriving less than
40 ms off its slot is appended where the channel ended, which absorbs jitter.
The audio is held in memory (16 kB per second per channel) and written on `save`
in a worker thread.

Recording on demand stops and starts again (`stop`, `start`): the parts follow one
another in the file with no gap for the time between them, each part placed by
arrival time from where the longer channel ended. `recorded` says whether any part
holds audio (a call whose code was never pressed leaves no file).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.g711 import alaw_decode, ulaw_decode
from media.relay import LegName, RelaySession
from media.rtp import payload_offset
from media.wav import write_wav

RATE = 8000
JITTER = int(RATE * 0.04)
_DECODERS: dict[str, Callable[..., npt.NDArray[np.int16]]] = {
    "pcmu": ulaw_decode,
    "pcma": alaw_decode,
}


class CallRecorder:
    """Records both directions of `session` (G.711 legs; other codecs are skipped)."""

    def __init__(
        self, session: RelaySession, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._session = session
        self._clock = clock
        self._start: float | None = None
        self._chunks: dict[LegName, list[npt.NDArray[np.int16]]] = {"a": [], "b": []}
        self._length: dict[LegName, int] = {"a": 0, "b": 0}
        self._offset = 0  # samples recorded before the current part
        self.running = False

    @property
    def recorded(self) -> bool:
        """Whether any audio was recorded."""
        return max(self._length.values()) > 0

    def start(self) -> None:
        """Tap the relay: a new part begins where the recording so far ends."""
        if self.running:
            return
        self.running = True
        self._start = None
        self._offset = max(self._length.values())
        self._session.record(self.feed)

    def stop(self) -> None:
        """Untap the relay (`start` records another part)."""
        self.running = False
        self._session.record(None)

    def feed(self, leg: LegName, data: bytes) -> None:
        """One RTP datagram `leg`'s phone sent."""
        stream = self._session.leg(leg).stream
        if stream is None or len(data) < 12 or data[1] & 0x7F != stream.codec.payload_type:
            return
        decode = _DECODERS.get(stream.codec.key)
        if decode is None:
            return
        try:
            samples = decode(data[payload_offset(data) :])
        except MediaError:
            return
        now = self._clock()
        if self._start is None:
            self._start = now - self._offset / RATE
        slot = round((now - self._start) * RATE)
        gap = slot - self._length[leg]
        if gap > JITTER:
            self._chunks[leg].append(np.zeros(gap, np.int16))
            self._length[leg] += gap
        self._chunks[leg].append(samples)
        self._length[leg] += len(samples)

    def samples(self) -> npt.NDArray[np.int16]:
        """The recording so far as (frames, 2) int16."""
        frames = max(self._length.values())
        out = np.zeros((frames, 2), np.int16)
        for column, leg in enumerate(("a", "b")):
            chunks = self._chunks[leg]  # type: ignore[index]
            if chunks:
                channel = np.concatenate(chunks)
                out[: len(channel), column] = channel
        return out

    async def save(self, path: Path) -> Path:
        """Write the two-channel 8 kHz WAV (directories created); returns the path."""
        stereo = self.samples()

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, stereo, RATE)

        await asyncio.to_thread(write)
        return path
