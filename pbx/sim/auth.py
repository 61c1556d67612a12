"""Digest checks of the PSTN simulator, the way a provider does them.

Nonces are self-authenticating (creation time + HMAC-SHA256 under a per-run secret),
so a challenge keeps no state: a request that is never answered with credentials
costs nothing. The simulator is a test tool: it does not track nonce-counts (no
replay protection); the switch's own `pbx.auth` does.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from sip.digest import Challenge, Credentials, ha1, verify
from sip.errors import SipParseError

#: Seconds a nonce stays valid; an older one gets a stale=true challenge.
NONCE_LIFETIME = 300.0


class Verdict(enum.Enum):
    """What to answer a request with."""

    OK = "ok"
    CHALLENGE = "challenge"  # no credentials, or a stale/foreign nonce: 401/407
    FORBIDDEN = "forbidden"  # our nonce, but a wrong user or password: 403


class DigestGuard:
    """Issues challenges for one realm and checks credentials against `accounts`."""

    def __init__(self, realm: str, accounts: dict[str, str]) -> None:
        self.realm = realm
        self._accounts = accounts
        self._secret = secrets.token_bytes(32)

    def _tag(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def challenge(self, now: float, *, stale: bool = False) -> Challenge:
        """A fresh challenge (qop=auth, MD5)."""
        stamp = f"{int(now * 1000):x}"
        return Challenge(self.realm, f"{stamp}.{self._tag(stamp)}", stale=stale)

    def _fresh(self, nonce: str, now: float) -> bool | None:
        """True for our nonce in its lifetime, False when too old, None when not ours."""
        stamp, _, tag = nonce.partition(".")
        if len(stamp) > 16 or not hmac.compare_digest(tag.encode(), self._tag(stamp).encode()):
            return None
        try:
            created = int(stamp, 16) / 1000
        except ValueError:
            return None
        return 0 <= now - created <= NONCE_LIFETIME

    def check(self, header: str | None, method: str, now: float) -> tuple[Verdict, str | None]:
        """The verdict on an Authorization/Proxy-Authorization value, and the user."""
        if header is None:
            return Verdict.CHALLENGE, None
        try:
            credentials = Credentials.parse(header)
        except SipParseError:
            return Verdict.CHALLENGE, None
        if credentials.realm != self.realm or not self._fresh(credentials.nonce, now):
            return Verdict.CHALLENGE, None
        password = self._accounts.get(credentials.username)
        if password is None:
            return Verdict.FORBIDDEN, credentials.username
        try:
            secret = ha1(credentials.username, self.realm, password, credentials.algorithm)
        except ValueError:
            return Verdict.FORBIDDEN, credentials.username
        if not verify(credentials, secret, method):
            return Verdict.FORBIDDEN, credentials.username
        return Verdict.OK, credentials.username

    def stale(self, header: str | None, now: float) -> bool:
        """Whether the credentials carry one of our nonces that has expired."""
        if header is None:
            return False
        try:
            credentials = Credentials.parse(header)
        except SipParseError:
            return False
        return self._fresh(credentials.nonce, now) is False
