"""Small pure rules the ACD engine applies: empty-queue conditions, relax moments.

Join-empty / leave-when-empty (Asterisk's joinempty/leavewhenempty): a queue is
*empty* for a caller when none of its logged-in members is usable, a member
counting as unusable when its state matches one of the listed conditions:

| condition   | the member counts as unavailable when ...                          |
|-------------|--------------------------------------------------------------------|
| paused      | the agent is PAUSED                                                 |
| penalty     | the agent lacks a skill level the caller needs now (queue + caller  |
|             | skills, relaxed by the rules): skills play the part of penalties    |
| inuse       | the agent is ON_CALL or busy on a non-queue call                    |
| ringing     | the agent is RINGING (an offer)                                     |
| wrapup      | the agent is in WRAP_UP                                             |
| unavailable | the agent's phone is not registered (`Agent.registered`)            |
| invalid     | the member has no agent record                                      |
| unknown     | never (no aiopbx meaning)                                           |

Only members logged into the queue count (in Asterisk a logged-out dynamic member
is no member at all): a queue with none is empty for every non-empty condition
list (QUEUE_NO_MEMBERS). An empty list means "always join / never leave". These
are the semantics of core's `acd.strategy.queue_is_empty` (written in parallel);
at merge the engine can call that one instead.

Skill relaxation (`SkillRule`, counted from `Caller.relax_from`, else `joined`):
of the rules in force, any `drop` removes every requirement, else the largest
`relax` lowers every level, never below 1 (core's `acd.skills` semantics).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from acd.model import Agent, AgentState, Caller, Member, QueueConfig

CONDITIONS = frozenset(
    {"paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup"}
)


def required_skills(queue: QueueConfig, caller: Caller) -> dict[str, int]:
    """The caller's required skills: the queue's, raised by the caller's own."""
    need = dict(queue.skills)
    for skill, level in caller.skills.items():
        need[skill] = max(level, need.get(skill, 0))
    return need


def relax_start(caller: Caller) -> float:
    """When the caller's skill rules started counting: an escalation, else joining."""
    return caller.joined if caller.relax_from is None else caller.relax_from


def skills_needed_at(queue: QueueConfig, caller: Caller, now: float) -> dict[str, int]:
    """The required skills at `now`, after the queue's rules in force."""
    need = required_skills(queue, caller)
    waited = now - relax_start(caller)
    in_force = [rule for rule in queue.skill_rules if waited >= rule.after]
    if any(rule.drop for rule in in_force):
        return {}
    relax = max((rule.relax for rule in in_force), default=0)
    return {skill: max(1, level - relax) for skill, level in need.items()}


def has_skills(agent: Agent, need: Mapping[str, int]) -> bool:
    """True when the agent holds every skill at least at the needed level."""
    return all(agent.skills.get(skill, 0) >= level for skill, level in need.items())


def member_unavailable(
    now: float,
    agent: Agent,
    conditions: Collection[str],
    queue: QueueConfig,
    caller: Caller | None,
) -> bool:
    """Whether one logged-in member counts as unavailable under `conditions`."""
    state = agent.state
    if state is AgentState.LOGGED_OUT:
        return True
    if "paused" in conditions and state is AgentState.PAUSED:
        return True
    if "ringing" in conditions and state is AgentState.RINGING:
        return True
    if "wrapup" in conditions and state is AgentState.WRAP_UP:
        return True
    if "inuse" in conditions and (state is AgentState.ON_CALL or agent.in_use):
        return True
    if "unavailable" in conditions and not agent.registered:
        return True
    return (
        "penalty" in conditions
        and caller is not None
        and not has_skills(agent, skills_needed_at(queue, caller, now))
    )


def queue_empty(
    now: float,
    queue: QueueConfig,
    members: Iterable[Member],
    agents: Mapping[str, Agent],
    conditions: Collection[str],
    caller: Caller | None,
) -> bool:
    """Whether the queue is empty for `caller` under `conditions` (see the module doc).

    `members` are the queue's logged-in members only.
    """
    if not conditions:
        return False
    for member in members:
        agent = agents.get(member.agent)
        if agent is None:
            if "invalid" in conditions:
                continue
            return False
        if not member_unavailable(now, agent, conditions, queue, caller):
            return False
    return True


def next_relax_moment(queue: QueueConfig, caller: Caller, now: float) -> float | None:
    """The next moment after `now` a skill rule changes what the caller requires.

    The engine re-dispatches then (core's dispatch applies the rules); None when
    the caller needs no skill or no rule is still ahead.
    """
    if not queue.skills and not caller.skills:
        return None
    ahead = [relax_start(caller) + rule.after for rule in queue.skill_rules]
    ahead = [moment for moment in ahead if moment > now]
    return min(ahead) if ahead else None
