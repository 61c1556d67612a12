"""acd.supervisor: the decisions as tables, and `Supervision` against fakes of the
Call API (calls, a bridge with its room, the switch's roles and dialling)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acd.supervisor import (
    BARGE_CODE,
    DENIED_PROMPT,
    LISTEN_CODE,
    NO_CALL_PROMPT,
    ROUTE,
    WHISPER_CODE,
    Mode,
    Supervision,
    SupervisionCode,
    agent_call,
    may_supervise,
    mode_of_key,
    parse_code,
    parse_mode,
)
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore, tone_pattern
from media.wav import write_wav
from pbx.api import CallEvent, Cause, DialError, EventKind, Outcome, PbxError, Role, Subscription
from pbx.errors import NotFoundError
from pbx.store.numbering import FEATURE_CODES
from tests.interop.peers import pbx_cli


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("*2221001", SupervisionCode(Mode.LISTEN, "1001")),
        ("*2231001", SupervisionCode(Mode.WHISPER, "1001")),
        ("*22442", SupervisionCode(Mode.BARGE, "42")),
        ("*222" + "9" * 32, SupervisionCode(Mode.LISTEN, "9" * 32)),
        ("*222" + "9" * 33, None),  # too long for an agent's number
        ("*222", None),  # no agent
        ("*222abc", None),
        ("*2221001#", None),
        ("*222١٢٣", None),  # non-ASCII digits are not a number here
        ("*2251001", None),
        ("*50", None),
        ("1001", None),
        ("", None),
    ],
)
def test_parse_code(number: str, expected: SupervisionCode | None) -> None:
    assert parse_code(number) == expected


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("supervisor", True), ("admin", True), ("agent", False), ("", False), (None, False)],
)
def test_only_supervisors_and_admins_may(role: str | None, allowed: bool) -> None:
    assert may_supervise(role) is allowed


@pytest.mark.parametrize(
    ("key", "mode"),
    [("4", Mode.LISTEN), ("5", Mode.WHISPER), ("6", Mode.BARGE), ("1", None), ("#", None)],
)
def test_mode_keys(key: str, mode: Mode | None) -> None:
    assert mode_of_key(key) is mode


def test_modes_roles_and_codes() -> None:
    assert {m: m.role for m in Mode} == {
        Mode.LISTEN: Role.LISTEN,
        Mode.WHISPER: Role.WHISPER,
        Mode.BARGE: Role.SPEAK,
    }
    assert {LISTEN_CODE, WHISPER_CODE, BARGE_CODE} == {"*222", "*223", "*224"}
    assert {LISTEN_CODE, WHISPER_CODE, BARGE_CODE} <= set(FEATURE_CODES)  # reserved
    assert parse_mode("barge") is Mode.BARGE
    with pytest.raises(PbxError, match="unknown supervision mode 'spy'"):
        parse_mode("spy")


# -- fakes of the Call API -------------------------------------------------------------


@dataclass(eq=False)
class FakeCall:
    id: str
    caller: str = "queue"
    callee: str = ""
    ended: bool = False
    answered: bool = False
    played: list[str] = field(default_factory=list)
    hung_up: list[tuple[int, str]] = field(default_factory=list)
    subs: list[Subscription] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.answered and not self.ended

    has_media = up

    async def answer(self) -> bool:
        self.answered = True
        return True

    async def play(self, samples: Any, *, stop_on_digit: bool = False) -> bool:
        self.played.append(f"{len(samples)} samples")
        return True

    async def hangup(self, status: int = 0, reason: str = "") -> None:
        self.hung_up.append((status, reason))
        self.end()

    def subscribe(self, maxsize: int = 64) -> Subscription:
        sub = Subscription(self.id, maxsize)
        self.subs.append(sub)
        return sub

    def press(self, digit: str) -> None:
        for sub in self.subs:
            sub._offer(CallEvent(EventKind.DTMF, self.id, digit=digit))

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            for sub in self.subs:
                sub._offer(CallEvent(EventKind.ENDED, self.id, outcome=Outcome(Cause.NORMAL)))


@dataclass
class FakeRoom:
    roles: list[tuple[str, Role, str | None]] = field(default_factory=list)

    def set_role(self, call: FakeCall, role: Role, *, whisper_to: FakeCall | None = None) -> None:
        self.roles.append((call.id, role, whisper_to.id if whisper_to else None))


class FakeBridge:
    def __init__(self, a: FakeCall, b: FakeCall) -> None:
        self.a, self.b = a, b
        self.conference: FakeRoom | None = None
        self.added: list[tuple[str, Role, str | None]] = []
        self._over = asyncio.Event()

    @property
    def active(self) -> bool:
        return not self._over.is_set()

    def add(self, call: FakeCall, role: Role = Role.SPEAK, *, whisper_to: Any = None) -> None:
        if not self.active:
            raise PbxError("the bridge is over")
        self.conference = self.conference or FakeRoom()
        self.added.append((call.id, role, whisper_to.id if whisper_to else None))

    async def over(self) -> None:
        await self._over.wait()

    def end(self) -> None:
        self._over.set()


@dataclass
class FakeAcd:
    bridges: dict[str, FakeBridge] = field(default_factory=dict)

    def bridge_of(self, agent: str) -> Any:
        return self.bridges.get(agent)


@dataclass
class FakeSwitch:
    roles: dict[str, str] = field(
        default_factory=lambda: {"1001": "agent", "1002": "agent", "1003": "supervisor"}
    )
    answers: bool = True
    dialled: list[tuple[str, str, str]] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)
    calls: list[FakeCall] = field(default_factory=list)

    async def user_role(self, name: str) -> str | None:
        return self.roles.get(name)

    async def dial(
        self, target: str, *, caller_id: str, timeout: float | None = None, placed_for: str = ""
    ) -> FakeCall:
        self.dialled.append((target, caller_id, placed_for))
        if not self.answers:
            raise DialError(Outcome(Cause.NO_ANSWER, 408, "408 from 1003"))
        call = FakeCall(f"sup-{len(self.calls)}", caller=caller_id, callee=target)
        self.calls.append(call)
        return call

    def add_body_route(self, key: str, handler: Any) -> None:
        self.routes[key] = handler


def _setup() -> tuple[Supervision, FakeSwitch, FakeAcd, FakeBridge]:
    switch, acd = FakeSwitch(), FakeAcd()
    caller, agent = FakeCall("c", callee="queue-1"), FakeCall("a", caller="1001", callee="1002")
    bridge = acd.bridges["1002"] = FakeBridge(caller, agent)
    return Supervision(acd, switch), switch, acd, bridge  # type: ignore[arg-type]


async def _settle() -> None:
    """Let the supervision task take every event queued (no timers involved)."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_the_agent_side_of_a_bridge() -> None:
    caller, agent = FakeCall("c", caller="555", callee="queue-1"), FakeCall("a", callee="1002")
    assert agent_call(FakeBridge(caller, agent), "1002") is agent  # type: ignore[arg-type]
    assert agent_call(FakeBridge(agent, caller), "1002") is agent  # type: ignore[arg-type]
    inbound = FakeCall("i", caller="1002", callee="555")  # the agent placed it
    assert agent_call(FakeBridge(caller, inbound), "1002") is inbound  # type: ignore[arg-type]
    other = FakeCall("o", caller="x", callee="y")
    assert agent_call(FakeBridge(caller, other), "1002") is other  # type: ignore[arg-type]


