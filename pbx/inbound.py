"""Calls from providers: which INVITEs a trunk vouches for, and where their DID leads.

Two decisions, both pure (table-tested in tests/pbx/test_inbound.py):

- **Trust** (`InboundTrust.trunk_for`): a new INVITE whose source address lies in a
  trunk's `inbound_networks`, or, for a trunk with `inbound_contact`, comes from the
  address its registrations go to (host and port), is the provider's: it is taken without
  digest and marked with the trunk's name (`Call.trunk`). The most specific match wins
  (an exact registrar address, then the longest network prefix, then the trunk's name).
  Every other INVITE keeps digest and the ban logic. The caller of a trunk call is the
  From user as the provider sends it when it reads as a number (`caller_number`), else
  "anonymous": a display only, never a local user (nothing grants it a user's rights).
- **Routing** (`decide`): the DID is the Request-URI user when it is a stored DID, else
  the To user (`did_candidates`); a DID leads only to its configured target
  (`pbx.store.dids`). An unknown DID is refused 404. Toll-fraud rule: a trunk call is
  never planned through outbound routes, feature codes or any number but its DID's
  target's.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pbx.bans import Network
from pbx.errors import ConfigError
from pbx.store.dids import DidRepo, Target
from pbx.store.trunks import Trunk
from sip.message import Request
from sip.uri import SipUri

__all__ = [
    "ANONYMOUS",
    "DidAction",
    "DidStep",
    "InboundTrust",
    "TrunkCaller",
    "TrunkSource",
    "caller_number",
    "decide",
    "did_candidates",
    "pick_did",
    "step_for",
]

log = logging.getLogger(__name__)

#: The caller of a trunk call whose From user is not a number.
ANONYMOUS = "anonymous"
_NUMBER = re.compile(r"\+?[0-9]{1,32}")

Address = tuple[str, int]


class TrunkCaller(str):
    """The caller name the INVITE check returns for a provider's call: the caller's
    number, carrying the trunk's name to the server (which moves it to `Call.trunk`)
    through the CallManager's string-typed authentication hook."""

    trunk: str

    def __new__(cls, number: str, trunk: str) -> TrunkCaller:
        caller = super().__new__(cls, number)
        caller.trunk = trunk
        return caller


@dataclass(frozen=True, slots=True)
class TrunkSource:
    """How one trunk's INVITEs are recognised: its source networks, and whether the
    address its registrations go to counts (`contact`)."""

    name: str
    networks: tuple[Network, ...] = ()
    contact: bool = False
    #: The registrar's address when the trunk's host is an IP address (else the
    #: resolved one is asked of the trunk service at match time).
    registrar: Address | None = None

    @classmethod
    def of(cls, trunk: Trunk) -> TrunkSource:
        """Raises: ConfigError for a bad stored network (a hand-edited database)."""
        networks: list[Network] = []
        for text in trunk.inbound_networks:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ConfigError(f"trunk {trunk.name}: bad inbound network {text!r}") from None
        registrar = None
        if trunk.inbound_contact:
            try:
                registrar = (str(ipaddress.ip_address(trunk.host)), trunk.port)
            except ValueError:
                registrar = None  # a host name: resolved by the trunk service
        return cls(trunk.name, tuple(networks), trunk.inbound_contact, registrar)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class InboundTrust:
    """The trunks' inbound sources, replaced whenever the trunks change (`update`)."""

    def __init__(self, resolved: Callable[[str], Address | None] = lambda name: None) -> None:
        """`resolved(name)` is where trunk `name`'s registrations go (its host name
        resolved), or None when not known (yet)."""
        self._sources: tuple[TrunkSource, ...] = ()
        self._resolved = resolved

    def update(self, trunks: Iterable[Trunk]) -> None:
        """Take the stored trunks; one with a bad stored network is skipped (logged)."""
        sources = []
        for trunk in trunks:
            try:
                source = TrunkSource.of(trunk)
            except ConfigError as exc:
                log.warning("inbound trust: %s; that trunk's calls need digest", exc)
                continue
            if source.networks or source.contact:
                sources.append(source)
        self._sources = tuple(sorted(sources, key=lambda s: s.name))

    @property
    def sources(self) -> tuple[TrunkSource, ...]:
        return self._sources

    def trunk_for(self, host: str, port: int) -> str | None:
        """The trunk that vouches for an INVITE from `host`:`port`, or None."""
        if not self._sources:
            return None
        address = _address(host)
        if address is None:
            return None
        best: tuple[int, str] | None = None  # (specificity, name): highest wins
        for source in self._sources:
            score = -1
            if source.contact:
                registrar = source.registrar or self._resolved(source.name)
                if registrar is not None and (_address(registrar[0]), registrar[1]) == (
                    address,
                    port,
                ):
                    score = 1000  # an exact address beats any network
            for net in source.networks:
                if address.version == net.version and address in net:
                    score = max(score, net.prefixlen)
            if score >= 0 and (best is None or score > best[0]):
                best = (score, source.name)
        return best[1] if best is not None else None


