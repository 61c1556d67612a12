"""The G.711 RTP stream between a browser phone's gateway and the switch.

A browser phone's call has two media halves: WebRTC to the browser (acd.web.phone_webrtc)
and this plain RTP stream to the switch, where the call is just another phone's. This
half:

- sends one stream for the call's life (one SSRC; sequence +1 and timestamp +160 a
  packet), one packet every 20 ms on the loop's send clock (`media.send_clock`): the
  browser's latest frame (`say`, bounded: older frames are dropped so latency cannot
  grow), else G.711 silence; nothing while the call is held by us (`sending` False);
- sends DTMF as RFC 4733 telephone-events in that same stream when the switch offered
  them (audio is suppressed while a digit is sent, RFC 4733 §2.5.1.2), else nothing;
- takes RTP only from the address the switch's SDP names (loopback: strict) and keeps
  its G.711 payloads in a jitter buffer (`media.jitter`) for the WebRTC side to take one
  per slot (`heard`, with `codec` and `decode`): decoded for the browser, or passed as
  they are when the browser talks the same G.711 law.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import socket
import struct

import numpy as np
import numpy.typing as npt

from media.endpoint import FRAME
from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.jitter import JitterBuffer
from media.ports import PortAllocator
from media.rtp import RtpHeader, payload_offset
from media.sdp import AudioStream
from media.send_clock import SendClock
from media.telephone_event import DigitSender, TelephoneEventError

__all__ = ["DEPTH", "SwitchLeg"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
#: Browser frames waiting for a slot (more: the oldest go; the browser's clock drifts).
DEPTH = 3
Frame = npt.NDArray[np.int16]


class SwitchLeg:
    """One call's RTP toward the switch (see the module doc).

    Raises (constructor): PortsExhaustedError when no port pair is free.
    """

    def __init__(self, ports: PortAllocator, name: str) -> None:
        self.name = name
        self._ports = ports
        self._pair = ports.allocate()
        self._sock: socket.socket = self._pair.rtp
        self._loop = asyncio.get_running_loop()
        self.stream: AudioStream | None = None
        self.sending = True
        self.closed = False
        self._encode = ulaw_encode
        self._decode = ulaw_decode
        self._silence = b"\xff" * FRAME
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._out: collections.deque[bytes] = collections.deque(maxlen=DEPTH)
        #: RFC 4733 keys laid onto the send slots (the same scheduler as MediaEndpoint's).
        self._dtmf = DigitSender()
        self.heard = JitterBuffer[bytes](prefill=2, limit=8)
        self.sent_packets = 0
        self.received_packets = 0
        self._loop.add_reader(self._sock.fileno(), self._readable)
        self._loop.add_reader(self._pair.rtcp.fileno(), self._drain_rtcp)
        self._clock: SendClock | None = SendClock.of(self._loop)
        self._clock.add(self)

    @property
    def host(self) -> str:
        return self._pair.host

    @property
    def port(self) -> int:
        return self._pair.rtp_port

    def set_remote(self, stream: AudioStream) -> None:
        """The switch's side of the call: where it listens, the codec chosen.

        Raises: MediaError for a codec other than PCMU or PCMA.
        """
        key = stream.codec.key
        if key == "pcmu":
            self._encode, self._decode = ulaw_encode, ulaw_decode
        elif key == "pcma":
            self._encode, self._decode = alaw_encode, alaw_decode
        else:
            raise MediaError(f"{self.name}: the switch chose {stream.codec.name}, not G.711")
        self._silence = self._encode(np.zeros(FRAME, np.int16)).tobytes()
        self.stream = stream

    @property
    def codec(self) -> str | None:
        """The G.711 law agreed with the switch ("pcmu", "pcma"); None before."""
        return self.stream.codec.key if self.stream is not None else None

    def decode(self, payload: bytes) -> Frame:
        """A payload of `heard` as 8 kHz samples."""
        return self._decode(payload)

    # -- toward the switch -----------------------------------------------------------

    def say(self, samples: Frame) -> None:
        """One 20 ms frame (160 samples at 8 kHz) from the browser, sent in the next slot."""
        if not self.closed and self.stream is not None:
            self._out.append(self._encode(samples).tobytes())

    def say_payload(self, payload: bytes) -> None:
        """One 20 ms frame from the browser already in the switch's law (`codec`)."""
        if not self.closed and self.stream is not None:
            self._out.append(payload)

    def send_digits(self, digits: str) -> bool:
        """Queue DTMF keys as RFC 4733 events; False when the switch did not offer them."""
        if self.stream is None or self.stream.telephone_event is None:
            return False
        try:
            self._dtmf.push(digits)
        except TelephoneEventError:
            return False
        return True

    def tick(self) -> None:
        """The send clock's slot: one packet (a digit's event, else audio or silence)."""
        if self.closed:
            return
        stream = self.stream
        ts = self._ts
        self._ts = (ts + FRAME) & 0xFFFFFFFF
        payload = self._out.popleft() if self._out else self._silence
        if stream is None or not self.sending:
            return
        event = self._dtmf.slot(ts) if stream.telephone_event is not None else None
        if event is not None:  # a digit's slot: its packet, or nothing (no audio beside it)
            if event.payload is not None and stream.telephone_event is not None:
                self._send(
                    stream.telephone_event, event.marker, event.timestamp, event.payload, stream
                )
            return
        self._send(stream.codec.payload_type, False, ts, payload, stream)

    def _send(self, pt: int, marker: bool, ts: int, payload: bytes, stream: AudioStream) -> None:
        header = _HEADER.pack(0x80, (0x80 if marker else 0) | pt, self._seq, ts, self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._sock.sendto(header + payload, (stream.host, stream.port))
            self.sent_packets += 1
        except OSError as exc:
            log.debug("%s: RTP send error %s", self.name, exc)

    # -- from the switch -------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data, source = self._sock.recvfrom(2048)
        except OSError:
            return
        stream = self.stream
        if stream is None or (str(source[0]), int(source[1])) != (stream.host, stream.port):
            return  # only the switch's own media address (RTP on loopback)
        try:
            header = RtpHeader.parse(data)
            body = data[payload_offset(data) :]
        except MediaError:
            return
        if header.payload_type != stream.codec.payload_type or len(body) != FRAME:
            return
        self.received_packets += 1
        self.heard.push(header.sequence, body)

    def _drain_rtcp(self) -> None:
        with contextlib.suppress(OSError):
            self._pair.rtcp.recvfrom(2048)

    def close(self) -> None:
        """Stop sending and receiving; give the ports back."""
        if self.closed:
            return
        self.closed = True
        if self._clock is not None:
            self._clock.discard(self)
            self._clock = None
        for sock in (self._sock, self._pair.rtcp):
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
        self._ports.release(self._pair)