async def test_a_code_from_someone_not_a_supervisor_is_refused() -> None:
    supervision, _, _, bridge = _setup()
    call = FakeCall("s", caller="1001", callee="*2241002")
    cause = await supervision.handle_code(call, "*2241002")  # type: ignore[arg-type]
    assert cause == "supervision refused: 1001 is not a supervisor (role agent)"
    assert call.answered and len(call.played) == 1  # supervisor-denied (its tones)
    assert call.hung_up == [(0, "not a supervisor")]
    assert bridge.added == []
    stranger = FakeCall("x", caller="4711")
    cause = await supervision.handle_code(stranger, "*2221002")  # type: ignore[arg-type]
    assert cause == "supervision refused: 4711 is not a supervisor (role None)"


async def test_a_code_for_an_agent_without_a_live_call() -> None:
    supervision, _, _, bridge = _setup()
    call = FakeCall("s", caller="1003")
    cause = await supervision.handle_code(call, "*2221001")  # type: ignore[arg-type]
    assert cause == "supervision: agent 1001 has no queue call"
    assert call.played and call.hung_up == [(0, "agent not on a queue call")]
    bridge.end()  # a bridge that is over is no call either
    call = FakeCall("t", caller="1003")
    cause = await supervision.handle_code(call, "*2221002")  # type: ignore[arg-type]
    assert cause == "supervision: agent 1002 has no queue call"
    supervision.switch.roles["1002"] = "admin"  # type: ignore[attr-defined]
    own = FakeCall("o", caller="1002")
    cause = await supervision.handle_code(own, "*2241002")  # type: ignore[arg-type]
    assert cause == "supervision refused: 1002 cannot supervise their own call"
    bad = FakeCall("u", caller="1003")
    assert await supervision.handle_code(bad, "*22x") == "404 '*22x' is not a supervision code"  # type: ignore[arg-type]
    assert bad.hung_up == [(404, "Not Found")] and not bad.answered


