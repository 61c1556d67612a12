"""The ACD's live state as a pure state machine: inputs in, actions out.

`AcdEngine` holds every queue's waiting callers, the offers ringing and the
agents' states. It never touches a socket, a clock or the store: each input
method takes `now` and returns a list of actions (`acd.engine_actions`) that the
asyncio shell carries out in order; the shell calls `on_timer(now)` at
`next_deadline()`. Which agent gets which caller is not decided here but by the
`dispatch` function (round 6 seam, `acd.strategy.dispatch`); the engine checks
its answer (only free agents, one offer per agent, one per caller).

Agent states (`AgentState`): from, input -> to.

| from        | input                               | to                                   |
|-------------|-------------------------------------|--------------------------------------|
| LOGGED_OUT  | agent_login                         | AVAILABLE (AGENTLOGIN)               |
| AVAILABLE   | an offer (dispatch)                 | RINGING                              |
| RINGING     | offer_answered                      | ON_CALL (other ringall agents freed) |
| RINGING     | offer_failed / ring timeout / lost  | AVAILABLE, or PAUSED "auto-pause" †  |
| RINGING     | caller left / offer cancelled       | AVAILABLE (RINGCANCELED)             |
| ON_CALL     | call_completed / agent_lost         | WRAP_UP, or AVAILABLE with no wrap ‡ |
| ON_CALL     | callback not answered               | AVAILABLE ‡                          |
| ON_CALL     | agent_pause / agent_logout          | stays; applied when the call ends    |
| WRAP_UP     | wrap-up timer                       | AVAILABLE (WRAPUPEND)                |
| any but OUT | agent_pause                         | PAUSED (PAUSE; a ring is cancelled)  |
| PAUSED      | agent_unpause                       | AVAILABLE, or WRAP_UP if still due   |
| any but OUT | agent_logout                        | LOGGED_OUT (AGENTLOGOFF)             |

† after the queue's `autopause_after` missed offers in a row. ‡ a logout or
pause asked during the call applies instead. An agent lost (`agent_lost`: phone
gone, BYE lost) in RINGING or ON_CALL always leaves that state: the anchors'
most reported bug is an agent stuck "on call".

Caller states (`CallerState`): from, input -> to.

| from      | input                                 | to                                |
|-----------|---------------------------------------|-----------------------------------|
| (none)    | caller_joined                         | WAITING (ENTERQUEUE) or Exit      |
| WAITING   | an offer (dispatch)                   | RINGING                           |
| RINGING   | offer_answered                        | CONNECTED (a callback: DIALING)   |
| RINGING   | every agent failed / ring timeout     | WAITING after retry_seconds       |
| WAITING/RINGING | caller_left                     | gone (ABANDON)                    |
| DIALING   | callback_result answered              | CONNECTED (CONNECT)               |
| DIALING   | callback_result not answered          | WAITING after a pause, or dropped |
| CONNECTED | call_completed / caller_left          | gone (COMPLETEAGENT/-CALLER)      |
| CONNECTED | escalate                              | WAITING in the target (TRANSFER)  |

Waiting callers also leave by max wait (EXITWITHTIMEOUT, then Overflow or
Exit), leave-when-empty (EXITEMPTY), the voicemail key (EXITWITHKEY). A caller
who asks for a callback stays in its place with `callback=True` (its leg is
gone: `caller_left` for it is ignored; `callback_cancel` removes it).

Choices made here (documented for the shell and the stats):
- The constructor takes the agents' definitions (skills, wrap-up override) and
  their stored states, normalised like `restore` but silently; call `restore`
  instead to get the events of a restart.
- Every offer has an id (`Ring.offer_id`); the shell passes it back to
  `offer_answered` / `offer_failed` so that a late answer to an older offer of the
  same caller and agent is hung up (CancelRing), never bridged.
- `agent_lost` in ON_CALL closes the call (COMPLETEAGENT) and gives the caller an
  Exit "agent-lost" (the shell hangs it up); in RINGING it counts as a missed offer.
- Max wait, announcements and leave-when-empty do not apply to callbacks (their
  caller is not on the line). An escalated caller keeps its `joined`: the target
  queue's max wait counts from it.
- A failed callback attempt waits `callback_retry_seconds` (constructor, 60 s
  default) before its next offer; it keeps its place meanwhile.
- Skill relaxation: the engine re-dispatches at each `joined + rule.after` of the
  caller's queue rules (`acd.skills.next_relax_at`), the exact moments the
  requirement changes, rather than polling.
- `restore` turns an agent found RINGING or ON_CALL (the crash cut its call)
  into AVAILABLE with an `AGENTRESTORED` event {state, since}: not an Asterisk
  name, there is none for it.
- Refused joins (full, joinempty, unknown queue) emit no event, like app_queue.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace

from acd.engine_actions import (
    Action,
    Announce,
    CancelRing,
    Overflow,
    Play,
)
from acd.engine_agents import AgentInputs
from acd.engine_core import (
    AgentStatus,
    CallerState,
    DispatchFn,
    EstimateFn,
    WaitingCaller,
    _after,
    _Entry,
    _Wrap,
)
from acd.model import Agent, AgentState, Caller, Member, QueueConfig
from acd.skills import next_relax_at

log = logging.getLogger(__name__)

__all__ = [
    "AcdEngine",
    "AgentStatus",
    "CallerState",
    "DispatchFn",
    "EstimateFn",
    "WaitingCaller",
]


class AcdEngine(AgentInputs):
    """Every queue's live state; see the module doc for the transitions."""

    # ---- configuration reload -------------------------------------------------------------

    def update_config(
        self,
        queues: Mapping[str, QueueConfig],
        members: Mapping[str, Sequence[Member]],
        now: float,
        agents: Iterable[Agent] | None = None,
    ) -> list[Action]:
        """Reload queues and members (and agents' definitions), keeping live state.

        Callers of a removed queue leave (EXITEMPTY + Exit "queue-removed";
        callbacks: CALLBACKDROP); connected calls and ringing offers go on. With
        `agents`: each one's skills and wrap-up override replace the live ones (its
        state stays), new agents arrive logged out, and agents no longer listed are
        logged out (after their call if on one).
        """
        self._set_config(queues, members)
        actions: list[Action] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.seq):
            if entry.state not in (CallerState.WAITING, CallerState.RINGING):
                continue
            if entry.caller.queue not in self._cfg.queues:
                actions += self._cancel_offer(entry, now)
                if entry.caller.callback:
                    actions += self._drop_callback(entry, now)
                else:
                    actions += self._exit(entry, now, "EXITEMPTY", "queue-removed")
            else:
                self._arm(entry, now, keep=True)
        if agents is not None:
            listed = {agent.name: agent for agent in agents}
            for name in sorted(set(self._agents) - set(listed)):
                actions += self.agent_logout(name, now)
            for name, agent in listed.items():
                if name not in self._agents:
                    self._agents[name] = replace(
                        agent,
                        state=AgentState.LOGGED_OUT,
                        state_since=now,
                        pause_reason=None,
                        wrapup_until=0.0,
                    )
                else:
                    actions.append(
                        self._agent_set(
                            name,
                            now,
                            skills=dict(agent.skills),
                            wrapup_seconds=agent.wrapup_seconds,
                        )
                    )
        return self._finish(now, actions)

    # ---- timers -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `on_timer` must run next (None: nothing pending)."""
        moments = [offer.deadline for offer in self._offers.values()]
        moments += [
            a.wrapup_until for n, a in self._agents.items() if a.state is AgentState.WRAP_UP
        ]
        for entry in self._entries.values():
            moments += [t for t in entry.timers() if t is not None]
        return min(moments) if moments else None

    def on_timer(self, now: float) -> list[Action]:
        """Fire everything due at `now`: ring timeouts, wrap-up ends, max waits,
        announcements, retry pauses and skill relaxations, then dispatch."""
        actions: list[Action] = []
        for offer in sorted(self._offers.values(), key=lambda o: (o.deadline, o.caller)):
            if offer.deadline <= now:
                agents = tuple(sorted(offer.agents))
                actions.append(CancelRing(offer.caller, agents, offer.id))
                for name in agents:
                    actions += self._ring_failed(offer, name, now)
        for name in sorted(self._agents):
            agent = self._agents[name]
            if agent.state is AgentState.WRAP_UP and agent.wrapup_until <= now:
                wrap = self._wrap.pop(name, _Wrap("", 0.0))
                actions.append(self._agent_set(name, now, state=AgentState.AVAILABLE))
                actions.append(
                    self._emit(
                        now, wrap.call_id, wrap.queue, name, "WRAPUPEND", wrapup=wrap.seconds
                    )
                )
        for entry in sorted(self._entries.values(), key=lambda e: e.seq):
            actions += self._entry_timers(entry, now)
        return self._finish(now, actions)

    def _entry_timers(self, entry: _Entry, now: float) -> list[Action]:
        cfg = self._queue(entry.caller.queue)
        if entry.retry_at is not None and entry.retry_at <= now:
            entry.retry_at = None
        if entry.relax_at is not None and entry.relax_at <= now:
            entry.relax_at = next_relax_at(entry.caller, cfg, now)
        waiting = entry.state in (CallerState.WAITING, CallerState.RINGING)
        if entry.max_wait_at is not None and entry.max_wait_at <= now and waiting:
            actions = self._cancel_offer(entry, now)
            if cfg.overflow:
                actions += self._exit(entry, now, "EXITWITHTIMEOUT", "timeout")[:1]
                actions.append(Overflow(entry.caller.call_id, cfg.overflow))
            else:
                actions += self._exit(entry, now, "EXITWITHTIMEOUT", "timeout")
            return actions
        actions = []
        if entry.announce_at is not None and entry.announce_at <= now:
            if entry.state is CallerState.WAITING:
                position = self._position(entry)
                wait = self._estimate(position, cfg.name, now) if self._estimate else None
                actions.append(Announce(entry.caller.call_id, position, wait))
            entry.announce_at = _after(entry.announce_at, cfg.announce_frequency, now)
        if entry.periodic_at is not None and entry.periodic_at <= now:
            if entry.state is CallerState.WAITING and cfg.periodic_announce:
                actions.append(Play(entry.caller.call_id, cfg.periodic_announce))
            entry.periodic_at = _after(entry.periodic_at, cfg.periodic_frequency, now)
        return actions

    # ---- restart -------------------------------------------------------------------------

    def restore(
        self,
        agents: Iterable[Agent],
        callbacks: Iterable[Caller],
        now: float,
        queues: Mapping[str, Collection[str] | None] | None = None,
        attempts: Mapping[str, int] | None = None,
    ) -> list[Action]:
        """After a restart (on a fresh engine): agents keep logged in / paused (one
        found RINGING or ON_CALL comes back AVAILABLE with AGENTRESTORED; WRAP_UP ends),
        stored callbacks wait again with their original `joined` and attempts.
        `queues`: each agent's logged-in queues (absent or None: all its queues)."""
        actions: list[Action] = []
        for agent in agents:
            logged = (queues or {}).get(agent.name)
            actions += self._restore_agent(
                agent, now, frozenset(logged) if logged is not None else None
            )
        for caller in sorted(callbacks, key=lambda c: (c.joined, c.call_id)):
            if caller.call_id in self._entries:
                continue
            self._seq += 1
            entry = _Entry(
                replace(caller, callback=True),
                self._seq,
                attempts=(attempts or {}).get(caller.call_id, 0),
            )
            self._entries[caller.call_id] = entry
            self._arm(entry, now)
        return self._finish(now, actions)

    # ---- queries -------------------------------------------------------------------------

    def agent(self, name: str) -> Agent | None:
        """The agent's current snapshot."""
        return self._agents.get(name)

    def logged_in_queues(self, name: str) -> frozenset[str] | None:
        """The queues the agent is logged into (None: all its queues; empty: logged out)."""
        return self._login.get(name, frozenset())

    def waiting(self, now: float, queue: str | None = None) -> list[WaitingCaller]:
        """Waiting callers (and callbacks) per queue in position order, with their wait."""
        names = (
            [queue]
            if queue is not None
            else sorted({e.caller.queue for e in self._entries.values()})
        )
        rows = []
        for name in names:
            for position, entry in enumerate(self._order(name), start=1):
                c = entry.caller
                rows.append(
                    WaitingCaller(
                        c.call_id,
                        name,
                        c.number,
                        position,
                        now - c.joined,
                        entry.state,
                        c.callback,
                        c.priority,
                    )
                )
        return rows

    def longest_wait(self, now: float, queue: str | None = None) -> float:
        """The longest current wait (seconds) of a caller still waiting; 0 if none."""
        waits = [row.wait for row in self.waiting(now, queue)]
        return max(waits, default=0.0)

    def agent_statuses(self, now: float) -> list[AgentStatus]:
        """Every agent by name: state, seconds in it, pause reason, its caller if any."""
        return [
            AgentStatus(
                name,
                a.state,
                now - a.state_since,
                a.pause_reason,
                self._agent_call.get(name) or self._agent_offer.get(name),
            )
            for name, a in sorted(self._agents.items())
        ]

    def offers(self) -> dict[str, tuple[str, ...]]:
        """Ringing offers: caller -> agents (sorted)."""
        return {c: tuple(sorted(o.agents)) for c, o in self._offers.items()}

    def calls(self) -> dict[str, str]:
        """Agents ON_CALL (connected or dialling a callback) -> their caller."""
        return dict(self._agent_call)

    def caller_states(self) -> dict[str, CallerState]:
        """Every caller the engine holds (waiting, ringing, dialling, connected)."""
        return {call_id: entry.state for call_id, entry in self._entries.items()}

    def caller_state(self, call_id: str) -> CallerState | None:
        entry = self._entries.get(call_id)
        return entry.state if entry is not None else None

    def caller(self, call_id: str) -> Caller | None:
        entry = self._entries.get(call_id)
        return entry.caller if entry is not None else None
