"""Digest authentication of requests: nonces, replay protection, the Authenticator.

Pure: every method takes `now` (seconds, any monotonic-ish clock the caller picks, the same
one throughout), nothing here does I/O or touches the event loop. The registrar and the
B2BUA call `Authenticator.authenticate` and turn its `AuthOutcome` into a response.

Rules this module keeps:

- Nonces are stateless to issue (RFC 7616 §3.3 suggests a time-stamp plus a hash keyed by
  a private key): a nonce carries its creation time and an HMAC-SHA256 tag under a server
  secret, so a forged or garbled nonce is recognised without a table and its age is read
  from the nonce itself.
- Only nonces that came with a correct digest are remembered (for the nonce-count replay
  check), and never more than a fixed number of them: a flood of forged or unanswered
  nonces costs no memory.
- A challenge never depends on the username, and an unknown user costs the same work and
  gets the same answer as a known user with a wrong password (a dummy HA1 stands in).
- Failed digests (wrong password, unknown user, forged nonce, replay, digest-uri mismatch)
  count per (source address, user) and per address (`BanList`): one phone with a wrong
  password gets its own user refused from its address (403, then silence) and nothing
  else; only failures for many distinct users (a scanner) ban the address as a whole,
  and never a trusted network. A request without credentials counts nothing. Known and
  unknown users count and are answered alike (no enumeration). The rules, and what
  remains of the spoofing risk, are in pbx/bans.py.
- Each failed login is logged as one line (user, source, reason), never the password or
  the digest response, with a budget of lines per interval (`FailureLog`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from pbx.bans import BanEntry, BanList, BanPolicy, FailureLog, Verdict, parse_network
from sip import digest
from sip.errors import SipParseError
from sip.message import Request
from sip.uri import SipUri, parse_uri

__all__ = [
    "AuthOutcome",
    "AuthResult",
    "Authenticator",
    "BanEntry",
    "BanList",
    "BanPolicy",
    "FailureLog",
    "NonceCheck",
    "NonceManager",
    "UserLookup",
    "Verdict",
    "parse_network",
]

log = logging.getLogger(__name__)

UserLookup = Callable[[str], "tuple[str, str] | None"]
"""username -> (ha1_md5, ha1_sha256), or None for an unknown user."""


# ---------------------------------------------------------------------------------------
# Nonces
# ---------------------------------------------------------------------------------------


class NonceCheck(enum.Enum):
    """What `NonceManager.check` found."""

    VALID = "valid"
    STALE = "stale"  # ours, but too old (or forgotten): answer with stale=true
    INVALID = "invalid"  # not ours: forged, garbled or made under another secret
    REPLAY = "replay"  # ours and fresh, but its nonce-count was already used


# Layout before base64url: 8-byte signed creation time in ms, 8 random bytes, 16-byte tag
# (HMAC-SHA256 truncated to 128 bits) over the first 16. 32 bytes -> 43 characters.
_STAMP = struct.Struct(">q")
_BODY_LEN = 16
_TAG_LEN = 16
_NONCE_LEN = 43
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
# A nonce used without qop is single use: record it with a count above any 8-hex-digit nc.
_USED_WITHOUT_QOP = 1 << 32


class NonceManager:
    """Issues self-authenticating nonces and checks them, with nonce-count replay detection.

    `lifetime` is how long (seconds) a nonce stays valid; after that it is STALE.
    At most `max_tracked` nonces have their nonce-count remembered; when that many are in
    use at once the oldest-remembered is forgotten, and any nonce created no later than a
    forgotten one is answered STALE from then on (the client simply retries with a fresh
    nonce), so forgetting never reopens a replay.

    Credentials without qop have no nonce-count: such a nonce is accepted once only.

    The secret must be kept across restarts for nonces to survive them; with a fresh secret
    every outstanding nonce becomes INVALID.
    """

    def __init__(self, secret: bytes, lifetime: float, max_tracked: int = 100_000) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime <= 0 or max_tracked < 1:
            raise ValueError("lifetime must be > 0 and max_tracked >= 1")
        # HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once here:
        # each tag then costs two copies and two short updates, half of hmac.digest's work.
        key = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        # The last genuine nonce decoded: authenticate() looks at each nonce twice.
        self._last: tuple[str, bytes, int] | None = None
        self._lifetime_ms = int(lifetime * 1000)
        self._max_tracked = max_tracked
        # nonce body (time + random) -> (created_ms, highest nonce-count seen),
        # in the order the nonces were first accepted.
        self._seen: dict[bytes, tuple[int, int]] = {}
        self._forgotten_upto_ms: int | None = None

    def __len__(self) -> int:
        """How many nonces have their nonce-count remembered right now."""
        return len(self._seen)

    def _tag(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_TAG_LEN]

    def new(self, now: float) -> str:
        """A fresh nonce: base64url without padding (43 characters), safe in a quoted-string."""
        body = _STAMP.pack(int(now * 1000)) + secrets.token_bytes(_BODY_LEN - _STAMP.size)
        return base64.urlsafe_b64encode(body + self._tag(body)).rstrip(b"=").decode("ascii")

    def _decode(self, nonce: str) -> tuple[bytes, int] | None:
        """(body, created_ms) of a genuine nonce, None for anything else."""
        last = self._last
        if last is not None and nonce == last[0]:
            return last[1], last[2]
        if len(nonce) != _NONCE_LEN or not _NONCE_RE.fullmatch(nonce):
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        body, tag = raw[:_BODY_LEN], raw[_BODY_LEN:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return None
        created_ms: int = _STAMP.unpack_from(body)[0]
        self._last = (nonce, body, created_ms)
        return body, created_ms

    def _state(self, body: bytes, created_ms: int, now_ms: int) -> NonceCheck:
        age = now_ms - created_ms
        if age < 0 or age > self._lifetime_ms:
            # From the future can only mean the clock stepped back: genuine, so STALE.
            return NonceCheck.STALE
        forgotten = self._forgotten_upto_ms
        if forgotten is not None and created_ms <= forgotten and body not in self._seen:
            return NonceCheck.STALE
        return NonceCheck.VALID

    def verify(self, nonce: str, now: float) -> NonceCheck:
        """VALID, STALE or INVALID for this nonce, without recording anything.

        Lets a caller check the digest before the nonce-count is consumed, so that a
        request with a wrong digest cannot burn a nonce-count of the real user.
        """
        decoded = self._decode(nonce)
        if decoded is None:
            return NonceCheck.INVALID
        return self._state(decoded[0], decoded[1], int(now * 1000))

    def check(self, nonce: str, nc: int | None, now: float) -> NonceCheck:
        """Check the nonce and consume nonce-count `nc` (None: credentials without qop).

        REPLAY when `nc` is not greater than the highest count already accepted for this
        nonce, or the nonce was already used without qop, or is now used without qop after
        any use. Only a VALID answer records anything.
        """
        decoded = self._decode(nonce)
        if decoded is None:
            return NonceCheck.INVALID
        body, created_ms = decoded
        now_ms = int(now * 1000)
        state = self._state(body, created_ms, now_ms)
        if state is not NonceCheck.VALID:
            return state
        previous = self._seen.get(body)
        count = _USED_WITHOUT_QOP if nc is None else nc
        if previous is not None:
            if nc is None or nc <= previous[1]:
                return NonceCheck.REPLAY
            self._seen[body] = (created_ms, count)  # keeps its place in the order
            return NonceCheck.VALID
        if nc is not None and nc < 1:
            return NonceCheck.REPLAY
        self._prune(now_ms)
        self._seen[body] = (created_ms, count)
        return NonceCheck.VALID

    def _prune(self, now_ms: int) -> None:
        """Drop expired entries from the front, then make room under the cap."""
        seen = self._seen
        while seen:
            body, (created_ms, _) = next(iter(seen.items()))
            if now_ms - created_ms <= self._lifetime_ms:
                break
            del seen[body]
        while len(seen) >= self._max_tracked:
            body, (created_ms, _) = next(iter(seen.items()))
            del seen[body]
            if self._forgotten_upto_ms is None or created_ms > self._forgotten_upto_ms:
                self._forgotten_upto_ms = created_ms


# ---------------------------------------------------------------------------------------
# Authenticator
# ---------------------------------------------------------------------------------------


class AuthResult(enum.Enum):
    """The kind of answer `Authenticator.authenticate` asks for."""

    OK = "ok"  # authenticated: go on with the request
    CHALLENGE = "challenge"  # 401 (407 for proxy) with fresh WWW-/Proxy-Authenticate headers
    # 403: correct password, but not for the user the request acts for; or the failure
    # that refuses this user from this address (BanPolicy.user_failures reached)
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad_request"  # 400: digest-uri is not the Request-URI (RFC 7616 §3.4.6)
    # the source address is banned, or this user is refused from it: drop silently
    BANNED = "banned"


_STATUS = {
    AuthResult.FORBIDDEN: (403, "Forbidden"),
    AuthResult.BAD_REQUEST: (400, "Bad Request"),
    AuthResult.BANNED: (403, "Forbidden"),
}


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What to do with a request; `status`, `reason` and `headers` build the response.

    `challenges` are the header values to send (one per algorithm, most preferred first)
    for CHALLENGE; `stale` says the nonce was merely old and the digest right.
    """

    result: AuthResult
    username: str | None = None
    challenges: tuple[str, ...] = ()
    stale: bool = False
    proxy: bool = False

    @property
    def status(self) -> int | None:
        """Response code for the request, None for OK."""
        if self.result is AuthResult.OK:
            return None
        if self.result is AuthResult.CHALLENGE:
            return 407 if self.proxy else 401
        return _STATUS[self.result][0]

    @property
    def reason(self) -> str:
        """Standard reason phrase for `status` ("" for OK)."""
        if self.result is AuthResult.OK:
            return ""
        if self.result is AuthResult.CHALLENGE:
            return "Proxy Authentication Required" if self.proxy else "Unauthorized"
        return _STATUS[self.result][1]

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """(name, value) pairs to add to the response: the challenges under their header name."""
        name = "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"
        return tuple((name, value) for value in self.challenges)