async def test_keys_switch_modes_until_the_supervisor_hangs_up() -> None:
    supervision, _, _, bridge = _setup()
    call = FakeCall("s", caller="1003")
    task = asyncio.ensure_future(supervision.handle_code(call, "*2231002"))  # type: ignore[arg-type]
    await _settle()
    assert call.answered and bridge.added == [("s", Role.WHISPER, "a")]  # to the agent
    for key in "5694#6":  # 5: whisper already; 9, #: not mode keys
        call.press(key)
    await _settle()
    assert bridge.conference is not None
    assert bridge.conference.roles == [
        ("s", Role.SPEAK, None),
        ("s", Role.LISTEN, None),
        ("s", Role.SPEAK, None),
    ]
    call.end()
    assert await asyncio.wait_for(task, 5) == "supervisor hung up (barge agent 1002)"
    assert call.hung_up == []


async def test_the_supervisor_is_hung_up_when_the_bridge_is_over() -> None:
    supervision, _, _, bridge = _setup()
    call = FakeCall("s", caller="1003")
    task = asyncio.ensure_future(supervision.handle_code(call, "*2221002"))  # type: ignore[arg-type]
    await _settle()
    assert bridge.added == [("s", Role.LISTEN, None)]
    call.press("5")
    await _settle()
    bridge.end()
    assert await asyncio.wait_for(task, 5) == "agent 1002's call ended (whisper)"
    assert call.hung_up == [(0, "the agent's call ended")]


async def test_supervise_rings_the_supervisor_then_joins() -> None:
    supervision, switch, _, bridge = _setup()
    result = await supervision.supervise("1002", "barge", "1003")
    assert result == {"agent": "1002", "mode": "barge", "call_id": "sup-0"}
    assert switch.dialled == [("1003", "1002", "supervisor barge of agent 1002")]
    assert bridge.added == [("sup-0", Role.SPEAK, None)]
    call = switch.calls[0]
    call.press("4")
    await _settle()
    assert bridge.conference is not None and bridge.conference.roles == [
        ("sup-0", Role.LISTEN, None)
    ]
    await supervision.close()  # the server stops: the supervisor is hung up
    assert call.hung_up == [(0, "supervision ended")]
    assert not supervision._tasks


