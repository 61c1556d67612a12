"""The registrar (RFC 3261 §10.3): who is reachable where.

`apply_register` is the pure core: one REGISTER against the bindings of its
address-of-record at time `now` gives the response to send and the changes to
store. `Registrar` is the service around it: digest authentication first,
bindings held in memory for lookups, written behind to SQLite in batches so a
restart keeps every phone reachable, expired ones purged.

One domain: the address-of-record of account 1001 is simply "1001", whatever
host name or address the phone put in its To URI (as Asterisk names AORs).

Binding identity: a contact carrying `+sip.instance` is keyed by its instance
(and `reg-id`), so a phone that changes address replaces its old binding
(RFC 5626 §6, RFC 5627); any other contact is keyed by its URI.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from pbx.auth import Authenticator, AuthResult
from pbx.config import Settings
from pbx.events import EventBus, RegistrationDown, RegistrationUp
from pbx.store import Store
from pbx.store.bindings import Binding
from sip.endpoint import DROP, Drop
from sip.errors import SipParseError
from sip.headers import NameAddr
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.uri import SipUri, Uri

log = logging.getLogger(__name__)

#: Expires values above this are treated as this (RFC 3261 §20.19: at most 2**32-1).
_EXPIRES_CAP = 2**32 - 1


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What one REGISTER does: the answer, and the bindings to save and remove."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    saved: tuple[Binding, ...] = ()
    removed: tuple[Binding, ...] = ()


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """The limits `apply_register` enforces (from Settings)."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistrarPolicy:
        return cls(
            settings.min_expires,
            settings.max_expires,
            settings.default_expires,
            settings.max_contacts_per_aor,
        )


def contact_key(contact: NameAddr) -> str:
    """The identity of a contact within its AOR (see the module docstring)."""
    instance = contact.param("+sip.instance")
    if instance:
        reg_id = contact.param("reg-id") or ""
        return f"instance:{instance.strip(chr(34))}:{reg_id}"
    uri = contact.uri
    if isinstance(uri, SipUri):
        # RFC 3261 §19.1.4: scheme and host compare case-insensitively.
        uri = SipUri(
            uri.scheme, uri.user, uri.password, uri.host.lower(), uri.port, uri.params, uri.headers
        )
    return f"uri:{uri}"


def _stored_contact(contact: NameAddr) -> str:
    """The Contact as we give it back: without the expires and q params we set ourselves."""
    params = tuple((k, v) for k, v in contact.params if k.lower() != "expires")
    return str(NameAddr(contact.uri, contact.display_name, params))


@lru_cache(maxsize=4096)
def _parse_contact(text: str) -> tuple[NameAddr, str, str]:
    """A Contact value with its binding key and stored form, cached: a phone re-registers
    with the same Contact text every time. Raises: SipParseError."""
    contact = NameAddr.parse(text)
    return contact, contact_key(contact), _stored_contact(contact)


def _parse_expires(text: str | None) -> int | None:
    """An Expires value, or None when absent.

    Raises: SipParseError for anything but 1*DIGIT in ASCII (a Unicode digit such as
    "²" is not one) or more than ten significant digits (2**32-1 has ten).
    """
    if text is None:
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 10:
        raise SipParseError(f"bad Expires value {text[:20]!r}")
    return min(int(text), _EXPIRES_CAP)


