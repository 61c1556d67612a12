"""Registering to a registrar as a UAC, sans-I/O: RFC 3261 §10.2, RFC 3608, RFC 2617/7616.

`RegistrationClient` keeps one binding (one Contact for one address-of-record) alive:

    IDLE --start--> REGISTERING --2xx--> REGISTERED --(half the granted expiry)--> REGISTERING
                        |  401/407: answered once per challenge with credentials (same state)
                        +--other final / 401 again / timeout--> FAILED --(back-off)--> REGISTERING
    any --stop--> UNREGISTERING (REGISTER with Expires: 0) --final--> STOPPED
                  (nothing bound: straight to STOPPED)

Rules it obeys:

- §10.2.4: "A UA SHOULD use the same Call-ID for all registrations during a single boot
  cycle", and the CSeq of each REGISTER is one more than the last.
- §10.2.4: the expiry the registrar grants is the `expires` parameter of our Contact in
  the 2xx, else the 2xx's Expires header, else what we asked for; we refresh at half of it.
- §10.2.8 / §10.3 step 7: a 423 carries Min-Expires; we ask again at once with that value.
- RFC 3608 §6: the Service-Route of the last 2xx is kept (`service_route`) for the
  requests the UA sends later.
- Failures back off: `retry_min` doubling up to `retry_max`, plus up to `jitter` of the
  delay at random, never less than the un-jittered delay.

One request at a time: each call returns the REGISTER to send (or None) and the caller
feeds back its final response (a transaction timeout counts: the endpoint synthesizes a
408). `next_deadline()` says when `on_timer(now)` must run.

`ClientAuthenticator` is the digest half, shared with out-of-dialog requests (an INVITE
to a trunk answered 401/407): given the request and the challenge it builds the retried
request (CSeq + 1, a new branch, Authorization or Proxy-Authorization for that realm) and
caches the challenge per realm, so later requests carry credentials at once (nc + 1).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sip.dialog import new_branch, new_tag
from sip.digest import Challenge, make_credentials, pick_challenge
from sip.errors import SipParseError
from sip.headers import CSeq, Headers, NameAddr
from sip.message import Request, Response
from sip.uri import SipUri

__all__ = [
    "ClientAuthenticator",
    "RegistrationClient",
    "RegistrationConfig",
    "RegistrationState",
]

log = logging.getLogger(__name__)

#: Header carrying the challenge, and the one carrying the answer, per status.
_AUTH_HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}
_ANSWERED_MAX = 256
#: Challenges kept (one per realm): a server naming a new realm each time stays bounded.
_REALMS_MAX = 8


def _bump(request: Request, headers: Headers) -> Request:
    """`request` with `headers`, CSeq + 1 and a fresh top Via branch: a new transaction
    (RFC 3261 §8.1.3.5, §22.2)."""
    cseq = CSeq(request.cseq.seq + 1, request.method)
    retry = Request(request.method, request.uri, headers.set("CSeq", str(cseq)), request.body)
    return retry.with_top_via(retry.via[0].with_param("branch", new_branch()))


@dataclass
class _Realm:
    challenge: Challenge
    header: str  # Authorization or Proxy-Authorization
    nc: int = 0


class ClientAuthenticator:
    """Answers 401/407 challenges with digest credentials; remembers challenges per realm.

    `credentials` maps a realm to (auth user, password); the key "" is used for any realm
    not listed (a trunk usually has one user and password whatever the realm).
    """

    def __init__(self, credentials: Mapping[str, tuple[str, str]]) -> None:
        self._credentials = dict(credentials)
        self._realms: dict[str, _Realm] = {}
        # (Call-ID, CSeq) of the requests `authorize` built: a challenge to one of them
        # (not stale) means the credentials are wrong. Oldest first, bounded.
        self._answered: dict[tuple[str, int], None] = {}

    def _login(self, realm: str) -> tuple[str, str] | None:
        return self._credentials.get(realm) or self._credentials.get("")

    def forget(self) -> None:
        """Drop the cached challenges (new credentials, or a server that restarted)."""
        self._realms.clear()

    def _with_credentials(self, request: Request, headers: Headers, realm: _Realm) -> Headers:
        login = self._login(realm.challenge.realm)
        assert login is not None
        realm.nc += 1
        creds = make_credentials(
            realm.challenge,
            login[0],
            login[1],
            request.method,
            str(request.uri),
            nc=realm.nc,
            body=request.body,
        )
        return headers.add(realm.header, str(creds))

    def authorize(self, request: Request, response: Response) -> Request | None:
        """The retry of `request` answering the 401/407 `response`, or None to give up.

        Gives up when no challenge is usable (no credentials for its realm, unknown
        algorithm or qop), or when `request` already answered a challenge of that realm
        with a nonce the server did not call stale: the password is wrong, and asking
        again would only lock the account.
        """
        names = _AUTH_HEADERS.get(response.status)
        if names is None:
            return None
        challenge_header, answer_header = names
        challenge = pick_challenge(response.headers.get_all(challenge_header))
        if challenge is None or self._login(challenge.realm) is None:
            return None
        key = (request.call_id, request.cseq.seq)
        if key in self._answered and not challenge.stale:
            return None  # our answer to a fresh challenge was refused: wrong password
        self._realms.pop(challenge.realm, None)
        while len(self._realms) >= _REALMS_MAX:
            del self._realms[next(iter(self._realms))]
        realm = self._realms[challenge.realm] = _Realm(challenge, answer_header)
        headers = request.headers.remove(answer_header)
        try:
            headers = self._with_credentials(request, headers, realm)
        except ValueError as exc:
            log.info("cannot answer the challenge of realm %r: %s", challenge.realm, exc)
            del self._realms[challenge.realm]
            return None
        retry = _bump(request, headers)
        self._answered[(retry.call_id, retry.cseq.seq)] = None
        while len(self._answered) > _ANSWERED_MAX:
            del self._answered[next(iter(self._answered))]
        return retry

    def preauthorize(self, request: Request) -> Request:
        """`request` with credentials for every cached realm (nc + 1), or as it is."""
        if not self._realms:
            return request
        headers = request.headers
        for name in {realm.header for realm in self._realms.values()}:
            headers = headers.remove(name)
        for realm in self._realms.values():
            headers = self._with_credentials(request, headers, realm)
        return Request(request.method, request.uri, headers, request.body)


class RegistrationState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """What to register: `aor` (To/From), at `registrar` (Request-URI), as `contact`.

    `via` is the sent-by of our Via ("SIP/2.0/UDP 192.0.2.1:5060"); the client adds
    rport and a branch. `credentials` as for `ClientAuthenticator`.
    """

    registrar: SipUri
    aor: SipUri
    contact: SipUri
    via: str
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    expires: int = 3600
    retry_min: float = 30.0
    retry_max: float = 1800.0
    jitter: float = 0.2
    user_agent: str = "aiopbx"


class RegistrationClient:
    """One binding kept alive at one registrar (see the module docstring)."""

    def __init__(
        self,
        config: RegistrationConfig,
        *,
        rng: random.Random | None = None,
        call_id: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self._rng = rng or random.Random()
        host = config.contact.host
        self.call_id = call_id() if call_id is not None else f"{new_tag()}{new_tag()}@{host}"
        self._from_tag = new_tag()
        self._cseq = 0
        self._auth = ClientAuthenticator(config.credentials)
        self._sent: Request | None = None
        self._deadline: float | None = None
        self._failures = 0
        self._expires = config.expires
        self.state = RegistrationState.IDLE
        #: When the binding the registrar granted runs out (None: nothing bound).
        self.registered_until: float | None = None
        #: The last failure: status and reason (None while things work).
        self.last_failure: tuple[int, str] | None = None
        #: RFC 3608: the Service-Route of the last 2xx, in order.
        self.service_route: tuple[str, ...] = ()

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float) -> Request:
        """The first REGISTER."""
        return self._register(self._expires)

    def stop(self, now: float) -> Request | None:
        """The un-REGISTER (Expires: 0) when something may be bound, else None."""
        self._deadline = None
        if self.state in (RegistrationState.STOPPED, RegistrationState.UNREGISTERING):
            return None
        bound = self.registered_until is not None and self.registered_until > now
        if not bound and self.state is not RegistrationState.REGISTERING:
            self.state = RegistrationState.STOPPED
            return None
        self.state = RegistrationState.UNREGISTERING
        return self._register(0)

    def on_response(self, response: Response, now: float) -> Request | None:
        """Feed the final response to the last request; returns the next one, if any now."""
        sent = self._sent
        if sent is None or response.status < 200:
            return None
        if response.cseq.seq != sent.cseq.seq or response.call_id != sent.call_id:
            log.info("registration %s: response to another request ignored", self.call_id)
            return None
        self._sent = None
        if self.state is RegistrationState.UNREGISTERING:
            if response.status in _AUTH_HEADERS:
                retry = self._auth.authorize(sent, response)
                if retry is not None:
                    return self._send(retry)
            self.state = RegistrationState.STOPPED
            self.registered_until = None
            return None
        if 200 <= response.status < 300:
            granted = self._granted(response)
            if granted < 1:
                # A 2xx that binds nothing: refreshing it would spin; treat as a failure.
                self._fail(response.status, "registrar granted no time", now)
                return None
            self._failures = 0
            self.last_failure = None
            self.service_route = tuple(
                str(addr)
                for value in response.headers.get_all("Service-Route")
                for addr in _name_addrs(value)
            )
            self.state = RegistrationState.REGISTERED
            self.registered_until = now + granted
            self._deadline = now + max(1.0, granted / 2)
            return None
        if response.status in _AUTH_HEADERS:
            retry = self._auth.authorize(sent, response)
            if retry is not None:
                return self._send(retry)
        if response.status == 423:
            min_expires = _int(response.headers.get("Min-Expires"))
            if min_expires is not None and self._expires < min_expires <= 2**31 - 1:
                self._expires = min_expires
                return self._register(self._expires)
        self._fail(response.status, response.reason, now)
        return None

    def on_timer(self, now: float) -> Request | None:
        """Run when `next_deadline()` comes: a refresh or a retry."""
        if self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        if self.state in (RegistrationState.REGISTERED, RegistrationState.FAILED):
            return self._register(self._expires)
        return None

    def next_deadline(self) -> float | None:
        """When `on_timer` must run next (None: only a response or stop moves it)."""
        return self._deadline

    # -- helpers -------------------------------------------------------------------------------

    def _fail(self, status: int, reason: str, now: float) -> None:
        self._failures += 1
        delay = min(self.config.retry_max, self.config.retry_min * 2.0 ** (self._failures - 1))
        delay += self._rng.uniform(0.0, self.config.jitter * delay)
        self.state = RegistrationState.FAILED
        self.last_failure = (status, reason)
        if self.registered_until is not None and self.registered_until <= now:
            self.registered_until = None
        self._deadline = now + delay

    @property
    def next_retry(self) -> float | None:
        """When the next attempt after a failure goes out (None when not failed)."""
        return self._deadline if self.state is RegistrationState.FAILED else None

    def _granted(self, response: Response) -> int:
        ours = self.config.contact
        for value in response.headers.get_all("Contact"):
            for addr in _name_addrs(value):
                uri = addr.uri
                if (
                    isinstance(uri, SipUri)
                    and uri.user == ours.user
                    and uri.host.lower() == ours.host.lower()
                    and (uri.port or 5060) == (ours.port or 5060)
                ):
                    expires = _int(addr.param("expires"))
                    if expires is not None:
                        return expires
        header = _int(response.headers.get("Expires"))
        return header if header is not None else self._expires

    def _register(self, expires: int) -> Request:
        self._cseq += 1
        c = self.config
        headers = Headers(
            [
                ("Via", f"{c.via};rport;branch={new_branch()}"),
                ("Max-Forwards", "70"),
                ("From", f"<{c.aor}>;tag={self._from_tag}"),
                ("To", f"<{c.aor}>"),
                ("Call-ID", self.call_id),
                ("CSeq", f"{self._cseq} REGISTER"),
                ("Contact", f"<{c.contact}>"),
                ("Expires", str(expires)),
                ("User-Agent", c.user_agent),
            ]
        )
        request = Request("REGISTER", c.registrar, headers)
        if self.state is not RegistrationState.UNREGISTERING:
            self.state = RegistrationState.REGISTERING
        return self._send(self._auth.preauthorize(request))

    def _send(self, request: Request) -> Request:
        self._cseq = request.cseq.seq
        self._sent = request
        return request


def _name_addrs(value: str) -> list[NameAddr]:
    try:
        return NameAddr.parse_list(value)
    except SipParseError:
        return []


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit() or len(text) > 10:
        return None
    return int(text)
