"""One outbound attempt of a campaign, on the Call API (issue 17).

    dial (trunk route, ring timeout) -- busy / no answer / failed --> recorded, done
      | answered (t0: the 2 s clock starts here, stricter than the rule's "end of
      | greeting": the greeting and AMD's decision are inside the 2 s)
    AMD (when on) -- MACHINE --> hang up, or after the beep leave the message
      | HUMAN, NOTSURE (to an agent by default; or hung up by policy)
    an agent free? -- yes --> into the campaign's queue; connected when the ACD logs
      |                      CONNECT (wait to agent = CONNECT - t0: over 2 s is a drop)
      no --> the safe-harbour prompt at once (seller, number, opt-out key), end

Agentless campaigns play their message to whoever answers; pressing 1 puts the person in
the queue (to a free agent at once, else waiting there), 9 opts out. Only the keys a
message asks for cut it short. Every attempt ends as a `DialAttempt` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from acd.pacing import CONNECT_LIMIT
from pbx.api import (
    Call,
    Campaign,
    CampaignEvent,
    Cause,
    Contact,
    DialAttempt,
    DialError,
    PbxError,
    Switch,
    detect_machine,
)

log = logging.getLogger(__name__)

__all__ = ["OPT_OUT_KEY", "AttemptState", "CallContext", "outcome_of_failure", "place_call"]

Audio = npt.NDArray[np.int16]
#: The key the safe-harbour message offers to be put on the do-not-call list.
OPT_OUT_KEY = "9"
#: The key an agentless message offers to speak to someone.
AGENT_KEY = "1"
OPT_OUT_WAIT = 4.0  # seconds after the safe-harbour message for the opt-out key
AMD_TIMEOUT = 45.0
CONNECT_WAIT = 60.0  # how long a handed-over call may wait in the queue for CONNECT
#: How long a person who pressed 1 in an agentless campaign may wait in the queue when no
#: agent was free (their own choice, as an inbound caller's; the queue's limits apply).
AGENTLESS_QUEUE_WAIT = 1800.0


def outcome_of_failure(cause: Cause, status: int) -> str:
    """A failed dial's outcome: busy, no_answer or failed."""
    if cause is Cause.BUSY:
        return "busy"
    if cause in (Cause.NO_ANSWER, Cause.UNAVAILABLE) or status in (408, 480, 487):
        return "no_answer"
    return "failed"


@dataclass(slots=True)
class AttemptState:
    """Where one attempt is, for the pacer's snapshot: ringing, amd, waiting, agent."""

    number: str
    dialed_at: float
    phase: str = "ringing"
    call_id: str = ""
    answered_at: float | None = None
    record: dict[str, str] = field(default_factory=dict)  # the contact's screen-pop fields
    done: asyncio.Event = field(default_factory=asyncio.Event)


class CallContext(Protocol):
    """What an attempt needs from the dialer."""

    @property
    def switch(self) -> Switch: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    def agent_free(self, queue: str) -> bool:
        """Whether the queue has an agent free for an outbound call now."""
        ...

    def hand_over(self, call: Call, queue: str, number: str) -> Awaitable[tuple[str, float] | None]:
        """Put the call in the queue; (agent, CONNECT time) once connected, None if the
        call ended first. Resolves when CONNECT is logged (the call goes on after)."""
        ...

    async def opt_out(self, number: str, campaign: str) -> None:
        """The callee pressed the opt-out key: the number goes on the DNC list."""
        ...


@dataclass(frozen=True, slots=True)
class Prompts:
    """The campaign's audio, loaded before dialling (no file read after an answer)."""

    harbour: Audio
    machine: Audio | None = None
    agentless: Audio | None = None


