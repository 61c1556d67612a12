"""Supervisor listen, whisper and barge on an agent's live queue call (issue 13).

A supervisor (a user whose role is supervisor or admin) joins the bridge of an agent's
queue call in one of three modes; the bridge becomes a mixed room (`Bridge.add`, no
re-INVITE of the caller or the agent):

| mode    | feature code    | mixer role     | the supervisor hears | heard by       |
|---------|-----------------|----------------|----------------------|----------------|
| listen  | `*222` + agent  | `Role.LISTEN`  | caller and agent     | nobody         |
| whisper | `*223` + agent  | `Role.WHISPER` | caller and agent     | the agent only |
| barge   | `*224` + agent  | `Role.SPEAK`   | caller and agent     | both (3-way)   |

Two ways in: the supervisor dials the code from their phone (`handle_code`, run by the
ACD application for numbers starting with a code), or `pbx agent spy|whisper|barge AGENT
--from EXT` asks the running server (`POST /acd/supervise`, `supervise`): the switch
rings EXT and joins it when answered. Once in, keys change the mode, like the `d`
option of Asterisk's ChanSpy: 4 listen, 5 whisper, 6 barge (other keys are ignored).
The supervisor stays until they hang up or the agent's bridge is over (a party hung up,
or the ACD split it); then the switch hangs the supervisor up.

A caller who may not supervise hears "supervisor-denied" and is hung up; an agent with
no queue call gives "supervisor-no-call". The decisions (which code, which role, who
may) are pure functions at the top; `Supervision` is the asyncio shell on the Call API.

Wiring (the ACD application): make one `Supervision(self, switch, player=prompts)` in
its `start` and call `register_routes(switch)` there; hand every call to a number
starting with a code to `handle_code`; await `close()` in its own `close`. The switch
pays for it only while someone supervises: a bridge becomes a mixed room on `add`, and
stays one until it ends.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ivr.player import PromptPlayer
from ivr.prompts import tone_pattern
from pbx.api import (
    Bridge,
    Call,
    CallEvent,
    DialError,
    EventKind,
    NotFoundError,
    PbxError,
    Role,
    Subscription,
    Switch,
)

__all__ = [
    "BARGE_CODE",
    "CODES",
    "DENIED_PROMPT",
    "LISTEN_CODE",
    "MODE_KEYS",
    "NO_CALL_PROMPT",
    "RING_TIMEOUT",
    "ROUTE",
    "SUPERVISOR_ROLES",
    "WHISPER_CODE",
    "Mode",
    "SupervisedAcd",
    "Supervision",
    "SupervisionCode",
    "agent_call",
    "may_supervise",
    "mode_of_key",
    "parse_code",
    "parse_mode",
]

log = logging.getLogger(__name__)

LISTEN_CODE = "*222"
"""Dialled with the agent's number (`*2221001`): listen without being heard."""
WHISPER_CODE = "*223"
"""Dialled with the agent's number: talk to the agent only (coaching)."""
BARGE_CODE = "*224"
"""Dialled with the agent's number: join the call three-way."""

DENIED_PROMPT = "supervisor-denied"
NO_CALL_PROMPT = "supervisor-no-call"

#: Roles allowed to supervise (`pbx user role NAME supervisor`).
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
#: The control route `pbx agent spy|whisper|barge` posts to.
ROUTE = "POST /acd/supervise"
#: Seconds the supervisor's phone rings for `supervise` before giving up.
RING_TIMEOUT = 30.0
#: Longest agent number accepted after a code (the user names of the switch are short).
_MAX_AGENT = 32


class Mode(enum.Enum):
    """What a supervisor does in the agent's call."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"

    @property
    def role(self) -> Role:
        """The mixer role the mode stands for."""
        return _ROLES[self]


_ROLES = {Mode.LISTEN: Role.LISTEN, Mode.WHISPER: Role.WHISPER, Mode.BARGE: Role.SPEAK}

#: Feature code -> mode.
CODES: dict[str, Mode] = {
    LISTEN_CODE: Mode.LISTEN,
    WHISPER_CODE: Mode.WHISPER,
    BARGE_CODE: Mode.BARGE,
}
#: A key the supervisor presses while in -> the mode it switches to (ChanSpy's `d`).
MODE_KEYS: dict[str, Mode] = {"4": Mode.LISTEN, "5": Mode.WHISPER, "6": Mode.BARGE}


@dataclass(frozen=True, slots=True)
class SupervisionCode:
    """A dialled supervision code taken apart: the mode and the agent's number."""

    mode: Mode
    agent: str


def parse_code(number: str) -> SupervisionCode | None:
    """`*2221001` -> (listen, "1001"); None when `number` is not a code followed by an
    agent's number (digits only, at most `_MAX_AGENT` of them)."""
    for code, mode in CODES.items():
        if number.startswith(code):
            agent = number[len(code) :]
            if agent.isascii() and agent.isdigit() and len(agent) <= _MAX_AGENT:
                return SupervisionCode(mode, agent)
            return None
    return None


