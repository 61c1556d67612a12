"""pbx.store.conferences: rooms, their hashed PINs, and their place in the numbering plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store import ConferenceRoom, RingGroup, Store
from pbx.store.numbering import Owner
from tests.interop.peers import pbx_cli


async def test_add_list_get_remove(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.conferences.add("8000", pin="4321", max_members=5)
        await store.conferences.add("8001")
        assert await store.conferences.list() == [
            ConferenceRoom("8000", True, 5),
            ConferenceRoom("8001", False, 10),
        ]
        assert await store.conferences.get("8001") == ConferenceRoom("8001", False, 10)
        assert await store.conferences.get("8002") is None
        await store.conferences.remove("8001")
        assert [r.number for r in await store.conferences.list()] == ["8000"]
        with pytest.raises(NotFoundError, match="no conference room 8001"):
            await store.conferences.remove("8001")


async def test_pin_is_hashed_and_checked(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.conferences.add("8000", pin="4321")
        await store.conferences.add("8001")
        assert await store.conferences.check_pin("8000", "4321")
        assert not await store.conferences.check_pin("8000", "1234")
        assert await store.conferences.check_pin("8001", "")  # no PIN: open
        assert not await store.conferences.check_pin("8009", "4321")  # no such room
        rows = await store._db.fetchall("SELECT pin_hash FROM conferences WHERE number = '8000'")
        assert "4321" not in str(rows[0][0]) and str(rows[0][0]).startswith("scrypt$")


@pytest.mark.parametrize(
    ("number", "pin", "members", "message"),
    [
        ("80a0", None, 10, "1 to 20 digits"),
        ("", None, 10, "1 to 20 digits"),
        ("8000", "12", 10, "PIN is 4 to 12 digits"),
        ("8000", "12ab", 10, "PIN is 4 to 12 digits"),
        ("8000", None, 1, "2 to 50 members"),
        ("8000", None, 51, "2 to 50 members"),
    ],
)
async def test_bad_values_are_refused(
    tmp_path: Path, number: str, pin: str | None, members: int, message: str
) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        with pytest.raises(ConfigError, match=message):
            await store.conferences.add(number, pin=pin, max_members=members)
        assert await store.conferences.list() == []


async def test_one_numbering_plan_with_users_ring_groups_and_codes(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.users.add("1001", "Secret-Password-1", "aiopbx")
        await store.conferences.add("8000")
        assert await store.numbering.owner("8000") == Owner("conference room", "8000", "8000")
        with pytest.raises(AlreadyExistsError, match="number 1001 is already taken by user 1001"):
            await store.conferences.add("1001")
        with pytest.raises(AlreadyExistsError, match="taken by conference room 8000"):
            await store.conferences.add("8000")
        with pytest.raises(AlreadyExistsError, match="taken by conference room 8000"):
            await store.users.add("8000", "Secret-Password-2", "aiopbx")
        with pytest.raises(AlreadyExistsError, match="taken by conference room 8000"):
            await store.dialplan.add_ring_group(RingGroup("8000", ("1001",)))


def test_cli_add_list_del(tmp_path: Path) -> None:
    assert pbx_cli(tmp_path, "init").returncode == 0
    assert pbx_cli(tmp_path, "user", "add", "1001", "--password", "Xk3-secret-pass").returncode == 0
    added = pbx_cli(tmp_path, "conf", "add", "8000", "--pin", "4321", "--max", "5")
    assert (added.returncode, added.stdout) == (0, "conference room 8000 added (with PIN)\n")
    assert pbx_cli(tmp_path, "conf", "add", "8001").returncode == 0
    clash = pbx_cli(tmp_path, "conf", "add", "1001")
    assert clash.returncode == 1
    assert clash.stderr == "pbx: error: number 1001 is already taken by user 1001\n"
    listed = pbx_cli(tmp_path, "conf", "list")
    assert listed.stdout.splitlines() == ["NUMBER  PIN  MAX", "8000    yes  5", "8001    no   10"]
    assert pbx_cli(tmp_path, "conf", "del", "8001").returncode == 0
    gone = pbx_cli(tmp_path, "conf", "del", "8001")
    assert (gone.returncode, gone.stderr) == (1, "pbx: error: no conference room 8001\n")
    assert pbx_cli(tmp_path, "conf", "list").stdout.splitlines()[1:] == ["8000    yes  5"]