_LOGGED_NAME = 64  # characters of a (peer-chosen) username put in a log line


class Authenticator:
    """Checks Digest credentials on requests against a user lookup.

    `algorithms` are offered in this order (RFC 8760 §2.3: the UAS MUST add the
    challenges in the order it prefers them, most preferred first) and are the only ones
    accepted in credentials; each challenge carries qop="auth". Supported names: MD5,
    MD5-sess, SHA-256, SHA-256-sess.

    Identity rule (decided here): the authenticated username must equal the user part
    of the To URI for REGISTER (the address-of-record being registered, RFC 3261 §10.3
    step 6) and of the From URI for every other method; otherwise FORBIDDEN. This is
    checked only after the digest verified, so only someone who knows a password can
    learn anything from a 403.
    """

    def __init__(
        self,
        realm: str,
        lookup: UserLookup,
        nonces: NonceManager,
        bans: BanList,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        failure_log: FailureLog | None = None,
    ) -> None:
        canonical = []
        for name in algorithms:
            found = digest.canonical_algorithm(name)
            if found is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            canonical.append(found)
        if not canonical or len(set(canonical)) != len(canonical):
            raise ValueError("algorithms must be non-empty and without repeats")
        self.realm = realm
        self.algorithms = tuple(canonical)
        self._lookup = lookup
        self.nonces = nonces
        self.bans = bans
        self.failure_log = failure_log or FailureLog()
        # Stand-in HA1s for unknown users: random, so no password matches them, and as
        # long as real ones, so the work done is the same.
        self._dummy_md5 = secrets.token_hex(16)
        self._dummy_sha256 = secrets.token_hex(32)

    def challenge(self, now: float, *, proxy: bool = False, stale: bool = False) -> AuthOutcome:
        """A CHALLENGE outcome with a fresh nonce: one header value per algorithm.

        The same for every user and request (it depends on nothing but the clock).
        """
        nonce = self.nonces.new(now)
        values = tuple(
            str(digest.Challenge(realm=self.realm, nonce=nonce, algorithm=name, stale=stale))
            for name in self.algorithms
        )
        return AuthOutcome(AuthResult.CHALLENGE, challenges=values, stale=stale, proxy=proxy)

    def authenticate(
        self, request: Request, source_ip: str, now: float, proxy: bool = False
    ) -> AuthOutcome:
        """Decide whether `request` (received from `source_ip`) is authenticated.

        Reads the Authorization headers (Proxy-Authorization when `proxy`) whose realm is
        ours. Never raises for bad peer input: unreadable credentials count as none.

        Outcomes: BANNED for a banned source or a user refused from it (and for the
        failure that starts a ban); CHALLENGE with a fresh nonce when there are no usable
        credentials, the digest is wrong, the user unknown, the nonce forged or the
        nonce-count replayed (stale=true only for an expired nonce with a right digest);
        FORBIDDEN for the failure that refuses the user from this address, and for a
        right digest acting for another user; BAD_REQUEST for a digest-uri that is not
        the Request-URI; OK.
        """
        bans = self.bans
        if bans.is_banned(source_ip, now):
            return AuthOutcome(AuthResult.BANNED, proxy=proxy)
        found = self._credentials(request, proxy)
        if bans.refusing(source_ip, now):
            # The user named by the credentials, else the one the request acts for: a
            # refused phone's first, unauthenticated REGISTER is dropped as well.
            named = found[0].username if found is not None else _acting_user(request)
            if bans.is_refused(source_ip, named or "", now):
                return AuthOutcome(AuthResult.BANNED, proxy=proxy)
        if found is None:
            return self.challenge(now, proxy=proxy)
        creds, algorithm = found
        call_id = request.call_id
        user_name = creds.username
        # RFC 7616 §3.4.6 (RFC 2617 §3.2.2.5): the authenticating server MUST assure that
        # the resource named by "uri" is the one in the request line, and SHOULD answer 400
        # if not. (RFC 3261 §22.4 item 2 relaxes this for requests a proxy retargeted; ours
        # come straight from the phones.)
        if not _same_uri(creds.uri, request):
            return self._failed(
                source_ip, user_name, now, call_id, "digest-uri mismatch", proxy, bad=True
            )
        nonce_state = self.nonces.verify(creds.nonce, now)
        if nonce_state is NonceCheck.INVALID:
            return self._failed(source_ip, user_name, now, call_id, "nonce not ours", proxy)
        # The same work for known and unknown users: look up, then one digest either way.
        user = self._lookup(creds.username)
        sha = algorithm.startswith("SHA-256")
        key = (user[1] if sha else user[0]) if user is not None else ""
        if not key:
            key = self._dummy_sha256 if sha else self._dummy_md5
        good = digest.verify(creds, key, request.method, request.body) and user is not None
        if not good:
            why = "wrong password" if user is not None else "unknown user"
            return self._failed(source_ip, user_name, now, call_id, why, proxy)
        if nonce_state is NonceCheck.STALE:
            # RFC 7616 §3.3: stale=true only when the digest was valid for that nonce.
            return self.challenge(now, proxy=proxy, stale=True)
        nc = int(creds.nc, 16) if creds.qop is not None and creds.nc is not None else None
        verdict = self.nonces.check(creds.nonce, nc, now)
        if verdict is NonceCheck.STALE:  # forgotten under memory pressure since verify()
            return self.challenge(now, proxy=proxy, stale=True)
        if verdict is not NonceCheck.VALID:
            return self._failed(source_ip, user_name, now, call_id, "nonce-count replay", proxy)
        if _acting_user(request) != creds.username:
            log.info(
                "auth: %s from %s authenticated as %r but acts for another user (Call-ID %s)",
                request.method,
                source_ip,
                creds.username,
                call_id,
            )
            return AuthOutcome(AuthResult.FORBIDDEN, username=creds.username, proxy=proxy)
        bans.record_success(source_ip, user_name)
        return AuthOutcome(AuthResult.OK, username=creds.username, proxy=proxy)

    def _credentials(self, request: Request, proxy: bool) -> tuple[digest.Credentials, str] | None:
        """The first readable Digest credentials for our realm with an algorithm we accept,
        with that algorithm's canonical name."""
        wanted = "Proxy-Authorization" if proxy else "Authorization"
        for value in request.headers.values(wanted):
            try:
                creds = digest.Credentials.parse(value)
            except SipParseError:
                continue
            if creds.realm != self.realm:
                continue
            algorithm = digest.canonical_algorithm(creds.algorithm)
            if algorithm is not None and algorithm in self.algorithms:
                return creds, algorithm
        return None

    def _failed(
        self,
        ip: str,
        user: str,
        now: float,
        call_id: str,
        why: str,
        proxy: bool,
        bad: bool = False,
    ) -> AuthOutcome:
        """Log and count a failed login; the answer the `BanList` verdict asks for:
        a fresh challenge (or 400), a 403 that refuses the user, or silence."""
        verdict = self.bans.record_failure(ip, user, now)
        shown = user[:_LOGGED_NAME]
        allowed, held = self.failure_log.allow(now)
        if allowed:
            log.warning(
                "auth: failed login for user %r from %s: %s (Call-ID %s)%s",
                shown,
                ip,
                why,
                call_id,
                f" ({held} more failed logins not logged)" if held else "",
            )
        policy = self.bans.policy
        if verdict is Verdict.BAN:
            log.warning(
                "auth: banning %s for %.0f s: failed logins for %d users within %.0f s",
                ip,
                policy.ban_seconds,
                policy.scan_users,
                policy.scan_window,
            )
            return AuthOutcome(AuthResult.BANNED, proxy=proxy)
        if verdict is Verdict.REFUSE:
            log.warning(
                "auth: refusing user %r from %s for %.0f s after %d failed logins",
                shown,
                ip,
                policy.refuse_seconds,
                policy.user_failures,
            )
            return AuthOutcome(AuthResult.FORBIDDEN, proxy=proxy)
        if verdict is Verdict.IGNORED:
            return AuthOutcome(AuthResult.BANNED, proxy=proxy)
        if bad:
            return AuthOutcome(AuthResult.BAD_REQUEST, proxy=proxy)
        return self.challenge(now, proxy=proxy)


def _same_uri(digest_uri: str, request: Request) -> bool:
    """digest-uri names the Request-URI: same text, or the same URI once parsed."""
    if digest_uri == str(request.uri):
        return True
    try:
        return parse_uri(digest_uri) == request.uri
    except SipParseError:
        return False


def _acting_user(request: Request) -> str | None:
    """The user the request acts for: To for REGISTER, From otherwise (unescaped)."""
    uri = request.to.uri if request.method == "REGISTER" else request.from_.uri
    if not isinstance(uri, SipUri) or uri.user is None:
        return None
    return unquote(uri.user)
