"""The control API on aiohttp: token first, JSON routes and errors, the event WebSocket
(wrong token 401 before the upgrade, events in order, a client that stops reading is
dropped alone), an idle connection closed quietly, a dead server's file named."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pbx.config import Settings
from pbx.control import ControlServer, fetch_status, hangup, request, stream_events
from pbx.errors import ControlError
from pbx.events import (
    AgentStateChanged,
    CallAnswered,
    CallCreated,
    CallEnded,
    EventBus,
    QueueLogged,
)


def _no_route(params: dict[str, str]) -> dict[str, Any]:
    raise ControlError(f"no live call {params.get('id', '')!r}")


async def _status(_: dict[str, str]) -> dict[str, Any]:
    return {"ok": True}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlServer, Settings, EventBus]]:
    settings = Settings(data_dir=tmp_path)
    bus = EventBus()
    server = ControlServer(
        settings,
        {"GET /status": _status, "POST /hangup": _no_route},
        events=bus,
        ws_queue=8,
    )
    await server.start()
    try:
        yield server, settings, bus
    finally:
        await server.close()


def _token(settings: Settings) -> str:
    return str(json.loads(settings.control_file.read_text())["token"])


async def test_routes_answer_json_and_errors_are_json(
    served: tuple[ControlServer, Settings, EventBus],
) -> None:
    server, settings, _ = served
    assert os.stat(settings.control_file).st_mode & 0o777 == 0o600
    assert await asyncio.to_thread(fetch_status, settings) == {"ok": True}
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(hangup, settings, "9-abc")
    assert str(info.value) == "server refused /hangup?id=9-abc: no live call '9-abc'"
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(request, settings, "/nothing")
    assert str(info.value) == "server refused /nothing: no route GET /nothing"
    url = f"http://127.0.0.1:{server.port}/status"
    async with aiohttp.ClientSession() as session:
        for auth in (None, "Bearer wrong", f"Basic {_token(settings)}"):
            headers = {"Authorization": auth} if auth else {}
            async with session.get(url, headers=headers) as response:
                assert response.status == 401
                assert await response.json() == {"error": "missing or wrong control token"}
        good = {"Authorization": f"Bearer {_token(settings)}"}
        async with session.post(url, headers=good) as response:
            assert response.status == 405
            assert await response.json() == {"error": "no route POST /status"}


async def test_close_removes_the_control_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    server = ControlServer(settings, {})
    await server.start()
    assert settings.control_file.exists()
    await server.close()
    assert not settings.control_file.exists()


async def test_events_stream_in_order_and_a_wrong_token_gets_401(
    served: tuple[ControlServer, Settings, EventBus],
) -> None:
    server, settings, bus = served
    url = f"http://127.0.0.1:{server.port}/events"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url, headers={"Authorization": "Bearer wrong"})
        assert info.value.status == 401
    assert bus.subscribers == 0  # refused before the upgrade: no subscription made

    stream = stream_events(settings)
    first = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(30):
        while bus.subscribers == 0:  # the server subscribes once the upgrade is done
            await asyncio.sleep(0.01)
    events = [
        CallCreated("1-a", direction="in", caller="1001", callee="1002", at=1.0),
        CallAnswered("1-a", at=2.0),
        CallEnded("1-a", 0, "remote hangup", by_remote=True, cdr_id=4, at=3.0),
        # An event with a dict (not hashable) once broke the stream for good.
        QueueLogged("1-a", "sales", "1002", "CONNECT", {"hold": 4.5, "ring": 1.0}, at=4.0),
        AgentStateChanged("", "1002", "on-call", at=4.0),
    ]
    for event in events:
        bus.publish(event)
    async with asyncio.timeout(30):
        got = [await first] + [await anext(stream) for _ in events[1:]]
    kinds = ["call.created", "call.answered", "call.ended", "queue.event", "agent.state"]
    assert [g["kind"] for g in got] == kinds
    assert got[3]["data"] == {"hold": 4.5, "ring": 1.0}
    assert {g["call_id"] for g in got[:4]} == {"1-a"}
    assert got[2] == {
        "kind": "call.ended",
        "call_id": "1-a",
        "at": 3.0,
        "status": 0,
        "reason": "remote hangup",
        "by_remote": True,
        "cdr_id": 4,
    }
    await stream.aclose()


async def _silent_websocket(port: int, token: str) -> tuple[asyncio.StreamReader, Any]:
    """A WebSocket client that upgrades and then never reads again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        (
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_a_client_that_stops_reading_is_dropped_alone(
    served: tuple[ControlServer, Settings, EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    server, settings, bus = served
    caplog.set_level(logging.INFO)
    _reader, writer = await _silent_websocket(server.port, _token(settings))
    async with asyncio.timeout(30):
        while bus.subscribers == 0:
            await asyncio.sleep(0.01)
    stuck = bus.subscribers
    fast = bus.subscribe(maxsize=100_000)
    reason = "x" * 4000  # fills the socket buffers in a few thousand events
    published = 0
    for n in range(50_000):  # bounded: the slow client is dropped long before
        bus.publish(CallEnded(f"{n}-x", 0, reason))
        published += 1
        if n % 20 == 0:
            await asyncio.sleep(0)  # let the server's writer run (and block)
        if bus.subscribers == stuck:  # only `fast` left: the silent client is gone
            break
    assert bus.subscribers == stuck  # the silent WebSocket was dropped, `fast` was not
    assert len(fast) == published  # the fast subscriber missed nothing
    assert any("dropped" in m and "websocket" in m for m in caplog.messages)
    fast.close()
    writer.close()


async def test_idle_connection_is_closed_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    server = ControlServer(settings, {"GET /status": lambda _: {"ok": True}}, head_timeout=0.2)
    await server.start()
    caplog.set_level(logging.DEBUG)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /status HTTP/1.1\r\n")  # ... and never the end of the head
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the server
        writer.close()
    finally:
        await server.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)


def test_control_file_of_a_dead_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = int(done.stdout)
    (tmp_path / "control.json").write_text(
        json.dumps({"host": "127.0.0.1", "port": 9, "token": "x", "pid": dead})
    )
    with pytest.raises(ControlError) as info:
        fetch_status(Settings(data_dir=tmp_path))
    assert f"left from PID {dead}, which has ended" in str(info.value)
    # A live PID (ours) is not called dead: the error is then about reaching it.
    (tmp_path / "control.json").write_text(
        json.dumps({"host": "127.0.0.1", "port": 9, "token": "x", "pid": os.getpid()})
    )
    with pytest.raises(ControlError) as info:
        fetch_status(Settings(data_dir=tmp_path))
    assert "cannot reach the server" in str(info.value)


async def test_malformed_requests_get_400_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    server = ControlServer(settings, {"GET /status": lambda _: {"ok": True}})
    await server.start()
    caplog.set_level(logging.DEBUG)
    try:
        for data in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS to the HTTP port
            b"GET /status HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
            b"GET /status HTTP/1.1\r\n\r\n",  # no Host
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(data)
            answer = await asyncio.wait_for(reader.read(), 30)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
            writer.close()
    finally:
        await server.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("pbx"))
