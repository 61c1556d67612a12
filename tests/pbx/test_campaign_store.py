"""Campaigns, contacts, do-not-call lists and dial attempts in the store (migration 16)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.errors import ConfigError, NotFoundError
from pbx.store import Campaign, DialAttempt, NewContact, Store
from pbx.store.campaigns import coerce, parse_retries
from pbx.store.dispositions import is_do_not_call

NOW = 1_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: NOW)
    try:
        yield s
    finally:
        await s.close()


def campaign(**kw: object) -> Campaign:
    values: dict[str, object] = {"name": "spring", "caller_id": "+442071234567", "queue": "sales"}
    values.update(kw)
    return Campaign(**values)  # type: ignore[arg-type]


async def test_create_get_update_state(store: Store) -> None:
    made = await store.campaigns.create(campaign(trunk="trunk:prov", mode="predictive"))
    assert (made.created, made.state, made.ring_timeout, made.amd) == (NOW, "stopped", 25.0, True)
    got = await store.campaigns.get("spring")
    assert got == made
    changed = await store.campaigns.update("spring", {"ring_timeout": 20.0, "amd": False})
    assert (changed.ring_timeout, changed.amd) == (20.0, False)
    assert (await store.campaigns.get("spring")).amd is False
    running = await store.campaigns.set_state("spring", "running")
    assert running.state == "running"
    assert [c.name for c in await store.campaigns.all()] == ["spring"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ring_timeout": 14.9}, "ring timeout must be at least 15 s"),
        ({"window_start": "21:00", "window_end": "09:00"}, "must start before it ends"),
        ({"window_start": "9am"}, "write HH:MM"),
        ({"mode": "blast"}, "mode 'blast'"),
        ({"queue": ""}, "needs the queue"),
        ({"retries": '{"busy": [60]}'}, "[delay seconds, max attempts]"),
        ({"retries": '{"sale": [60, 1]}'}, "retry rule for 'sale'"),
        ({"machine_policy": "message"}, "needs the message"),
        ({"caller_id": "anonymous"}, "can be called back"),
        ({"abandon_target": 0.0}, "abandon target"),
        ({"name": "bad name"}, "campaign name"),
        ({"trunk": "prov"}, "trunk:NAME"),
    ],
)
async def test_bad_settings_are_refused(
    store: Store, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        await store.campaigns.create(campaign(**changes))
    assert await store.campaigns.all() == []


async def test_table_checks_hold_against_other_writers(store: Store, tmp_path: Path) -> None:
    await store.campaigns.create(campaign())
    with sqlite3.connect(tmp_path / "pbx.sqlite3") as raw, pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE campaigns SET ring_timeout = 10 WHERE name = 'spring'")


async def test_unknown_and_duplicate(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.campaigns.get("nope")
    await store.campaigns.create(campaign())
    with pytest.raises(ConfigError, match="exists already"):
        await store.campaigns.create(campaign())
    with pytest.raises(NotFoundError):
        await store.campaigns.update("nope", {"max_lines": 3})


def test_retries_and_coerce() -> None:
    assert parse_retries('{"busy": [600, 3], "machine": [3600.5, 1]}') == {
        "busy": (600.0, 3),
        "machine": (3600.5, 1),
    }
    assert coerce("ring_timeout", "30") == 30.0
    assert coerce("amd", "off") is False
    assert coerce("max_lines", "4") == 4
    with pytest.raises(ConfigError, match="is not a int"):
        coerce("max_lines", "four")
    with pytest.raises(ConfigError, match="unknown setting"):
        coerce("state", "running")


async def test_contacts_due_claim_settle_recover(store: Store) -> None:
    await store.campaigns.create(campaign())
    added = await store.contacts.add_many(
        "spring",
        [
            NewContact("+14155550100", fields={"name": "Ann"}),
            NewContact("+442071234500", "Europe/London"),
        ],
    )
    assert added == (2, 0)
    again = await store.contacts.add_many(
        "spring", [NewContact("+14155550100", fields={"name": "Anne"})]
    )
    assert again == (0, 1)
    due = await store.contacts.due("spring", NOW)
    assert [c.number for c in due] == ["+14155550100", "+442071234500"]
    assert due[0].fields == {"name": "Anne"}
    assert await store.contacts.claim(due[0].id)
    assert not await store.contacts.claim(due[0].id)  # dialling already
    await store.contacts.settle(due[0].id, "pending", outcome="busy", next_try=NOW + 600)
    first = await store.contacts.get(due[0].id)
    assert (first.state, first.attempts, first.last_outcome, first.next_try) == (
        "pending",
        1,
        "busy",
        NOW + 600,
    )
    assert [c.id for c in await store.contacts.due("spring", NOW)] == [due[1].id]
    assert await store.contacts.next_due("spring") == 0.0
    assert await store.contacts.claim_many([due[1].id, due[0].id]) == [due[1].id, due[0].id]
    assert await store.contacts.claim_many([due[1].id]) == []
    assert await store.contacts.recover("spring") == 2  # a killed server left it dialling
    assert (await store.contacts.counts("spring"))["pending"] == 2
    with pytest.raises(NotFoundError):
        await store.contacts.add_many("nope", [NewContact("+14155550100")])


async def test_dnc_global_and_per_campaign(store: Store) -> None:
    assert await store.dnc.add("+14155550100", source="cli")
    assert not await store.dnc.add("+14155550100")
    assert await store.dnc.add("+14155550101", "spring")
    listed = await store.dnc.listed("+14155550100", "other")
    assert listed is not None and listed.campaign == ""
    assert await store.dnc.listed("+14155550101", "spring") is not None
    assert await store.dnc.listed("+14155550101", "other") is None
    assert await store.dnc.listed_among(
        ["+14155550100", "+14155550101", "+14155550102"], "spring"
    ) == {"+14155550100", "+14155550101"}
    assert await store.dnc.listed_among(["+14155550101"], "other") == set()
    await store.dnc.delete("+14155550101", "spring")
    with pytest.raises(NotFoundError):
        await store.dnc.delete("+14155550101", "spring")
    with pytest.raises(ConfigError, match=r"E\.164"):
        await store.dnc.add("4155550100")


async def test_attempts_round_trip(store: Store) -> None:
    a = DialAttempt(
        "spring",
        "+14155550100",
        10.0,
        30.0,
        "connected",
        answered_at=14.0,
        amd="human",
        amd_decided_at=15.1,
        amd_ms=1100,
        agent="1001",
        connected_at=15.9,
        wait_to_agent=1.9,
        call_id="c1",
    )
    id_ = await store.attempts.add(a)
    [got] = await store.attempts.of_campaign("spring")
    assert got.id == id_ and got == DialAttempt(**{**a.to_json(), "id": id_})
    assert await store.attempts.of_number("+14155550100", since=11.0) == []
    with pytest.raises(ConfigError):
        await store.attempts.add(DialAttempt("spring", "+1", 0, 0, "sale"))


@pytest.mark.parametrize(
    ("code", "dnc"),
    [
        ("Do Not Call", True),
        ("dnc", True),
        ("do_not_call", True),
        ("sale", False),
        ("callback", False),
    ],
)
def test_do_not_call_codes(code: str, dnc: bool) -> None:
    assert is_do_not_call(code) is dnc


async def test_do_not_call_disposition_adds_the_number(store: Store) -> None:
    await store.attempts.add(
        DialAttempt("spring", "+14155550123", 1.0, 2.0, "connected", call_id="c9")
    )
    await store.dispositions.add("c9", "1001", "Do not call")
    listed = await store.dnc.listed("+14155550123")
    assert listed is not None and listed.source == "disposition by 1001"
    await store.dispositions.add("c10", "1001", "sale")
    assert len(await store.dnc.all()) == 1


async def test_survives_reopen(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: NOW) as s:
        await s.campaigns.create(campaign())
        await s.dnc.add("+14155550100")
    async with await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: NOW) as s:
        assert (await s.campaigns.get("spring")).queue == "sales"
        assert await s.dnc.listed("+14155550100") is not None


async def test_a_scheduled_callback_is_retried_and_recovered(store: Store) -> None:
    """The dialer's callback states: one that did not reach the person is pending again
    at its retry time; one a killed server left dialling is pending again at start."""
    repo = store.scheduled_callbacks
    await store.users.add("1001", "Secret-pass-abcd", "aiopbx")
    first = await repo.add("+441632960001", NOW, "1001", queue="sales")
    second = await repo.add("+441632960002", NOW, "1001", queue="sales")
    for cb in (first, second):
        await repo.set_state(cb.id, "dialling")
    await repo.retry(first.id, NOW + 600)
    again = await repo.get(first.id)
    assert (again.state, again.due) == ("pending", NOW + 600)
    assert [c.id for c in await repo.due(NOW + 599)] == []
    assert [c.id for c in await repo.due(NOW + 600)] == [first.id]
    assert await repo.recover() == 1  # the second, left dialling
    assert (await repo.get(second.id)).state == "pending"
    assert await repo.recover() == 0
    await repo.set_state(second.id, "done")
    with pytest.raises(ConfigError, match="done already"):
        await repo.retry(second.id, NOW + 900)
