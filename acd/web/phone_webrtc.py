"""The WebRTC half of a browser phone's call: aiortc between the browser and `SwitchLeg`.

One `RTCPeerConnection` per call, made when the page sends its offer (the browser always
offers: it asks for the microphone only when a call needs it). ICE: host candidates only
(no STUN or TURN servers: LAN use), gathered before the answer is given, so no trickle
is needed, and only on the console's own address when it has one (a loopback console's
too: `gather_on`);
DTLS-SRTP as WebRTC requires. aiortc negotiates Opus or G.711 with the browser and does
ICE, DTLS, SRTP and RTP; the codec work is ours (acd.web.phone_codec), on encoded
payloads, so that a call costs little:

- Browser -> switch: aiortc's receiver hands each reassembled payload to a decoder
  thread of its own and gives the track 48 kHz stereo frames (for Opus), each crossing
  back to the loop. Instead `_Tap` takes the payload on the loop, where the receiver
  gives it (it stands in for that thread's queue: `install_tap`), and `FromBrowser`
  makes the switch's 20 ms G.711 payloads of it (G.711 as it came or by a table; Opus
  decoded straight to 8 kHz), which the leg sends one per slot of the loop's send clock.
- Switch -> browser: `SwitchTrack` gives aiortc one encoded packet per slot of the
  loop's send clock (the leg's jitter buffer's payload, or silence, through `ToBrowser`):
  aiortc only packs it (no executor round trip, no resampling, no 48 kHz stereo
  encoder: Opus is encoded from 8 kHz mono).

A codec other than those (G.722, if a browser offered nothing better), or an aiortc whose
receiver has no such queue, goes the slow way: aiortc's decoder and encoder with
libswresample between them and the switch's 8 kHz.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import logging
import queue
import re
import threading
from collections.abc import Callable
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from acd.web.phone_codec import FromBrowser, ToBrowser, codec_of
from acd.web.phone_rtp import SwitchLeg
from media.endpoint import FRAME, RATE
from media.errors import MediaError
from media.opus import available as opus_available
from media.send_clock import SendClock

__all__ = ["BrowserMedia", "SwitchTrack", "gather_on", "install_tap", "pin_candidates"]

log = logging.getLogger(__name__)

_TIME_BASE = fractions.Fraction(1, RATE)
#: Frames the track may hold for aiortc's sender (more: the oldest go).
_TRACK_DEPTH = 3
#: Largest SDP offer a page may send (bytes).
MAX_SDP = 16_000


class SwitchTrack(MediaStreamTrack):
    """The switch's audio for the browser, one frame per send-clock slot: an encoded
    packet once `to_browser` is set (the answer chose a codec of `phone_codec.CODECS`),
    an 8 kHz frame for aiortc to encode once `frames` is set (any other codec), nothing
    before (the leg's jitter buffer still moves on)."""

    kind = "audio"

    def __init__(self, leg: SwitchLeg) -> None:
        super().__init__()
        self._leg = leg
        self._frames: asyncio.Queue[av.AudioFrame | av.Packet[Any]] = asyncio.Queue(_TRACK_DEPTH)
        self.to_browser: ToBrowser | None = None
        self.frames = False
        self._pts = 0
        self._silence = np.zeros(FRAME, np.int16)
        self._clock: SendClock | None = SendClock.of(asyncio.get_running_loop())
        self._clock.add(self)

    def tick(self) -> None:
        leg = self._leg
        payload = leg.heard.pop()
        out: av.AudioFrame | av.Packet[Any]
        if self.to_browser is not None:
            out = av.Packet(self.to_browser.packet(payload, leg.codec))
        elif self.frames:
            samples = leg.decode(payload) if payload is not None else self._silence
            out = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            out.sample_rate = RATE
        else:
            return
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
        if self.to_browser is not None:
            self.to_browser.close()
        super().stop()


#: The one address aioice gathers host candidates on (see `gather_on`), if any.
_PINNED: list[str] = []


def gather_on(host: str) -> None:
    """Make aioice gather host candidates on the console's address only, when the console
    listens on one: aioice gathers on every interface but loopback, and checks pairs from
    all of them, whatever the answer offered; a console on 127.0.0.1 (the default, and
    every test) would have no candidate at all on its own address. aioice has no setting
    for this, so its `get_host_addresses` is wrapped once, process-wide (one console a
    process); a console on 0.0.0.0 or :: gathers as aioice does."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if address.is_unspecified:
        return
    if not _PINNED:

        def pinned(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [h for h in _PINNED if (use_ipv6 if ":" in h else use_ipv4)]

        aioice.ice.get_host_addresses = pinned
    _PINNED[:] = [str(address)]


def pin_candidates(sdp: str, host: str) -> str:
    """The answer with only the ICE candidates on `host` (the console's address), when
    the console listens on one address and some candidate is on it (`gather_on` makes
    them the only ones); else unchanged (a console on 0.0.0.0 offers every interface's)."""
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


class _Tap:
    """Stands in for the queue between an aiortc `RTCRtpReceiver` and its decoder thread:
    `put` (called by the receiver on the loop, with `(codec, JitterFrame)`) hands the
    encoded payload to `sink` at once; `get` (the idle thread's) returns None, the
    thread's signal to end, only once the receiver puts None (it stops)."""

    def __init__(self, sink: Callable[[RTCRtpCodecParameters, bytes], None]) -> None:
        self._sink = sink
        self._ended = threading.Event()

    def put(self, item: tuple[RTCRtpCodecParameters, Any] | None) -> None:
        if item is None:
            self._ended.set()
        else:
            codec, frame = item
            self._sink(codec, frame.data)

    def get(self) -> None:
        self._ended.wait()


_QUEUE = "_RTCRtpReceiver__decoder_queue"  # aiortc's private name for that queue


def install_tap(receiver: Any, sink: Callable[[RTCRtpCodecParameters, bytes], None]) -> bool:
    """Make `receiver` (an aiortc `RTCRtpReceiver` not yet started) give its encoded
    payloads to `sink` on the loop instead of decoding them in its thread; False (and
    nothing changed) when this aiortc has no such queue: decoded frames then come as
    aiortc makes them."""
    if not isinstance(getattr(receiver, _QUEUE, None), queue.Queue):
        return False
    setattr(receiver, _QUEUE, _Tap(sink))
    return True


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
        gather_on(host)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = SwitchTrack(leg)
        self.pc.addTrack(self.track)
        self._pump: asyncio.Task[None] | None = None
        #: The browser's payloads to the switch's (set at the first payload).
        self._from: FromBrowser | None = None
        self._from_mime = ""
        #: Decoded audio (aiortc's decoder) to 8 kHz, for other codecs (`_say_frames`).
        self._resampler: av.AudioResampler | None = None
        self._decoder: Any = None
        self._pending = np.zeros(0, np.int16)
        #: Whether the browser's payloads come to `_heard` (else frames to the track).
        self.tapped = False
        #: Whether the browser's audio goes to the switch (False while the call is held).
        self.forwarding = True
        self.failed = asyncio.Event()
        self.connected = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._pump is None and not self.tapped:
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
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio" and not self.tapped:
                self.tapped = install_tap(transceiver.receiver, self._heard)
        if not self.tapped:
            log.warning("%s: aiortc's receiver cannot be tapped: decoding its way", self.name)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = pin_candidates(str(self.pc.localDescription.sdp), self.host)
        chosen = _first_codec(sdp)
        codec = codec_of(f"audio/{chosen}") if chosen is not None else None
        if codec is not None and (codec != "opus" or opus_available()):
            self.track.to_browser = ToBrowser(codec)
        else:
            self.track.frames = True  # aiortc encodes (G.722; Opus without libopus)
        log.info("%s: the browser talks %s", self.name, chosen)
        return sdp

    @property
    def browser_codec(self) -> str | None:
        """The codec of the browser's payloads taken so far ("opus", "pcmu", "pcma")."""
        return self._from.codec if self._from is not None else None

    def _heard(self, codec: RTCRtpCodecParameters, payload: bytes) -> None:
        """One payload from the browser (`_Tap`, on the loop): to the switch's law."""
        law = self.leg.codec
        if not self.forwarding or law is None or not payload:
            return
        try:
            if self._from is None or codec.mimeType != self._from_mime:
                name = codec_of(codec.mimeType)
                if name is None or (name == "opus" and not opus_available()):
                    self._decode_theirs(codec, payload)
                    return
                if self._from is not None:
                    self._from.close()
                self._from, self._from_mime = FromBrowser(name), codec.mimeType
            for out in self._from.feed(payload, law):
                self.leg.say_payload(out)
        except (MediaError, av.FFmpegError) as exc:  # the packet path never raises
            log.debug("%s: browser payload dropped: %s", self.name, exc)

    def _decode_theirs(self, codec: RTCRtpCodecParameters, payload: bytes) -> None:
        """A codec `phone_codec` does not handle: aiortc's decoder, then `_say_frames`."""
        if self._decoder is None or self._decoder[0] != codec.mimeType:
            self._decoder = (codec.mimeType, get_decoder(codec))
        frames = self._decoder[1].decode(JitterFrame(data=payload, timestamp=0))
        self._say_frames(frames)

    def _say_frames(self, frames: list[Any]) -> None:
        """Decoded frames (any rate and layout) to the switch, 8 kHz by libswresample."""
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in frames:
            for out in self._resampler.resample(frame):
                self._pending = np.concatenate([self._pending, out.to_ndarray().reshape(-1)])
        while len(self._pending) >= FRAME:
            if self.forwarding:
                self.leg.say(self._pending[:FRAME])
            self._pending = self._pending[FRAME:]

    async def _from_browser(self, track: MediaStreamTrack) -> None:
        """Decoded frames from aiortc's track (the receiver could not be tapped)."""
        with contextlib.suppress(MediaStreamError):
            while True:
                self._say_frames([await track.recv()])

    async def close(self) -> None:
        self.track.stop()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.pc.close()
        if self._from is not None:
            self._from.close()
