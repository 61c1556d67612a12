"""Calls: SIP legs anchored in the switch, the seam applications drive (DESIGN.md).

A `Call` is one SIP dialog between the switch and a phone. An `InboundCall` is a
phone calling us (we are its UAS); an `OutboundCall` is us calling a phone (we are
its UAC). Applications (the B2BUA, later IVR, queues, the dialer) use only their
async methods and events; the SIP rules live here:

- UAS: 1xx and the final response go through the INVITE server transaction; a 2xx
  is retransmitted by us, the TU, doubling from T1 to T2, until the ACK arrives or
  64*T1 passes (RFC 3261 §13.3.1.4, RFC 6026). CANCEL of an unanswered INVITE gets
  200 and the INVITE 487 (§9.2).
- UAC: the ACK for a 2xx is ours to send, again for every retransmitted 2xx
  (§13.2.2.4); CANCEL waits for a provisional response (§9.1).
- In dialog: BYE ends the call (200), a re-INVITE or UPDATE is handed to the
  call's `on_offer` hook (the B2BUA passes it across), INFO to `on_info`.

`CallManager` owns the endpoint handlers for INVITE, ACK, BYE, CANCEL, UPDATE,
INFO and the table of dialogs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy.typing as npt

from media.endpoint import MediaEndpoint, Recording
from media.errors import MediaError
from media.ports import PortAllocator
from media.sdp import SdpOrigin, SessionDescription, audio_stream, g711_offer
from media.sdp import answer as sdp_answer
from media.telephone_event import parse_dtmf_relay
from media.wav import write_wav_durably
from pbx.errors import PbxError
from pbx.events import CallAnswered, CallCreated, CallDtmf, CallEnded, CallRinging, EventBus
from pbx.tasks import spawn
from sip.dialog import Dialog, DialogState, new_branch, new_tag
from sip.endpoint import DROP, Drop, Endpoint, Stateless
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.registration import ClientAuthenticator
from sip.uri import SipUri, Uri

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REFER, NOTIFY"
SDP = "application/sdp"


class CallState(enum.Enum):
    CALLING = "calling"  # INVITE sent or received, nothing more yet
    RINGING = "ringing"  # 180 (or 183) on the way
    UP = "up"  # answered
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Hangup:
    """Why a call ended: the SIP status it ended with (0 for BYE) and a phrase."""

    status: int
    reason: str
    by_remote: bool = False


#: Hook for an offer inside the dialog (re-INVITE/UPDATE): returns (status, answer SDP).
OfferHook = Callable[["Call", bytes], Awaitable[tuple[int, bytes | None]]]
#: Hook for a REFER inside the dialog (RFC 3515): returns the response (202 or an error).
ReferHook = Callable[["Call", Request], Awaitable[Response]]


class Call:
    """One SIP leg anchored in the switch."""

    _ids = itertools.count(1)

    def __init__(self, manager: CallManager, peer: Peer, caller: str, callee: str) -> None:
        self.id = f"{next(Call._ids)}-{secrets.token_hex(3)}"
        self.manager = manager
        self.peer = peer
        self.caller = caller
        self.callee = callee
        #: Labels one application leaves for the next that serves the call (the IVR's
        #: choices, shown on the agent's screen pop by the ACD).
        self.tags: dict[str, str] = {}
        self.state = CallState.CALLING
        self.started = manager.clock()
        #: When the call was answered (manager clock), None until then.
        self.answered_at: float | None = None
        self.dialog: Dialog | None = None
        self.remote_sdp: bytes | None = None
        self.hangup_cause: Hangup | None = None
        self.ended = asyncio.Event()
        self.answered = asyncio.Event()
        self.on_offer: OfferHook | None = None
        self.on_info: Callable[[Call, Request], None] | None = None
        self.on_refer: ReferHook | None = None
        #: The media the switch terminates for this call (IVR, prompts), if any.
        self.media: MediaEndpoint | None = None
        self.on_end: list[Callable[[Call], None]] = []
        #: Called once when the call is answered (e.g. the CDR's answer time).
        self.on_answer: list[Callable[[Call], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._origin: SdpOrigin | None = None
        #: The CDR row this leg is part of, when the B2BUA opened one (for the end event).
        self.cdr_id: int | None = None
        #: The trunk this call came in from (None: a local user's call or the switch's own).
        self.trunk: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.caller}->{self.callee} {self.state.value}>"

    @property
    def call_id(self) -> str:
        return self.dialog.call_id if self.dialog else ""

    def _sdp(self, body: bytes) -> bytes:
        """`body` as this leg sends it: one o= line for the dialog, its version raised
        whenever the description changes (RFC 3264 §8)."""
        if not body:
            return body
        if self._origin is None:
            self._origin = SdpOrigin(self.manager.local_host(self.peer))
        return self._origin.stamp(body)

    def _answered_now(self) -> None:
        self.answered_at = self.manager.clock()
        self.answered.set()
        self.manager.events.publish(CallAnswered(self.id))
        for callback in self.on_answer:
            try:
                callback(self)
            except Exception:
                log.exception("call %s: answer callback failed", self.id)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run a task the call owns; it is cancelled when the call ends."""
        spawn(self._tasks, coro, f"call {self.id}: {name}")

    def _end(self, cause: Hangup) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.hangup_cause = cause
        if self.dialog is not None:
            self.dialog.state = DialogState.TERMINATED
        self.manager._forget(self)
        if self.media is not None:
            self.media.close()
        self.ended.set()
        self.manager.events.publish(
            CallEnded(self.id, cause.status, cause.reason, cause.by_remote, self.cdr_id)
        )
        for callback in self.on_end:
            try:
                callback(self)
            except Exception:
                log.exception("call %s: end callback failed", self.id)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        """End the call from our side (BYE when up; the subclasses handle the rest)."""
        raise NotImplementedError

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        """Play 8 kHz audio to the phone (see `MediaEndpoint.play`); returns False at
        once when the call ends (BYE, CANCEL) meanwhile.

        Raises: PbxError when the call has no terminated media (answer_media first).
        """
        return await self._own_media().play(samples, stop_on_digit=stop_on_digit)

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        """Digits the phone sends (RFC 4733, SIP INFO or in-band), as `MediaEndpoint` collects;
        what was collected so far, at once, when the call ends meanwhile.

        Raises: PbxError when the call has no terminated media.
        """
        return await self._own_media().collect_digits(
            max_digits,
            timeout=timeout,
            inter_digit_timeout=inter_digit_timeout,
            terminator=terminator,
        )

    async def record(
        self,
        path: Path,
        *,
        max_seconds: float,
        silence_seconds: float | None = None,
        stop_digits: str = "#",
    ) -> Recording:
        """Record what the phone sends into an 8 kHz mono WAV at `path` (see
        `MediaEndpoint.record` for how it ends), written durably (fsynced, renamed
        into place). Nothing is written when nothing but silence was heard.

        Raises: PbxError when the call has no terminated media; OSError when the file
        cannot be written.
        """
        heard = await self._own_media().record(
            max_seconds, silence_seconds=silence_seconds, stop_digits=stop_digits
        )
        if heard.sound_seconds > 0:
            await asyncio.to_thread(write_wav_durably, path, heard.samples, 8000)
        return heard

    def terminate_here(self, media: MediaEndpoint, host: str) -> None:
        """Make `media` (the switch's own, at `host`) this call's: it answers the phone's
        re-INVITEs and UPDATEs and takes its SIP INFO digits; it closes with the call.
        With the manager's `media_timeout`, a phone that sends nothing for that long
        (`hold_timeout` while it holds the call) is hung up ("media timeout")."""
        self.media = media
        self.on_info = _info_digits
        self.on_offer = _media_offer(host)
        manager = self.manager
        if manager.media_timeout:  # a phone gone silent (lost, unplugged) is hung up
            media.watch_silence(
                manager.media_timeout,
                manager.hold_timeout,
                lambda: manager.spawn(self.hangup(0, "media timeout"), f"media timeout {self.id}"),
            )

    def _own_media(self) -> MediaEndpoint:
        if self.media is None:
            raise PbxError(f"call {self.id} has no media of the switch's own")
        return self.media

    async def _bye(self, reason: str) -> None:
        assert self.dialog is not None
        bye = self.dialog.create_request("BYE", via=self.manager.via(self.peer))
        self._end(Hangup(0, reason))
        response = await self.manager.endpoint.request(bye, self.peer)
        if response.status >= 300:
            log.info("call %s: BYE answered %s", self.id, response.status)

    async def send_info(self, content_type: str, body: bytes) -> int:
        """Send an INFO in the dialog (e.g. a DTMF digit as application/dtmf-relay);
        returns the phone's answer status (0 when the call is not up)."""
        if self.dialog is None or self.state is not CallState.UP:
            return 0
        info = self.dialog.create_request(
            "INFO",
            via=self.manager.via(self.peer),
            contact=self.manager.contact(self._local_user(), self.peer),
            headers=[("Content-Type", content_type)],
            body=body,
        )
        response = await self.manager.endpoint.request(info, self.peer)
        if response.status >= 300:
            log.info("call %s: INFO answered %s", self.id, response.status)
        return response.status

    async def notify_refer(self, status_line: str, *, final: bool) -> None:
        """Report a transfer's progress to the transferor (RFC 3515 §2.4.4: a NOTIFY with
        a message/sipfrag body holding the new call's status line)."""
        if self.dialog is None or self.state is CallState.ENDED:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        notify = self.dialog.create_request(
            "NOTIFY",
            via=self.manager.via(self.peer),
            contact=self.manager.contact(self._local_user(), self.peer),
            headers=[
                ("Event", "refer"),
                ("Subscription-State", state),
                ("Content-Type", "message/sipfrag;version=2.0"),
            ],
            body=(status_line + "\r\n").encode(),
        )
        response = await self.manager.endpoint.request(notify, self.peer)
        if response.status >= 300:
            log.info("call %s: NOTIFY of the transfer answered %s", self.id, response.status)

    async def send_offer(self, sdp: bytes) -> tuple[int, bytes | None]:
        """Send a re-INVITE with `sdp` in the dialog; returns (status, answer SDP)."""
        if self.dialog is None or self.state is not CallState.UP:
            return 491, None
        invite = self.dialog.create_request(
            "INVITE",
            via=self.manager.via(self.peer),
            contact=self.manager.contact(self._local_user(), self.peer),
            headers=[("Content-Type", SDP), ("Allow", ALLOW)],
            body=self._sdp(sdp),
        )
        response = await self.manager.endpoint.request(invite, self.peer)
        if 200 <= response.status < 300:
            ack = self.dialog.create_request(
                "ACK", via=self.manager.via(self.peer), cseq=invite.cseq.seq
            )
            self.manager.endpoint.send_stateless(ack, self.peer)
            if response.headers.get("Contact"):
                self.dialog.confirm(response)
            self.remote_sdp = response.body or self.remote_sdp
            return response.status, response.body or None
        return response.status, None

    @property
    def outbound(self) -> bool:
        return isinstance(self, OutboundCall)

    async def _handle_offer(self, request: Request) -> Response:
        """A re-INVITE or UPDATE from the peer: ask the hook, answer with its result."""
        if self.on_offer is None or not request.body:
            body = b""
            status = 200
        else:
            status, answer = await self.on_offer(self, request.body)
            body = answer or b""
        if 200 <= status < 300:
            self.remote_sdp = request.body or self.remote_sdp
            headers = [("Contact", self.manager.contact(self._local_user(), self.peer))]
            if body:
                headers.append(("Content-Type", SDP))
            return make_response(request, status, headers=headers, body=self._sdp(body))
        return make_response(request, status)

    def _local_user(self) -> str:
        return self.callee if not self.outbound else self.caller


