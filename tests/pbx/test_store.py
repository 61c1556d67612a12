"""Tests of pbx.store: migrations, pragmas, users, bindings, durability."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError, StoreError
from pbx.store import MIGRATIONS, REALM_KEY, Binding, Store
from pbx.store.dialplan import Forwarding

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-Horse-7"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def binding(
    aor: str = "sip:1001@pbx", contact: str = "sip:1001@10.0.0.5:5062", **kw: object
) -> Binding:
    fields: dict[str, object] = {
        "aor": aor,
        "contact": contact,
        "expires_at": 2000.0,
        "call_id": "cid-1",
        "cseq": 1,
        "user_agent": "Phone/1.0",
        "source": "UDP 10.0.0.5:5062",
    }
    fields.update(kw)
    return Binding(**fields)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "pbx.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(db_path, clock=lambda: 1234.5)
    try:
        yield s
    finally:
        await s.close()


# --- opening and migrations ---------------------------------------------------


async def test_open_creates_private_dir_and_file(db_path: Path, store: Store) -> None:
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert store.path == db_path


async def test_pragmas(db_path: Path, store: Store) -> None:
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    db = store._db
    assert [tuple(r) for r in await db.fetchall("PRAGMA synchronous")] == [(1,)]  # NORMAL
    assert [tuple(r) for r in await db.fetchall("PRAGMA foreign_keys")] == [(1,)]
    assert [tuple(r) for r in await db.fetchall("PRAGMA busy_timeout")] == [(5000,)]


async def test_migrations_are_idempotent(db_path: Path) -> None:
    for _ in range(3):
        s = await Store.open(db_path)
        assert await s.schema_version() == MIGRATIONS[-1][0]
        await s.close()
    raw = sqlite3.connect(db_path)
    try:
        versions = raw.execute("SELECT version FROM schema_migrations").fetchall()
    finally:
        raw.close()
    assert versions == [(n,) for n, _ in MIGRATIONS]


async def test_new_migration_applies_once_and_failed_one_rolls_back(db_path: Path) -> None:
    s = await Store.open(db_path)
    await s.close()
    last = MIGRATIONS[-1][0]
    extra = (last + 1, "CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (7);")
    s = await Store.open(db_path, migrations=(*MIGRATIONS, extra))
    assert await s.schema_version() == last + 1
    assert [tuple(r) for r in await s._db.fetchall("SELECT x FROM extra")] == [(7,)]
    await s.close()

    broken = (last + 2, "CREATE TABLE half (x INTEGER); INSERT INTO missing VALUES (1);")
    with pytest.raises(StoreError, match=f"migration {last + 2} failed"):
        await Store.open(db_path, migrations=(*MIGRATIONS, extra, broken))
    raw = sqlite3.connect(db_path)
    try:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = raw.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    finally:
        raw.close()
    assert "half" not in tables
    assert versions == [*((n,) for n, _ in MIGRATIONS), (last + 1,)]


async def test_database_newer_than_code_is_refused(db_path: Path) -> None:
    s = await Store.open(db_path)
    await s.close()
    raw = sqlite3.connect(db_path)
    raw.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match=r"schema version 99, newer than this aiopbx understands"):
        await Store.open(db_path)


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not an SQLite database, just some text" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite3"):
        await Store.open(path)


async def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the database"):
        await Store.open(tmp_path / "file" / "pbx.sqlite3")


# --- settings -------------------------------------------------------------------


async def test_settings(store: Store) -> None:
    assert await store.settings.get("secret") is None
    assert await store.settings.set_default("secret", "s1") == "s1"
    assert await store.settings.set_default("secret", "s2") == "s1"
    await store.settings.set("realm", "office")
    await store.settings.set("realm", "house")
    assert await store.settings.items() == {"realm": "house", "secret": "s1"}
    assert await store.settings.delete("secret") is True
    assert await store.settings.delete("secret") is False
    assert await store.settings.get("secret") is None


# --- users ----------------------------------------------------------------------


async def test_add_and_get_user_stores_ha1_not_password(db_path: Path, store: Store) -> None:
    user = await store.users.add("1001", PASSWORD, "office", display_name="Alice")
    assert user.username == "1001"
    assert user.display_name == "Alice"
    assert user.realm == "office"
    assert user.created == 1234.5
    assert user.ha1_md5 == md5(f"1001:office:{PASSWORD}")
    assert user.ha1_sha256 == sha256(f"1001:office:{PASSWORD}")
    assert await store.users.get("1001") == user
    assert PASSWORD.encode() not in db_path.read_bytes() + _wal(db_path)


def _wal(db_path: Path) -> bytes:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


async def test_first_user_fixes_the_realm(store: Store) -> None:
    await store.users.add("1001", PASSWORD, "office")
    assert await store.settings.get(REALM_KEY) == "office"
    with pytest.raises(ConfigError, match="not the server's realm 'office'"):
        await store.users.add("1002", PASSWORD, "elsewhere")
    assert [u.username for u in await store.users.list()] == ["1001"]


async def test_add_rejects_duplicates_and_bad_input(store: Store) -> None:
    await store.settings.set(REALM_KEY, "office")
    await store.users.add("1001", PASSWORD, "office")
    with pytest.raises(AlreadyExistsError, match="user '1001' already exists"):
        await store.users.add("1001", PASSWORD, "office")
    with pytest.raises(ConfigError, match="username"):
        await store.users.add("-x", PASSWORD, "office")
    with pytest.raises(ConfigError, match="shorter than 10"):
        await store.users.add("1002", "short1A", "office")
    with pytest.raises(ConfigError, match="empty or has a quote"):
        await store.users.add("1002", PASSWORD, 'off"ice')
    with pytest.raises(ConfigError, match="display name"):
        await store.users.add("1002", PASSWORD, "office", display_name="x" * 65)
    assert await store.users.count() == 1


async def test_list_set_password_delete(store: Store) -> None:
    await store.users.add("1002", PASSWORD, "office")
    await store.users.add("1001", PASSWORD, "office", display_name="  ")
    users = await store.users.list()
    assert [(u.username, u.display_name) for u in users] == [("1001", None), ("1002", None)]

    updated = await store.users.set_password("1001", "new-Secret-99", "office")
    assert updated.ha1_md5 == md5("1001:office:new-Secret-99")
    assert updated.ha1_sha256 == sha256("1001:office:new-Secret-99")
    assert (await store.users.get("1001")).ha1_md5 == updated.ha1_md5
    with pytest.raises(NotFoundError, match="no user 'nobody'"):
        await store.users.set_password("nobody", "new-Secret-99", "office")

    await store.users.delete("1002")
    with pytest.raises(NotFoundError):
        await store.users.get("1002")
    with pytest.raises(NotFoundError, match="no user '1002'"):
        await store.users.delete("1002")
    assert await store.users.count() == 1


async def test_delete_user_removes_its_bindings_only(store: Store) -> None:
    await store.users.add("1001", PASSWORD, "office")
    await store.bindings.save(
        [
            binding("1001", "sip:a@1"),
            binding("1001", "sip:b@1"),
            binding("10010", "sip:c@1"),
            binding("1001x", "sip:d@1"),
        ]
    )
    await store.users.delete("1001")
    assert [b.aor for b in await store.bindings.all()] == ["10010", "1001x"]


async def test_ha1_table_follows_the_realm(store: Store) -> None:
    await store.users.add("1001", PASSWORD, "office")
    await store.users.add("1002", "other-Pass-12", "office")
    assert await store.users.ha1_table() == {
        "1001": (md5(f"1001:office:{PASSWORD}"), sha256(f"1001:office:{PASSWORD}")),
        "1002": (md5("1002:office:other-Pass-12"), sha256("1002:office:other-Pass-12")),
    }
    await store.settings.set(REALM_KEY, "newrealm")
    assert await store.users.ha1_table() == {}
    await store.users.set_password("1002", "other-Pass-12", "newrealm")
    assert await store.users.ha1_table() == {
        "1002": (md5("1002:newrealm:other-Pass-12"), sha256("1002:newrealm:other-Pass-12")),
    }


# --- bindings -------------------------------------------------------------------


async def test_binding_key_defaults_to_contact() -> None:
    b = binding(contact="sip:x@1")
    assert b.contact_uri == "sip:x@1"
    assert b.key == ("sip:1001@pbx", "sip:x@1")
    assert binding(contact="<sip:x@1>;q=0.5", contact_uri="sip:x@1").key[1] == "sip:x@1"


async def test_bindings_round_trip_upsert_and_remove(store: Store) -> None:
    full = binding(
        "sip:1001@pbx",
        "sip:1001@10.0.0.5:5062;transport=tcp",
        instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
        reg_id=1,
        q=0.7,
        path="<sip:edge@10.0.0.1;lr>",
        contact_uri="sip:1001@10.0.0.5:5062;transport=tcp",
    )
    other = binding("sip:1001@pbx", "sip:1001@10.0.0.6", user_agent=None)
    await store.bindings.save([full, other], [])
    assert await store.bindings.for_aor("sip:1001@pbx") == [full, other]

    refreshed = binding(
        "sip:1001@pbx", "sip:1001@10.0.0.6", expires_at=3000.0, cseq=2, user_agent="New/2"
    )
    await store.bindings.save([refreshed], [full.key])
    assert await store.bindings.all() == [refreshed]
    assert await store.bindings.for_aor("sip:nobody@pbx") == []


async def test_save_applies_removals_before_changes(store: Store) -> None:
    b = binding()
    await store.bindings.save([b], [b.key])
    assert await store.bindings.all() == [b]
    newer = binding(cseq=9)
    await store.bindings.save([binding(cseq=5), newer], [])
    assert await store.bindings.all() == [newer]


async def test_save_hundreds_in_one_call(store: Store) -> None:
    batch = [binding(f"sip:{n}@pbx", f"sip:{n}@10.0.{n // 256}.{n % 256}") for n in range(600)]
    await store.bindings.save(batch, [])
    assert len(await store.bindings.all()) == 600
    await store.bindings.save([], [b.key for b in batch[:550]])
    assert await store.bindings.all() == sorted(batch[550:], key=lambda b: b.key)


async def test_save_is_atomic(store: Store) -> None:
    bad = binding("sip:9@pbx", cseq="not a number")  # STRICT table refuses TEXT in cseq
    with pytest.raises(StoreError):
        await store.bindings.save([binding("sip:8@pbx"), bad], [])
    assert await store.bindings.all() == []


async def test_purge_expired(store: Store) -> None:
    await store.bindings.save(
        [
            binding("sip:1@pbx", expires_at=99.0),
            binding("sip:2@pbx", expires_at=100.0),
            binding("sip:3@pbx", expires_at=100.5),
        ]
    )
    assert await store.bindings.purge_expired(100.0) == 2
    assert [b.aor for b in await store.bindings.all()] == ["sip:3@pbx"]
    assert await store.bindings.purge_expired(100.0) == 0


async def test_concurrent_writers_share_the_connection(store: Store) -> None:
    await asyncio.gather(
        *(store.bindings.save([binding(f"sip:{n}@pbx")], []) for n in range(20)),
        *(store.settings.set(f"k{n}", str(n)) for n in range(20)),
    )
    assert len(await store.bindings.all()) == 20
    assert len(await store.settings.items()) == 20


# --- other connections and processes -------------------------------------------


async def test_second_connection_sees_commits_and_data_version(db_path: Path, store: Store) -> None:
    other = await Store.open(db_path)
    try:
        before = await store.data_version()
        await store.users.add("1001", PASSWORD, "office")  # own write: no change
        assert await store.data_version() == before
        assert [u.username for u in await other.users.list()] == ["1001"]

        await other.users.add("1002", PASSWORD, "office")
        after = await store.data_version()
        assert after != before
        assert [u.username for u in await store.users.list()] == ["1001", "1002"]
        assert await store.data_version() == after
    finally:
        await other.close()


async def test_rows_survive_sigkill_right_after_save(db_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, signal, sys
        from pathlib import Path
        from pbx.store import Binding, Store

        async def main() -> None:
            store = await Store.open(Path(sys.argv[1]))
            await store.users.add("1001", "correct-Horse-7", "office")
            await store.bindings.save(
                [Binding(f"sip:{n}@pbx", f"sip:{n}@h", 5000.0, "c", 1, None, "UDP h:1")
                 for n in range(300)],
                [],
            )
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    store = await Store.open(db_path)
    try:
        assert len(await store.bindings.all()) == 300
        assert [u.username for u in await store.users.list()] == ["1001"]
    finally:
        await store.close()


async def test_hot_reads_are_kept_until_a_write_or_a_change_elsewhere(
    db_path: Path, store: Store
) -> None:
    """Forwarding, conference rooms and the IVR document are read for every call and
    kept in memory: the store's own writes show at once; another process's write shows
    once `forget_cached` is called (the server does when PRAGMA data_version moves)."""
    await store.users.add("1001", PASSWORD, "office")
    await store.users.add("1002", PASSWORD, "office")
    assert (await store.dialplan.forwarding("1001")).busy is None
    await store.dialplan.set_forwarding(Forwarding("1001", busy="1002"))
    assert (await store.dialplan.forwarding("1001")).busy == "1002"  # own write: at once
    assert await store.conferences.get("850") is None
    await store.conferences.add("850")
    assert (await store.conferences.get("850")) is not None
    await store.ivr.put('[menus.main]\nnumber = "800"\n')
    assert "800" in await store.ivr.get()
    assert await store.conferences.get("850") is not None  # read again after the last write
    assert (await store.dialplan.forwarding("1001")).busy == "1002"

    other = await Store.open(db_path)  # e.g. `pbx` in another process
    try:
        version = await store.data_version()
        await other.conferences.remove("850")
        await other.dialplan.set_forwarding(Forwarding("1001", no_answer="1002"))
        await other.ivr.clear()
    finally:
        await other.close()
    assert await store.conferences.get("850") is not None  # kept: not read again yet
    assert await store.data_version() != version  # what the server's watch sees
    store.forget_cached()
    assert await store.conferences.get("850") is None
    forwarding = await store.dialplan.forwarding("1001")
    assert (forwarding.busy, forwarding.no_answer) == (None, "1002")
    assert await store.ivr.get() == ""
    await store.users.delete("1001")
    assert (await store.dialplan.forwarding("1001")).no_answer is None  # gone with the user
