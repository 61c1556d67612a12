"""Logins to the web console: throttling, sessions, CSRF tokens. Pure where it can be.

- A login is an extension and its SIP password, checked by the switch against the stored
  HA1 in constant time (`Switch.verify_password`).
- Failed logins count as SIP's do (pbx/bans.py through the Call API's `BanList`): per
  (address, extension), refusing that extension from that address after
  `BanPolicy.user_failures` failures, and banning an address that fails for many
  extensions. A refused or banned login is answered 429 without checking the password.
  The web console keeps its own list (a web brute force does not ban the phones).
- The session is a random token in a cookie (HttpOnly, SameSite=Strict, Path=/, Secure
  when the request came over TLS); the store keeps its hash only.
- Every state-changing request carries the session's CSRF token in the `X-CSRF-Token`
  header (or a `csrf` form field), compared in constant time. The login form has its own
  token: a double-submit cookie `pbx_login` matching the form's hidden field.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass

from pbx.api import BanList, BanPolicy, FailureLog, Verdict

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "SESSION_SECONDS",
    "LoginThrottle",
    "cookie_attributes",
    "new_token",
    "same_token",
]

log = logging.getLogger(__name__)

COOKIE = "pbx_session"
LOGIN_COOKIE = "pbx_login"
#: A session lasts a working shift and a half.
SESSION_SECONDS = 12 * 3600.0
#: Longest extension and password a login form may carry (bounded work).
MAX_FIELD = 128


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an absent token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def cookie_attributes(secure: bool, max_age: int | None = None) -> dict[str, object]:
    """What aiohttp's `set_cookie` gets for our cookies."""
    attributes: dict[str, object] = {
        "httponly": True,
        "samesite": "Strict",
        "path": "/",
        "secure": secure,
    }
    if max_age is not None:
        attributes["max_age"] = max_age
    return attributes


@dataclass(frozen=True, slots=True)
class Attempt:
    """What to do with a login attempt before its password is checked."""

    allowed: bool
    reason: str = ""


class LoginThrottle:
    """Failed web logins by (address, extension) and by address (see the module doc)."""

    def __init__(self, policy: BanPolicy | None = None, trusted: tuple[str, ...] = ()) -> None:
        self.bans = BanList(policy or BanPolicy(), trusted)
        self._log = FailureLog()

    def check(self, address: str, user: str, now: float) -> Attempt:
        if self.bans.is_banned(address, now):
            return Attempt(False, "this address is banned for failed logins")
        if self.bans.refusing(address, now) and self.bans.is_refused(address, user, now):
            return Attempt(False, "too many failed logins for this extension; try later")
        return Attempt(True)

    def failed(self, address: str, user: str, now: float) -> Verdict:
        verdict = self.bans.record_failure(address, user, now)
        allowed, held = self._log.allow(now)
        if allowed:
            log.warning(
                "web: failed login for %r from %s (%s)%s",
                user,
                address,
                verdict.value,
                f"; {held} more not logged" if held else "",
            )
        return verdict

    def succeeded(self, address: str, user: str) -> None:
        self.bans.record_success(address, user)
