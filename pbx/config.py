"""Settings of one aiopbx instance, with the embedded defaults a fresh install runs on."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from pbx.bans import BanPolicy, parse_network
from pbx.errors import ConfigError

DB_NAME = "pbx.sqlite3"
CONTROL_FILE = "control.json"


def default_data_dir() -> Path:
    """Where data lives unless told: $PBX_DATA_DIR, else $XDG_DATA_HOME/aiopbx."""
    env = os.environ.get("PBX_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "aiopbx"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `pbx serve` needs; every field has a safe default.

    Timer and security values are plain fields so tests can shorten them.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    udp: bool = True
    tcp: bool = True
    realm: str = "aiopbx"
    # Control API (loopback HTTP/JSON); port 0 picks a free one, written to control.json.
    control_host: str = "127.0.0.1"
    control_port: int = 0
    # Registrar (RFC 3261 §10.3).
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts_per_aor: int = 10
    # Digest: algorithms offered, one WWW-Authenticate each, in this order, and the only
    # ones accepted. MD5 alone by default, as Asterisk and FreeSWITCH do: deployed phones
    # often read only the first challenge, and libre-based ones (baresip 1.0) give up on a
    # 401 if any challenge names an algorithm they lack. The passwords (>= 10 mixed
    # characters, 116-bit when generated) carry the strength either way. Offer
    # ("SHA-256", "MD5") where every phone supports RFC 8760.
    digest_algorithms: tuple[str, ...] = ("MD5",)
    # Digest (RFC 7616): a nonce older than this is answered with stale=true.
    nonce_lifetime: float = 300.0
    # Failed logins (pbx.auth.BanPolicy): `auth_user_failures` failures for one user from
    # one address within `auth_user_window` s refuse that user from that address for
    # `refuse_seconds` (403, then silence; other users there are not touched); failures
    # for `scan_users` distinct users from one address within `scan_window` s ban the
    # address as a scanner for `ban_seconds`, unless it is in `trusted_networks`
    # (addresses or CIDR blocks; more are stored with `pbx trust add`).
    auth_user_failures: int = 3
    auth_user_window: float = 600.0
    refuse_seconds: float = 600.0
    scan_users: int = 5
    scan_window: float = 60.0
    ban_seconds: float = 600.0
    trusted_networks: tuple[str, ...] = ()
    # Calls: how long an extension rings before the caller gets 408 (no answer).
    ring_timeout: float = 60.0
    # RTP relay: even RTP ports (RTCP the odd one above) from this range, as in
    # Asterisk's rtp.conf; a call whose media stops this long (not on hold) is hung
    # up (0 disables).
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    media_timeout: float = 60.0
    # Log every SIP message in and out (credential hashes masked): `--sip-trace`.
    sip_trace: bool = False
    # A call on hold is hung up after this long (0 disables: held for ever); a user may
    # have this many calls up at once (0: no limit), the next gets 486 (issue 10 §6).
    hold_timeout: float = 3600.0
    max_calls_per_user: int = 4
    # Trunk registrations: a failed one is retried after `trunk_retry_min` s, doubling up
    # to `trunk_retry_max` (plus up to 20 % jitter, never less).
    trunk_retry_min: float = 30.0
    trunk_retry_max: float = 1800.0
    # SIP timers (RFC 3261 §17.1.1.1).
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def ban_policy(self) -> BanPolicy:
        """The failed-login rules these settings ask for."""
        return BanPolicy(
            user_failures=self.auth_user_failures,
            user_window=self.auth_user_window,
            refuse_seconds=self.refuse_seconds,
            scan_users=self.scan_users,
            scan_window=self.scan_window,
            ban_seconds=self.ban_seconds,
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME

    @property
    def control_file(self) -> Path:
        return self.data_dir / CONTROL_FILE

    def validate(self) -> None:
        """Raises: ConfigError naming the first bad value."""
        for what, host in (("--host", self.sip_host), ("control host", self.control_host)):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ConfigError(
                    f"{what} {host!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::)"
                ) from None
        if not 0 <= self.sip_port <= 65535:
            raise ConfigError(f"SIP port {self.sip_port} is not between 0 and 65535")
        if not 0 <= self.control_port <= 65535:
            raise ConfigError(f"control port {self.control_port} is not between 0 and 65535")
        if not self.udp and not self.tcp:
            raise ConfigError("at least one of UDP and TCP must be enabled")
        if not 1 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ConfigError("expiry settings must satisfy 1 <= min <= default <= max")
        if not self.realm or any(c in self.realm for c in '"\\\r\n'):
            raise ConfigError(f"realm {self.realm!r} is empty or has a quote, backslash or newline")
        known = {"MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS"}
        if not self.digest_algorithms or any(
            a.upper() not in known for a in self.digest_algorithms
        ):
            raise ConfigError(
                f"digest algorithms {','.join(self.digest_algorithms)!r} are not a non-empty"
                " list of MD5, MD5-sess, SHA-256, SHA-256-sess"
            )
        if not 1024 <= self.rtp_port_min < self.rtp_port_max <= 65535:
            raise ConfigError(
                f"RTP port range {self.rtp_port_min}-{self.rtp_port_max} must lie in 1024-65535"
            )
        if self.ring_timeout <= 0 or self.media_timeout < 0:
            raise ConfigError("ring_timeout must be > 0 and media_timeout >= 0 (0 disables)")
        self.ban_policy.check()
        for network in self.trusted_networks:
            parse_network(network)
        if not 1.0 <= self.trunk_retry_min <= self.trunk_retry_max:
            raise ConfigError("trunk retry back-off must satisfy 1 <= min <= max (seconds)")
        if self.hold_timeout < 0 or self.max_calls_per_user < 0:
            raise ConfigError("hold_timeout and max_calls_per_user must be >= 0 (0 disables)")