def apply_register(
    request: Request,
    current: dict[str, Binding],
    *,
    aor: str,
    source: str,
    now: float,
    policy: RegistrarPolicy,
) -> RegisterResult:
    """Apply an (authenticated) REGISTER to `current`, the AOR's bindings by contact key.

    Follows RFC 3261 §10.3 steps 6-8. `current` is not changed; the caller
    applies `saved` and `removed`. Never raises for bad peer input.
    """
    try:
        header_expires = _parse_expires(request.headers.get("Expires"))
        raw_contacts = request.headers.get_all("Contact")
        star = [c for c in raw_contacts if c.strip() == "*"]
        contacts = [_parse_contact(c) for c in raw_contacts if c.strip() != "*"]
        per_contact = [_parse_expires(c.param("expires")) for c, _, _ in contacts]
    except SipParseError as exc:
        return RegisterResult(400, exc.reason)

    if star:
        # Step 6: "*" is allowed only alone and with Expires: 0, else 400.
        if contacts or len(star) > 1 or header_expires != 0:
            return RegisterResult(400, 'Contact "*" needs Expires: 0 and no other contact')
        for binding in current.values():
            if binding.call_id == request.call_id and request.cseq.seq <= binding.cseq:
                return RegisterResult(400, "CSeq out of order")
        return RegisterResult(200, removed=tuple(current.values()))

    saved: dict[str, Binding] = {}
    removed: dict[str, Binding] = {}
    for (contact, key, stored), own_expires in zip(contacts, per_contact, strict=True):
        expires = own_expires if own_expires is not None else header_expires
        if expires is None:
            expires = policy.default_expires
        # Step 7: a non-zero expiry below our minimum MUST be rejected with 423.
        if 0 < expires < policy.min_expires:
            return RegisterResult(423, None, (("Min-Expires", str(policy.min_expires)),))
        expires = min(expires, policy.max_expires)
        old = current.get(key)
        # Step 7: same Call-ID and a CSeq not higher than stored: abort the update.
        if old is not None and old.call_id == request.call_id and request.cseq.seq <= old.cseq:
            return RegisterResult(400, "CSeq out of order")
        if expires == 0:
            if old is not None:
                removed[key] = old
            saved.pop(key, None)
            continue
        reg_id = contact.param("reg-id")
        instance = contact.param("+sip.instance")
        saved[key] = Binding(
            aor=aor,
            contact=stored,
            expires_at=now + expires,
            call_id=request.call_id,
            cseq=request.cseq.seq,
            user_agent=request.headers.get("User-Agent"),
            source=source,
            instance=instance.strip('"') if instance else None,
            reg_id=int(reg_id) if reg_id and reg_id.isdigit() else None,
            path=",".join(request.headers.get_all("Path")) or None,
            contact_uri=key,
        )
        removed.pop(key, None)

    # One request asking for more bindings than an AOR may have is refused whole
    # (RFC 3261 §21.4.4 403: "understood the request, but is refusing to fulfil it";
    # repeating it cannot help, so not Kamailio's 503, which invites a retry).
    if len(saved) > policy.max_contacts:
        return RegisterResult(403, "Too Many Contacts")
    final = {k: b for k, b in current.items() if k not in removed}
    final.update(saved)
    # More contacts than allowed: the existing ones closest to expiring give way to the
    # request's own (as Asterisk's max_contacts with remove_existing), so a phone that
    # changed address is never locked out by its stale bindings.
    if len(final) > policy.max_contacts:
        for key, binding in sorted(final.items(), key=lambda kv: kv[1].expires_at):
            if len(final) <= policy.max_contacts:
                break
            if key in saved:
                continue
            removed[key] = binding
            del final[key]
    return RegisterResult(200, saved=tuple(saved.values()), removed=tuple(removed.values()))


@dataclass(slots=True)
class _DateCache:
    """RFC 3261 §10.3 step 8: the 200 SHOULD carry a Date; formatting it once a second."""

    second: int = -1
    value: str = ""

    def get(self, now: float) -> str:
        if int(now) != self.second:
            self.second = int(now)
            self.value = email.utils.formatdate(self.second, usegmt=True)
        return self.value