def may_supervise(role: str | None) -> bool:
    """Whether a user with `role` (None: no such user) may listen, whisper and barge."""
    return role in SUPERVISOR_ROLES


def mode_of_key(digit: str) -> Mode | None:
    """The mode a key pressed while supervising switches to (None: not a mode key)."""
    return MODE_KEYS.get(digit)


def parse_mode(mode: str) -> Mode:
    """The mode named `mode` ("listen", "whisper", "barge").

    Raises: PbxError for any other name.
    """
    try:
        return Mode(mode)
    except ValueError:
        raise PbxError(
            f"unknown supervision mode {mode!r}: choose listen, whisper or barge"
        ) from None


def agent_call(bridge: Bridge, agent: str) -> Call:
    """The agent's side of its queue bridge: the call to the agent's number (the ACD
    dials its agents), else the call from it, else `bridge.b` (the ACD bridges
    caller first, agent second)."""
    for call in (bridge.a, bridge.b):
        if call.callee == agent:
            return call
    for call in (bridge.a, bridge.b):
        if call.caller == agent:
            return call
    return bridge.b


class SupervisedAcd(Protocol):
    """What supervision needs of the ACD application."""

    def bridge_of(self, agent: str) -> Bridge | None:
        """The bridge of the agent's current queue call (None when not on one)."""
        ...


