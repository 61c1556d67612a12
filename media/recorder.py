"""Two-channel recording of a relayed call, streamed to disk: channel 0 is what leg a's
phone sends, channel 1 what leg b's phone sends, each decoded from G.711.

The relay hands every accepted RTP datagram to `CallRecorder.feed`
(`RelaySession.record`), on the event loop, per packet: it only decodes and places
the samples in memory (`Timeline`). Packets are placed by arrival time, so silence (a
phone on hold, lost packets) stays silence and the two channels stay aligned; a packet
arriving less than 40 ms off its slot is appended where the channel ended, which
absorbs jitter.

The file is written as the call goes, so a crash or kill -9 loses at most the last
second or two:

- It is created (header only) in a worker thread when recording first starts, and
  `on_open` is awaited then (the switch links it from the CDR at that moment).
- Every `flush_every` (1 s), and at each `stop`, the aligned stereo frames older than
  `holdback` (200 ms) are appended by a worker thread, and the RIFF and data sizes in
  the header are rewritten after each append: the file on disk is a valid WAV at every
  moment. The holdback leaves late packets (jitter, a burst after a stall) time to
  land in their slot; a channel with nothing up to the flushed point (silence, or
  packets later than the holdback) is padded with silence there, and its next packet
  continues after it. `stop` pads both channels to the longer one and queues all.
- The file is fsynced when created, every `fsync_every` (10 s) of audio written and
  at `close`; a kill -9 needs no fsync (the page cache survives the process), power
  loss costs at most the last 10 s.

Memory stays bounded whatever the call length: at most `flush_every + holdback` of
audio waits for the writer, plus what a channel runs ahead of the clock (a phone
sending faster than real time), which is capped at `AHEAD` (2 s): later packets of
such a channel are dropped.

Recording on demand stops and starts again (`stop`, `start`): the parts follow one
another in the file with no gap for the time between them, each part placed by
arrival time from where the recording so far ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.g711 import alaw_decode, ulaw_decode
from media.relay import LegName, RelaySession
from media.rtp import payload_offset
from media.wav import wav_bytes

log = logging.getLogger(__name__)

RATE = 8000
JITTER = int(RATE * 0.04)
AHEAD = 2 * RATE  # how far (frames) a channel may run ahead of the clock
FLUSH_EVERY = 1.0
HOLDBACK = 0.2
FSYNC_EVERY = 10.0
_LEGS: tuple[LegName, LegName] = ("a", "b")
_DECODERS: dict[str, Callable[..., npt.NDArray[np.int16]]] = {
    "pcmu": ulaw_decode,
    "pcma": alaw_decode,
}

Frames = npt.NDArray[np.int16]  # shape (frames, 2)


def _no_frames() -> Frames:
    return np.zeros((0, 2), np.int16)


class Timeline:
    """Both channels of the recording not yet handed out, placed by arrival time.

    Frame numbers count from the start of the recording; `base` frames were handed
    out (`take`), each channel holds its samples from `base` to its own end. Pure:
    the caller passes the clock reading.
    """

    def __init__(self) -> None:
        self.base = 0
        self._chunks: dict[LegName, list[Frames]] = {"a": [], "b": []}
        self._end: dict[LegName, int] = {"a": 0, "b": 0}
        self._start: float | None = None  # clock time of frame 0 in the current part
        self._part = False

    @property
    def frames(self) -> int:
        """Frames recorded so far (handed out or held), the longer channel's end."""
        return max(self._end.values())

    @property
    def held(self) -> int:
        """Frames held in memory (the longer channel's)."""
        return self.frames - self.base

    def begin_part(self) -> None:
        """A new part: its first packet is placed where the recording so far ends."""
        self._part = True
        self._start = None

    def end_part(self) -> Frames:
        """End the part: both channels padded to the longer one, all of it handed out."""
        self._part = False
        self._start = None
        return self.take(self.frames)

    def place(self, leg: LegName, samples: npt.NDArray[np.int16], now: float) -> bool:
        """Put `samples` `leg`'s phone sent, received at `now`, in their slot; False
        (dropped) when the channel already runs more than `AHEAD` past the slot."""
        if self._start is None:
            self._start = now - self.frames / RATE
        slot = round((now - self._start) * RATE)
        end = self._end[leg]
        if end - slot > AHEAD:
            return False
        if slot - end > JITTER:
            self._chunks[leg].append(np.zeros(slot - end, np.int16))
            end = slot
        self._chunks[leg].append(samples)
        self._end[leg] = end + len(samples)
        return True

    def due(self, now: float, holdback: float) -> int:
        """The frame up to which the part can be handed out at `now`: `holdback` ago."""
        if not self._part or self._start is None:
            return self.base
        return round((now - holdback - self._start) * RATE)

    def take(self, upto: int) -> Frames:
        """Hand out the frames before `upto` (at most to the longer channel's end); the
        shorter channel is padded with silence up to there."""
        upto = min(upto, self.frames)
        count = upto - self.base
        if count <= 0:
            return _no_frames()
        out = np.zeros((count, 2), np.int16)
        for column, leg in enumerate(_LEGS):
            chunks = self._chunks[leg]
            if chunks:
                channel = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
                used = min(count, len(channel))
                out[:used, column] = channel[:used]
                self._chunks[leg] = [channel[used:]] if used < len(channel) else []
            self._end[leg] = max(self._end[leg], upto)
        self.base = upto
        return out

    def peek(self) -> Frames:
        """The frames held, both channels padded to the longer one (nothing handed out)."""
        out = np.zeros((self.held, 2), np.int16)
        for column, leg in enumerate(_LEGS):
            if self._chunks[leg]:
                channel = np.concatenate(self._chunks[leg])
                out[: len(channel), column] = channel
        return out


