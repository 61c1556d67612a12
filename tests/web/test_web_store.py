"""The web console's repositories (migration 15): customers and offers, tickets with
notes/calls/articles and states, dispositions, the FTS5 knowledge base, sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.errors import ConfigError, NotFoundError
from pbx.store import CustomerFields, Store
from pbx.store.kb import fts_query
from pbx.store.tickets import DEFAULT_TARGET, check_transition


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock()
    store = await Store.open(tmp_path / "pbx.sqlite3", clock=clock)
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", "Xk3-secret-pass", "aiopbx")
    try:
        yield store, clock
    finally:
        await store.close()


async def test_customers_upsert_by_number_and_match_callers(
    clocked: tuple[Store, Clock],
) -> None:
    store, clock = clocked
    ada = await store.customers.add(CustomerFields("+442079460123", "Ada", "Engines"))
    clock.now = 1010.0
    stored, added = await store.customers.upsert_many(
        [CustomerFields("+442079460123", "Ada L.", "Engines"), CustomerFields("+14155550100", "G")]
    )
    assert added == 1 and stored[0].id == ada.id
    again = await store.customers.get(ada.id)
    assert (again.name, again.created, again.updated) == ("Ada L.", 1000.0, 1010.0)
    assert (await store.customers.for_caller("02079460123", "GB")) == again
    assert (await store.customers.for_caller("442079460123", "GB")) == again
    assert await store.customers.for_caller("2000", "GB") is None
    with pytest.raises(ConfigError, match=r"not in E\.164"):
        await store.customers.add(CustomerFields("02079460123", "X"))
    with pytest.raises(ConfigError, match="another customer"):
        await store.customers.update(stored[1].id, {"number": "+442079460123"})
    with pytest.raises(ConfigError, match="unknown customer fields: id"):
        await store.customers.update(ada.id, {"id": "3"})
    updated = await store.customers.update(ada.id, {"notes": "prefers e-mail"})
    assert updated.notes == "prefers e-mail" and updated.name == "Ada L."


async def test_offers_say_which_agent_may_read_a_customer(clocked: tuple[Store, Clock]) -> None:
    store, _ = clocked
    ada = await store.customers.add(CustomerFields("+442079460123", "Ada"))
    bob = await store.customers.add(CustomerFields("+442079460124", "Bob"))
    await store.customers.offered(ada.id, "1001", "call-1", "sales", 1000.0)
    await store.customers.offered(ada.id, "1001", "call-1", "sales", 1000.0)  # once only
    assert await store.customers.was_offered(ada.id, "1001")
    assert not await store.customers.was_offered(bob.id, "1001")
    assert not await store.customers.was_offered(ada.id, "1002")
    assert await store.customers.offered_to("1001", [ada.id, bob.id]) == {ada.id}
    [offer] = await store.customers.offers(ada.id)
    assert (offer.agent, offer.call_id, offer.queue) == ("1001", "call-1", "sales")


async def test_ticket_timer_states_notes_calls_articles(clocked: tuple[Store, Clock]) -> None:
    store, clock = clocked
    ada = await store.customers.add(CustomerFields("+442079460123", "Ada"))
    await store.tickets.set_target("support", 900.0)
    ticket = await store.tickets.open(
        "1001", " Printer on fire ", customer=ada.id, queue="support", call_id="call-1"
    )
    assert (ticket.subject, ticket.state, ticket.opened_at, ticket.target) == (
        "Printer on fire",
        "open",
        1000.0,
        900.0,
    )
    other = await store.tickets.open("1001", "By hand")
    assert other.target == DEFAULT_TARGET and other.calls == ()
    clock.now = 1042.5
    assert ticket.elapsed(clock.now) == 42.5
    await store.tickets.add_note(ticket.id, "1001", "asked for the model")
    article, _ = await store.kb.put("Printer fires", "Unplug it.", ["support"])
    await store.tickets.link_article(ticket.id, article.id)
    await store.tickets.link_article(ticket.id, article.id)
    await store.tickets.add_call(ticket.id, "call-2", "1005")
    await store.tickets.add_call(ticket.id, "call-1", "1006")  # escalated: a second agent
    await store.tickets.add_call(ticket.id, "call-1", "1006")  # once
    escalated = await store.tickets.set_state(ticket.id, "escalated")
    assert escalated.state == "escalated" and escalated.solved_at is None
    assert [n.body for n in escalated.notes] == ["asked for the model"]
    assert escalated.calls == (("call-1", "1001"), ("call-2", "1005"), ("call-1", "1006"))
    assert escalated.articles == (article.id,)
    assert await store.tickets.involves(ticket.id, "1005")
    assert not await store.tickets.involves(ticket.id, "1002")
    assert [t.id for t in await store.tickets.for_agent("1005")] == [ticket.id]
    assert [t.id for t in await store.tickets.for_call("call-2")] == [ticket.id]
    clock.now = 1100.0
    solved = await store.tickets.set_state(ticket.id, "solved")
    assert (solved.solved_at, solved.elapsed(5000.0)) == (1100.0, 100.0)
    with pytest.raises(ConfigError, match="only be reopened"):
        await store.tickets.set_state(ticket.id, "pending")
    with pytest.raises(NotFoundError):
        await store.tickets.add_note(999, "1001", "x")
    with pytest.raises(NotFoundError, match="no article 77"):
        await store.tickets.link_article(ticket.id, 77)
    with pytest.raises(ConfigError, match="subject is empty"):
        await store.tickets.open("1001", "  ")


@pytest.mark.parametrize(
    ("current", "new", "ok"),
    [
        ("open", "pending", True),
        ("pending", "escalated", True),
        ("escalated", "solved", True),
        ("solved", "open", True),
        ("solved", "escalated", False),
        ("open", "closed", False),
    ],
)
def test_ticket_transitions(current: str, new: str, ok: bool) -> None:
    if ok:
        check_transition(current, new)
    else:
        with pytest.raises(ConfigError):
            check_transition(current, new)


async def test_dispositions(clocked: tuple[Store, Clock]) -> None:
    store, _ = clocked
    ticket = await store.tickets.open("1001", "x")
    d = await store.dispositions.add(
        "call-1", "1001", "resolved", queue="support", note="ok", ticket=ticket.id
    )
    assert [x.id for x in await store.dispositions.for_call("call-1")] == [d.id]
    assert [x.code for x in await store.dispositions.between(0, 2000)] == ["resolved"]
    assert await store.dispositions.between(2000, 3000) == []
    with pytest.raises(ConfigError, match="disposition '<b>'"):
        await store.dispositions.add("call-1", "1001", "<b>")
    with pytest.raises(ConfigError, match="no such customer or ticket"):
        await store.dispositions.add("call-1", "1001", "sale", customer=42)


async def test_kb_full_text_search_updates_and_safe_queries(
    clocked: tuple[Store, Clock],
) -> None:
    store, _ = clocked
    refund, created = await store.kb.put("Refunds", "A refund takes **5 days**.", ["billing"])
    assert created
    await store.kb.put("Passwords", "Reset a password from the portal.", ["account"])
    assert [a.title for a in await store.kb.search("refund")] == ["Refunds"]
    assert [a.title for a in await store.kb.search("pass")] == ["Passwords"]  # a prefix
    assert await store.kb.search("refund portal") == []  # every word must match
    same, created = await store.kb.put("Refunds", "Refunds take ten working days.", ["billing"])
    assert (same.id, created) == (refund.id, False)
    assert [a.title for a in await store.kb.search("working")] == ["Refunds"]
    assert await store.kb.search("days 5") == []  # the old body left the index
    for hostile in ['"', "title:x", "NEAR(a b)", "a OR", "*", "-x", ")"]:
        await store.kb.search(hostile)  # never an FTS5 syntax error
    assert [a.title for a in await store.kb.tagged(["Billing", "sales"])] == ["Refunds"]
    await store.kb.delete(refund.id)
    assert await store.kb.search("refund") == []
    with pytest.raises(ConfigError, match="tag"):
        await store.kb.put("T", "b", ["<script>"])


@pytest.mark.parametrize(
    ("text", "query"),
    [("Refund policy", '"refund"* "policy"*'), ('x" OR 1', '"x"* "or"* "1"*'), ("!!", "")],
)
def test_fts_query(text: str, query: str) -> None:
    assert fts_query(text) == query


async def test_sessions_store_only_a_hash_and_expire(clocked: tuple[Store, Clock]) -> None:
    store, clock = clocked
    await store.web_sessions.create("tok-secret", "1001", "csrf-1", 60.0)
    session = await store.web_sessions.get("tok-secret")
    assert session is not None and (session.username, session.csrf) == ("1001", "csrf-1")
    assert await store.web_sessions.get("tok-other") is None
    raw = store.path.read_bytes() + store.path.with_name(store.path.name + "-wal").read_bytes()
    assert b"tok-secret" not in raw
    clock.now += 61
    assert await store.web_sessions.get("tok-secret") is None
    await store.web_sessions.create("tok-2", "1001", "c", 60.0)
    await store.web_sessions.delete("tok-2")
    assert await store.web_sessions.get("tok-2") is None
