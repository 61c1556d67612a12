"""The SIP side of a browser phone: a small user agent on loopback, a phone like any other.

A browser logged in as user 1003 gets one `BrowserLine`: a SIP UA (built on
`sip.endpoint`, as pbx/sim is) that REGISTERs a contact of 1003 to the switch's own SIP
port, so everything the switch does for phones works for the browser at once: an INVITE
to 1003 forks to it and to 1003's SIP phones, queues offer it calls, CDRs and queue
events are written as for any phone. The UA proves itself with digest credentials the
switch computes from the stored HA1 (`Switch.answer_challenge`): the browser's password
is never kept.

Calls (at most one at a time; a second INVITE gets 486):

- placed: INVITE (answering the switch's 407 once), 180 -> "ringing", 2xx -> ACK, up;
  hanging up before the answer sends CANCEL, after it BYE;
- taken: INVITE -> 180 and "incoming" to the page; the page's answer -> 200 (sent again
  until the ACK, RFC 3261 §13.3.1.4), a decline (or the page closing) -> 486, never a
  6xx, which would end the user's other phones' ringing too (RFC 3261 §16.7 step 5);
  the switch's CANCEL -> 487;
- up: hold and resume are re-INVITEs (sendonly / sendrecv), transfer is a REFER (blind,
  RFC 3515), DTMF goes as RFC 4733 events in the RTP stream (acd.web.phone_rtp).

The media toward the switch is a `SwitchLeg` per call; the WebRTC half is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from acd.web.phone_rtp import SwitchLeg
from media.errors import MediaError, SdpError
from media.ports import PortAllocator
from media.sdp import (
    SdpOrigin,
    SessionDescription,
    answer,
    answer_direction,
    audio_stream,
    g711_offer,
    with_direction,
)
from sip.dialog import Dialog, new_branch, new_tag
from sip.digest import pick_challenge
from sip.endpoint import Endpoint, HandlerResult
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.uri import SipUri

__all__ = ["BrowserLine", "LineCall", "Signer", "valid_number"]

log = logging.getLogger(__name__)

#: (challenge header value, method, digest-uri) -> the Authorization value.
Signer = Callable[[str, str, str], Awaitable[str]]
#: What the line tells its page: a JSON-able message.
Notify = Callable[[dict[str, object]], None]

REGISTER_SECONDS = 300
T1, T2 = 0.5, 4.0
#: How long an incoming call waits for the page to answer (the switch's ring timeout
#: normally ends it first with CANCEL).
RING_LIMIT = 120.0
_AUTH = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


@dataclass(eq=False)
class LineCall:
    """One call of a browser phone."""

    id: str
    direction: str  # "out" or "in"
    party: str
    leg: SwitchLeg
    invite: Request
    dialog: Dialog | None = None
    state: str = "calling"  # calling, ringing, up, ended
    held: bool = False
    to_tag: str = field(default_factory=new_tag)
    decision: asyncio.Future[bool] | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    offer: SessionDescription | None = None
    #: Our last SDP (offer or answer), stamped with `origin`.
    local_sdp: bytes = b""
    origin: SdpOrigin | None = None

    def describe(self, sdp: bytes | SessionDescription, direction: str | None = None) -> bytes:
        """`sdp` (with the audio direction set, if given) as this call's next SDP: one o=
        for the dialog, its version raised when the description changes (RFC 3264 §8)."""
        if self.origin is None:
            self.origin = SdpOrigin(self.leg.host)
        if direction is not None:
            sdp = with_direction(
                sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp),
                direction,
            )
        self.local_sdp = self.origin.stamp(bytes(sdp))
        return self.local_sdp


def valid_number(number: str) -> bool:
    """A dialled number or SIP user part the page may send: short, no SIP syntax."""
    return 0 < len(number) <= 64 and all(c.isalnum() or c in "+*#-._" for c in number)


class BrowserLine:
    """One browser phone's SIP user agent (see the module doc)."""

    def __init__(
        self,
        user: str,
        switch: tuple[str, int],
        sign: Signer,
        ports: PortAllocator,
        notify: Notify,
    ) -> None:
        self.user = user
        self.switch = Peer("UDP", *switch)
        self.sign = sign
        self.ports = ports
        self.notify = notify
        self.endpoint = Endpoint(server_header="aiopbx-browser-phone")
        self.host = "127.0.0.1"
        self.port = 0
        self.contact_user = f"{user}-web-{secrets.token_hex(4)}"
        self.call: LineCall | None = None
        self.registered = asyncio.Event()
        self._reg_call_id = f"{secrets.token_hex(12)}@browser-phone"
        self._reg_seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Called when a taken call is answered or a placed one is answered (media up).
        self.on_up: Callable[[LineCall], None] | None = None
        #: Called when a call ends (the page's WebRTC half is closed with it).
        self.on_end: Callable[[LineCall], None] | None = None

    # -- life --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on loopback and register (bounded: raises TimeoutError or PbxError)."""
        for method, handler in (
            ("INVITE", self._invite),
            ("ACK", self._ack),
            ("BYE", self._bye),
            ("CANCEL", self._cancel),
            ("NOTIFY", self._ok),
            ("INFO", self._ok),
        ):
            self.endpoint.route(method, handler)
        self.port = await self.endpoint.listen(self.host, 0, tcp=False)
        status = await self._register(REGISTER_SECONDS)
        if status != 200:
            raise ConnectionError(f"the switch refused the browser phone's REGISTER ({status})")
        self.registered.set()
        self._spawn(self._refresh(), "refresh")

    async def close(self) -> None:
        """Hang up, unregister, stop listening."""
        call = self.call
        if call is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self.hangup()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.registered.is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self._register(0)
        await self.endpoint.close()

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run(), name=f"{self.user} {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def contact(self) -> str:
        return f"<sip:{self.contact_user}@{self.host}:{self.port}>"

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};rport;branch={new_branch()}"

    def _aor(self) -> str:
        return f"<sip:{self.user}@{self.switch.host}:{self.switch.port}>"

    # -- registration ---------------------------------------------------------------------

    async def _register(self, expires: int) -> int:
        self._reg_seq += 1
        uri = SipUri.parse(f"sip:{self.switch.host}:{self.switch.port}")
        fields = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", f"{self._aor()};tag={new_tag()}"),
            ("To", self._aor()),
            ("Call-ID", self._reg_call_id),
            ("CSeq", f"{self._reg_seq} REGISTER"),
            ("Contact", self.contact),
            ("Expires", str(expires)),
            ("User-Agent", "aiopbx browser phone"),
        ]
        request = Request("REGISTER", uri, Headers(fields))
        response = await self._authorized(request)
        self._reg_seq = max(self._reg_seq, request.cseq.seq + 1)
        return response.status

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REGISTER_SECONDS / 2)  # the registration's own timer
            status = await self._register(REGISTER_SECONDS)
            if status != 200:
                log.warning("browser phone %s: re-REGISTER got %s", self.user, status)

    async def _authorized(
        self, request: Request, on_provisional: Callable[[Response], None] | None = None
    ) -> Response:
        """Send `request`; answer one 401/407 with the switch-made credentials."""
        response = await self.endpoint.request(request, self.switch, on_provisional)
        if response.status not in _AUTH:
            return response
        challenge_name, answer_name = _AUTH[response.status]
        challenge = pick_challenge(list(response.headers.values(challenge_name)))
        if challenge is None:
            return response
        credentials = await self.sign(str(challenge), request.method, str(request.uri))
        fields: list[tuple[str, str]] = []
        for key, value in request.headers:
            if key == "Via":
                value = self._via()
            elif key == "CSeq":
                value = f"{request.cseq.seq + 1} {request.method}"
            fields.append((key, value))
        fields.append((answer_name, credentials))
        again = Request(request.method, request.uri, Headers(fields), request.body)
        if self.call is not None and self.call.invite is request:
            self.call.invite = again
        return await self.endpoint.request(again, self.switch, on_provisional)

    # -- placing a call ----------------------------------------------------------------------

    async def dial(self, number: str, leg: SwitchLeg) -> LineCall:
        """Place a call to `number` (whatever the dialplan knows). Returns when it is
        answered or has failed (`state` "up" or "ended"); the page hears of each step.

        `leg` is the call's RTP toward the switch (the caller made it for the WebRTC
        half already); the line owns it from now on and closes it with the call.

        Raises: ValueError for a call in progress or a number that is not a plain SIP
            user part (the leg is closed).
        """
        if self.call is not None or not valid_number(number):
            leg.close()
            raise ValueError("a call is in progress" if self.call is not None else "not a number")
        uri = SipUri.parse(f"sip:{number}@{self.switch.host}:{self.switch.port}")
        fields = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", f"{self._aor()};tag={new_tag()}"),
            ("To", f"<sip:{number}@{self.switch.host}:{self.switch.port}>"),
            ("Call-ID", f"{secrets.token_hex(12)}@browser-phone"),
            ("CSeq", "1 INVITE"),
            ("Contact", self.contact),
            ("Content-Type", "application/sdp"),
            ("User-Agent", "aiopbx browser phone"),
        ]
        origin = SdpOrigin(leg.host)
        sdp = origin.stamp(g711_offer(leg.host, leg.port))
        invite = Request("INVITE", uri, Headers(fields), sdp)
        call = self.call = LineCall(secrets.token_hex(6), "out", number, leg, invite)
        call.origin, call.local_sdp = origin, sdp
        self._tell(call)

        def provisional(response: Response) -> None:
            if response.status in (180, 183) and call.state == "calling":
                call.state = "ringing"
                self._tell(call)

        try:
            response = await self._authorized(invite, provisional)
        except asyncio.CancelledError:
            self._end(call, "cancelled")
            raise
        if not 200 <= response.status < 300:
            self._end(call, "cancelled" if call.cancelled else f"{response.status}")
            return call
        try:
            call.dialog = Dialog.as_uac(call.invite, response)
            remote = audio_stream(SessionDescription.parse(response.body))
            leg.set_remote(remote)
        except (SipParseError, SdpError, MediaError) as exc:
            log.info("browser phone %s: unusable 2xx (%s)", self.user, exc)
            self._send_ack(call, response)
            self._spawn(self._send_bye(call), "bye")
            return call
        self._send_ack(call, response)
        if call.cancelled:  # hung up while the answer was on its way
            self._spawn(self._send_bye(call), "bye")
            return call
        call.state = "up"
        self._tell(call)
        if self.on_up is not None:
            self.on_up(call)
        return call

    def _send_ack(self, call: LineCall, response: Response) -> None:
        assert call.dialog is not None
        ack = call.dialog.create_request("ACK", via=self._via(), cseq=call.invite.cseq.seq)
        self.endpoint.send_stateless(ack, self.switch)

    # -- taking a call -----------------------------------------------------------------------

    def _invite(self, request: Request, peer: Peer) -> HandlerResult | Awaitable[HandlerResult]:
        if request.to.tag:
            return self._reinvite(request)
        if self.call is not None:
            return make_response(request, 486)
        try:
            offer = SessionDescription.parse(request.body)
            leg = SwitchLeg(self.ports, f"{self.user}-web-in")
        except (SdpError, SipParseError, MediaError) as exc:
            log.info("browser phone %s: INVITE refused (%s)", self.user, exc)
            return make_response(request, 488)
        caller = request.from_.uri.user if isinstance(request.from_.uri, SipUri) else None
        name = request.from_.display_name
        party = f"{name} <{caller}>" if name and caller else (caller or "unknown")
        call = self.call = LineCall(secrets.token_hex(6), "in", party, leg, request)
        call.offer = offer
        call.decision = asyncio.get_running_loop().create_future()
        return self._ring(call)

    async def _ring(self, call: LineCall) -> HandlerResult:
        request = call.invite
        assert call.decision is not None and call.offer is not None
        self.endpoint.respond(make_response(request, 180, to_tag=call.to_tag))
        call.state = "ringing"
        self._tell(call)
        try:
            async with asyncio.timeout(RING_LIMIT):
                take = await call.decision
        except TimeoutError:
            take = False
        if call.cancelled:
            self._end(call, "cancelled")
            return make_response(request, 487, to_tag=call.to_tag)
        if not take:
            self._end(call, "declined")
            return make_response(request, 486, to_tag=call.to_tag)
        try:
            sdp = answer(
                call.offer,
                call.leg.host,
                call.leg.port,
                preferences=("PCMU", "PCMA", "telephone-event"),
                origin=f"aiopbx-web 0 0 IN IP4 {call.leg.host}",
            )
            chosen, offered = audio_stream(sdp), audio_stream(call.offer)
            call.leg.set_remote(
                dataclasses.replace(
                    chosen, host=offered.host, port=offered.port, rtcp_port=offered.rtcp_port
                )
            )
            call.dialog = Dialog.as_uas(request, call.to_tag, confirmed=True)
        except (SdpError, MediaError, SipParseError) as exc:
            log.info("browser phone %s: cannot answer (%s)", self.user, exc)
            self._end(call, "failed")
            return make_response(request, 488, to_tag=call.to_tag)
        call.describe(sdp)
        ok = make_response(
            request,
            200,
            to_tag=call.to_tag,
            headers=[("Contact", self.contact), ("Content-Type", "application/sdp")],
            body=call.local_sdp,
        )
        call.state = "up"
        self._tell(call)
        if self.on_up is not None:
            self.on_up(call)
        self._spawn(self._retransmit(call, ok), "2xx")
        return ok

    def decide(self, take: bool) -> bool:
        """The page's answer to the ringing call; False when nothing rings."""
        call = self.call
        if call is None or call.decision is None or call.decision.done():
            return False
        call.decision.set_result(take)
        return True

    async def _retransmit(self, call: LineCall, ok: Response) -> None:
        """RFC 3261 §13.3.1.4: the 2xx again until the ACK, T1 doubling to T2, 64*T1."""
        interval, waited = T1, 0.0
        while not call.acked.is_set() and not call.ended.is_set() and waited < 64 * T1:
            try:
                async with asyncio.timeout(interval):
                    await call.acked.wait()
                return
            except TimeoutError:
                waited += interval
                self.endpoint.send_stateless(ok, self.switch)
                interval = min(interval * 2, T2)
        if not call.acked.is_set() and not call.ended.is_set():
            await self._send_bye(call)

    def _reinvite(self, request: Request) -> HandlerResult:
        call = self.call
        if call is None or call.dialog is None or call.dialog.call_id != request.call_id:
            return make_response(request, 481)
        status = call.dialog.receive(request)
        if status is not None:
            return make_response(request, status)
        # An offer gets an answer whose direction matches it (RFC 3264 §6.1: a switch's
        # sendonly is answered recvonly), held by us or not; with no offer, our SDP is
        # the offer (answered in the ACK, which the switch keeps as it is).
        mine = "sendonly" if call.held else "sendrecv"
        try:
            if request.body:
                offer = SessionDescription.parse(request.body)
                call.leg.set_remote(audio_stream(offer))
                mine = answer_direction(offer.direction_of(offer.audio()), call.held)
        except (SdpError, MediaError) as exc:
            log.info("browser phone %s: re-INVITE refused (%s)", self.user, exc)
            return make_response(request, 488)
        return make_response(
            request,
            200,
            headers=[("Contact", self.contact), ("Content-Type", "application/sdp")],
            body=call.describe(call.local_sdp, mine),
        )

    # -- in the dialog -------------------------------------------------------------------------

    def _ack(self, request: Request, peer: Peer) -> HandlerResult:
        call = self.call
        if call is not None and call.invite.call_id == request.call_id:
            call.acked.set()
        return None

    def _bye(self, request: Request, peer: Peer) -> HandlerResult:
        call = self.call
        if call is None or call.dialog is None or call.dialog.call_id != request.call_id:
            return make_response(request, 481)
        call.acked.set()
        self._end(call, "remote hangup")
        return make_response(request, 200)

    def _cancel(self, request: Request, peer: Peer) -> HandlerResult:
        call = self.call
        if call is None or call.invite.call_id != request.call_id or call.state == "up":
            return make_response(request, 481)
        call.cancelled = True
        if call.decision is not None and not call.decision.done():
            call.decision.set_result(False)
        return make_response(request, 200, to_tag=call.to_tag)

    def _ok(self, request: Request, peer: Peer) -> HandlerResult:
        return make_response(request, 200)

    async def hangup(self) -> None:
        """End the call whatever its state: CANCEL, decline or BYE."""
        call = self.call
        if call is None:
            return
        if call.state == "up":
            await self._send_bye(call)
        elif call.direction == "in":
            self.decide(False)
        else:
            call.cancelled = True
            await self._send_cancel(call)

    async def _send_cancel(self, call: LineCall) -> None:
        """RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via."""
        invite = call.invite
        fields = [
            (k, v)
            for k, v in invite.headers
            if k in ("Via", "From", "To", "Call-ID", "Max-Forwards")
        ]
        fields.append(("CSeq", f"{invite.cseq.seq} CANCEL"))
        cancel = Request("CANCEL", invite.uri, Headers(fields))
        await self.endpoint.request(cancel, self.switch)

    async def _send_bye(self, call: LineCall) -> None:
        if call.dialog is None or call.ended.is_set():
            self._end(call, "hangup")
            return
        bye = call.dialog.create_request("BYE", via=self._via())
        self._end(call, "hangup")
        async with asyncio.timeout(40):
            await self.endpoint.request(bye, self.switch)

    async def hold(self, held: bool) -> int:
        """Hold (re-INVITE sendonly) or resume (sendrecv); the re-INVITE's status."""
        call = self.call
        if call is None or call.dialog is None or call.state != "up":
            return 481
        body = call.describe(call.local_sdp, "sendonly" if held else "sendrecv")
        request = call.dialog.create_request(
            "INVITE",
            via=self._via(),
            contact=self.contact,
            headers=[("Content-Type", "application/sdp")],
            body=body,
        )
        response = await self.endpoint.request(request, self.switch)
        if 200 <= response.status < 300:
            ack = call.dialog.create_request("ACK", via=self._via(), cseq=request.cseq.seq)
            self.endpoint.send_stateless(ack, self.switch)
            call.held = held
            self._tell(call)
        return response.status

    async def transfer(self, target: str) -> int:
        """Blind transfer (REFER, RFC 3515) to `target`; the REFER's status."""
        call = self.call
        if call is None or call.dialog is None or call.state != "up":
            return 481
        if not valid_number(target):
            raise ValueError("not a number")
        refer_to = f"<sip:{target}@{self.switch.host}:{self.switch.port}>"
        request = call.dialog.create_request(
            "REFER",
            via=self._via(),
            contact=self.contact,
            headers=[("Refer-To", refer_to), ("Referred-By", self._aor())],
        )
        response = await self.endpoint.request(request, self.switch)
        return response.status

    def dtmf(self, digits: str) -> bool:
        """Send keys to the far end as RFC 4733 events."""
        call = self.call
        if call is None or call.state != "up" or not all(d in "0123456789*#ABCD" for d in digits):
            return False
        return call.leg.send_digits(digits)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _end(self, call: LineCall, why: str) -> None:
        if call.ended.is_set():
            return
        call.state = "ended"
        call.ended.set()
        call.leg.close()
        if self.call is call:
            self.call = None
        self._tell(call, why)
        if self.on_end is not None:
            self.on_end(call)

    def _tell(self, call: LineCall, why: str = "") -> None:
        message: dict[str, object] = {
            "type": "call",
            "id": call.id,
            "direction": call.direction,
            "party": call.party,
            "state": call.state,
            "held": call.held,
        }
        if why:
            message["why"] = why
        self.notify(message)
