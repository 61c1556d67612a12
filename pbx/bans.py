"""Failed logins: who is refused or banned, and the budget of failed-login log lines.

Pure: every method takes `now`; nothing here does I/O. The `Authenticator`
(pbx/auth.py) records each failed digest here and asks, for each request, whether
its source is banned or its user refused from that source.

Two rules (`BanPolicy`), as Kamailio's pike/ipban and fail2ban on Asterisk's security
events: failures count per (source address, user), so a phone with a wrong password
loses its own user from its own address and nothing else; only failures for many
distinct users from one address (a scanner) ban the address as a whole, and never an
address in a trusted network.

What remains of spoofing: the source address of a UDP request is not authenticated. A
spoofer who can send to the switch with a victim's source address (and read nothing
back) can still get one (address, user) pair refused, or, with failures for several
users, the victim's address banned as a scanner. Trusted networks are the mitigation:
an office network listed with `pbx trust add` (or `pbx serve --trust`) can lose single
users for `refuse_seconds`, never the whole address.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from pbx.errors import ConfigError

__all__ = [
    "BanEntry",
    "BanList",
    "BanPolicy",
    "FailureLog",
    "Network",
    "Verdict",
    "parse_network",
]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """An address or CIDR block (`192.168.1.0/24`, `10.0.0.7`, `fd00::/8`), host bits
    cleared. Raises: ConfigError naming the text."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address or CIDR network") from None


class Verdict(enum.Enum):
    """What one failed login leads to (`BanList.record_failure`)."""

    RETRY = "retry"  # answer with a fresh challenge
    REFUSE = "refuse"  # this failure refuses the (address, user) pair: 403 now, then silence
    BAN = "ban"  # this failure bans the whole address as a scanner: silence
    IGNORED = "ignored"  # already banned or refused: silence


@dataclass(frozen=True, slots=True)
class BanPolicy:
    """The thresholds of a `BanList` (Settings carry them).

    Two rules, as Kamailio's pike/ipban and fail2ban on Asterisk's security events:

    - `user_failures` failed logins for one user from one address within `user_window`
      seconds (counted from the first; then the count starts again) refuse that user
      from that address for `refuse_seconds`: the failures
      before get fresh challenges, the one that reaches the count a 403, and then that
      user's requests from that address are dropped. Other users from the address (every
      phone behind one office NAT) are not touched.
    - failed logins for `scan_users` distinct users from one address within `scan_window`
      seconds are a scanner: the whole address is dropped for `ban_seconds`, unless it
      lies in a trusted network.

    The caps bound memory under a flood from many (even spoofed) addresses or names:
    past them the oldest history is forgotten (the protection degrades, the server does
    not). With the defaults the failure history stays under ~20 MB and the bans under
    ~15 MB whatever arrives.
    """

    user_failures: int = 3
    user_window: float = 600.0
    refuse_seconds: float = 600.0
    scan_users: int = 5
    scan_window: float = 60.0
    ban_seconds: float = 600.0
    max_sources: int = 20_000
    max_bans: int = 100_000
    max_users_per_source: int = 256

    def check(self) -> None:
        """Raises: ConfigError naming the first bad value."""
        if self.user_failures < 1 or self.scan_users < 1:
            raise ConfigError("user_failures and scan_users must be >= 1")
        if self.user_window <= 0 or self.scan_window <= 0:
            raise ConfigError("user_window and scan_window must be > 0")
        if self.refuse_seconds < 0 or self.ban_seconds < 0:
            raise ConfigError("refuse_seconds and ban_seconds must be >= 0")
        if min(self.max_sources, self.max_bans, self.max_users_per_source) < 1:
            raise ConfigError("max_sources, max_bans and max_users_per_source must be >= 1")


@dataclass(frozen=True, slots=True)
class BanEntry:
    """One live refusal (`user` set) or address ban (`user` None), for `pbx ban list`."""

    address: str
    user: str | None
    seconds_left: float
    reason: str


