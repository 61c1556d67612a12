"""Extension-to-extension calls: the first application on the Call API.

An authenticated phone dials a number. If it names an account, the call forks to
every live contact of that account at once; the first to answer wins and the
others are cancelled; ringing is relayed back. Outcomes map the way Asterisk
users expect: unknown number 404, no registered phone 480, every phone busy
486, nobody answered within the ring timeout 408, the caller hung up first 487
(CANCELLED). Once answered the two legs are bridged: an offer on one (hold,
resume, codec change) is passed to the other, and a hangup on either ends both.
Every call leaves one CDR row.

Hardening (issue 10): a user may have at most `max_calls_per_user` calls of their own
up at once (default 4: a desk phone's lines); the next INVITE gets 486 Busy Here, the
answer RFC 3261 §21.4.7 gives for "not willing or able to take additional calls" —
temporary, so phones retry later and their users hear busy, where a 403 would read as
a credential or permission problem. Whatever fails inside a call's task ends both legs
(BYE or a final response) and closes the CDR; nothing is left up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from media.endpoint import MediaEndpoint
from media.errors import MediaError, SdpError
from media.moh import MohError, MohSource
from media.ports import PortAllocator, PortPair
from media.recorder import CallRecorder
from pbx.bridge import Bridge
from pbx.calls import Call, CallManager, CallState, InboundCall, OutboundCall
from pbx.errors import ConfigError, NotFoundError
from pbx.inbound import DidAction, step_for
from pbx.media_bridge import AnchoredMedia, offer_at
from pbx.outbound import OutboundDialler, TrunkTarget, is_trunk_target, parse_trunk_target
from pbx.registrar import Location, Target, targets_for
from pbx.store import Disposition, Forwarding, Store
from pbx.store.routes import Attempt as RouteAttempt
from pbx.store.targets import MAILBOX_PREFIX, QUEUE_PREFIX
from pbx.trunks import ResolveError, TrunkChannels, resolve
from sip.message import Response
from sip.peer import Peer

log = logging.getLogger(__name__)


MAX_FORWARDS = 5  # hops of call forwarding before a call is refused as a loop (482)

#: A forwarding target meaning "the extension's own mailbox".
VOICEMAIL = "voicemail"


class Frontend(Protocol):
    """The API module's side of routing (`pbx.api.Switch`): it runs the applications
    (IVR, voicemail) on its own `Call` objects, so this module never imports them."""

    async def serve(self, inbound: InboundCall) -> str | None:
        """Run the first application that owns `inbound.callee`; its CDR hangup cause,
        or None when no application owns the number."""
        ...

    async def deposit(self, inbound: InboundCall, box: str, reason: str) -> str | None:
        """Take a message for `box` ("busy" or "unavailable" greeting); the CDR's hangup
        cause, or None when there is no voicemail service."""
        ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """Contacts to ring together, and for how long."""

    targets: list[Target]
    seconds: float


@dataclass(frozen=True, slots=True)
class Rung:
    """How ringing ended: a winner, the caller's CANCEL, or the failure to report."""

    winner: OutboundCall | None = None
    cancelled: bool = False
    status: int = 480
    disposition: Disposition = Disposition.FAILED


@dataclass(frozen=True, slots=True)
class Reached:
    """Where dialling a number (its forwarding followed) ended: a `winner`, the caller's
    CANCEL, a mailbox (`voicemail`, forwarded there for `why`), or a failure with the
    status and reason to refuse the caller with and the CDR's cause."""

    winner: OutboundCall | None = None
    cancelled: bool = False
    voicemail: str | None = None
    why: str = ""
    status: int = 480
    reason: str | None = None
    disposition: Disposition = Disposition.FAILED
    cause: str = "480 not registered"
    #: " (forwarded 1001 -> 1002)" when forwarding was followed, else "".
    via: str = ""
    #: The trunk the call left by (answered there, or its last failure) and the number
    #: sent to it; "" for calls that stayed inside.
    trunk: str = ""
    trunk_number: str = ""
    #: "queue:NAME" when the number is a queue the frontend (the ACD) serves.
    queue: str | None = None


def pick_failure(statuses: list[int]) -> tuple[int, Disposition]:
    """The answer for the caller when no fork answered (cf. RFC 3261 §16.7 step 6).

    Busy anywhere wins (486/600: the person is there but busy); otherwise a
    declined call (603) stays declined; otherwise the phones were not reachable.
    """
    if any(s in (486, 600) for s in statuses):
        return 486, Disposition.BUSY
    if 603 in statuses:
        return 603, Disposition.BUSY
    if statuses and all(s in (408, 480, 503, 487) for s in statuses):
        return 480, Disposition.FAILED
    failures = sorted(s for s in statuses if 400 <= s < 700)
    return (failures[0] if failures else 480), Disposition.FAILED