class Supervision:
    """Listen, whisper and barge on the agents' queue calls of `app`.

    Owns one task per supervisor in a call placed by `supervise` (its phone rung by the
    switch); `close` ends them. `player` plays the refusal prompts (their tone patterns
    when None).
    """

    def __init__(
        self, app: SupervisedAcd, switch: Switch, *, player: PromptPlayer | None = None
    ) -> None:
        self.app = app
        self.switch = switch
        self.player = player
        self._tasks: set[asyncio.Task[str]] = set()

    # -- a supervisor dialling the code ----------------------------------------------

    async def handle_code(self, call: Call, number: str) -> str:
        """Serve a supervisor's call to `number` (`*2221001`); returns the CDR's cause.
        Refusals (not a supervisor, no call) are played and the call hung up."""
        code = parse_code(number)
        if code is None:
            await call.hangup(404, "Not Found")
            return f"404 {number!r} is not a supervision code"
        role = await self.switch.user_role(call.caller)
        if not may_supervise(role):
            log.info(
                "call %s: %s (role %s) may not %s agent %s",
                call.id,
                call.caller,
                role,
                code.mode.value,
                code.agent,
            )
            await self._refuse(call, DENIED_PROMPT, "not a supervisor")
            return f"supervision refused: {call.caller} is not a supervisor (role {role})"
        if code.agent == call.caller:
            await self._refuse(call, DENIED_PROMPT, "supervising oneself")
            return f"supervision refused: {call.caller} cannot supervise their own call"
        bridge = self._live_bridge(code.agent)
        if bridge is None:
            await self._refuse(call, NO_CALL_PROMPT, "agent not on a queue call")
            return f"supervision: agent {code.agent} has no queue call"
        if not await call.answer():
            return "488 supervision: the call could not be answered with the switch's media"
        return await self._join_and_stay(call, bridge, code.agent, code.mode)

    async def _refuse(self, call: Call, prompt: str, why: str) -> None:
        if await call.answer():
            await self._play(call, prompt)
        await call.hangup(0, why)

    async def _play(self, call: Call, prompt: str) -> None:
        if self.player is not None:
            await self.player.play(call, prompt)
        else:
            await call.play(tone_pattern(prompt))

    # -- the control API: ring the supervisor's phone --------------------------------

    async def supervise(self, agent: str, mode: str, from_ext: str) -> dict[str, Any]:
        """Ring `from_ext` and, once answered, join `agent`'s queue call in `mode`;
        returns {"agent", "mode", "call_id"} (the supervisor's call) as soon as it is in.

        Raises: NotFoundError (no such agent or extension), PbxError (a bad mode, not a
            supervisor, the agent has no queue call, the phone did not answer).
        """
        chosen = parse_mode(mode)
        if await self.switch.user_role(agent) is None:
            raise NotFoundError(f"no such agent {agent!r}")
        role = await self.switch.user_role(from_ext)
        if role is None:
            raise NotFoundError(f"no such extension {from_ext!r}")
        if not may_supervise(role):
            raise PbxError(f"{from_ext} is not a supervisor (role {role})")
        if from_ext == agent:
            raise PbxError(f"{from_ext} cannot supervise their own call")
        if self._live_bridge(agent) is None:
            raise PbxError(f"agent {agent} is not on a queue call")
        try:
            call = await self.switch.dial(
                from_ext,
                caller_id=agent,
                timeout=RING_TIMEOUT,
                placed_for=f"supervisor {chosen.value} of agent {agent}",
            )
        except DialError as exc:
            raise PbxError(f"{from_ext} did not answer: {exc.outcome}") from None
        bridge = self._live_bridge(agent)
        if bridge is None:  # the agent's call ended while the supervisor's phone rang
            await self._play(call, NO_CALL_PROMPT)
            await call.hangup(0, "agent's call ended")
            raise PbxError(f"agent {agent}'s call ended before {from_ext} answered")
        events = call.subscribe()  # from now on: keys pressed before the task runs count
        try:
            self._join(call, bridge, agent, chosen, from_ext)
        except PbxError:
            events.close()
            await call.hangup(0, "agent's call ended")
            raise
        task = asyncio.get_running_loop().create_task(
            self._stay(call, events, bridge, agent, chosen), name=f"supervisor {call.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"agent": agent, "mode": chosen.value, "call_id": call.id}

    async def _route(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        agent, mode, from_ext = body.get("agent"), body.get("mode"), body.get("from")
        if not all(isinstance(v, str) and v for v in (agent, mode, from_ext)):
            return 400, {"error": 'the body needs "agent", "mode" and "from" (strings)'}
        assert isinstance(agent, str) and isinstance(mode, str) and isinstance(from_ext, str)
        try:
            return 200, await self.supervise(agent, mode, from_ext)
        except NotFoundError as exc:
            return 404, {"error": str(exc)}
        except PbxError as exc:
            return 409, {"error": str(exc)}

    def register_routes(self, switch: Switch) -> None:
        """Serve `POST /acd/supervise` ({"agent", "mode", "from"}) on the control API:
        200 {"agent", "mode", "call_id"}, 404 for an unknown agent or extension, 409
        for a refusal, 400 for a bad body. Only from a service's `start`."""
        switch.add_body_route(ROUTE, self._route)

    async def close(self) -> None:
        """Hang up the supervisors `supervise` joined (their tasks end, each awaited; 2 s
        for all the BYEs' answers: a phone that no longer answers does not hold up a
        shutdown for the BYE's 32 s)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- in the call ---------------------------------------------------------------------

    def _live_bridge(self, agent: str) -> Bridge | None:
        bridge = self.app.bridge_of(agent)
        return bridge if bridge is not None and bridge.active else None

    def _join(self, call: Call, bridge: Bridge, agent: str, mode: Mode, who: str) -> None:
        """Raises: PbxError when the bridge is over or the call cannot be mixed."""
        whisper_to = agent_call(bridge, agent) if mode is Mode.WHISPER else None
        bridge.add(call, mode.role, whisper_to=whisper_to)
        log.info("call %s: supervisor %s %s agent %s", call.id, who, mode.value, agent)

    async def _join_and_stay(self, call: Call, bridge: Bridge, agent: str, mode: Mode) -> str:
        events = call.subscribe()
        try:
            self._join(call, bridge, agent, mode, call.caller)  # dialled in by feature code
        except PbxError as exc:  # the call ended between the look-up and the answer
            events.close()
            log.info("call %s: cannot supervise %s: %s", call.id, agent, exc)
            await self._play(call, NO_CALL_PROMPT)
            await call.hangup(0, "agent's call ended")
            return f"supervision: agent {agent} has no queue call ({exc})"
        return await self._stay(call, events, bridge, agent, mode)

    async def _stay(
        self, call: Call, events: Subscription, bridge: Bridge, agent: str, mode: Mode
    ) -> str:
        """Follow the supervisor's keys (`events`) until they hang up or the bridge is
        over (then hang them up); returns the CDR's cause."""
        over = asyncio.ensure_future(bridge.over())
        try:
            async for event in _until(events, over):
                if event.kind is EventKind.DTMF:
                    mode = self._switch_mode(call, bridge, agent, mode, event.digit)
            if call.ended:
                return f"supervisor hung up ({mode.value} agent {agent})"
            await call.hangup(0, "the agent's call ended")
            return f"agent {agent}'s call ended ({mode.value})"
        finally:
            events.close()
            over.cancel()
            if not call.ended:  # cancelled (close): leave nobody behind
                await call.hangup(0, "supervision ended")

    def _switch_mode(self, call: Call, bridge: Bridge, agent: str, mode: Mode, digit: str) -> Mode:
        chosen = mode_of_key(digit)
        room = bridge.conference
        if chosen is None or chosen is mode or room is None:
            return mode
        whisper_to = agent_call(bridge, agent) if chosen is Mode.WHISPER else None
        try:
            room.set_role(call, chosen.role, whisper_to=whisper_to)
        except PbxError as exc:
            log.info("call %s: mode %s refused: %s", call.id, chosen.value, exc)
            return mode
        log.info("call %s: supervisor of %s now %s", call.id, agent, chosen.value)
        return chosen


async def _until(events: Subscription, over: asyncio.Future[None]) -> AsyncIterator[CallEvent]:
    """The call's events until it ends or `over` completes."""
    following: asyncio.Future[CallEvent | None] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(events, None))
            waits: set[asyncio.Future[Any]] = {following, over}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                return
            event = following.result()
            if event is None:
                return
            yield event
    finally:
        if following is not None and not following.done():
            following.cancel()
