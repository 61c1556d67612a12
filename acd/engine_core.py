"""The ACD engine's state and the helpers every input shares (see acd.engine)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from acd import strategy
from acd.engine_actions import (
    Action,
    AgentChanged,
    CallbackDeleted,
    CancelRing,
    Emit,
    Exit,
    Ring,
    RingCallback,
)
from acd.model import Agent, AgentState, Caller, Member, Offer, QueueConfig, QueueEvent
from acd.skills import next_relax_at
from acd.strategy import queue_is_empty

log = logging.getLogger(__name__)

DispatchFn = Callable[
    [
        float,
        Mapping[str, QueueConfig],
        Mapping[str, Sequence[Member]],
        Mapping[str, Agent],
        Sequence[Caller],
        Collection[str],
        random.Random,
        Any,
    ],
    list[Offer],
]
"""round6.md's `dispatch(now, queues, members, agents, waiting, busy_offers, rng, memory)`."""

EstimateFn = Callable[[int, str, float], float | None]
"""(position, queue, now) -> estimated seconds until an agent takes the caller."""

AUTO_PAUSE = "auto-pause"


class CallerState(StrEnum):
    WAITING = "waiting"  # in the queue, music
    RINGING = "ringing"  # an offer rings agents for it
    DIALING = "dialing"  # callback: the agent answered, the customer is being dialled
    CONNECTED = "connected"  # bridged to an agent


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A wallboard row: one caller still waiting (or ringing) in a queue."""

    call_id: str
    queue: str
    number: str
    position: int
    wait: float
    state: CallerState
    callback: bool
    priority: int


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A wallboard row: one agent's state, time in it, and its call if any."""

    name: str
    state: AgentState
    seconds: float
    pause_reason: str | None
    caller: str | None


@dataclass(slots=True)
class _Entry:
    caller: Caller
    seq: int
    state: CallerState = CallerState.WAITING
    agent: str | None = None  # DIALING / CONNECTED
    connected_at: float = 0.0
    hold: float = 0.0
    ring: float = 0.0
    attempts: int = 0  # callback attempts made
    retry_at: float | None = None
    max_wait_at: float | None = None
    announce_at: float | None = None
    periodic_at: float | None = None
    relax_at: float | None = None

    def timers(self) -> Iterable[float | None]:
        return (self.retry_at, self.max_wait_at, self.announce_at, self.periodic_at, self.relax_at)


@dataclass(slots=True)
class _Ringing:
    caller: str
    queue: str
    agents: set[str]
    started: float
    deadline: float
    id: int = 0


@dataclass(slots=True)
class _Wrap:
    queue: str
    seconds: float
    call_id: str = ""  # the call this wrap-up follows (WRAPUPEND names it)


@dataclass(slots=True)
class _Pending:
    """What an agent asked during its call, applied when the call ends."""

    logout: bool = False
    pause: bool = False
    reason: str | None = None


def _default_dispatch() -> tuple[DispatchFn, Any]:
    return strategy.dispatch, strategy.Memory()


@dataclass(slots=True)
class _Config:
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    members: dict[str, tuple[Member, ...]] = field(default_factory=dict)


