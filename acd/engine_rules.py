"""Small pure rules the ACD engine applies: empty-queue conditions, relax moments.

Join-empty / leave-when-empty (Asterisk's joinempty/leavewhenempty): a queue is
*empty* for a caller when none of its logged-in members is usable, a member
counting as unusable when its state matches one of the listed conditions:

| condition   | the member counts as unavailable when ...                          |
|-------------|--------------------------------------------------------------------|
| paused      | the agent is PAUSED                                                 |
| penalty     | the agent lacks a skill level the caller needs (queue + caller      |
|             | skills, before any relaxation): skills play the part of penalties   |
| inuse       | the agent is ON_CALL or busy on a non-queue call                    |
| ringing     | the agent is RINGING (an offer)                                     |
| wrapup      | the agent is in WRAP_UP                                             |
| unavailable | never: logged-out agents are not members here (see below)           |
| invalid     | never (no device states in the engine)                              |
| unknown     | never                                                               |

A queue with no logged-in member is empty for every non-empty condition list,
as in Asterisk (QUEUE_NO_MEMBERS). An empty list means "always join / never leave".
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


def has_skills(agent: Agent, need: Mapping[str, int]) -> bool:
    """True when the agent holds every skill at least at the needed level."""
    return all(agent.skills.get(skill, 0) >= level for skill, level in need.items())


def member_unavailable(
    agent: Agent, conditions: Collection[str], queue: QueueConfig, caller: Caller | None
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
    return (
        "penalty" in conditions
        and caller is not None
        and not has_skills(agent, required_skills(queue, caller))
    )


def queue_empty(
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
        if agent is not None and not member_unavailable(agent, conditions, queue, caller):
            return False
    return True


def next_relax_moment(queue: QueueConfig, caller: Caller, now: float) -> float | None:
    """The next moment after `now` a skill rule changes what the caller requires.

    The engine re-dispatches then (core's dispatch applies the rules); None when
    the caller needs no skill or no rule is still ahead.
    """
    if not queue.skills and not caller.skills:
        return None
    ahead = [caller.joined + rule.after for rule in queue.skill_rules]
    ahead = [moment for moment in ahead if moment > now]
    return min(ahead) if ahead else None
