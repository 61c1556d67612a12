"""An agent's call handed on: `escalate` (to a specialist queue or skill, keeping the
caller's place) and `transfer` (out of the queues: an extension, a mailbox, a trunk),
with their control routes `POST /acd/escalate` and `POST /acd/transfer`. A mixin of
`acd.app.AcdApplication`: the checks here, the decisions in the engine's `escalate` and
`transfer` inputs, the legs in `acd.shell_calls` (Requeue, Handoff)."""

from __future__ import annotations

import re
from typing import Any

from acd.engine_core import CallerState
from acd.shell_calls import QUEUE_PREFIX, CallShell
from pbx.api import ConfigError, NotFoundError, PbxError

__all__ = ["HandOn"]

_SKILL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")  # as the store checks skills


class HandOn(CallShell):
    """`escalate` and `transfer` for an agent's connected queue call."""

    def add_hand_on_routes(self) -> None:
        switch = self.switch
        switch.add_body_route("POST /acd/escalate", self._route_escalate)
        switch.add_body_route("POST /acd/transfer", self._route_transfer)

    async def escalate(
        self,
        agent: str,
        *,
        queue: str | None = None,
        skill: str | None = None,
        level: int | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Send `agent`'s current queue call to a specialist: another queue and/or a
        required skill (at `level`, 1-10, default 1), with `note` for the specialist.

        The caller goes back on music keeping its place (its original join time), the
        agent's leg is hung up and the agent goes to wrap-up; the queue logs TRANSFER.
        The specialist's offer (`QueueOffered`) carries every earlier agent's note.
        Returns the caller's call id, its queue and required skills now.

        Raises: NotFoundError (no such queue), ConfigError (the agent is on no queue
        call, nothing would change, a bad skill, level or note).
        """
        if queue is not None and queue not in self._configs:
            raise NotFoundError(f"no queue {queue!r}")
        if skill is not None and not _SKILL.fullmatch(skill):
            raise ConfigError(f"skill {skill!r}: a letter, then up to 31 of A-Z a-z 0-9 _ . -")
        if level is not None and not 1 <= level <= 10:
            raise ConfigError(f"skill level {level}: 1 to 10")
        if note is not None and (len(note) > 500 or not note.replace("\n", " ").isprintable()):
            raise ConfigError("a note is at most 500 printable characters")
        if queue is None and skill is None:
            raise ConfigError("escalate to a queue, a skill or both")
        call_id = self.engine.calls().get(agent)
        if call_id is None or self.engine.caller_state(call_id) is not CallerState.CONNECTED:
            raise ConfigError(f"{agent} is on no queue call")
        caller = self.engine.caller(call_id)
        assert caller is not None
        if skill is None and queue == caller.queue:
            raise ConfigError(f"{agent}'s call is already in queue {queue}")
        note = f"{agent}: {note}" if note else None
        self._input("escalate", call_id, skill=skill, level=level, queue=queue, note=note)
        caller = self.engine.caller(call_id)
        assert caller is not None
        return {"call_id": call_id, "queue": caller.queue, "skills": dict(caller.skills)}

    async def transfer(self, agent: str, target: str) -> dict[str, Any]:
        """Hand `agent`'s current queue call to `target` outside the queues: an extension
        or any number of the dialplan, `vm:BOX`, `trunk:NAME/NUMBER` (a blind transfer;
        to another queue or a skill, `escalate` keeps the caller's place). The agent's
        leg is hung up and it wraps up; the queue logs TRANSFER {target}.

        Raises: ConfigError (the agent is on no queue call, a stored callback's customer,
        a bad target).
        """
        if not target or len(target) > 64 or not target.isprintable() or " " in target:
            raise ConfigError(f"transfer target {target!r}: a number, vm:BOX or trunk:NAME/N")
        if target.startswith(QUEUE_PREFIX):
            raise ConfigError("to a queue, escalate (the caller keeps its place)")
        call_id = self.engine.calls().get(agent)
        if call_id is None or self.engine.caller_state(call_id) is not CallerState.CONNECTED:
            raise ConfigError(f"{agent} is on no queue call")
        caller = self.engine.caller(call_id)
        if caller is not None and caller.callback:
            raise ConfigError(f"{agent} is on a callback: its customer cannot be transferred")
        self._input("transfer", call_id, target=target)
        return {"call_id": call_id, "target": target}

    async def _route_escalate(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        agent = body.get("agent")
        queue, skill, level, note = (body.get(k) for k in ("queue", "skill", "level", "note"))
        if not isinstance(agent, str):
            return 400, {"error": "agent is a required string"}
        if not all(isinstance(v, str | None) for v in (queue, skill, note)):
            return 400, {"error": "queue, skill and note must be strings"}
        if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
            return 400, {"error": "level must be an integer"}
        try:
            return 200, await self.escalate(agent, queue=queue, skill=skill, level=level, note=note)
        except NotFoundError as exc:
            return 404, {"error": str(exc)}
        except PbxError as exc:
            return 409, {"error": str(exc)}

    async def _route_transfer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        agent, target = body.get("agent"), body.get("target")
        if not isinstance(agent, str) or not isinstance(target, str):
            return 400, {"error": "agent and target are required strings"}
        try:
            return 200, await self.transfer(agent, target)
        except PbxError as exc:
            return 409, {"error": str(exc)}
