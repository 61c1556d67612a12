"""The ACD application: `AcdEngine` brought to life on the Call API (issue 13).

`AcdApplication` is an Application (it answers the queues' numbers, `queue:NAME`
targets handed over by the switch, the agents' feature codes `*50` login, `*51`
logout, `*52` pause/unpause, and hands `*222`/`*223`/`*224` + agent to
acd.supervisor) and a Service (started with the server: it loads queues, members,
agents and pending callbacks from the stores, restores the engine, and runs one
timer task and one persistence writer).

The engine is the truth in memory; the shell (acd.shell_calls) carries out its
actions. Persistence: what one input changed — stored callbacks (with their own
CALLBACKREQUEST / CALLBACKATTEMPT / CALLBACKDROP events, first), agent snapshots
(AgentChanged) and the other queue events (Emit) — is written by the writer task, in
input order, in one transaction (`AgentRepo.set_states`), then published on the bus
(`QueueLogged`, `AgentStateChanged`). A failed write is logged, never undone in the
engine. Each offer is published as `QueueOffered` as the agent's phone is rung.

Control routes: `GET /acd` (`snapshot`), `POST /acd/agent` {agent, action, reason?,
queue?} (`agent_command`: 200, 404 unknown agent, 409 refused), `POST /acd/escalate`
{agent, queue?, skill?, level?, note?} (`escalate`: 200, 404 unknown queue, 409
refused), `POST /acd/transfer` {agent, target} (`transfer`: 200, 409 refused) and the
supervisor's `POST /acd/supervise` (acd.supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from acd.app_calls import HandOn
from acd.engine import AcdEngine
from acd.engine_actions import Action, AgentChanged, CallbackDeleted, CallbackSaved, Emit
from acd.estimate import Estimator
from acd.model import Agent, AgentState, Caller, Member, QueueConfig, SkillRule, Strategy
from acd.shell_calls import QUEUE_PREFIX
from acd.supervisor import Supervision
from ivr.player import PromptPlayer
from pbx.api import (
    QUEUE_EVENTS,
    AgentRecord,
    AgentStateChanged,
    Bridge,
    Call,
    CallbackAdd,
    CallbackAttempt,
    CallbackFinish,
    CallbackOp,
    CallCreated,
    CallEnded,
    ConfigError,
    NotFoundError,
    PbxError,
    Queue,
    QueueEventRecord,
    QueueLogged,
    RegistrationDown,
    RegistrationUp,
    StateChange,
    Switch,
)

log = logging.getLogger(__name__)

#: Events the ACD's bus subscription may hold unread (hundreds of calls' worth) before
#: the bus drops it (it then subscribes again: `_watch_switch`).
BUS_QUEUE = 50_000

__all__ = [
    "ACD_CODES",
    "BARGE_CODE",
    "LISTEN_CODE",
    "LOGIN_CODE",
    "LOGOUT_CODE",
    "PAUSE_CODE",
    "WHISPER_CODE",
    "AcdApplication",
]

LOGIN_CODE = "*50"
LOGOUT_CODE = "*51"
PAUSE_CODE = "*52"
LISTEN_CODE = "*222"
WHISPER_CODE = "*223"
BARGE_CODE = "*224"
SUPERVISE_CODES = (LISTEN_CODE, WHISPER_CODE, BARGE_CODE)
#: Every feature code the ACD answers (the supervisor's take an agent number after).
ACD_CODES = (LOGIN_CODE, LOGOUT_CODE, PAUSE_CODE, *SUPERVISE_CODES)
PHONE_REASON = "phone"
#: Queue events the callback store writes itself (with the callback row).
_CALLBACK_EVENTS = frozenset({"CALLBACKREQUEST", "CALLBACKATTEMPT", "CALLBACKDROP"})
_COMPLETIONS = ("COMPLETEAGENT", "COMPLETECALLER")
_ACTIONS = ("login", "logout", "pause", "unpause")


class AcdApplication(HandOn):
    """Queues, agents and callbacks served live (see the module doc)."""

    def __init__(
        self,
        prompts: PromptPlayer,
        *,
        clock: Callable[[], float] = time.time,
        callback_retry_seconds: float = 60.0,
        callback_ring_seconds: float = 30.0,
    ) -> None:
        super().__init__(prompts, clock=clock)
        self._callback_retry = callback_retry_seconds
        self._callback_ring_seconds = callback_ring_seconds
        self._callback_ids: dict[str, int] = {}  # caller call id -> callback row id
        self._published: dict[str, str] = {}  # agent -> state last published
        self._supervision: Supervision | None = None

    # -- Service --------------------------------------------------------------------------

    async def start(self, switch: Switch) -> None:
        """Load the queues, agents and pending callbacks, restore the engine, start the
        timer, the writer and the event watcher, add the control routes."""
        self._switch = switch
        configs, members = await self._load_config()
        records = await switch.agent_store.all()
        agents = [_agent(r, switch.registered(r.name)) for r in records]
        self._engine = AcdEngine(
            configs,
            members,
            estimate=self._estimate,
            callback_retry_seconds=self._callback_retry,
        )
        callbacks = await switch.callback_store.pending()
        self._callback_ids = {c.call_id: c.id for c in callbacks}
        logged = await self._logged_queues(records)
        now = self._now()
        actions = self._engine.restore(
            agents,
            [Caller(c.call_id, c.queue, c.number, c.joined, callback=True) for c in callbacks],
            now,
            queues=logged,
            attempts={c.call_id: c.attempts for c in callbacks},
        )
        self._published = {r.name: r.state for r in records}
        events = switch.events.subscribe(BUS_QUEUE, name="ACD")
        self._spawn(self._writer(), "ACD writer")
        self._spawn(self._timer(), "ACD timer")
        self._spawn(self._watch_switch(events), "ACD switch events")
        self._carry_out(actions)
        switch.add_route("GET /acd", self._route_snapshot)
        switch.add_body_route("POST /acd/agent", self._route_agent)
        self.add_hand_on_routes()
        self._supervision = Supervision(self, switch, player=self.prompts)
        self._supervision.register_routes(switch)
        switch.on_config_change(self._reload)
        log.info(
            "ACD: %d queues, %d agents, %d callbacks pending",
            len(configs),
            len(agents),
            len(callbacks),
        )

    async def close(self) -> None:
        """Stop every task of the application (calls in queue end with the switch)."""
        if self._supervision is not None:
            await self._supervision.close()  # hangs up supervisors it rang
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._writes.join(), 5.0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def flush(self) -> None:
        """Until every batch of actions so far is stored and published (tests)."""
        await self._writes.join()

    async def _load_config(
        self,
    ) -> tuple[dict[str, QueueConfig], dict[str, tuple[Member, ...]]]:
        store = self.switch.queue_store
        configs = {q.name: _config(q) for q in await store.all()}
        stored = await store.all_members()
        members = {
            q: tuple(Member(m.agent, m.penalty, m.position) for m in ms)
            for q, ms in stored.items()
            if q in configs
        }
        self._configs = configs
        self._members = members
        self._numbers = {c.number: name for name, c in configs.items()}
        return configs, members

    async def _logged_queues(self, records: Sequence[AgentRecord]) -> dict[str, list[str] | None]:
        """Each logged-in agent's queues from the members' flags (None: all of them)."""
        logged: dict[str, list[str] | None] = {}
        for record in records:
            if record.state == AgentState.LOGGED_OUT:
                continue
            flags = await self.switch.queue_store.memberships(record.name)
            on = [m.queue for m in flags if m.logged_in]
            logged[record.name] = None if len(on) == len(flags) else on
        return logged

    async def _reload(self) -> None:
        """Queues, members or agents changed in the database (by `pbx queue ...`, or an
        offline `pbx agent login|logout|pause|unpause`, whose events are stored already)."""
        if self._engine is None:
            return
        await self._writes.join()  # the database has every change of the engine's
        configs, members = await self._load_config()
        records = await self.switch.agent_store.all()
        agents = [_agent(r, self.switch.registered(r.name)) for r in records]
        logged = await self._logged_queues(records)
        self._external = True
        try:
            for record in records:
                self._follow(record, logged.get(record.name))
        finally:
            self._external = False
        self._input("update_config", configs, members, agents=agents)

    def _follow(self, record: AgentRecord, queues: list[str] | None) -> None:
        """Make the engine follow an agent's login or pause changed in the database."""
        current = self.engine.agent(record.name)
        state = current.state if current is not None else AgentState.LOGGED_OUT
        stored = AgentState(record.state)
        out = AgentState.LOGGED_OUT
        if stored is out and state is not out:
            self._input("agent_logout", record.name)
        elif stored is not out and state is out:
            self._input("agent_login", record.name, queues=queues)
            if stored is AgentState.PAUSED:
                self._input("agent_pause", record.name, reason=record.pause_reason)
        elif stored is AgentState.PAUSED and state is not AgentState.PAUSED:
            self._input("agent_pause", record.name, reason=record.pause_reason)
        elif stored is not AgentState.PAUSED and state is AgentState.PAUSED:
            self._input("agent_unpause", record.name)

    # -- timers, writes, switch events --------------------------------------------------

    async def _timer(self) -> None:
        """Sleep until the engine's next deadline (woken early by any input), fire it."""
        while True:
            self._wake.clear()
            deadline = self.engine.next_deadline()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = deadline - self._clock()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                    continue  # woken: the deadline may have moved
            self._timer_fired()

    async def _writer(self) -> None:
        while True:
            batch, external = await self._writes.get()
            try:
                await self._persist(batch, external)
            except Exception:
                log.exception("ACD: actions not stored (the engine keeps them in memory)")
            finally:
                self._writes.task_done()
            self._publish(batch)

    async def _persist(self, batch: list[Action], external: bool = False) -> None:
        """Store what one engine input changed in one transaction: stored callbacks
        (their own events first), the agents' rows and the other queue events."""
        events = [a.event for a in batch if isinstance(a, Emit)]
        records = (
            []
            if external
            else [
                QueueEventRecord(e.time, e.call_id, e.queue, e.agent, e.event, dict(e.data))
                for e in events
                if e.event in QUEUE_EVENTS and e.event not in _CALLBACK_EVENTS
            ]
        )
        ops, added = self._callback_ops(batch, events)
        changed: dict[str, AgentChanged] = {}
        for action in batch:
            if isinstance(action, AgentChanged):
                changed[action.agent.name] = action
        if not (changed or records or ops):
            return
        stored = await self.switch.agent_store.set_states(
            [_state_change(change.agent) for change in changed.values()], records, ops
        )
        for call_id, index in added.items():
            self._callback_ids[call_id] = stored[index].id

    def _callback_ops(
        self, batch: list[Action], events: list[Any]
    ) -> tuple[list[CallbackOp], dict[str, int]]:
        """The stored-callback operations of `batch`, and which op adds whose row (the
        callers' row ids are known once the transaction is written)."""
        ops: list[CallbackOp] = []
        added: dict[str, int] = {}
        dropped = {e.call_id for e in events if e.event == "CALLBACKDROP"}
        for event in events:
            if event.event == "CALLBACKATTEMPT" and event.call_id in self._callback_ids:
                status = str(event.data.get("status", ""))
                ops.append(
                    CallbackAttempt(
                        self._callback_ids[event.call_id], status, event.agent, event.time
                    )
                )
        for action in batch:
            if isinstance(action, CallbackSaved):
                caller = action.caller
                if caller.call_id not in self._callback_ids and caller.call_id not in added:
                    position = next(
                        (
                            int(e.data.get("position", 0))
                            for e in events
                            if e.event == "CALLBACKREQUEST" and e.call_id == caller.call_id
                        ),
                        0,
                    )
                    added[caller.call_id] = len(ops)
                    ops.append(
                        CallbackAdd(
                            caller.queue, caller.call_id, caller.number, caller.joined, position
                        )
                    )
            elif isinstance(action, CallbackDeleted):
                # Never in the input that saved it: a saved callback is deleted by a later
                # input (reached an agent, or dropped after its attempts).
                id_ = self._callback_ids.pop(action.caller, None)
                if id_ is None:
                    continue
                state = "dropped" if action.caller in dropped else "done"
                ops.append(CallbackFinish(id_, state))
        return ops, added

    def _publish(self, batch: list[Action]) -> None:
        switch = self.switch
        for action in batch:
            if isinstance(action, Emit):
                e = action.event
                switch.publish(
                    QueueLogged(e.call_id, e.queue, e.agent or "", e.event, dict(e.data), at=e.time)
                )
            elif isinstance(action, AgentChanged):
                agent = action.agent
                if self._published.get(agent.name) != agent.state.value:
                    self._published[agent.name] = agent.state.value
                    switch.publish(
                        AgentStateChanged(
                            "",
                            agent.name,
                            agent.state.value,
                            agent.pause_reason or "",
                            at=agent.state_since,
                        )
                    )
            if isinstance(action, Emit) and action.event.event in _COMPLETIONS:
                self._observe(action)

    def _observe(self, emit: Emit) -> None:
        e = emit.event
        cfg = self._configs.get(e.queue)
        agent = self.engine.agent(e.agent) if e.agent else None
        wrap = 0.0
        if agent is not None and agent.wrapup_seconds is not None:
            wrap = agent.wrapup_seconds
        elif cfg is not None:
            wrap = cfg.wrapup_seconds
        self._estimator(e.queue).observe_completion(float(e.data.get("talk", 0.0)), wrap, e.time)

    def _estimator(self, queue: str) -> Estimator:
        estimator = self._estimators.get(queue)
        if estimator is None:
            estimator = self._estimators[queue] = Estimator()
        return estimator

    def _estimate(self, position: int, queue: str, now: float) -> float | None:
        engine = self.engine
        agents = [engine.agent(m.agent) for m in self._members.get(queue, ())]
        return self._estimator(queue).estimate(position, [a for a in agents if a is not None], now)

    async def _watch_switch(self, events: Any) -> None:
        """Registrations of agents' phones, and their calls that are not queue calls. A
        bus that drops the subscription (hundreds of calls' events unread) is subscribed
        to again at once: what came between is lost, the ACD goes on."""
        async for event in events.following():
            try:
                self._switch_event(event)
            except Exception:
                log.exception("ACD: switch event %s not handled", event.kind)

    def _switch_event(self, event: Any) -> None:
        engine = self.engine
        if isinstance(event, RegistrationUp | RegistrationDown):
            if engine.agent(event.aor) is not None:
                up = self.switch.registered(event.aor)
                self._input("agent_registered", event.aor, up)
        elif isinstance(event, CallCreated):
            agent = event.caller if event.direction == "in" else event.callee
            if engine.agent(agent) is None or self._own_call(agent, event):
                return
            calls = self._in_use.setdefault(agent, set())
            calls.add(event.call_id)
            if len(calls) == 1:
                self._input("agent_in_use", agent, True)
        elif isinstance(event, CallEnded):
            for agent, calls in list(self._in_use.items()):
                if event.call_id in calls:
                    calls.discard(event.call_id)
                    if not calls:
                        del self._in_use[agent]
                        self._input("agent_in_use", agent, False)

    def _own_call(self, agent: str, event: CallCreated) -> bool:
        """A leg of the ACD's own (an offer, a callback) or to one of its numbers."""
        if event.direction == "in":
            callee = event.callee
            return callee.startswith("*") or callee in self._numbers
        engine = self.engine
        return (
            any(key[1] == agent for key in self._rings)
            or agent in engine.calls()
            or any(agent in agents for agents in engine.offers().values())
        )

    # -- Application ----------------------------------------------------------------------

    async def handles(self, number: str, switch: Switch) -> bool:
        if number in (LOGIN_CODE, LOGOUT_CODE, PAUSE_CODE):
            return True
        if number.startswith(SUPERVISE_CODES) and number[4:].isdigit():
            return True
        if number.startswith(QUEUE_PREFIX):
            return number[len(QUEUE_PREFIX) :] in self._configs
        return number in self._numbers  # kept fresh by _reload (configuration changes)

    async def run(self, call: Call, switch: Switch) -> str:
        number = call.callee
        if number in (LOGIN_CODE, LOGOUT_CODE, PAUSE_CODE):
            return await self._agent_code(call, number)
        if number.startswith(SUPERVISE_CODES):
            supervision = self._supervision or Supervision(self, switch, player=self.prompts)
            cause: str = await supervision.handle_code(call, number)
            return cause
        if number.startswith(QUEUE_PREFIX):
            queue = number[len(QUEUE_PREFIX) :]
        else:
            queue = self._numbers.get(number, "")
            if not queue:
                await self._reload()
                queue = self._numbers.get(number, "")
        return await self.serve_caller(call, queue)

    async def _agent_code(self, call: Call, code: str) -> str:
        """`*50` / `*51` / `*52` from the agent's own phone: a confirmation, hang-up."""
        agent = call.caller
        if code == LOGIN_CODE:
            action = "login"
        elif code == LOGOUT_CODE:
            action = "logout"
        else:
            current = self.engine.agent(agent)
            paused = current is not None and current.state is AgentState.PAUSED
            action = "unpause" if paused else "pause"
        if not await call.answer():
            return f"ACD {code}: not answered"
        try:
            result = await self.agent_command(
                agent, action, reason=PHONE_REASON if action == "pause" else None
            )
        except PbxError as exc:
            log.info("ACD %s from %s refused: %s", code, agent, exc)
            prompt, cause = "agent-not-member", f"ACD {code} refused: {exc}"
        else:
            prompt = {
                "login": "agent-logged-in",
                "logout": "agent-logged-out",
                "pause": "agent-paused",
                "unpause": "agent-unpaused",
            }[action]
            cause = f"ACD {action} {agent}: {result['state']}"
        await self.prompts.play(call, prompt)
        await call.hangup(0, cause)
        return cause

    # -- the public API (round7.md) -------------------------------------------------------

    async def agent_command(
        self,
        agent: str,
        action: str,
        *,
        reason: str | None = None,
        queue: str | None = None,
    ) -> dict[str, Any]:
        """Log `agent` in or out, pause or unpause it; returns its state.

        Raises: NotFoundError (no such agent or queue), ConfigError (not a member, an
        unknown action, a change refused in the agent's state).
        """
        if action not in _ACTIONS:
            raise ConfigError(f"unknown agent action {action!r}: choose {', '.join(_ACTIONS)}")
        switch = self.switch
        if await switch.user_role(agent) is None:
            raise NotFoundError(f"no agent {agent!r}")
        memberships = [m.queue for m in await switch.queue_store.memberships(agent)]
        if not memberships:
            raise ConfigError(f"{agent} is in no queue")
        if queue is not None and queue not in memberships:
            if queue not in self._configs:
                raise NotFoundError(f"no queue {queue!r}")
            raise ConfigError(f"{agent} is not a member of queue {queue}")
        if agent not in self._members_agents():
            await self._reload()
        current = self.engine.agent(agent)
        state = current.state if current is not None else AgentState.LOGGED_OUT
        if action == "login":
            self._input("agent_login", agent, queues=[queue] if queue is not None else None)
        elif state is AgentState.LOGGED_OUT:
            if action == "logout":
                return self._agent_row(agent)
            raise ConfigError(f"{agent} is not logged in")
        elif action == "logout":
            self._input("agent_logout", agent)
        elif action == "pause":
            if reason is not None:
                _check_reason(reason)
            self._input("agent_pause", agent, reason=reason)
        else:
            if state is not AgentState.PAUSED and state is not AgentState.ON_CALL:
                raise ConfigError(f"{agent} is not paused ({state.value})")
            self._input("agent_unpause", agent)
        return self._agent_row(agent)

    def _members_agents(self) -> set[str]:
        return {m.agent for ms in self._members.values() for m in ms}

    def _agent_row(self, name: str) -> dict[str, Any]:
        engine = self.engine
        agent = engine.agent(name)
        now = self._now()
        state = agent.state if agent is not None else AgentState.LOGGED_OUT
        logged = engine.logged_in_queues(name)
        own = sorted(q for q, ms in self._members.items() if any(m.agent == name for m in ms))
        queues = [] if state is AgentState.LOGGED_OUT else own if logged is None else sorted(logged)
        call = engine.calls().get(name)
        return {
            "agent": name,
            "name": name,
            "state": state.value,
            "since": agent.state_since if agent is not None else now,
            "reason": agent.pause_reason if agent is not None else None,
            "queues": queues,
            "call": call,
        }

    def snapshot(self) -> dict[str, Any]:
        """Queues (waiting callers, longest wait, agents by state) and agents, now."""
        engine = self.engine
        now = self._now()
        waiting = engine.waiting(now)
        queues = []
        for name, cfg in sorted(self._configs.items()):
            counts = {s.value: 0 for s in AgentState}
            for member in self._members.get(name, ()):
                agent = engine.agent(member.agent)
                state = agent.state if agent is not None else AgentState.LOGGED_OUT
                counts[state.value] += 1
            queues.append(
                {
                    "name": name,
                    "number": cfg.number,
                    "strategy": cfg.strategy.value,
                    "waiting": [
                        {
                            "call_id": w.call_id,
                            "caller": w.number,
                            "position": w.position,
                            "wait": w.wait,
                            "callback": w.callback,
                        }
                        for w in waiting
                        if w.queue == name
                    ],
                    "longest_wait": engine.longest_wait(now, name),
                    "agents": counts,
                }
            )
        names = sorted(self._members_agents() | {s.name for s in engine.agent_statuses(now)})
        rows = [self._agent_row(n) for n in names]
        for row in rows:
            del row["agent"]
        return {"queues": queues, "agents": rows, "now": now}

    # -- what the web console (acd.web) reads -------------------------------------------

    def agent_status(self, name: str) -> dict[str, Any] | None:
        """`name`'s row as `snapshot` lists agents; None when not an agent of any queue."""
        if name not in self._members_agents() and self.engine.agent(name) is None:
            return None
        return self._agent_row(name)

    async def supervise(self, agent: str, mode: str, supervisor: str) -> dict[str, Any]:
        """Ring `supervisor`'s phone and join `agent`'s call to listen, whisper or barge
        (acd.supervisor; the same checks as `POST /acd/supervise`).

        Raises: NotFoundError, PbxError (see `Supervision.supervise`).
        """
        if self._supervision is None:
            raise PbxError("the ACD has not started")
        result: dict[str, Any] = await self._supervision.supervise(agent, mode, supervisor)
        return result

    def queue_agents(self, queue: str) -> list[Agent]:
        """The engine's snapshots of `queue`'s members (the dialer paces on them)."""
        engine = self.engine
        found = [engine.agent(m.agent) for m in self._members.get(queue, ())]
        return [a for a in found if a is not None]

    def wrapup_seconds(self, agent: str, queue: str) -> float:
        """The wrap-up `agent` gets after a call of `queue` (its own, else the queue's)."""
        found = self.engine.agent(agent)
        if found is not None and found.wrapup_seconds is not None:
            return found.wrapup_seconds
        config = self._configs.get(queue)
        return config.wrapup_seconds if config is not None else 0.0

    def bridge_of(self, agent: str) -> Bridge | None:
        """The bridge of the agent's current queue call (None when not on one)."""
        bridge = self._bridges.get(agent)
        return bridge if bridge is not None and bridge.active else None

    # -- control routes -------------------------------------------------------------------

    def _route_snapshot(self, query: dict[str, str]) -> dict[str, Any]:
        return self.snapshot()

    async def _route_agent(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        agent, action = body.get("agent"), body.get("action")
        reason, queue = body.get("reason"), body.get("queue")
        if not isinstance(agent, str) or not isinstance(action, str):
            return 400, {"error": "agent and action are required strings"}
        if not isinstance(reason, str | None) or not isinstance(queue, str | None):
            return 400, {"error": "reason and queue must be strings"}
        try:
            return 200, await self.agent_command(agent, action, reason=reason, queue=queue)
        except NotFoundError as exc:
            return 404, {"error": str(exc)}
        except PbxError as exc:
            return 409, {"error": str(exc)}


def _check_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > 64 or not reason.isprintable():
        raise ConfigError(f"pause reason {reason!r}: 1 to 64 printable characters")


def _config(queue: Queue) -> QueueConfig:
    """A stored queue as the engine's configuration (the same field names)."""
    values = {f.name: getattr(queue, f.name) for f in dataclasses.fields(Queue)}
    values["strategy"] = Strategy(queue.strategy)
    values["skills"] = dict(queue.skills)
    values["skill_rules"] = tuple(SkillRule(r.after, r.relax, r.drop) for r in queue.skill_rules)
    return QueueConfig(**values)


def _state_change(agent: Agent) -> StateChange:
    """An engine snapshot as the agents table stores it."""
    return StateChange(
        agent.name,
        agent.state.value,
        agent.state_since,
        agent.pause_reason if agent.state is AgentState.PAUSED else None,
        missed_offers=agent.missed_offers,
        last_call_end=agent.last_call_end,
        calls_taken=agent.calls_taken,
    )


def _agent(record: AgentRecord, registered: bool) -> Agent:
    """A stored agent as the engine's snapshot."""
    return Agent(
        record.name,
        AgentState(record.state),
        record.state_since,
        record.pause_reason,
        dict(record.skills),
        record.wrapup_seconds,
        0.0,
        False,
        record.missed_offers,
        dict(record.last_call_end),
        dict(record.calls_taken),
        registered=registered,
    )