class EngineCore:
    """The engine's state and shared steps; `acd.engine.AcdEngine` adds the inputs."""

    def __init__(
        self,
        queues: Mapping[str, QueueConfig],
        members: Mapping[str, Sequence[Member]],
        agents: Iterable[Agent] = (),
        *,
        dispatch: DispatchFn | None = None,
        memory: Any = None,
        rng: random.Random | None = None,
        estimate: EstimateFn | None = None,
        callback_retry_seconds: float = 60.0,
    ) -> None:
        if dispatch is None:
            dispatch, default_memory = _default_dispatch()
            memory = default_memory if memory is None else memory
        self._dispatch_fn = dispatch
        self._memory = memory
        self._rng = rng if rng is not None else random.Random()
        self._estimate = estimate
        self._callback_retry = callback_retry_seconds
        self._cfg = _Config()
        self._set_config(queues, members)
        self._agents: dict[str, Agent] = {}
        self._login: dict[str, frozenset[str] | None] = {}  # logged-in agent -> queues
        self._login_at: dict[str, float] = {}
        self._pending: dict[str, _Pending] = {}
        self._wrap: dict[str, _Wrap] = {}
        self._entries: dict[str, _Entry] = {}
        self._offers: dict[str, _Ringing] = {}  # caller -> offer
        self._agent_offer: dict[str, str] = {}  # ringing agent -> caller
        self._agent_call: dict[str, str] = {}  # ON_CALL agent -> caller
        self._seq = 0
        self._offer_seq = 0
        for agent in agents:
            self._restore_agent(agent, agent.state_since, None)

    # ---- configuration -------------------------------------------------------

    def _set_config(
        self, queues: Mapping[str, QueueConfig], members: Mapping[str, Sequence[Member]]
    ) -> None:
        self._cfg.queues = dict(queues)
        self._cfg.members = {q: tuple(ms) for q, ms in members.items()}

    def _queue(self, name: str) -> QueueConfig:
        cfg = self._cfg.queues.get(name)
        return cfg if cfg is not None else QueueConfig(name=name, number="")

    # ---- helpers ----------------------------------------------------------------

    def _emit(
        self, now: float, call_id: str, queue: str, agent: str | None, event: str, **data: Any
    ) -> Emit:
        return Emit(QueueEvent(now, call_id, queue, agent, event, data))

    def _agent_set(self, name: str, now: float, **changes: Any) -> AgentChanged:
        old = self._agents[name]
        if "state" in changes and changes["state"] is not old.state:
            changes["state_since"] = now
        new = replace(old, **changes)
        self._agents[name] = new
        return AgentChanged(new, self._login.get(name) if name in self._login else frozenset())

    def _logged_members(self, queue: str) -> list[Member]:
        out = []
        for member in self._cfg.members.get(queue, ()):
            if member.agent not in self._login:
                continue
            queues = self._login[member.agent]
            if queues is None or queue in queues:
                out.append(member)
        return out

    def _order(self, queue: str) -> list[_Entry]:
        entries = [
            e
            for e in self._entries.values()
            if e.caller.queue == queue and e.state in (CallerState.WAITING, CallerState.RINGING)
        ]
        entries.sort(key=lambda e: (-e.caller.priority, e.caller.joined, e.seq))
        return entries

    def _position(self, entry: _Entry) -> int:
        return self._order(entry.caller.queue).index(entry) + 1

    def _offerable(self, name: str, cfg: QueueConfig, now: float) -> bool:
        agent = self._agents.get(name)
        if agent is None or agent.state is not AgentState.AVAILABLE:
            return False
        if name in self._agent_offer or agent.wrapup_until > now:
            return False
        if (agent.in_use and not cfg.ring_in_use) or not agent.registered:
            return False
        return any(m.agent == name for m in self._logged_members(cfg.name))

    def _arm(self, entry: _Entry, now: float, keep: bool = False) -> None:
        """Set the caller's timers for its queue (keep: leave running ones as they are)."""
        cfg = self._queue(entry.caller.queue)
        live = not entry.caller.callback
        joined = entry.caller.joined
        entry.max_wait_at = (
            joined + cfg.max_wait_seconds if live and cfg.max_wait_seconds > 0 else None
        )
        if live and cfg.announce_frequency > 0:
            if not keep or entry.announce_at is None:
                entry.announce_at = now + cfg.announce_frequency
        else:
            entry.announce_at = None
        if live and cfg.periodic_announce and cfg.periodic_frequency > 0:
            if not keep or entry.periodic_at is None:
                entry.periodic_at = now + cfg.periodic_frequency
        else:
            entry.periodic_at = None
        entry.relax_at = next_relax_at(entry.caller, cfg, now)

    def _disarm(self, entry: _Entry) -> None:
        entry.retry_at = entry.max_wait_at = entry.announce_at = None
        entry.periodic_at = entry.relax_at = None

    def _remove(self, entry: _Entry) -> None:
        self._entries.pop(entry.caller.call_id, None)
        if entry.agent is not None and self._agent_call.get(entry.agent) == entry.caller.call_id:
            del self._agent_call[entry.agent]

    def _exit(self, entry: _Entry, now: float, event: str, reason: str) -> list[Action]:
        """Remove a waiting caller with an EXIT* event and an Exit action."""
        caller = entry.caller
        ev = self._emit(
            now,
            caller.call_id,
            caller.queue,
            None,
            event,
            position=self._position(entry),
            entry_position=caller.entry_position,
            wait=now - caller.joined,
        )
        self._remove(entry)
        return [ev, Exit(caller.call_id, reason)]

    # ---- offers -------------------------------------------------------------------

    def _cancel_offer(self, entry: _Entry, now: float) -> list[Action]:
        """Cancel the caller's ringing offer (RINGCANCELED per agent), agents freed."""
        offer = self._offers.pop(entry.caller.call_id, None)
        if offer is None:
            return []
        actions: list[Action] = []
        agents = tuple(sorted(offer.agents))
        for name in agents:
            self._agent_offer.pop(name, None)
            actions.append(
                self._emit(
                    now, offer.caller, offer.queue, name, "RINGCANCELED", ring=now - offer.started
                )
            )
            actions.append(self._agent_set(name, now, state=AgentState.AVAILABLE))
        entry.state = CallerState.WAITING
        if agents:
            actions.append(CancelRing(offer.caller, agents, offer.id))
        return actions

    def _ring_failed(self, offer: _Ringing, name: str, now: float) -> list[Action]:
        """One agent of an offer did not answer: RINGNOANSWER, missed count, auto-pause."""
        offer.agents.discard(name)
        self._agent_offer.pop(name, None)
        cfg = self._queue(offer.queue)
        actions: list[Action] = [
            self._emit(
                now, offer.caller, offer.queue, name, "RINGNOANSWER", ring=now - offer.started
            )
        ]
        missed = self._agents[name].missed_offers + 1
        if cfg.autopause_after > 0 and missed >= cfg.autopause_after:
            actions.append(
                self._agent_set(
                    name,
                    now,
                    state=AgentState.PAUSED,
                    pause_reason=AUTO_PAUSE,
                    missed_offers=missed,
                )
            )
            actions.append(self._emit(now, "", "", name, "PAUSE", reason=AUTO_PAUSE))
        else:
            actions.append(
                self._agent_set(name, now, state=AgentState.AVAILABLE, missed_offers=missed)
            )
        if not offer.agents:
            self._offer_over(offer, now)
        return actions

    def _offer_over(self, offer: _Ringing, now: float) -> None:
        """No agent of the offer is ringing any more: the caller waits the retry pause."""
        self._offers.pop(offer.caller, None)
        entry = self._entries.get(offer.caller)
        if entry is None:
            return
        entry.state = CallerState.WAITING
        retry = self._queue(offer.queue).retry_seconds
        entry.retry_at = now + retry if retry > 0 else None

    def _make_offers(self, now: float) -> list[Action]:
        eligible = [
            e.caller
            for e in sorted(self._entries.values(), key=lambda e: e.seq)
            if e.state is CallerState.WAITING
            and e.retry_at is None
            and e.caller.queue in self._cfg.queues
        ]
        if not eligible:
            return []
        if not any(
            a.state is AgentState.AVAILABLE and n not in self._agent_offer
            for n, a in self._agents.items()
        ):
            return []
        members = {q: self._logged_members(q) for q in self._cfg.queues}
        offers = self._dispatch_fn(
            now,
            self._cfg.queues,
            members,
            dict(self._agents),
            eligible,
            frozenset(self._agent_offer),
            self._rng,
            self._memory,
        )
        actions: list[Action] = []
        for offer in offers:
            entry = self._entries.get(offer.caller)
            if (
                entry is None
                or entry.state is not CallerState.WAITING
                or entry.retry_at is not None
                or offer.queue != entry.caller.queue
            ):
                log.warning(
                    "dispatch offered %s in %s: not waiting, ignored", offer.caller, offer.queue
                )
                continue
            cfg = self._queue(offer.queue)
            agents: list[str] = []
            for name in offer.agents:
                if name not in agents and self._offerable(name, cfg, now):
                    agents.append(name)
            if not agents:
                continue
            self._offer_seq += 1
            ringing = _Ringing(
                offer.caller,
                offer.queue,
                set(agents),
                now,
                now + cfg.ring_seconds,
                self._offer_seq,
            )
            self._offers[offer.caller] = ringing
            entry.state = CallerState.RINGING
            for name in agents:
                self._agent_offer[name] = offer.caller
                actions.append(self._agent_set(name, now, state=AgentState.RINGING))
            caller = entry.caller
            if caller.callback:
                actions.append(
                    RingCallback(
                        caller.call_id,
                        caller.queue,
                        tuple(agents),
                        caller.number,
                        cfg.ring_seconds,
                        caller.notes,
                        ringing.id,
                    )
                )
            else:
                actions.append(
                    Ring(
                        caller.call_id,
                        caller.queue,
                        tuple(agents),
                        cfg.ring_seconds,
                        caller.notes,
                        ringing.id,
                    )
                )
        return actions

    def _check_empty(self, now: float) -> list[Action]:
        """Leave-when-empty: waiting callers of a queue empty for them leave (EXITEMPTY)."""
        actions: list[Action] = []
        for name, cfg in self._cfg.queues.items():
            if not cfg.leave_when_empty:
                continue
            members = self._logged_members(name)
            for entry in self._order(name):
                if entry.state is not CallerState.WAITING or entry.caller.callback:
                    continue
                conditions = cfg.leave_when_empty
                if queue_is_empty(now, cfg, members, self._agents, conditions, entry.caller):
                    actions += self._exit(entry, now, "EXITEMPTY", "empty")
        return actions

    def _finish(self, now: float, actions: list[Action]) -> list[Action]:
        actions += self._check_empty(now)
        actions += self._make_offers(now)
        actions += self._check_empty(now)
        return actions

    # ---- agents after a call ---------------------------------------------------------

    def _release(self, name: str, now: float) -> list[Action]:
        """The agent's queue call is over without a handled call: apply pending, or free."""
        self._agent_call.pop(name, None)
        pending = self._pending.pop(name, None)
        if pending is not None and pending.logout:
            return self._logged_off(name, now)
        if pending is not None and pending.pause:
            return [
                self._agent_set(name, now, state=AgentState.PAUSED, pause_reason=pending.reason),
                self._emit(now, "", "", name, "PAUSE", reason=pending.reason or ""),
            ]
        return [self._agent_set(name, now, state=AgentState.AVAILABLE)]

    def _call_done(
        self, name: str, queue: str, now: float, talk: float, call_id: str
    ) -> list[Action]:
        """A handled queue call ended: counters, then wrap-up (or pending pause/logout)."""
        agent = self._agents[name]
        cfg = self._queue(queue)
        wrap = agent.wrapup_seconds if agent.wrapup_seconds is not None else cfg.wrapup_seconds
        self._agents[name] = replace(
            agent,
            last_call_end={**agent.last_call_end, queue: now},
            calls_taken={**agent.calls_taken, queue: agent.calls_taken.get(queue, 0) + 1},
            talk_seconds=agent.talk_seconds + talk,
            wrapup_until=now + wrap if wrap > 0 else agent.wrapup_until,
        )
        pending = self._pending.get(name)
        if wrap <= 0 or (pending is not None and (pending.logout or pending.pause)):
            return self._release(name, now)
        self._pending.pop(name, None)
        self._agent_call.pop(name, None)
        self._wrap[name] = _Wrap(queue, wrap, call_id)
        return [self._agent_set(name, now, state=AgentState.WRAP_UP)]

    def _logged_off(self, name: str, now: float) -> list[Action]:
        self._pending.pop(name, None)
        self._login.pop(name, None)
        since = self._login_at.pop(name, now)
        self._wrap.pop(name, None)  # logging out ends a wrap-up: none left at the next login
        return [
            self._agent_set(
                name, now, state=AgentState.LOGGED_OUT, pause_reason=None, wrapup_until=0.0
            ),
            self._emit(now, "", "", name, "AGENTLOGOFF", logged=now - since),
        ]

    def _restore_agent(
        self, agent: Agent, now: float, queues: frozenset[str] | None
    ) -> list[Action]:
        actions: list[Action] = []
        state = agent.state
        if state in (AgentState.RINGING, AgentState.ON_CALL):
            actions.append(
                self._emit(
                    now,
                    "",
                    "",
                    agent.name,
                    "AGENTRESTORED",
                    state=str(state),
                    since=agent.state_since,
                )
            )
            agent = replace(agent, state=AgentState.AVAILABLE, state_since=now)
        elif state is AgentState.WRAP_UP:
            agent = replace(agent, state=AgentState.AVAILABLE, state_since=now)
        # The restart ended every call and wrap-up: no future wrap-up, no busy phone.
        agent = replace(agent, wrapup_until=0.0, in_use=False)
        self._agents[agent.name] = agent
        if agent.state is not AgentState.LOGGED_OUT:
            self._login[agent.name] = queues
            self._login_at[agent.name] = now
        if actions:
            actions.append(AgentChanged(agent, queues))
        return actions

    def _drop_callback(self, entry: _Entry, now: float) -> list[Action]:
        caller = entry.caller
        self._remove(entry)
        return [
            self._emit(
                now, caller.call_id, caller.queue, None, "CALLBACKDROP", attempts=entry.attempts
            ),
            CallbackDeleted(caller.call_id),
        ]


def _after(moment: float, every: float, now: float) -> float | None:
    """The first moment after `now` of a period `every` counted from `moment`."""
    if every <= 0:
        return None
    while moment <= now:
        moment += every
    return moment
