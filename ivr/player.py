"""Playing prompts on calls: what the IVR runner and voicemail share.

Prompts are loaded from the `PromptStore` in a worker thread and cached until their
file changes (so `pbx prompt say` applies to the next call). A prompt that cannot
be loaded is replaced by a short tone, so a caller never meets silence.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ivr.prompts import PromptError, PromptStore
from media.endpoint import tone
from media.wav import WavError, load_mono
from pbx.api import Call

log = logging.getLogger(__name__)

Audio = npt.NDArray[np.int16]


class PromptPlayer:
    """Prompts of one store, cached by file modification time."""

    def __init__(self, store: PromptStore) -> None:
        self.store = store
        self._cache: dict[tuple[str, float], Audio] = {}
        self._loading: dict[tuple[str, float], asyncio.Future[Audio]] = {}
        self._defaults_ready = False

    def prepare_defaults(self) -> None:
        """Create the missing default prompts (blocking: run it in a thread). Two runs
        at once are harmless: each file is replaced atomically."""
        try:
            created = self.store.ensure_defaults()
        except PromptError as exc:
            log.warning("default prompts not created: %s", exc)
        else:
            if created:
                log.info("created %d default prompts in %s", len(created), self.store.root)
        self._defaults_ready = True

    async def ensure_defaults(self) -> None:
        """Create the missing default prompts once (in a worker thread)."""
        if not self._defaults_ready:
            await asyncio.to_thread(self.prepare_defaults)

    async def audio(self, name: str) -> Audio:
        """A prompt's samples (a short tone when it cannot be loaded)."""
        try:
            key = (name, self.store.path(name).stat().st_mtime)
        except (OSError, PromptError):
            key = (name, 0.0)
        audio = self._cache.get(key)
        if audio is not None:
            return audio
        # One load per prompt however many calls ask at once (a campaign's first lines,
        # a queue's callers): each would read and resample it in a thread of its own.
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(name, key))
        return await asyncio.shield(loading)

    async def _load(self, name: str, key: tuple[str, float]) -> Audio:
        try:
            audio = await asyncio.to_thread(self.store.load, name)
        except PromptError as exc:
            log.warning("prompt %s: %s; playing a tone instead", name, exc)
            audio = tone(480, 0.3)
        finally:
            self._loading.pop(key, None)
        self._cache[key] = audio
        return audio

    async def play(self, call: Call, *names: str, stop_on_digit: bool = False) -> bool:
        """Play prompts one after another; False when a key (with `stop_on_digit`) or the
        end of the call cut them short."""
        for name in names:
            if not call.up or not call.has_media:
                return False
            if not await call.play(await self.audio(name), stop_on_digit=stop_on_digit):
                return False
        return call.up

    async def play_file(self, call: Call, path: Path, *, stop_on_digit: bool = False) -> bool:
        """Play a WAV file that is not a prompt (a message, a greeting); a file that cannot
        be read plays a short tone instead."""
        try:
            audio = await asyncio.to_thread(load_mono, path)
        except (OSError, WavError) as exc:
            log.warning("cannot play %s: %s", path, exc)
            audio = tone(480, 0.3)
        if not call.up or not call.has_media:
            return False
        return await call.play(audio, stop_on_digit=stop_on_digit)
