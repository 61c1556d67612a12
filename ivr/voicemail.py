"""Voicemail on the Call API: taking messages, and the mailbox menu on `*97`.

Every extension has a mailbox; its number is the extension's. Calls reach it by
forwarding (`pbx user forward 1002 --busy voicemail --no-answer voicemail`) or an
IVR `voicemail:BOX` action. The caller hears the box's own greeting (busy or
unavailable, recorded from the phone) or the system one, then the beep; what the
caller says until `#`, silence, the time limit or hanging up is kept as an 8 kHz
WAV under `data_dir/voicemail/BOX/` with a database row, and the message lights
are told (`Switch.mailbox_changed`, which MWI turns into NOTIFYs).

`*97` from a phone opens that phone's own mailbox after its PIN, `*98` any
mailbox after its number and PIN (Asterisk's VoiceMailMain keys): 1 listen,
0 mailbox options, # hang up; while listening 5 repeat, 4 previous, 6 next,
7 delete, 9 keep, # back. A message heard is filed as
old. A box without a PIN cannot be opened (no default PINs); wrong PINs are
limited per call and, across calls, per box (a lockout against guessing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from ivr.player import PromptPlayer
from ivr.prompts import BEEP, PromptStore
from pbx.api import PIN_DIGITS, Call, Switch, Voicemail

log = logging.getLogger(__name__)

FEATURE_CODE = "*97"  # the caller's own mailbox
ANY_BOX_CODE = "*98"  # any mailbox: its number, then its PIN
GREETINGS = ("unavailable", "busy")


class PinGuard:
    """Wrong PINs per mailbox: after `limit` within `window` seconds the box stays shut
    for `window` seconds, whatever is entered (the caller hears "not correct")."""

    def __init__(
        self, limit: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def blocked(self, box: str) -> bool:
        now = self._clock()
        recent = [t for t in self._failures.get(box, []) if now - t < self.window]
        if recent:
            self._failures[box] = recent
        else:
            self._failures.pop(box, None)
        return len(recent) >= self.limit

    def failed(self, box: str) -> None:
        self._failures.setdefault(box, []).append(self._clock())

    def succeeded(self, box: str) -> None:
        self._failures.pop(box, None)


class VoicemailApplication:
    """Mailboxes under `data_dir/voicemail`; prompts from `data_dir/prompts`.

    It is both an application of the switch (it owns the number `*97`) and the
    switch's `VoicemailService` (calls forwarded to voicemail).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        player: PromptPlayer | None = None,
        clock: Callable[[], float] = time.time,
        max_message_seconds: float = 180.0,
        max_messages: int = 100,
        silence_seconds: float = 10.0,
        key_timeout: float = 10.0,
        pin_guard: PinGuard | None = None,
    ) -> None:
        self.root = data_dir / "voicemail"
        self.player = player or PromptPlayer(PromptStore(data_dir / "prompts"))
        self._clock = clock
        self.max_message_seconds = max_message_seconds
        self.max_messages = max_messages
        self.silence_seconds = silence_seconds
        self.key_timeout = key_timeout
        self.guard = pin_guard or PinGuard()

    # -- files ---------------------------------------------------------------------

    def box_dir(self, box: str) -> Path:
        """The directory of a box's messages and greetings (box names are user names,
        which the store restricts to safe characters)."""
        if not box or "/" in box or box in (".", ".."):
            raise ValueError(f"bad mailbox name {box!r}")
        return self.root / box

    def greeting_path(self, box: str, kind: str) -> Path:
        return self.box_dir(box) / f"greeting-{kind}.wav"

    # -- the switch's hooks --------------------------------------------------------

    async def handles(self, number: str, switch: Switch) -> bool:
        return number in (FEATURE_CODE, ANY_BOX_CODE)

    async def run(self, call: Call, switch: Switch) -> str:
        """`*97`: the calling phone's own mailbox; `*98`: the one whose number it enters."""
        if not await self._answer(call, switch):
            return "488 voicemail media"
        box = call.caller
        if call.callee == ANY_BOX_CODE:
            await self.player.play(call, "vm-box", stop_on_digit=True)
            box = await call.collect_digits(32, timeout=self.key_timeout, inter_digit_timeout=5.0)
            if not box:
                await self._goodbye(call, "ivr-goodbye")
                return "voicemail: no mailbox number entered"
            if not await self._box_exists(switch, box):
                # Same prompts as a wrong PIN: which numbers have boxes is not told.
                await self._login(call, switch, box)
                await self._goodbye(call, "ivr-goodbye")
                return f"voicemail {box}: no such mailbox"
        own_box = call.callee == FEATURE_CODE
        if own_box and not await switch.voicemail_store.has_pin(box):
            await self.player.play(call, "vm-no-pin")
            await call.hangup(0, "mailbox has no PIN")
            return f"voicemail {box}: no PIN set"
        if not await self._login(call, switch, box):
            if call.up:
                await self.player.play(call, "ivr-goodbye")
                await call.hangup(0, "voicemail login failed")
            return f"voicemail {box}: login failed"
        await self._announce_counts(call, switch, box)
        await self._main_menu(call, switch, box)
        if call.up:
            await self.player.play(call, "ivr-goodbye")
            await call.hangup(0, "voicemail menu done")
        return f"voicemail {box}: menu"

    async def deposit(self, call: Call, box: str, reason: str, switch: Switch) -> str:
        """Take a message for `box` (the switch's VoicemailService)."""
        if not await self._box_exists(switch, box):
            log.warning("call %s: no mailbox %r", call.id, box)
            if call.up:
                await self._goodbye(call, "ivr-goodbye")
            else:
                await call.hangup(404, "Not Found")
            return f"404 no mailbox {box}"
        if not await self._answer(call, switch):
            return "488 voicemail media"
        new, old = await switch.voicemail_store.counts(box)
        if new + old >= self.max_messages:
            log.warning("voicemail %s: full (%d messages); message refused", box, new + old)
            await self._goodbye(call, "vm-full")
            return f"voicemail {box}: mailbox full"
        kind = "busy" if reason == "busy" else "unavailable"
        own = self.greeting_path(box, kind)
        if own.exists():
            await self.player.play_file(call, own, stop_on_digit=True)
        else:
            await self.player.play(call, f"vm-{kind}", stop_on_digit=True)
        if not await self.player.play(call, BEEP):
            return f"caller hung up before the beep ({box})"
        created = self._clock()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
        path = self.box_dir(box) / f"{stamp}-{secrets.token_hex(4)}.wav"
        try:
            heard = await call.record(
                path,
                max_seconds=self.max_message_seconds,
                silence_seconds=self.silence_seconds,
            )
        except OSError as exc:
            log.error("voicemail %s: cannot store the message: %s", box, exc)
            await call.hangup(0, "voicemail storage failed")
            return f"voicemail {box}: storage failed"
        if heard.sound_seconds == 0:
            await self._goodbye(call, "ivr-goodbye")
            return f"voicemail {box}: nothing said"
        await switch.voicemail_store.add(box, call.caller, created, heard.seconds, str(path))
        log.info("voicemail %s: %.1f s message from %s", box, heard.seconds, call.caller)
        await switch.mailbox_changed(box)
        await self._goodbye(call, "vm-saved")
        return f"voicemail left for {box}"

    # -- steps ---------------------------------------------------------------------

    async def _answer(self, call: Call, switch: Switch) -> bool:
        """Answer with the switch's own media unless the call has it already (an IVR)."""
        await self.player.ensure_defaults()
        if call.has_media:
            return call.up
        if not await call.answer():
            log.info("call %s: voicemail cannot answer", call.id)
            return False
        return call.up

    async def _box_exists(self, switch: Switch, box: str) -> bool:
        return await switch.user_exists(box)

    async def _goodbye(self, call: Call, prompt: str) -> None:
        if call.up:
            await self.player.play(call, prompt)
            await call.hangup(0, "voicemail done")

    async def _key(self, call: Call) -> str:
        return await call.collect_digits(1, timeout=self.key_timeout, terminator=None)

    async def _login(self, call: Call, switch: Switch, box: str) -> bool:
        for _ in range(3):
            if not call.up:
                return False
            await self.player.play(call, "vm-pin", stop_on_digit=True)
            pin = await call.collect_digits(
                PIN_DIGITS[1], timeout=self.key_timeout, inter_digit_timeout=5.0
            )
            if not pin:
                continue
            if not self.guard.blocked(box) and await switch.voicemail_store.check_pin(box, pin):
                self.guard.succeeded(box)
                return True
            self.guard.failed(box)
            log.warning("voicemail %s: wrong PIN from %s (%s)", box, call.caller, call.peer_host)
            await self.player.play(call, "vm-incorrect")
        return False

    async def _announce_counts(self, call: Call, switch: Switch, box: str) -> None:
        new, old = await switch.voicemail_store.counts(box)
        await self.player.play(
            call,
            "vm-you-have",
            *_number(new),
            "vm-new",
            "vm-and",
            *_number(old),
            "vm-old",
            "vm-messages",
            stop_on_digit=True,
        )

    async def _main_menu(self, call: Call, switch: Switch, box: str) -> None:
        misses = 0
        while call.up and misses < 3:
            await self.player.play(call, "vm-main-menu", stop_on_digit=True)
            key = await self._key(call)
            if key == "1":
                await self._listen(call, switch, box)
            elif key == "0":
                await self._options(call, box)
            elif key == "#":
                return
            else:
                misses += 1
                if key:
                    await self.player.play(call, "ivr-invalid")
                continue
            misses = 0

    async def _listen(self, call: Call, switch: Switch, box: str) -> None:
        store = switch.voicemail_store
        messages = await store.messages(box)
        index = 0
        while call.up and index < len(messages):
            message = messages[index]
            await self._play_message(call, switch, message, index)
            if message.folder == "new":
                await store.move(message.id, "old")
                await switch.mailbox_changed(box)
                messages[index] = dataclasses.replace(message, folder="old")
            step = await self._after_message(call, switch, messages, index)
            if step is None:
                return
            index = step
        if call.up:
            await self.player.play(call, "vm-no-more")

    async def _play_message(
        self, call: Call, switch: Switch, message: Voicemail, index: int
    ) -> None:
        if await self.player.play(call, "vm-message", *_number(index + 1), stop_on_digit=True):
            await self.player.play_file(call, Path(message.path), stop_on_digit=True)

    async def _after_message(
        self, call: Call, switch: Switch, messages: list[Voicemail], index: int
    ) -> int | None:
        """The next message index to play (the same one to repeat), or None: main menu."""
        misses = 0
        while call.up and misses < 3:
            key = ""
            if call.digits_waiting():
                key = await self._key(call)  # pressed during the message
            if not key:
                await self.player.play(call, "vm-message-menu", stop_on_digit=True)
                key = await self._key(call)
            if key == "5":
                return index
            if key == "4":
                return max(0, index - 1)
            if key == "6":
                return index + 1
            if key == "9":
                await self.player.play(call, "vm-kept")
                return index + 1
            if key == "7":
                await self._delete(switch, messages.pop(index))
                await self.player.play(call, "vm-deleted")
                return index
            if key == "#":
                return None
            misses += 1
            if key:
                await self.player.play(call, "ivr-invalid")
        return None

    async def _delete(self, switch: Switch, message: Voicemail) -> None:
        gone = await switch.voicemail_store.delete(message.id)
        if gone is not None:
            await asyncio.to_thread(Path(gone.path).unlink, missing_ok=True)
            await switch.mailbox_changed(message.box)

    async def _options(self, call: Call, box: str) -> None:
        while call.up:
            await self.player.play(call, "vm-options", stop_on_digit=True)
            key = await self._key(call)
            if key in ("1", "2"):
                await self._record_greeting(call, box, GREETINGS[int(key) - 1])
            elif key == "#" or not key:
                return
            else:
                await self.player.play(call, "ivr-invalid")

    async def _record_greeting(self, call: Call, box: str, kind: str) -> None:
        await self.player.play(call, "vm-record-greeting", stop_on_digit=True)
        if not await self.player.play(call, BEEP):
            return
        try:
            heard = await call.record(
                self.greeting_path(box, kind), max_seconds=60.0, silence_seconds=3.0
            )
        except OSError as exc:
            log.error("voicemail %s: cannot store the greeting: %s", box, exc)
            return
        if heard.sound_seconds > 0:
            await self.player.play(call, "vm-greeting-saved")


def _number(n: int) -> list[str]:
    """The digit prompts that say `n` ("one", "two" for 12)."""
    return [f"digit-{d}" for d in str(max(0, n))]