async def test_supervise_refusals() -> None:
    supervision, switch, _, bridge = _setup()
    with pytest.raises(NotFoundError, match="no such agent '4711'"):
        await supervision.supervise("4711", "listen", "1003")
    with pytest.raises(NotFoundError, match="no such extension '4711'"):
        await supervision.supervise("1002", "listen", "4711")
    with pytest.raises(PbxError, match=r"^1001 is not a supervisor \(role agent\)$"):
        await supervision.supervise("1002", "listen", "1001")
    switch.roles["1002"] = "admin"
    with pytest.raises(PbxError, match=r"^1002 cannot supervise their own call$"):
        await supervision.supervise("1002", "listen", "1002")
    with pytest.raises(PbxError, match=r"^agent 1001 is not on a queue call$"):
        await supervision.supervise("1001", "listen", "1003")
    with pytest.raises(PbxError, match="unknown supervision mode"):
        await supervision.supervise("1002", "coach", "1003")
    switch.answers = False
    with pytest.raises(PbxError, match=r"^1003 did not answer: 408 from 1003$"):
        await supervision.supervise("1002", "listen", "1003")
    assert switch.calls == [] and bridge.added == []


async def test_the_agent_call_ends_while_the_supervisor_phone_rings() -> None:
    supervision, switch, _, bridge = _setup()
    real_dial = switch.dial

    async def dial_and_end(*args: Any, **kwargs: Any) -> FakeCall:
        bridge.end()
        return await real_dial(*args, **kwargs)

    switch.dial = dial_and_end  # type: ignore[method-assign]
    with pytest.raises(PbxError, match=r"^agent 1002's call ended before 1003 answered$"):
        await supervision.supervise("1002", "listen", "1003")
    call = switch.calls[0]
    assert call.played and call.hung_up == [(0, "agent's call ended")]


async def test_the_control_route() -> None:
    supervision, switch, _, _ = _setup()
    supervision.register_routes(switch)  # type: ignore[arg-type]
    route = switch.routes[ROUTE]
    assert ROUTE == "POST /acd/supervise"
    status, body = await route({"agent": "1002", "mode": "listen"})
    assert status == 400 and "from" in body["error"]
    assert await route({"agent": "4711", "mode": "listen", "from": "1003"}) == (
        404,
        {"error": "no such agent '4711'"},
    )
    assert await route({"agent": "1002", "mode": "listen", "from": "1001"}) == (
        409,
        {"error": "1001 is not a supervisor (role agent)"},
    )
    status, body = await route({"agent": "1002", "mode": "whisper", "from": "1003"})
    assert (status, body) == (200, {"agent": "1002", "mode": "whisper", "call_id": "sup-0"})
    await supervision.close()


def test_cli_without_a_running_server_says_so_in_one_line(tmp_path: Path) -> None:
    result = pbx_cli(tmp_path, "agent", "spy", "1002", "--from", "1003")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("pbx: error: the server is not running")


async def test_refusals_play_the_prompt_set_when_given_a_player(tmp_path: Path) -> None:
    prompts = PromptStore(tmp_path / "prompts")
    for name, seconds in ((DENIED_PROMPT, 0.25), (NO_CALL_PROMPT, 0.5)):
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, np.zeros(int(8000 * seconds), np.int16), 8000)
        prompts.add(name, wav)
    player = PromptPlayer(prompts)
    player._defaults_ready = True
    switch, acd = FakeSwitch(), FakeAcd()
    supervision = Supervision(acd, switch, player=player)  # type: ignore[arg-type]
    denied, no_call = FakeCall("d", caller="1001"), FakeCall("n", caller="1003")
    await supervision.handle_code(denied, "*2221002")  # type: ignore[arg-type]
    await supervision.handle_code(no_call, "*2221002")  # type: ignore[arg-type]
    assert (denied.played, no_call.played) == (["2000 samples"], ["4000 samples"])
    assert not np.array_equal(tone_pattern(DENIED_PROMPT), tone_pattern(NO_CALL_PROMPT))
