"""Each agent's current queue call as the desktop shows it. Pure: events and `now` in.

A call is *offered* (the agent's phone rings: screen pop), *connected* (answered: the
duration runs from here; the wait before answer is connected - joined), then *ended*
(wrap-up: the desktop keeps it for the disposition until the next offer).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["AgentCall", "AgentCalls"]


@dataclass(frozen=True, slots=True)
class AgentCall:
    call_id: str
    number: str
    queue: str
    joined: float
    offered: float
    customer: int | None = None
    connected: float | None = None
    ended: float | None = None
    ivr: str = ""

    def to_json(self, now: float) -> dict[str, Any]:
        end = self.ended if self.ended is not None else now
        return {
            "call_id": self.call_id,
            "number": self.number,
            "queue": self.queue,
            "ivr": self.ivr,
            "customer": self.customer,
            "state": "ended"
            if self.ended is not None
            else "connected"
            if self.connected is not None
            else "ringing",
            "wait": (self.connected if self.connected is not None else end) - self.joined,
            "duration": end - self.connected if self.connected is not None else 0.0,
            "offered": self.offered,
            "connected": self.connected,
            "ended": self.ended,
        }


class AgentCalls:
    """agent -> their current (or last) queue call."""

    def __init__(self) -> None:
        self._calls: dict[str, AgentCall] = {}

    def get(self, agent: str) -> AgentCall | None:
        return self._calls.get(agent)

    def offered(self, agent: str, call: AgentCall) -> bool:
        """A new offer; False when this very call was offered to the agent already."""
        current = self._calls.get(agent)
        if current is not None and current.call_id == call.call_id and current.ended is None:
            return False
        self._calls[agent] = call
        return True

    def connected(self, agent: str, call_id: str, now: float) -> AgentCall | None:
        current = self._calls.get(agent)
        if current is None or current.call_id != call_id:
            return None
        self._calls[agent] = current = replace(current, connected=now)
        return current

    def ended(self, agent: str, call_id: str, now: float) -> AgentCall | None:
        """The call ended (answered and completed, or the offer withdrawn)."""
        current = self._calls.get(agent)
        if current is None or current.call_id != call_id or current.ended is not None:
            return None
        self._calls[agent] = current = replace(current, ended=now)
        return current

    def took(self, agent: str, call_id: str) -> bool:
        """Whether `call_id` is the agent's current or last call."""
        current = self._calls.get(agent)
        return current is not None and current.call_id == call_id