@dataclass(slots=True)
class _Source:
    """Failure history of one address."""

    # user -> (first failure counted, failures counted since, last failure), least
    # recently failed user first. The count restarts once user_window has passed since
    # the first (a fixed window, as fail2ban's findtime): three numbers per pair.
    failures: dict[str, tuple[float, int, float]] = field(default_factory=dict)
    # user -> end of its refusal; all last refuse_seconds, so insertion order is expiry order.
    refused: dict[str, float] = field(default_factory=dict)
    last: float = 0.0


class BanList:
    """Failed logins by (address, user) and by address; see `BanPolicy` for the rules.

    Pure: every method takes `now`. The hot path (every request) is `is_banned` and,
    only for an address with a live refusal, `is_refused`: one or two dict lookups.
    """

    def __init__(self, policy: BanPolicy | None = None, trusted: Iterable[str] = ()) -> None:
        """Raises: ConfigError for a bad policy or network."""
        self.policy = policy = policy or BanPolicy()
        policy.check()
        # The longest any history matters: a source idle that long can be forgotten.
        self._keep = max(policy.user_window, policy.scan_window, policy.refuse_seconds)
        self._sources: dict[str, _Source] = {}  # least recently failed first
        # ip -> ban end; bans all last ban_seconds, so insertion order is expiry order.
        self._bans: dict[str, float] = {}
        self._trusted: tuple[Network, ...] = ()
        self.set_trusted(trusted)

    def __len__(self) -> int:
        """Addresses with failure history or a ban (for tests and metrics)."""
        return len(self._sources) + len(self._bans)

    # ---- trusted networks ----

    @property
    def trusted(self) -> tuple[Network, ...]:
        """The trusted networks in effect (for `pbx ban list`)."""
        return self._trusted

    def set_trusted(self, networks: Iterable[str]) -> None:
        """Replace the trusted networks (never banned as a whole); lifts their bans.

        Raises: ConfigError for a bad network.
        """
        self._trusted = tuple(dict.fromkeys(parse_network(n) for n in networks))
        for ip in [ip for ip in self._bans if self.is_trusted(ip)]:
            del self._bans[ip]

    def is_trusted(self, ip: str) -> bool:
        """True when `ip` lies in a trusted network."""
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self._trusted)

    # ---- the checks on every request ----

    def is_banned(self, ip: str, now: float) -> bool:
        """True while `ip` is banned as a whole; a ban that has run out is lifted here."""
        until = self._bans.get(ip)
        if until is None:
            return False
        if now < until:
            return True
        del self._bans[ip]
        return False

    def refusing(self, ip: str, now: float) -> bool:
        """True when `ip` has refused users (then ask `is_refused` with the user).

        Refusals that have run out are dropped here (they are in expiry order)."""
        source = self._sources.get(ip)
        if source is None:
            return False
        refused = source.refused
        while refused and next(iter(refused.values())) <= now:
            del refused[next(iter(refused))]
        return bool(refused)

    def is_refused(self, ip: str, user: str, now: float) -> bool:
        """True while `user` is refused from `ip`; a refusal that has run out is lifted."""
        source = self._sources.get(ip)
        if source is None:
            return False
        until = source.refused.get(user)
        if until is None:
            return False
        if now < until:
            return True
        del source.refused[user]
        return False

    # ---- recording outcomes ----

    def record_failure(self, ip: str, user: str, now: float) -> Verdict:
        """Count one failed login for `user` from `ip` and say what it leads to.

        REFUSE and BAN are returned exactly once per refusal or ban (the caller logs
        them); IGNORED while `ip` is banned or `user` refused from it.
        """
        if self.is_banned(ip, now) or self.is_refused(ip, user, now):
            return Verdict.IGNORED
        policy = self.policy
        source = self._sources.pop(ip, None)
        if source is None:
            self._prune_sources(now)
            source = _Source()
        self._sources[ip] = source  # re-inserted last: most recently failed
        source.last = now
        failures = source.failures
        previous = failures.pop(user, None)
        if previous is None:
            while len(failures) >= policy.max_users_per_source:
                del failures[next(iter(failures))]
        if previous is None or now - previous[0] >= policy.user_window:
            first, count = now, 1
        else:
            first, count = previous[0], previous[1] + 1
        failures[user] = (first, count, now)  # re-inserted last
        if self._scanning(source, now) and not self.is_trusted(ip):
            del self._sources[ip]  # its refusals are moot under the ban
            self._prune_bans(now)
            self._bans[ip] = now + policy.ban_seconds
            return Verdict.BAN
        if count >= policy.user_failures:
            refused = source.refused
            refused.pop(user, None)
            while len(refused) >= policy.max_users_per_source:
                del refused[next(iter(refused))]
            refused[user] = now + policy.refuse_seconds
            return Verdict.REFUSE
        return Verdict.RETRY

    def _scanning(self, source: _Source, now: float) -> bool:
        """At least scan_users distinct users failed within scan_window (newest first)."""
        wanted = self.policy.scan_users
        if len(source.failures) < wanted:
            return False
        horizon = now - self.policy.scan_window
        for count, (_, _, last) in enumerate(reversed(source.failures.values()), 1):
            if last <= horizon:
                return False
            if count >= wanted:
                return True
        return False

    def record_success(self, ip: str, user: str) -> None:
        """Forget the failures of `user` from `ip` (a correct login resets its count)."""
        source = self._sources.get(ip)
        if (
            source is not None
            and source.failures.pop(user, None) is not None
            and not source.failures
            and not source.refused
        ):
            del self._sources[ip]

    # ---- administration (`pbx ban list`, `pbx ban lift`) ----

    def entries(self, now: float) -> list[BanEntry]:
        """Every live ban and refusal, addresses in order, whole-address bans first."""
        found = [
            BanEntry(ip, None, until - now, "scanner: failed logins for many users")
            for ip, until in self._bans.items()
            if until > now
        ]
        for ip, source in self._sources.items():
            found.extend(
                BanEntry(ip, user, until - now, "repeated failed logins")
                for user, until in source.refused.items()
                if until > now
            )
        return sorted(found, key=lambda e: (e.address, e.user is not None, e.user or ""))

    def lift(self, ip: str, user: str | None = None) -> int:
        """Lift the ban of `ip` and its refusals (only `user`'s when given), and forget
        their failures. Returns how many bans and refusals were lifted."""
        lifted = 0
        if user is None and self._bans.pop(ip, None) is not None:
            lifted += 1
        source = self._sources.get(ip)
        if source is not None:
            if user is None:
                lifted += len(source.refused)
                del self._sources[ip]
            else:
                lifted += source.refused.pop(user, None) is not None
                source.failures.pop(user, None)
                if not source.failures and not source.refused:
                    del self._sources[ip]
        return lifted

    # ---- memory bounds ----

    def _prune_sources(self, now: float) -> None:
        sources = self._sources
        horizon = now - self._keep
        while sources:
            ip, source = next(iter(sources.items()))
            if source.last > horizon and len(sources) < self.policy.max_sources:
                break
            del sources[ip]

    def _prune_bans(self, now: float) -> None:
        bans = self._bans
        while bans:
            ip, until = next(iter(bans.items()))
            if now < until and len(bans) < self.policy.max_bans:
                break
            del bans[ip]


class FailureLog:
    """At most `burst` lines per `interval` seconds; says how many it held back.

    Pure (takes `now`): a flood of failed logins costs a bounded amount of log.
    """

    def __init__(self, burst: int = 20, interval: float = 10.0) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("burst must be >= 1 and interval > 0")
        self.burst = burst
        self.interval = interval
        self._start = float("-inf")
        self._used = 0
        self._held = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(log this line?, lines held back since the last one logged)."""
        if now - self._start >= self.interval:
            self._start = now
            self._used = 0
        if self._used >= self.burst:
            self._held += 1
            return False, 0
        self._used += 1
        held, self._held = self._held, 0
        return True, held