async def place_call(
    ctx: CallContext,
    campaign: Campaign,
    contact: Contact | None,
    number: str,
    prompts: Prompts,
    state: AttemptState,
    *,
    on_answer: Callable[[str, float], None] = lambda kind, ring: None,
) -> DialAttempt:
    """Place one attempt to `number` and carry it to its end (see the module doc).
    `on_answer(kind, ring_seconds)` reports how the ringing ended to the pacer."""
    clock = ctx.clock
    switch = ctx.switch
    name = campaign.name
    target = f"{campaign.trunk}/{number}" if campaign.trunk else number
    base = DialAttempt(
        name,
        number,
        state.dialed_at,
        state.dialed_at,
        "failed",
        contact=contact.id if contact is not None else None,
    )
    switch.publish(CampaignEvent("", name, "dialled", number))
    try:
        call = await switch.dial(
            target,
            caller_id=campaign.caller_id,
            timeout=campaign.ring_timeout,
            placed_for=f"campaign {name}",
        )
    except DialError as exc:
        outcome = outcome_of_failure(exc.outcome.cause, exc.outcome.status)
        on_answer(outcome, clock() - state.dialed_at)
        return _ended(ctx, base, outcome, sip_status=exc.outcome.status)
    except PbxError as exc:
        log.warning("campaign %s: cannot dial %s: %s", name, number, exc)
        on_answer("failed", clock() - state.dialed_at)
        return _ended(ctx, base, "failed", sip_status=500)
    # The answer's own time: the switch may hand the call over a moment after it.
    t0 = clock() - (call.since_answer() or 0.0)
    state.call_id, state.answered_at, state.phase = call.id, t0, "amd"
    base = _with(base, call_id=call.id, answered_at=t0, sip_status=200)
    try:
        return await _answered(ctx, campaign, number, prompts, state, call, base, on_answer)
    finally:
        if not call.ended:
            await call.hangup(0, f"campaign {name} attempt over")


async def _answered(
    ctx: CallContext,
    campaign: Campaign,
    number: str,
    prompts: Prompts,
    state: AttemptState,
    call: Call,
    base: DialAttempt,
    on_answer: Callable[[str, float], None],
) -> DialAttempt:
    clock, switch, name = ctx.clock, ctx.switch, campaign.name
    t0 = state.answered_at or clock()
    verdict: str | None = None
    if campaign.amd:
        found = await detect_machine(
            call, wait_for_beep=campaign.machine_policy == "message", timeout=AMD_TIMEOUT
        )
        verdict = found.result.value.lower()
        decided = t0 + found.decision_ms / 1000
        base = _with(base, amd=verdict, amd_decided_at=decided, amd_ms=found.decision_ms)
        switch.publish(CampaignEvent(call.id, name, "answered", number, {"amd": verdict}))
        if verdict == "machine":
            on_answer("machine", t0 - state.dialed_at)
            left = False
            if campaign.machine_policy == "message" and prompts.machine is not None and call.up:
                left = await call.play(prompts.machine)
            return _ended(ctx, base, "machine", message_left=left)
        on_answer("live", t0 - state.dialed_at)
        if found.call_ended:
            return _ended(ctx, base, "dropped")
        if verdict == "notsure" and campaign.notsure_policy == "hangup":
            return _ended(ctx, base, "dropped")  # possibly a person: counted as a drop
    else:
        on_answer("live", t0 - state.dialed_at)
        switch.publish(CampaignEvent(call.id, name, "answered", number, {"amd": None}))
    if campaign.mode == "agentless":
        return await _agentless(ctx, campaign, number, prompts, state, call, base)
    if not ctx.agent_free(campaign.queue):
        return await _safe_harbour(ctx, campaign, number, prompts, call, base)
    return await _to_agent(ctx, campaign, number, state, call, base)


async def _to_agent(
    ctx: CallContext,
    campaign: Campaign,
    number: str,
    state: AttemptState,
    call: Call,
    base: DialAttempt,
) -> DialAttempt:
    state.phase = "waiting"
    t0 = base.answered_at or ctx.clock()
    # The screen pop's cue: the record and the script, before the agent's phone rings.
    pop: dict[str, object] = {"script": campaign.script, "contact": base.contact}
    pop.update({f"record.{k}": v for k, v in state.record.items()})
    ctx.switch.publish(CampaignEvent(call.id, campaign.name, "offered", number, pop))
    try:
        async with asyncio.timeout(CONNECT_WAIT):
            reached = await ctx.hand_over(call, campaign.queue, number)
    except TimeoutError:
        reached = None
    if reached is None:
        return _ended(ctx, base, "dropped")
    agent, at = reached
    state.phase = "agent"
    wait = at - t0
    ctx.switch.publish(
        CampaignEvent(
            call.id,
            campaign.name,
            "connected",
            number,
            {"agent": agent, "wait": round(wait, 3), "late": wait > CONNECT_LIMIT},
        )
    )
    await call.wait_ended()
    return _ended(ctx, base, "connected", agent=agent, connected_at=at, wait_to_agent=wait)