@dataclass(slots=True)
class Location:
    """Bindings in memory by AOR, then by contact key; the lookup service's table."""

    by_aor: dict[str, dict[str, Binding]] = field(default_factory=dict)

    def get(self, aor: str) -> dict[str, Binding]:
        return self.by_aor.get(aor, {})

    def contacts(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of an AOR, the most recently refreshed first."""
        live = [b for b in self.get(aor).values() if b.expires_at > now]
        return sorted(live, key=lambda b: -b.expires_at)

    def apply(self, aor: str, saved: tuple[Binding, ...], removed: tuple[Binding, ...]) -> None:
        table = self.by_aor.setdefault(aor, {})
        for binding in removed:
            table.pop(binding.contact_uri, None)
        for binding in saved:
            table[binding.contact_uri] = binding
        if not table:
            del self.by_aor[aor]

    def expire(self, now: float) -> list[Binding]:
        """Drop and return every binding whose time has passed."""
        gone: list[Binding] = []
        for aor in list(self.by_aor):
            table = self.by_aor[aor]
            for key, binding in list(table.items()):
                if binding.expires_at <= now:
                    gone.append(binding)
                    del table[key]
            if not table:
                del self.by_aor[aor]
        return gone

    def __iter__(self) -> Iterator[Binding]:
        for table in self.by_aor.values():
            yield from table.values()


class Registrar:
    """REGISTER handling with auth, in-memory location and write-behind persistence."""

    def __init__(
        self,
        authenticator: Authenticator,
        store: Store,
        policy: RegistrarPolicy,
        *,
        clock: Callable[[], float],
        flush_interval: float = 0.05,
        purge_interval: float = 10.0,
        events: EventBus | None = None,
    ) -> None:
        self.auth = authenticator
        #: Where registration up/down events go (pbx.events); the server passes its bus.
        self.events = events if events is not None else EventBus()
        self.store = store
        self.policy = policy
        self.location = Location()
        self._clock = clock
        self._flush_interval = flush_interval
        self._purge_interval = purge_interval
        self._dirty: dict[tuple[str, str], Binding | None] = {}
        self._wakeup = asyncio.Event()
        self._date = _DateCache()

    async def load(self) -> int:
        """Read stored bindings into memory (expired ones are dropped). Returns the count."""
        now = self._clock()
        count = 0
        for binding in await self.store.bindings.all():
            if binding.expires_at > now:
                self.location.apply(binding.aor, (binding,), ())
                count += 1
        await self.store.bindings.purge_expired(now)
        # Bindings stored before the limit held (or under a lower one) beyond it: the
        # ones closest to expiring go, so no INVITE forks to more than the limit.
        for aor, table in self.location.by_aor.items():
            extra = len(table) - self.policy.max_contacts
            for binding in sorted(table.values(), key=lambda b: b.expires_at)[: max(0, extra)]:
                del table[binding.contact_uri]
                self._dirty[(aor, binding.contact_uri)] = None
                count -= 1
        if self._dirty:
            self._wakeup.set()
        return count

    def handle(self, request: Request, peer: Peer) -> Response | Drop:
        """The endpoint's REGISTER handler: answers at once, never awaits."""
        now = self._clock()
        outcome = self.auth.authenticate(request, peer.host, now)
        if outcome.result is AuthResult.BANNED:
            # Silently dropped, and no transaction kept: a banned source gets nothing to
            # work with, and its flood costs no memory.
            return DROP
        if outcome.result is not AuthResult.OK:
            return make_response(
                request, outcome.status or 403, outcome.reason, headers=outcome.headers
            )
        aor = outcome.username or ""
        result = apply_register(
            request,
            self.location.get(aor),
            aor=aor,
            source=f"{peer.transport} {peer.host}:{peer.port}",
            now=now,
            policy=self.policy,
        )
        if result.status != 200:
            return make_response(request, result.status, result.reason, headers=result.headers)
        if result.saved or result.removed:
            known = self.location.get(aor)  # admin: one INFO line per new or removed binding
            for b in result.saved:  # (a refresh only at DEBUG: thousands a second under load)
                level = logging.DEBUG if b.contact_uri in known else logging.INFO
                log.log(level, "register %s: %s for %d s", aor, b.contact, b.expires_at - now)
                if b.contact_uri not in known:
                    self.events.publish(RegistrationUp("", aor=aor, contact=b.contact))
            for b in result.removed:
                log.info("unregister %s: %s", aor, b.contact)
                self.events.publish(RegistrationDown("", aor=aor, contact=b.contact, why="removed"))
            self.location.apply(aor, result.saved, result.removed)
            for binding in result.removed:
                self._dirty[(aor, binding.contact_uri)] = None
            for binding in result.saved:
                self._dirty[(aor, binding.contact_uri)] = binding
            self._wakeup.set()
        headers = [
            ("Contact", f"{b.contact};expires={max(0, int(b.expires_at - now))}")
            for b in self.location.contacts(aor, now)
        ]
        headers.append(("Date", self._date.get(now)))
        return make_response(request, 200, headers=headers)

    async def run(self) -> None:
        """Write changes behind and purge expired bindings until cancelled.

        Flushes what is left on the way out.
        """
        next_purge = self._clock() + self._purge_interval
        try:
            while True:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # lands while the event is being set, and stop() would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._purge_interval):
                        await self._wakeup.wait()
                self._wakeup.clear()
                try:
                    await self.flush()
                except Exception:  # logged in flush(); the changes wait for the next round
                    await asyncio.sleep(1.0)
                if self._clock() >= next_purge:
                    await self.purge()
                    next_purge = self._clock() + self._purge_interval
                await asyncio.sleep(self._flush_interval)  # batch what arrives meanwhile
        finally:
            await self.flush()

    async def flush(self) -> None:
        """Store every change made since the last flush, in one transaction."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        saves = [b for b in dirty.values() if b is not None]
        removals = [key for key, b in dirty.items() if b is None]
        try:
            await self.store.bindings.save(saves, removals)
        except BaseException as exc:
            # Keep them for the next try; newer changes made meanwhile win. Cancelled
            # too: stop() cancels run() mid-flush, and its final flush writes them.
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("registrar: storing %d binding changes failed", len(dirty))
            for key, value in dirty.items():
                self._dirty.setdefault(key, value)
            raise

    async def purge(self) -> int:
        """Forget expired bindings in memory and in the store."""
        now = self._clock()
        gone = self.location.expire(now)
        for binding in gone:
            self._dirty.pop((binding.aor, binding.contact_uri), None)
            self.events.publish(
                RegistrationDown("", aor=binding.aor, contact=binding.contact, why="expired")
            )
        await self.store.bindings.purge_expired(now)
        if gone:
            log.info("registrar: %d bindings expired", len(gone))
        return len(gone)

    def forget(self, keep: set[str]) -> None:
        """Drop the bindings of every AOR not in `keep` (its user was deleted)."""
        for aor in [a for a in self.location.by_aor if a not in keep]:
            for binding in self.location.by_aor.pop(aor).values():
                self._dirty[(aor, binding.contact_uri)] = None
                self.events.publish(
                    RegistrationDown("", aor=aor, contact=binding.contact, why="user deleted")
                )
            self._wakeup.set()

    def snapshot(self) -> list[dict[str, object]]:
        """Live registrations for `pbx status`."""
        now = self._clock()
        rows: list[dict[str, object]] = [
            {
                "aor": b.aor,
                "contact": b.contact,
                "user_agent": b.user_agent,
                "expires_in": max(0, int(b.expires_at - now)),
                "source": b.source,
            }
            for b in self.location
            if b.expires_at > now
        ]
        rows.sort(key=lambda r: (str(r["aor"]), str(r["contact"])))
        return rows


@dataclass(frozen=True, slots=True)
class Target:
    """One registered contact to ring."""

    uri: Uri
    peer: Peer


def targets_for(location: Location, aor: str, now: float) -> list[Target]:
    """The live contacts of an AOR, reached at the address their REGISTER came from.

    Sending to the source address (not the Contact's host) reaches phones behind
    NAT, as Asterisk's rewrite_contact and FreeSWITCH's NDLB do.
    """
    found: list[Target] = []
    for binding in location.contacts(aor, now):
        try:
            uri = NameAddr.parse(binding.contact).uri
            transport, _, address = binding.source.partition(" ")
            host, _, port = address.rpartition(":")
            found.append(Target(uri, Peer(transport, host.strip("[]"), int(port))))
        except (SipParseError, ValueError):
            log.warning("unusable binding %r of %s", binding.contact, aor)
    return found
