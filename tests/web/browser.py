"""Headless Chromium from Debian (`chromium`, `chromium-driver`) driven by Selenium.

Nothing is downloaded: the browser and the driver are the system's (/usr/bin), and
Selenium Manager is kept offline. Selenium's calls block, so each runs in a thread while
the test's event loop goes on serving the switch and the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.tools import need

T = TypeVar("T")
WAIT = 15.0


class Browser:
    """One headless Chromium window."""

    def __init__(self, driver: Any, base: str, out: Path) -> None:
        self.driver = driver
        self.base = base
        self.out = out

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def get(self, path: str) -> None:
        await self.call(self.driver.get, self.base + path)

    async def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return await self.call(self.driver.find_element, By.CSS_SELECTOR, css)

    async def type(self, css: str, text: str, clear: bool = True) -> None:
        element = await self.find(css)
        if clear:
            await self.call(element.clear)
        await self.call(element.send_keys, text)

    async def click(self, css: str) -> None:
        await self.call((await self.find(css)).click)

    async def text(self, css: str) -> str:
        return str(await self.call(lambda: self.driver.find_element("css selector", css).text))

    async def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
        """Until `condition(driver)` is true (bounded); fails with `what`."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        def run() -> Any:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)

        try:
            return await self.call(run)
        except TimeoutException:
            await self.screenshot("timeout")
            raise AssertionError(f"the page never showed {what} within {timeout} s") from None

    async def wait_text(
        self, css: str, text: str, timeout: float = WAIT, *, exact: bool = False
    ) -> None:
        """Until the element shows `text` (all of its text with `exact`)."""

        def shows(driver: Any) -> bool:
            try:
                shown = driver.find_element("css selector", css).text
            except Exception:
                return False
            return bool(shown == text if exact else text in shown)

        await self.wait(shows, f"{text!r} in {css}", timeout)

    async def login(self, user: str, password: str, page: str = "/desktop") -> None:
        await self.get("/login")
        await self.type("#username", user)
        await self.type("#password", password)
        await self.click("#login")
        await self.wait(
            lambda d: (
                d.current_url.endswith(page)
                and d.execute_script("return document.body.dataset.ready") == "1"
            ),
            f"{page} ready",
        )

    async def screenshot(self, name: str) -> Path:
        path = self.out / f"{name}.png"
        await self.call(self.driver.save_screenshot, str(path))
        return path

    async def script(self, source: str) -> Any:
        return await self.call(self.driver.execute_script, source)


@contextlib.asynccontextmanager
async def chromium(base: str, out: Path, extra: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    """A headless Chromium (quit at the end); screenshots go to `out`; `extra` are more
    command-line switches (a fake microphone for the browser phone)."""
    browser_path = need("chromium")
    driver_path = need("chromedriver")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    out.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = browser_path
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={out / 'profile'}",
        *extra,
    ):
        options.add_argument(arg)
    service = Service(executable_path=driver_path, log_output=str(out / "chromedriver.log"))
    loop = asyncio.get_running_loop()
    driver = await loop.run_in_executor(
        None, lambda: webdriver.Chrome(options=options, service=service)
    )
    try:
        yield Browser(driver, base, out)
    finally:
        await loop.run_in_executor(None, driver.quit)