class InboundCall(Call):
    """A phone called the switch; we answer, ring, reject or hang up."""

    def __init__(self, manager: CallManager, request: Request, peer: Peer, caller: str) -> None:
        callee = request.uri.user if isinstance(request.uri, SipUri) and request.uri.user else ""
        super().__init__(manager, peer, caller, callee)
        self.request = request
        self.to_tag = new_tag()
        self.remote_sdp = request.body or None
        #: The INVITE came without an offer (RFC 3261 §13.2.1 "late offer"): our 2xx
        #: carries the offer and the ACK the phone's answer (`ack_sdp`).
        self.late_offer = not request.body
        self.ack_sdp: bytes | None = None
        self.dialog = Dialog.as_uas(request, self.to_tag)
        self._acked = asyncio.Event()
        self._final_sent = False

    def _response(
        self,
        status: int,
        reason: str | None = None,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        headers: list[tuple[str, str]] = list(extra)
        if status < 300 and status != 100:
            headers.append(("Contact", self.manager.contact(self.callee, self.peer)))
            headers.append(("Allow", ALLOW))
        if body:
            headers.append(("Content-Type", SDP))
        return make_response(
            self.request, status, reason, to_tag=self.to_tag, headers=headers, body=self._sdp(body)
        )

    async def ring(self, sdp: bytes | None = None) -> None:
        """Send 180 Ringing, or 183 Session Progress with early media SDP."""
        self.ring_now(sdp)

    def ring_now(self, sdp: bytes | None = None) -> None:
        """`ring` for synchronous callers (a fork's progress relayed at once)."""
        if self.state not in (CallState.CALLING, CallState.RINGING):
            return
        if self.state is CallState.CALLING:
            self.manager.events.publish(CallRinging(self.id, 183 if sdp else 180))
        self.state = CallState.RINGING
        if sdp:
            self.manager.endpoint.respond(self._response(183, body=sdp))
        else:
            self.manager.endpoint.respond(self._response(180))

    async def answer(self, sdp: bytes | None) -> bool:
        """Send 200 with our SDP and retransmit it until the ACK comes (§13.3.1.4).

        Returns whether the ACK arrived (no ACK within 64*T1 ends the call).
        """
        if self.state in (CallState.UP, CallState.ENDED) or self._final_sent:
            return False
        self._final_sent = True
        ok = self._response(200, body=sdp or b"")
        self.state = CallState.UP
        assert self.dialog is not None
        self.dialog.state = DialogState.CONFIRMED
        self._answered_now()
        timers = self.manager.endpoint.layer.timers
        interval = timers.t1
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 64 * timers.t1
        self.manager.endpoint.respond(ok)
        while not self._acked.is_set():
            timeout = min(interval, give_up - loop.time())
            if timeout <= 0:
                log.info("call %s: no ACK for our 200; hanging up", self.id)
                await self._bye("no ACK")
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), timeout)
            if not self._acked.is_set() and self.state is CallState.UP:
                self.manager.endpoint.respond(ok)  # passed on in Accepted (RFC 6026)
                interval = min(interval * 2, timers.t2)
        return True

    async def answer_media(
        self,
        ports: PortAllocator,
        host: str,
        *,
        prepare: Callable[[MediaEndpoint], None] | None = None,
    ) -> MediaEndpoint:
        """Answer with the switch's own media (for prompts, menus, voicemail).

        The answer names PCMU or PCMA and telephone-event from the caller's offer.
        A late-offer INVITE gets our offer (PCMU, PCMA, telephone-event) in the 200,
        and the phone's answer comes in its ACK; an ACK without a usable answer ends
        the call (MediaError). `prepare` gets the endpoint before the 200 goes out.
        Raises: MediaError (the call is refused with 488) when the offer has neither
        G.711 law, PortsExhaustedError (refused with 503).
        """
        if self.late_offer:
            return await self._answer_media_late(ports, host, prepare)
        try:
            offer = SessionDescription.parse(self.remote_sdp or b"")
            sdp_answer(offer, host, 0, preferences=("PCMU", "PCMA", "telephone-event"))
        except MediaError:
            await self.reject(488, "Not Acceptable Here")
            raise
        try:
            media = MediaEndpoint(ports, name=self.request.call_id)
        except MediaError:
            await self.reject(503, "Out Of Media Ports")
            raise
        if prepare is not None:  # before the phone can send anything (digit listeners ...)
            prepare(media)
        try:
            reply = _terminate(offer, media, host, self.peer.host)
        except MediaError:  # a codec the endpoint cannot terminate
            media.close()
            await self.reject(488, "Not Acceptable Here")
            raise
        self.terminate_here(media, host)
        await self.answer(reply)
        return media

    async def _answer_media_late(
        self,
        ports: PortAllocator,
        host: str,
        prepare: Callable[[MediaEndpoint], None] | None,
    ) -> MediaEndpoint:
        try:
            media = MediaEndpoint(ports, name=self.request.call_id)
        except MediaError:
            await self.reject(503, "Out Of Media Ports")
            raise
        if prepare is not None:  # before the phone can send anything (digit listeners ...)
            prepare(media)
        self.terminate_here(media, host)
        if not await self.answer(g711_offer(host, media.port)):
            raise MediaError("no ACK for the offer in our 200")
        try:
            theirs = audio_stream(SessionDescription.parse(self.ack_sdp or b""))
            media.set_remote(
                theirs,
                signalling_host=self.peer.host,
                send=theirs.direction in ("sendrecv", "recvonly"),  # the phone's direction
            )
        except MediaError as exc:
            await self.hangup(0, "no usable answer in the ACK")
            raise MediaError(f"late offer: the ACK's answer is unusable ({exc})") from None
        return media

    async def reject(self, status: int, reason: str | None = None) -> None:
        """Refuse the call with a final error response (4xx-6xx)."""
        if self._final_sent or self.state is CallState.ENDED:
            return
        self._final_sent = True
        self.manager.endpoint.respond(self._response(status, reason))
        self._end(Hangup(status, reason or "", by_remote=False))

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        if self.state is CallState.UP:
            await self._bye(reason)
        elif self.state is not CallState.ENDED:
            await self.reject(status or 480, None)

    def _cancelled(self, cancel: Request) -> None:
        if self._final_sent:
            return
        self._final_sent = True
        self.manager.endpoint.respond(self._response(487))
        self._end(Hangup(487, "Request Terminated", by_remote=True))

    def _ack(self, body: bytes = b"") -> None:
        if not self._acked.is_set() and body:
            self.ack_sdp = body
        self._acked.set()

    def _end(self, cause: Hangup) -> None:
        # A BYE may overtake the ACK (a lost or late ACK): the call is over, so the
        # 2xx retransmissions of `answer` stop too instead of running to 64*T1.
        super()._end(cause)
        self._acked.set()


