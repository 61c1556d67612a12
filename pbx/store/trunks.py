"""SIP trunks: the providers (and other aiopbx sites) the switch registers to and calls out by.

A trunk row holds what the switch needs to act as a UAC there: where (host, port,
transport), who (username for the AOR, auth user and password for digest challenges,
from-user/from-domain), whether to keep a registration alive, and how inbound calls from
it are recognised (source networks, or the contact we registered).

The password is stored as it is, not hashed: the switch must compute digest answers
with it (RFC 7616 has no client-side equivalent of HA1 that a provider would accept for
every realm and algorithm). It is protected by the database file's mode (0600, in a
0700 directory, see `database.py`), never logged, and `pbx trunk list` shows it only
with `--show-passwords`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pbx.bans import parse_network
from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store.database import Database
from pbx.store.targets import trunk_references

__all__ = [
    "CODECS",
    "TRANSPORTS",
    "Trunk",
    "TrunkRepo",
    "check_trunk",
    "parse_host_port",
]

TRANSPORTS = ("udp", "tcp")
#: Codecs a trunk may offer, in the spelling SDP uses (media/sdp.py).
CODECS = ("PCMU", "PCMA", "G722", "opus")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# user part of a SIP URI, kept to the unreserved characters and the usual +*#
_USER = re.compile(r"[A-Za-z0-9_.!~*'()+#&=$,;?/%-]{1,64}")
_CALLER_ID = re.compile(r"\+?[0-9A-Za-z_.*#-]{1,32}")


@dataclass(frozen=True, slots=True)
class Trunk:
    """One trunk as stored; `created` is a Unix time."""

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str = ""
    auth_user: str = ""
    password: str = ""
    from_user: str = ""
    from_domain: str = ""
    register: bool = False
    expires: int = 3600
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    max_channels: int = 0
    caller_id: str = ""
    inbound_networks: tuple[str, ...] = ()
    inbound_contact: bool = False
    created: float = 0.0

    @property
    def login(self) -> str:
        """The digest user name: the auth user when set, else the username."""
        return self.auth_user or self.username

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str, default_port: int = 5060) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or `v6` -> (host, port).

    Raises: ConfigError naming the text (bad host name, bad or out-of-range port).
    """
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ConfigError(f"{text!r} is not host[:port]")
        host, port_text = text[1:end], text[end + 2 :]
        if end + 1 < len(text) and not port_text:
            raise ConfigError(f"{text!r} is not host[:port]")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not port_text:
            raise ConfigError(f"{text!r} is not host[:port]")
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(f"{text!r}: port {port_text!r} is not between 1 and 65535")
        port = int(port_text)
    else:
        port = default_port
    _check_host(host)
    return host, port


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
        raise ConfigError(f"{host!r} is not an IP address or host name")


def _clean_codecs(codecs: Iterable[str]) -> tuple[str, ...]:
    by_upper = {c.upper(): c for c in CODECS}
    out: list[str] = []
    for codec in codecs:
        name = by_upper.get(codec.strip().upper())
        if name is None:
            raise ConfigError(f"unknown codec {codec.strip()!r} (known: {', '.join(CODECS)})")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError("a trunk needs at least one codec")
    return tuple(out)


def check_trunk(trunk: Trunk) -> Trunk:
    """The trunk with normalized fields (codecs, networks, transport).

    Raises: ConfigError naming the first bad field.
    """
    if not _NAME.fullmatch(trunk.name):
        raise ConfigError(
            f"trunk name {trunk.name!r}: 1-32 letters, digits, '_', '.', '-' (not first)"
        )
    _check_host(trunk.host)
    if not 1 <= trunk.port <= 65535:
        raise ConfigError(f"port {trunk.port} is not between 1 and 65535")
    transport = trunk.transport.lower()
    if transport not in TRANSPORTS:
        raise ConfigError(f"transport {trunk.transport!r} is not one of {', '.join(TRANSPORTS)}")
    for what, value in (
        ("username", trunk.username),
        ("auth user", trunk.auth_user),
        ("from user", trunk.from_user),
    ):
        if value and not _USER.fullmatch(value):
            raise ConfigError(f"{what} {value!r} is not a valid SIP user name")
    if trunk.from_domain:
        _check_host(trunk.from_domain)
    if any(c in trunk.password for c in "\r\n\0") or len(trunk.password) > 256:
        raise ConfigError("the password may not hold line breaks or NUL, nor exceed 256 chars")
    if trunk.register and not trunk.username:
        raise ConfigError("a trunk that registers needs a username")
    if not 60 <= trunk.expires <= 86400:
        raise ConfigError(f"expires {trunk.expires} is not between 60 and 86400 seconds")
    if trunk.max_channels < 0:
        raise ConfigError("max channels must be >= 0 (0: no limit)")
    if trunk.caller_id and not _CALLER_ID.fullmatch(trunk.caller_id):
        raise ConfigError(f"caller ID {trunk.caller_id!r} is not a number or SIP user")
    networks = tuple(dict.fromkeys(str(parse_network(n)) for n in trunk.inbound_networks))
    return dataclasses.replace(
        trunk,
        transport=transport,
        codecs=_clean_codecs(trunk.codecs),
        inbound_networks=networks,
    )