async def _play_heeding(call: Call, audio: Audio, keys: str) -> str:
    """Play `audio` to its end unless a key of `keys` is pressed during it or within
    OPT_OUT_WAIT after it; that key, or "". Other keys are taken and ignored: a message
    the rules require (the seller's name and number) is not cut short by a stray key."""
    loop = asyncio.get_running_loop()
    end = loop.time() + len(audio) / 8000 + OPT_OUT_WAIT  # 8 kHz, as Call.play takes
    play = asyncio.ensure_future(call.play(audio))
    await asyncio.sleep(0)  # the message starts before the keys are listened for
    try:
        while call.up:
            left = end - loop.time()
            if left <= 0:
                break
            key = await call.collect_digits(1, timeout=left, terminator=None)
            if not key:
                break  # the time is up, or the call ended
            if key in keys:
                return key
        return ""
    finally:
        if not play.done():
            play.cancel()
        await asyncio.gather(play, return_exceptions=True)


async def _safe_harbour(
    ctx: CallContext,
    campaign: Campaign,
    number: str,
    prompts: Prompts,
    call: Call,
    base: DialAttempt,
) -> DialAttempt:
    """No agent: the message (seller, number, opt-out key) at once, then the end."""
    log.info("campaign %s: no agent free for %s; safe-harbour message", campaign.name, number)
    opted = call.up and await _play_heeding(call, prompts.harbour, OPT_OUT_KEY) == OPT_OUT_KEY
    if opted:
        await ctx.opt_out(number, campaign.name)
    return _ended(ctx, base, "dropped", opted_out=opted)


async def _agentless(
    ctx: CallContext,
    campaign: Campaign,
    number: str,
    prompts: Prompts,
    state: AttemptState,
    call: Call,
    base: DialAttempt,
) -> DialAttempt:
    """The message to whoever answered; 9 opts out; with a queue, 1 puts the person in
    it: to a free agent at once, else waiting there as an inbound caller would."""
    state.phase = "agent"
    wanted = OPT_OUT_KEY + (AGENT_KEY if campaign.queue else "")
    keys = ""
    if call.up:
        if prompts.agentless is not None:
            keys = await _play_heeding(call, prompts.agentless, wanted)
        else:
            keys = await call.collect_digits(1, timeout=OPT_OUT_WAIT, terminator=None)
            keys = keys if keys in wanted else ""
    if keys == OPT_OUT_KEY:
        await ctx.opt_out(number, campaign.name)
        return _ended(ctx, base, "connected", opted_out=True)
    if keys == AGENT_KEY:
        reached = None
        bound = CONNECT_WAIT if ctx.agent_free(campaign.queue) else AGENTLESS_QUEUE_WAIT
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                reached = await ctx.hand_over(call, campaign.queue, number)
        if reached is not None:
            await call.wait_ended()
            wait = reached[1] - (base.answered_at or reached[1])
            return _ended(
                ctx,
                base,
                "connected",
                agent=reached[0],
                connected_at=reached[1],
                wait_to_agent=wait,
            )
    return _ended(ctx, base, "connected")


def _with(a: DialAttempt, **changes: object) -> DialAttempt:
    values = a.to_json()
    values.update(changes)
    return DialAttempt(**values)


def _ended(ctx: CallContext, a: DialAttempt, outcome: str, **changes: object) -> DialAttempt:
    return _with(a, outcome=outcome, ended_at=ctx.clock(), **changes)
