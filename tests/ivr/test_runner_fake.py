"""The IVR runner and voicemail against the in-memory fake of the Call API: their
logic (menus, retries, transfers, PINs, messages) with no SIP and no RTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.runner import IvrApplication
from ivr.voicemail import VoicemailApplication
from pbx.api import Cause, Outcome
from tests.fakes.call_api import FakeCall, FakeSwitch, NamedPrompts

MENUS = """
[[menu]]
name = "main"
number = "800"
greeting = "main-greeting"
retries = 1
fallback = "voicemail:1001"
[menu.options]
"1" = "extension:1001"
"2" = "menu:sales"
"0" = "hangup"

[[menu]]
name = "sales"
greeting = "sales-greeting"
[menu.options]
"1" = "extension:600"
"""


@pytest.fixture
def prompts(tmp_path: Path) -> NamedPrompts:
    return NamedPrompts(tmp_path / "prompts")


def _ivr(prompts: NamedPrompts) -> IvrApplication:
    return IvrApplication(prompts.store.root.parent, player=prompts)


async def test_a_key_transfers_to_the_extension(prompts: NamedPrompts) -> None:
    switch = FakeSwitch(
        menus=MENUS, reachable={"1001": Outcome(Cause.NORMAL, 200, "callee hung up")}
    )
    call = FakeCall("2000", "800", keys=["1"], prompts=prompts, switch=switch)
    app = _ivr(prompts)
    assert await app.handles("800", switch.as_switch())
    cause = await app.run(call, switch.as_switch())  # type: ignore[arg-type]
    assert cause == "callee hung up"
    assert call.transfers == ["1001"]
    assert call.heard == ["main-greeting"]


async def test_the_keys_chosen_are_left_on_the_call_for_the_next_application(
    prompts: NamedPrompts,
) -> None:
    switch = FakeSwitch(
        menus=MENUS, reachable={"600": Outcome(Cause.NORMAL, 200, "callee hung up")}
    )
    call = FakeCall("2000", "800", keys=["2", "1"], prompts=prompts, switch=switch)
    await _ivr(prompts).run(call, switch.as_switch())  # type: ignore[arg-type]
    assert call.transfers == ["600"]
    assert call.tags == {"ivr": "main 2 > sales 1"}  # what the ACD's screen pop shows


async def test_an_unreachable_extension_returns_to_the_menu(prompts: NamedPrompts) -> None:
    switch = FakeSwitch(menus=MENUS, reachable={"1001": Outcome(Cause.BUSY, 486, "486 busy")})
    call = FakeCall("2000", "800", keys=["1", "0"], prompts=prompts, switch=switch)
    cause = await _ivr(prompts).run(call, switch.as_switch())  # type: ignore[arg-type]
    assert call.transfers == ["1001"]
    assert call.heard == ["main-greeting", "ivr-invalid", "main-greeting", "ivr-goodbye"]
    assert cause == "IVR hangup"
    assert call.ended


async def test_submenu_silence_ends_in_its_hangup_fallback(prompts: NamedPrompts) -> None:
    switch = FakeSwitch(menus=MENUS)
    call = FakeCall("2000", "800", keys=["2", "", "", "", ""], prompts=prompts, switch=switch)
    cause = await _ivr(prompts).run(call, switch.as_switch())  # type: ignore[arg-type]
    # sales: the default 3 retries, each silence answered by the timeout prompt, then
    # its fallback (hang up).
    assert call.heard == ["main-greeting"] + ["sales-greeting", "ivr-timeout"] * 3 + [
        "sales-greeting",
        "ivr-goodbye",
    ]
    assert cause == "IVR hangup"


async def test_main_menu_fallback_takes_a_message(prompts: NamedPrompts, tmp_path: Path) -> None:
    boxes = VoicemailApplication(tmp_path, player=prompts, clock=lambda: 1.0e9)
    switch = FakeSwitch(menus=MENUS, users=["1001"], voicemail=boxes)
    call = FakeCall("2000", "800", keys=["", "", ""], speech=[2.5], prompts=prompts, switch=switch)
    cause = await _ivr(prompts).run(call, switch.as_switch())  # type: ignore[arg-type]
    assert cause == "voicemail left for 1001"
    assert call.heard == [
        "main-greeting",
        "ivr-timeout",
        "main-greeting",
        "vm-unavailable",
        "vm-beep",
        "vm-saved",
    ]
    (message,) = await switch.voicemail_store.messages("1001")
    assert (message.caller, message.duration, message.folder) == ("2000", 2.5, "new")
    assert Path(message.path).parent == tmp_path / "voicemail" / "1001"
    assert switch.changed == ["1001"]


async def test_unknown_number_is_refused(prompts: NamedPrompts) -> None:
    switch = FakeSwitch(menus=MENUS)
    call = FakeCall("2000", "801", prompts=prompts, switch=switch)
    assert not await _ivr(prompts).handles("801", switch.as_switch())
    assert await _ivr(prompts).run(call, switch.as_switch()) == "404 no menu"  # type: ignore[arg-type]
    assert call.rejected == 404


async def test_mailbox_login_listen_and_delete(prompts: NamedPrompts, tmp_path: Path) -> None:
    boxes = VoicemailApplication(tmp_path, player=prompts)
    switch = FakeSwitch(users=["1001"])
    switch.voicemail_store.pins["1001"] = "4321"
    first = await switch.voicemail_store.add("1001", "2000", 1.0, 3.0, str(tmp_path / "a.wav"))
    await switch.voicemail_store.add("1001", "2001", 2.0, 4.0, str(tmp_path / "b.wav"))
    # PIN wrong, then right; 1 listen; 7 delete the first; 9 keep the second; # back; # bye
    call = FakeCall(
        "1001", "*97", keys=["1111", "4321", "1", "7", "9", "#"], prompts=prompts, switch=switch
    )
    cause = await boxes.run(call, switch.as_switch())  # type: ignore[arg-type]
    assert cause == "voicemail 1001: menu"
    assert "vm-incorrect" in call.heard and "vm-deleted" in call.heard and "vm-kept" in call.heard
    assert first not in switch.voicemail_store.rows
    (kept,) = await switch.voicemail_store.messages("1001")
    assert (kept.caller, kept.folder) == ("2001", "old")
    assert call.hangup_reason == "voicemail menu done"


async def test_mailbox_without_pin_cannot_be_opened(prompts: NamedPrompts, tmp_path: Path) -> None:
    boxes = VoicemailApplication(tmp_path, player=prompts)
    switch = FakeSwitch(users=["1001"])
    call = FakeCall("1001", "*97", prompts=prompts, switch=switch)
    assert await boxes.run(call, switch.as_switch()) == "voicemail 1001: no PIN set"  # type: ignore[arg-type]
    assert call.heard == ["vm-no-pin"]
