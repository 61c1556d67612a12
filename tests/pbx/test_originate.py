"""pbx.originate against an in-memory fake of `Switch.dial`/`bridge`: each stage a
click-to-call can end in, what A hears, what is hung up, the CDR link (`placed_for`)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import numpy.typing as npt
import pytest

from pbx.api import Cause, DialError, Outcome, PbxError, Switch
from pbx.originate import BUSY, RINGBACK, Stage, new_id, originate, shown_number


class Leg:
    """A placed call: plays (ringback until cancelled or the call ends), hangs up."""

    def __init__(self, number: str) -> None:
        self.id = f"leg-{number}"
        self.number = number
        self.ended = False
        self.outcome: Outcome | None = None
        self.played: list[str] = []
        self.hangup_reason: str | None = None
        self._gone = asyncio.Event()

    async def play(self, samples: npt.ArrayLike, *, stop_on_digit: bool = False) -> bool:
        kind = "ringback" if samples is RINGBACK else "busy" if samples is BUSY else "audio"
        if not self.played or self.played[-1] != kind:
            self.played.append(kind)
        if self.ended:
            return False
        if kind == "ringback":
            await self._gone.wait()  # loops until cancelled, like the real endpoint
            return False
        return True

    async def hangup(self, status: int = 0, reason: str = "Normal Clearing") -> None:
        if not self.ended:
            self.hangup_reason = reason
            self.end(Outcome(Cause.NORMAL, 0, reason))

    def end(self, outcome: Outcome) -> None:
        self.ended, self.outcome = True, outcome
        self._gone.set()

    async def wait_ended(self) -> Outcome:
        await self._gone.wait()
        assert self.outcome is not None
        return self.outcome


class Bridge:
    def __init__(self, a: Leg, b: Leg) -> None:
        self.a, self.b = a, b

    async def wait(self) -> Outcome:
        await asyncio.wait(
            {
                asyncio.ensure_future(self.a.wait_ended()),
                asyncio.ensure_future(self.b.wait_ended()),
            },
            return_when=asyncio.FIRST_COMPLETED,
        )
        first = self.a if self.a.ended else self.b
        await (self.b if first is self.a else self.a).hangup(0, "other party hung up")
        assert first.outcome is not None
        return first.outcome


class FakeSwitch:
    """`dial(number)` answers, or raises DialError with `refuse[number]`; a number in
    `hold` rings until the test sets its event."""

    def __init__(self, refuse: dict[str, Outcome] | None = None) -> None:
        self.refuse = refuse or {}
        self.hold: dict[str, asyncio.Event] = {}
        self.dialled: list[dict[str, Any]] = []
        self.legs: dict[str, Leg] = {}
        self.bridges: list[Bridge] = []

    async def dial(self, target: str, **kwargs: Any) -> Leg:
        self.dialled.append({"target": target, **kwargs})
        await asyncio.sleep(0)  # it rings a while
        if target in self.hold:
            await self.hold[target].wait()
        cause = kwargs.get("cause")
        if isinstance(cause, Leg) and cause.ended:
            raise DialError(Outcome(Cause.CANCELLED, 487, "the causing call ended"))
        if target in self.refuse:
            raise DialError(self.refuse[target])
        if target.startswith("sip:") and "@" not in target:
            raise PbxError(f"bad SIP URI {target!r}")
        leg = self.legs[target] = Leg(target)
        return leg

    def bridge(self, a: Leg, b: Leg) -> Bridge:
        bridge = Bridge(a, b)
        self.bridges.append(bridge)
        return bridge


def _switch(fake: FakeSwitch) -> Switch:
    return cast(Switch, fake)


async def test_a_unreached_dials_nobody_else() -> None:
    fake = FakeSwitch({"1001": Outcome(Cause.NO_ANSWER, 408, "no answer")})
    result = await originate(_switch(fake), "1001", "1002", id="o-1")
    assert (result.stage, result.outcome.status) == (Stage.A_UNREACHED, 408)
    assert [d["target"] for d in fake.dialled] == ["1001"]
    assert fake.dialled[0]["caller_id"] == "1002"  # A sees whom it will talk to
    assert fake.dialled[0]["placed_for"] == "originate o-1"


async def test_b_busy_plays_busy_to_a_and_hangs_up_a() -> None:
    fake = FakeSwitch({"1002": Outcome(Cause.BUSY, 486, "busy here")})
    result = await originate(_switch(fake), "1001", "1002", caller_id="5551234", id="o-2")
    assert (result.stage, result.outcome.cause) == (Stage.B_UNREACHED, Cause.BUSY)
    a = fake.legs["1001"]
    assert a.played == ["ringback", "busy"]
    assert a.ended and a.hangup_reason == "1002: 486 busy here"
    second = fake.dialled[1]
    assert (second["target"], second["caller_id"]) == ("1002", "5551234")
    assert second["cause"] is a and second["placed_for"] == "originate o-2"
    assert not fake.bridges


async def test_a_malformed_b_is_a_failed_outcome_not_an_exception() -> None:
    fake = FakeSwitch()
    result = await originate(_switch(fake), "1001", "sip:nobody")
    assert (result.stage, result.outcome) == (
        Stage.B_UNREACHED,
        Outcome(Cause.FAILED, 0, "bad SIP URI 'sip:nobody'"),
    )
    assert fake.legs["1001"].played[-1] == "busy" and fake.legs["1001"].ended


async def test_a_hanging_up_while_b_rings_stops_the_originate() -> None:
    fake = FakeSwitch()
    fake.hold["1002"] = asyncio.Event()
    task = asyncio.ensure_future(originate(_switch(fake), "1001", "1002"))
    while len(fake.dialled) < 2:
        await asyncio.sleep(0)
    fake.legs["1001"].end(Outcome(Cause.NORMAL, 0, "BYE"))
    fake.hold["1002"].set()
    result = await asyncio.wait_for(task, 5)
    assert (result.stage, result.outcome.cause) == (Stage.A_LEFT, Cause.CANCELLED)
    assert "1002" not in fake.legs and not fake.bridges


async def test_bridged_until_one_hangs_up() -> None:
    fake = FakeSwitch()
    task = asyncio.ensure_future(originate(_switch(fake), "1001", "1002", id="o-3"))
    while not fake.bridges:
        await asyncio.sleep(0)
    fake.legs["1002"].end(Outcome(Cause.NORMAL, 0, "BYE from 1002"))
    result = await asyncio.wait_for(task, 5)
    assert (result.stage, result.outcome.reason) == (Stage.TALKED, "BYE from 1002")
    assert fake.legs["1001"].ended
    assert fake.legs["1001"].played == ["ringback"]  # and no busy tone
    assert str(result) == "originate o-3 1001->1002: A and B were bridged (BYE from 1002)"


async def test_cancelled_originate_hangs_up_what_it_placed() -> None:
    fake = FakeSwitch()
    fake.hold["1002"] = asyncio.Event()
    task = asyncio.ensure_future(originate(_switch(fake), "1001", "1002", id="o-4"))
    while len(fake.dialled) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.legs["1001"].hangup_reason == "originate o-4 ended"


def test_new_ids_differ() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("o-") for i in ids)


async def test_a_trunk_or_uri_target_shows_its_number_not_the_target() -> None:
    """`trunk:NAME/NUMBER` as B: A's phone is shown the number (the target itself in a
    From header would not parse); a SIP URI as A: B is shown its user."""
    fake = FakeSwitch({"trunk:out/+442071234567": Outcome(Cause.BUSY, 486, "busy")})
    await originate(_switch(fake), "sip:alice@127.0.0.1:5070", "trunk:out/+442071234567")
    assert [d["caller_id"] for d in fake.dialled] == ["+442071234567", "alice"]


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("1002", "1002"),
        ("trunk:out/+15551234567", "+15551234567"),
        ("trunk:out", "out"),
        ("sip:bob@example.com", "bob"),
        ("SIPS:bob@example.com:5061", "bob"),
        ("sip:example.com", "sip:example.com"),
    ],
)
def test_shown_number(target: str, shown: str) -> None:
    assert shown_number(target) == shown
