"""The IVR runner: menus (`ivr.menu`) played on calls through the Call API.

`IvrApplication` is an application of the switch (`pbx.api.Application`): it owns
the numbers of the stored menus and time conditions. For a call to one of them it
answers with the switch's own media, plays the menu's greeting (a key cuts it short),
collects a key and carries out its action: dial an extension or ring group (the
caller is then bridged through the relay), go to another menu, repeat, hang up, or
collect an extension number (dial-by-extension). Silence replays the timeout prompt,
a key with no action the invalid prompt; after `retries` of either the menu's
fallback action runs. A prompt that cannot be loaded is replaced by a short tone
so a caller is never left in silence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ivr.menu import Action, Menu, menu_for_number, parse_toml
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import Call, Cause, Switch

log = logging.getLogger(__name__)

#: Seconds between the digits of an extension number dialled from a menu.
INTER_DIGIT = 3.0


class IvrApplication:
    """Menus stored in the switch's database, prompts under `data_dir/prompts`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        player: PromptPlayer | None = None,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.player = player or PromptPlayer(PromptStore(data_dir / "prompts"))
        self._clock = clock

    async def _lookup(self, switch: Switch, number: str) -> tuple[dict[str, Menu], Menu | None]:
        """The stored menus and the one for `number` — asked for per call (the store keeps
        the text in memory), so `pbx ivr import` applies within a second."""
        text = await switch.ivr_menus()
        if not text:
            return {}, None
        menus, schedules = parse_toml(text)
        return {m.name: m for m in menus}, menu_for_number(number, menus, schedules, self._clock())

    async def handles(self, number: str, switch: Switch) -> bool:
        _, menu = await self._lookup(switch, number)
        return menu is not None

    async def run(self, call: Call, switch: Switch) -> str:
        menus, menu = await self._lookup(switch, call.callee)
        if menu is None:
            await call.hangup(404, "Not Found")
            return "404 no menu"
        await self.player.ensure_defaults()
        if not await call.answer():
            return "488 IVR media: the call could not be answered with the switch's media"
        return await self._serve(call, switch, menus, menu)

    async def _serve(self, call: Call, switch: Switch, menus: dict[str, Menu], menu: Menu) -> str:
        misses = 0
        while call.up:
            await self._play(call, menu.greeting, stop_on_digit=True)
            action, heard = await self._choice(call, menu)
            if action is None:
                misses += 1
                if misses <= menu.retries:
                    await self._play(
                        call, menu.timeout_prompt if not heard else menu.invalid_prompt
                    )
                    continue
                action = menu.fallback
            result = await self._act(call, switch, menus, menu, action)
            if isinstance(result, Menu):
                menu, misses = result, 0
                continue
            if result is not None:
                return result
            misses += 1  # the action failed (nobody answered ...): back to the menu
            if misses > menu.retries:
                return await self._finish(call, menus, switch, menu.fallback)
        return "caller hung up in the IVR"

    async def _choice(self, call: Call, menu: Menu) -> tuple[Action | None, bool]:
        """The action the caller picked, and whether any key was heard at all."""
        key = await call.collect_digits(1, timeout=menu.timeout, terminator=None)
        if key:
            _note_choice(call, menu.name, key)
        if not key:
            return None, False
        action = menu.options.get(key)
        if action is not None and action.kind == "dial_by_extension":
            number = await call.collect_digits(
                menu.extension_digits, timeout=menu.timeout, inter_digit_timeout=INTER_DIGIT
            )
            return (Action("extension", number) if number else None), True
        if action is None and menu.dial_by_extension and key.isdigit():
            rest = await call.collect_digits(
                menu.extension_digits - 1, timeout=INTER_DIGIT, inter_digit_timeout=INTER_DIGIT
            )
            return Action("extension", key + rest), True
        return action, True

    async def _act(
        self,
        call: Call,
        switch: Switch,
        menus: dict[str, Menu],
        menu: Menu,
        action: Action,
    ) -> Menu | str | None:
        """Carry out an action: a Menu to go on with, a final cause, or None (failed)."""
        if action.kind == "repeat":
            return menu
        if action.kind == "menu" and action.target in menus:
            return menus[action.target]
        if action.kind == "extension" and action.target:
            outcome = await call.transfer(action.target)
            if outcome.cause is Cause.NORMAL:
                return outcome.reason
            log.info("call %s: IVR could not reach %s: %s", call.id, action.target, outcome)
            if not call.up:
                return "caller hung up while the IVR dialled"
            await self._play(call, menu.invalid_prompt)
            return None
        return await self._finish(call, menus, switch, action)

    async def _finish(
        self, call: Call, menus: dict[str, Menu], switch: Switch, action: Action
    ) -> str:
        """Leave the menu for good: into a mailbox (`voicemail`), or hang up."""
        if action.kind == "voicemail" and action.target and switch.voicemail is not None:
            return await switch.voicemail.deposit(call, action.target, "unavailable", switch)
        await self._play(call, "ivr-goodbye")
        await call.hangup(0, "IVR hangup")
        return f"IVR {action.kind}"

    async def _play(self, call: Call, name: str, *, stop_on_digit: bool = False) -> bool:
        return await self.player.play(call, name, stop_on_digit=stop_on_digit)


#: The longest IVR trail kept on a call (a caller going round in menus).
MAX_TRAIL = 200


def _note_choice(call: Call, menu: str, key: str) -> None:
    """Add "MENU KEY" to the call's "ivr" tag ("main 4 > support 2"): what the caller
    chose, for whoever serves the call next (the ACD's screen pop)."""
    trail = call.tags.get("ivr", "")
    step = f"{menu} {key}"
    joined = f"{trail} > {step}" if trail else step
    call.tags["ivr"] = joined if len(joined) <= MAX_TRAIL else "... " + joined[-MAX_TRAIL:]
