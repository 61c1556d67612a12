"""Voicemail rows and mailbox PINs in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.errors import ConfigError, NotFoundError
from pbx.store import Store
from pbx.store.voicemail import hash_pin, pin_matches


async def _store(tmp_path: Path) -> Store:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.users.add("1002", "Correct-Horse-77", realm="pbx")
    return store


async def test_messages_counts_move_delete(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        assert await store.voicemail.counts("1002") == (0, 0)
        a = await store.voicemail.add("1002", "1001", 100.0, 4.5, "/vm/a.wav")
        b = await store.voicemail.add("1002", "1003", 200.0, 2.0, "/vm/b.wav")
        assert await store.voicemail.counts("1002") == (2, 0)
        assert await store.voicemail.move(a, "old")
        assert await store.voicemail.counts("1002") == (1, 1)
        # New messages come before old ones.
        assert [m.id for m in await store.voicemail.messages("1002")] == [b, a]
        assert [m.id for m in await store.voicemail.messages("1002", "old")] == [a]
        gone = await store.voicemail.delete(a)
        assert gone is not None and gone.path == "/vm/a.wav"
        assert await store.voicemail.delete(a) is None
        assert await store.voicemail.counts("1002") == (1, 0)
        with pytest.raises(NotFoundError):
            await store.voicemail.add("9999", "1001", 1.0, 1.0, "/vm/x.wav")
        # Deleting the user takes the box's rows with it.
        await store.users.delete("1002")
        assert await store.voicemail.messages() == []
    finally:
        await store.close()


async def test_pin_is_hashed_and_checked(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        assert not await store.voicemail.has_pin("1002")
        assert not await store.voicemail.check_pin("1002", "")
        await store.voicemail.set_pin("1002", "4711")
        assert await store.voicemail.has_pin("1002")
        assert await store.voicemail.check_pin("1002", "4711")
        assert not await store.voicemail.check_pin("1002", "4712")
        for bad in ("12", "12a4", "1234567890123", "１２３４"):
            with pytest.raises(ConfigError):
                await store.voicemail.set_pin("1002", bad)
        with pytest.raises(NotFoundError):
            await store.voicemail.set_pin("9999", "4711")
    finally:
        await store.close()
    raw = (tmp_path / "pbx.sqlite3").read_bytes()
    assert b"4711" not in raw


def test_pin_hash_is_salted() -> None:
    one, two = hash_pin("4711"), hash_pin("4711")
    assert one != two
    assert pin_matches("4711", one) and pin_matches("4711", two)
    assert not pin_matches("4711", "garbage")
