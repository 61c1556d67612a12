"""The conference application against the in-memory fake of the Call API: PIN tries,
a full room, joining and leaving (with the join and leave tones), no SIP and no RTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.conference import JOIN_TONE, LEAVE_TONE, ConferenceApplication
from pbx.api import Cause, ConferenceRoom, Outcome, Role
from tests.fakes.call_api import FakeCall, FakeSwitch, NamedPrompts


class RoomCall(FakeCall):
    """A fake call that can be waited on until it ends."""

    async def wait_ended(self) -> Outcome:
        while not self.ended:  # bounded by `_run`'s timeout
            await asyncio.sleep(0.001)
        return Outcome(Cause.NORMAL, 0, self.hangup_reason or "caller hung up")


class FakeRooms:
    def __init__(self, rooms: dict[str, tuple[str | None, int]]) -> None:
        self.rooms = rooms

    async def get(self, number: str) -> ConferenceRoom | None:
        room = self.rooms.get(number)
        return None if room is None else ConferenceRoom(number, room[0] is not None, room[1])

    async def check_pin(self, number: str, pin: str) -> bool:
        room = self.rooms.get(number)
        return room is not None and room[0] in (None, pin)


class FakeConference:
    def __init__(self) -> None:
        self.members: list[RoomCall] = []
        self.log: list[str] = []

    def __len__(self) -> int:
        return sum(1 for m in self.members if not m.ended)

    def add(self, call: RoomCall, role: Role = Role.SPEAK) -> None:
        self.members.append(call)
        self.log.append(f"add {call.caller}")

    async def announce(self, samples: npt.NDArray[np.int16]) -> None:
        self.log.append("join" if samples is JOIN_TONE else "leave")


class RoomSwitch(FakeSwitch):
    def __init__(self, rooms: dict[str, tuple[str | None, int]]) -> None:
        super().__init__()
        self.conference_store = FakeRooms(rooms)
        self.rooms: dict[str, FakeConference] = {}

    def conference(self, name: str) -> FakeConference:
        return self.rooms.setdefault(name, FakeConference())


@pytest.fixture
def prompts(tmp_path: Path) -> NamedPrompts:
    return NamedPrompts(tmp_path / "prompts")


async def _run(app: ConferenceApplication, call: RoomCall, switch: RoomSwitch) -> str:
    return await asyncio.wait_for(app.run(call, switch.as_switch()), 5)  # type: ignore[arg-type]


async def test_three_wrong_pins_say_goodbye(prompts: NamedPrompts) -> None:
    switch = RoomSwitch({"8000": ("4321", 5)})
    app = ConferenceApplication(prompts)
    assert await app.handles("8000", switch.as_switch())
    assert not await app.handles("8001", switch.as_switch())
    call = RoomCall("1001", "8000", keys=["1111#", "2222#", "3333#"], prompts=prompts)
    assert await _run(app, call, switch) == "conference 8000: PIN refused"
    assert call.heard == ["vm-pin", "vm-incorrect"] * 3 + ["ivr-goodbye"]
    assert call.ended and call.hangup_reason == "conference PIN refused"
    assert "8000" not in switch.rooms


async def test_the_right_pin_joins_with_a_tone_and_hanging_up_leaves(
    prompts: NamedPrompts,
) -> None:
    switch = RoomSwitch({"8000": ("4321", 5)})
    app = ConferenceApplication(prompts)
    call = RoomCall("1001", "8000", keys=["9999#", "4321#"], prompts=prompts)
    running = asyncio.ensure_future(_run(app, call, switch))
    for _ in range(1000):  # a few loop turns: the fake plays and collects at once
        if "8000" in switch.rooms and "join" in switch.rooms["8000"].log:
            break
        await asyncio.sleep(0)
    assert "join" in switch.rooms["8000"].log
    assert call.heard == ["vm-pin", "vm-incorrect", "vm-pin"]
    await call.hangup()
    assert (await running).startswith("left conference 8000")
    assert switch.rooms["8000"].log == ["add 1001", "join", "leave"]


async def test_a_full_room_turns_callers_away_and_no_pin_asks_none(
    prompts: NamedPrompts,
) -> None:
    switch = RoomSwitch({"8000": (None, 2)})
    room = switch.conference("8000")
    room.members = [RoomCall("a", "8000"), RoomCall("b", "8000")]
    app = ConferenceApplication(prompts)
    call = RoomCall("1003", "8000", prompts=prompts)
    assert await _run(app, call, switch) == "conference 8000: full"
    assert call.heard == ["ivr-goodbye"] and call.hangup_reason == "conference full"
    assert LEAVE_TONE is not JOIN_TONE
