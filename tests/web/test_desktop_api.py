"""The desktop's JSON API over real HTTP: the new-customer form, scheduled callbacks,
click-to-call from a record (a real sipp phone rings), dispositions only for one's own
calls."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pbx.store import CustomerFields
from tests.interop.phones import phone
from tests.web.console import SUPERVISOR, console_server, logged_in


async def test_new_customer_form_normalises_and_lets_its_author_read_it(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        agent, csrf = await logged_in(c.base, "1001")
        other, other_csrf = await logged_in(c.base, "1002")
        async with agent, other:
            form = {"number": "01632 960999", "name": "Grace", "company": "Navy"}
            async with agent.post(
                c.base + "/api/customers", json=form, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 201
                created = await r.json()
            assert (created["number"], created["name"]) == ("+441632960999", "Grace")
            async with agent.post(
                c.base + "/api/customers", json=form, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 409  # the number is taken
            async with agent.post(
                c.base + "/api/customers",
                json={"number": "12", "name": "x"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 400
                assert "too short" in (await r.json())["error"]
            async with other.get(c.base + f"/api/customers/{created['id']}") as r:
                assert r.status == 403
            async with agent.put(
                c.base + f"/api/customers/{created['id']}",
                json={"notes": "prefers mornings", "id": 5},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 400  # an unknown field
            async with agent.put(
                c.base + f"/api/customers/{created['id']}",
                json={"notes": "prefers mornings"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert (r.status, (await r.json())["notes"]) == (200, "prefers mornings")
            async with other.get(c.base + "/api/customers?q=grac") as r:
                assert (await r.json())["customers"] == []  # not offered to 1002
            async with agent.get(c.base + "/api/customers?q=GRAC") as r:
                assert [x["name"] for x in (await r.json())["customers"]] == ["Grace"]
            async with agent.get(c.base + "/api/customers.csv") as r:
                assert r.status == 403
            boss, _ = await logged_in(c.base, SUPERVISOR)
            async with boss, boss.get(c.base + "/api/customers.csv") as r:
                exported = (await r.text()).splitlines()
            assert exported[1] == "+441632960999,Grace,Navy,,prefers mornings,"
            async with other.post(
                c.base + "/api/dispositions",
                json={"call_id": "someone-elses", "code": "sale"},
                headers={"X-CSRF-Token": other_csrf},
            ) as r:
                assert r.status == 403


async def test_scheduled_callbacks_for_me_or_anyone(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        ada = await c.store.customers.add(CustomerFields("+441632960123", "Ada"))
        await c.store.customers.offered(ada.id, "1001", "call-1", "support", 1.0)
        agent, csrf = await logged_in(c.base, "1001")
        other, other_csrf = await logged_in(c.base, "1002")
        boss, boss_csrf = await logged_in(c.base, SUPERVISOR)
        due = time.time() + 3600
        async with agent, other, boss:
            for body, status in [
                ({"due": due, "for": "me", "customer": ada.id, "note": "after lunch"}, 201),
                ({"due": due + 60, "for": "anyone", "customer": ada.id}, 201),
                ({"due": due, "for": "them", "customer": ada.id}, 400),
                ({"due": "tomorrow", "customer": ada.id}, 400),
                ({"due": time.time() - 3600, "customer": ada.id}, 400),  # the past
                ({"due": due}, 400),  # no customer and no call: no number
            ]:
                async with agent.post(
                    c.base + "/api/callbacks", json=body, headers={"X-CSRF-Token": csrf}
                ) as r:
                    assert r.status == status, (body, await r.text())
            async with agent.get(c.base + "/api/callbacks") as r:
                mine = (await r.json())["callbacks"]
            assert [(x["number"], x["agent"], x["note"]) for x in mine] == [
                ("+441632960123", "1001", "after lunch"),
                ("+441632960123", None, ""),
            ]
            async with other.post(
                c.base + "/api/callbacks",
                json={"due": due, "customer": ada.id},
                headers={"X-CSRF-Token": other_csrf},
            ) as r:
                assert r.status == 403  # Ada was not offered to 1002
            async with other.post(
                c.base + f"/api/callbacks/{mine[0]['id']}/cancel",
                json={},
                headers={"X-CSRF-Token": other_csrf},
            ) as r:
                assert r.status == 403
            async with boss.post(
                c.base + f"/api/callbacks/{mine[0]['id']}/cancel",
                json={},
                headers={"X-CSRF-Token": boss_csrf},
            ) as r:
                assert (r.status, (await r.json())["state"]) == (200, "cancelled")
            # What the dialer will take: the pending ones once due.
            assert await c.store.scheduled_callbacks.due(due + 30) == []
            [due_one] = await c.store.scheduled_callbacks.due(due + 61)
            assert (due_one.agent, due_one.created_by) == (None, "1001")


async def test_click_to_call_rings_the_agents_phone_with_the_customer_number(
    tmp_path: Path,
) -> None:
    async with console_server(tmp_path) as c:
        ada = await c.store.customers.add(CustomerFields("+441632960123", "Ada"))
        await c.store.customers.offered(ada.id, "1001", "call-1", "support", 1.0)
        with await phone(c.server, "1001", "uas_answer.xml", tmp_path / "1001"):
            agent, csrf = await logged_in(c.base, "1001")
            async with agent:
                async with agent.post(
                    c.base + f"/api/customers/{ada.id}/call",
                    json={},
                    headers={"X-CSRF-Token": csrf},
                ) as r:
                    assert r.status == 202
                    assert await r.json() == {"from": "1001", "to": "+441632960123"}
                # The agent's phone answered a call showing the customer's number; then
                # the customer's number was dialled (no trunk here: it fails, and the
                # agent's leg is hung up).
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                while True:
                    rows = await c.store.cdrs.list()
                    ended = [r for r in rows if r.end is not None]
                    if len(ended) >= 2 or loop.time() > deadline:
                        break
                    await asyncio.sleep(0.05)
        legs = {(r.caller, r.callee, str(r.disposition)) for r in rows}
        assert ("+441632960123", "1001", "ANSWERED") in legs, legs
        assert any(callee == "+441632960123" for _, callee, _ in legs), legs


async def test_escalation_and_agent_actions_refused_with_reasons(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        ticket = await c.store.tickets.open("1001", "x")
        agent, csrf = await logged_in(c.base, "1001")
        async with agent:
            headers = {"X-CSRF-Token": csrf}
            async with agent.post(
                c.base + "/api/escalate", json={"queue": "support", "ticket": ticket.id},
                headers=headers,
            ) as r:  # fmt: skip
                assert (r.status, await r.json()) == (409, {"error": "1001 is on no queue call"})
            assert (await c.store.tickets.get(ticket.id)).state == "open"  # untouched
            async with agent.post(
                c.base + "/api/transfer", json={"target": "1002"}, headers=headers
            ) as r:
                assert (r.status, await r.json()) == (409, {"error": "1001 is on no queue call"})
            async with agent.post(c.base + "/api/transfer", json={}, headers=headers) as r:
                assert r.status == 400
            async with agent.post(c.base + "/api/transfer", json={"target": "1002"}) as r:
                assert r.status == 403  # no CSRF token
            async with agent.post(
                c.base + "/api/agent", json={"action": "pause"}, headers=headers
            ) as r:
                assert (r.status, await r.json()) == (409, {"error": "1001 is not logged in"})
            async with agent.post(
                c.base + "/api/agent", json={"action": "dance"}, headers=headers
            ) as r:
                assert r.status == 409 and "unknown agent action" in (await r.json())["error"]
            async with agent.post(
                c.base + "/api/agent", json={"action": "login"}, headers=headers
            ) as r:
                assert (r.status, (await r.json())["state"]) == (200, "available")
            async with agent.post(
                c.base + "/api/agent", json={"action": "pause", "reason": "lunch"}, headers=headers
            ) as r:
                row = await r.json()
                assert (row["state"], row["reason"]) == ("paused", "lunch")
            async with agent.post(c.base + "/api/agent", data=b"[1]", headers=headers) as r:
                assert (r.status, await r.json()) == (
                    400,
                    {"error": "the body is not a JSON object"},
                )
