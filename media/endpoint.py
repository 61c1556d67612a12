"""A call's media terminated in the switch: it plays audio and hears digits.

Where the relay (`media.relay`) joins two phones, a `MediaEndpoint` is the far end
itself: what IVR menus, voicemail and prompts stand on. It owns one RTP port pair,
sends G.711 (PCMU or PCMA) frames of 20 ms paced by the loop's clock, and turns
what it receives into digits: RFC 4733 telephone-events when the call negotiated
them, otherwise the in-band detector over the decoded audio (`media.dtmf`). SIP INFO
digits (application/dtmf-relay) are handed in by the signalling side through
`push_digit`.

The socket is a plain non-blocking one watched with `loop.add_reader`; nothing on
the receive path awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.dtmf import DtmfDetector
from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.ports import PortAllocator
from media.rtp import RtpHeader, payload_offset
from media.sdp import AudioStream
from media.telephone_event import TelephoneEventReceiver

log = logging.getLogger(__name__)

RATE = 8000
FRAME = 160  # samples per 20 ms packet
FRAME_SECONDS = FRAME / RATE

#: RMS level (int16 scale) under which a 20 ms frame counts as silence when recording:
#: about -48 dBFS, under any voice yet over the idle noise of a phone line.
SILENCE_RMS = 128.0

Encoder = Callable[[npt.ArrayLike], npt.NDArray[np.uint8]]
Decoder = Callable[..., npt.NDArray[np.int16]]
_CODECS: dict[str, tuple[Encoder, Decoder]] = {
    "pcmu": (ulaw_encode, ulaw_decode),
    "pcma": (alaw_encode, alaw_decode),
}


@dataclass(frozen=True, slots=True)
class Recording:
    """What `MediaEndpoint.record` heard.

    `reason` is how it ended: "digit" (`digit` holds the key), "silence", "max"
    (the time limit) or "hangup" (the endpoint closed). `sound_seconds` counts the
    frames above the silence level: 0 means nothing was said.
    """

    samples: npt.NDArray[np.int16]
    reason: str
    digit: str | None = None
    sound_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


class _Capture:
    """Audio collected while recording, and the silence run that may end it."""

    def __init__(self, silence_frames: int | None) -> None:
        self.frames: list[npt.NDArray[np.int16]] = []
        self.silence_frames = silence_frames
        self.quiet = 0  # frames of silence at the end so far
        self.sound = 0  # frames above the silence level
        self.silent = asyncio.Event()

    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        self.frames.append(samples)
        level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
        if level < SILENCE_RMS:
            self.quiet += 1
            if self.silence_frames is not None and self.quiet >= self.silence_frames:
                self.silent.set()
        else:
            self.quiet = 0
            self.sound += 1


class MediaEndpoint:
    """One RTP stream between a phone and the switch.

    Raises (constructor): PortsExhaustedError when no port pair is free.
    """

    def __init__(self, allocator: PortAllocator, *, name: str = "media") -> None:
        self.name = name
        self._allocator = allocator
        self._pair = allocator.allocate()
        self._loop = asyncio.get_running_loop()
        self._rtp: socket.socket = self._pair.rtp
        self._rtcp: socket.socket = self._pair.rtcp
        self.remote: tuple[str, int] | None = None
        self.stream: AudioStream | None = None
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self._events = TelephoneEventReceiver(RATE)
        self._inband: DtmfDetector | None = None
        self._encode: Encoder = ulaw_encode
        self._decode: Decoder = ulaw_decode
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self.received_packets = 0
        self.closed = False
        self._capture: _Capture | None = None
        self._closed_event = asyncio.Event()
        self._loop.add_reader(self._rtp.fileno(), self._readable)
        self._loop.add_reader(self._rtcp.fileno(), self._drain_rtcp)

    @property
    def host(self) -> str:
        return self._pair.host

    @property
    def port(self) -> int:
        return self._pair.rtp_port

    def set_remote(self, stream: AudioStream) -> None:
        """Where the phone listens and which codec the call agreed on.

        Raises: MediaError for a codec other than PCMU or PCMA.
        """
        codec = _CODECS.get(stream.codec.key)
        if codec is None:
            raise MediaError(f"cannot terminate {stream.codec.name} media (PCMU/PCMA only)")
        self._encode, self._decode = codec
        self.stream = stream
        self.remote = (stream.host, stream.port) if stream.port else None
        # RFC 4733 when negotiated, else listen for tones in the audio itself.
        self._inband = None if stream.telephone_event is not None else DtmfDetector()

    def push_digit(self, digit: str) -> None:
        """A digit that arrived outside RTP (SIP INFO)."""
        self.digits.put_nowait(digit)

    # -- receiving ---------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data, source = self._rtp.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("%s: RTP receive error %s", self.name, exc)
            return
        stream = self.stream
        if stream is None:
            return
        if self.remote is None or self.received_packets == 0:
            self.remote = (str(source[0]), int(source[1]))  # symmetric RTP: answer where it sends
        self.received_packets += 1
        try:
            header = RtpHeader.parse(data)
            body = data[payload_offset(data) :]
        except MediaError:
            return
        if stream.telephone_event is not None and header.payload_type == stream.telephone_event:
            try:
                for got in self._events.feed(body, header.timestamp, header.marker):
                    self.digits.put_nowait(got.digit)
            except MediaError as exc:
                log.debug("%s: bad telephone-event: %s", self.name, exc)
        elif header.payload_type == stream.codec.payload_type:
            if self._inband is None and self._capture is None:
                return
            audio = self._decode(body)
            if self._capture is not None:
                self._capture.feed(audio)
            if self._inband is not None:
                for found in self._inband.feed(audio):
                    self.digits.put_nowait(found.digit)

    def _drain_rtcp(self) -> None:
        with contextlib.suppress(OSError):
            self._rtcp.recvfrom(2048)

    # -- sending -------------------------------------------------------------------

    def _send_frame(self, samples: npt.NDArray[np.int16], marker: bool = False) -> None:
        if self.remote is None or self.stream is None:
            return
        header = RtpHeader(self.stream.codec.payload_type, self._seq, self._ts, self._ssrc, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF
        try:
            self._rtp.sendto(bytes(header) + self._encode(samples).tobytes(), self.remote)
        except OSError as exc:
            log.debug("%s: RTP send error %s", self.name, exc)

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        """Send 8 kHz int16 audio in real time, 20 ms a packet.

        Returns True when it played to the end, False when a digit arrived first
        (with `stop_on_digit`: a caller pressing a key during a prompt) or the
        endpoint closed. The digit stays queued for `collect_digits`.
        """
        audio = np.asarray(samples, dtype=np.int16)
        if len(audio) % FRAME:
            audio = np.concatenate([audio, np.zeros(FRAME - len(audio) % FRAME, np.int16)])
        start = self._loop.time()
        for index in range(len(audio) // FRAME):
            if self.closed or (stop_on_digit and not self.digits.empty()):
                return False
            self._send_frame(audio[index * FRAME : (index + 1) * FRAME], marker=index == 0)
            delay = start + (index + 1) * FRAME_SECONDS - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return not self.closed

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        """Digits until `max_digits`, the terminator (not included), or a timeout:
        `timeout` for the first digit, `inter_digit_timeout` (default the same) after."""
        got = ""
        wait = timeout
        while len(got) < max_digits:
            try:
                async with asyncio.timeout(wait):
                    digit = await self.digits.get()
            except TimeoutError:
                break
            if terminator is not None and digit == terminator:
                break
            got += digit
            wait = inter_digit_timeout if inter_digit_timeout is not None else timeout
        return got

    async def record(
        self,
        max_seconds: float,
        *,
        silence_seconds: float | None = None,
        stop_digits: str = "#",
    ) -> Recording:
        """Keep what the phone sends until a key of `stop_digits`, `silence_seconds` of
        silence, `max_seconds`, or the endpoint closing (the caller hung up).

        Digits pressed before the recording started are dropped; other keys than
        `stop_digits` are ignored. The trailing silence (and the tone of a stop key
        heard in band) is cut off.
        """
        while not self.digits.empty():
            self.digits.get_nowait()
        capture = self._capture = _Capture(
            None if silence_seconds is None else max(1, round(silence_seconds / FRAME_SECONDS))
        )
        reason, digit = "max", None
        silent = asyncio.ensure_future(capture.silent.wait())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            async with asyncio.timeout(max_seconds):
                while True:
                    key = asyncio.ensure_future(self.digits.get())
                    done, _ = await asyncio.wait(
                        {key, silent, closed}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if key not in done:
                        key.cancel()
                    if closed in done:
                        reason = "hangup"
                        break
                    if silent in done:
                        reason = "silence"
                        break
                    if key.result() in stop_digits:
                        reason, digit = "digit", key.result()
                        break
        except TimeoutError:
            pass
        finally:
            self._capture = None
            silent.cancel()
            closed.cancel()
        frames = capture.frames
        cut = capture.quiet
        if reason == "digit" and self._inband is not None:
            cut += round(0.2 / FRAME_SECONDS)  # the key's tone itself
        kept = frames[: max(0, len(frames) - cut)] if cut else frames
        audio = np.concatenate(kept) if kept else np.zeros(0, np.int16)
        return Recording(audio, reason, digit, capture.sound * FRAME_SECONDS)

    def close(self) -> None:
        """Stop receiving and give the ports back."""
        if self.closed:
            return
        self.closed = True
        self._closed_event.set()
        for sock in (self._rtp, self._rtcp):
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
        self._allocator.release(self._pair)


def tone(frequency: float, seconds: float, level: float = 8000.0) -> npt.NDArray[np.int16]:
    """A sine tone at 8 kHz (beeps, and prompts' stand-in where no synthesizer exists)."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
