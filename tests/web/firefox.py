"""Headless Firefox (Debian's `firefox-esr`) driven over WebDriver BiDi, with no driver.

Firefox speaks the W3C WebDriver BiDi protocol itself (`--remote-debugging-port`): a
WebSocket of JSON commands (`session.new`, `browsingContext.navigate`, `script.evaluate`,
`browsingContext.captureScreenshot`). Debian has no geckodriver package and nothing may
be downloaded, so this small client stands in for Selenium. It offers the part of
`tests.web.browser.Browser` the tests use; page conditions are JavaScript expressions
polled in the page (bounded), not sleeps.

The profile turns off what would reach the network by itself (updates, telemetry,
remote settings, safe browsing, captive-portal checks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.tools import need

WAIT = 15.0
_PREFS = {
    "app.update.enabled": False,
    "app.update.auto": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
}


class BiDiError(AssertionError):
    """A command the browser refused (an assertion: the test fails with its message)."""


class Firefox:
    """One headless Firefox window (its top-level browsing context)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, base: str, out: Path) -> None:
        self.ws, self.base, self.out = ws, base, out
        self.context = ""
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)  # events (no id) are not asked for here
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BiDiError("the browser closed the connection"))

    async def command(self, method: str, params: dict[str, Any], timeout: float = 30.0) -> Any:
        id_ = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[id_] = future
        await self.ws.send_json({"id": id_, "method": method, "params": params})
        answer = await asyncio.wait_for(future, timeout)
        if answer.get("type") == "error":
            raise BiDiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return answer["result"]

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    # -- what the tests use ---------------------------------------------------------

    async def get(self, path: str) -> None:
        await self.command(
            "browsingContext.navigate",
            {"context": self.context, "url": self.base + path, "wait": "complete"},
        )

    async def script(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.command(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
        )
        if result.get("type") == "exception":
            raise BiDiError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return _value(result["result"])

    async def wait(self, expression: str, what: str, timeout: float = WAIT) -> Any:
        """Until the expression is truthy in the page (bounded); fails with `what`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with contextlib.suppress(BiDiError):  # e.g. the page is navigating
                value = await self.script(expression)
                if value:
                    return value
            if loop.time() > deadline:
                await self.screenshot("timeout")
                raise AssertionError(f"the page never showed {what} within {timeout} s")
            await asyncio.sleep(0.05)

    async def text(self, css: str) -> str:
        return str(await self.script(f"document.querySelector({json.dumps(css)}).innerText"))

    async def wait_text(self, css: str, text: str, timeout: float = WAIT) -> None:
        found = f"document.querySelector({json.dumps(css)})"
        await self.wait(
            f"({found} || {{innerText: ''}}).innerText.includes({json.dumps(text)})",
            f"{text!r} in {css}",
            timeout,
        )

    async def click(self, css: str) -> None:
        await self.script(f"document.querySelector({json.dumps(css)}).click()")

    async def type(self, css: str, text: str) -> None:
        """Set an input's value as typing would (input and change events fire)."""
        await self.script(
            f"(() => {{ const e = document.querySelector({json.dumps(css)});"
            f" e.value = {json.dumps(text)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    async def login(self, user: str, password: str, page: str = "/desktop") -> None:
        await self.get("/login")
        await self.type("#username", user)
        await self.type("#password", password)
        await self.click("#login")
        await self.wait(
            f"location.pathname === {json.dumps(page)} && document.body.dataset.ready === '1'",
            f"{page} ready",
        )

    async def screenshot(self, name: str) -> Path:
        result = await self.command("browsingContext.captureScreenshot", {"context": self.context})
        path = self.out / f"{name}.png"
        path.write_bytes(base64.b64decode(result["data"]))
        return path


def _value(remote: dict[str, Any]) -> Any:
    """A BiDi RemoteValue as Python (primitives, arrays and plain objects)."""
    kind = remote.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return remote["value"]
    if kind == "number":
        value = remote["value"]
        return float("nan") if isinstance(value, str) else value
    if kind == "array":
        return [_value(v) for v in remote.get("value", [])]
    if kind == "object":
        return {k: _value(v) for k, v in remote.get("value", [])}
    return remote  # nodes, functions ...: as given


@contextlib.asynccontextmanager
async def firefox(base: str, out: Path) -> AsyncIterator[Firefox]:
    """A headless Firefox with a fresh profile (quit at the end); screenshots to `out`."""
    binary = need("firefox-esr")
    out.mkdir(parents=True, exist_ok=True)
    profile = out / "firefox-profile"
    profile.mkdir(exist_ok=True)
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in _PREFS.items())
    )
    log = (out / "firefox.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, "--headless", "--no-remote", "--remote-debugging-port=0",
        "--profile", str(profile), "about:blank",
        stdout=log, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        url = await asyncio.wait_for(_listening(proc.stderr), 60)
        drain = asyncio.get_running_loop().create_task(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http, http.ws_connect(url + "/session") as ws:
            browser = Firefox(ws, base, out)
            try:
                await browser.command("session.new", {"capabilities": {}})
                tree = await browser.command("browsingContext.getTree", {"maxDepth": 0})
                browser.context = tree["contexts"][0]["context"]
                yield browser
            finally:
                with contextlib.suppress(Exception):
                    await browser.command("browser.close", {}, timeout=10)
                await browser.close()
                drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def _listening(stderr: asyncio.StreamReader) -> str:
    """The BiDi address Firefox prints once it listens."""
    while line := await stderr.readline():
        match = re.search(rb"WebDriver BiDi listening on (ws://\S+)", line)
        if match:
            return match.group(1).decode()
    raise AssertionError("Firefox ended before listening for WebDriver BiDi")


async def _drain(stderr: asyncio.StreamReader) -> None:
    while await stderr.readline():
        pass
