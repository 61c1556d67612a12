"""The ACD engine's agent inputs: login, logout, pause, in use, lost."""

from __future__ import annotations

import logging
from collections.abc import Collection

from acd.engine_actions import (
    Action,
    CancelRing,
    Exit,
)
from acd.engine_callers import CallerInputs
from acd.engine_core import (
    CallerState,
    _Pending,
)
from acd.model import Agent, AgentState

log = logging.getLogger(__name__)


class AgentInputs(CallerInputs):
    """What agents do (see acd.engine for the transitions)."""

    # ---- agent inputs ------------------------------------------------------------------

    def _known(self, name: str) -> Agent:
        agent = self._agents.get(name)
        if agent is None:
            agent = self._agents[name] = Agent(name)
        return agent

    def agent_login(
        self, agent: str, now: float, queues: Collection[str] | None = None
    ) -> list[Action]:
        """Log in to `queues` (None: every queue the agent is a member of): AGENTLOGIN."""
        state = self._known(agent).state
        self._login[agent] = frozenset(queues) if queues is not None else None
        pending = self._pending.get(agent)
        if pending is not None:
            pending.logout = False
        actions: list[Action] = []
        if state is AgentState.LOGGED_OUT:
            self._login_at[agent] = now
            actions.append(self._agent_set(agent, now, state=AgentState.AVAILABLE))
            actions.append(self._emit(now, "", "", agent, "AGENTLOGIN"))
        else:
            actions.append(self._agent_set(agent, now))
        return self._finish(now, actions)

    def _drop_ringing(self, agent: str, now: float) -> list[Action]:
        """Take a ringing agent out of its offer (RINGCANCELED), the agent AVAILABLE."""
        call_id = self._agent_offer.pop(agent, None)
        offer = self._offers.get(call_id) if call_id is not None else None
        if offer is None:
            return []
        offer.agents.discard(agent)
        actions: list[Action] = [
            self._emit(
                now, offer.caller, offer.queue, agent, "RINGCANCELED", ring=now - offer.started
            ),
            CancelRing(offer.caller, (agent,), offer.id),
            self._agent_set(agent, now, state=AgentState.AVAILABLE),
        ]
        if not offer.agents:
            self._offer_over(offer, now)
            entry = self._entries.get(offer.caller)
            if entry is not None:
                entry.retry_at = None  # not the caller's fault: offer again at once
        return actions

    def agent_logout(self, agent: str, now: float) -> list[Action]:
        """Log out (AGENTLOGOFF); during a call it happens when the call ends."""
        current = self._agents.get(agent)
        if current is None or current.state is AgentState.LOGGED_OUT:
            return []
        if current.state is AgentState.ON_CALL:
            self._pending.setdefault(agent, _Pending()).logout = True
            return []
        actions = self._drop_ringing(agent, now)
        actions += self._logged_off(agent, now)
        return self._finish(now, actions)

    def agent_pause(self, agent: str, now: float, reason: str | None = None) -> list[Action]:
        """Pause with a reason (PAUSE); during a call it happens when the call ends."""
        current = self._agents.get(agent)
        if current is None or current.state is AgentState.LOGGED_OUT:
            return []
        if current.state is AgentState.ON_CALL:
            pending = self._pending.setdefault(agent, _Pending())
            pending.pause, pending.reason = True, reason
            return []
        actions = self._drop_ringing(agent, now)
        actions.append(self._agent_set(agent, now, state=AgentState.PAUSED, pause_reason=reason))
        actions.append(self._emit(now, "", "", agent, "PAUSE", reason=reason or ""))
        return self._finish(now, actions)

    def agent_unpause(self, agent: str, now: float) -> list[Action]:
        """Unpause (UNPAUSE {paused}): AVAILABLE, or WRAP_UP while wrap-up still runs."""
        current = self._agents.get(agent)
        if current is None:
            return []
        pending = self._pending.get(agent)
        if current.state is AgentState.ON_CALL and pending is not None:
            pending.pause, pending.reason = False, None
            return []
        if current.state is not AgentState.PAUSED:
            return []
        wrapping = current.wrapup_until > now and agent in self._wrap
        back = AgentState.WRAP_UP if wrapping else AgentState.AVAILABLE
        actions: list[Action] = [
            self._emit(now, "", "", agent, "UNPAUSE", paused=now - current.state_since),
            self._agent_set(
                agent,
                now,
                state=back,
                pause_reason=None,
                missed_offers=0,
                wrapup_until=current.wrapup_until if wrapping else 0.0,
            ),
        ]
        return self._finish(now, actions)

    def agent_in_use(self, agent: str, in_use: bool, now: float) -> list[Action]:
        """The agent's phone is (no longer) busy on a non-queue call."""
        current = self._agents.get(agent)
        if current is None or current.in_use == in_use:
            return []
        return self._finish(now, [self._agent_set(agent, now, in_use=in_use)])

    def agent_registered(self, agent: str, registered: bool, now: float) -> list[Action]:
        """The agent's phone registered or its registration ended (or expired): an
        unregistered agent is never offered and counts as "unavailable" for the
        join/leave-empty conditions. A ring in progress ends by its own failure."""
        current = self._agents.get(agent)
        if current is None or current.registered == registered:
            return []
        return self._finish(now, [self._agent_set(agent, now, registered=registered)])

    def agent_lost(self, agent: str, now: float) -> list[Action]:
        """The agent's phone or leg is gone (BYE lost, unreachable): never left RINGING
        or ON_CALL. A ring counts as a missed offer; a call ends with COMPLETEAGENT and
        the caller gets Exit "agent-lost"; a callback being dialled counts as failed."""
        current = self._agents.get(agent)
        if current is None:
            return []
        actions: list[Action] = []
        if current.in_use:
            actions.append(self._agent_set(agent, now, in_use=False))
        if current.state is AgentState.RINGING:
            call_id = self._agent_offer.get(agent)
            offer = self._offers.get(call_id) if call_id is not None else None
            if offer is not None:
                actions.append(CancelRing(offer.caller, (agent,), offer.id))
                actions += self._ring_failed(offer, agent, now)
            else:
                self._agent_offer.pop(agent, None)
                actions.append(self._agent_set(agent, now, state=AgentState.AVAILABLE))
        elif current.state is AgentState.ON_CALL:
            call_id = self._agent_call.get(agent)
            entry = self._entries.get(call_id) if call_id is not None else None
            if entry is not None and entry.state is CallerState.DIALING:
                return actions + self._callback_failed(entry, now, "agent-lost")
            if entry is not None and entry.state is CallerState.CONNECTED:
                actions += self.call_completed(entry.caller.call_id, now, by_agent=True)
                actions.append(Exit(entry.caller.call_id, "agent-lost"))
                return actions
            actions += self._release(agent, now)
        return self._finish(now, actions)
