"""The trunks repository (migration 8) and its validation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store import Store, Trunk
from pbx.store.trunks import parse_host_port


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: 1000.0)
    try:
        yield s
    finally:
        await s.close()


async def test_add_get_list_update_delete(store: Store) -> None:
    assert await store.schema_version() >= 8
    added = await store.trunks.add(
        Trunk(
            "prov1",
            "sip.provider.example",
            5080,
            "UDP",
            username="4420000",
            password="pw",
            register=True,
            codecs=("pcma", "PCMU", "pcma"),
            inbound_networks=("192.0.2.7/24", "198.51.100.1"),
        )
    )
    assert added.transport == "udp" and added.codecs == ("PCMA", "PCMU")
    assert added.inbound_networks == ("192.0.2.0/24", "198.51.100.1/32")
    assert added.created == 1000.0 and added.login == "4420000"
    assert await store.trunks.get("prov1") == added
    await store.trunks.add(Trunk("a-site", "127.0.0.1"))
    assert [t.name for t in await store.trunks.all()] == ["a-site", "prov1"]
    changed = await store.trunks.update("prov1", auth_user="auth1", max_channels=4, port=5090)
    assert changed.login == "auth1" and changed.max_channels == 4 and changed.port == 5090
    assert await store.trunks.get("prov1") == changed
    await store.trunks.delete("prov1")
    with pytest.raises(NotFoundError, match="no trunk 'prov1'"):
        await store.trunks.get("prov1")
    with pytest.raises(NotFoundError):
        await store.trunks.delete("prov1")
    with pytest.raises(NotFoundError):
        await store.trunks.update("prov1", port=1)


async def test_duplicate_and_bad_fields_are_refused(store: Store) -> None:
    await store.trunks.add(Trunk("t1", "10.0.0.1"))
    with pytest.raises(AlreadyExistsError, match="trunk 't1' already exists"):
        await store.trunks.add(Trunk("t1", "10.0.0.2"))
    bad = [
        (Trunk("bad name", "h"), "trunk name"),
        (Trunk("t2", "not a host"), "not an IP address or host name"),
        (Trunk("t2", "h", 70000), "port 70000"),
        (Trunk("t2", "h", transport="sctp"), "transport 'sctp'"),
        (Trunk("t2", "h", codecs=("G729",)), "unknown codec 'G729'"),
        (Trunk("t2", "h", register=True), "needs a username"),
        (Trunk("t2", "h", username="a b"), "not a valid SIP user name"),
        (Trunk("t2", "h", password="a\nb"), "line breaks"),
        (Trunk("t2", "h", inbound_networks=("10.0.0.300",)), "not an IP address or CIDR"),
        (Trunk("t2", "h", expires=5), "expires 5"),
        (Trunk("t2", "h", max_channels=-1), "max channels"),
    ]
    for trunk, message in bad:
        with pytest.raises(ConfigError, match=message):
            await store.trunks.add(trunk)
    with pytest.raises(ConfigError, match="unknown trunk field"):
        await store.trunks.update("t1", colour="red")
    with pytest.raises(ConfigError, match="transport"):
        await store.trunks.update("t1", transport="tls")
    assert (await store.trunks.get("t1")).transport == "udp"


async def test_database_file_is_private(store: Store) -> None:
    await store.trunks.add(Trunk("t1", "10.0.0.1", username="u", password="secret"))
    assert os.stat(store.path).st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip.example.com", ("sip.example.com", 5060)),
        ("sip.example.com:5080", ("sip.example.com", 5080)),
        ("127.0.0.1:5070", ("127.0.0.1", 5070)),
        ("[::1]:5062", ("::1", 5062)),
        ("::1", ("::1", 5060)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "host:", "host:0", "host:99999", "host:abc", "[::1", "[::1]x", "bad_host!", "1.2.3"],
)
def test_parse_host_port_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_host_port(text)
