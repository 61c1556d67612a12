"""Two calls joined through one relay, and the transfers that swap one of them.

A `Bridge` holds the two legs of a B2BUA call by relay side ("a" faces the caller,
"b" the callee). Offers inside either dialog (hold, resume, codec change) cross
to the other leg through the relay. A REFER (RFC 3515) from a leg's phone makes
that phone the *transferor* and the phone on the other leg the *transferee*:

- blind: Refer-To names a number; the switch rings it with an offer pointing at
  the transferor's side of the relay, and on answer points that side at the new
  phone; the transferee notices nothing.
- attended (RFC 3891): Refer-To carries `Replaces=` naming the transferor's dialog
  of a second call; the phone at the far end of that call is re-INVITEd onto this
  relay and takes the transferor's place; the second call's bridge lets go of it.

Progress goes to the transferor as NOTIFY message/sipfrag ("100 Trying", then the
final status). After success the transferor is expected to hang up (BYE); if it
does not within `TRANSFEROR_GRACE` seconds, the switch hangs it up.

Music on hold: the hold re-INVITE still crosses to the other phone, and while a
leg's phone holds (`AnchoredMedia.holding`), the phone facing it hears `moh` from
the relay (media.moh), in its own G.711 law; it stops as the hold ends, the call
ends or a transfer replaces the holder.

Recording on demand: `record_on_demand(leg, recorder)` lets that leg's phone start
and stop `recorder` with the feature code `*1` (Asterisk's automon), as RFC 4733
telephone-events (watched in the relay, on that leg only) or SIP INFO dtmf-relay.
The digits still reach the other phone as RTP events, as before.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from typing import Protocol

from media.errors import MediaError, SdpError
from media.moh import MohError, MohMusic, MohPlayer, MohSource
from media.recorder import CallRecorder
from media.relay import LegName, Tap, other_leg
from media.telephone_event import parse_dtmf_relay
from pbx.calls import Call, CallManager, CallState, OfferHook, OutboundCall
from pbx.events import CallBridged, CallDtmf, CallHeld, CallResumed, CallTransferred, CallUnbridged
from pbx.media_bridge import AnchoredMedia
from sip.errors import SipParseError
from sip.headers import NameAddr
from sip.message import REASONS, Request, Response, make_response
from sip.uri import SipUri

log = logging.getLogger(__name__)

TRANSFEROR_GRACE = 10.0

AUTOMON = "*1"
"""The feature code that starts and stops recording on demand (Asterisk's default)."""
FEATURE_DIGIT_TIMEOUT = 2.0
"""Seconds allowed between the digits of a feature code."""
LEGS: tuple[LegName, LegName] = ("a", "b")
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")


class FeatureCode:
    """Spots one feature code (e.g. `*1`) in a stream of digits; the digits of the
    code must follow each other within `timeout` seconds."""

    def __init__(self, code: str = AUTOMON, timeout: float = FEATURE_DIGIT_TIMEOUT) -> None:
        self.code = code
        self.timeout = timeout
        self._typed = ""
        self._last = float("-inf")

    def feed(self, digit: str, now: float) -> bool:
        """One digit pressed at `now`; True when it completes the code."""
        if now - self._last > self.timeout:
            self._typed = ""
        self._last = now
        self._typed = (self._typed + digit)[-len(self.code) :]
        if self._typed == self.code:
            self._typed = ""
            return True
        return False


def parse_replaces(value: str) -> tuple[str, str, str] | None:
    """(Call-ID, to-tag, from-tag) of a Replaces value (RFC 3891 §6.1), or None."""
    call_id, *params = urllib.parse.unquote(value).split(";")
    tags = {}
    for param in params:
        name, _, tag = param.strip().partition("=")
        tags[name.lower()] = tag
    if not call_id.strip() or "to-tag" not in tags or "from-tag" not in tags:
        return None
    return call_id.strip(), tags["to-tag"], tags["from-tag"]


class BridgeHost(Protocol):
    """What a bridge needs of the switch (`pbx.b2bua.B2bua` is one): music on hold, the
    registry of live bridges (for attended transfers), the call manager, and ringing a
    number for a blind transfer. A protocol, so that this module imports no B2BUA."""

    moh: MohSource
    bridges: dict[str, Bridge]
    manager: CallManager

    async def dial_number(
        self, number: str, transferee: Call, offer: bytes
    ) -> tuple[OutboundCall | None, int]:
        """Ring `number` for a transfer: the answered call, or None and the status."""
        ...


class Bridge:
    """Two live calls joined through `media` until one hangs up."""

    def __init__(self, b2bua: BridgeHost, media: AnchoredMedia, a: Call, b: Call) -> None:
        self.b2bua = b2bua
        self.media = media
        #: Where the music on hold comes from (the switch's `moh/` directory).
        self.moh: MohSource = b2bua.moh
        self.legs: dict[LegName, Call] = {}
        self.changed = asyncio.Event()
        self.released: Call | None = None  # handed to another bridge (attended transfer)
        self.transfers: list[str] = []
        #: The recorder `*1` starts and stops (record_on_demand), if any.
        self.recorder: CallRecorder | None = None
        self._players: dict[LegName, MohPlayer] = {}
        self._no_moh: set[LegName] = set()  # legs already logged as unable to take MOH
        self._watches: dict[LegName, Tap] = {}
        #: Who hears a leg's SIP INFO digits besides the other phone (feature codes).
        self._info_digits: dict[LegName, Callable[[str], None]] = {}
        self._closed = False
        self._announced = False  # CallBridged published
        self._attach("a", a)
        self._attach("b", b)

    def _attach(self, leg: LegName, call: Call) -> None:
        self.legs[leg] = call
        # Media may go to this phone's SDP address before it sent any only on the host
        # its SIP comes from; a source there may latch (NAT). media.relay, issue 10 §4/§6.
        self.media.relay.set_signalling(leg, call.peer.host)
        call.on_offer = self._offer_hook(leg)
        call.on_refer = self._refer
        call.on_info = self._info_hook(leg)
        self.b2bua.bridges[call.id] = self

    def close(self) -> None:
        self._closed = True
        self._sync_moh(None)
        for leg in list(self._watches):
            self._unwatch(leg)
        for call in self.legs.values():
            if self.b2bua.bridges.get(call.id) is self:
                del self.b2bua.bridges[call.id]

    def leg_of(self, call: Call) -> LegName | None:
        for leg, member in self.legs.items():
            if member is call:
                return leg
        return None

    def announce(self) -> None:
        """Publish CallBridged, once: when the caller's answer is confirmed, and at the
        latest before any hold of this bridge (a phone may re-INVITE right after its ACK,
        while the caller's task is still busy in the store)."""
        if not self._announced:
            self._announced = True
            self.b2bua.manager.events.publish(CallBridged(self.legs["a"].id, self.legs["b"].id))

    async def run(self) -> str:
        """Wait until a leg hangs up (following swaps), hang up the other; the cause."""
        self.announce()
        try:
            while True:
                waits = [
                    asyncio.ensure_future(self.legs["a"].ended.wait()),
                    asyncio.ensure_future(self.legs["b"].ended.wait()),
                    asyncio.ensure_future(self.changed.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for future in waits:
                        future.cancel()
                if self.changed.is_set():
                    self.changed.clear()
                    if self.released is None:
                        continue  # a leg was swapped: watch the new pair
                    remaining = next(c for c in self.legs.values() if c is not self.released)
                    await remaining.hangup(0, "transferred")
                    return "transferred (attended)"
                return await self._ended()
        finally:
            self.b2bua.manager.events.publish(CallUnbridged(self.legs["a"].id, self.legs["b"].id))
            self.close()

    async def _ended(self) -> str:
        self._closed = True
        self._sync_moh(None)  # at once, not after the other leg's BYE is answered
        first_leg: LegName = "a" if self.legs["a"].state is CallState.ENDED else "b"
        first, other = self.legs[first_leg], self.legs[other_leg(first_leg)]
        await other.hangup()
        note = f" after transfer to {', '.join(self.transfers)}" if self.transfers else ""
        cause = first.hangup_cause
        if cause is None or cause.by_remote:
            return f"{'caller' if first_leg == 'a' else 'callee'} hung up{note}"
        return cause.reason + note  # ended here: admin hangup, media timeout, no ACK ...

    # -- offers inside the dialogs ---------------------------------------------

    def _offer_hook(self, leg: LegName) -> OfferHook:
        async def offer(call: Call, sdp: bytes) -> tuple[int, bytes | None]:
            if self.legs.get(leg) is not call:
                return 491, None
            was_holding = self.media.holding[leg]
            try:
                here = self.media.answer_hold(leg, sdp)
            except (SdpError, MediaError):
                return 488, None
            if here is not None:
                await self.update_moh()
                self._publish_hold(call, leg, was_holding)
                return 200, here
            try:
                across = self.media.offer_from(leg, sdp)
            except (SdpError, MediaError):
                return 488, None
            status, answer = await self.legs[other_leg(leg)].send_offer(across)
            if not 200 <= status < 300 or not answer:
                return status, None
            try:
                reply = self.media.answer_from(other_leg(leg), answer)
            except (SdpError, MediaError):
                return 488, None
            await self.update_moh()
            self._publish_hold(call, leg, was_holding)
            return status, reply

        return offer

    def _publish_hold(self, call: Call, leg: LegName, was_holding: bool) -> None:
        if self.media.holding[leg] != was_holding:
            self.announce()
            self.b2bua.manager.events.publish((CallResumed if was_holding else CallHeld)(call.id))

    # -- DTMF sent as SIP INFO -------------------------------------------------------

    def _info_hook(self, leg: LegName) -> Callable[[Call, Request], None]:
        """INFO digits (application/dtmf-relay, application/dtmf) go on to the other
        phone as the same INFO, as a proxy would pass them; a feature code watch on
        the leg hears them too. Other INFO bodies stay here (answered 200)."""

        def info(call: Call, request: Request) -> None:
            if self.legs.get(leg) is not call or self._closed:
                return
            content_type = request.headers.get("Content-Type") or ""
            if content_type.split(";")[0].strip().lower() not in DTMF_INFO_TYPES:
                return
            hear = self._info_digits.get(leg)
            try:
                pressed, _duration = parse_dtmf_relay(request.body)
            except MediaError as exc:
                log.info("call %s: unreadable DTMF INFO: %s", call.id, exc)
            else:
                self.b2bua.manager.events.publish(CallDtmf(call.id, pressed))
                if hear is not None:
                    hear(pressed)
            other = self.legs[other_leg(leg)]

            async def forward() -> None:
                await other.send_info(content_type, request.body)

            if other.state is CallState.UP:
                self.b2bua.manager.spawn(forward(), f"INFO to {other.id}")

        return info

    # -- music on hold ------------------------------------------------------------

    async def update_moh(self) -> None:
        """Play music on hold to each phone whose other side holds; stop it where the
        hold ended. Stopping is immediate; starting may read new music in a thread."""
        self._sync_moh(None)
        if any(self._wants_moh(leg) and leg not in self._players for leg in LEGS):
            music = await self.moh.music()
            self._sync_moh(music)

    def _wants_moh(self, leg: LegName) -> bool:
        return (
            not self._closed
            and self.released is None
            and not self.media.relay.closed
            and self.media.holding[other_leg(leg)]
        )

    def _sync_moh(self, music: MohMusic | None) -> None:
        """Stop the players that should not play; start the missing ones with `music`."""
        relay = self.media.relay
        for leg in LEGS:
            want = self._wants_moh(leg)
            player = self._players.get(leg)
            if player is not None:
                stream = relay.leg(leg).stream
                current = stream is not None and stream.codec == player.stream.codec
                if not (want and current and player.playing):
                    player.stop()
                    del self._players[leg]
                    player = None
            if not want:
                self._no_moh.discard(leg)
            elif player is None and music is not None:
                try:
                    player = MohPlayer(relay, leg, music)
                except MohError as exc:
                    if leg not in self._no_moh:
                        self._no_moh.add(leg)
                        log.info("%s: no music on hold: %s", relay.name, exc)
                    continue
                self._players[leg] = player
                player.start()

    # -- recording on demand -----------------------------------------------------

    def record_on_demand(self, leg: LegName, recorder: CallRecorder, code: str = AUTOMON) -> None:
        """Let leg `leg`'s phone start and stop `recorder` by sending `code` (RFC 4733
        events or SIP INFO); the watch ends when a transfer replaces that phone."""
        self.recorder = recorder
        call = self.legs[leg]
        matcher = FeatureCode(code)
        loop = asyncio.get_running_loop()

        def digit(pressed: str) -> None:
            if self.legs.get(leg) is call and matcher.feed(pressed, loop.time()):
                self._toggle(recorder, call, leg)

        self._unwatch(leg)
        self._watches[leg] = self.media.relay.watch_digits(leg, digit)
        self._info_digits[leg] = digit

    def _toggle(self, recorder: CallRecorder, call: Call, leg: LegName) -> None:
        if self._closed:
            return
        if recorder.running:
            recorder.stop()
            log.info("call %s: recording stopped by leg %s", call.id, leg)
        else:
            recorder.start()
            log.info("call %s: recording started by leg %s", call.id, leg)

    def _unwatch(self, leg: LegName) -> None:
        tap = self._watches.pop(leg, None)
        if tap is not None:
            self.media.relay.remove_tap(leg, tap)
        self._info_digits.pop(leg, None)

    # -- transfers ----------------------------------------------------------------

    async def _refer(self, call: Call, request: Request) -> Response:
        leg = self.leg_of(call)
        if leg is None:
            return make_response(request, 481, "Call/Transaction Does Not Exist")
        if call.trunk is not None:  # toll fraud: a provider may not send the call on
            log.warning("call %s: REFER from trunk %s refused", call.id, call.trunk)
            return make_response(request, 403, "Forbidden")
        try:
            target = NameAddr.parse(request.headers.get("Refer-To") or "").uri
        except SipParseError:
            return make_response(request, 400, "Bad Refer-To")
        if not isinstance(target, SipUri) or not target.user:
            return make_response(request, 400, "Refer-To is not an extension")
        replaces = dict((k.lower(), v) for k, v in target.headers).get("replaces")
        if replaces is not None:
            work = self._attended(call, leg, replaces)
        else:
            work = self._blind(call, leg, urllib.parse.unquote(target.user))
        self.b2bua.manager.spawn(work, f"transfer {call.id}")
        return make_response(request, 202)

    async def _blind(self, transferor: Call, leg: LegName, number: str) -> None:
        await transferor.notify_refer("SIP/2.0 100 Trying", final=False)
        transferee = self.legs[other_leg(leg)]
        try:
            offer = self.media.offer_for_new(leg)
        except MediaError as exc:
            log.info("transfer from %s: %s", transferor.id, exc)
            await transferor.notify_refer("SIP/2.0 488 Not Acceptable Here", final=True)
            return
        winner, status = await self.b2bua.dial_number(number, transferee, offer)
        if winner is None or transferee.state is CallState.ENDED:
            if winner is not None:
                await winner.hangup()
            await transferor.notify_refer(_status_line(status), final=True)
            return
        try:
            self.media.connect_new(leg, winner.remote_sdp or b"")
        except (SdpError, MediaError) as exc:
            log.info("transfer from %s: unusable answer: %s", transferor.id, exc)
            await winner.hangup(0, "bad SDP answer")
            await transferor.notify_refer("SIP/2.0 488 Not Acceptable Here", final=True)
            return
        self._swap(leg, winner, number)
        await self.update_moh()
        await transferor.notify_refer("SIP/2.0 200 OK", final=True)
        await _let_go(transferor)

    async def _attended(self, transferor: Call, leg: LegName, replaces: str) -> None:
        await transferor.notify_refer("SIP/2.0 100 Trying", final=False)
        ids = parse_replaces(replaces)
        # Replaces names the transferor's dialog from its side: the switch's tag is
        # the to-tag, the transferor's own the from-tag (RFC 3891 §3).
        other_call = (
            self.b2bua.manager.find_dialog(ids[0], ids[1], ids[2]) if ids is not None else None
        )
        other_bridge = self.b2bua.bridges.get(other_call.id) if other_call is not None else None
        if other_call is None or other_bridge is None or other_bridge is self:
            await transferor.notify_refer("SIP/2.0 481 Call/Transaction Does Not Exist", final=True)
            return
        their_leg = other_bridge.leg_of(other_call)
        assert their_leg is not None
        target = other_bridge.legs[other_leg(their_leg)]
        try:
            offer = self.media.offer_for_new(leg)
        except MediaError:
            await transferor.notify_refer("SIP/2.0 488 Not Acceptable Here", final=True)
            return
        status, answer = await target.send_offer(offer)
        if not 200 <= status < 300 or not answer:
            await transferor.notify_refer(_status_line(status), final=True)
            return
        try:
            self.media.connect_new(leg, answer)
        except (SdpError, MediaError):
            await transferor.notify_refer("SIP/2.0 488 Not Acceptable Here", final=True)
            return
        other_bridge.release(target)
        self._swap(leg, target, target.callee if target.outbound else target.caller)
        await self.update_moh()
        await transferor.notify_refer("SIP/2.0 200 OK", final=True)
        await _let_go(transferor)
        await _let_go(other_call)

    def _swap(self, leg: LegName, call: Call, label: str) -> None:
        old = self.legs[leg]
        if self.b2bua.bridges.get(old.id) is self:
            del self.b2bua.bridges[old.id]
        self._unwatch(leg)
        transferee = self.legs[other_leg(leg)]
        self.b2bua.manager.events.publish(CallTransferred(transferee.id, label, call.id, old.id))
        old.on_offer = None
        old.on_refer = None
        self._attach(leg, call)
        self.transfers.append(label)
        self.changed.set()
        log.info("bridge: %s replaced by %s (%s)", old.id, call.id, label)

    def release(self, call: Call) -> None:
        """Hand `call` to another bridge: this one ends, hanging up its other leg."""
        if self.b2bua.bridges.get(call.id) is self:
            del self.b2bua.bridges[call.id]
        self.released = call
        self._sync_moh(None)  # no more music from this relay to the phone moving away
        self.changed.set()


def _status_line(status: int) -> str:
    return f"SIP/2.0 {status} {REASONS.get(status, 'Failed')}"


async def _let_go(transferor: Call) -> None:
    """Give the transferor time to hang up by itself, then do it for it."""
    if transferor.state is CallState.ENDED:
        return
    try:
        async with asyncio.timeout(TRANSFEROR_GRACE):
            await transferor.ended.wait()
    except TimeoutError:
        await transferor.hangup(0, "transfer complete")
