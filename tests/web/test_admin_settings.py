"""The admin page's editing routes: a queue's settings (`PATCH /api/admin/queues/{queue}`)
and the IVR menus (`PUT /api/admin/ivr`), admins only; bad input gets a clear 4xx and
changes nothing; good input reaches the running switch (the ACD's wrap-up, a call to the
new menu's number answered)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.web.admin import queue_changes
from ivr.runner import IvrApplication
from pbx.api import ConfigError
from tests.interop.phones import dial
from tests.interop.sipclient import SipClient
from tests.web.console import console_server, logged_in

MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "no-such-prompt"
[menu.options]
"1" = "extension:1001"
"2" = "extension:4444"
"9" = "voicemail:5555"
"""


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        ({"wrapup_seconds": 5}, {"wrapup_seconds": 5.0}),  # a whole number of seconds
        ({"music": None, "ring_in_use": True}, {"music": None, "ring_in_use": True}),
        ({"strategy": "linear", "max_callers": 3}, {"strategy": "linear", "max_callers": 3}),
    ],
)
def test_queue_changes_takes_the_settings_with_their_types(
    body: dict[str, object], changes: dict[str, object]
) -> None:
    assert queue_changes(body) == changes


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "other"}, "'name' is not a queue setting"),
        ({"skills": {}}, "'skills' is not a queue setting"),
        ({"ring_seconds": "15"}, "ring_seconds: '15' is not a int or float"),
        ({"max_callers": True}, "max_callers: True is not a int"),
        ({"max_callers": 2.5}, "max_callers: 2.5 is not a int"),
        ({"strategy": None}, "strategy: None is not a str"),
        ({"ring_in_use": 1}, "ring_in_use: 1 is not a bool"),
    ],
)
def test_queue_changes_refuses_unknown_fields_and_wrong_types(
    body: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        queue_changes(body)


async def test_admin_changes_a_queues_settings_and_the_acd_follows(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        await c.store.users.set_role("1002", "admin")
        admin, csrf = await logged_in(c.base, "1002")
        agent, agent_csrf = await logged_in(c.base, "1001")
        url = c.base + "/api/admin/queues/support"
        headers = {"X-CSRF-Token": csrf}
        async with admin, agent:
            async with agent.patch(url, json={"wrapup_seconds": 7},
                                   headers={"X-CSRF-Token": agent_csrf}) as r:  # fmt: skip
                assert r.status == 403
            async with admin.patch(url, json={"wrapup_seconds": 7}) as r:
                assert r.status == 403  # no CSRF token
            assert c.acd.wrapup_seconds("1001", "support") == 0.0
            async with admin.patch(
                url, json={"wrapup_seconds": 7, "strategy": "leastrecent"}, headers=headers
            ) as r:
                assert r.status == 200
                shown = await r.json()
            assert (shown["wrapup_seconds"], shown["strategy"]) == (7.0, "leastrecent")
            stored = await c.store.queues.get("support")
            assert (stored.wrapup_seconds, stored.strategy) == (7.0, "leastrecent")
            assert c.acd.wrapup_seconds("1001", "support") == 7.0  # the running ACD
            for body, status in (
                ({"ring_seconds": 0}, 400),  # the store's own check
                ({"strategy": "loudest"}, 400),
                ({"callback_key": "1", "voicemail_key": "1"}, 400),
                ({"number": "1001"}, 409),  # a user's number
                ({"colour": "red"}, 400),
            ):
                async with admin.patch(url, json=body, headers=headers) as r:
                    assert r.status == status, body
                    assert (await r.json())["error"], body
            async with admin.patch(
                c.base + "/api/admin/queues/nosuch", json={"weight": 1}, headers=headers
            ) as r:
                assert r.status == 404
            assert await c.store.queues.get("support") == stored  # nothing else changed
            async with admin.get(c.base + "/api/admin/queues") as r:
                listed = await r.json()
            assert "leastrecent" in listed["strategies"]
            assert listed["queues"][0]["ring_seconds"] == stored.ring_seconds


async def test_admin_replaces_the_ivr_menus_and_calls_reach_the_new_menu(tmp_path: Path) -> None:
    ivr = IvrApplication(tmp_path)
    async with (
        console_server(tmp_path, applications=(ivr,)) as c,
        SipClient(c.server.sip_port) as ua,
    ):
        await c.store.users.set_role("1002", "admin")
        admin, csrf = await logged_in(c.base, "1002")
        boss, boss_csrf = await logged_in(c.base, "1003")
        url = c.base + "/api/admin/ivr"
        headers = {"X-CSRF-Token": csrf}
        async with admin, boss:
            async with boss.put(url, json={"toml": MENU},
                                headers={"X-CSRF-Token": boss_csrf}) as r:  # fmt: skip
                assert r.status == 403  # supervisors do not change the menus
            _, before = await dial(ua, c.server, "800")
            assert before.status == 404
            for body, status, words in (
                ({"toml": "[[menu]]\nname = 'x'\n"}, 400, "greeting"),
                ({"toml": "not toml ["}, 400, ""),
                ({"toml": 5}, 400, "toml"),
                ({"toml": MENU.replace('"800"', '"1001"')}, 409, "1001"),
                ({"toml": MENU + '"3" = "queue:nosuch"\n'}, 409, "nosuch"),
            ):
                async with admin.put(url, json=body, headers=headers) as r:
                    assert r.status == status, body
                    assert words in (await r.json())["error"], body
            assert await c.store.ivr.get() == ""  # nothing was stored
            async with admin.put(url, json={"toml": MENU}, headers=headers) as r:
                assert r.status == 200
                result = await r.json()
            assert result["menus"] == ["main"] and result["schedules"] == []
            assert sorted(result["warnings"]) == [
                "menu 'main' key 2: no extension or ring group 4444",
                "menu 'main' key 9: no mailbox 5555",
                "menu 'main': greeting 'no-such-prompt' is no prompt",
            ]
            assert await c.store.ivr.get() == result["toml"]
            assert 'number = "800"' in result["toml"]
            _, after = await dial(ua, c.server, "800")
            assert after.status == 200  # the running switch answers the new menu
