"""The Call API: the one module applications (IVR, voicemail, later queues and the
dialer) import from pbx (DESIGN.md "The Call API").

An application sees a `Call` (one leg anchored in the switch: answer, play, collect
digits, record, listen, transfer, hang up; its events by subscription) and a narrow
`Switch` (dial a call of its own, bridge two calls and split them again, its own
repository). Outcomes are structured (`Outcome`: a `Cause` and the SIP status), not
strings. Nothing here hands out ports, hosts, SIP dialogs or the B2BUA.

Media of an API call is the switch's own (`media.endpoint.MediaEndpoint`), from the
answer to the end: prompts, digits and recording on it; a `Bridge` of two such calls
joins the two endpoints (each phone hears the other in its own RTP stream, no
re-INVITE); `split` gives both back. Every media verb returns at once when the call
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from media.endpoint import MediaEndpoint, Recording
from media.errors import MediaError
from media.moh import MohError
from media.sdp import SessionDescription, audio_stream, g711_offer
from pbx import calls
from pbx.b2bua import Attempt, B2bua, Reached
from pbx.errors import ConfigError, NotFoundError, PbxError
from pbx.registrar import Target
from pbx.store import Disposition
from pbx.store.voicemail import PIN_DIGITS, Voicemail, VoicemailRepo
from sip.errors import SipParseError
from sip.peer import Peer
from sip.uri import SipUri

log = logging.getLogger(__name__)

__all__ = [
    "PIN_DIGITS",
    "Application",
    "Bridge",
    "Call",
    "CallEvent",
    "Cause",
    "ConfigError",
    "DialError",
    "EventKind",
    "Outcome",
    "PbxError",
    "Recording",
    "Subscription",
    "Switch",
    "Voicemail",
    "VoicemailRepo",
    "VoicemailService",
]

#: Header fields an application may not set on a call the switch places.
_RESERVED_HEADERS = frozenset(
    {
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "content-type",
        "content-length",
        "max-forwards",
        "route",
        "record-route",
    }
)


class Cause(enum.Enum):
    """Why a call ended or a dial failed."""

    NORMAL = "normal"
    BUSY = "busy"
    NO_ANSWER = "no answer"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not found"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    LOOP = "forwarding loop"
    FAILED = "failed"


_CAUSE_OF_STATUS = {
    486: Cause.BUSY,
    600: Cause.BUSY,
    408: Cause.NO_ANSWER,
    480: Cause.UNAVAILABLE,
    404: Cause.NOT_FOUND,
    487: Cause.CANCELLED,
    603: Cause.REJECTED,
    482: Cause.LOOP,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How something ended: a `Cause`, the SIP status behind it (0: none, e.g. a BYE)
    and words for logs and CDRs."""

    cause: Cause
    status: int = 0
    reason: str = ""

    @classmethod
    def of_status(cls, status: int, reason: str = "") -> Outcome:
        """The outcome a final SIP status stands for."""
        if 200 <= status < 300:
            return cls(Cause.NORMAL, status, reason)
        return cls(_CAUSE_OF_STATUS.get(status, Cause.FAILED), status, reason)

    def __str__(self) -> str:
        words = self.reason or self.cause.value
        return f"{self.status} {words}" if self.status else words


class DialError(PbxError):
    """`Switch.dial` reached nobody; `outcome` says why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"dial failed: {outcome}")
        self.outcome = outcome


class EventKind(enum.Enum):
    ANSWERED = "answered"
    DTMF = "dtmf"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One thing that happened to a call (`digit` for DTMF, `outcome` when ENDED)."""

    kind: EventKind
    call_id: str
    digit: str = ""
    outcome: Outcome | None = None


