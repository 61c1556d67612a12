"""What the simulated callees say: espeak-ng speech when installed, else tone patterns.

Synthesis runs in a subprocess awaited on the loop (nothing blocks), bounded in time;
the result is 8 kHz int16 audio, cached per text.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.endpoint import RATE, tone
from media.wav import WavError, load_mono

log = logging.getLogger(__name__)

#: Seconds espeak-ng may take for one greeting.
SPEAK_TIMEOUT = 20.0
#: Greeting frequencies when no synthesizer exists: a "hello" of two short tones.
FALLBACK_HZ = (440.0, 550.0)
#: The answering machine's beep.
BEEP_HZ = 1000.0


def beep() -> npt.NDArray[np.int16]:
    """The answering machine's beep: 1 kHz for half a second."""
    return tone(BEEP_HZ, 0.5)


def tone_greeting(seconds: float) -> npt.NDArray[np.int16]:
    """A stand-in for speech: alternating tones with gaps, about `seconds` long."""
    parts: list[npt.NDArray[np.int16]] = []
    total = 0.0
    i = 0
    while total < seconds and i < 1000:
        parts += [tone(FALLBACK_HZ[i % 2], 0.25), np.zeros(RATE // 10, np.int16)]
        total += 0.35
        i += 1
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


class Voice:
    """Greetings by text, synthesized once each."""

    def __init__(self, *, use_espeak: bool = True) -> None:
        self._exe = shutil.which("espeak-ng") if use_espeak else None
        self._cache: dict[str, npt.NDArray[np.int16]] = {}

    @property
    def speaks(self) -> bool:
        """Whether greetings are speech (else tone patterns)."""
        return self._exe is not None

    async def say(self, text: str, fallback_seconds: float) -> npt.NDArray[np.int16]:
        """The audio of `text` (tones of about `fallback_seconds` when espeak-ng is missing
        or fails)."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        audio = await self._speak(text) if self._exe is not None else None
        if audio is None:
            audio = tone_greeting(fallback_seconds)
        if len(self._cache) < 64:
            self._cache[text] = audio
        return audio

    async def _speak(self, text: str) -> npt.NDArray[np.int16] | None:
        assert self._exe is not None
        with tempfile.TemporaryDirectory(prefix="aiopbx-sim-") as tmp:
            out = Path(tmp) / "say.wav"
            proc = await asyncio.create_subprocess_exec(
                self._exe,
                "-w",
                str(out),
                "--",
                text,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                async with asyncio.timeout(SPEAK_TIMEOUT):
                    code = await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                log.warning("espeak-ng took over %s s; using tones", SPEAK_TIMEOUT)
                return None
            except asyncio.CancelledError:
                proc.kill()  # the call (or the simulator) ended: leave no process behind
                await asyncio.shield(proc.wait())
                raise
            if code != 0:
                log.warning("espeak-ng failed (exit %s); using tones", code)
                return None
            try:
                return await asyncio.to_thread(load_mono, out, RATE, max_seconds=60.0)
            except WavError as exc:
                log.warning("espeak-ng output unreadable (%s); using tones", exc.reason)
                return None
