"""The ACD engine's caller inputs: join, leave, answer, callbacks, keys, escalation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from acd.engine_actions import (
    Action,
    Bridge,
    CallbackDeleted,
    CallbackSaved,
    CancelRing,
    DialCallback,
    Exit,
    Handoff,
    Requeue,
    Voicemail,
)
from acd.engine_core import (
    CallerState,
    EngineCore,
    _Entry,
)
from acd.model import AgentState, Caller
from acd.strategy import queue_is_empty

log = logging.getLogger(__name__)

MAX_LEVEL = 10  # skill levels are 1..10


class CallerInputs(EngineCore):
    """What happens to callers (see acd.engine for the transitions)."""

    # ---- caller inputs -------------------------------------------------------------

    def caller_joined(
        self,
        call_id: str,
        queue: str,
        number: str,
        now: float,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
    ) -> list[Action]:
        """A call enters `queue`: ENTERQUEUE, or an Exit when it is refused."""
        if call_id in self._entries:  # a repeated input: the caller is queued already
            log.warning("%s: already queued in %s", call_id, self._entries[call_id].caller.queue)
            return []
        cfg = self._cfg.queues.get(queue)
        if cfg is None:
            log.warning("%s: no queue %s", call_id, queue)
            return [Exit(call_id, "no-queue")]
        if cfg.max_callers > 0 and len(self._order(queue)) >= cfg.max_callers:
            log.info("%s: queue %s full", call_id, queue)
            return [Exit(call_id, "full")]
        caller = Caller(call_id, queue, number, now, priority, dict(skills or {}))
        members = self._logged_members(queue)
        if queue_is_empty(now, cfg, members, self._agents, cfg.join_empty, caller):
            log.info("%s: queue %s empty, join refused", call_id, queue)
            return [Exit(call_id, "joinempty")]
        return self._enter(caller, now, [])

    def _enter(
        self,
        caller: Caller,
        now: float,
        actions: list[Action],
        attempts: int = 0,
    ) -> list[Action]:
        self._seq += 1
        entry = _Entry(caller, self._seq, attempts=attempts)
        self._entries[caller.call_id] = entry
        position = self._position(entry)
        entry.caller = replace(caller, entry_position=position)
        self._arm(entry, now)
        actions.append(
            self._emit(
                now,
                caller.call_id,
                caller.queue,
                None,
                "ENTERQUEUE",
                caller=caller.number,
                position=position,
            )
        )
        return self._finish(now, actions)

    def caller_left(self, call_id: str, now: float) -> list[Action]:
        """The caller's leg ended (hang-up): ABANDON while waiting, COMPLETECALLER when
        connected; ignored for a callback that waits (its leg is gone already)."""
        entry = self._entries.get(call_id)
        if entry is None:
            return []
        if entry.state is CallerState.CONNECTED:
            return self.call_completed(call_id, now, by_agent=False)
        if entry.state is CallerState.DIALING:
            return self.callback_result(call_id, now, answered=False)
        if entry.caller.callback:
            return []
        caller = entry.caller
        actions = self._cancel_offer(entry, now)  # RINGCANCELED before the closing event
        actions.append(
            self._emit(
                now,
                call_id,
                caller.queue,
                None,
                "ABANDON",
                position=self._position(entry),
                entry_position=caller.entry_position,
                wait=now - caller.joined,
            )
        )
        self._remove(entry)
        return self._finish(now, actions)

    def offer_answered(
        self, call_id: str, agent: str, now: float, offer_id: int | None = None
    ) -> list[Action]:
        """An agent answered: CONNECT and Bridge (a callback: DialCallback first); the
        other agents of a ringall offer are cancelled. A late answer (an offer gone,
        or `offer_id` not the current offer's) is hung up with a CancelRing."""
        offer = self._offers.get(call_id)
        entry = self._entries.get(call_id)
        if (
            offer is None
            or entry is None
            or agent not in offer.agents
            or (offer_id is not None and offer_id != offer.id)
        ):
            log.info("%s: %s answered an offer that is gone, hanging it up", call_id, agent)
            return [CancelRing(call_id, (agent,), offer_id or 0)]
        del self._offers[call_id]
        actions: list[Action] = []
        others = tuple(sorted(offer.agents - {agent}))
        for name in offer.agents:
            self._agent_offer.pop(name, None)
        for name in others:
            actions.append(self._agent_set(name, now, state=AgentState.AVAILABLE))
        if others:
            actions.append(CancelRing(call_id, others, offer.id))
        actions.append(self._agent_set(agent, now, state=AgentState.ON_CALL, missed_offers=0))
        self._agent_call[agent] = call_id
        self._disarm(entry)
        entry.agent = agent
        entry.ring = now - offer.started
        caller = entry.caller
        if caller.callback:
            entry.state = CallerState.DIALING
            entry.attempts += 1
            actions.append(DialCallback(call_id, agent, caller.number, entry.attempts))
        else:
            actions += self._connect(entry, now)
        return self._finish(now, actions)

    def _connect(self, entry: _Entry, now: float) -> list[Action]:
        caller = entry.caller
        assert entry.agent is not None
        entry.state = CallerState.CONNECTED
        entry.connected_at = now
        entry.hold = now - caller.joined
        return [
            self._emit(
                now,
                caller.call_id,
                caller.queue,
                entry.agent,
                "CONNECT",
                hold=entry.hold,
                ring=entry.ring,
            ),
            Bridge(caller.call_id, entry.agent),
        ]

    def offer_failed(
        self,
        call_id: str,
        agent: str,
        now: float,
        status: int = 0,
        offer_id: int | None = None,
    ) -> list[Action]:
        """An agent's ringing leg failed (no answer, busy, declined: SIP `status`);
        a report about an older offer (`offer_id`) changes nothing."""
        offer = self._offers.get(call_id)
        stale = offer_id is not None and offer is not None and offer_id != offer.id
        if offer is None or agent not in offer.agents or stale:
            log.info("%s: failure of %s (%s) for an offer that is gone", call_id, agent, status)
            return []
        log.info("%s: offer to %s failed with %s", call_id, agent, status)
        return self._finish(now, self._ring_failed(offer, agent, now))

    def call_completed(self, call_id: str, now: float, by_agent: bool) -> list[Action]:
        """The bridged call ended: COMPLETEAGENT or COMPLETECALLER, the agent to wrap-up."""
        entry = self._entries.get(call_id)
        if entry is None:
            return []
        if entry.state is CallerState.DIALING:
            return self._callback_failed(entry, now, "ended")
        if entry.state is not CallerState.CONNECTED:
            return self.caller_left(call_id, now)
        assert entry.agent is not None
        caller = entry.caller
        talk = now - entry.connected_at
        actions: list[Action] = [
            self._emit(
                now,
                call_id,
                caller.queue,
                entry.agent,
                "COMPLETEAGENT" if by_agent else "COMPLETECALLER",
                hold=entry.hold,
                talk=talk,
                position=caller.entry_position,
            )
        ]
        self._remove(entry)
        actions += self._call_done(entry.agent, caller.queue, now, talk, call_id)
        return self._finish(now, actions)

    # ---- callbacks ------------------------------------------------------------------

    def callback_requested(self, call_id: str, now: float) -> list[Action]:
        """The caller will hang up but keeps its place: CALLBACKREQUEST, Exit "callback"."""
        entry = self._entries.get(call_id)
        if (
            entry is None
            or entry.caller.callback
            or entry.state not in (CallerState.WAITING, CallerState.RINGING)
        ):
            return []
        caller = entry.caller
        if not caller.number:
            log.info("%s: no number to call back, callback refused", call_id)
            return []
        actions: list[Action] = [
            self._emit(
                now,
                call_id,
                caller.queue,
                None,
                "CALLBACKREQUEST",
                number=caller.number,
                position=self._position(entry),
                wait=now - caller.joined,
            )
        ]
        actions += self._cancel_offer(entry, now)
        entry.caller = replace(caller, callback=True)
        self._arm(entry, now)
        actions += [CallbackSaved(entry.caller, entry.attempts), Exit(call_id, "callback")]
        return self._finish(now, actions)

    def callback_result(self, call_id: str, now: float, answered: bool) -> list[Action]:
        """The customer of a callback answered (CONNECT, Bridge) or not (retry / drop)."""
        entry = self._entries.get(call_id)
        if entry is None or entry.state is not CallerState.DIALING:
            return []
        if not answered:
            return self._callback_failed(entry, now, "no-answer")
        caller = entry.caller
        actions: list[Action] = [
            self._emit(
                now,
                call_id,
                caller.queue,
                entry.agent,
                "CALLBACKATTEMPT",
                attempt=entry.attempts,
                status="answered",
            ),
            CallbackDeleted(call_id),
        ]
        actions += self._connect(entry, now)
        return self._finish(now, actions)

    def _callback_failed(self, entry: _Entry, now: float, status: str) -> list[Action]:
        caller = entry.caller
        agent = entry.agent
        assert agent is not None
        actions: list[Action] = [
            self._emit(
                now,
                caller.call_id,
                caller.queue,
                agent,
                "CALLBACKATTEMPT",
                attempt=entry.attempts,
                status=status,
            )
        ]
        entry.agent = None
        actions += self._release(agent, now)
        if entry.attempts >= self._queue(caller.queue).callback_attempts:
            actions += self._drop_callback(entry, now)
        else:
            entry.state = CallerState.WAITING
            self._arm(entry, now)
            entry.retry_at = now + self._callback_retry
            actions.append(CallbackSaved(caller, entry.attempts))
        return self._finish(now, actions)

    def callback_cancel(self, call_id: str, now: float) -> list[Action]:
        """Drop a waiting callback (an admin's or the customer's cancel): CALLBACKDROP."""
        entry = self._entries.get(call_id)
        if (
            entry is None
            or not entry.caller.callback
            or entry.state not in (CallerState.WAITING, CallerState.RINGING)
        ):
            return []
        actions = self._cancel_offer(entry, now)
        actions += self._drop_callback(entry, now)
        return self._finish(now, actions)

    def key_pressed(self, call_id: str, key: str, now: float) -> list[Action]:
        """A waiting caller pressed `key`: the callback key or the voicemail key."""
        entry = self._entries.get(call_id)
        if (
            entry is None
            or entry.caller.callback
            or entry.state not in (CallerState.WAITING, CallerState.RINGING)
        ):
            return []
        cfg = self._queue(entry.caller.queue)
        if cfg.callback_key is not None and key == cfg.callback_key:
            return self.callback_requested(call_id, now)
        if cfg.voicemail_key is not None and key == cfg.voicemail_key:
            caller = entry.caller
            actions = self._cancel_offer(entry, now)
            actions.append(
                self._emit(
                    now,
                    call_id,
                    caller.queue,
                    None,
                    "EXITWITHKEY",
                    key=key,
                    position=self._position(entry),
                    wait=now - caller.joined,
                )
            )
            self._remove(entry)
            actions.append(Voicemail(call_id, caller.queue))
            return self._finish(now, actions)
        return []

    def transfer(self, call_id: str, now: float, target: str) -> list[Action]:
        """The agent of a connected call hands the caller to `target` outside the queues
        (an extension, `vm:BOX`, `trunk:NAME/NUMBER`): TRANSFER {target, hold, talk}
        closes the agent's part (to wrap-up), the caller leaves the queues, Handoff
        tells the shell to split them and send the caller on. Nothing for a call not
        connected, or a stored callback's customer (its leg is the shell's own)."""
        entry = self._entries.get(call_id)
        if entry is None or entry.state is not CallerState.CONNECTED or entry.agent is None:
            return []
        caller = entry.caller
        if caller.callback:
            return []
        agent = entry.agent
        actions = self._transferred(entry, now, target)
        actions.append(Handoff(call_id, target, agent))
        return self._finish(now, actions)

    def _transferred(self, entry: _Entry, now: float, target: str) -> list[Action]:
        """A connected call's agent part ends: TRANSFER {target, hold, talk} in its queue,
        the caller out of the engine's tables, the agent to wrap-up (escalate, transfer)."""
        agent, caller = entry.agent, entry.caller
        assert agent is not None
        talk = now - entry.connected_at
        actions: list[Action] = [
            self._emit(
                now,
                caller.call_id,
                caller.queue,
                agent,
                "TRANSFER",
                target=target,
                hold=entry.hold,
                talk=talk,
            )
        ]
        self._remove(entry)
        actions += self._call_done(agent, caller.queue, now, talk, caller.call_id)
        return actions

    def escalate(
        self,
        call_id: str,
        now: float,
        skill: str | None = None,
        level: int | None = None,
        queue: str | None = None,
        note: str | None = None,
    ) -> list[Action]:
        """Send the call to a specialist skill and/or queue, keeping its wait (`joined`).

        A connected call: TRANSFER {target, hold, talk} closes the agent's part (the
        agent to wrap-up), Requeue puts the caller back on music. A queue move emits
        TRANSFER in the old queue and ENTERQUEUE in the new one. `note` is appended
        to `Caller.notes`, which the specialist's Ring carries. The skill's level is
        clamped to 1..10 and never lowers one the caller already requires; the skill
        rules' clock restarts (`Caller.relax_from = now`) so the new requirement is
        not relaxed away at once.
        """
        entry = self._entries.get(call_id)
        target = queue if queue is not None else entry.caller.queue if entry else ""
        if entry is None or target not in self._cfg.queues or entry.state is CallerState.DIALING:
            log.info("%s: cannot escalate to queue %s", call_id, target)
            return []
        caller = entry.caller
        skills = dict(caller.skills)
        if skill is not None:
            wanted = min(MAX_LEVEL, max(1, level if level is not None else 1))
            skills[skill] = max(wanted, skills.get(skill, wanted))
        moved = target != caller.queue
        connected = entry.state is CallerState.CONNECTED
        if not moved and not connected and skill is None:
            return []
        where = f"queue:{target}" if moved or skill is None else f"skill:{skill}/{skills[skill]}"
        actions: list[Action] = []
        if connected:
            assert entry.agent is not None
            agent = entry.agent
            actions += self._transferred(entry, now, where)
            actions.append(Requeue(call_id, target, agent))
            entry.agent = None
            moved = True
        else:
            actions += self._cancel_offer(entry, now)
            if moved:
                actions.append(
                    self._emit(
                        now,
                        call_id,
                        caller.queue,
                        None,
                        "TRANSFER",
                        target=where,
                        hold=now - caller.joined,
                        talk=0.0,
                    )
                )
            self._remove(entry)
        # A connected callback's customer is on the line now: a live caller from here.
        new = replace(
            caller,
            queue=target,
            skills=skills,
            callback=caller.callback and not connected,
            relax_from=now,
            notes=(*caller.notes, note) if note else caller.notes,
        )
        if new.callback:
            actions.append(CallbackSaved(new, entry.attempts))
        if moved:
            return self._enter(new, now, actions, entry.attempts)
        entry.caller = new
        entry.state = CallerState.WAITING
        self._entries[call_id] = entry
        self._arm(entry, now, keep=True)
        return self._finish(now, actions)
