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

Whom it listens to and talks to (`SourceLatch`, the relay's rules, issue 10 §5):

- The address the phone's SDP names is trusted at once, and for good ("strict"), as
  soon as it sends a packet.
- Until then, and only when the SDP address cannot be the phone's (it differs from
  the address its SIP comes from: a phone behind NAT), the first source that sends
  `LATCH_PACKETS` packets in a row with one SSRC is latched, until the SDP address
  speaks.
- Packets of any other source are dropped before they are read: no digits, no
  audio, no recording from them (one log line per endpoint, not one per packet).
- Nothing is sent to an address that has not sent us media first, except the SDP
  address when it is the phone's signalling address too.

The price: a phone whose SDP names its signalling address but whose RTP comes from
another port (asymmetric RTP, or STUN behind a symmetric NAT) is heard by nobody
here; it still hears the prompts, and SIP INFO digits still work.

What it sends: one RTP stream for the endpoint's life (one SSRC; sequence numbers +1
and timestamps +160 a packet), every 20 ms by the loop's clock, whatever plays —
a prompt, music, or G.711 silence when nothing does (issue 9 §8: a phone hangs up
on a call that sends no RTP, Linphone after 30 s).

The other way (`watch_silence`): a phone that sent neither RTP nor RTCP for `timeout`
seconds (`hold_timeout` while it holds the call) is gone, as Asterisk's rtptimeout
judges; the owner is told once and hangs the call up. RTCP counts as life, so a
phone with silence suppression that still reports is not cut. Checked a few times a
timeout by a timer of its own, never on the packet path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.dtmf import DtmfDetector
from media.errors import MediaError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.mixer import Law, Role
from media.mixer_clock import MixerClock
from media.ports import PortAllocator, PortPair
from media.rtp import RtpHeader, payload_offset
from media.sdp import AudioStream
from media.send_clock import SendClock
from media.telephone_event import DigitSender, EventSlot, TelephoneEventReceiver

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC

RATE = 8000
FRAME = 160  # samples per 20 ms packet
FRAME_SECONDS = FRAME / RATE
#: The longest gap in a phone's RTP timestamps that frame listeners hear as silence (2 s);
#: a longer jump starts a new stream's time.
MAX_SKIPPED_FRAMES = 100
_SILENT_FRAME = np.zeros(FRAME, np.int16)
_SILENT_FRAME.flags.writeable = False
#: Frames from a joined endpoint waiting for this one's next 20 ms slot (older ones are
#: dropped: the two phones' clocks drift, latency must not grow).
RELAY_DEPTH = 3

#: RMS level (int16 scale) under which a 20 ms frame counts as silence when recording:
#: about -48 dBFS, under any voice yet over the idle noise of a phone line.
SILENCE_RMS = 128.0

Encoder = Callable[[npt.ArrayLike], npt.NDArray[np.uint8]]
Decoder = Callable[..., npt.NDArray[np.int16]]
_CODECS: dict[str, tuple[Encoder, Decoder]] = {
    "pcmu": (ulaw_encode, ulaw_decode),
    "pcma": (alaw_encode, alaw_decode),
}
_LAWS: dict[Encoder, str] = {ulaw_encode: "pcmu", alaw_encode: "pcma"}


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


#: Packets in a row, from one source with one SSRC, that latch it when the SDP address
#: cannot be trusted (rtpengine and Asterisk latch on a few consistent packets too).
LATCH_PACKETS = 3

#: Samples of a prompt encoded at once (1 s).
ENCODE_CHUNK = RATE

Address = tuple[str, int]


class SourceLatch:
    """Which source's RTP an endpoint takes, and where it may send (pure; see the
    module docstring for the rules).

    `expected` is the address the SDP names (None: none usable); `signalling_host` the
    address the phone's SIP comes from (None: unknown, the SDP address is trusted).
    """

    def __init__(self, expected: Address | None, signalling_host: str | None) -> None:
        self.expected = expected
        #: Whether the SDP address may be sent to before it has sent anything.
        self.trusted = expected is not None and (
            signalling_host is None or expected[0] == signalling_host
        )
        self.latched: Address | None = None
        self.strict = False  # latched to the SDP address: nobody else, ever
        self._candidate: tuple[Address, int] | None = None
        self._run = 0

    @property
    def destination(self) -> Address | None:
        """Where our RTP goes now: the latched source, else the trusted SDP address."""
        if self.latched is not None:
            return self.latched
        return self.expected if self.trusted else None

    def admit(self, source: Address, ssrc: int) -> bool:
        """Whether a packet from `source` with `ssrc` is the phone's (and may latch it)."""
        if source == self.latched:
            return True
        if source == self.expected:
            self.latched, self.strict = source, True
            return True
        if self.strict or self.trusted or self.latched is not None:
            return False
        # A phone behind NAT: the first source with a consistent SSRC, until the SDP
        # address speaks.
        if self._candidate == (source, ssrc):
            self._run += 1
        else:
            self._candidate, self._run = (source, ssrc), 1
        if self._run >= LATCH_PACKETS:
            self.latched = source
            self._candidate = None
            return True
        return False