class Subscription:
    """A subscriber's bounded queue of one call's events; an async iterator that ends
    after ENDED. A subscriber that lets `maxsize` events pile up is dropped (its
    iterator ends), never slowing the call."""

    def __init__(self, call_id: str, maxsize: int) -> None:
        self.call_id = call_id
        self._queue: asyncio.Queue[CallEvent | None] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self.dropped = False
        self.closed = False

    def _offer(self, event: CallEvent) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._maxsize:
            log.warning("call %s: event subscriber too slow, dropped", self.call_id)
            self.dropped = True
            self.close()
            return
        self._queue.put_nowait(event)
        if event.kind is EventKind.ENDED:
            self.close()

    def close(self) -> None:
        """Stop receiving; the iterator ends after the events already queued."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> CallEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event


class Call:
    """One call of an application: inbound (to a number it owns) or placed by `Switch.dial`."""

    def __init__(self, leg: calls.Call, switch: Switch) -> None:
        self._leg = leg
        self._switch = switch
        self._subscribers: list[Subscription] = []
        self._digit_hooked = False
        leg.on_answer.append(lambda _: self._publish(CallEvent(EventKind.ANSWERED, leg.id)))
        leg.on_end.append(lambda _: self._ended())
        if leg.media is not None:
            self._hook_digits(leg.media)

    def __repr__(self) -> str:
        return f"<api.Call {self.id} {self.caller}->{self.callee}>"

    # -- what the call is ----------------------------------------------------------

    @property
    def id(self) -> str:
        return self._leg.id

    @property
    def caller(self) -> str:
        return self._leg.caller

    @property
    def callee(self) -> str:
        return self._leg.callee

    @property
    def peer_host(self) -> str:
        """Where the phone's SIP comes from (for logs)."""
        return self._leg.peer.host

    @property
    def up(self) -> bool:
        """Whether the call is answered and not ended."""
        return self._leg.state is calls.CallState.UP

    @property
    def ended(self) -> bool:
        return self._leg.state is calls.CallState.ENDED

    @property
    def has_media(self) -> bool:
        """Whether the switch's own media is on the call (answered by an application)."""
        return self._leg.media is not None and not self._leg.media.closed

    @property
    def outcome(self) -> Outcome | None:
        """How the call ended (None while it lasts)."""
        cause = self._leg.hangup_cause
        if cause is None:
            return None
        if cause.status == 0 or 200 <= cause.status < 300:
            return Outcome(Cause.NORMAL, 0, cause.reason)
        return Outcome.of_status(cause.status, cause.reason)

    async def wait_ended(self) -> Outcome:
        await self._leg.ended.wait()
        outcome = self.outcome
        assert outcome is not None
        return outcome

    # -- events --------------------------------------------------------------------

    def subscribe(self, maxsize: int = 64) -> Subscription:
        """The call's events from now on (answered, dtmf, ended), in a bounded queue."""
        sub = Subscription(self.id, maxsize)
        if self.ended:
            sub._offer(CallEvent(EventKind.ENDED, self.id, outcome=self.outcome))
        else:
            self._subscribers.append(sub)
        return sub

    def _publish(self, event: CallEvent) -> None:
        for sub in list(self._subscribers):
            sub._offer(event)
            if sub.closed:
                self._subscribers.remove(sub)

    def _ended(self) -> None:
        self._publish(CallEvent(EventKind.ENDED, self.id, outcome=self.outcome))
        self._subscribers.clear()

    def _hook_digits(self, media: MediaEndpoint) -> None:
        if not self._digit_hooked:
            self._digit_hooked = True
            media.digit_listeners.append(
                lambda digit: self._publish(CallEvent(EventKind.DTMF, self.id, digit=digit))
            )

    # -- signalling ----------------------------------------------------------------

    async def ring(self) -> None:
        """180 Ringing to an inbound call not answered yet."""
        if isinstance(self._leg, calls.InboundCall):
            await self._leg.ring()

    async def answer(self) -> bool:
        """Answer with the switch's own media (prompts, digits, recording); True when the
        call is up with it. An offer the switch cannot take is refused (488/503) and
        False returned. A call answered already keeps its media."""
        leg = self._leg
        if leg.media is not None:
            return self.up
        if not isinstance(leg, calls.InboundCall) or leg.state is calls.CallState.ENDED:
            return False
        b2bua = self._switch._b2bua
        try:
            media = await leg.answer_media(b2bua.ports, b2bua.media_host(leg.peer))
        except MediaError as exc:
            log.info("call %s: cannot answer with media: %s", leg.id, exc)
            return False
        self._hook_digits(media)
        return self.up

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        """End the call: BYE when up; an unanswered inbound call is refused with `status`
        (480 when 0)."""
        await self._leg.hangup(status, reason)

    async def transfer(self, target: str) -> Outcome:
        """Connect the caller to `target` (an extension or ring group) and stay until that
        call ends. Returns NORMAL after a connected call ended; otherwise why nobody
        answered (the call is back with the application, its media in place)."""
        leg = self._leg
        if not isinstance(leg, calls.InboundCall):
            return Outcome(Cause.FAILED, 0, "only inbound calls are transferred")
        joined, why = await self._switch._b2bua.connect_to(leg, target)
        if joined:
            return Outcome(Cause.NORMAL, 200, why)
        if self.ended:
            return Outcome(Cause.CANCELLED, 487, why)
        status = int(why.split()[0]) if why[:3].isdigit() else 0
        if status == 0 and why.startswith("no answer"):
            status = 408
        return Outcome(_CAUSE_OF_STATUS.get(status, Cause.FAILED), status, why)

    async def send_dtmf(self, digits: str, *, duration_ms: int = 160) -> bool:
        """Send `digits` to the phone as SIP INFO (application/dtmf-relay); True when
        each was accepted."""
        ok = True
        for digit in digits:
            if digit not in "0123456789*#ABCD":
                raise PbxError(f"not a DTMF digit: {digit!r}")
            body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
            status = await self._leg.send_info("application/dtmf-relay", body)
            ok = ok and 200 <= status < 300
        return ok

    # -- media ---------------------------------------------------------------------

    def _media(self) -> MediaEndpoint | None:
        media = self._leg.media
        if media is None or media.closed or self.ended:
            return None
        return media

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        """Play 8 kHz int16 audio; False when a key (with `stop_on_digit`), another play
        or the end of the call cut it short, or the call has no media."""
        media = self._media()
        if media is None:
            return False
        return await media.play(samples, stop_on_digit=stop_on_digit)

    async def music(self) -> None:
        """Music on hold, looped from the switch's pre-encoded music, until cancelled,
        another `play`, or the end of the call."""
        media = self._media()
        if media is None:
            return
        try:
            music = await self._switch._b2bua.moh.music()
        except MohError as exc:
            log.info("call %s: no music: %s", self.id, exc)
            return
        await media.loop_encoded(music.encoded)

    def digits_waiting(self) -> bool:
        """Whether keys were pressed that no `collect_digits` has taken yet."""
        media = self._media()
        return media is not None and not media.digits.empty()

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        """Keys pressed (see `MediaEndpoint.collect_digits`); what was pressed so far, at
        once, when the call ends; "" when it has no media."""
        media = self._media()
        if media is None:
            return ""
        return await media.collect_digits(
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
        """Record what the phone says into an 8 kHz WAV at `path` (written only when
        something but silence was heard). Raises: OSError when it cannot be written."""
        if self._media() is None:
            return Recording(np.zeros(0, np.int16), "hangup", None, 0.0)
        return await self._leg.record(
            path, max_seconds=max_seconds, silence_seconds=silence_seconds, stop_digits=stop_digits
        )

    async def audio(self, max_frames: int = 50) -> AsyncIterator[npt.NDArray[np.int16]]:
        """The phone's audio as decoded 20 ms frames (160 int16 samples), as they arrive,
        until the call ends. A reader slower than `max_frames` frames loses the oldest."""
        media = self._media()
        if media is None:
            return
        frames: asyncio.Queue[npt.NDArray[np.int16]] = asyncio.Queue()
        more = asyncio.Event()

        def take(frame: npt.NDArray[np.int16]) -> None:
            if frames.qsize() >= max_frames:
                frames.get_nowait()
            frames.put_nowait(frame)
            more.set()

        media.frame_listeners.append(take)
        try:
            while True:
                while not frames.empty():
                    yield frames.get_nowait()
                if media.closed:
                    return
                more.clear()
                waits = {
                    asyncio.ensure_future(more.wait()),
                    asyncio.ensure_future(self._leg.ended.wait()),
                }
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                if self.ended and frames.empty():
                    return
        finally:
            with contextlib.suppress(ValueError):
                media.frame_listeners.remove(take)


class Bridge:
    """Two calls of the switch hearing each other (their media endpoints joined)."""

    def __init__(self, a: Call, b: Call) -> None:
        self.a, self.b = a, b
        self._split = asyncio.Event()

    @property
    def active(self) -> bool:
        return not self._split.is_set() and not (self.a.ended or self.b.ended)

    async def wait(self) -> Outcome:
        """Until one call ends (the other is hung up too) or `split`; the first's outcome
        (NORMAL "split" after a split)."""
        waits = {
            asyncio.ensure_future(self.a._leg.ended.wait()),
            asyncio.ensure_future(self.b._leg.ended.wait()),
            asyncio.ensure_future(self._split.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._split.is_set():
            return Outcome(Cause.NORMAL, 0, "split")
        first, other = (self.a, self.b) if self.a.ended else (self.b, self.a)
        self._unjoin()
        if not other.ended:
            await other.hangup(0, "other party hung up")
        outcome = first.outcome
        assert outcome is not None
        return outcome

    def split(self) -> None:
        """Part the two calls; both stay up with the application."""
        self._unjoin()
        self._split.set()

    def _unjoin(self) -> None:
        media = self.a._leg.media
        if media is not None:
            media.unjoin()


class Application(Protocol):
    """Something above the switch that answers some numbers itself (IVR, voicemail)."""

    async def handles(self, number: str, switch: Switch) -> bool:
        """Whether calls to `number` are this application's."""
        ...

    async def run(self, call: Call, switch: Switch) -> str:
        """Serve one call (answering it, or not); returns the CDR's hangup cause."""
        ...


class VoicemailService(Protocol):
    """Takes messages for calls forwarded to an extension's mailbox."""

    async def deposit(self, call: Call, box: str, reason: str, switch: Switch) -> str:
        """Answer `call`, play `box`'s greeting for `reason` ("busy" or "unavailable")
        and record a message; returns the CDR's hangup cause."""
        ...


class Switch:
    """What an application may use of the switch. Constructing it makes it the B2BUA's
    frontend: inbound calls to applications' numbers reach them through it."""

    def __init__(self, b2bua: B2bua) -> None:
        self._b2bua = b2bua
        b2bua.frontend = self

    # -- the router's side (pbx.b2bua.Frontend) ------------------------------------

    async def serve(self, inbound: calls.InboundCall) -> str | None:
        for app in self._b2bua.applications:
            application = cast(Application, app)
            if await application.handles(inbound.callee, self):
                return await application.run(Call(inbound, self), self)
        return None

    async def deposit(self, inbound: calls.InboundCall, box: str, reason: str) -> str | None:
        service = cast("VoicemailService | None", self._b2bua.voicemail)
        if service is None:
            return None
        return await service.deposit(Call(inbound, self), box, reason, self)

    # -- the application's repository -----------------------------------------------

    @property
    def voicemail_store(self) -> VoicemailRepo:
        """Mailboxes' messages and PINs (voicemail's own repository)."""
        return self._b2bua.store.voicemail

    async def ivr_menus(self) -> str:
        """The stored IVR menus (TOML text; "" when none)."""
        return await self._b2bua.store.ivr.get() or ""

    async def user_exists(self, name: str) -> bool:
        try:
            await self._b2bua.store.users.get(name)
        except NotFoundError:
            return False
        return True

    @property
    def voicemail(self) -> VoicemailService | None:
        """The switch's voicemail (an IVR `voicemail:BOX` action), if any."""
        return cast("VoicemailService | None", self._b2bua.voicemail)

    async def mailbox_changed(self, box: str) -> None:
        """Tell whoever watches mailboxes (MWI) that `box`'s message counts changed."""
        await self._b2bua.mailbox_changed(box)

    # -- calls of the switch's own ---------------------------------------------------

    async def dial(
        self,
        target: str,
        *,
        caller_id: str,
        timeout: float | None = None,
        headers: Sequence[tuple[str, str]] = (),
        cause: Call | None = None,
    ) -> Call:
        """Place a call answered with the switch's own media: `target` is an extension
        (every live contact, its forwarding followed), a ring group, or a SIP URI
        (`sip:user@host[:port]`). `timeout` caps each ringing; `cause` is the call that
        made the application dial (named in the CDR; ringing stops if it ends).

        Raises: DialError with the outcome when nobody answered; PbxError for a header
        the application may not set.
        """
        extra = _checked_headers(headers)
        b2bua = self._b2bua
        store = b2bua.store
        started = b2bua._clock()
        cdr = await store.cdrs.open(f"dial-{started:.6f}-{target}", caller_id, target, started)
        leg: calls.OutboundCall | None = None
        outcome = Outcome(Cause.FAILED, 500, "not dialled")
        try:
            leg, outcome = await self._ring(target, caller_id, timeout, extra, cause)
        finally:
            if leg is None:
                end = b2bua._clock()
                await store.cdrs.close(cdr, end, _disposition(outcome), _cdr_cause(outcome, cause))
        if leg is None:
            raise DialError(outcome)
        call = Call(leg, self)
        await store.cdrs.answered(cdr, b2bua._clock())
        b2bua.manager.spawn(self._close_cdr(cdr, call, cause), f"CDR of dialled {leg.id}")
        return call

    async def _close_cdr(self, cdr: int, call: Call, cause: Call | None) -> None:
        outcome = await call.wait_ended()
        await self._b2bua.store.cdrs.close(
            cdr, self._b2bua._clock(), Disposition.ANSWERED, _cdr_cause(outcome, cause)
        )

    async def _peer_of(self, number: str) -> Peer:
        """A phone `number` rings (the SDP address is chosen for it), or the loopback."""
        plan = await self._b2bua.plan(number)
        for attempt in plan[0] if plan is not None else []:
            for target in attempt.targets:
                return target.peer
        return Peer("UDP", "127.0.0.1", 5060)

    async def _ring(
        self,
        target: str,
        caller_id: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        cause: Call | None,
    ) -> tuple[calls.OutboundCall | None, Outcome]:
        """Ring `target` through the switch's one ringing routine (`B2bua.reach`, or a
        URI's single contact) with an offer at a new endpoint of the switch's own."""
        b2bua = self._b2bua
        uri = _uri_target(target) if target.startswith(("sip:", "sips:")) else None
        try:
            media = MediaEndpoint(b2bua.ports, name=f"dial {target}")
        except MediaError as exc:
            return None, Outcome(Cause.FAILED, 503, f"no media ports: {exc}")
        host = b2bua.media_host(uri.peer if uri is not None else await self._peer_of(target))
        offer = g711_offer(host, media.port)
        leg_of_cause = cause._leg if cause is not None else None
        kept = False
        try:
            if uri is not None:
                seconds = timeout or b2bua.ring_timeout
                rung = await b2bua.ring_plan(
                    leg_of_cause,
                    [Attempt([uri], seconds)],
                    offer,
                    caller_id=caller_id,
                    callee=target,
                    headers=headers,
                )
                reached = Reached(
                    winner=rung.winner,
                    cancelled=rung.cancelled,
                    status=200 if rung.winner else rung.status,
                    disposition=rung.disposition,
                    cause=f"{rung.status} from {target}",
                )
            else:
                reached = await b2bua.reach(
                    leg_of_cause,
                    target,
                    offer,
                    caller_id=caller_id,
                    headers=headers,
                    timeout=timeout,
                )
            winner = reached.winner
            if winner is None:
                if reached.cancelled:
                    return None, Outcome(Cause.CANCELLED, 487, "the causing call ended")
                if reached.voicemail is not None:
                    return None, Outcome(Cause.UNAVAILABLE, 480, "forwarded to voicemail")
                return None, Outcome.of_status(reached.status, reached.cause + reached.via)
            try:
                theirs = audio_stream(SessionDescription.parse(winner.remote_sdp or b""))
                media.set_remote(theirs, signalling_host=winner.peer.host)
            except MediaError as exc:
                await winner.hangup(0, "unusable SDP answer")
                return None, Outcome(Cause.FAILED, 488, f"unusable answer: {exc}")
            winner.terminate_here(media, host)
            kept = True
            return winner, Outcome(Cause.NORMAL, 200, "answered" + reached.via)
        finally:
            if not kept:
                media.close()

    def bridge(self, a: Call, b: Call) -> Bridge:
        """Join two calls that have the switch's media: each hears the other at once,
        no re-INVITE. Raises: PbxError when either has no media or is bridged already."""
        media_a, media_b = a._media(), b._media()
        if media_a is None or media_b is None:
            raise PbxError("both calls must be up with the switch's media to be bridged")
        try:
            media_a.join(media_b)
        except MediaError as exc:
            raise PbxError(f"cannot bridge {a.id} and {b.id}: {exc}") from None
        return Bridge(a, b)


def _checked_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() in _RESERVED_HEADERS:
            raise PbxError(f"header {name} is the switch's to set")
        if not name.replace("-", "").isalnum() or any(c in value for c in "\r\n\0"):
            raise PbxError(f"bad header {name!r}")
        out.append((name, value))
    return out


def _uri_target(uri: str) -> Target:
    """A SIP URI rung directly (UDP to its host and port)."""
    try:
        parsed = SipUri.parse(uri)
    except SipParseError as exc:
        raise PbxError(f"bad SIP URI {uri!r}: {exc}") from None
    return Target(parsed, Peer("UDP", parsed.host, parsed.port or 5060))


def _disposition(outcome: Outcome) -> Disposition:
    return {
        Cause.NORMAL: Disposition.ANSWERED,
        Cause.BUSY: Disposition.BUSY,
        Cause.NO_ANSWER: Disposition.NO_ANSWER,
        Cause.CANCELLED: Disposition.CANCELLED,
    }.get(outcome.cause, Disposition.FAILED)


def _cdr_cause(outcome: Outcome, cause: Call | None) -> str:
    placed = (
        f"placed by the switch for call {cause.id}" if cause is not None else "placed by the switch"
    )
    return f"{outcome} ({placed})"
