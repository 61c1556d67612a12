"""The CRM webhook: each offer, answer and end of a queue call, with its customer, POSTed
as JSON to a configured URL, signed with HMAC-SHA256, retried with back-off.

A slow or dead CRM never slows calls: `Webhook.submit` only puts the message in a bounded
queue (a full queue drops the message and logs it); one task delivers them in order,
each attempt bounded by `timeout`, retrying a failure (a network error, a timeout, a 5xx
or 429) after `first_retry`, then twice as long each time up to `max_retry`, at most
`attempts` times. A 4xx other than 429 is not retried (the CRM refuses the message).

Signature (what the receiver checks): the header
`X-Pbx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`; the
receiver recomputes it over the raw body with the shared secret, compares in constant
time and refuses a timestamp far from its clock (a replayed message). `X-Pbx-Delivery`
is a unique id per message (the same on each retry), for the receiver to drop repeats.

Configuration (settings of the database, `pbx customer webhook ...`): `webhook_url`,
`webhook_secret`. The secret is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pbx.api import ConfigError

__all__ = [
    "SIGNATURE_HEADER",
    "Webhook",
    "check_url",
    "retry_delays",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Pbx-Signature"
DELIVERY_HEADER = "X-Pbx-Delivery"
#: How far a signature's timestamp may be from the receiver's clock (seconds).
TOLERANCE = 300.0
URL_KEY = "webhook_url"
SECRET_KEY = "webhook_secret"


def check_url(url: str) -> str:
    """Raises: ConfigError unless `url` is an absolute http(s) URL with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise ConfigError(f"webhook URL {url!r}: an http:// or https:// URL with a host")
    return url.strip()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = TOLERANCE) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` of `now`
    (what a receiver runs; constant-time comparison)."""
    fields: dict[str, str] = {}
    for part in header.split(",")[:8]:
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    stamp = fields.get("t", "")
    if not stamp.isdigit() or len(stamp) > 12 or "v1" not in fields:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = sign(secret, int(stamp), body).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode(), fields["v1"].encode())


def retry_delays(attempts: int, first: float, cap: float) -> list[float]:
    """The waits before attempts 2..`attempts`: `first`, doubling, at most `cap`."""
    delays: list[float] = []
    delay = first
    for _ in range(max(0, attempts - 1)):
        delays.append(min(delay, cap))
        delay *= 2
    return delays


@dataclass(frozen=True, slots=True)
class _Message:
    delivery: str
    body: bytes


class Webhook:
    """Delivers messages to the configured URL (see the module doc)."""

    def __init__(
        self,
        settings: Callable[[], Any],
        *,
        queue: int = 1000,
        timeout: float = 5.0,
        attempts: int = 5,
        first_retry: float = 1.0,
        max_retry: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`settings` is an async callable giving (url, secret) or None when unset."""
        self._settings = settings
        self._queue: asyncio.Queue[_Message] = asyncio.Queue(queue)
        self.timeout = timeout
        self.delays = retry_delays(attempts, first_retry, max_retry)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._deliver(), name="web webhook")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def submit(self, event: str, payload: dict[str, Any]) -> bool:
        """Queue one message (never waits); False when it was dropped (queue full)."""
        delivery = secrets.token_hex(12)
        message = {"event": event, "delivery": delivery, "at": self._clock(), **payload}
        body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
        try:
            self._queue.put_nowait(_Message(delivery, body))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("webhook: queue full, %s message dropped", event)
            return False
        return True

    async def _deliver(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                message = await self._queue.get()
                try:
                    await self._send(session, message)
                except Exception:
                    log.exception("webhook: delivery %s failed", message.delivery)

    async def _send(self, session: Any, message: _Message) -> None:
        import aiohttp

        for attempt, delay in enumerate([0.0, *self.delays], 1):
            if delay:
                await asyncio.sleep(delay)
            config = await self._settings()
            if config is None:
                return  # no webhook configured (or removed meanwhile)
            url, secret = config
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, int(self._clock()), message.body),
                DELIVERY_HEADER: message.delivery,
            }
            try:
                async with session.post(url, data=message.body, headers=headers) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("webhook: attempt %d of %s: %s", attempt, message.delivery, exc)
                continue
            if status < 300:
                self.delivered += 1
                return
            if 400 <= status < 500 and status != 429:
                # The host only: a webhook URL may carry a token in its path or query.
                host = urlsplit(url).hostname or "?"
                log.warning("webhook: %s refused %s (%d)", host, message.delivery, status)
                return
            log.info("webhook: attempt %d of %s: status %d", attempt, message.delivery, status)
        log.warning(
            "webhook: %s given up after %d attempts", message.delivery, 1 + len(self.delays)
        )
