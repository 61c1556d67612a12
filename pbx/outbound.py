"""Calling out through trunks: `trunk:NAME/NUMBER` targets and outbound routes.

A trunk call is one INVITE to `sip:NUMBER@host:port` of the trunk (its transport; its
host resolved off the loop, bounded by a timeout), with From
`<sip:FROM_USER@FROM_DOMAIN>` (from-user defaults to the caller ID presented, as
Asterisk's fromuser does, then to the trunk's username; from-domain to the trunk's
host), the trunk's outbound caller ID when it has one (a route's rewrite first), and
P-Asserted-Identity naming that caller ID when the From user is another (the account
a provider authenticates by). The offer is cut to the trunk's codecs. A 401/407 is
answered once with the trunk's credentials (`OutboundCall.authenticator`, one
`ClientAuthenticator` per trunk, so later INVITEs are preauthorized).

Failover (`dial`): the attempts of a plan (one for a `trunk:` target, a route's
ordered trunks otherwise) are tried in turn. The next trunk is tried after 408, any
5xx, no answer from the trunk at all (a timeout, a transport error: the endpoint
reports both as 408/503), a trunk that is unknown, whose host does not resolve, whose
codecs the caller does not have, or whose channels are all in use. Any other final
answer (486 busy, 404, 6xx ...) is the called network's answer: it ends the call,
as does the caller hanging up or a trunk that rang and was not answered in time.
Every failure is logged with the trunk's name and the reason; no password is logged.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from media.errors import MediaError
from media.sdp import SessionDescription
from pbx.errors import ConfigError, NotFoundError
from pbx.registrar import Target
from pbx.store import targets
from pbx.store.cdrs import Disposition
from pbx.store.routes import Attempt as RouteAttempt
from pbx.store.targets import TRUNK_PREFIX
from pbx.store.trunks import Trunk
from pbx.trunks import ResolveError, TrunkChannels, resolve
from sip.errors import SipParseError
from sip.peer import Peer
from sip.registration import ClientAuthenticator
from sip.uri import SipUri

if TYPE_CHECKING:
    from pbx.calls import Call, OutboundCall
    from pbx.store import Store
    from sip.message import Response

__all__ = [
    "TRUNK_PREFIX",
    "DialOutcome",
    "OutboundDialler",
    "TrunkTarget",
    "fails_over",
    "is_trunk_target",
    "limit_codecs",
    "parse_trunk_target",
]

log = logging.getLogger(__name__)

#: A caller ID that may go into From and P-Asserted-Identity as it is (a number or a
#: plain user name); anything else is replaced by the trunk's username.
_CALLER_ID = re.compile(r"\+?[A-Za-z0-9_.*#-]{1,32}")
#: Payload formats kept whatever the trunk's codecs (they carry no voice).
_SIGNALLING_CODECS = frozenset({"telephone-event", "cn"})


def is_trunk_target(target: str) -> bool:
    """Whether `target` is written as a trunk target (`trunk:...`), well formed or not."""
    return target.startswith(TRUNK_PREFIX)


def parse_trunk_target(target: str) -> tuple[str, str]:
    """`trunk:NAME/NUMBER` -> (NAME, NUMBER), by the rules configuration is checked with
    (pbx.store.targets).

    Raises: ConfigError naming what is wrong (not a trunk target, no `/`, a bad trunk
    name or number).
    """
    parsed = targets.parse_trunk_target(target)
    if parsed is None:
        raise ConfigError(f"{target!r} is not trunk:NAME/NUMBER")
    return parsed.trunk, parsed.number


def fails_over(status: int) -> bool:
    """Whether a trunk's final `status` sends the call on to the next trunk: 408 (or
    a timeout) and 5xx; every other failure is the called network's answer."""
    return status == 408 or 500 <= status < 600