class _Playback:
    """Audio being played: the frames left, and the future `play` waits on."""

    def __init__(self, audio: npt.NDArray[np.int16], stop_on_digit: bool) -> None:
        self.audio = audio
        self.index = 0
        self.stop_on_digit = stop_on_digit
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # Encoded a second at a time (one numpy call per 50 frames, none over a whole
        # long message at once); again from the current frame if the codec changes.
        self._encoder: Encoder | None = None
        self._encoded = b""
        self._encoded_from = 0

    def next_payload(self, encode: Encoder) -> bytes:
        """The next frame, encoded with `encode` (G.711: one byte a sample)."""
        start = self.index
        self.index += FRAME
        end = self._encoded_from + len(self._encoded)
        if encode is not self._encoder or not self._encoded_from <= start < end:
            self._encoder = encode
            self._encoded_from = start
            self._encoded = encode(self.audio[start : start + ENCODE_CHUNK]).tobytes()
        offset = start - self._encoded_from
        return self._encoded[offset : offset + FRAME]

    def finish(self, played: bool) -> None:
        if not self.done.done():
            self.done.set_result(played)


class _EncodedLoop(_Playback):
    """A loop of pre-encoded frames in each law (it never ends by itself)."""

    def __init__(self, frames: Callable[[str], bytes]) -> None:
        super().__init__(np.zeros(0, np.int16), False)
        self._frames = frames
        self._offset = 0
        self.index = -1  # never "played to the end"

    def next_payload(self, encode: Encoder) -> bytes:
        loop = self._frames(_LAWS.get(encode, "pcmu"))
        if self._offset + FRAME > len(loop):
            self._offset = 0
        payload = loop[self._offset : self._offset + FRAME]
        self._offset += FRAME
        return payload


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
        self.stream: AudioStream | None = None
        #: Whether the stream goes out (False while the phone holds the call).
        self.sending = True
        self.latch = SourceLatch(None, None)
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self._events = TelephoneEventReceiver(RATE)
        self._inband: DtmfDetector | None = None
        self._encode: Encoder = ulaw_encode
        self._decode: Decoder = ulaw_decode
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self.received_packets = 0
        self.rtcp_packets = 0
        self.refused_packets = 0
        self.sent_packets = 0
        self.closed = False
        self._capture: _Capture | None = None
        self._playing: _Playback | None = None
        self._silence: bytes = b""
        self._closed_event = asyncio.Event()
        #: Called with every digit heard (RFC 4733, SIP INFO, in band), besides `digits`.
        self.digit_listeners: list[Callable[[str], None]] = []
        #: Called with every decoded 20 ms frame the phone sends (analysers, `audio()`),
        #: and with a silent frame for each 20 ms the stream's RTP timestamps skipped
        #: (packets lost, or the phone's silence suppression): media time, not arrival.
        self.frame_listeners: list[Callable[[npt.NDArray[np.int16]], None]] = []
        self._heard_until: tuple[int, int] | None = None  # (SSRC, RTP time the last ended)
        #: The endpoint whose phone hears this one's (`join`); None: not joined.
        self.joined: MediaEndpoint | None = None
        self._relayed: collections.deque[bytes] = collections.deque(maxlen=RELAY_DEPTH)
        #: The mixer clock whose room this endpoint is in (`mix`); None: not mixed.
        self.mixer: MixerClock | None = None
        self._mixed: collections.deque[bytes] = collections.deque(maxlen=RELAY_DEPTH)
        self._codec_key = "pcmu"
        self._loop.add_reader(self._rtp.fileno(), self._readable)
        self._loop.add_reader(self._rtcp.fileno(), self._drain_rtcp)
        # The sender: one frame every 20 ms for the endpoint's life, ticked by the loop's
        # one send clock with every other endpoint (close takes it off).
        self._clock: SendClock | None = SendClock.of(self._loop)
        self._clock.add(self)
        self._silence_watch: _SilenceWatch | None = None
        #: Digits being sent as RFC 4733 events (`send_digits`); None until the first.
        self._digits_out: DigitSender | None = None

    @property
    def host(self) -> str:
        return self._pair.host

    @property
    def port(self) -> int:
        return self._pair.rtp_port

    @property
    def remote(self) -> Address | None:
        """Where the switch's RTP goes now (None: nowhere yet, see `SourceLatch`)."""
        return self.latch.destination

    def set_remote(
        self, stream: AudioStream, *, signalling_host: str | None = None, send: bool = True
    ) -> None:
        """Where the phone listens and which codec the call agreed on; `signalling_host`
        is where the phone's SIP comes from (the SDP address is trusted before it has
        sent anything only when it is that host). `send` False: the phone holds the
        call (our side is recvonly or inactive), so nothing is sent until it resumes.

        Raises: MediaError for a codec other than PCMU or PCMA.
        """
        codec = _CODECS.get(stream.codec.key)
        if codec is None:
            raise MediaError(f"cannot terminate {stream.codec.name} media (PCMU/PCMA only)")
        self._encode, self._decode = codec
        changed = stream.codec.key != self._codec_key
        self._codec_key = stream.codec.key
        if changed and self.mixer is not None:
            self._rejoin_mixer()
        self._silence = self._encode(np.zeros(FRAME, np.int16)).tobytes()
        self.stream = stream
        self.sending = send
        expected = (stream.host, stream.port) if stream.port else None
        if expected != self.latch.expected:
            self.latch = SourceLatch(expected, signalling_host)
        # RFC 4733 when negotiated, else listen for tones in the audio itself.
        self._inband = None if stream.telephone_event is not None else DtmfDetector()

    def push_digit(self, digit: str) -> None:
        """A digit that arrived outside RTP (SIP INFO)."""
        self._digit(digit)

    def _digit(self, digit: str) -> None:
        self.digits.put_nowait(digit)
        for listener in list(self.digit_listeners):
            try:
                listener(digit)
            except Exception:
                log.exception("%s: digit listener failed", self.name)

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
        try:
            header = RtpHeader.parse(data)
            body = data[payload_offset(data) :]
        except MediaError:
            return
        address = (str(source[0]), int(source[1]))
        latched = self.latch.latched
        if not self.latch.admit(address, header.ssrc):
            self._refused(address)
            return
        if self.latch.latched != latched:
            log.info("%s: RTP latched to %s:%s", self.name, *address)
        self.received_packets += 1
        if stream.telephone_event is not None and header.payload_type == stream.telephone_event:
            try:
                for got in self._events.feed(body, header.timestamp, header.marker):
                    self._digit(got.digit)
            except MediaError as exc:
                log.debug("%s: bad telephone-event: %s", self.name, exc)
        elif header.payload_type == stream.codec.payload_type:
            joined = self.joined
            if joined is not None:
                joined.relay_payload(body, self._codec_key, self._decode)
            elif self.mixer is not None:
                self.mixer.feed(self, body)
            if self._inband is None and self._capture is None and not self.frame_listeners:
                return
            audio = self._decode(body)
            if self._capture is not None:
                self._capture.feed(audio)
            if self.frame_listeners:
                skipped = self._skipped_frames(header, len(audio))
                for listener in list(self.frame_listeners):
                    for _ in range(skipped):
                        listener(_SILENT_FRAME)
                    listener(audio)
            if self._inband is not None:
                for found in self._inband.feed(audio):
                    self._digit(found.digit)

    def _skipped_frames(self, header: RtpHeader, samples: int) -> int:
        """How many 20 ms frames the stream skipped before this packet: its RTP timestamp
        is ahead of where the last packet's audio ended (RFC 3550 §5.1: timestamps are
        the sampling instants, so they jump over lost packets and suppressed silence).
        0 for the first packet, a new SSRC, a late or repeated packet, or a jump over
        `MAX_SKIPPED_FRAMES` (a new stream). A loop that reads late skips nothing."""
        last = self._heard_until
        end = (header.timestamp + samples) & 0xFFFFFFFF
        if last is None or last[0] != header.ssrc:
            self._heard_until = (header.ssrc, end)
            return 0
        ahead = (header.timestamp - last[1]) & 0xFFFFFFFF
        if ahead >= 1 << 31:  # behind where we were: late or repeated
            return 0
        self._heard_until = (header.ssrc, end)
        frames = ahead // FRAME
        return frames if frames <= MAX_SKIPPED_FRAMES else 0

    def _refused(self, address: Address) -> None:
        self.refused_packets += 1
        if self.refused_packets == 1:
            log.warning(
                "%s: RTP from %s:%s refused (not the phone's media source; logged once)",
                self.name,
                *address,
            )

    def _drain_rtcp(self) -> None:
        with contextlib.suppress(OSError):
            self._rtcp.recvfrom(2048)
            self.rtcp_packets += 1

    # -- a phone gone silent ---------------------------------------------------------

    def watch_silence(
        self, timeout: float, hold_timeout: float | None, on_silent: Callable[[], None]
    ) -> None:
        """Call `on_silent` once when the phone has sent nothing (RTP or RTCP, from any
        source) for `timeout` seconds, or `hold_timeout` while it holds the call (None:
        never while held). Counted from now; a second call replaces the watch."""
        if self._silence_watch is not None:
            self._silence_watch.cancel()
        if self.closed:
            return
        watch = _SilenceWatch(self, timeout, hold_timeout, on_silent)
        self._silence_watch = watch
        watch.arm()

    def _heard(self) -> int:
        return self.received_packets + self.rtcp_packets + self.refused_packets

    # -- sending -------------------------------------------------------------------

    def tick(self) -> None:
        """Send this 20 ms slot's frame (the playback's, else silence; a digit's
        telephone-event while `send_digits` sends one): the send clock's call
        (`media.send_clock`), once a slot."""
        if self.closed:
            return
        payload, marker = self._frame()
        sender = self._digits_out
        if sender is not None:
            event = sender.slot(self._ts)
            if event is not None:
                self._send_event(event)
                return
        self._send(payload, marker)

    def send_digits(self, digits: str) -> bool:
        """Send `digits` to the phone as RFC 4733 telephone-events in this endpoint's one
        stream, 160 ms each (`media.telephone_event.DigitSender`: audio pauses while a
        digit goes).
        False (nothing queued) when the call did not negotiate telephone-event.

        Raises: TelephoneEventError for a character that is no DTMF digit or too many
            digits queued.
        """
        stream = self.stream
        if self.closed or stream is None or stream.telephone_event is None:
            return False
        if self._digits_out is None:
            self._digits_out = DigitSender()
        self._digits_out.push(digits)
        return True

    @property
    def digits_sent(self) -> str:
        """The digits `send_digits` has finished sending (end packets gone), in order."""
        return "".join(self._digits_out.sent) if self._digits_out is not None else ""

    def _send_event(self, event: EventSlot) -> None:
        stream, remote = self.stream, self.latch.destination
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF
        if event.payload is None or stream is None or remote is None or not self.sending:
            return
        if stream.telephone_event is None:
            return  # a re-INVITE took telephone-event away mid-digit
        second = (0x80 if event.marker else 0) | stream.telephone_event
        header = _HEADER.pack(0x80, second, self._seq, event.timestamp, self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._rtp.sendto(header + event.payload, remote)
            self.sent_packets += 1
        except OSError as exc:
            log.debug("%s: RTP send error %s", self.name, exc)

    def _frame(self) -> tuple[bytes | None, bool]:
        """The payload of the next frame (None: silence) and its marker bit."""
        playing = self._playing
        if playing is None:
            if self._relayed:
                return self._relayed.popleft(), False
            if self._mixed:
                return self._mixed.popleft(), False
            return None, False
        if playing.stop_on_digit and not self.digits.empty():
            self._playing = None
            playing.finish(False)
            return None, False
        if playing.index >= len(playing.audio):  # its last frame has had its 20 ms
            self._playing = None
            playing.finish(True)
            return None, False
        first = playing.index == 0
        return playing.next_payload(self._encode), first

    def _send(self, payload: bytes | None, marker: bool) -> None:
        stream, remote = self.stream, self.latch.destination
        ts = self._ts
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF  # time goes on whether sent or not
        if stream is None or remote is None or not self.sending:
            return
        # The fixed header packed directly (RFC 3550 §5.1: version 2, no padding,
        # extension or CSRC): the same bytes as RtpHeader's, an object fewer a packet.
        second = (0x80 if marker else 0) | stream.codec.payload_type
        header = _HEADER.pack(0x80, second, self._seq, ts, self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._rtp.sendto(header + (payload or self._silence), remote)
            self.sent_packets += 1
        except OSError as exc:
            log.debug("%s: RTP send error %s", self.name, exc)

    # -- joined to another endpoint (two calls of the switch talking) ---------------

    def join(self, other: MediaEndpoint) -> None:
        """Let each phone hear the other: what one sends goes out in the other's own stream
        (its SSRC, sequence and clock), transcoded only when the two G.711 laws differ. A
        prompt played to either side takes over that side while it plays."""
        if self.joined is not None or other.joined is not None:
            raise MediaError(f"{self.name}: already joined")
        self.joined, other.joined = other, self

    def unjoin(self) -> None:
        """Undo `join` (both sides): each phone hears the switch's own stream again."""
        other = self.joined
        self.joined = None
        self._relayed.clear()
        if other is not None and other.joined is self:
            other.joined = None
            other._relayed.clear()

    def relay_payload(self, body: bytes, key: str, decode: Decoder) -> None:
        """A frame the joined endpoint received (codec `key`): send it in the next slot."""
        if self.closed:
            return
        if key != self._codec_key:
            body = self._encode(decode(body)).tobytes()
        self._relayed.append(body)

    # -- mixed (a conference room of the switch-wide mixer) ---------------------------

    def mix(
        self,
        clock: MixerClock,
        room: object,
        role: Role = Role.SPEAK,
        *,
        whisper_to: MediaEndpoint | None = None,
    ) -> None:
        """Put this call in `room` of `clock`: what the phone sends (G.711 audio only; its
        telephone-events stay digits) is fed to the mixer, and the room's mix for it goes
        out in this endpoint's own stream (its SSRC, sequence and clock), so the phone
        sees no change and no re-INVITE. A prompt played takes over while it plays.

        Raises: MediaError when joined to another endpoint or mixed already, or when
            the mixer refuses (a whisper without a target...).
        """
        if self.closed:
            raise MediaError(f"{self.name}: closed")
        if self.joined is not None or self.mixer is not None:
            raise MediaError(f"{self.name}: already joined or mixed")
        law = Law.PCMA if self._codec_key == "pcma" else Law.PCMU
        clock.join(room, self, law, self._mixed.append, role, whisper_to=whisper_to)
        self.mixer = clock

    def set_mix_role(self, role: Role, whisper_to: MediaEndpoint | None = None) -> None:
        """Change this endpoint's role in its room. Raises: MediaError when not mixed."""
        if self.mixer is None:
            raise MediaError(f"{self.name}: not in a room")
        self.mixer.mixer.set_role(self, role, whisper_to)

    def _rejoin_mixer(self) -> None:
        """The call changed law (a re-INVITE): the mixer encodes and decodes it in the new
        one from the next tick, role and gains kept (whisperers to it still reach it)."""
        clock = self.mixer
        info = clock.mixer.party(self) if clock is not None else None
        self.unmix()
        if clock is None or info is None:
            return
        law = Law.PCMA if self._codec_key == "pcma" else Law.PCMU
        clock.join(
            info.room,
            self,
            law,
            self._mixed.append,
            info.role,
            whisper_to=info.whisper_to,
            talk_gain=info.talk_gain,
            listen_gain=info.listen_gain,
        )
        self.mixer = clock

    def unmix(self) -> None:
        """Leave the room (idempotent): the phone hears the switch's own stream again."""
        clock, self.mixer = self.mixer, None
        self._mixed.clear()
        if clock is not None:
            clock.leave(self)

    async def loop_encoded(self, frames: Callable[[str], bytes]) -> None:
        """Play pre-encoded audio (e.g. music on hold, `frames(codec_key)` gives the whole
        loop in that law) round and round, no encoding per frame; returns when another
        `play` takes over or the endpoint closes, and stops when cancelled."""
        if self.closed:
            return
        if self._playing is not None:
            self._playing.finish(False)
        playback = self._playing = _EncodedLoop(frames)
        try:
            await playback.done
        finally:
            if self._playing is playback:
                self._playing = None

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        """Send 8 kHz int16 audio in real time, 20 ms a packet, in the endpoint's one
        stream (silence goes on around it).

        Returns True when it played to the end, False when a digit arrived first
        (with `stop_on_digit`: a caller pressing a key during a prompt), another
        `play` took over, or the endpoint closed (the call ended: at once, not at the
        end of the audio). The digit stays queued for `collect_digits`.
        """
        if self.closed:
            return False
        audio = np.asarray(samples, dtype=np.int16)
        if len(audio) % FRAME:
            audio = np.concatenate([audio, np.zeros(FRAME - len(audio) % FRAME, np.int16)])
        if self._playing is not None:
            self._playing.finish(False)
        playback = self._playing = _Playback(audio, stop_on_digit)
        try:
            return await playback.done
        finally:
            if self._playing is playback:
                self._playing = None

    async def _next_digit(self, timeout: float) -> str | None:
        """The next digit within `timeout`; None on timeout or when the endpoint closes."""
        if self.closed:
            return None
        key = asyncio.ensure_future(self.digits.get())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait(
                {key, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closed.cancel()
            if not key.done():
                key.cancel()
        return key.result() if key in done else None

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        """Digits until `max_digits`, the terminator (not included), a timeout, or the
        endpoint closing (the call ended): `timeout` for the first digit,
        `inter_digit_timeout` (default the same) after."""
        got = ""
        wait = timeout
        while len(got) < max_digits:
            digit = await self._next_digit(wait)
            if digit is None:
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
        self._stop()
        self._allocator.release(self._pair)

    def detach(self) -> tuple[PortPair, tuple[int, int, int]]:
        """Stop, keeping the ports open for a new owner (a relay leg: the call's one media
        anchor goes on); returns them with the stream the phone heard so far (SSRC, last
        sequence number, last timestamp) so that it can go on. The endpoint is closed.

        Raises: MediaError when the endpoint is closed already.
        """
        if self.closed:
            raise MediaError(f"{self.name}: closed, nothing to hand over")
        self._stop()
        last = ((self._seq - 1) & 0xFFFF, (self._ts - FRAME) & 0xFFFFFFFF)
        return self._pair, (self._ssrc, *last)

    def _stop(self) -> None:
        self.closed = True
        if self._silence_watch is not None:
            self._silence_watch.cancel()
            self._silence_watch = None
        self.unjoin()
        self.unmix()
        self._closed_event.set()
        if self._clock is not None:
            self._clock.discard(self)
            self._clock = None
        if self._playing is not None:
            self._playing.finish(False)
            self._playing = None
        for sock in (self._rtp, self._rtcp):
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())


class _SilenceWatch:
    """`MediaEndpoint.watch_silence`: looks at the packet counters every quarter of the
    limit (at most every 5 s), so the packet path does no work for it."""

    def __init__(
        self,
        media: MediaEndpoint,
        timeout: float,
        hold_timeout: float | None,
        on_silent: Callable[[], None],
    ) -> None:
        self.media = media
        self.timeout, self.hold_timeout = timeout, hold_timeout
        self.on_silent = on_silent
        self.count = media._heard()
        self.heard_at = media._loop.time()
        self.held = not media.sending
        self.handle: asyncio.TimerHandle | None = None

    def limit(self) -> float | None:
        return self.timeout if self.media.sending else self.hold_timeout

    def arm(self) -> None:
        limit = self.limit()
        step = min(5.0, (limit if limit is not None else self.timeout) / 4)
        self.handle = self.media._loop.call_later(max(step, 0.05), self.check)

    def check(self) -> None:
        self.handle = None
        media = self.media
        if media.closed:
            return
        now = media._loop.time()
        count = media._heard()
        held = not media.sending
        if count != self.count or held != self.held:  # heard, or hold began/ended
            self.count, self.heard_at, self.held = count, now, held
        limit = self.limit()
        if limit is not None and now - self.heard_at >= limit:
            log.info("%s: no RTP or RTCP from the phone for %.0f s", media.name, limit)
            media._silence_watch = None
            self.on_silent()
            return
        self.arm()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def tone(frequency: float, seconds: float, level: float = 8000.0) -> npt.NDArray[np.int16]:
    """A sine tone at 8 kHz (beeps, and prompts' stand-in where no synthesizer exists)."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
