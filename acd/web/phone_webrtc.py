"""The WebRTC half of a browser phone's call: aiortc between the browser and `SwitchLeg`.

One `RTCPeerConnection` per call, made when the page sends its offer (the browser always
offers: it asks for the microphone only when a call needs it). ICE: host candidates only
(no STUN or TURN servers: LAN use), gathered before the answer is given, so no trickle
is needed, and only those on the console's own address offered when it has one;
DTLS-SRTP as WebRTC requires. aiortc negotiates Opus or G.711 with the browser and
does that codec work off the loop (its encoder runs in an executor, its decoder in a
thread of its own).

- Browser -> switch: each decoded frame (48 kHz stereo from Opus, 8 kHz from G.711) is
  brought to 8 kHz mono (`Downsampler`; libswresample for anything else), cut into
  20 ms frames and handed to the leg, which sends one per slot of the loop's send clock.
- Switch -> browser: `SwitchTrack` gives aiortc one 20 ms 8 kHz frame per slot of the
  loop's send clock: the leg's jitter buffer's frame, or silence (a gap, or still
  filling); aiortc encodes it for the browser. When the browser chose the switch's own
  G.711 law, the payload goes as an encoded packet instead: no transcoding that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from acd.web.phone_rtp import SwitchLeg
from media.endpoint import FRAME, RATE
from media.send_clock import SendClock

__all__ = ["BrowserMedia", "Downsampler", "SwitchTrack", "pin_candidates"]

log = logging.getLogger(__name__)

_TIME_BASE = fractions.Fraction(1, RATE)
#: Frames the track may hold for aiortc's sender (more: the oldest go).
_TRACK_DEPTH = 3
#: Largest SDP offer a page may send (bytes).
MAX_SDP = 16_000


class Downsampler:
    """48 kHz audio (mono, or stereo interleaved as aiortc's Opus decoder gives it) to
    8 kHz mono: a Kaiser-windowed sinc low-pass (120 taps, 3.8 kHz: flat to 3 kHz, -1 dB
    at 3.4 kHz, more than 45 dB down from 4.6 kHz, which would alias into the telephone
    band) computed only at every 6th sample
    (the outputs kept), its history carried from frame to frame so that frames join
    without a click. Cheaper on the loop than a libswresample call per
    frame with numpy G.711 (benchmarks/webrtc.py prints both: about 39 against 58 us a
    frame, G.711 included, on the 2-core test machine)."""

    TAPS = 120
    FACTOR = 6

    def __init__(self) -> None:
        n = np.arange(self.TAPS) - (self.TAPS - 1) / 2
        cutoff = 3800 / 48000
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(self.TAPS, 7.0)
        self._taps = (taps / taps.sum()).astype(np.float32)
        self._history = np.zeros(self.TAPS - 1, np.float32)
        self._index: dict[int, npt.NDArray[np.intp]] = {}

    def feed(self, samples: npt.NDArray[np.int16], channels: int) -> npt.NDArray[np.int16]:
        """8 kHz mono int16 for `samples` (a multiple of 6 frames at 48 kHz)."""
        mono = samples.astype(np.float32)
        if channels == 2:
            mono = (mono[0::2] + mono[1::2]) * 0.5
        buffer = np.concatenate([self._history, mono])
        self._history = buffer[len(buffer) - (self.TAPS - 1) :]
        index = self._index.get(len(buffer))
        if index is None:  # one gather index per input length (Opus frames: one length)
            starts = np.arange(0, len(buffer) - self.TAPS + 1, self.FACTOR)
            index = self._index[len(buffer)] = starts[:, None] + np.arange(self.TAPS)
            if len(self._index) > 8:
                self._index.pop(next(iter(self._index)))
        out: npt.NDArray[np.float32] = buffer[index] @ self._taps
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


class SwitchTrack(MediaStreamTrack):
    """The switch's audio for the browser, one frame per send-clock slot."""

    kind = "audio"

    def __init__(self, leg: SwitchLeg) -> None:
        super().__init__()
        self._leg = leg
        self._frames: asyncio.Queue[av.AudioFrame | av.Packet[Any]] = asyncio.Queue(_TRACK_DEPTH)
        #: The G.711 law the browser negotiated ("pcmu", "pcma"); None: Opus.
        self.passthrough: str | None = None
        self._pts = 0
        self._silence = np.zeros(FRAME, np.int16)
        self._clock: SendClock | None = SendClock.of(asyncio.get_running_loop())
        self._clock.add(self)

    def tick(self) -> None:
        leg = self._leg
        payload = leg.heard.pop()
        if payload is not None and self.passthrough is not None and self.passthrough == leg.codec:
            # The browser talks the switch's own G.711 law: the payload as it came
            # (aiortc packs it, no decoding, no encoding, no executor).
            out: av.AudioFrame | av.Packet[Any] = av.Packet(payload)
        else:
            samples = leg.decode(payload) if payload is not None else self._silence
            out = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            out.sample_rate = RATE
        out.pts = self._pts
        out.time_base = _TIME_BASE
        self._pts += FRAME
        if self._frames.full():
            self._frames.get_nowait()
        self._frames.put_nowait(out)

    async def recv(self) -> av.AudioFrame | av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._frames.get()

    def stop(self) -> None:
        if self._clock is not None:
            self._clock.discard(self)
            self._clock = None
        super().stop()


def pin_candidates(sdp: str, host: str) -> str:
    """The answer with only the ICE candidates on `host` (the console's address), when
    the console listens on one address and some candidate is on it; else unchanged
    (aioice gathers on every non-loopback interface: a console on 0.0.0.0, or on
    loopback with the browser on this machine, needs them)."""
    if host in ("", "0.0.0.0", "::"):
        return sdp
    lines = sdp.split("\r\n")
    mine = [line for line in lines if line.startswith("a=candidate:") and _on(line, host)]
    if not mine:
        return sdp
    kept = [line for line in lines if not line.startswith("a=candidate:") or line in mine]
    return "\r\n".join(kept)


def _on(candidate: str, host: str) -> bool:
    """Whether an `a=candidate:` line's address is `host`."""
    fields = candidate.split()
    return len(fields) > 5 and fields[4] == host


def _first_codec(sdp: str) -> str | None:
    """The name (lower case) of the first codec of the first audio m= line."""
    found = re.search(r"^m=audio \S+ \S+ (\d+)", sdp, re.MULTILINE)
    if found is None:
        return None
    rtpmap = re.search(rf"^a=rtpmap:{found.group(1)} ([^/\s]+)", sdp, re.MULTILINE)
    return rtpmap.group(1).lower() if rtpmap else None


class BrowserMedia:
    """One call's RTCPeerConnection (see the module doc)."""

    def __init__(
        self, leg: SwitchLeg, name: str, *, prefer_g711: bool = False, host: str = ""
    ) -> None:
        self.leg = leg
        self.name = name
        #: The console's address: the only one offered to the browser (`pin_candidates`).
        self.host = host
        #: Put G.711 first in the answer (when the browser offers it): no transcoding, and
        #: no Opus work; Opus otherwise (the browsers' first choice, better on lossy Wi-Fi).
        self.prefer_g711 = prefer_g711
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = SwitchTrack(leg)
        self.pc.addTrack(self.track)
        self._pump: asyncio.Task[None] | None = None
        #: Whether the browser's audio goes to the switch (False while the call is held).
        self.forwarding = True
        self.failed = asyncio.Event()
        self.connected = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(
                self._from_browser(track), name=f"{self.name} browser audio"
            )

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("%s: WebRTC %s", self.name, state)
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.failed.set()

    async def answer(self, offer_sdp: str) -> str:
        """The answer (with our host candidates) to the page's offer.

        Raises: ValueError for an offer aiortc cannot use (no audio, unknown codecs).
        """
        if len(offer_sdp) > MAX_SDP:
            raise ValueError("offer too large")
        if self.prefer_g711:
            # Before the offer is applied: aiortc orders the common codecs by these then.
            codecs = RTCRtpSender.getCapabilities("audio").codecs
            first = [c for c in codecs if c.mimeType.lower() in ("audio/pcmu", "audio/pcma")]
            rest = [c for c in codecs if c not in first]
            for transceiver in self.pc.getTransceivers():
                transceiver.setCodecPreferences(first + rest)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = pin_candidates(str(self.pc.localDescription.sdp), self.host)
        chosen = _first_codec(sdp)
        self.track.passthrough = chosen if chosen in ("pcmu", "pcma") else None
        log.info("%s: the browser talks %s", self.name, chosen)
        return sdp

    async def _from_browser(self, track: MediaStreamTrack) -> None:
        resampler: av.AudioResampler | None = None
        downsampler = Downsampler()
        pending = np.zeros(0, np.int16)
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                channels = len(frame.layout.channels)
                raw = np.asarray(frame.to_ndarray(), np.int16).reshape(-1)
                chunk: npt.NDArray[np.int16] | None
                if frame.format.name != "s16" or channels > 2:
                    chunk = None
                elif frame.sample_rate == RATE and channels == 1:
                    chunk = raw  # G.711 from the browser: 8 kHz mono already
                elif frame.sample_rate == 48000 and frame.samples % Downsampler.FACTOR == 0:
                    chunk = downsampler.feed(raw, channels)  # Opus
                else:
                    chunk = None
                if chunk is None:  # anything else: libswresample
                    if resampler is None:
                        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
                    parts = [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
                    chunk = np.concatenate(parts) if parts else np.zeros(0, np.int16)
                pending = np.concatenate([pending, chunk.astype(np.int16, copy=False)])
                while len(pending) >= FRAME:
                    if self.forwarding:
                        self.leg.say(pending[:FRAME])
                    pending = pending[FRAME:]
        except MediaStreamError:
            return

    async def close(self) -> None:
        self.track.stop()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.pc.close()
