"""The CRM webhook (acd.web.webhook): signatures, back-off, delivery against a real
HTTP receiver on loopback that fails, refuses or hangs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from acd.web.webhook import SIGNATURE_HEADER, Webhook, check_url, retry_delays, sign, verify
from pbx.errors import ConfigError

SECRET = "s3cret-for-tests"


@pytest.mark.parametrize(
    ("header", "body", "now", "ok"),
    [
        (sign(SECRET, 1000, b'{"a":1}'), b'{"a":1}', 1000.0, True),
        (sign(SECRET, 1000, b'{"a":1}'), b'{"a":1}', 1299.0, True),
        (sign(SECRET, 1000, b'{"a":1}'), b'{"a":2}', 1000.0, False),  # body changed
        (sign(SECRET, 1000, b'{"a":1}'), b'{"a":1}', 1301.0, False),  # too old: a replay
        (sign("other", 1000, b'{"a":1}'), b'{"a":1}', 1000.0, False),  # wrong secret
        ("t=1000", b"", 1000.0, False),
        ("v1=abc", b"", 1000.0, False),
        ("t=x,v1=abc", b"", 1000.0, False),
        ("", b"", 1000.0, False),
    ],
)
def test_verify(header: str, body: bytes, now: float, ok: bool) -> None:
    assert verify(SECRET, header, body, now) is ok


def test_sign_is_hmac_sha256_of_time_dot_body() -> None:
    import hashlib
    import hmac

    mac = hmac.new(SECRET.encode(), b"1000.{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1000, b"{}") == f"t=1000,v1={mac}"


@pytest.mark.parametrize(
    ("attempts", "first", "cap", "delays"),
    [(1, 1.0, 60.0, []), (5, 1.0, 60.0, [1.0, 2.0, 4.0, 8.0]), (4, 10.0, 25.0, [10.0, 20.0, 25.0])],
)
def test_retry_delays(attempts: int, first: float, cap: float, delays: list[float]) -> None:
    assert retry_delays(attempts, first, cap) == delays


@pytest.mark.parametrize("url", ["ftp://x/", "javascript:alert(1)", "http://", "/relative"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_url(url)


Behaviour = Callable[[int], Any]


async def receiver(
    behaviour: Behaviour,
) -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.read())
        result = behaviour(len(requests))
        if asyncio.iscoroutine(result):
            result = await result
        return web.Response(status=int(result))

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", requests, bodies
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def test_failures_are_retried_with_the_same_delivery_id(tmp_path: Path) -> None:
    gen = receiver(lambda n: 500 if n < 3 else 200)
    url, requests, bodies = await gen.__anext__()
    try:

        async def settings() -> tuple[str, str]:
            return url, SECRET

        hook = Webhook(settings, first_retry=0.01, max_retry=0.05, attempts=5)
        hook.start()
        try:
            assert hook.submit("offer", {"call": {"number": "+441632960123"}, "customer": None})
            await until(lambda: hook.delivered == 1)
        finally:
            await hook.close()
    finally:
        await gen.aclose()
    assert len(requests) == 3
    assert len({r.headers["X-Pbx-Delivery"] for r in requests}) == 1
    for request, body in zip(requests, bodies, strict=True):
        assert verify(SECRET, request.headers[SIGNATURE_HEADER], body, time.time())
    message = json.loads(bodies[0])
    assert (message["event"], message["call"]["number"]) == ("offer", "+441632960123")


async def test_a_refusal_is_not_retried_and_a_hung_crm_never_blocks_submit() -> None:
    release = asyncio.Event()

    async def hang() -> int:
        await release.wait()
        return 200

    gen = receiver(lambda n: 400 if n == 1 else hang())
    url, requests, _ = await gen.__anext__()
    try:

        async def settings() -> tuple[str, str]:
            return url, SECRET

        hook = Webhook(settings, first_retry=0.01, attempts=3, timeout=0.2, queue=5)
        hook.start()
        try:
            hook.submit("offer", {})
            await until(lambda: len(requests) == 1)
            await asyncio.sleep(0.05)
            assert len(requests) == 1 and hook.delivered == 0  # 400: given up at once
            # The CRM hangs now: submitting still returns at once; past the queue's
            # bound, messages are dropped, never waited for.
            results = [hook.submit("answer", {}) for _ in range(10)]
            assert results.count(False) >= 4 and hook.dropped == results.count(False)
            await until(lambda: len(requests) >= 2)
        finally:
            release.set()
            await hook.close()
    finally:
        await gen.aclose()


async def test_nothing_is_sent_without_a_configured_url() -> None:
    calls = 0

    async def settings() -> None:
        nonlocal calls
        calls += 1
        return None

    hook = Webhook(settings)
    hook.start()
    try:
        hook.submit("offer", {})
        await until(lambda: calls == 1)
        assert hook.delivered == 0
    finally:
        await hook.close()