class B2bua:
    """Routes inbound calls to extensions and bridges them."""

    def __init__(
        self,
        manager: CallManager,
        store: Store,
        location: Location,
        users: Callable[[], set[str]],
        *,
        ports: PortAllocator,
        recordings: Path = Path("recordings"),
        moh: MohSource | None = None,
        ring_timeout: float = 60.0,
        media_timeout: float | None = 60.0,
        hold_timeout: float | None = 3600.0,
        max_calls_per_user: int | None = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.store = store
        self.location = location
        self._users = users
        self.ports = ports
        self.recordings = recordings
        #: Music on hold for every bridge (the generated default when none is given).
        self.moh = moh if moh is not None else MohSource(None)
        self.ring_timeout = ring_timeout
        self.media_timeout = media_timeout
        #: How long a bridged call may stay on hold (None: for ever).
        self.hold_timeout = hold_timeout
        #: How many calls one user may have up at once (None: no limit).
        self.max_calls_per_user = max_calls_per_user
        self._calls_of: dict[str, int] = {}  # live calls placed by each user
        #: The callee legs each routed call has set up (hung up if its task fails).
        self._outbound: dict[str, list[OutboundCall]] = {}
        self._clock = clock
        #: The bridge each live bridged call belongs to (for transfers).
        self.bridges: dict[str, Bridge] = {}
        #: Applications that own some numbers (IVR menus ...), asked before extensions:
        #: `pbx.api.Application` objects, run by `frontend`.
        self.applications: list[object] = []
        self._cdrs: dict[str, int] = {}  # the CDR row of each inbound call being routed
        #: Where calls forwarded to VOICEMAIL go (a `pbx.api.VoicemailService`; None:
        #: such forwarding is refused 480).
        self.voicemail: object | None = None
        #: Runs `applications` and `voicemail` on the API's calls (set by `pbx.api.Switch`).
        self.frontend: Frontend | None = None
        #: Called after a mailbox's message counts changed (MWI notifies its phones).
        self.on_mailbox_change: Callable[[str], Awaitable[None]] | None = None
        #: Live calls per trunk (in and out); the server shares it with the trunk service.
        self.trunk_channels = TrunkChannels()
        #: Places calls at trunks (`trunk:NAME/NUMBER` targets, outbound routes).
        self.outbound = OutboundDialler(store, self.trunk_channels)

    async def route(self, inbound: InboundCall) -> None:
        """The CallManager's on_incoming hook: one caller's whole call."""
        user = inbound.caller
        if inbound.trunk is not None:  # a provider's call: no local user's limit applies
            await self._route(inbound)
            return
        limit = self.max_calls_per_user
        if limit is not None and self._calls_of.get(user, 0) >= limit:
            log.warning("call %s: %s already has %d calls up: 486", inbound.id, user, limit)
            await inbound.reject(486, "Busy Here")
            return
        self._calls_of[user] = self._calls_of.get(user, 0) + 1
        try:
            await self._route(inbound)
        finally:
            left = self._calls_of.pop(user) - 1
            if left:
                self._calls_of[user] = left

    async def _route(self, inbound: InboundCall) -> None:
        if inbound.trunk is not None and not await self._trunk_channel(inbound):
            return
        start = self._clock()
        cdr = await self.store.cdrs.open(
            inbound.request.call_id, inbound.caller, inbound.callee, start
        )
        self._cdrs[inbound.id] = cdr
        inbound.cdr_id = cdr
        self._outbound[inbound.id] = []
        # Stored the moment the caller is answered (by an extension or an application
        # such as the IVR): a crash then leaves an ANSWERED row, not FAILED 0.
        inbound.on_answer.append(
            lambda call: self.manager.spawn(
                self.store.cdrs.answered(cdr, call.answered_at or self._clock()),
                f"answer time of {call.id}",
            )
        )
        disposition, cause = Disposition.FAILED, "failed"
        try:
            disposition, cause = await self._connect(inbound, cdr)
        except Exception as exc:  # a bug or hostile input inside the call: end it cleanly
            log.exception("call %s: failed inside its task", inbound.id)
            if inbound.answered_at is not None:
                disposition = Disposition.ANSWERED
            cause = f"500 internal error: {type(exc).__name__}"
        finally:
            del self._cdrs[inbound.id]
            legs = self._outbound.pop(inbound.id)
            end = self._clock()
            await self._end_all(inbound, legs)
            await self.store.cdrs.close(cdr, end, disposition, cause)
            log.info(
                "call %s: %s -> %s ended: %s (%s)",
                inbound.id,
                inbound.caller,
                inbound.callee,
                disposition,
                cause,
            )

    async def _trunk_channel(self, inbound: InboundCall) -> bool:
        """Take a channel of the trunk `inbound` came in from, given back when the call
        ends; when all its channels are in use the call is refused 503 (False)."""
        name = inbound.trunk
        assert name is not None
        try:
            limit = (await self.store.trunks.get(name)).max_channels
        except NotFoundError:  # deleted since the call was let in: nothing to count against
            limit = 0
        if not self.trunk_channels.acquire(name, limit):
            log.warning(
                "call %s: trunk %s has all %d channels in use: 503", inbound.id, name, limit
            )
            await inbound.reject(503, "Service Unavailable")
            return False
        if inbound.state is CallState.ENDED:
            self.trunk_channels.release(name)
        else:
            inbound.on_end.append(lambda _call: self.trunk_channels.release(name))
        return True

    async def _end_all(self, inbound: InboundCall, legs: list[OutboundCall]) -> None:
        """Leave no leg of a routed call up: BYE (or CANCEL) every callee leg still
        alive that no other live bridge took over (an attended transfer hands one on),
        then the caller (500 before an answer, BYE after)."""
        for leg in legs:
            if leg.state is not CallState.ENDED and leg.id not in self.bridges:
                try:
                    await leg.hangup(0, "call failed")
                except Exception:
                    log.exception("call %s: leg %s not hung up", inbound.id, leg.id)
        if inbound.state is not CallState.ENDED:
            await inbound.hangup(500, "Server Error")

    async def _connect(self, inbound: InboundCall, cdr: int) -> tuple[Disposition, str]:
        if inbound.trunk is not None:  # a provider's call: its DID's target, nothing else
            return await self._connect_did(inbound, cdr)
        if self.frontend is not None:
            served = await self.frontend.serve(inbound)
            if served is not None:
                return await self._served(inbound, cdr, served)
        if not await self._exists(inbound.callee):
            unserved = await self._unserved_queue(inbound, inbound.callee, "")
            if unserved is not None:  # a queue's number is never routed out
                await inbound.reject(unserved.status, unserved.reason)
                return Disposition.FAILED, unserved.cause
            if not await self._routable(inbound.callee):
                await inbound.reject(404, "Not Found")
                return Disposition.FAILED, "404 unknown number"
        return await self._relayed(inbound, cdr)

    async def _connect_did(self, inbound: InboundCall, cdr: int) -> tuple[Disposition, str]:
        """A trunk's call (toll-fraud rule, pbx.inbound): only its DID's target is served
        (never outbound routes or feature codes); the CDR's cause names the target."""
        step = await step_for(self.store.dids, inbound.callee)
        log.info("call %s: DID %r -> %s", inbound.id, step.did, step.target or step.cause)
        if step.action is DidAction.REFUSE:
            await inbound.reject(404, "Not Found")
            return Disposition.FAILED, step.cause
        via = f" (DID {step.did} -> {step.target})"
        if step.action is DidAction.MAILBOX:
            return await self._to_voicemail(inbound, step.number, "unavailable", cdr, via)
        inbound.callee = step.number
        if step.action is DidAction.APPLICATION:
            served = await self.frontend.serve(inbound) if self.frontend is not None else None
            if served is None:
                await inbound.reject(404, "Not Found")
                return Disposition.FAILED, f"404 {step.target} not served{via}"
            disposition, cause = await self._served(inbound, cdr, served)
        elif step.action is DidAction.RING and not await self._exists(step.number):
            await inbound.reject(404, "Not Found")
            return Disposition.FAILED, f"404 {step.target} is gone{via}"
        else:  # RING, or TRUNK: reach() dials trunk:NAME/NUMBER
            disposition, cause = await self._relayed(inbound, cdr)
        return disposition, cause + via

    async def _relayed(self, inbound: InboundCall, cdr: int) -> tuple[Disposition, str]:
        """Ring `inbound.callee` for `inbound` with its media relayed by the switch."""
        try:
            media = self._anchored(inbound)
        except MediaError as exc:
            log.warning("call %s: no media ports: %s", inbound.id, exc)
            await inbound.reject(503, "Out Of Media Ports")
            return Disposition.FAILED, "503 no RTP ports"
        try:
            return await self._connect_with(inbound, media, cdr)
        finally:
            media.close()

    def _anchored(
        self, call: InboundCall, pairs: tuple[PortPair, PortPair] | None = None
    ) -> AnchoredMedia:
        """A relay for `call`'s media; a media timeout hangs the call up.

        Raises: PortsExhaustedError (MediaError) when no ports are left.
        """
        media = AnchoredMedia(
            self.ports,
            self.media_host(call.peer),
            name=call.request.call_id,
            timeout=self.media_timeout,
            hold_timeout=self.hold_timeout,
            on_timeout=lambda leg: self.manager.spawn(
                call.hangup(0, "media timeout"), f"media timeout {call.id}"
            ),
            pairs=pairs,
        )
        media.relay.set_signalling("a", call.peer.host)
        return media

    async def _served(self, inbound: InboundCall, cdr: int, cause: str) -> tuple[Disposition, str]:
        """The outcome of a call an application (IVR, voicemail) served: ANSWERED when it
        answered (the CDR gets the answer time), else FAILED."""
        if inbound.answered_at is not None:
            await self.store.cdrs.answered(cdr, inbound.answered_at)
            return Disposition.ANSWERED, cause
        return Disposition.FAILED, cause

    def media_host(self, peer: Peer) -> str:
        """The address to put in SDP for `peer`: the RTP bind address, or when that is a
        wildcard, the local address the switch reaches `peer` from."""
        host = self.ports.host
        return self.manager.local_host(peer) if host in ("0.0.0.0", "::", "") else host

    async def _exists(self, number: str) -> bool:
        return number in self._users() or await self.store.dialplan.ring_group(number) is not None

    async def _routable(self, number: str) -> bool:
        """Whether a phone's dialled `number` (no extension or ring group) leaves through
        an outbound route (who may use the route is checked when it is dialled). A dialled
        number is never taken as a `trunk:` target: only configuration makes those."""
        return not is_trunk_target(number) and bool(await self.store.routes.plan(number))

    def route_refusal(self, caller: Call | None) -> str | None:
        """Why `caller` may not use the outbound routes (the toll-fraud rule), or None
        when it may: the switch's own calls (None) and calls of authenticated local users
        may; a call that came in from a trunk, or from anyone else, may not."""
        if caller is None:
            return None
        if caller.trunk is not None:
            return f"the call came in from trunk {caller.trunk}"
        if isinstance(caller, InboundCall) and caller.caller in self._users():
            return None
        return f"{caller.caller!r} is not an authenticated local user"

    async def plan(self, number: str) -> tuple[list[Attempt], Forwarding] | None:
        """What dialling `number` rings, in order, and the forwarding that applies; a
        `trunk:NAME/NUMBER` target is the number at that trunk (no targets when its host
        does not resolve); None for an unknown number or trunk."""
        if is_trunk_target(number):
            return await self._trunk_plan(number)
        now = self._clock()
        if number in self._users():
            forwarding = await self.store.dialplan.forwarding(number)
            wait = forwarding.no_answer_seconds if forwarding.no_answer else self.ring_timeout
            return [Attempt(targets_for(self.location, number, now), wait)], forwarding
        group = await self.store.dialplan.ring_group(number)
        if group is None:
            return None
        members = [targets_for(self.location, m, now) for m in group.members]
        if group.strategy == "sequential":
            attempts = [Attempt(t, group.ring_seconds) for t in members]
        else:
            attempts = [Attempt([t for ts in members for t in ts], group.ring_seconds)]
        # The group's overflow is followed like forwarding when no member answers.
        return attempts, Forwarding(number, busy=group.overflow, no_answer=group.overflow)

    async def _trunk_plan(self, target: str) -> tuple[list[Attempt], Forwarding] | None:
        try:
            name, number = parse_trunk_target(target)
            trunk = await self.store.trunks.get(name)
        except (ConfigError, NotFoundError):
            return None
        try:
            peer = await resolve(trunk, self.outbound.resolve_timeout)
            targets: list[Target] = [self.outbound.target(trunk, peer, number, trunk.caller_id)]
        except (ResolveError, ConfigError):
            targets = []
        return [Attempt(targets, self.ring_timeout)], Forwarding(target)

    async def _connect_with(
        self, inbound: InboundCall, media: AnchoredMedia, cdr: int
    ) -> tuple[Disposition, str]:
        try:
            if inbound.late_offer:  # the switch offers; the caller answers in its ACK
                offer = media.offer_g711("b")
            else:
                offer = media.offer_from("a", inbound.remote_sdp or b"")
        except (SdpError, MediaError) as exc:
            await inbound.reject(488, "Not Acceptable Here")
            return Disposition.FAILED, f"488 bad offer: {exc}"

        def ringing(call: OutboundCall, response: Response) -> None:
            early = None
            if response.status == 183 and response.body and not inbound.late_offer:
                media.relay.set_signalling("b", call.peer.host)
                try:
                    early = media.answer_from("b", response.body)
                except (SdpError, MediaError) as exc:
                    log.info("call %s: early media unusable: %s", inbound.id, exc)
            inbound.ring_now(early)

        reached = await self.reach(
            inbound,
            inbound.callee,
            offer,
            caller_id=inbound.caller,
            callee=inbound.callee,
            display=inbound.request.from_.display_name,
            on_ringing=ringing,
        )
        if reached.trunk:
            await self.store.cdrs.set_trunk(cdr, reached.trunk, reached.trunk_number)
        via = reached.via
        if reached.queue is not None and self.frontend is not None:
            callee, inbound.callee = inbound.callee, reached.queue  # the ACD answers it
            served = await self.frontend.serve(inbound)
            if served is not None:
                return await self._served(inbound, cdr, served + via)
            inbound.callee = callee
            log.warning("call %s: %s: no ACD application serves it", inbound.id, reached.why)
        if reached.winner is not None:
            return await self._answered(inbound, reached.winner, media, cdr, via)
        if reached.cancelled:
            return Disposition.CANCELLED, f"487 cancelled by caller{via}"
        if reached.voicemail is not None:
            return await self._to_voicemail(inbound, reached.voicemail, reached.why, cdr, via)
        await inbound.reject(reached.status, reached.reason)
        return reached.disposition, reached.cause + via

    async def reach(
        self,
        caller: Call | None,
        number: str,
        offer: bytes,
        *,
        caller_id: str,
        callee: str | None = None,
        display: str | None = None,
        on_ringing: Callable[[OutboundCall, Response], None] | None = None,
        headers: list[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> Reached:
        """Ring what `number` names (an extension's every contact, a ring group in its
        order, a `trunk:NAME/NUMBER` target, an external number through the outbound
        routes), following its forwarding (always, busy, no answer) up to MAX_FORWARDS
        hops, with `offer`, on behalf of `caller` (None: the switch's own call). The one
        ringing routine of the switch: routed calls, IVR transfers, REFER and
        `pbx.api.Switch.dial` all come here. `callee` names the To user (default: the
        number rung); `timeout` caps each ringing."""
        visited, via = [number], ""
        while True:
            outside = is_trunk_target(number) or not await self._exists(number)
            if outside and not is_trunk_target(number):  # a queue is no outside number
                unserved = await self._unserved_queue(caller, number, via)
                if unserved is not None:
                    return unserved
            if outside:
                reached = await self._dial_out(
                    caller,
                    number,
                    offer,
                    caller_id=caller_id,
                    display=display,
                    on_ringing=on_ringing,
                    headers=headers,
                    timeout=timeout,
                )
                return dataclasses.replace(reached, via=via + reached.via)
            plan = await self.plan(number)
            if plan is None:
                return Reached(status=404, reason="Not Found", cause="404 unknown number", via=via)
            attempts, forwarding = plan
            if timeout is not None:
                attempts = [Attempt(a.targets, min(a.seconds, timeout)) for a in attempts]
            if forwarding.always:
                next_number, why = forwarding.always, "always"
            else:
                rung = await self.ring_plan(
                    caller,
                    attempts,
                    offer,
                    caller_id=caller_id,
                    callee=callee or number,
                    display=display,
                    on_ringing=on_ringing,
                    headers=headers,
                )
                if rung.winner is not None:
                    return Reached(winner=rung.winner, status=200, via=via)
                if rung.cancelled:
                    return Reached(cancelled=True, status=487, via=via)
                busy = rung.disposition is Disposition.BUSY
                target = forwarding.busy if busy else forwarding.no_answer
                if target is None:
                    cause = {408: "408 no answer", 480: "480 not registered"}.get(
                        rung.status, f"{rung.status} from callee"
                    )
                    return Reached(
                        status=rung.status, disposition=rung.disposition, cause=cause, via=via
                    )
                next_number, why = target, ("busy" if busy else "no answer")
            if next_number == VOICEMAIL or next_number.startswith(MAILBOX_PREFIX):
                box = number if next_number == VOICEMAIL else next_number[len(MAILBOX_PREFIX) :]
                return Reached(voicemail=box, why=why, via=via)
            if next_number in visited or len(visited) > MAX_FORWARDS:
                return Reached(
                    status=482,
                    reason="Loop Detected",
                    cause=f"482 forwarding loop {' -> '.join(visited)}",
                    via="",
                )
            log.info(
                "call %s: %s forwards (%s) to %s",
                caller.id if caller is not None else "-",
                number,
                why,
                next_number,
            )
            visited.append(next_number)
            via = f" (forwarded {' -> '.join(visited)})"
            number = next_number

    async def _unserved_queue(self, caller: Call | None, target: str, via: str) -> Reached | None:
        """`target` as a queue (`queue:NAME` from configuration, or a queue's number), or
        None when it is neither. A caller's call goes to the frontend (the ACD application
        serves queues: `Reached.queue`); without a caller or a frontend it is refused 480
        (404: no such queue), never routed out."""
        who = caller.id if caller is not None else "-"
        if target.startswith(QUEUE_PREFIX):
            name = target[len(QUEUE_PREFIX) :]
            number = await self.store.queues.number_of(name)
            if number is None:
                log.warning("call %s: %s: no such queue", who, target)
                return Reached(
                    status=404, reason="Not Found", cause=f"404 no queue {name}", via=via
                )
        else:
            queue = await self.store.queues.by_number(target)
            if queue is None:
                return None
            name, number = queue.name, queue.number
        if caller is None or self.frontend is None:
            log.warning(
                "call %s: queue %s (number %s): no ACD application serves it", who, name, number
            )
        return Reached(
            queue=f"{QUEUE_PREFIX}{name}" if caller is not None else None,
            why=f"queue {name} (number {number})",
            status=480,
            reason="Temporarily Unavailable",
            cause=f"480 queue {name} ({number}) not served",
            via=via,
        )

    async def _dial_out(
        self,
        caller: Call | None,
        number: str,
        offer: bytes,
        *,
        caller_id: str,
        display: str | None,
        on_ringing: Callable[[OutboundCall, Response], None] | None,
        headers: list[tuple[str, str]] | None,
        timeout: float | None,
    ) -> Reached:
        """`number` outside the switch: a `trunk:NAME/NUMBER` target (configuration's, so
        anyone's call may take it) or an external number through the outbound routes
        (only callers `route_refusal` lets through; no trunk sees the others' INVITE)."""
        who = caller.id if caller is not None else "-"
        attempts: list[RouteAttempt]
        if is_trunk_target(number):
            try:
                name, dialled = parse_trunk_target(number)
            except ConfigError as exc:
                log.warning("call %s: %s", who, exc)
                return Reached(status=404, reason="Not Found", cause=f"404 {exc}")
            attempts = [RouteAttempt(name, dialled, None, "")]
        else:
            attempts = await self.store.routes.plan(number)
            if not attempts:
                return Reached(status=404, reason="Not Found", cause="404 unknown number")
            refusal = self.route_refusal(caller)
            if refusal is not None:
                log.warning("call %s: %s may not be dialled out: %s", who, number, refusal)
                return Reached(status=403, reason="Forbidden", cause=f"403 {refusal}")
        seconds = self.ring_timeout if timeout is None else min(timeout, self.ring_timeout)
        out = await self.outbound.dial(
            self,
            caller,
            attempts,
            offer,
            seconds,
            caller_id=caller_id,
            display=display,
            on_ringing=on_ringing,
            headers=headers,
        )
        after = f" (after {'; '.join(out.failed_over)})" if out.failed_over else ""
        if out.winner is not None:
            return Reached(
                winner=out.winner,
                status=200,
                via=after,
                trunk=out.trunk,
                trunk_number=out.number,
            )
        if out.cancelled:
            return Reached(cancelled=True, status=487, trunk=out.trunk, trunk_number=out.number)
        return Reached(
            status=out.status,
            reason=out.reason,
            disposition=out.disposition,
            cause=f"{out.status} {out.cause}",
            trunk=out.trunk,
            trunk_number=out.number,
        )

    async def _to_voicemail(
        self, inbound: InboundCall, box: str, why: str, cdr: int, via: str
    ) -> tuple[Disposition, str]:
        """Hand a forwarded call to `box`'s mailbox (the busy greeting when busy)."""
        reason = "busy" if why == "busy" else "unavailable"
        cause = None
        if self.frontend is not None:
            log.info("call %s: %s forwards (%s) to voicemail", inbound.id, box, why)
            cause = await self.frontend.deposit(inbound, box, reason)
        if cause is None:
            await inbound.reject(480, "Temporarily Unavailable")
            return Disposition.FAILED, f"480 no voicemail for {box}{via}"
        return await self._served(inbound, cdr, cause + via)

    async def mailbox_changed(self, box: str) -> None:
        """Tell whoever watches mailboxes (MWI) that `box`'s counts changed."""
        if self.on_mailbox_change is not None:
            try:
                await self.on_mailbox_change(box)
            except Exception:
                log.exception("mailbox change of %s not announced", box)

    async def ring_plan(
        self,
        caller: Call | None,
        attempts: list[Attempt],
        offer: bytes,
        *,
        caller_id: str,
        callee: str,
        display: str | None = None,
        on_ringing: Callable[[OutboundCall, Response], None] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Rung:
        """Ring the attempts in turn until one answers, the caller gives up, or all fail."""
        statuses: list[int] = []
        timed_out = rang = False
        for attempt in attempts:
            if not attempt.targets:
                continue
            rang = True
            winner, result = await self.ring_targets(
                caller,
                attempt.targets,
                offer,
                attempt.seconds,
                caller_id=caller_id,
                callee=callee,
                display=display,
                on_ringing=on_ringing,
                headers=headers,
            )
            if winner is not None:
                return Rung(winner=winner)
            if caller is not None and caller.state is CallState.ENDED:
                return Rung(cancelled=True)
            if result is None:
                timed_out = True
            else:
                statuses.extend(result)
        if not rang:
            return Rung(status=480, disposition=Disposition.FAILED)
        if timed_out and not any(s in (486, 600, 603) for s in statuses):
            return Rung(status=408, disposition=Disposition.NO_ANSWER)
        status, disposition = pick_failure(statuses)
        return Rung(status=status, disposition=disposition)

    async def _answered(
        self,
        inbound: InboundCall,
        winner: OutboundCall,
        media: AnchoredMedia,
        cdr: int,
        via: str,
    ) -> tuple[Disposition, str]:
        try:
            if inbound.late_offer:
                media.connect_new("b", winner.remote_sdp or b"")
                reply = media.offer_for_new("a")  # the caller answers in its ACK
            else:
                reply = media.answer_from("b", winner.remote_sdp or b"")
        except (SdpError, MediaError) as exc:
            log.warning("call %s: callee's answer unusable: %s", inbound.id, exc)
            await winner.hangup(0, "bad SDP answer")
            await inbound.reject(488, "Not Acceptable Here")
            return Disposition.FAILED, f"488 bad answer: {exc}"
        await self.store.cdrs.answered(cdr, self._clock())
        cause = await self._bridge(inbound, winner, reply, media, cdr)
        return Disposition.ANSWERED, cause + via

    async def ring_targets(
        self,
        caller: Call | None,
        targets: list[Target],
        offer: bytes,
        seconds: float,
        *,
        caller_id: str,
        callee: str,
        display: str | None = None,
        on_ringing: Callable[[OutboundCall, Response], None] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[OutboundCall | None, list[int] | None]:
        """Fork to `targets` with `offer` on behalf of `caller` (None: a call the switch
        places itself), for `seconds` at most; `headers` go into each INVITE.

        Returns the first to answer (the others are cancelled), or None with the
        final statuses; None statuses: the time ran out or `caller` hung up.
        """
        forks: list[OutboundCall] = []
        for target in targets:
            out = OutboundCall(
                self.manager,
                target.uri,
                target.peer,
                caller_id,
                callee,
                caller_name=display,
            )
            out.on_ringing = on_ringing
            out.cdr_id = caller.cdr_id if caller is not None else None
            out.headers = list(headers or [])
            if isinstance(target, TrunkTarget):
                target.prepare(out)
            out.start(offer)
            forks.append(out)
        legs = self._outbound.get(caller.id) if caller is not None else None
        if legs is not None:  # a routed call: these legs end with it whatever happens
            legs.extend(forks)
        by_final = {f.final: f for f in forks}
        pending: set[asyncio.Future[Response]] = set(by_final)
        loop = asyncio.get_running_loop()
        caller_gone: asyncio.Future[Any] = (
            asyncio.ensure_future(caller.ended.wait())
            if caller is not None
            else loop.create_future()
        )
        winner: OutboundCall | None = None
        deadline = loop.time() + seconds
        try:
            while pending and winner is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                waiting: set[asyncio.Future[Any]] = {*pending, caller_gone}
                done, _ = await asyncio.wait(
                    waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if caller_gone in done:
                    break
                for future in done:
                    pending.discard(future)
                    fork = by_final[future]
                    if 200 <= fork.final.result().status < 300 and winner is None:
                        winner = fork
        finally:
            caller_gone.cancel()
            for f in forks:
                if f is not winner and f.state is not CallState.ENDED:
                    await f.hangup()  # CANCEL (or BYE if it answered too late)
        if winner is not None:
            return winner, []
        if pending:  # timeout or caller gone
            return None, None
        return None, [f.final.result().status for f in forks]

    async def _bridge(
        self,
        inbound: InboundCall,
        outbound: OutboundCall,
        reply: bytes,
        media: AnchoredMedia,
        cdr: int,
    ) -> str:
        """Answer the caller through the relay and keep the legs joined until one hangs up
        (transfers may swap a leg meanwhile); record it when either extension asks."""
        bridge = Bridge(self, media, inbound, outbound)
        if not await inbound.answer(reply):
            await outbound.hangup()
            bridge.close()
            return "no ACK from caller"
        if inbound.late_offer:
            try:
                media.connect_new("a", inbound.ack_sdp or b"")
            except (SdpError, MediaError) as exc:
                log.info("call %s: no usable answer in the ACK: %s", inbound.id, exc)
                await inbound.hangup(0, "no SDP answer in the ACK")
                await outbound.hangup()
                bridge.close()
                return "488 no usable SDP answer in the caller's ACK"
        bridge.announce()
        recorder = await self._recorder(bridge, inbound, outbound.callee, cdr)
        try:
            return await bridge.run()
        finally:
            if recorder is not None:
                await recorder.close()

    async def _recorder(
        self, bridge: Bridge, inbound: InboundCall, callee: str, cdr: int | None
    ) -> CallRecorder | None:
        """The call's recorder: started when either extension records always; when one
        records on demand, its phone starts and stops it with `*1`; else None. The WAV
        is streamed to disk from the first start on, and linked from the CDR at once
        (a crash leaves the CDR pointing at everything recorded until then); on
        demand, a call whose code is never pressed leaves no file."""
        # A trunk's caller is a number, not a local user: no recording mode of its own.
        mode_a = (
            await self.store.dialplan.recording_mode(inbound.caller) if not inbound.trunk else ""
        )
        mode_b = await self.store.dialplan.recording_mode(callee)
        if "on_demand" not in (mode_a, mode_b) and "always" not in (mode_a, mode_b):
            return None
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{inbound.id}.wav"

        async def link(path: Path) -> None:
            if cdr is not None:
                await self.store.cdrs.set_recording(cdr, str(path))

        recorder = CallRecorder(
            bridge.media.relay, self.recordings / time.strftime("%Y-%m") / name, on_open=link
        )
        if "always" in (mode_a, mode_b):
            recorder.start()
            return recorder
        if mode_a == "on_demand":
            bridge.record_on_demand("a", recorder)
        if mode_b == "on_demand":
            bridge.record_on_demand("b", recorder)
        return recorder

    async def connect_to(self, call: InboundCall, number: str) -> tuple[int, str]:
        """Join an answered call whose media the switch terminates (an IVR caller) to
        what `number` names, its forwarding followed (on to another number, or into a
        mailbox). One media anchor: while it rings the caller hears music from its own
        endpoint; when it answers, the caller's port pair becomes leg "a" of a relay (the
        caller's stream goes on: no re-INVITE, no new SSRC) and the callee hears the
        caller from its 200 on. Bridged until one hangs up.

        Returns (200, cause) after a bridged (or voicemail) call ended; else the final
        status that ended the attempt (0: the caller hung up or nothing was tried) and
        why; the caller's own media is in place then.
        """
        own = call.media
        if own is None or own.closed or own.stream is None:
            return 0, "no media to hand over"
        try:
            pair_b = self.ports.allocate()
        except MediaError as exc:
            return 503, f"no RTP ports: {exc}"
        host = self.media_host(call.peer)
        offer_b = offer_at(host, pair_b.rtp_port, own.stream)
        music = asyncio.ensure_future(self._music_while_waiting(own))
        try:
            reached = await self.reach(call, number, offer_b, caller_id=call.caller)
        except BaseException:
            self.ports.release(pair_b)
            raise
        finally:
            music.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await music
        cdr = self._cdrs.get(call.id)
        if reached.trunk and cdr is not None:
            await self.store.cdrs.set_trunk(cdr, reached.trunk, reached.trunk_number)
        winner = reached.winner
        if winner is None:
            self.ports.release(pair_b)
            if reached.queue is not None and self.frontend is not None:
                callee, call.callee = call.callee, reached.queue
                cause = await self.frontend.serve(call)
                if cause is not None:
                    return 200, cause + reached.via
                call.callee = callee
                log.warning("call %s: %s: no ACD application serves it", call.id, reached.why)
            if reached.voicemail is not None and self.frontend is not None:
                reason = "busy" if reached.why == "busy" else "unavailable"
                cause = await self.frontend.deposit(call, reached.voicemail, reason)
                if cause is not None:
                    return 200, cause + reached.via
            if reached.cancelled or call.state is CallState.ENDED:
                return 0, "caller hung up while the IVR dialled"
            if reached.status == 408:
                return 408, f"no answer from {number}{reached.via}"
            return reached.status, f"{number}: {reached.cause}{reached.via}"
        if own.closed:  # the caller hung up as the callee answered
            self.ports.release(pair_b)
            await winner.hangup(0, "caller gone")
            return 0, "caller hung up while the IVR dialled"
        stream = own.stream
        pair_a, (ssrc, seq, ts) = own.detach()
        call.media = None
        media = self._anchored(call, pairs=(pair_a, pair_b))
        try:
            media.adopt("a", stream)
            media.relay.leg("a").continue_stream(ssrc, seq, ts)
            media.relay.set_signalling("b", winner.peer.host)
            media.connect_new("b", winner.remote_sdp or b"")
            bridge = Bridge(self, media, call, winner)
            bridge.announce()
            recorder = await self._recorder(bridge, call, number, self._cdrs.get(call.id))
            try:
                return 200, await bridge.run() + f" (via {number}{reached.via})"
            finally:
                if recorder is not None:
                    await recorder.close()
        except (SdpError, MediaError) as exc:
            log.info("call %s: cannot connect to %s: %s", call.id, number, exc)
            await winner.hangup(0, "unusable SDP answer")
            await call.hangup(0, "media failed")
            return 200, f"488 {exc}"
        finally:
            media.close()

    async def _music_while_waiting(self, own: MediaEndpoint) -> None:
        """Music on hold, looped from its pre-encoded frames, to a caller whose media the
        switch terminates while the number it asked for rings (cancelled when ringing
        ends)."""
        try:
            music = await self.moh.music()
        except MohError as exc:
            log.info("no music while waiting: %s", exc)
            return
        await own.loop_encoded(music.encoded)

    async def dial_number(
        self, number: str, transferee: Call, offer: bytes
    ) -> tuple[OutboundCall | None, int]:
        """Ring what `number` names (its forwarding followed) for a transfer; returns the
        answered call, or None and the status to report. The number comes from a phone
        (REFER): a `trunk:` target is refused."""
        if is_trunk_target(number):
            return None, 404
        reached = await self.reach(
            transferee,
            number,
            offer,
            caller_id=transferee.callee if transferee.outbound else transferee.caller,
        )
        if reached.winner is not None:
            return reached.winner, 200
        return None, 480 if reached.voicemail is not None else reached.status
