"""The browser phone's WebSocket without a browser: who may open it, what it answers to
bad messages, and that an open phone is a contact of its user (and is no more once
closed)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.web.console import client, console_server, logged_in


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    return dict(json.loads(await ws.receive_str(timeout=10)))


async def test_phone_socket_rules(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        url = c.base.replace("http", "ws") + "/ws/phone"
        async with client() as anonymous, anonymous.get(c.base + "/ws/phone") as refused:
            assert refused.status == 401
        session, _ = await logged_in(c.base, "1002")
        async with session:
            async with session.get(
                c.base + "/ws/phone",
                headers={"Origin": "https://evil.example", "Upgrade": "websocket",
                         "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
            ) as cross:  # fmt: skip
                assert cross.status == 403
            registrar = c.server.registrar.location
            async with session.ws_connect(url) as ws:
                assert await next_message(ws) == {"type": "ready", "user": "1002"}
                [binding] = registrar.get("1002").values()
                assert binding.contact.startswith("<sip:1002-web-")
                assert binding.source.startswith("UDP 127.0.0.1:")
                cases: list[tuple[str, str]] = [
                    ("not json", "not JSON"),
                    ("[1, 2]", "not a JSON object"),
                    (json.dumps({"type": "call", "number": "1001"}), "no offer"),
                    (json.dumps({"type": "call", "number": "<sip:x>", "sdp": "v=0"}),
                     "not a number"),
                    (json.dumps({"type": "call", "number": "1001", "sdp": "v=0"}),
                     "the browser's offer was not usable"),
                    (json.dumps({"type": "answer", "sdp": "v=0"}), "nothing to answer"),
                    (json.dumps({"type": "dtmf", "digits": "12"}), "keys not sent"),
                    (json.dumps({"type": "transfer", "to": "1001"}), "transfer refused (481)"),
                    (json.dumps({"type": "hold", "on": True}), "hold failed (481)"),
                    (json.dumps({"type": "reboot"}), "unknown message"),
                ]  # fmt: skip
                for sent, answer in cases:
                    await ws.send_str(sent)
                    assert await next_message(ws) == {"type": "error", "message": answer}, sent
                assert registrar.get("1002")  # still on after all that
            # Closed: unregistered (REGISTER with Expires: 0).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while registrar.get("1002"):
                assert loop.time() < deadline, "the closed phone stayed registered"
                await asyncio.sleep(0.02)
