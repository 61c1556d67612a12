"""Trusted networks: address blocks never banned as a whole for failed logins.

`pbx trust add/list/del` edit them; the running server reads them at start and again
whenever another process changes the database (as it does for users). Each row is a
network in its normal form (`192.168.1.7/24` is stored as `192.168.1.0/24`).
"""

from __future__ import annotations

from collections.abc import Callable

from pbx.bans import parse_network
from pbx.errors import AlreadyExistsError
from pbx.store.database import Database


class TrustRepo:
    """The trusted networks, as normalized CIDR text."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, network: str) -> str:
        """Store `network` (an address or CIDR block); returns its normal form.

        Raises:
            ConfigError: not an address or network.
            AlreadyExistsError: that network is already trusted.
        """
        cidr = str(parse_network(network))
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO trusted_networks (cidr, created) VALUES (?, ?)"
                " ON CONFLICT (cidr) DO NOTHING",
                (cidr, self._clock()),
            )
            if cur.rowcount == 0:
                raise AlreadyExistsError(f"{cidr} is already trusted")
        return cidr

    async def delete(self, network: str) -> str | None:
        """Remove `network` (in any spelling of it); its normal form, or None when it was
        not trusted. Raises: ConfigError for text that is no network."""
        cidr = str(parse_network(network))
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM trusted_networks WHERE cidr = ?", (cidr,))
            return cidr if cur.rowcount > 0 else None

    async def all(self) -> list[str]:
        """Every trusted network, in the order they were added."""
        rows = await self._db.fetchall("SELECT cidr FROM trusted_networks ORDER BY created, cidr")
        return [str(row[0]) for row in rows]
