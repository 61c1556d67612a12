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
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import TYPE_CHECKING

from media.errors import MediaError, SdpError
from media.relay import LegName, other_leg
from pbx.calls import Call, CallState, OfferHook
from pbx.media_bridge import AnchoredMedia
from sip.errors import SipParseError
from sip.headers import NameAddr
from sip.message import REASONS, Request, Response, make_response
from sip.uri import SipUri

if TYPE_CHECKING:
    from pbx.b2bua import B2bua

log = logging.getLogger(__name__)

TRANSFEROR_GRACE = 10.0


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


class Bridge:
    """Two live calls joined through `media` until one hangs up."""

    def __init__(self, b2bua: B2bua, media: AnchoredMedia, a: Call, b: Call) -> None:
        self.b2bua = b2bua
        self.media = media
        self.legs: dict[LegName, Call] = {}
        self.changed = asyncio.Event()
        self.released: Call | None = None  # handed to another bridge (attended transfer)
        self.transfers: list[str] = []
        self._attach("a", a)
        self._attach("b", b)

    def _attach(self, leg: LegName, call: Call) -> None:
        self.legs[leg] = call
        call.on_offer = self._offer_hook(leg)
        call.on_refer = self._refer
        self.b2bua.bridges[call.id] = self

    def close(self) -> None:
        for call in self.legs.values():
            if self.b2bua.bridges.get(call.id) is self:
                del self.b2bua.bridges[call.id]

    def leg_of(self, call: Call) -> LegName | None:
        for leg, member in self.legs.items():
            if member is call:
                return leg
        return None

    async def run(self) -> str:
        """Wait until a leg hangs up (following swaps), hang up the other; the cause."""
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
            self.close()

    async def _ended(self) -> str:
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
            try:
                across = self.media.offer_from(leg, sdp)
            except (SdpError, MediaError):
                return 488, None
            status, answer = await self.legs[other_leg(leg)].send_offer(across)
            if not 200 <= status < 300 or not answer:
                return status, None
            try:
                return status, self.media.answer_from(other_leg(leg), answer)
            except (SdpError, MediaError):
                return 488, None

        return offer

    # -- transfers ----------------------------------------------------------------

    async def _refer(self, call: Call, request: Request) -> Response:
        leg = self.leg_of(call)
        if leg is None:
            return make_response(request, 481, "Call/Transaction Does Not Exist")
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
        await transferor.notify_refer("SIP/2.0 200 OK", final=True)
        await _let_go(transferor)
        await _let_go(other_call)

    def _swap(self, leg: LegName, call: Call, label: str) -> None:
        old = self.legs[leg]
        if self.b2bua.bridges.get(old.id) is self:
            del self.b2bua.bridges[old.id]
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
