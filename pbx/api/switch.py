"""`Switch` and `Bridge`: what an application may use of the switch (`pbx.api`)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from media.endpoint import MediaEndpoint
from media.errors import MediaError
from media.mixer import Role
from media.mixer_clock import MixerClock
from media.sdp import SessionDescription, audio_stream, g711_offer
from pbx import calls
from pbx.api.call import Call
from pbx.api.conference import Conference
from pbx.api.outcome import Cause, DialError, Outcome
from pbx.b2bua import Attempt, B2bua, Reached
from pbx.control import BodyRoute, Route
from pbx.errors import ControlError, NotFoundError, PbxError
from pbx.events import Event, EventBus
from pbx.registrar import Target, targets_for
from pbx.store import Disposition
from pbx.store.agents import AgentRepo
from pbx.store.attempts import AttemptRepo
from pbx.store.callbacks import CallbackRepo
from pbx.store.campaigns import CampaignRepo
from pbx.store.conferences import ConferenceRepo
from pbx.store.contacts import ContactRepo
from pbx.store.customers import CustomerRepo
from pbx.store.dispositions import DispositionRepo
from pbx.store.dnc import DncRepo
from pbx.store.kb import KbRepo
from pbx.store.numbering import IVR_KINDS
from pbx.store.queue_events import QueueEventRepo
from pbx.store.queues import QueueRepo
from pbx.store.scheduled import ScheduledCallbackRepo
from pbx.store.tickets import TicketRepo
from pbx.store.voicemail import VoicemailRepo
from pbx.store.web_sessions import WebSessionRepo
from sip.digest import Challenge, Credentials, canonical_algorithm, ha1, response_digest
from sip.errors import SipParseError
from sip.peer import Peer
from sip.uri import SipUri, is_user

log = logging.getLogger(__name__)

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


class Bridge:
    """Two calls of the switch hearing each other (their media endpoints joined)."""

    def __init__(self, a: Call, b: Call, switch: Switch | None = None) -> None:
        self.a, self.b = a, b
        self._split = asyncio.Event()
        self._switch = switch
        #: The room the bridge became by `add` (None: still 1:1, endpoints joined).
        self.conference: Conference | None = None

    def add(self, call: Call, role: Role = Role.SPEAK, *, whisper_to: Call | None = None) -> None:
        """A third call: the bridge becomes a mixed room (the two calls keep their media
        anchors; no re-INVITE), `call` joins it with `role` (a supervisor listening, a
        coach whispering to `whisper_to`). `wait` and `split` go on covering `a` and `b`;
        when they end the bridge, every member leaves the room (the added calls stay up,
        with the application).

        Raises: PbxError when the bridge is over or a call cannot be mixed.
        """
        if not self.active or self._switch is None:
            raise PbxError("the bridge is over")
        if self.conference is None:
            room = self._switch.conference(f"bridge {self.a.id} {self.b.id}")
            self._unjoin()
            room.add(self.a)
            room.add(self.b)
            self.conference = room
        self.conference.add(call, role, whisper_to=whisper_to)

    @property
    def active(self) -> bool:
        return not self._split.is_set() and not (self.a.ended or self.b.ended)

    async def wait(self) -> Outcome:
        """Until one call ends (the other is hung up too) or `split`; the first's outcome
        (NORMAL "split" after a split)."""
        await self.over()
        if self._split.is_set():
            return Outcome(Cause.NORMAL, 0, "split")
        first, other = (self.a, self.b) if self.a.ended else (self.b, self.a)
        self._unjoin()
        if not other.ended:
            await other.hangup(0, "other party hung up")
        outcome = first.outcome
        assert outcome is not None
        return outcome

    async def over(self) -> None:
        """Until the bridge is over (one call ended, or `split`), doing nothing about it:
        a watcher's wait (a supervisor in the room), where `wait` is the owner's."""
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

    def split(self) -> None:
        """Part the two calls; both stay up with the application."""
        self._unjoin()
        self._split.set()

    def _unjoin(self) -> None:
        if self.conference is not None:
            for member in self.conference.members():
                self.conference.remove(member.call)
            self.conference = None
            return
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


class Service(Protocol):
    """An application with a life of its own beside its calls (the ACD): the server
    starts it once the switch is up and before the control API listens (so the routes
    it adds are served), and closes it before the switch stops. An application that has
    `start` and `close` is a service too."""

    async def start(self, switch: Switch) -> None:
        """Load what it needs, restore its state, start its own tasks."""
        ...

    async def close(self) -> None:
        """Stop its tasks (each awaited), leaving nothing running."""
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
        self._mixer: MixerClock | None = None
        self._conferences: dict[str, Conference] = {}
        #: Control API routes services added ("GET /acd/queues" -> handler); the server
        #: serves them beside its own (`add_route`).
        self.routes: dict[str, Route] = {}
        self.body_routes: dict[str, BodyRoute] = {}
        self._config_listeners: list[Callable[[], Awaitable[None]]] = []
        #: Each trunk's registration state (the server sets it to its trunk service's).
        self.trunk_status: Callable[[], list[dict[str, Any]]] = list

    # -- the router's side (pbx.b2bua.Frontend) ------------------------------------

    async def serve(self, inbound: calls.InboundCall) -> str | None:
        for app in self._b2bua.applications:
            application = cast(Application, app)
            if await application.handles(inbound.callee, self):
                return await application.run(Call(inbound, self._b2bua), self)
        return None

    async def deposit(self, inbound: calls.InboundCall, box: str, reason: str) -> str | None:
        service = cast("VoicemailService | None", self._b2bua.voicemail)
        if service is None:
            return None
        return await service.deposit(Call(inbound, self._b2bua), box, reason, self)

    # -- the application's repository -----------------------------------------------

    @property
    def voicemail_store(self) -> VoicemailRepo:
        """Mailboxes' messages and PINs (voicemail's own repository)."""
        return self._b2bua.store.voicemail

    @property
    def conference_store(self) -> ConferenceRepo:
        """Conference rooms: numbers, PINs, member limits (conferences' own repository)."""
        return self._b2bua.store.conferences

    async def ivr_menus(self) -> str:
        """The stored IVR menus (TOML text; "" when none)."""
        return await self._b2bua.store.ivr.get() or ""

    async def put_ivr_menus(self, text: str, numbers: Collection[str]) -> None:
        """Make `text` (checked TOML: `ivr.menu`) the whole IVR configuration; `numbers`
        are the ones its menus and schedules answer.

        Raises: AlreadyExistsError (a number belongs to someone else), NotFoundError (an
        action names a trunk or queue that does not exist).
        """
        await self._b2bua.store.ivr.put(text, numbers)

    async def owned_numbers(self, numbers: Collection[str]) -> list[str]:
        """Those of `numbers` that a user, ring group, queue or feature code has (the
        IVR's own menus and schedules left out)."""
        numbering = self._b2bua.store.numbering
        return [n for n in numbers if await numbering.owner(n, ignore=IVR_KINDS) is not None]

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

    # -- services: the ACD's repositories, control routes, configuration, events ----------

    @property
    def queue_store(self) -> QueueRepo:
        """ACD queues and their members (the ACD's own repository)."""
        return self._b2bua.store.queues

    @property
    def agent_store(self) -> AgentRepo:
        """Agents' stored state and skills; a state change and its queue events together."""
        return self._b2bua.store.agents

    @property
    def callback_store(self) -> CallbackRepo:
        """Callbacks that keep their place in a queue."""
        return self._b2bua.store.callbacks

    @property
    def queue_event_store(self) -> QueueEventRepo:
        """The queue events (Asterisk's queue_log) the ACD writes and reports read."""
        return self._b2bua.store.queue_events

    # -- the web console's repositories and logins ---------------------------------------

    @property
    def customer_store(self) -> CustomerRepo:
        """Customers (screen pop) and which agents were offered them."""
        return self._b2bua.store.customers

    @property
    def ticket_store(self) -> TicketRepo:
        """Help-desk tickets with their notes, calls and linked articles."""
        return self._b2bua.store.tickets

    @property
    def disposition_store(self) -> DispositionRepo:
        """What agents said calls came to."""
        return self._b2bua.store.dispositions

    @property
    def kb_store(self) -> KbRepo:
        """Knowledge-base articles (FTS5 search)."""
        return self._b2bua.store.kb

    @property
    def scheduled_callback_store(self) -> ScheduledCallbackRepo:
        """Callbacks agents scheduled for a date and time (the dialer places them)."""
        return self._b2bua.store.scheduled_callbacks

    # -- the dialer's repositories (issue 17) ----------------------------------------------

    @property
    def campaign_store(self) -> CampaignRepo:
        """Outbound campaigns' settings and state."""
        return self._b2bua.store.campaigns

    @property
    def contact_store(self) -> ContactRepo:
        """Campaigns' contact lists."""
        return self._b2bua.store.contacts

    @property
    def dnc_store(self) -> DncRepo:
        """Do-not-call lists (global and per campaign)."""
        return self._b2bua.store.dnc

    @property
    def attempt_store(self) -> AttemptRepo:
        """Every dial attempt of the dialer."""
        return self._b2bua.store.attempts

    async def originate(self, a: str, b: str, *, caller_id: str | None = None) -> dict[str, str]:
        """Click-to-call (pbx.originate): ring `a` showing `b`, then `b`, bridge them and
        wait until the call ends; the stage it reached and the outcome. Never raises for
        a call that did not happen."""
        from pbx.originate import originate  # it is written on this API: no cycle at import

        result = await originate(self, a, b, caller_id=caller_id)
        return {"id": result.id, "stage": result.stage.value, "outcome": str(result.outcome)}

    @property
    def web_session_store(self) -> WebSessionRepo:
        """Web console login sessions (token hashes)."""
        return self._b2bua.store.web_sessions

    async def dids(self) -> list[dict[str, Any]]:
        """The DIDs (numbers from providers) and where each goes, by number."""
        return [
            {"number": d.number, "target": d.target} for d in await self._b2bua.store.dids.all()
        ]

    async def users(self) -> list[dict[str, Any]]:
        """Every user: name, display name, role (the admin page; no hashes)."""
        return [
            {"name": u.username, "display_name": u.display_name, "role": u.role}
            for u in await self._b2bua.store.users.list()
        ]

    async def set_user_role(self, name: str, role: str) -> None:
        """Raises: ConfigError (an unknown role), NotFoundError (no such user)."""
        await self._b2bua.store.users.set_role(name, role)

    async def recordings(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest recorded calls: CDR id, caller, callee, start, duration."""
        rows = await self._b2bua.store.cdrs.list(limit=5000)
        found = [r for r in reversed(rows) if r.recording]
        return [
            {"id": r.id, "caller": r.caller, "callee": r.callee, "start": r.start,
             "duration": r.duration}
            for r in found[:limit]
        ]  # fmt: skip

    async def recording_file(self, cdr_id: int) -> Path:
        """The WAV of a recorded call, checked to lie in the recordings directory.

        Raises: NotFoundError (no such call, not recorded, the file gone or elsewhere).
        """
        row = await self._b2bua.store.cdrs.get(cdr_id)
        if row is None or not row.recording:
            raise NotFoundError(f"no recording of call {cdr_id}")
        root = self._b2bua.recordings.resolve()
        path = Path(row.recording)
        path = (path if path.is_absolute() else root / path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFoundError(f"the recording of call {cdr_id} is not in {root}")
        return path

    async def setting(self, key: str) -> str | None:
        """A stored setting (e.g. `customer_country`); None when unset."""
        return await self._b2bua.store.settings.get(key)

    async def verify_password(self, name: str, password: str) -> bool:
        """Whether `password` is user `name`'s SIP password: its HA1 compared in constant
        time with the stored one; an unknown user costs the same work (no enumeration).
        The password is never kept or logged."""
        try:
            user = await self._b2bua.store.users.get(name)
            stored, realm = user.ha1_sha256, user.realm
        except NotFoundError:
            user, stored, realm = None, "0" * 64, "-"
        given = ha1(name, realm, password, "SHA-256")
        return hmac.compare_digest(given.encode(), stored.encode()) and user is not None

    @property
    def sip_address(self) -> tuple[str, int]:
        """Where a user agent inside this process (the browser phones' gateway) reaches the
        switch's SIP: its SIP host (loopback when it listens on every address) and port."""
        manager = self._b2bua.manager
        host = manager.sip_host
        return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), manager.sip_port

    async def answer_challenge(self, user: str, challenge: str, method: str, uri: str) -> str:
        """The Authorization value with which user `user`'s in-process phone (a browser
        phone's SIP side) answers one of this switch's own challenges: computed from the
        stored HA1, which never leaves the switch.

        Raises: PbxError for a challenge of another realm, an algorithm other than MD5 or
            SHA-256, or an unknown user.
        """
        try:
            parsed = Challenge.parse(challenge)
        except SipParseError as exc:
            raise PbxError(f"unreadable challenge: {exc.reason}") from None
        try:
            stored = await self._b2bua.store.users.get(user)
        except NotFoundError:
            raise PbxError(f"no user {user}") from None
        algorithm = canonical_algorithm(parsed.algorithm)
        if parsed.realm != stored.realm or algorithm not in ("MD5", "SHA-256"):
            raise PbxError("not a challenge of this switch")
        qop = "auth" if "auth" in {q.lower() for q in parsed.qop} else None
        cnonce = secrets.token_urlsafe(12) if qop else None
        nc = "00000001" if qop else None
        key = stored.ha1_md5 if algorithm == "MD5" else stored.ha1_sha256
        response = response_digest(
            algorithm, key, parsed.nonce, method, uri, qop=qop, nc=nc, cnonce=cnonce
        )
        assert response is not None
        return str(
            Credentials(user, parsed.realm, parsed.nonce, uri, response, algorithm, qop, nc,
                        cnonce, parsed.opaque)
        )  # fmt: skip

    async def user_role(self, name: str) -> str | None:
        """The user's role ("agent", "supervisor", "admin"), None for no such user."""
        try:
            return (await self._b2bua.store.users.get(name)).role
        except NotFoundError:
            return None

    def registered(self, user: str) -> bool:
        """Whether `user` has a phone registered now (a contact calls to it would ring)."""
        now = self._b2bua._clock()
        return bool(targets_for(self._b2bua.location, user, now))

    @property
    def events(self) -> EventBus:
        """The switch's event bus: subscribe to calls and registrations; publish the
        application's own events (`pbx.events`: queue and agent events)."""
        return self._b2bua.manager.events

    def publish(self, event: Event) -> None:
        """Publish an application's event on the bus (never blocks)."""
        self.events.publish(event)

    def add_route(self, key: str, handler: Route) -> None:
        """Serve `handler` on the control API as `key` ("GET /acd/queues"): the query
        string as a dict in, a JSON object out. Only before the server's control API
        starts, i.e. from `Service.start`.

        Raises: PbxError when `key` is taken.
        """
        if key in self.routes or key in self.body_routes:
            raise PbxError(f"control route {key!r} is taken")
        self.routes[key] = handler

    def add_body_route(self, key: str, handler: BodyRoute) -> None:
        """Like `add_route` for a POST taking a JSON object: answers (status, object).

        Raises: PbxError when `key` is taken.
        """
        if key in self.routes or key in self.body_routes:
            raise PbxError(f"control route {key!r} is taken")
        self.body_routes[key] = handler

    def on_config_change(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Call `listener` (once a second at most) after the database changed, e.g. by a
        `pbx queue set` in another process."""
        self._config_listeners.append(listener)

    async def config_changed(self) -> None:
        """The server's side: tell every listener; one that fails is logged, not fatal."""
        for listener in list(self._config_listeners):
            try:
                await listener()
            except Exception:
                log.exception("a configuration listener failed")

    # -- calls of the switch's own ---------------------------------------------------

    async def dial(
        self,
        target: str,
        *,
        caller_id: str,
        timeout: float | None = None,
        headers: Sequence[tuple[str, str]] = (),
        cause: Call | None = None,
        placed_for: str = "",
    ) -> Call:
        """Place a call answered with the switch's own media: `target` is an extension
        (every live contact, its forwarding followed), a ring group, a SIP URI
        (`sip:user@host[:port]`), `trunk:NAME/NUMBER`, or an external number (through
        the outbound routes; with `cause`, only when that call may use them). `timeout`
        caps each ringing; `cause` is the call that made the application dial (named in
        the CDR; ringing stops if it ends);
        `placed_for` names in the CDR what the call was placed for instead (e.g.
        "originate o-1a2b3c4d", linking the CDRs of one click-to-call).

        Raises: DialError with the outcome when nobody answered; PbxError for a header
        the application may not set or a caller ID that is no SIP URI user part.
        """
        extra = _checked_headers(headers)
        if not is_user(caller_id):
            raise PbxError(f"caller ID {caller_id!r} cannot be a SIP URI's user part")
        b2bua = self._b2bua
        store = b2bua.store
        started = b2bua._clock()
        # The CDR row is written while the phone is rung, not before: the write waits for
        # the store's one writer, which under load (the queue log, other calls' CDRs) would
        # delay every INVITE by tens of milliseconds. It is awaited before a failure's
        # outcome; an answered call is handed over at once and its row finished behind it
        # (under load the writer is seconds behind, and the callee's first words, which
        # AMD must hear, would be gone before the application got the call).
        opening = asyncio.ensure_future(
            store.cdrs.open(f"dial-{started:.6f}-{target}", caller_id, target, started)
        )
        leg: calls.OutboundCall | None = None
        outcome = Outcome(Cause.FAILED, 500, "not dialled")
        try:
            leg, outcome, trunk = await self._ring(target, caller_id, timeout, extra, cause)
            if leg is None:
                cdr = await opening
                if trunk is not None:
                    await store.cdrs.set_trunk(cdr, *trunk)
        except BaseException:
            if leg is not None:  # no CDR could be written: the answered leg ends
                b2bua.manager.spawn(leg.hangup(0, "no CDR"), f"hang up dialled {leg.id}")
            if not opening.done():
                opening.cancel()
            raise
        finally:
            written = opening.done() and not opening.cancelled() and not opening.exception()
            if leg is None and written:
                end = b2bua._clock()
                await store.cdrs.close(
                    opening.result(),
                    end,
                    _disposition(outcome),
                    _cdr_cause(outcome, cause, placed_for),
                )
        if leg is None:
            raise DialError(outcome)
        call = Call(leg, self._b2bua)
        b2bua.manager.spawn(
            self._answered_cdr(
                opening,
                trunk,
                call,
                cause,
                placed_for,
                outcome.reason.removeprefix("answered"),
                b2bua._clock(),
            ),
            f"CDR of dialled {leg.id}",
        )
        return call

    async def _answered_cdr(
        self,
        opening: asyncio.Future[int],
        trunk: tuple[str, str] | None,
        call: Call,
        cause: Call | None,
        placed_for: str,
        via: str,
        answered: float,
    ) -> None:
        """An answered dialled call's CDR: its row (no row could be written: the call
        ends), the trunk it left by, then `_close_cdr`."""
        try:
            cdr = await opening
        except Exception:
            log.exception("dialled call %s: no CDR could be written; it ends", call.id)
            await call.hangup(0, "no CDR")
            return
        if trunk is not None:
            await self._b2bua.store.cdrs.set_trunk(cdr, *trunk)
        await self._close_cdr(cdr, call, cause, placed_for, via, answered=answered)

    async def _close_cdr(
        self,
        cdr: int,
        call: Call,
        cause: Call | None,
        placed_for: str,
        via: str = "",
        answered: float | None = None,
    ) -> None:
        """Mark the dialled call's CDR answered (at `answered`) and close it when the
        call ends; `via` says how it was reached (forwarding followed, trunks failed
        over), as for routed calls."""
        if answered is not None:
            await self._b2bua.store.cdrs.answered(cdr, answered)
        outcome = await call.wait_ended()
        await self._b2bua.store.cdrs.close(
            cdr,
            self._b2bua._clock(),
            Disposition.ANSWERED,
            _cdr_cause(outcome, cause, placed_for) + via,
        )

    async def _peer_of(self, number: str) -> Peer:
        """A phone or trunk `number` reaches (the SDP address is chosen for it: the first
        trunk of its outbound route for an external number), or the loopback."""
        plan = await self._b2bua.plan(number)
        for attempt in plan[0] if plan is not None else []:
            for target in attempt.targets:
                return target.peer
        if plan is None:
            for step in await self._b2bua.store.routes.plan(number):
                peer = await self._b2bua.outbound.peer(step.trunk)
                if peer is not None:
                    return peer
        return Peer("UDP", "127.0.0.1", 5060)

    async def _ring(
        self,
        target: str,
        caller_id: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        cause: Call | None,
    ) -> tuple[calls.OutboundCall | None, Outcome, tuple[str, str] | None]:
        """Ring `target` through the switch's one ringing routine (`B2bua.reach`, or a
        URI's single contact) with an offer at a new endpoint of the switch's own; the
        trunk the call left by and the number sent to it, if it did."""
        b2bua = self._b2bua
        uri = _uri_target(target) if target.startswith(("sip:", "sips:")) else None
        try:
            media = MediaEndpoint(b2bua.ports, name=f"dial {target}")
        except MediaError as exc:
            return None, Outcome(Cause.FAILED, 503, f"no media ports: {exc}"), None
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
            trunk = (reached.trunk, reached.trunk_number) if reached.trunk else None
            if winner is None:
                if reached.cancelled:
                    return None, Outcome(Cause.CANCELLED, 487, "the causing call ended"), trunk
                if reached.voicemail is not None:
                    outcome = Outcome(Cause.UNAVAILABLE, 480, "forwarded to voicemail")
                    return None, outcome, trunk
                return None, Outcome.of_status(reached.status, reached.cause + reached.via), trunk
            try:
                theirs = audio_stream(SessionDescription.parse(winner.remote_sdp or b""))
                media.set_remote(theirs, signalling_host=winner.peer.host)
            except MediaError as exc:
                await winner.hangup(0, "unusable SDP answer")
                return None, Outcome(Cause.FAILED, 488, f"unusable answer: {exc}"), trunk
            winner.terminate_here(media, host)
            kept = True
            return winner, Outcome(Cause.NORMAL, 200, "answered" + reached.via), trunk
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
        return Bridge(a, b, self)

    # -- conferences (the switch-wide mixer) -----------------------------------------

    def conference(self, name: str) -> Conference:
        """The room `name` of the switch's mixer (made on first use; every room of the
        switch is mixed by one 20 ms clock)."""
        room = self._conferences.get(name)
        if room is None:
            if self._mixer is None:
                self._mixer = MixerClock()
            room = self._conferences[name] = Conference(name, self._mixer)
        return room

    def live_conferences(self) -> dict[str, Any]:
        """The rooms with members and who is in each (the control API's
        `GET /conferences`, `pbx conf list --live`)."""
        return {
            "conferences": [
                {
                    "room": name,
                    "members": [
                        {
                            "id": m.call.id,
                            "caller": m.call.caller,
                            "role": m.role.value,
                            "whisper_to": m.whisper_to.id if m.whisper_to is not None else None,
                        }
                        for m in room.members()
                    ],
                }
                for name, room in self.conferences().items()
            ]
        }

    async def kick(self, query: dict[str, str]) -> dict[str, Any]:
        """Hang up the member `party` (call id or caller number) of room `room` (the
        control API's `POST /conferences/kick?room=R&party=P`).

        Raises: ControlError when there is no such member.
        """
        name, party = query.get("room", ""), query.get("party", "")
        room = self._conferences.get(name)
        call = room.find(party) if room is not None else None
        if call is None:
            raise ControlError(f"no party {party!r} in conference {name!r}")
        await call.hangup(0, "kicked from the conference")
        return {"room": name, "kicked": call.id}

    def conferences(self) -> dict[str, Conference]:
        """The rooms with at least one member, by name."""
        for name, room in list(self._conferences.items()):
            if not len(room):
                del self._conferences[name]
        return dict(self._conferences)


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


def _cdr_cause(outcome: Outcome, cause: Call | None, placed_for: str = "") -> str:
    if placed_for:
        placed = f"placed by the switch for {placed_for}"
    elif cause is not None:
        placed = f"placed by the switch for call {cause.id}"
    else:
        placed = "placed by the switch"
    return f"{outcome} ({placed})"
