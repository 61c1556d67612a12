"""An in-memory fake of `pbx.api` (issue 11): an application's logic (menus, voicemail,
later queues) runs against scripted callers, with no SIP, RTP or database.

A `FakeCall` is driven by a script: `keys` are the caller's key presses, each group
pressed the next time the application listens for keys with nothing pressed yet (a
prompt a key may cut short, which then stops at once, or a wait for keys); an empty
group is a timeout; a wait for keys after the script ran out: the caller hangs up.
`speech` is what the caller says to each `record` (seconds of sound; 0 is silence).
What the application played is kept
in `heard` as prompt names (with `NamedPrompts` as the player's source).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import Cause, Outcome, Recording, Switch, Voicemail, VoicemailService


class NamedPrompts(PromptPlayer):
    """A prompt player whose every prompt is one distinct frame, so that what a fake
    call was played reads back as prompt names."""

    def __init__(self, root: Path) -> None:
        super().__init__(PromptStore(root))
        self.names: list[str] = []

    async def ensure_defaults(self) -> None:
        return None

    async def audio(self, name: str) -> npt.NDArray[np.int16]:
        if name not in self.names:
            self.names.append(name)
        return np.full(160, self.names.index(name) + 1, np.int16)

    async def play_file(self, call: object, path: Path, *, stop_on_digit: bool = False) -> bool:
        assert isinstance(call, FakeCall)
        if not call.up:
            return False
        return await call.play(
            np.full(160, -1, np.int16), stop_on_digit=stop_on_digit, label=f"file:{path.name}"
        )


class FakeCall:
    """The surface of `pbx.api.Call` an application uses, scripted."""

    _ids = 0

    def __init__(
        self,
        caller: str,
        callee: str,
        *,
        keys: Sequence[str] = (),
        speech: Sequence[float] = (),
        prompts: NamedPrompts | None = None,
        switch: FakeSwitch | None = None,
    ) -> None:
        FakeCall._ids += 1
        self.id = f"fake-{FakeCall._ids}"
        self.caller, self.callee = caller, callee
        self.tags: dict[str, str] = {}
        self.peer_host = "127.0.0.1"
        self.up = False
        self.ended = False
        self.has_media = False
        self.rejected: int | None = None
        self.hangup_reason: str | None = None
        self._keys: deque[str] = deque(keys)
        self._pending = ""  # keys pressed and not collected yet
        self._speech: deque[float] = deque(speech)
        self._prompts = prompts
        self._switch = switch
        self.heard: list[str] = []
        self.transfers: list[str] = []
        self.recorded: list[Path] = []

    def __repr__(self) -> str:
        return f"<FakeCall {self.id} {self.caller}->{self.callee}>"

    # -- signalling ----------------------------------------------------------------

    async def ring(self) -> None:
        return None

    async def answer(self) -> bool:
        if self.ended:
            return False
        self.up = self.has_media = True
        return True

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        if self.ended:
            return
        if not self.up:
            self.rejected = status or 480
        self.hangup_reason = reason
        self._end()

    def _end(self) -> None:
        self.up = False
        self.ended = True
        self.has_media = False

    async def transfer(self, target: str) -> Outcome:
        self.transfers.append(target)
        outcome = (self._switch.reachable if self._switch else {}).get(
            target, Outcome(Cause.NOT_FOUND, 404, f"unknown number {target}")
        )
        if outcome.cause is Cause.NORMAL:
            self._end()
        return outcome

    async def send_dtmf(self, digits: str, *, duration_ms: int = 160) -> bool:
        return self.up

    # -- media ---------------------------------------------------------------------

    def _press_next(self) -> None:
        """The caller presses the next group of keys from the script (or hangs up)."""
        if self._pending:
            return
        if not self._keys:
            self._end()
            return
        self._pending = self._keys.popleft()

    async def play(
        self, samples: npt.ArrayLike, *, stop_on_digit: bool = False, label: str | None = None
    ) -> bool:
        await asyncio.sleep(0)
        if not self.up:
            return False
        audio = np.asarray(samples, np.int16)
        if label is None and self._prompts is not None and len(audio) and audio[0] > 0:
            label = self._prompts.names[int(audio[0]) - 1]
        self.heard.append(label or "audio")
        if stop_on_digit and not self._pending and self._keys and self._keys[0]:
            self._pending = self._keys.popleft()  # pressed during the prompt
        return not (stop_on_digit and self._pending)

    async def music(self) -> None:
        self.heard.append("music")

    def digits_waiting(self) -> bool:
        return bool(self._pending)

    async def collect_digits(
        self,
        max_digits: int,
        *,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminator: str | None = "#",
    ) -> str:
        await asyncio.sleep(0)
        if not self.up:
            return ""
        self._press_next()
        if not self.up:
            return ""
        got = ""
        while self._pending and len(got) < max_digits:
            key, self._pending = self._pending[0], self._pending[1:]
            if terminator is not None and key == terminator:
                break
            got += key
        return got

    async def record(
        self,
        path: Path,
        *,
        max_seconds: float,
        silence_seconds: float | None = None,
        stop_digits: str = "#",
    ) -> Recording:
        await asyncio.sleep(0)
        self._pending = ""
        if not self.up:
            return Recording(np.zeros(0, np.int16), "hangup", None, 0.0)
        seconds = min(self._speech.popleft() if self._speech else 0.0, max_seconds)
        if seconds > 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"RIFF fake")
            self.recorded.append(path)
        samples = np.zeros(int(seconds * 8000), np.int16)
        return Recording(samples, "digit", "#", seconds)

    async def audio(self, max_frames: int = 50) -> AsyncIterator[npt.NDArray[np.int16]]:
        if False:  # pragma: no cover - a fake caller sends no audio
            yield np.zeros(160, np.int16)


class FakeVoicemailRepo:
    """`pbx.store.voicemail.VoicemailRepo` in memory."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}
        self.rows: dict[int, Voicemail] = {}
        self._next = 1

    async def has_pin(self, box: str) -> bool:
        return box in self.pins

    async def check_pin(self, box: str, pin: str) -> bool:
        return self.pins.get(box) == pin

    async def add(self, box: str, caller: str, created: float, duration: float, path: str) -> int:
        row = self._next
        self._next += 1
        self.rows[row] = Voicemail(row, box, caller, created, duration, path, "new")
        return row

    async def messages(self, box: str | None = None, folder: str | None = None) -> list[Voicemail]:
        return [
            m
            for m in self.rows.values()
            if (box is None or m.box == box) and (folder is None or m.folder == folder)
        ]

    async def counts(self, box: str) -> tuple[int, int]:
        mine = await self.messages(box)
        new = sum(1 for m in mine if m.folder == "new")
        return new, len(mine) - new

    async def move(self, message_id: int, folder: str) -> bool:
        if message_id not in self.rows:
            return False
        self.rows[message_id] = dataclasses.replace(self.rows[message_id], folder=folder)
        return True

    async def delete(self, message_id: int) -> Voicemail | None:
        return self.rows.pop(message_id, None)


class FakeSwitch:
    """The surface of `pbx.api.Switch` an application uses."""

    def __init__(
        self,
        *,
        menus: str = "",
        users: Sequence[str] = (),
        reachable: dict[str, Outcome] | None = None,
        voicemail: VoicemailService | None = None,
    ) -> None:
        self.menus = menus
        self.users = set(users)
        #: What `FakeCall.transfer(number)` reaches (default: 404).
        self.reachable = reachable or {}
        self.voicemail = voicemail
        self.voicemail_store = FakeVoicemailRepo()
        self.changed: list[str] = []

    async def ivr_menus(self) -> str:
        return self.menus

    async def user_exists(self, name: str) -> bool:
        return name in self.users

    async def mailbox_changed(self, box: str) -> None:
        self.changed.append(box)

    def as_switch(self) -> Switch:
        """Typed as the real thing for the application's signatures."""
        return self  # type: ignore[return-value]
