"""Services (`pbx.api.Service`): an application with `start` and `close` is started
with the switch, serves the control routes it adds, hears configuration changes made
by another process, publishes its events on the bus, and is closed at stop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pbx import control
from pbx.api import Call, PbxError, Switch
from pbx.config import Settings
from pbx.events import AgentStateChanged, to_json
from pbx.server import PbxServer
from pbx.store import Store
from tests.interop.peers import free_port


class Recorder:
    """A service: counts its life, adds routes, listens for configuration changes."""

    def __init__(self) -> None:
        self.started: Switch | None = None
        self.closed = False
        self.changes = asyncio.Event()

    async def handles(self, number: str, switch: Switch) -> bool:
        return False

    async def run(self, call: Call, switch: Switch) -> str:
        raise AssertionError("never routed")

    async def start(self, switch: Switch) -> None:
        self.started = switch
        switch.add_route("GET /recorder", self._status)
        switch.add_body_route("POST /recorder", self._post)
        switch.on_config_change(self._changed)
        with pytest.raises(PbxError, match="taken"):
            switch.add_route("GET /recorder", self._status)

    async def close(self) -> None:
        self.closed = True

    async def _status(self, query: dict[str, str]) -> dict[str, Any]:
        assert self.started is not None
        return {"role": await self.started.user_role(query.get("user", "")), "ok": True}

    async def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, {"echo": body}

    async def _changed(self) -> None:
        self.changes.set()


async def test_a_service_lives_with_the_server(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1001", "Secret-pass-1", "aiopbx")
    await store.close()
    service = Recorder()
    settings = Settings(data_dir=tmp_path, sip_port=free_port())
    server = PbxServer(settings, applications=[service])
    await server.start()
    try:
        assert service.started is server.switch
        answer = await asyncio.to_thread(control.request, settings, "/recorder?user=1001")
        assert answer == {"role": "agent", "ok": True}
        assert (await asyncio.to_thread(control.request, settings, "/recorder?user=x"))[
            "role"
        ] is None
        # Another process changes the database: the service hears of it.
        other = await Store.open(tmp_path / "pbx.sqlite3")
        await other.users.set_role("1001", "supervisor")
        await other.close()
        async with asyncio.timeout(10):
            await service.changes.wait()
        answer = await asyncio.to_thread(control.request, settings, "/recorder?user=1001")
        assert answer["role"] == "supervisor"
        # Its events reach the bus (and so the CTI feed) like the switch's own.
        assert server.switch is not None
        with server.switch.events.subscribe() as sub:
            server.switch.publish(AgentStateChanged("", agent="1001", state="paused", reason="x"))
            [event] = sub.take()
        assert to_json(event)["kind"] == "agent.state" and to_json(event)["reason"] == "x"
        assert not server.switch.registered("1001")
        posted = await asyncio.to_thread(
            control.request, settings, "/recorder", method="POST", body={"a": 1}
        )
        assert posted == {"echo": {"a": 1}}
    finally:
        await server.stop()
    assert service.closed
