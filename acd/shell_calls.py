"""The ACD shell's calls: queued callers, offers to agents, bridges and callbacks.

`CallShell._apply` carries out the engine's actions (acd.engine_actions' table):
what concerns a queued caller goes to the caller's own task (`serve_caller`: music,
announcements, keys, the bridge, the exit), rings are owned tasks (one per agent of
an offer, cancelled by CancelRing: the switch CANCELs the INVITE), a callback's
calls are an owned task too. Every way an agent's leg ends is reported to the
engine (offer_failed, call_completed, agent_lost, callback_result): no agent is
left "on call" by a leg the shell lost.

The voicemail key sends the caller to the queue's mailbox: the box of the queue's
overflow target when it is `vm:BOX`, else the mailbox named like the queue's number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from acd.engine_actions import (
    Action,
    Announce,
    Bridge,
    CancelRing,
    DialCallback,
    Exit,
    Handoff,
    Overflow,
    Play,
    Requeue,
    Ring,
    RingCallback,
    Voicemail,
)
from acd.engine_core import CallerState
from acd.model import QueueConfig
from acd.shell_state import CallerLeg, ShellState
from pbx.api import Call, DialError, EventKind, PbxError, QueueOffered

log = logging.getLogger(__name__)

QUEUE_PREFIX = "queue:"
MAILBOX_PREFIX = "vm:"
#: Exit reasons after which a queue's overflow target (if any) takes the caller.
OVERFLOW_REASONS = frozenset({"full", "joinempty", "empty"})
_TO_CALLER = (Announce, Play, Exit, Overflow, Voicemail)


def digits_prompts(number: str | int) -> list[str]:
    """The prompts that say `number` digit by digit ("digit-4", "digit-2")."""
    return [f"digit-{d}" for d in str(number) if d.isdigit()]


def wait_prompts(wait: float | None) -> list[str]:
    """What an announcement says of the estimated wait: minutes (rounded up), or
    "less than a minute"; nothing when unknown."""
    if wait is None:
        return []
    if wait < 60.0:
        return ["queue-wait-about", "queue-less-than-minute"]
    minutes = int(-(-wait // 60))
    return ["queue-wait-about", *digits_prompts(minutes), "queue-minutes"]


class CallShell(ShellState):
    """Carries out the engine's actions on calls (see the module doc)."""

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Ring | RingCallback):
                for agent in action.agents:
                    self._ring(action, agent)
            elif isinstance(action, CancelRing):
                for agent in action.agents:
                    self._cancel_ring(action.caller, agent, action.offer_id)
            elif isinstance(action, DialCallback):
                self._spawn(
                    self._callback_call(action), f"ACD callback {action.caller} {action.agent}"
                )
            elif isinstance(action, Bridge) and action.caller in self._customers:
                customer = self._customers[action.caller]
                self._spawn(
                    self._bridge_customer(action.caller, customer, action.agent),
                    f"ACD callback bridge {action.caller}",
                )
            elif isinstance(action, Requeue):  # now: the caller's task holds the bridge
                self._requeue(action)
            elif isinstance(action, Handoff):
                self._handoff(action)
            elif isinstance(action, (Bridge, *_TO_CALLER)):
                leg = self._callers.get(action.caller)
                if leg is not None:
                    leg.inbox.put_nowait(action)
                elif isinstance(action, Bridge):  # the caller is gone: hang the agent up
                    self._drop_agent_leg(action.agent)

    # -- offers ------------------------------------------------------------------------

    def _ring(self, ring: Ring | RingCallback, agent: str) -> None:
        key = (ring.caller, agent, ring.offer_id)
        self._offered(ring, agent)
        self._rings[key] = self._spawn(self._ring_agent(ring, agent), f"ACD ring {key}")

    def _offered(self, ring: Ring | RingCallback, agent: str) -> None:
        """Publish the offer (a screen pop's cue) before the agent's phone rings."""
        caller = self.engine.caller(ring.caller)
        leg = self._callers.get(ring.caller)
        if isinstance(ring, RingCallback):
            number = ring.number
        else:
            number = caller.number if caller is not None else leg.call.caller if leg else ""
        wait = self._now() - caller.joined if caller is not None else 0.0
        self.switch.publish(
            QueueOffered(
                ring.caller,
                ring.queue,
                agent,
                number,
                round(max(0.0, wait), 3),
                "\n".join(ring.notes),
                isinstance(ring, RingCallback),
                leg.call.tags.get("ivr", "") if leg is not None else "",
            )
        )

    async def _ring_agent(self, ring: Ring | RingCallback, agent: str) -> None:
        key = (ring.caller, agent, ring.offer_id)
        leg = self._callers.get(ring.caller)
        if isinstance(ring, RingCallback):
            caller_id = ring.number
        else:
            known = self.engine.caller(ring.caller)
            caller_id = (
                known.number if known is not None else leg.call.caller if leg else ring.caller
            )
        try:
            call = await self.switch.dial(
                agent,
                caller_id=caller_id,
                timeout=ring.seconds,
                cause=leg.call if leg is not None else None,
                placed_for=f"queue {ring.queue} call {ring.caller}",
            )
        except DialError as exc:
            self._rings.pop(key, None)
            log.info("queue %s: %s did not answer (%s)", ring.queue, agent, exc.outcome)
            status = exc.outcome.status
            self._input("offer_failed", ring.caller, agent, status=status, offer_id=ring.offer_id)
            return
        except PbxError as exc:
            self._rings.pop(key, None)
            log.warning("queue %s: cannot ring %s: %s", ring.queue, agent, exc)
            self._input("offer_failed", ring.caller, agent, status=500, offer_id=ring.offer_id)
            return
        except Exception:  # never leave the agent ringing: the offer fails
            self._rings.pop(key, None)
            log.exception("queue %s: ringing %s failed", ring.queue, agent)
            self._input("offer_failed", ring.caller, agent, status=500, offer_id=ring.offer_id)
            return
        self._rings.pop(key, None)
        old = self._agent_legs.get(agent)
        if old is not None and not old.ended and old is not call:
            log.warning("queue %s: %s answered a second leg; the old one ends", ring.queue, agent)
            await old.hangup(0, "replaced by a new queue call")
        self._agent_legs[agent] = call
        self._answered[(ring.caller, agent)] = ring.offer_id
        self._spawn(self._watch_agent_leg(agent, call), f"ACD agent leg {agent} {call.id}")
        self._input("offer_answered", ring.caller, agent, offer_id=ring.offer_id)

    async def _watch_agent_leg(self, agent: str, call: Call) -> None:
        """An answered agent leg that ends before a bridge holds it (a phone gone after
        answering) is reported: agent_lost. A bridged leg is the bridge's to report."""
        await call.wait_ended()
        if self._agent_legs.get(agent) is not call or agent in self._bridges:
            return
        del self._agent_legs[agent]
        if self.engine.calls().get(agent) is not None or agent in self.engine.offers():
            self._input("agent_lost", agent)

    def _cancel_ring(self, caller: str, agent: str, offer_id: int) -> None:
        task = self._rings.pop((caller, agent, offer_id), None)
        if task is not None:
            task.cancel()  # the switch CANCELs the INVITE
        answered = self._answered.get((caller, agent))
        if answered is not None and (offer_id == 0 or answered == offer_id):
            del self._answered[(caller, agent)]
            self._drop_agent_leg(agent)

    def _drop_agent_leg(self, agent: str) -> None:
        call = self._agent_legs.pop(agent, None)
        if call is not None and not call.ended:
            self._spawn(call.hangup(0, "queue call gone"), f"ACD hang up {agent}")

    # -- bridges -----------------------------------------------------------------------

    def _requeue(self, action: Requeue) -> None:
        """An escalation: part the caller from the agent (whose leg is hung up); the
        caller's task, back from the split bridge, puts it on music again."""
        bridge = self._bridges.pop(action.agent, None)  # popped: _hold_bridge sees a split
        if bridge is not None:
            bridge.split()
        self._drop_agent_leg(action.agent)
        leg = self._callers.get(action.caller)
        if leg is not None:
            leg.queue = action.queue

    def _handoff(self, action: Handoff) -> None:
        """An agent's transfer: part the caller from the agent (whose leg is hung up); the
        caller's task, back from the split bridge, takes it to the target (as an overflow
        does: `_overflow`)."""
        bridge = self._bridges.pop(action.agent, None)  # popped: _hold_bridge sees a split
        if bridge is not None:
            bridge.split()
        self._drop_agent_leg(action.agent)
        leg = self._callers.get(action.caller)
        if leg is not None:
            leg.inbox.put_nowait(action)

    async def _hold_bridge(self, call_id: str, call: Call, agent: str) -> bool | None:
        """Bridge the caller's `call` with the agent's answered leg until one ends (True:
        the agent hung up first); None after a split (Requeue) or when no bridge could be
        made (reported to the engine as agent_lost)."""
        self._answered.pop((call_id, agent), None)
        agent_call = self._agent_legs.get(agent)
        if call.ended:
            self._drop_agent_leg(agent)
            self._input("caller_left", call_id)
            return False
        # No bridge: agent_lost; the engine's Exit "agent-lost" then ends the caller (None:
        # its task goes on reading its actions).
        if agent_call is None or agent_call.ended:
            self._agent_legs.pop(agent, None)
            self._input("agent_lost", agent)
            return None
        try:
            bridge = self.switch.bridge(call, agent_call)
        except PbxError as exc:
            log.warning("call %s: cannot bridge to %s: %s", call_id, agent, exc)
            self._drop_agent_leg(agent)
            self._input("agent_lost", agent)
            return None
        self._bridges[agent] = bridge
        caller_end = asyncio.ensure_future(call.wait_ended())
        agent_end = asyncio.ensure_future(agent_call.wait_ended())
        waiting = asyncio.ensure_future(bridge.wait())
        try:
            await asyncio.wait(
                {caller_end, agent_end, waiting}, return_when=asyncio.FIRST_COMPLETED
            )
            # A Requeue took the bridge: a split, whichever leg's end (the agent's leg is
            # being hung up) was seen first.
            split = self._bridges.get(agent) is not bridge
            by_agent = agent_end.done() and not caller_end.done()
            if not split:
                del self._bridges[agent]
            if self._agent_legs.get(agent) is agent_call:
                del self._agent_legs[agent]
            if split:
                return None  # a Requeue
            # Reported at once: hanging up the other leg (bridge.wait) can take until its
            # BYE times out when that phone is gone.
            self._input("call_completed", call_id, by_agent=by_agent)
            await waiting
        finally:
            for future in (caller_end, agent_end, waiting):
                future.cancel()
        return by_agent

    async def _bridge_customer(self, call_id: str, customer: Call, agent: str) -> None:
        try:
            await self._hold_bridge(call_id, customer, agent)
        finally:
            self._customers.pop(call_id, None)
            if not customer.ended:
                await customer.hangup(0, "queue callback over")

    # -- callbacks ---------------------------------------------------------------------

    async def _callback_call(self, action: DialCallback) -> None:
        """The agent answered a callback: it hears "callback for NUMBER", then the
        customer is dialled and, answering, bridged to it."""
        agent_call = self._agent_legs.get(action.agent)
        if agent_call is None or agent_call.ended:
            self._agent_legs.pop(action.agent, None)
            self._input("agent_lost", action.agent)
            return
        self._answered.pop((action.caller, action.agent), None)
        await self.prompts.play(agent_call, "queue-callback-for", *digits_prompts(action.number))
        caller = self.engine.caller(action.caller)
        queue = caller.queue if caller is not None else ""
        cfg = self._queue_config(queue)
        number = cfg.number if cfg is not None else ""
        music = self._spawn(agent_call.music(), f"ACD callback music {action.agent}")
        dial = asyncio.ensure_future(
            self.switch.dial(
                action.number,
                caller_id=number or queue or "acd",
                timeout=self._callback_ring_seconds,
                placed_for=f"queue {queue} callback {action.caller}",
            )
        )
        agent_gone = asyncio.ensure_future(agent_call.wait_ended())
        try:
            await asyncio.wait({dial, agent_gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            music.cancel()
            agent_gone.cancel()
            if not dial.done():
                dial.cancel()
                with contextlib.suppress(asyncio.CancelledError, PbxError):
                    await dial
        if agent_call.ended:
            self._agent_legs.pop(action.agent, None)
            if dial.done() and not dial.cancelled() and dial.exception() is None:
                await dial.result().hangup(0, "the agent hung up")
            self._input("agent_lost", action.agent)
            return
        try:
            customer = dial.result()
        except PbxError as exc:
            log.info("callback %s to %s failed: %s", action.caller, action.number, exc)
            self._drop_agent_leg(action.agent)
            self._input("callback_result", action.caller, answered=False)
            return
        self._customers[action.caller] = customer
        self._input("callback_result", action.caller, answered=True)
        if action.caller in self._customers and (
            self.engine.caller_state(action.caller) is not CallerState.CONNECTED
        ):  # the engine did not take it (gone meanwhile)
            self._customers.pop(action.caller, None)
            await customer.hangup(0, "callback no longer wanted")

    _callback_ring_seconds = 30.0

    # -- a queued caller ---------------------------------------------------------------

    async def serve_caller(self, call: Call, queue: str, *, number: str | None = None) -> str:
        """Answer `call` and keep it in `queue` until it is bridged and done, leaves,
        or is sent on; returns the CDR's cause. `number` is the customer's number when
        it is not the call's caller (a call the dialer placed: its callee)."""
        if not await call.answer():
            return f"queue {queue}: not answered"
        leg = CallerLeg(call, queue)
        self._callers[call.id] = leg
        watcher = self._spawn(self._watch_caller(leg), f"ACD caller events {call.id}")
        # What the caller hears now: music, or an announcement (cut short by what
        # matters more: an agent's bridge, an exit, the hang-up).
        hearing: asyncio.Future[Any] | None = None
        try:
            self._input("caller_joined", call.id, queue, number or call.caller)
            while True:
                if (hearing is None or hearing.done()) and call.up:
                    hearing = asyncio.ensure_future(call.music())
                getter = asyncio.ensure_future(leg.inbox.get())
                waits: set[asyncio.Future[Any]] = {getter}
                if hearing is not None:
                    waits.add(hearing)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()  # the announcement ended: music again
                    continue
                action = getter.result()
                await _stop(hearing)
                hearing = None
                if action is None:  # the caller hung up
                    return f"queue {leg.queue}: caller hung up"
                if isinstance(action, Announce | Play):
                    hearing = asyncio.ensure_future(self._announce(leg, action))
                    continue
                cause = await self._caller_action(leg, action)
                if cause is not None:
                    return cause
        finally:
            await _stop(hearing)
            watcher.cancel()
            self._callers.pop(call.id, None)
            if call.ended and self.engine.caller_state(call.id) is not None:
                self._input("caller_left", call.id)

    async def _announce(self, leg: CallerLeg, action: Announce | Play) -> None:
        if isinstance(action, Play):
            await self.prompts.play(leg.call, action.prompt)
            return
        names = ["queue-you-are", *digits_prompts(action.position), "queue-in-line"]
        names += wait_prompts(action.wait)
        cfg = self._queue_config(leg.queue)
        if cfg is not None and cfg.callback_key == "1":
            names.append("queue-callback-offer")
        await self.prompts.play(leg.call, *names)

    async def _watch_caller(self, leg: CallerLeg) -> None:
        """Keys and the hang-up of a queued caller, as engine inputs."""
        call = leg.call
        async for event in call.subscribe():
            if event.kind is EventKind.DTMF:
                self._input("key_pressed", call.id, event.digit)
            elif event.kind is EventKind.ENDED:
                break
        if self.engine.caller_state(call.id) in (CallerState.WAITING, CallerState.RINGING):
            self._input("caller_left", call.id)
        leg.inbox.put_nowait(None)

    async def _caller_action(self, leg: CallerLeg, action: Action) -> str | None:
        """One action for a queued caller; a cause when the caller is done with."""
        call = leg.call
        if isinstance(action, Announce | Play):
            await self._announce(leg, action)
        elif isinstance(action, Bridge):
            by_agent = await self._hold_bridge(call.id, call, action.agent)
            if by_agent is not None:
                who = "agent" if by_agent else "caller"
                return f"queue {leg.queue}: answered by {action.agent}, {who} hung up"
        elif isinstance(action, Exit):
            return await self._exit(leg, action.reason)
        elif isinstance(action, Overflow):
            return await self._overflow(leg, action.target)
        elif isinstance(action, Handoff):
            return await self._overflow(leg, action.target, "transfer")
        elif isinstance(action, Voicemail):
            return await self._to_mailbox(leg, self._mailbox_of(action.queue))
        return None

    async def _exit(self, leg: CallerLeg, reason: str) -> str | None:
        call = leg.call
        if reason == "callback":
            await self.prompts.play(call, "queue-callback-saved")
            await call.hangup(0, "callback requested")
            return f"queue {leg.queue}: callback requested"
        if reason == "agent-lost":
            await call.hangup(0, "the agent's phone was lost")
            return f"queue {leg.queue}: the agent's phone was lost"
        cfg = self._queue_config(leg.queue)
        if reason in OVERFLOW_REASONS and cfg is not None and cfg.overflow:
            return await self._overflow(leg, cfg.overflow)
        await self.prompts.play(call, "queue-unavailable")
        await call.hangup(0, f"queue exit: {reason}")
        return f"queue {leg.queue}: exit ({reason})"

    async def _overflow(self, leg: CallerLeg, target: str, why: str = "overflow") -> str | None:
        call = leg.call
        if target.startswith(QUEUE_PREFIX):
            leg.queue = target[len(QUEUE_PREFIX) :]
            self._input("caller_joined", call.id, leg.queue, call.caller)
            return None
        if target.startswith(MAILBOX_PREFIX):
            return await self._to_mailbox(leg, target[len(MAILBOX_PREFIX) :])
        outcome = await call.transfer(target)
        if not call.ended:
            await call.hangup(0, f"{why} to {target} failed")
        return f"queue {leg.queue}: {why} to {target}: {outcome}"

    async def _to_mailbox(self, leg: CallerLeg, box: str) -> str:
        service = self.switch.voicemail
        if service is None or not box:
            await leg.call.hangup(0, "no mailbox")
            return f"queue {leg.queue}: no mailbox"
        return await service.deposit(leg.call, box, "unavailable", self.switch)

    def _mailbox_of(self, queue: str) -> str:
        cfg = self._queue_config(queue)
        if cfg is None:
            return ""
        if cfg.overflow and cfg.overflow.startswith(MAILBOX_PREFIX):
            return cfg.overflow[len(MAILBOX_PREFIX) :]
        return cfg.number

    def _queue_config(self, queue: str) -> QueueConfig | None:
        return self._configs.get(queue)


async def _stop(task: asyncio.Future[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
