"""Skills routing: what a waiting call requires of an agent, and how that relaxes.

A queue requires skills at minimum levels (`QueueConfig.skills`); a caller may
require more (`Caller.skills`: from the IVR choice, the DID or the customer
record). The two are overlaid, the higher level winning per skill.

Relaxation (`QueueConfig.skill_rules`): a rule applies once the caller has waited
`after` seconds, counted from `Caller.relax_from` (set by an escalation) or else
from `Caller.joined`. Rules are not named per skill; every rule applies to every
required skill. Of the rules in force, the largest `relax` lowers every required
level (never below 1); any rule in force with `drop=True` removes every
requirement, so any member of the queue may take the call.

Matching: an agent qualifies when it has every remaining skill at a level at least
the required one. Among qualifying agents, `match_score` prefers the one who
answers best: the sum of the agent's levels over the skills the call required
before relaxation (a skill the agent lacks counts 0), so an agent that still has a
relaxed or dropped skill is preferred to one that does not.

Escalation keeps the caller's place (`joined` is never changed); it restarts the
relaxation clock so the new requirement is not relaxed away at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from acd.model import Caller, QueueConfig, SkillRule

MIN_LEVEL = 1
MAX_LEVEL = 10


def required(queue: QueueConfig, caller: Caller) -> dict[str, int]:
    """The queue's skills overlaid by the caller's, the higher level per skill."""
    out = dict(queue.skills)
    for skill, level in caller.skills.items():
        out[skill] = max(level, out.get(skill, level))
    return out


def relaxed(
    requirements: Mapping[str, int], waited: float, rules: Sequence[SkillRule]
) -> dict[str, int]:
    """`requirements` after `waited` seconds under `rules` (see the module doc)."""
    in_force = [rule for rule in rules if waited >= rule.after]
    if any(rule.drop for rule in in_force):
        return {}
    relax = max((rule.relax for rule in in_force), default=0)
    if relax <= 0:
        return dict(requirements)
    return {skill: max(MIN_LEVEL, level - relax) for skill, level in requirements.items()}


def relax_start(caller: Caller) -> float:
    """When the caller's relaxation clock started: an escalation, else joining."""
    return caller.joined if caller.relax_from is None else caller.relax_from


def requirements_at(queue: QueueConfig, caller: Caller, now: float) -> dict[str, int]:
    """What an agent must have to take `caller` at time `now`."""
    return relaxed(required(queue, caller), now - relax_start(caller), queue.skill_rules)


def qualifies(agent_skills: Mapping[str, int], requirements: Mapping[str, int]) -> bool:
    """True when the agent has every required skill at least at its level."""
    return all(agent_skills.get(skill, 0) >= level for skill, level in requirements.items())


def match_score(agent_skills: Mapping[str, int], requirements: Mapping[str, int]) -> int:
    """How well an agent fits: the sum of its levels over the required skills."""
    return sum(agent_skills.get(skill, 0) for skill in requirements)


def next_relax_at(caller: Caller, queue: QueueConfig, now: float) -> float | None:
    """The next time after `now` at which the caller's requirements change, or None.

    The engine schedules a re-dispatch at that time for a caller no agent could take.
    """
    base = required(queue, caller)
    if not base:
        return None
    start = relax_start(caller)
    current = relaxed(base, now - start, queue.skill_rules)
    times = sorted(start + rule.after for rule in queue.skill_rules if start + rule.after > now)
    for at in times:
        if relaxed(base, at - start, queue.skill_rules) != current:
            return at
    return None


def escalate(
    caller: Caller,
    skill: str,
    level: int,
    *,
    now: float | None = None,
    note: str | None = None,
) -> Caller:
    """The caller now requires `skill` at `level` (1..10); it keeps its place.

    `now` restarts the relaxation clock (pass it, or the new requirement may be
    relaxed away at once if the caller already waited past a rule); `note` is
    appended to what the specialist will see.
    """
    level = min(MAX_LEVEL, max(MIN_LEVEL, level))
    skills = dict(caller.skills)
    skills[skill] = max(level, skills.get(skill, level))
    notes = (*caller.notes, note) if note else caller.notes
    relax_from = caller.relax_from if now is None else now
    return replace(caller, skills=skills, relax_from=relax_from, notes=notes)


def move_to_queue(
    caller: Caller,
    queue: str,
    *,
    now: float | None = None,
    note: str | None = None,
    keep_skills: bool = True,
) -> Caller:
    """The caller moved to a (specialist) queue: same `joined`, so same place by wait.

    `keep_skills=False` forgets the caller's own requirements (the new queue's
    skills then decide alone); `now` restarts the relaxation clock.
    """
    notes = (*caller.notes, note) if note else caller.notes
    return replace(
        caller,
        queue=queue,
        skills=dict(caller.skills) if keep_skills else {},
        relax_from=caller.relax_from if now is None else now,
        notes=notes,
    )


__all__ = [
    "MAX_LEVEL",
    "MIN_LEVEL",
    "escalate",
    "match_score",
    "move_to_queue",
    "next_relax_at",
    "qualifies",
    "relax_start",
    "relaxed",
    "required",
    "requirements_at",
]
