"""Message-waiting indication: RFC 3842 message-summary over RFC 6665 SUBSCRIBE/NOTIFY.

A phone subscribes to its own mailbox (the Request-URI user is the box, an
extension's user name) and the switch keeps its message light in step with the
box's (new, old) counts. Phones that never subscribe get unsolicited NOTIFYs at
their registered contacts instead, as Asterisk's unsolicited MWI does.

The rules kept here:

- RFC 6665 §4.2.1.1: an event package we do not know is refused with 489 and an
  Allow-Events header; an Expires below our minimum (but not 0) with 423 and
  Min-Expires; the 200 "MUST contain an Expires header field" no longer than asked.
- Authorization (§4.2.1.1 leaves it to the notifier): a new SUBSCRIBE is
  digest-authenticated like an INVITE, and a user may watch only its own box
  (403 otherwise; 404 for a box that is no user). In-dialog SUBSCRIBEs are not
  challenged again: knowing the dialog ID is the credential, as for BYE.
- §4.2.2: "Upon successfully accepting or refreshing a subscription, notifiers
  MUST send a NOTIFY request immediately", and every NOTIFY carries the Event
  header (with the subscription's "id" parameter) and Subscription-State.
- §4.2.1.4: a SUBSCRIBE with Expires: 0 ends the subscription, and "a successful
  unsubscription will also trigger a final NOTIFY request". Its state is
  "terminated;reason=timeout", the same as for a subscription left to expire
  (§4.1.3: "timeout ... was not refreshed before it expired"; an unsubscription
  is an expiry asked for now, and deployed notifiers say the same).
- §4.2.2: a NOTIFY answered 481, timing out (Timer F) or failing otherwise
  removes the subscription; the phone's next refresh gets 481 and it subscribes
  anew.
- RFC 3842 §5: the body is `application/simple-message-summary`, lines of
  `Messages-Waiting: yes|no`, `Message-Account: <uri>` and
  `Voice-Message: new/old`.

NOTIFYs of one subscription (and of one unsolicited target) never overlap: a
change while one is in flight marks it dirty, and the sender sends once more with
the counts read then. `changed()` only starts that work, so a voicemail caller is
never held up by a phone that does not answer; each NOTIFY is bounded by the
transaction layer's Timer F.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from pbx.config import Settings
from pbx.registrar import Location, Target, targets_for
from pbx.tasks import spawn
from sip.dialog import Dialog, new_tag
from sip.endpoint import DROP, Drop, Endpoint
from sip.errors import SipParseError
from sip.headers import Headers
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.uri import SipUri, Uri

log = logging.getLogger(__name__)

#: The event package (RFC 3842 §3) and its body type (§5.1).
EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"

#: Subscriptions one box may have at once; past it the one closest to expiring goes
#: (a phone that restarts often leaves dead dialogs behind until they expire).
MAX_PER_BOX = 16


# ---------------------------------------------------------------------------------
# The body (RFC 3842 §5)
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One message-summary body: the light, the account, the voice message counts."""

    waiting: bool
    new: int = 0
    old: int = 0
    account: str | None = None

    @classmethod
    def of(cls, new: int, old: int, account: str | None = None) -> MessageSummary:
        """The summary of a box with these counts: the light is on while a message is new."""
        return cls(new > 0, new, old, account)

    def __bytes__(self) -> bytes:
        lines = [f"Messages-Waiting: {'yes' if self.waiting else 'no'}"]
        if self.account:
            lines.append(f"Message-Account: {self.account}")
        lines.append(f"Voice-Message: {self.new}/{self.old}")
        return ("\r\n".join(lines) + "\r\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> MessageSummary:
        """Read a body (names case-insensitive, other message classes ignored).

        Voice-Message may carry urgent counts in parentheses ("2/8 (0/2)"), which are
        dropped; a body without it has 0/0. Raises: SipParseError (400) without a
        Messages-Waiting line or with an unreadable one.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SipParseError("message-summary body is not UTF-8") from None
        waiting: bool | None = None
        new = old = 0
        account: str | None = None
        for line in text.splitlines():
            name, colon, value = line.partition(":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            if name == "messages-waiting":
                if value.lower() not in ("yes", "no"):
                    raise SipParseError(f"bad Messages-Waiting value {value!r}")
                waiting = value.lower() == "yes"
            elif name == "message-account":
                account = value
            elif name == "voice-message":
                new, old = _counts(value)
        if waiting is None:
            raise SipParseError("message-summary body without Messages-Waiting")
        return cls(waiting, new, old, account)


def _counts(value: str) -> tuple[int, int]:
    """`new/old` from a message-context line (urgent counts in parentheses ignored)."""
    first = value.split("(", 1)[0].strip()
    new, slash, old = first.partition("/")
    new, old = new.strip(), old.strip()
    if not slash or not (new.isascii() and new.isdigit() and old.isascii() and old.isdigit()):
        raise SipParseError(f"bad Voice-Message value {value!r}")
    return int(new), int(old)


# ---------------------------------------------------------------------------------
# Decisions (pure)
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MwiPolicy:
    """Subscription lifetimes in seconds (RFC 6665 §4.2.1.1)."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> MwiPolicy:
        """The registrar's limits serve subscriptions too."""
        return cls(settings.min_expires, settings.max_expires, settings.default_expires)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The error response a request gets instead of being served."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def granted_expires(value: str | None, policy: MwiPolicy) -> int | Refusal:
    """The lifetime to grant for a SUBSCRIBE's Expires value (None when absent).

    Absent: the default. 0: 0 (an unsubscription, or a one-time fetch). Below the
    minimum: 423 with Min-Expires. Above the maximum: the maximum (the 200 may
    shorten, never lengthen, what was asked). Not a number: 400.
    """
    if value is None:
        return policy.default_expires
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        return Refusal(400, "Bad Expires")
    digits = text.lstrip("0") or "0"
    # More digits than any lifetime needs (and than int() takes for a huge value).
    asked = int(digits) if len(digits) <= 10 else policy.max_expires
    if asked == 0:
        return 0
    if asked < policy.min_expires:
        return Refusal(423, None, (("Min-Expires", str(policy.min_expires)),))
    return min(asked, policy.max_expires)


def event_package(value: str | None) -> str | None:
    """The package of an Event header value ("message-summary;id=1" -> "message-summary")."""
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def subscription_state(expires_at: float, now: float, ending: str | None = None) -> str:
    """The Subscription-State of a NOTIFY sent at `now` (RFC 6665 §8.2.3)."""
    if ending is not None:
        return f"terminated;reason={ending}"
    return f"active;expires={max(0, math.ceil(expires_at - now))}"


def accepts_summary(request: Request) -> bool:
    """Whether the request's Accept (if any) allows a message-summary body (RFC 3261 §21.4.7)."""
    ranges = request.headers.get_all("Accept")
    if not ranges:
        return True
    for item in ranges:
        media = item.split(";", 1)[0].strip().lower()
        if media in (CONTENT_TYPE, "application/*", "*/*"):
            return True
    return False


# ---------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------


class Addresses(Protocol):
    """How the switch names itself to a peer (the CallManager does this)."""

    def local_host(self, peer: Peer) -> str: ...
    def via(self, peer: Peer) -> str: ...
    def contact(self, user: str, peer: Peer) -> str: ...


#: Authenticates a request: the user name, a response to send, or None to drop it.
AuthHook = Callable[[Request, Peer], "str | Response | None"]
#: (new, old) message counts of a box.
CountsHook = Callable[[str], Awaitable[tuple[int, int]]]


@dataclass(slots=True, eq=False)
class Subscription:
    """One phone watching one box; `expires_at` is in event-loop time."""

    box: str
    dialog: Dialog
    peer: Peer
    event: str  # the Event value its NOTIFYs carry (with the "id" parameter, §8.2.3)
    expires_at: float
    ending: str | None = None  # the termination reason once it is ending
    dirty: bool = False
    sender: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass(slots=True, eq=False)
class _Unsolicited:
    """The sender of out-of-dialog NOTIFYs to one registered contact."""

    box: str
    target: Target
    dirty: bool = False


class MwiService:
    """SUBSCRIBE handling for message-summary and the NOTIFYs that follow counts."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        authenticate: AuthHook,
        counts: CountsHook,
        known: Callable[[str], bool],
        location: Location,
        addresses: Addresses,
        policy: MwiPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`known(box)` says whether a box exists; `clock` is the wall time bindings
        expire by (subscriptions themselves are timed by the event loop)."""
        self.endpoint = endpoint
        self.policy = policy or MwiPolicy()
        self._authenticate = authenticate
        self._counts = counts
        self._known = known
        self._location = location
        self._addresses = addresses
        self._clock = clock
        self._dialogs: dict[tuple[str, str, str], Subscription] = {}
        self._by_box: dict[str, list[Subscription]] = {}
        self._unsolicited: dict[tuple[str, str, Peer], _Unsolicited] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what others call ------------------------------------------------------------

    def subscriptions(self, box: str | None = None) -> list[Subscription]:
        """Live subscriptions (of one box, or all)."""
        if box is not None:
            return list(self._by_box.get(box, ()))
        return [s for subs in self._by_box.values() for s in subs]

    async def changed(self, box: str) -> None:
        """The B2BUA's `on_mailbox_change` hook: tell `box`'s phones its new counts."""
        self.announce(box)

    def announce(self, box: str) -> int:
        """Start NOTIFYs with `box`'s counts; returns how many phones get one.

        Every live subscription of the box gets one in its dialog; a box nobody
        subscribed to gets an unsolicited NOTIFY at each registered contact. Returns
        at once: the NOTIFYs go out (and wait for their answers) in tasks we own.
        """
        subs = self._by_box.get(box)
        if subs:
            for sub in subs:
                self._kick(sub)
            return len(subs)
        targets = targets_for(self._location, box, self._clock())
        for target in targets:
            self._kick_unsolicited(box, target)
        return len(targets)

    async def close(self) -> None:
        """Forget every subscription, cancel the timers and the senders."""
        for sub in self.subscriptions():
            if sub.timer is not None:
                sub.timer.cancel()
        self._dialogs.clear()
        self._by_box.clear()
        self._unsolicited.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- SUBSCRIBE ---------------------------------------------------------------------

    def handle(self, request: Request, peer: Peer) -> Response | Drop | None:
        """The endpoint's SUBSCRIBE handler; answers at once, NOTIFYs follow (None: answered
        already through the endpoint; DROP: a banned source, no answer and no state)."""
        if request.to.tag:
            return self._refresh(request, peer)
        package = event_package(request.headers.get("Event"))
        if package != EVENT:
            return self._bad_event(request)
        who = self._authenticate(request, peer)
        if who is None:
            return DROP
        if isinstance(who, Response):
            return who
        uri = request.uri
        box = unquote(uri.user) if isinstance(uri, SipUri) and uri.user else ""
        if not box or not self._known(box):
            return make_response(request, 404, "No Such Mailbox")
        if box != who:
            log.info("mwi: %s may not watch box %s (Call-ID %s)", who, box, request.call_id)
            return make_response(request, 403, "Not Your Mailbox")
        if not accepts_summary(request):
            return make_response(request, 406, headers=[("Accept", CONTENT_TYPE)])
        expires = granted_expires(request.headers.get("Expires"), self.policy)
        if isinstance(expires, Refusal):
            return make_response(request, expires.status, expires.reason, headers=expires.headers)
        local_tag = new_tag()
        try:
            dialog = Dialog.as_uas(request, local_tag, confirmed=True)
        except SipParseError as exc:
            return make_response(request, 400, exc.reason)
        now = asyncio.get_running_loop().time()
        event = request.headers.get("Event") or EVENT
        sub = Subscription(box, dialog, peer, event, now + expires)
        self._add(sub)
        self.endpoint.respond(self._ok(request, sub, expires, to_tag=local_tag))
        log.info("mwi: %s watches box %s for %d s (Call-ID %s)", who, box, expires, request.call_id)
        if expires == 0:
            self._end(sub, "timeout")  # a fetch: one NOTIFY, and it is over (§4.2.1.1)
        else:
            self._arm(sub)
            self._kick(sub)
        return None

    def _refresh(self, request: Request, peer: Peer) -> Response | None:
        """An in-dialog SUBSCRIBE: refresh, or end with Expires: 0 (RFC 6665 §4.2.1.2)."""
        key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        sub = self._dialogs.get(key)
        if sub is None or sub.ending is not None:
            return make_response(request, 481, "Subscription Does Not Exist")
        status = sub.dialog.receive(request)
        if status is not None:
            return make_response(request, status)
        if event_package(request.headers.get("Event")) != EVENT:
            return self._bad_event(request)
        expires = granted_expires(request.headers.get("Expires"), self.policy)
        if isinstance(expires, Refusal):
            return make_response(request, expires.status, expires.reason, headers=expires.headers)
        sub.peer = peer
        sub.expires_at = asyncio.get_running_loop().time() + expires
        self.endpoint.respond(self._ok(request, sub, expires))
        if expires == 0:
            log.info("mwi: box %s unsubscribed (Call-ID %s)", sub.box, request.call_id)
            self._end(sub, "timeout")
        else:
            self._arm(sub)
            self._kick(sub)
        return None

    def _ok(
        self, request: Request, sub: Subscription, expires: int, to_tag: str | None = None
    ) -> Response:
        headers = [
            ("Expires", str(expires)),
            ("Contact", self._addresses.contact(sub.box, sub.peer)),
            ("Allow-Events", EVENT),
        ]
        return make_response(request, 200, to_tag=to_tag, headers=headers)

    @staticmethod
    def _bad_event(request: Request) -> Response:
        return make_response(request, 489, headers=[("Allow-Events", EVENT)])

    # -- the table -----------------------------------------------------------------------

    def _add(self, sub: Subscription) -> None:
        self._dialogs[sub.dialog.id] = sub
        subs = self._by_box.setdefault(sub.box, [])
        subs.append(sub)
        if len(subs) > MAX_PER_BOX:
            oldest = min(subs, key=lambda s: s.expires_at)
            log.info("mwi: box %s has too many subscriptions; dropping one", sub.box)
            self._forget(oldest)

    def _forget(self, sub: Subscription) -> None:
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        self._dialogs.pop(sub.dialog.id, None)
        subs = self._by_box.get(sub.box)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._by_box[sub.box]

    def _arm(self, sub: Subscription) -> None:
        """(Re)start the timer that ends the subscription when it is not refreshed."""
        if sub.timer is not None:
            sub.timer.cancel()
        sub.timer = asyncio.get_running_loop().call_at(sub.expires_at, self._expired, sub)

    def _expired(self, sub: Subscription) -> None:
        sub.timer = None
        if self._dialogs.get(sub.dialog.id) is sub and sub.ending is None:
            log.info(
                "mwi: subscription to box %s expired (Call-ID %s)", sub.box, sub.dialog.call_id
            )
            self._end(sub, "timeout")

    def _end(self, sub: Subscription, reason: str) -> None:
        """Send the final NOTIFY (terminated;reason=...), then forget the subscription."""
        sub.ending = reason
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        self._kick(sub)

    # -- NOTIFY in a dialog ------------------------------------------------------------------

    def _kick(self, sub: Subscription) -> None:
        """Send `sub` a NOTIFY with the current state, once the one in flight is answered."""
        sub.dirty = True
        if sub.sender is None:
            sub.sender = self._spawn(self._send(sub), f"mwi notify {sub.dialog.call_id}")

    async def _send(self, sub: Subscription) -> None:
        try:
            while sub.dirty and self._dialogs.get(sub.dialog.id) is sub:
                sub.dirty = False
                ending = sub.ending
                new, old = await self._counts(sub.box)
                response = await self.endpoint.request(self._notify(sub, new, old), sub.peer)
                if ending is not None:
                    return  # the final NOTIFY went out; `finally` forgets the subscription
                if not 200 <= response.status < 300:
                    # RFC 6665 §4.2.2: a 481 or a timeout removes the subscription; so
                    # does any other failure (the phone's next refresh gets 481).
                    log.info(
                        "mwi: NOTIFY for box %s answered %d; subscription removed (Call-ID %s)",
                        sub.box,
                        response.status,
                        sub.dialog.call_id,
                    )
                    self._forget(sub)
                    return
        finally:
            sub.sender = None
            if sub.ending is not None:
                self._forget(sub)  # ended, or failed on the way: never left half-ended

    def _notify(self, sub: Subscription, new: int, old: int) -> Request:
        now = asyncio.get_running_loop().time()
        host = self._addresses.local_host(sub.peer)
        body = bytes(MessageSummary.of(new, old, f"sip:{sub.box}@{host}"))
        return sub.dialog.create_request(
            "NOTIFY",
            via=self._addresses.via(sub.peer),
            contact=self._addresses.contact(sub.box, sub.peer),
            headers=[
                ("Event", sub.event),
                ("Subscription-State", subscription_state(sub.expires_at, now, sub.ending)),
                ("Content-Type", CONTENT_TYPE),
            ],
            body=body,
        )

    # -- unsolicited NOTIFY --------------------------------------------------------------------

    def _kick_unsolicited(self, box: str, target: Target) -> None:
        key = (box, str(target.uri), target.peer)
        sender = self._unsolicited.get(key)
        if sender is not None:
            sender.dirty = True
            return
        sender = self._unsolicited[key] = _Unsolicited(box, target, dirty=True)
        self._spawn(self._send_unsolicited(key, sender), f"mwi unsolicited {box}")

    async def _send_unsolicited(self, key: tuple[str, str, Peer], sender: _Unsolicited) -> None:
        try:
            while sender.dirty:
                sender.dirty = False
                new, old = await self._counts(sender.box)
                notify = self._unsolicited_notify(sender.box, sender.target, new, old)
                response = await self.endpoint.request(notify, sender.target.peer)
                if not 200 <= response.status < 300:
                    log.info(
                        "mwi: unsolicited NOTIFY for box %s to %s answered %d (Call-ID %s)",
                        sender.box,
                        sender.target.peer,
                        response.status,
                        notify.call_id,
                    )
        finally:
            if self._unsolicited.get(key) is sender:
                del self._unsolicited[key]

    def _unsolicited_notify(self, box: str, target: Target, new: int, old: int) -> Request:
        """An out-of-dialog NOTIFY to a registered contact (no subscription behind it)."""
        peer = target.peer
        host = self._addresses.local_host(peer)
        uri = target.uri
        assert isinstance(uri, Uri)
        account = f"sip:{box}@{host}"
        body = bytes(MessageSummary.of(new, old, account))
        fields = [
            ("Via", self._addresses.via(peer)),
            ("Max-Forwards", "70"),
            ("From", f"<{account}>;tag={new_tag()}"),
            ("To", f"<{account}>"),
            ("Call-ID", f"{secrets.token_hex(12)}@{host}"),
            ("CSeq", "1 NOTIFY"),
            ("Contact", self._addresses.contact(box, peer)),
            ("Event", EVENT),
            ("Subscription-State", "active"),
            ("Content-Type", CONTENT_TYPE),
        ]
        return Request("NOTIFY", uri, Headers(fields), body)

    # -- tasks ----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return spawn(self._tasks, coro, name)
