"""The trunk service against a scripted registrar in memory (no sockets): reloads start,
restart and un-register runners; names that do not resolve give a log line and back off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from pbx.store import Trunk
from pbx.trunks import TrunkService
from sip.message import Request, Response, make_response
from sip.peer import Peer


class Registrar:
    """Answers every REGISTER with `answer(request)`; records (request, peer)."""

    def __init__(self, answer: Callable[[Request], Response] | None = None) -> None:
        self.sent: list[tuple[Request, Peer]] = []
        self.answer = answer or (lambda r: make_response(r, 200, headers=[("Expires", "600")]))
        self.changed = asyncio.Event()

    async def request(self, request: Request, peer: Peer) -> Response:
        self.sent.append((request, peer))
        self.changed.set()
        return self.answer(request)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()


class Addresses:
    sip_port = 5099

    def local_host(self, peer: Peer) -> str:
        return "127.0.0.1"


def trunk(name: str = "prov", **kw: object) -> Trunk:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 5070,
        "username": "u1",
        "password": "pw",
        "register": True,
    }
    base.update(kw)
    return Trunk(name, **base)  # type: ignore[arg-type]


async def settle(condition: Callable[[], bool]) -> None:
    """Let the runners work until `condition` holds (bounded)."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_reload_registers_restarts_on_change_and_unregisters_on_delete() -> None:
    registrar = Registrar()
    service = TrunkService(registrar, Addresses(), clock=lambda: 1000.0)
    await service.reload([trunk(), trunk("quiet", register=False)])
    await registrar.wait_for(1)
    request, peer = registrar.sent[0]
    assert peer == Peer("UDP", "127.0.0.1", 5070)
    assert str(request.uri) == "sip:127.0.0.1:5070"
    assert request.headers.get("Contact") == "<sip:u1@127.0.0.1:5099>"
    assert (request.headers.get("Via") or "").startswith("SIP/2.0/UDP 127.0.0.1:5099;rport;branch=")
    await settle(lambda: service.status()[0]["state"] == "registered")
    rows = {row["name"]: row for row in service.status()}
    assert rows["prov"]["registered_until"] == pytest.approx(1600.0, abs=1)
    assert rows["quiet"]["state"] == "off"
    # Unchanged: nothing is sent again.
    await service.reload([trunk(), trunk("quiet", register=False)])
    assert len(registrar.sent) == 1
    # A changed password: un-register the old binding, register anew.
    await service.reload([trunk(password="new"), trunk("quiet", register=False)])
    await registrar.wait_for(3)
    assert registrar.sent[1][0].headers.get("Expires") == "0"
    assert registrar.sent[2][0].headers.get("Expires") == "3600"
    # Deleted: un-registered at once.
    await service.reload([])
    assert registrar.sent[-1][0].headers.get("Expires") == "0" and len(registrar.sent) == 4
    assert service.status() == []
    await service.close()


async def test_tcp_trunk_and_close_unregisters() -> None:
    registrar = Registrar()
    service = TrunkService(registrar, Addresses())
    await service.reload([trunk(transport="tcp", from_domain="example.net")])
    await registrar.wait_for(1)
    request, peer = registrar.sent[0]
    assert peer.transport == "TCP"
    assert str(request.uri) == "sip:127.0.0.1:5070;transport=tcp"
    assert str(request.to.uri) == "sip:u1@example.net"
    await settle(lambda: service.status()[0]["state"] == "registered")
    await service.close()
    assert registrar.sent[-1][0].headers.get("Expires") == "0"
    await service.reload([trunk()])  # closed: nothing starts again
    assert len(registrar.sent) == 2


async def test_refusal_shows_in_status_with_the_next_retry() -> None:
    registrar = Registrar(lambda r: make_response(r, 403))
    service = TrunkService(registrar, Addresses(), retry_min=30.0, clock=lambda: 1000.0)
    await service.reload([trunk()])
    await settle(lambda: service.status()[0]["state"] == "failed")
    [row] = service.status()
    assert row["failure"] == {"status": 403, "reason": "Forbidden"}
    assert 1029.0 <= row["next_retry"] <= 1000.0 + 36.0 + 1.0
    assert row["registered_until"] is None
    await service.close()
    assert len(registrar.sent) == 1  # nothing bound: no un-REGISTER, no retry storm


async def test_unresolvable_name_is_logged_with_the_trunk_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registrar = Registrar()
    service = TrunkService(registrar, Addresses(), retry_min=30.0, resolve_timeout=2.0)
    caplog.set_level(logging.WARNING, logger="pbx.trunks")
    await service.reload([trunk("far", host="no-such-host.invalid", password="hunter2")])
    await settle(lambda: service.status()[0]["state"] == "failed")
    [row] = service.status()
    assert row["failure"]["status"] is None and row["next_retry"] is not None
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("trunk far: cannot resolve 'no-such-host.invalid'") for line in lines
    ), lines
    assert all("hunter2" not in line for line in lines)
    assert registrar.sent == []
    await service.close()


async def test_host_name_resolved_off_the_loop() -> None:
    registrar = Registrar()
    service = TrunkService(registrar, Addresses())
    await service.reload([trunk(host="localhost")])
    await registrar.wait_for(1)
    _, peer = registrar.sent[0]
    assert peer.host in ("127.0.0.1", "::1") and peer.port == 5070
    await service.close()


async def test_an_error_in_a_runner_is_logged_and_retried_after_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def answer(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return make_response(request, 200, headers=[("Expires", "600")])

    registrar = Registrar(answer)
    service = TrunkService(registrar, Addresses(), retry_min=0.05, retry_max=0.05)
    caplog.set_level(logging.ERROR, logger="pbx.trunks")
    await service.reload([trunk()])
    await settle(lambda: service.status()[0]["state"] == "registered")
    assert calls == 2
    assert any(r.getMessage().startswith("trunk prov: registration failed") for r in caplog.records)
    await service.close()


async def test_service_route_is_offered_while_registered() -> None:
    """RFC 3608: the Service-Route of the 2xx is what the trunk's INVITEs are routed by
    (pbx.outbound), only while the binding holds."""
    route = [("Expires", "600"), ("Service-Route", "<sip:p1.example;lr>, <sip:s1.example;lr>")]
    registrar = Registrar(lambda r: make_response(r, 200, headers=route))
    service = TrunkService(registrar, Addresses())
    assert service.service_route("prov") == ()
    await service.reload([trunk(), trunk("quiet", register=False)])
    await settle(lambda: service.status()[0]["state"] == "registered")
    assert service.service_route("prov") == ("<sip:p1.example;lr>", "<sip:s1.example;lr>")
    assert service.service_route("quiet") == ()
    await service.reload([trunk("quiet", register=False)])  # deleted: un-registered
    assert service.service_route("prov") == ()
    await service.close()
