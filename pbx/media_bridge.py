"""Media anchoring for a bridged call: SDP rewriting around one `RelaySession`.

Leg "a" faces the caller, leg "b" the callee. The caller's offer goes to the callee
with the relay's b-side address (and the other G.711 law added, so a PCMU-only
caller can reach a PCMA-only phone: the relay transcodes). The callee's answer
decides the codec; the caller gets an RFC 3264 answer to its own offer, at the
relay's a-side address, naming the callee's codec where it can and the other
G.711 law otherwise. Offers inside the dialog (hold, resume, codec change) are
rewritten the same way in either direction; a leg is "on hold" for the relay's
media timeout while either side of its last offer/answer is not sendrecv.

`holding` says which phone put the other on hold: the one whose own last offer was
sendonly or inactive (or c=0.0.0.0, RFC 2543 style). An answerer going along with a
hold (recvonly, inactive) is the held party, not a holder. The bridge plays music
on hold to the phone facing a holder.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from media.errors import MediaError
from media.ports import PortAllocator, PortPair
from media.relay import DEFAULT_HOLD_TIMEOUT, LegName, RelaySession, other_leg
from media.sdp import (
    DEFAULT_CODECS,
    AudioStream,
    SessionDescription,
    answer,
    audio_stream,
    g711_offer,
    rewrite,
    with_g711_fallback,
)

log = logging.getLogger(__name__)

_G711 = ("PCMU", "PCMA")


class AnchoredMedia:
    """The relay of one call and the offer/answer bookkeeping around it.

    Raises (from the constructor): PortsExhaustedError when no ports are left.
    Every SDP method raises SdpError (bad or unbridgeable SDP: answer 488) or
    MediaError (codecs the relay cannot bridge).
    """

    def __init__(
        self,
        allocator: PortAllocator,
        host: str,
        *,
        name: str,
        timeout: float | None,
        on_timeout: Callable[[LegName], None] | None,
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        pairs: tuple[PortPair, PortPair] | None = None,
    ) -> None:
        self.host = host
        self.relay = RelaySession(
            allocator,
            name=name,
            timeout=timeout,
            on_timeout=on_timeout,
            hold_timeout=hold_timeout,
            pairs=pairs,
        )
        self._offers: dict[LegName, SessionDescription] = {}
        #: Whether each leg's phone holds the other (its last offer was not sendrecv).
        self.holding: dict[LegName, bool] = {"a": False, "b": False}
        #: Whether each leg's hold was answered by the switch (not passed across).
        self._held_here: dict[LegName, bool] = {"a": False, "b": False}

    def close(self) -> None:
        self.relay.close()

    def offer_from(self, leg: LegName, sdp: bytes) -> bytes:
        """An offer from `leg`'s phone, rewritten for the other phone."""
        offer = SessionDescription.parse(sdp)
        audio_stream(offer)  # address, RTP/RTCP ports, a codec: refused now, not after ringing
        self._offers[leg] = offer
        other = self.relay.leg(other_leg(leg))
        return bytes(rewrite(with_g711_fallback(offer), self.host, other.port))

    def answer_from(self, leg: LegName, sdp: bytes) -> bytes:
        """`leg`'s phone answered the other's offer: set up both sides of the relay and
        return the answer for the offerer."""
        offerer = other_leg(leg)
        offer = self._offers[offerer]
        theirs = audio_stream(SessionDescription.parse(sdp))
        preferences = [theirs.codec.name]
        preferences += [c for c in _G711 if c.lower() != theirs.codec.key]
        preferences += [c for c in DEFAULT_CODECS if c not in preferences]
        reply = answer(
            offer,
            self.host,
            self.relay.leg(offerer).port,
            preferences=preferences,
            direction=theirs.direction,
        )
        ours = audio_stream(reply)  # codec and payload numbers as the offerer named them
        offered = audio_stream(offer)  # where the offerer receives
        offerer_stream = dataclasses.replace(
            ours,
            host=offered.host,
            port=offered.port,
            rtcp_port=offered.rtcp_port,
            direction=offered.direction,
        )
        self.relay.set_remote(leg, theirs)
        self.relay.set_remote(offerer, offerer_stream)
        held = _held(offered) or _held(theirs)
        self.relay.hold(offerer, held)
        self.holding[offerer] = _held(offered)
        log.debug(
            "%s: %s sends %s, %s sends %s%s",
            self.relay.name,
            offerer,
            offerer_stream.codec.name,
            leg,
            theirs.codec.name,
            " (on hold)" if held else "",
        )
        return bytes(reply)

    def answer_hold(self, leg: LegName, sdp: bytes) -> bytes | None:
        """Answer here an offer from `leg`'s phone that only holds or resumes the call.

        The switch plays music on hold to the other phone itself, so (as Asterisk and
        FreeSWITCH do) the hold is not passed on: the other phone keeps one stream and is
        never re-INVITEd to recvonly (baresip 1.0 decodes nothing more after that). An
        offer is taken here when it holds (sendonly, inactive, c=0.0.0.0) and still names
        the codec `leg` sends now, or when it resumes a hold taken here; anything else
        (a new codec, a resume of a hold that crossed) returns None and crosses as before.

        Raises: SdpError (a bad offer: 488).
        """
        offer = SessionDescription.parse(sdp)
        offered = audio_stream(offer)
        current = self.relay.leg(leg).stream
        if current is None:
            return None
        held = _held(offered)
        if not held and not self._held_here[leg]:
            return None
        if not any(
            c.key == current.codec.key and c.clock_rate == current.codec.clock_rate
            for c in offer.audio().codecs
        ):
            return None
        preferences = [current.codec.name, *(c for c in DEFAULT_CODECS if c != current.codec.name)]
        reply = answer(offer, self.host, self.relay.leg(leg).port, preferences=preferences)
        ours = audio_stream(reply)
        self.relay.set_remote(
            leg,
            dataclasses.replace(
                ours,
                host=offered.host,
                port=offered.port,
                rtcp_port=offered.rtcp_port,
                direction=offered.direction,
            ),
        )
        self.relay.hold(leg, held)
        self.holding[leg] = held
        self._held_here[leg] = held
        log.debug(
            "%s: %s %s, answered by the switch",
            self.relay.name,
            leg,
            "holds" if held else "resumes",
        )
        return bytes(reply)

    def offer_for_new(self, leg: LegName) -> bytes:
        """An offer for a new party on `leg` (a transfer target, RFC 3515), at the relay.

        It names what the phone on the other leg sends now — its codec, the other
        G.711 law the relay can transcode to, telephone-event — so that phone needs
        no new offer of its own.

        Raises: MediaError when nothing was negotiated on the other leg yet.
        """
        stream = self.relay.leg(other_leg(leg)).stream
        if stream is None:
            raise MediaError("the other leg has no negotiated media")
        return _offer(self.host, self.relay.leg(leg).port, stream)

    def offer_g711(self, leg: LegName) -> bytes:
        """Our own offer on `leg` (PCMU, PCMA, telephone-event at the relay), for a call
        whose INVITE came without an offer (late offer): the callee gets it, and the
        caller later gets `offer_for_new` in the 200 and answers in its ACK."""
        return g711_offer(self.host, self.relay.leg(leg).port)

    def adopt(self, leg: LegName, stream: AudioStream) -> bytes:
        """Take over a phone whose media the switch terminated so far (an IVR caller):
        `leg` is pointed at `stream`. When the relay took over that call's own ports
        (`pairs`, one media anchor) nothing more is needed; otherwise the returned offer
        (its codec, at the relay) is what the phone must be re-INVITEd with."""
        self.relay.set_remote(leg, stream)
        self.holding[leg] = False
        self._held_here[leg] = False
        return _offer(self.host, self.relay.leg(leg).port, stream)

    def connect_new(self, leg: LegName, sdp: bytes) -> None:
        """The new party's answer to `offer_for_new`: point `leg` of the relay at it.

        Raises: SdpError, MediaError (a codec the relay cannot bridge).
        """
        theirs = audio_stream(SessionDescription.parse(sdp))
        self.relay.set_remote(leg, theirs)
        self.relay.hold(leg, _held(theirs))
        self.holding[leg] = False  # a new party answering our offer holds nobody
        self._held_here[leg] = False


def offer_at(host: str, port: int, stream: AudioStream) -> bytes:
    """An offer at `host`:`port` for a new party that will hear a phone sending `stream`
    (a relay leg not made yet: the IVR caller's ports are taken over on answer)."""
    return _offer(host, port, stream)


def _offer(host: str, port: int, stream: AudioStream) -> bytes:
    """An offer at `host`:`port` naming `stream`'s codec (and the other G.711 law the
    relay can transcode to) and telephone-event."""
    codec = stream.codec
    formats = [str(codec.payload_type)]
    lines = [f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}"]
    if stream.telephone_event is not None:
        event = stream.telephone_event
        formats.append(str(event))
        lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} 0-16"]
    text = "\r\n".join(
        [
            "v=0",
            f"o=aiopbx 0 0 IN IP4 {host}",
            "s=-",
            f"c=IN IP4 {host}",
            "t=0 0",
            f"m=audio {port} RTP/AVP {' '.join(formats)}",
            *lines,
            "a=sendrecv",
        ]
    )
    return bytes(with_g711_fallback(SessionDescription.parse(text + "\r\n")))


def _held(stream: AudioStream) -> bool:
    return stream.direction != "sendrecv" or stream.host in ("0.0.0.0", "::")