def caller_number(request: Request) -> str:
    """The caller a provider's INVITE names: its From user when that reads as a number
    (1-32 digits, an optional +), else ANONYMOUS."""
    uri = request.from_.uri
    user = uri.user if isinstance(uri, SipUri) else None
    return user if user is not None and _NUMBER.fullmatch(user) else ANONYMOUS


def did_candidates(request: Request) -> list[str]:
    """Where a provider's INVITE names its DID, in the order they are looked up: the
    Request-URI user, then the To user (distinct, non-empty)."""
    out: list[str] = []
    for uri in (request.uri, request.to.uri):
        user = uri.user if isinstance(uri, SipUri) else None
        if user and user not in out:
            out.append(user)
    return out


class DidAction(enum.Enum):
    REFUSE = "refuse"  # 404: not a DID (or its target cannot be used)
    RING = "ring"  # an extension or ring group: ring `number` through the router
    APPLICATION = "application"  # an IVR menu, conference room or ACD queue: `number`
    MAILBOX = "mailbox"  # straight into mailbox `number`
    TRUNK = "trunk"  # pass it on: `number` is the trunk:NAME/NUMBER target for reach()


@dataclass(frozen=True, slots=True)
class DidStep:
    """What to do with a trunk call to `did`: `action` on `number`; `target` names the
    configured target for the CDR; `cause` says why when refused."""

    did: str
    action: DidAction
    number: str = ""
    target: str = ""
    cause: str = ""


def decide(did: str, target: str | None, ivr_number: str | None = None) -> DidStep:
    """Where a trunk call to `did` goes, given its stored `target` (None: no such DID) and,
    for an IVR or queue target, the number its menu or queue has now (None: gone or
    unnumbered). A queue's number is served by the ACD application (none: 404)."""
    if target is None:
        return DidStep(did, DidAction.REFUSE, cause=f"404 unknown DID {did}")
    try:
        parsed = Target.parse(target)
    except ConfigError as exc:  # only a hand-edited database has such a row
        return DidStep(did, DidAction.REFUSE, target=target, cause=f"404 DID {did}: {exc}")
    kind, name = parsed.kind, parsed.name
    if kind in ("ext", "group"):
        return DidStep(did, DidAction.RING, name, target)
    if kind == "conf":
        return DidStep(did, DidAction.APPLICATION, name, target)
    if kind in ("ivr", "queue"):
        if ivr_number is None:
            gone = "has no number" if kind == "ivr" else "is gone"
            return DidStep(
                did, DidAction.REFUSE, target=target, cause=f"404 DID {did}: {target} {gone}"
            )
        return DidStep(did, DidAction.APPLICATION, ivr_number, target)
    if kind == "vm":
        return DidStep(did, DidAction.MAILBOX, name, target)
    return DidStep(did, DidAction.TRUNK, str(parsed), target)


async def pick_did(dids: DidRepo, candidates: list[str]) -> str:
    """The first of `candidates` that is a stored DID; else the first one ("" if none),
    which is then refused as unknown."""
    for number in candidates:
        if await dids.get(number) is not None:
            return number
    return candidates[0] if candidates else ""


async def step_for(dids: DidRepo, did: str) -> DidStep:
    """`decide` for `did` with what the store holds now."""
    stored = await dids.get(did)
    target = stored.target if stored is not None else None
    ivr_number = None
    if target is not None and target.startswith("ivr:"):
        ivr_number = await dids.ivr_number(target.removeprefix("ivr:"))
    elif target is not None and target.startswith("queue:"):
        ivr_number = await dids.queue_number(target.removeprefix("queue:"))
    return decide(did, target, ivr_number)