class OutboundCall(Call):
    """The switch calls a phone at a registered contact."""

    def __init__(
        self,
        manager: CallManager,
        target: Uri,
        peer: Peer,
        caller: str,
        callee: str,
        *,
        caller_name: str | None = None,
    ) -> None:
        super().__init__(manager, peer, caller, callee)
        self.target = target
        self.caller_name = caller_name
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.on_ringing: Callable[[OutboundCall, Response], None] | None = None
        #: Extra header fields for the INVITE (an application's own, e.g. Call-Info).
        self.headers: list[tuple[str, str]] = []
        #: Answers a 401/407 to the INVITE once (CSeq + 1, credentials for the realm) and
        #: preauthorizes with the challenges it cached (a trunk's; None: no credentials).
        self.authenticator: ClientAuthenticator | None = None
        #: The From URI's user and host (None: the caller and our own address).
        self.from_user: str | None = None
        self.from_host: str | None = None
        self._invite: Request | None = None
        self._provisional = asyncio.Event()
        self._cancel_requested = False
        self._cancel_sent = False

    def start(self, sdp: bytes | None) -> None:
        """Send the INVITE; progress arrives through `on_ringing`, the end through `final`."""
        host = self.manager.local_host(self.peer)
        name = f'"{self.caller_name}" ' if self.caller_name else ""
        from_user = self.from_user or self.caller
        from_host = self.from_host or host
        fields = [
            ("Via", self.manager.via(self.peer)),
            ("Max-Forwards", "70"),
            ("From", f"{name}<sip:{from_user}@{from_host}>;tag={new_tag()}"),
            ("To", f"<{self.target}>"),
            ("Call-ID", f"{secrets.token_hex(12)}@{host}"),
            ("CSeq", f"{secrets.randbelow(2**16) + 1} INVITE"),
            ("Contact", self.manager.contact(self.caller, self.peer)),
            ("Allow", ALLOW),
            ("User-Agent", self.manager.endpoint.server_header),
        ]
        fields.extend(self.headers)
        if sdp:
            fields.append(("Content-Type", SDP))
        invite = Request("INVITE", self.target, Headers(fields), self._sdp(sdp or b""))
        if self.authenticator is not None:
            invite = self.authenticator.preauthorize(invite)
        self._invite = invite
        self.manager._outbound_started(self)
        self._spawn(self._run(), "invite")

    async def _run(self) -> None:
        assert self._invite is not None
        response = await self.manager.endpoint.request(
            self._invite, self.peer, on_provisional=self._on_provisional
        )
        retry = self._authorized(response)
        if retry is not None:
            # A new INVITE transaction (RFC 3261 §22.2: same Call-ID, From tag, CSeq + 1,
            # new branch). The first one's ACK was its transaction's (§17.1.1.3); a CANCEL
            # from now on names the retried INVITE, and waits for its own provisional.
            self._invite = retry
            self._provisional.clear()
            response = await self.manager.endpoint.request(
                retry, self.peer, on_provisional=self._on_provisional
            )
        if 200 <= response.status < 300:
            self._on_2xx(response)
            if self._cancel_requested:
                await self._bye("cancelled")
        else:
            reason = response.reason
            self._end(Hangup(response.status, reason, by_remote=True))
        if not self.final.done():
            self.final.set_result(response)

    def _authorized(self, response: Response) -> Request | None:
        """The INVITE again with credentials when `response` is a 401/407 we can answer
        (once: the retry is never retried), else None. Nothing is retried once the
        caller gave up. The password never reaches the log."""
        if response.status not in (401, 407) or self.authenticator is None:
            return None
        if self._cancel_requested or self._invite is None:
            return None
        retry = self.authenticator.authorize(self._invite, response)
        if retry is None:
            log.warning(
                "call %s: INVITE to %s refused %d %s and no credentials answer it",
                self.id,
                self.target,
                response.status,
                response.reason,
            )
        else:
            log.info(
                "call %s: INVITE to %s challenged (%d); retried with credentials",
                self.id,
                self.target,
                response.status,
            )
        return retry

    def _on_provisional(self, response: Response) -> None:
        first = not self._provisional.is_set()
        self._provisional.set()
        if first and self._cancel_requested:
            self._spawn(self._send_cancel(), "cancel")
        if response.status == 100:
            return
        if response.to.tag and self.dialog is None:
            with contextlib.suppress(SipParseError):
                assert self._invite is not None
                self.dialog = Dialog.as_uac(self._invite, response)
                self.manager._register(self)
        if response.body:
            self.remote_sdp = response.body
        if self.state is CallState.CALLING:
            self.state = CallState.RINGING
            self.manager.events.publish(CallRinging(self.id, response.status))
        if self.on_ringing is not None:
            self.on_ringing(self, response)

    def _on_2xx(self, response: Response) -> None:
        assert self._invite is not None
        if self.dialog is None or self.dialog.remote_tag != response.to.tag:
            if self.dialog is not None:
                self.manager._forget(self)
            self.dialog = Dialog.as_uac(self._invite, response)
            self.manager._register(self)
        self.dialog.confirm(response)
        self.remote_sdp = response.body or self.remote_sdp
        self.state = CallState.UP
        self._answered_now()
        self._send_ack()

    def _send_ack(self) -> None:
        assert self.dialog is not None and self._invite is not None
        ack = self.dialog.create_request(
            "ACK", via=self.manager.via(self.peer), cseq=self._invite.cseq.seq
        )
        self.manager.endpoint.send_stateless(ack, self.peer)

    def _retransmitted_2xx(self) -> None:
        """A 2xx came again: our ACK was lost (§13.2.2.4: send it again)."""
        if self.state is CallState.UP:
            self._send_ack()

    async def cancel(self) -> None:
        """Stop ringing. §9.1: a CANCEL "SHOULD NOT be sent" before a provisional
        response; without one yet it goes out when the first arrives (and if none
        ever does, Timer B ends the INVITE)."""
        if self.state not in (CallState.CALLING, CallState.RINGING) or self._invite is None:
            return
        self._cancel_requested = True
        if self._provisional.is_set():
            await self._send_cancel()

    async def _send_cancel(self) -> None:
        if self.final.done() or self.answered.is_set() or self._cancel_sent:
            return
        self._cancel_sent = True
        assert self._invite is not None
        invite = self._invite
        fields = [
            ("Via", invite.headers.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            # §9.1: the CANCEL carries the INVITE's Route values (a trunk's Service-Route).
            *(("Route", value) for value in invite.headers.get_all("Route")),
            ("From", invite.headers.get("From") or ""),
            ("To", invite.headers.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
        ]
        cancel = Request("CANCEL", invite.uri, Headers(fields))
        await self.manager.endpoint.request(cancel, self.peer)

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        if self.state is CallState.UP:
            await self._bye(reason)
        elif self.state is not CallState.ENDED:
            await self.cancel()


#: What the manager does with a new authenticated inbound call.
IncomingHook = Callable[[InboundCall], Awaitable[None]]
#: Authenticates an INVITE: returns the caller's user name, or the response to send.
AuthHook = Callable[[Request, Peer], "str | Response | None"]


def _terminate(offer: SessionDescription, media: MediaEndpoint, host: str, peer_host: str) -> bytes:
    """Answer `offer` with the switch's own media at `host` and point `media` at it.

    Raises: MediaError (SdpError) when the offer has neither G.711 law.
    """
    reply = sdp_answer(offer, host, media.port, preferences=("PCMU", "PCMA", "telephone-event"))
    chosen, offered = audio_stream(reply), audio_stream(offer)
    media.set_remote(
        dataclasses.replace(
            chosen, host=offered.host, port=offered.port, rtcp_port=offered.rtcp_port
        ),
        signalling_host=peer_host,
        send=chosen.direction in ("sendrecv", "sendonly"),  # our answer's direction
    )
    return bytes(reply)


def _media_offer(host: str) -> OfferHook:
    """The offer hook of a call whose media the switch terminates: a re-INVITE or UPDATE
    (a new port or codec, hold) is answered from the same endpoint, which re-latches
    only when the offered address changed."""

    async def hook(call: Call, sdp: bytes) -> tuple[int, bytes | None]:
        media = call.media
        if media is None or media.closed:
            return 488, None
        try:
            return 200, _terminate(SessionDescription.parse(sdp), media, host, call.peer.host)
        except MediaError as exc:
            log.info("call %s: offer refused: %s", call.id, exc)
            return 488, None

    return hook


def _info_digits(call: Call, request: Request) -> None:
    """SIP INFO with application/dtmf-relay or application/dtmf: a digit for the media."""
    kind = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if call.media is None or kind not in ("application/dtmf-relay", "application/dtmf"):
        return
    try:
        digit, _ = parse_dtmf_relay(request.body)
    except MediaError as exc:
        log.info("call %s: unreadable DTMF INFO: %s", call.id, exc)
        return
    call.media.push_digit(digit)
    call.manager.events.publish(CallDtmf(call.id, digit))


async def _unavailable(call: InboundCall) -> None:
    await call.reject(480, "Temporarily Unavailable")


class CallManager:
    """SIP handlers for calls, and the table of live dialogs."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        authenticate: AuthHook,
        sip_host: str,
        sip_port: int,
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        #: Where the call legs' events go (pbx.events); the server passes its bus.
        self.events = events if events is not None else EventBus()
        self._authenticate = authenticate
        #: The application that takes new inbound calls (the B2BUA's dialplan).
        self.on_incoming: IncomingHook = _unavailable
        self.sip_host = sip_host
        self.sip_port = sip_port
        #: Seconds without RTP/RTCP from a phone after which a call whose media ends at
        #: the switch is hung up (None: never); `hold_timeout` while the phone holds.
        self.media_timeout: float | None = None
        self.hold_timeout: float | None = None
        self.calls: dict[str, Call] = {}
        self._dialogs: dict[tuple[str, str, str], Call] = {}
        self._invites: dict[tuple[str, str], InboundCall] = {}  # (Call-ID, From tag)
        self._outbound: dict[str, OutboundCall] = {}  # Call-ID -> call (before a dialog)
        self._tasks: set[asyncio.Task[None]] = set()
        self._local_ips: dict[str, str] = {}
        for method, handler in (
            ("INVITE", self._invite),
            ("ACK", self._ack),
            ("BYE", self._in_dialog),
            ("CANCEL", self._cancel),
            ("UPDATE", self._in_dialog),
            ("INFO", self._in_dialog),
            ("REFER", self._in_dialog),
        ):
            endpoint.route(method, handler)
        endpoint.on_stray_response = self._stray_response

    # -- addresses --------------------------------------------------------------

    def local_host(self, peer: Peer) -> str:
        """Our address as `peer` sees it (the bound one, or the route's source)."""
        if self.sip_host not in ("0.0.0.0", "::", ""):
            return self.sip_host
        ip = self._local_ips.get(peer.host)
        if ip is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((peer.host, peer.port or 5060))
                    ip = str(probe.getsockname()[0])
                except OSError:
                    ip = "127.0.0.1"
            self._local_ips[peer.host] = ip
        return ip

    def via(self, peer: Peer) -> str:
        return (
            f"SIP/2.0/{peer.transport} {self.local_host(peer)}:{self.sip_port}"
            f";rport;branch={new_branch()}"
        )

    def contact(self, user: str, peer: Peer) -> str:
        transport = ";transport=tcp" if peer.transport == "TCP" else ""
        return f"<sip:{user}@{self.local_host(peer)}:{self.sip_port}{transport}>"

    # -- bookkeeping --------------------------------------------------------------

    def _register(self, call: Call) -> None:
        self.calls[call.id] = call
        if call.dialog is not None:
            self._dialogs[call.dialog.id] = call

    def _outbound_started(self, call: OutboundCall) -> None:
        self.calls[call.id] = call
        assert call._invite is not None
        self.events.publish(
            CallCreated(call.id, "out", call.caller, call.callee, call._invite.call_id)
        )
        self._outbound[call._invite.call_id] = call

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        if call.dialog is not None:
            self._dialogs.pop(call.dialog.id, None)
        if isinstance(call, InboundCall):
            self._invites.pop(
                (call.request.call_id, call.dialog.remote_tag if call.dialog else ""), None
            )

    def _find(self, request: Request) -> Call | None:
        from_tag, to_tag = request.from_.tag or "", request.to.tag or ""
        return self._dialogs.get((request.call_id, to_tag, from_tag))

    async def close(self) -> None:
        """Hang up every call (all at once, 2 s for all the BYEs' answers: a shutdown with
        hundreds of calls up is not held up by phones that no longer answer) and cancel
        the manager's tasks."""
        hangups = [call.hangup(503, "Service Shutting Down") for call in list(self.calls.values())]
        if hangups:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*hangups, return_exceptions=True), 2)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- handlers ------------------------------------------------------------------

    def _invite(
        self, request: Request, peer: Peer
    ) -> Response | Stateless | Drop | Awaitable[Response | None] | None:
        if request.to.tag:
            call = self._find(request)
            if call is None or call.state is CallState.ENDED:
                return make_response(request, 481, "Call/Transaction Does Not Exist")
            status = call.dialog.receive(request) if call.dialog else None
            if status is not None:
                return make_response(request, status)
            return call._handle_offer(request)
        who = self._authenticate(request, peer)
        if isinstance(who, Response):
            # A challenge (or refusal) to an INVITE anyone could have spoofed is sent
            # once and forgotten, as Kamailio and OpenSIPS do: the nonce authenticates
            # itself (HMAC), so no state is needed to check the answer, and a spoofed
            # INVITE cannot make us retransmit (Timer G) at a victim.
            return Stateless(who)
        if who is None:
            return DROP  # banned source: no answer, no transaction
        if (request.call_id, request.from_.tag or "") in self._invites:
            # §8.2.2.2: "If the request has no tag in the To header field, the UAS core
            # MUST check the request against ongoing transactions. If the From tag,
            # Call-ID, and CSeq exactly match those associated with an ongoing
            # transaction, but the request does not match that transaction (based on the
            # matching rules in Section 17.2.3), the UAS core SHOULD generate a 482".
            return make_response(request, 482, "Loop Detected")
        try:
            call = InboundCall(self, request, peer, who)
        except SipParseError as exc:
            return make_response(request, 400, exc.reason)
        self._register(call)
        self._invites[(request.call_id, request.from_.tag or "")] = call
        self.events.publish(CallCreated(call.id, "in", call.caller, call.callee, request.call_id))
        log.info(
            "call %s: INVITE from %s to %s (Call-ID %s)", call.id, who, call.callee, request.call_id
        )
        self.spawn(self.on_incoming(call), f"incoming {call.id}")
        return None

    def _ack(self, request: Request, peer: Peer) -> None:
        call = self._find(request)
        if isinstance(call, InboundCall):
            call._ack(request.body)

    def _in_dialog(self, request: Request, peer: Peer) -> Response | Awaitable[Response | None]:
        call = self._find(request)
        if call is None or call.dialog is None:
            return make_response(request, 481, "Call/Transaction Does Not Exist")
        status = call.dialog.receive(request)
        if status is not None:
            return make_response(request, status)
        if request.method == "BYE":
            call._end(Hangup(0, "remote hangup", by_remote=True))
            return make_response(request, 200)
        if request.method == "UPDATE":
            return call._handle_offer(request)
        if request.method == "REFER":
            if call.on_refer is None or call.state is not CallState.UP:
                return make_response(request, 603, "Declined")
            return call.on_refer(call, request)
        if request.method == "INFO" and call.on_info is not None:
            call.on_info(call, request)
        return make_response(request, 200)

    def find_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> Call | None:
        """The live call with that dialog ID (our tag, then theirs), e.g. for Replaces."""
        return self._dialogs.get((call_id, local_tag, remote_tag))

    def _cancel(self, request: Request, peer: Peer) -> Response | None:
        call = self._invites.get((request.call_id, request.from_.tag or ""))
        if call is None or call.state is CallState.ENDED:
            return make_response(request, 481, "Call/Transaction Does Not Exist")
        # §9.2: answer the CANCEL 200, then the INVITE 487 if it is still pending. "The
        # To tag of the response to the CANCEL and the To tag in the response to the
        # original request SHOULD be the same."
        self.endpoint.respond(make_response(request, 200, to_tag=call.to_tag))
        call._cancelled(request)
        return None

    def _stray_response(self, response: Response, peer: Peer) -> None:
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        call = self._dialogs.get(
            (response.call_id, response.from_.tag or "", response.to.tag or "")
        )
        if isinstance(call, OutboundCall):
            call._retransmitted_2xx()

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run a task the manager owns (cancelled on close)."""
        spawn(self._tasks, coro, name)
