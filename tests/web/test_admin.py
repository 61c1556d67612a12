"""The admin page's routes: admins only; users and roles (no hashes), queues, IVR menus,
recordings served only from the recordings directory."""

from __future__ import annotations

from pathlib import Path

from pbx.store.trunks import Trunk
from tests.web.console import SUPERVISOR, console_server, logged_in

ROUTES = (
    "/api/admin/users",
    "/api/admin/queues",
    "/api/admin/ivr",
    "/api/admin/trunks",
    "/api/admin/recordings",
    "/api/admin/recordings/1.wav",
    "/admin",
)


async def test_admin_routes(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        await c.store.users.set_role("1002", "admin")
        wav = tmp_path / "recordings" / "2026-12" / "call.wav"
        wav.parent.mkdir(parents=True)
        wav.write_bytes(b"RIFF....WAVEfmt fake audio")
        inside = await c.store.cdrs.open("call-a", "1001", "1002", 100.0)
        await c.store.cdrs.set_recording(inside, str(wav))
        outside = await c.store.cdrs.open("call-b", "1001", "1002", 200.0)
        (tmp_path / "secret.wav").write_bytes(b"not yours")
        await c.store.cdrs.set_recording(
            outside, str(tmp_path / "recordings" / ".." / "secret.wav")
        )
        agent, _ = await logged_in(c.base, "1001")
        boss, _ = await logged_in(c.base, SUPERVISOR)
        admin, csrf = await logged_in(c.base, "1002")
        async with agent, boss, admin:
            for client in (agent, boss):
                for path in ROUTES:
                    async with client.get(c.base + path) as r:
                        assert r.status == 403, path
            async with admin.get(c.base + "/api/admin/users") as r:
                users = (await r.json())["users"]
            assert {u["name"]: u["role"] for u in users} == {
                "1001": "agent",
                "1002": "admin",
                SUPERVISOR: "supervisor",
            }
            assert all(set(u) == {"name", "display_name", "role"} for u in users)
            async with admin.post(
                c.base + "/api/admin/users/1001/role",
                json={"role": "supervisor"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 200
            assert (await c.store.users.get("1001")).role == "supervisor"
            for name, role, status in [("1002", "agent", 409), ("9999", "agent", 404),
                                       ("1001", "root", 400)]:  # fmt: skip
                async with admin.post(
                    c.base + f"/api/admin/users/{name}/role",
                    json={"role": role},
                    headers={"X-CSRF-Token": csrf},
                ) as r:
                    assert r.status == status, (name, role)
            async with admin.get(c.base + "/api/admin/queues") as r:
                assert (await r.json())["queues"][0]["members"] == ["1001", "1002"]
            async with admin.get(c.base + "/api/admin/recordings") as r:
                listed = [x["id"] for x in (await r.json())["recordings"]]
            assert listed == [outside, inside]
            async with admin.get(c.base + f"/api/admin/recordings/{inside}.wav") as r:
                assert r.status == 200 and await r.read() == wav.read_bytes()
            async with admin.get(c.base + f"/api/admin/recordings/{outside}.wav") as r:
                assert r.status == 404  # outside the recordings directory
            async with admin.get(c.base + "/admin") as r:
                assert r.status == 200 and "Recordings" in await r.text()
            await c.store.trunks.add(Trunk("prov", "127.0.0.1", port=5099, max_channels=8))
            await c.store.dids.add("+442071234567", "queue:support")
            await c.server._reload_trunks()  # what the server does when a CLI adds one
            async with admin.get(c.base + "/api/admin/trunks") as r:
                lines = await r.json()
            assert [
                (t["name"], t["host"], t["state"], t["max_channels"]) for t in lines["trunks"]
            ] == [("prov", "127.0.0.1:5099", "off", 8)]
            assert lines["dids"] == [{"number": "+442071234567", "target": "queue:support"}]


async def test_admin_adds_and_removes_queue_members_and_the_acd_follows(tmp_path: Path) -> None:
    async with console_server(tmp_path, members={"support": ("1001",)}) as c:
        await c.store.users.set_role("1002", "admin")
        admin, csrf = await logged_in(c.base, "1002")
        agent, agent_csrf = await logged_in(c.base, "1001")
        headers = {"X-CSRF-Token": csrf}
        base = c.base + "/api/admin/queues/support/members"
        async with admin, agent:
            async with agent.post(base, json={"agent": "1002"}, headers={
                "X-CSRF-Token": agent_csrf}) as r:  # fmt: skip
                assert r.status == 403  # admins only
            async with admin.post(base, json={"agent": "1002", "penalty": 2}) as r:
                assert r.status == 403  # no CSRF token
            async with admin.post(base, json={"agent": "1002", "penalty": 2}, headers=headers) as r:
                assert (r.status, await r.json()) == (
                    200,
                    {"queue": "support", "agent": "1002", "penalty": 2},
                )
            members = await c.store.queues.all_members()
            assert [(m.agent, m.penalty) for m in members["support"]] == [("1001", 0), ("1002", 2)]
            # The running ACD knows at once: 1002 can log in to the queue.
            row = await c.acd.agent_command("1002", "login")
            assert row["queues"] == ["support"]
            for body, status in (
                ({"agent": "1002"}, 409),  # a member already
                ({"agent": "4711"}, 404),  # no such user
                ({"agent": 1002}, 400),
            ):
                async with admin.post(base, json=body, headers=headers) as r:
                    assert r.status == status, body
                    assert "error" in await r.json()
            async with admin.delete(base + "/1001", headers=headers) as r:
                assert (r.status, (await r.json())["removed"]) == (200, True)
            async with admin.delete(base + "/1001", headers=headers) as r:
                assert r.status == 404
            members = await c.store.queues.all_members()
            assert [m.agent for m in members["support"]] == ["1002"]
