"""What the browser phone tests share: a Chromium with a fake microphone playing a tone,
the page's phone switched on, and tone checks on both ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from media.wav import write_wav
from tests.interop.baresip import Baresip
from tests.web.browser import Browser, chromium

#: What the browser's fake microphone says, and what baresip's ausine says.
BROWSER_HZ = 1000
BARESIP_HZ = 440
RATE = 48000


def tone_wav(path: Path, hz: float = BROWSER_HZ, seconds: float = 20.0) -> Path:
    """A mono 48 kHz tone for `--use-file-for-fake-audio-capture` (Chromium loops it)."""
    t = np.arange(int(RATE * seconds)) / RATE
    write_wav(path, (9000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), RATE)
    return path


def fake_mic(wav: Path) -> tuple[str, ...]:
    return (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    )


@contextlib.asynccontextmanager
async def phone_browser(base: str, out: Path) -> AsyncIterator[Browser]:
    """A Chromium whose microphone plays BROWSER_HZ."""
    wav = tone_wav(out.parent / f"{out.name}-mic.wav")
    async with chromium(base, out, fake_mic(wav)) as browser:
        yield browser


async def open_desktop(browser: Browser, user: str, password: str, landing: str) -> None:
    """Log in (landing on `landing`), open the desktop and switch the phone on."""
    await browser.login(user, password, landing)
    if landing != "/desktop":
        await browser.get("/desktop")
        await browser.wait(
            lambda d: d.execute_script("return document.body.dataset.ready") == "1",
            "/desktop ready",
        )
    await browser.click("#phone-on")
    await browser.wait_text("#phone-status", "ready", exact=True)


async def hears(browser: Browser, hz: float, timeout: float = 15.0) -> None:
    """Until the page's meter shows `hz` (within 30 Hz) as the far end's loudest tone."""

    def heard(driver: Any) -> bool:
        value = driver.execute_script("return document.body.dataset.phoneHeard || '0'")
        return abs(float(value) - hz) < 30

    await browser.wait(heard, f"the far end's {hz} Hz tone", timeout)


def peak_hz(samples: npt.NDArray[np.int16], rate: int = 8000) -> float:
    chunk = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
    return float(np.fft.rfftfreq(len(chunk), 1 / rate)[int(np.argmax(spectrum))])


def tone_seconds(samples: npt.NDArray[np.int16], hz: float, rate: int = 8000) -> float:
    """Seconds of `samples` (100 ms windows) that are loud with `hz` as the peak."""
    window = rate // 10
    found = 0
    for start in range(0, len(samples) - window, window):
        chunk = samples[start : start + window]
        if np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) < 300:
            continue
        if abs(peak_hz(chunk, rate) - hz) < 30:
            found += 1
    return found / 10


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)


async def baresip_hears(phone: Baresip, hz: float, seconds: float = 1.0) -> None:
    """Until baresip's recording of the call holds `seconds` of the tone `hz`."""
    loop = asyncio.get_running_loop()

    async def check() -> bool:
        audio = await loop.run_in_executor(None, phone.received_audio)
        return tone_seconds(audio, hz) >= seconds

    deadline = loop.time() + 15.0
    while not await check():
        assert loop.time() < deadline, f"baresip never heard {seconds} s of {hz} Hz"
        await asyncio.sleep(0.2)