class WavAppender:
    """A 16-bit PCM WAV file that grows: each append writes the frames, then rewrites
    the RIFF and data sizes, so the file is a valid WAV at every moment. Blocking:
    use it from a worker thread.
    """

    def __init__(self, path: Path, file: BinaryIO, channels: int) -> None:
        self.path = path
        self._file = file
        self._block = 2 * channels
        self.frames = 0
        self._unsynced = 0

    @classmethod
    def create(cls, path: Path, channels: int, rate: int) -> WavAppender:
        """Create `path` (and its directories) holding a header and no frames, fsynced
        with its directory so the file outlives even a power loss. Raises: OSError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("wb", buffering=0)
        try:
            file.write(wav_bytes(np.zeros((0, channels), np.int16), rate))
            os.fsync(file.fileno())
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            file.close()
            raise
        return cls(path, file, channels)

    def append(self, frames: Frames, sync_every: int) -> None:
        """Append `frames` (int16, shape (n, channels)) and update the header; fsync
        once `sync_every` frames were written since the last fsync. Raises: OSError."""
        data = frames.astype("<i2").tobytes()
        fd = self._file.fileno()
        _pwrite_all(fd, data, 44 + self.frames * self._block)
        self.frames += len(frames)
        size = self.frames * self._block
        _pwrite_all(fd, (36 + size).to_bytes(4, "little"), 4)
        _pwrite_all(fd, size.to_bytes(4, "little"), 40)
        self._unsynced += len(frames)
        if self._unsynced >= sync_every:
            os.fsync(fd)
            self._unsynced = 0

    def close(self) -> None:
        """fsync and close. Raises: OSError."""
        try:
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class CallRecorder:
    """Records both directions of `session` (G.711 legs; other codecs are skipped) into
    the WAV file `path`, streamed as described above.

    `on_open` is awaited once the file exists. Without a `path` nothing is written and
    the whole recording stays in memory (`samples`): for tests and short captures.
    The owner calls `close` when the call ends (it stops, writes the rest and closes
    the file; the recorder's flushing task ends with it).
    """

    def __init__(
        self,
        session: RelaySession,
        path: Path | None = None,
        *,
        on_open: Callable[[Path], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        flush_every: float = FLUSH_EVERY,
        holdback: float = HOLDBACK,
        fsync_every: float = FSYNC_EVERY,
    ) -> None:
        self._session = session
        self.path = path
        self._on_open = on_open
        self._clock = clock
        self._flush_every = flush_every
        self._holdback = holdback
        self._sync_every = max(1, round(fsync_every * RATE))
        self._timeline = Timeline()
        self._ready: list[Frames] = []  # ended parts not yet written
        self._file: WavAppender | None = None
        self._opened = False  # the file was created (or that failed)
        self._written = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self.running = False
        #: Packets dropped because their channel ran more than AHEAD past the clock.
        self.dropped = 0

    @property
    def recorded(self) -> bool:
        """Whether any audio was recorded."""
        return self._timeline.frames > 0

    @property
    def held(self) -> int:
        """Frames held in memory, waiting to be written."""
        return sum(len(part) for part in self._ready) + self._timeline.held

    @property
    def written(self) -> int:
        """Frames appended to the file so far."""
        return self._written

    def start(self) -> None:
        """Tap the relay: a new part begins where the recording so far ends. The first
        start creates the file (in the background: see `flush`)."""
        if self.running or self._closing:
            return
        self.running = True
        self._timeline.begin_part()
        self._session.record(self.feed)
        if self.path is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"recorder {self.path.name}"
            )

    def stop(self) -> None:
        """Untap the relay and queue the part for writing (`start` records another)."""
        if not self.running:
            return
        self.running = False
        self._session.record(None)
        part = self._timeline.end_part()
        if len(part):
            self._ready.append(part)
        self._wake.set()

    def feed(self, leg: LegName, data: bytes) -> None:
        """One RTP datagram `leg`'s phone sent (runs per packet on the loop: cheap)."""
        if not self.running:
            return
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
        if not self._timeline.place(leg, samples, self._clock()):
            self.dropped += 1

    def samples(self) -> Frames:
        """What is held in memory as (frames, 2) int16: the whole recording when there is
        no file, else what was not yet written."""
        return np.concatenate([*self._ready, self._timeline.peek()])

    async def flush(self) -> None:
        """Create the file if it does not exist yet (awaiting `on_open`), then append what
        is due: the parts stopped and the current part up to `holdback` ago. File work
        runs in a worker thread; an OS error is logged and ends the writing (the audio
        is then dropped, so memory stays bounded)."""
        if self.path is None:
            return
        async with self._lock:
            if not self._opened:
                self._opened = True
                try:
                    self._file = await asyncio.to_thread(WavAppender.create, self.path, 2, RATE)
                except OSError as exc:
                    self._fail("create", exc)
                else:
                    if self._on_open is not None:
                        await self._on_open(self.path)
            frames = self._due()
            if self._file is not None and len(frames):
                try:
                    await asyncio.to_thread(self._file.append, frames, self._sync_every)
                except OSError as exc:
                    self._fail("write", exc)
                else:
                    self._written += len(frames)

    async def close(self) -> None:
        """Stop, write what is left, fsync and close the file; the recorder is done."""
        self.stop()
        self._closing = True
        self._wake.set()
        if self._task is not None:
            # Shielded: a cancelled owner still leaves a complete file behind.
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        """Flush at once (which creates the file), then every `flush_every` or when a
        part stops, until `close`."""
        while True:
            await self.flush()
            if self._closing:
                break
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_every):
                    await self._wake.wait()
            self._wake.clear()
        async with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    await asyncio.to_thread(file.close)
                except OSError as exc:
                    self._fail("close", exc)

    def _due(self) -> Frames:
        parts, self._ready = self._ready, []
        if self.running:
            parts.append(self._timeline.take(self._timeline.due(self._clock(), self._holdback)))
        return np.concatenate(parts) if parts else _no_frames()

    def _fail(self, what: str, exc: OSError) -> None:
        log.error("recording %s: cannot %s the file: %s", self.path, what, exc)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