def limit_codecs(offer: bytes, codecs: Sequence[str]) -> bytes:
    """`offer` with its audio stream cut to `codecs` (SDP names, any case) plus
    telephone-event and comfort noise, in the offer's order.

    Raises: MediaError (SdpError) when the offer is unreadable or has none of `codecs`.
    """
    sdp = SessionDescription.parse(offer)
    audio = sdp.audio()
    wanted = {c.lower() for c in codecs}
    names = {str(c.payload_type): c.key for c in audio.codecs}
    keep = [f for f in audio.formats if names.get(f) in wanted | _SIGNALLING_CODECS]
    if not any(names.get(f) in wanted for f in keep):
        offered = ", ".join(c.name for c in audio.codecs) or "nothing"
        raise MediaError(f"the caller offers {offered}, the trunk takes {', '.join(codecs)}")
    if len(keep) == len(audio.formats):
        return offer
    dropped = set(audio.formats) - set(keep)

    def kept(line: tuple[str, str]) -> bool:
        kind, value = line
        if kind != "a" or not value.startswith(("rtpmap:", "fmtp:")):
            return True
        return value.partition(":")[2].partition(" ")[0] not in dropped

    media = dataclasses.replace(
        audio, formats=tuple(keep), lines=tuple(line for line in audio.lines if kept(line))
    )
    return bytes(
        dataclasses.replace(sdp, media=tuple(media if m is audio else m for m in sdp.media))
    )


@dataclass(frozen=True, slots=True)
class TrunkTarget(Target):
    """A number at a trunk: what `B2bua.ring_targets` needs beyond the URI and the
    address to set up the INVITE (`prepare`)."""

    trunk: str = ""
    caller_id: str = ""
    from_user: str = ""
    from_host: str = ""
    authenticator: ClientAuthenticator | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()

    def prepare(self, call: OutboundCall) -> None:
        """Make `call` (not started yet) this trunk's INVITE."""
        call.caller = self.caller_id
        call.from_user = self.from_user
        call.from_host = self.from_host
        call.authenticator = self.authenticator
        call.headers.extend(self.extra_headers)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _escaped(number: str) -> str:
    return number.replace("#", "%23")


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """How dialling out ended: a `winner` (answered through `trunk`), the caller's
    hang-up, or a failure with the status for the caller and the CDR's cause."""

    winner: OutboundCall | None = None
    cancelled: bool = False
    status: int = 503
    reason: str | None = None
    disposition: Disposition = Disposition.FAILED
    cause: str = ""
    #: The trunk that gave the outcome (answered, or the last one tried) and the number
    #: sent to it; "" when no trunk was tried.
    trunk: str = ""
    number: str = ""
    #: The trunks tried before, each with why it failed ("prov-a: 503 from the trunk").
    failed_over: tuple[str, ...] = ()


class Ringer(Protocol):
    """What dialling needs of `pbx.b2bua.B2bua`: its one forking routine."""

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
    ) -> tuple[OutboundCall | None, list[int] | None]: ...


_BUSY = frozenset({486, 600, 603})