_COLUMNS = (
    "name, host, port, transport, username, auth_user, password, from_user, from_domain,"
    " register, expires, codecs, max_channels, caller_id, inbound_networks, inbound_contact,"
    " created"
)


def _trunk(row: sqlite3.Row) -> Trunk:
    return Trunk(
        name=row["name"],
        host=row["host"],
        port=row["port"],
        transport=row["transport"],
        username=row["username"],
        auth_user=row["auth_user"],
        password=row["password"],
        from_user=row["from_user"],
        from_domain=row["from_domain"],
        register=bool(row["register"]),
        expires=row["expires"],
        codecs=tuple(c for c in row["codecs"].split(",") if c),
        max_channels=row["max_channels"],
        caller_id=row["caller_id"],
        inbound_networks=tuple(n for n in row["inbound_networks"].split(",") if n),
        inbound_contact=bool(row["inbound_contact"]),
        created=row["created"],
    )


def _values(trunk: Trunk) -> tuple[object, ...]:
    return (
        trunk.name,
        trunk.host,
        trunk.port,
        trunk.transport,
        trunk.username,
        trunk.auth_user,
        trunk.password,
        trunk.from_user,
        trunk.from_domain,
        int(trunk.register),
        trunk.expires,
        ",".join(trunk.codecs),
        trunk.max_channels,
        trunk.caller_id,
        ",".join(trunk.inbound_networks),
        int(trunk.inbound_contact),
        trunk.created,
    )


class TrunkRepo:
    """The trunks table (migration 8)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, trunk: Trunk) -> Trunk:
        """Store a new trunk (validated, `created` set now).

        Raises: ConfigError (a bad field), AlreadyExistsError (the name is taken).
        """
        trunk = dataclasses.replace(check_trunk(trunk), created=self._clock())
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                f"INSERT INTO trunks ({_COLUMNS}) VALUES ({', '.join('?' * 17)})"
                " ON CONFLICT (name) DO NOTHING",
                _values(trunk),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"trunk {trunk.name!r} already exists")
        return trunk

    async def get(self, name: str) -> Trunk:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM trunks WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no trunk {name!r}")
        return _trunk(row)

    async def all(self) -> list[Trunk]:
        """Every trunk, by name."""
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM trunks ORDER BY name")
        return [_trunk(row) for row in rows]

    async def update(self, name: str, **changes: object) -> Trunk:
        """Change some fields of a trunk (names as in `Trunk`; not name or created).

        Raises: NotFoundError, ConfigError (a bad field or an unknown field name).
        """
        fields = {f.name for f in dataclasses.fields(Trunk)} - {"name", "created"}
        unknown = set(changes) - fields
        if unknown:
            raise ConfigError(f"unknown trunk field(s): {', '.join(sorted(unknown))}")
        async with self._db.transaction() as conn:
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM trunks WHERE name = ?", (name,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"no trunk {name!r}")
            trunk = check_trunk(dataclasses.replace(_trunk(row), **changes))  # type: ignore[arg-type]
            values = _values(trunk)
            names = [c.strip() for c in _COLUMNS.split(",")]
            sets = ", ".join(f"{c} = ?" for c in names[1:-1])
            await conn.execute(f"UPDATE trunks SET {sets} WHERE name = ?", (*values[1:-1], name))
        return trunk

    async def delete(self, name: str) -> None:
        """Delete a trunk that nothing names any more.

        Raises: NotFoundError; ConfigError naming what still sends calls through it
        (ring-group overflow, forwarding, IVR actions, outbound routes).
        """
        async with self._db.transaction() as conn:
            users = await trunk_references(conn, name)
            if users:
                raise ConfigError(
                    f"trunk {name!r} is still used by {'; '.join(users)}: change those first"
                )
            cur = await conn.execute("DELETE FROM trunks WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no trunk {name!r}")
