"""Conference rooms as an application of the switch (`pbx.api.Application`).

It owns the numbers of the stored rooms (`pbx conf add`). A call to one is answered
with the switch's own media; when the room has a PIN the caller is asked for it (three
tries, then goodbye); a full room says goodbye too. The caller then joins the room on
the switch-wide mixer as a speaker, and the room (the joiner included) hears a rising
join tone; when the caller hangs up (or is kicked) the others hear a falling leave
tone. Roles other than speaker are set through the API (`Conference.set_role`).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from ivr.player import PromptPlayer
from media.endpoint import tone
from pbx.api import Call, PbxError, Switch

log = logging.getLogger(__name__)

#: Tries a caller has to enter a room's PIN.
PIN_TRIES = 3
#: Seconds to wait for the PIN's first digit, and between its digits.
PIN_TIMEOUT = 8.0


def _two_tones(first: float, second: float) -> npt.NDArray[np.int16]:
    return np.concatenate([tone(first, 0.12, 6000.0), tone(second, 0.12, 6000.0)])


#: What the room hears when someone joins (rising) and leaves (falling).
JOIN_TONE = _two_tones(660.0, 990.0)
LEAVE_TONE = _two_tones(990.0, 660.0)


class ConferenceApplication:
    """The rooms stored in the switch's database; prompts from `player`."""

    def __init__(
        self,
        player: PromptPlayer,
        *,
        join_tone: npt.NDArray[np.int16] = JOIN_TONE,
        leave_tone: npt.NDArray[np.int16] = LEAVE_TONE,
    ) -> None:
        self.player = player
        self.join_tone = join_tone
        self.leave_tone = leave_tone

    async def handles(self, number: str, switch: Switch) -> bool:
        return await switch.conference_store.get(number) is not None

    async def run(self, call: Call, switch: Switch) -> str:
        number = call.callee
        room = await switch.conference_store.get(number)  # `pbx conf` applies within 1 s
        if room is None:
            await call.hangup(404, "Not Found")
            return "404 no conference room"
        await self.player.ensure_defaults()
        if not await call.answer():
            return "488 conference media: the call could not be answered with the switch's"
        if room.has_pin and not await self._pin(call, switch, number):
            if call.up:
                await self.player.play(call, "ivr-goodbye")
                await call.hangup(0, "conference PIN refused")
            return f"conference {number}: PIN refused"
        if not call.up:
            return f"caller hung up before joining conference {number}"
        conference = switch.conference(number)
        if len(conference) >= room.max_members:
            log.info("conference %s full (%d): %s turned away", number, room.max_members, call.id)
            await self.player.play(call, "ivr-goodbye")
            await call.hangup(0, "conference full")
            return f"conference {number}: full"
        try:
            conference.add(call)
        except PbxError as exc:
            log.info("call %s: cannot join conference %s: %s", call.id, number, exc)
            await call.hangup(0, "conference join failed")
            return f"conference {number}: {exc}"
        await conference.announce(self.join_tone)
        outcome = await call.wait_ended()  # the endpoint leaves the room as the call ends
        await conference.announce(self.leave_tone)
        return f"left conference {number}: {outcome}"

    async def _pin(self, call: Call, switch: Switch, number: str) -> bool:
        """Whether the caller entered the room's PIN within `PIN_TRIES` tries."""
        for _ in range(PIN_TRIES):
            await self.player.play(call, "vm-pin", stop_on_digit=True)
            pin = await call.collect_digits(
                12, timeout=PIN_TIMEOUT, inter_digit_timeout=PIN_TIMEOUT
            )
            if not call.up:
                return False
            if pin and await switch.conference_store.check_pin(number, pin):
                return True
            log.info("call %s: wrong PIN for conference %s", call.id, number)
            await self.player.play(call, "vm-incorrect")
        return False