class OutboundDialler:
    """Places calls at trunks (see the module docstring); owns the trunks' UAC
    authenticators and counts their channels in `channels`."""

    def __init__(
        self,
        store: Store,
        channels: TrunkChannels,
        *,
        resolve_timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.channels = channels
        self.resolve_timeout = resolve_timeout
        # trunk name -> (what the credentials were made of, the authenticator)
        self._auth: dict[str, tuple[tuple[str, str, str], ClientAuthenticator]] = {}
        #: The Service-Route a trunk's registration returned (pbx.trunks.TrunkService
        #: sets it when the server starts): the preloaded Route set of its INVITEs.
        self.service_route: Callable[[str], tuple[str, ...]] = lambda _name: ()

    def authenticator(self, trunk: Trunk) -> ClientAuthenticator | None:
        """The trunk's authenticator (kept across calls: its cached challenges
        preauthorize the next INVITE); a new one when the credentials changed; None for
        a trunk without a password."""
        if not trunk.password:
            self._auth.pop(trunk.name, None)
            return None
        key = (trunk.login, trunk.password, trunk.host)
        held = self._auth.get(trunk.name)
        if held is None or held[0] != key:
            held = self._auth[trunk.name] = (
                key,
                ClientAuthenticator({"": (trunk.login, trunk.password)}),
            )
        return held[1]

    def target(self, trunk: Trunk, peer: Peer, number: str, caller_id: str) -> TrunkTarget:
        """The INVITE's particulars for `number` at `trunk` reached at `peer`, presenting
        `caller_id` (the route's or the trunk's caller ID, else the caller's own).

        Raises: ConfigError when the number cannot be put in a SIP URI.
        """
        host = _bracketed(trunk.host)
        params = ";transport=tcp" if trunk.transport.lower() == "tcp" else ""
        try:
            uri = SipUri.parse(f"sip:{_escaped(number)}@{host}:{trunk.port}{params}")
        except SipParseError as exc:
            raise ConfigError(f"number {number!r} does not fit a SIP URI: {exc}") from None
        if not _CALLER_ID.fullmatch(caller_id):
            if caller_id:
                log.info("trunk %s: caller ID %r not sent (not a number)", trunk.name, caller_id)
            caller_id = ""
        from_user = trunk.from_user or caller_id or trunk.username or "anonymous"
        from_host = trunk.from_domain or host
        extra: tuple[tuple[str, str], ...] = ()
        if caller_id and caller_id != from_user:
            extra = (("P-Asserted-Identity", f"<sip:{_escaped(caller_id)}@{from_host}>"),)
        # RFC 3608 §6.1: the trunk's host is where the INVITE is sent (the outbound
        # proxy), the Service-Route follows as Route headers, in the order received.
        extra += tuple(("Route", route) for route in self.service_route(trunk.name))
        return TrunkTarget(
            uri,
            peer,
            trunk=trunk.name,
            caller_id=caller_id or from_user,
            from_user=_escaped(from_user),
            from_host=from_host,
            authenticator=self.authenticator(trunk),
            extra_headers=extra,
        )

    async def peer(self, trunk_name: str) -> Peer | None:
        """Where the trunk is reached (for the SDP address), None when unknown or
        unresolvable."""
        try:
            return await resolve(await self.store.trunks.get(trunk_name), self.resolve_timeout)
        except (NotFoundError, ResolveError):
            return None

    async def dial(
        self,
        ringer: Ringer,
        caller: Call | None,
        attempts: Sequence[RouteAttempt],
        offer: bytes,
        seconds: float,
        *,
        caller_id: str,
        display: str | None = None,
        on_ringing: Callable[[OutboundCall, Response], None] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> DialOutcome:
        """Try `attempts` in order (failover as the module docstring says), each rung
        for `seconds` at most, on behalf of `caller` (None: the switch's own call)."""
        tried: list[str] = []
        last: DialOutcome | None = None
        for attempt in attempts:
            outcome, onwards = await self._one(
                ringer,
                caller,
                attempt,
                offer,
                seconds,
                caller_id=caller_id,
                display=display,
                on_ringing=on_ringing,
                headers=headers,
            )
            if not onwards:
                return dataclasses.replace(
                    outcome, cause=_tried(tried, outcome.cause), failed_over=tuple(tried)
                )
            tried.append(f"{attempt.trunk}: {outcome.cause}")
            if outcome.trunk:
                last = outcome
            log.info(
                "outbound %s: trunk %s failed (%s)", attempt.number, attempt.trunk, outcome.cause
            )
        if not tried:
            return DialOutcome(status=404, reason="Not Found", cause="404 no trunk to dial")
        if last is None:  # no trunk could even be tried
            return DialOutcome(status=503, reason="Service Unavailable", cause="; ".join(tried))
        return dataclasses.replace(last, cause="; ".join(tried), failed_over=tuple(tried[:-1]))

    async def _one(
        self,
        ringer: Ringer,
        caller: Call | None,
        attempt: RouteAttempt,
        offer: bytes,
        seconds: float,
        *,
        caller_id: str,
        display: str | None,
        on_ringing: Callable[[OutboundCall, Response], None] | None,
        headers: list[tuple[str, str]] | None,
    ) -> tuple[DialOutcome, bool]:
        """One trunk: its outcome, and whether to go on to the next trunk. A failure
        before any INVITE went out has trunk ""."""
        name, number = attempt.trunk, attempt.number
        try:
            trunk = await self.store.trunks.get(name)
        except NotFoundError:
            log.warning("trunk %s: no such trunk (dialling %s)", name, number)
            return DialOutcome(cause="no such trunk"), True
        try:
            limited = limit_codecs(offer, trunk.codecs)
        except MediaError as exc:
            log.warning("trunk %s: not tried for %s: %s", name, number, exc)
            return DialOutcome(cause=f"no common codec ({exc})"), True
        if not self.channels.acquire(name, trunk.max_channels):
            log.warning("trunk %s: all %d channels in use", name, trunk.max_channels)
            return DialOutcome(cause=f"all {trunk.max_channels} channels in use"), True
        held = True
        try:
            try:
                peer = await resolve(trunk, self.resolve_timeout)
            except ResolveError as exc:
                log.warning("trunk %s: cannot resolve %r: %s", name, trunk.host, exc)
                return DialOutcome(cause=f"host {trunk.host} unresolved: {exc}"), True
            presented = attempt.caller_id or trunk.caller_id or caller_id
            try:
                target = self.target(trunk, peer, number, presented)
            except ConfigError as exc:
                log.warning("trunk %s: %s", name, exc)
                return DialOutcome(cause=str(exc)), True
            rang = False

            def ringing(call: OutboundCall, response: Response) -> None:
                nonlocal rang
                rang = rang or response.status in (180, 183)
                if on_ringing is not None:
                    on_ringing(call, response)

            log.info("trunk %s: calling %s at %s as %s", name, number, trunk.hostport, presented)
            winner, statuses = await ringer.ring_targets(
                caller,
                [target],
                limited,
                seconds,
                caller_id=target.caller_id,
                callee=number,
                display=display if presented == caller_id else None,
                on_ringing=ringing,
                headers=headers,
            )
            if winner is not None:
                held = False
                self._release_at_end(name, winner)
                outcome = DialOutcome(
                    winner=winner, status=200, cause=f"via {name}", trunk=name, number=number
                )
                return outcome, False
            if statuses is None and caller is not None and caller.ended.is_set():
                outcome = DialOutcome(
                    cancelled=True, status=487, cause="cancelled", trunk=name, number=number
                )
                return outcome, False
            if statuses is None and rang:  # it rang: nobody answered, try no other trunk
                outcome = DialOutcome(
                    status=408, disposition=Disposition.NO_ANSWER, cause="408 no answer",
                    trunk=name, number=number,
                )  # fmt: skip
                return outcome, False
            if statuses is None:
                outcome = DialOutcome(
                    status=408, cause="408 no progress in time", trunk=name, number=number
                )
                return outcome, True
            status = statuses[0] if statuses else 503
            disposition = Disposition.BUSY if status in _BUSY else Disposition.FAILED
            outcome = DialOutcome(
                status=status,
                disposition=disposition,
                cause=f"{status} from the trunk",
                trunk=name,
                number=number,
            )
            return outcome, fails_over(status)
        finally:
            if held:
                self.channels.release(name)

    def _release_at_end(self, name: str, call: OutboundCall) -> None:
        """The channel of an answered trunk call is free again when it ends."""
        if call.ended.is_set():
            self.channels.release(name)
        else:
            call.on_end.append(lambda _call: self.channels.release(name))


def _tried(tried: list[str], cause: str) -> str:
    return "; ".join([*tried, cause]) if tried else cause
