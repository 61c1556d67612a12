"""Which agent gets which waiting call: pure decisions over a snapshot of state.

Availability (`can_offer`): an agent may be offered a call of queue Q at `now` when
it is a member of Q, has an `Agent` record, its phone is `registered`, its state is
AVAILABLE (or WRAP_UP whose `wrapup_until` has passed: wrap-up ends by the clock
even before the engine records WRAPUPEND), `now >= wrapup_until`, it is not
`in_use` on a non-queue call unless Q.ring_in_use, it has no offer ringing
(`busy_offers`), and it qualifies for the caller's skills (`acd.skills`).

Ranking (`rank`), Asterisk app_queue's `calc_metric` in spirit, lowest key first:
1. the penalty tier (app_queue adds 1,000,000 per penalty step: a lower penalty
   always wins): a member's penalty (FreeSWITCH tier level), ignored (0) when the
   queue has at most `penalty_members_limit` members; wrandom has no tier (its
   penalty widens the random range instead, and is 0 too under the limit);
2. the skill match, best first (`acd.skills.match_score`; 0 for everyone when the
   call requires no skill);
3. the strategy's metric:
   - ringall: none; every agent of the best tier is offered together (skill match
     does not narrow a ringall offer, qualification does);
   - leastrecent: never called from this queue first, then the oldest end of the
     last call from this queue;
   - fewestcalls: fewest calls taken from this queue;
   - random: a uniform draw; wrandom: a draw in range((1 + penalty) * 1000);
   - rrmemory and rrordered: the members in configured order (position, then
     name), starting after the agent last offered for this queue and wrapping
     round (`Memory.last_offered`). Asterisk's rrmemory walks its container's
     internal order, which no user can configure or rely on, so both use the
     configured order here;
   - linear: configured order from the first member for each caller; a caller
     offered again continues after the agent it was last offered
     (`Memory.linear_last`, app_queue's per-caller linpos);
   - longest-idle (FreeSWITCH's default): idle the longest, i.e. the smallest of
     `max(state_since, wrapup_until)`; ties by the oldest last call end across
     queues (never called first);
4. ties: configured position, then agent name.
Random draws are taken in that deterministic member order from `rng`.

Empty queues (`queue_is_empty`): Asterisk's joinempty/leavewhenempty condition names
(`EMPTY_CONDITIONS`). A logged-out member never counts (in Asterisk a logged-out
dynamic member is no member at all); each listed condition excludes more members:
paused (PAUSED), penalty (lacks the caller's required skills: aiopbx has no caller
penalty ranges, skills play that part), inuse (ON_CALL or in_use), ringing (RINGING
or an offer ringing), unavailable (phone not registered), invalid (no agent record),
unknown (no aiopbx meaning: excludes nothing), wrapup (in wrap-up). An empty
condition set means the feature is off: the queue never counts as empty.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from acd.model import Agent, AgentState, Caller, Member, Offer, QueueConfig, Strategy
from acd.skills import match_score, next_relax_at, qualifies, required, requirements_at

log = logging.getLogger(__name__)

EMPTY_CONDITIONS = frozenset(
    {"paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup"}
)
LINEAR_MEMORY_LIMIT = 10_000  # per-caller linear positions kept (oldest dropped first)
WRANDOM_RANGE = 1000


@dataclass
class Memory:
    """What strategies remember between decisions: rrmemory/rrordered position per
    queue (the last agent offered)."""

    last_offered: dict[str, str] = field(default_factory=dict)
    # Defaulted addition (core): linear's per-caller position, call_id -> last agent.
    linear_last: dict[str, str] = field(default_factory=dict)

    def forget(self, call_id: str) -> None:
        """Drop what is kept for a caller that left (linear's position)."""
        self.linear_last.pop(call_id, None)

    def remember_linear(self, call_id: str, agent: str) -> None:
        """Record the agent last offered `caller` (bounded: oldest callers dropped)."""
        self.linear_last.pop(call_id, None)
        self.linear_last[call_id] = agent
        while len(self.linear_last) > LINEAR_MEMORY_LIMIT:
            del self.linear_last[next(iter(self.linear_last))]


# -- availability -----------------------------------------------------------------


def wrapup_seconds(queue: QueueConfig, agent: Agent) -> float:
    """The wrap-up after a call of `queue`: the agent's own, else the queue's."""
    return queue.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds


def in_wrapup(agent: Agent, now: float) -> bool:
    """True while the agent's wrap-up runs: wrap-up ends by the clock
    (`wrapup_until`), whatever the recorded state says."""
    return now < agent.wrapup_until


def agent_free(
    now: float, queue: QueueConfig, agent: Agent, busy_offers: Collection[str] = ()
) -> bool:
    """The agent could take a call of `queue` now, skills and membership aside."""
    if agent.state not in (AgentState.AVAILABLE, AgentState.WRAP_UP):
        return False
    if in_wrapup(agent, now) or not agent.registered:
        return False
    if agent.in_use and not queue.ring_in_use:
        return False
    return agent.name not in busy_offers


def is_member(members: Sequence[Member], agent: str) -> bool:
    """True when `agent` is one of the queue's members."""
    return any(member.agent == agent for member in members)


def can_offer(
    now: float,
    queue: QueueConfig,
    members: Sequence[Member],
    agent: Agent,
    busy_offers: Collection[str] = (),
    caller: Caller | None = None,
) -> bool:
    """An offer of `caller` (of `queue`) may ring `agent` now (see the module doc)."""
    if not is_member(members, agent.name) or not agent_free(now, queue, agent, busy_offers):
        return False
    return caller is None or qualifies(agent.skills, requirements_at(queue, caller, now))


def queue_is_empty(
    now: float,
    queue: QueueConfig,
    members: Sequence[Member],
    agents: Mapping[str, Agent],
    conditions: Collection[str],
    caller: Caller | None = None,
    busy_offers: Collection[str] = (),
) -> bool:
    """Asterisk's joinempty/leavewhenempty test: does `queue` count as empty?

    True when no member is left once logged-out members and those matching any of
    `conditions` are set aside; always False for an empty condition set. The
    engine calls it with `queue.join_empty` when a caller arrives and with
    `queue.leave_when_empty` for the waiting callers.
    """
    if not conditions:
        return False
    requirements = requirements_at(queue, caller, now) if caller is not None else {}
    for member in members:
        agent = agents.get(member.agent)
        if agent is None:
            if "invalid" in conditions:
                continue
            return False
        if agent.state is AgentState.LOGGED_OUT:
            continue
        if _excluded(now, agent, conditions, requirements, busy_offers):
            continue
        return False
    return True


def _excluded(
    now: float,
    agent: Agent,
    conditions: Collection[str],
    requirements: Mapping[str, int],
    busy_offers: Collection[str],
) -> bool:
    state = agent.state
    tests = {
        "paused": state is AgentState.PAUSED,
        "penalty": not qualifies(agent.skills, requirements),
        "inuse": state is AgentState.ON_CALL or agent.in_use,
        "ringing": state is AgentState.RINGING or agent.name in busy_offers,
        "unavailable": not agent.registered,
        "wrapup": in_wrapup(agent, now),
    }
    return any(tests.get(condition, False) for condition in conditions)


def next_dispatch_at(
    now: float,
    queues: Mapping[str, QueueConfig],
    agents: Mapping[str, Agent],
    waiting: Sequence[Caller],
) -> float | None:
    """The next time after `now` when a dispatch could give a different answer with
    no event in between: a wrap-up ends or a waiting caller's skills relax. None
    when no such time is pending. The engine arms one timer for it."""
    times = [
        agent.wrapup_until
        for agent in agents.values()
        if agent.wrapup_until > now and agent.state is not AgentState.LOGGED_OUT
    ]
    for caller in waiting:
        queue = queues.get(caller.queue)
        at = next_relax_at(caller, queue, now) if queue is not None else None
        if at is not None:
            times.append(at)
    return min(times, default=None)


# -- ranking ----------------------------------------------------------------------


def uses_penalty(queue: QueueConfig, members: Sequence[Member]) -> bool:
    """Penalties count unless the queue has at most `penalty_members_limit` members."""
    return len(members) > queue.penalty_members_limit


def configured_order(members: Sequence[Member]) -> list[Member]:
    """The members by configured position, then agent name."""
    return sorted(members, key=lambda member: (member.position, member.agent))


def _after(order: Sequence[str], last: str | None) -> Callable[[str], int]:
    """Distance in `order` from just after `last` (wrapping); from the start if None."""
    index = {name: i for i, name in enumerate(order)}
    start = index[last] + 1 if last in index else 0
    size = max(len(order), 1)
    return lambda name: (index[name] - start) % size


def rank(
    now: float,
    queue: QueueConfig,
    members: Sequence[Member],
    candidates: Sequence[tuple[Member, Agent]],
    caller: Caller,
    rng: random.Random,
    memory: Memory,
) -> tuple[Agent, ...]:
    """The agents to offer `caller` among `candidates` (all eligible), best first.

    Ringall returns every candidate of the best penalty tier; every other strategy
    one agent (or none when there is no candidate). Does not update `memory`.
    """
    if not candidates:
        return ()
    penalties = uses_penalty(queue, members)
    strategy = queue.strategy
    wanted = required(queue, caller)
    ordered = sorted(candidates, key=lambda pair: (pair[0].position, pair[0].agent))

    def tier(member: Member) -> int:
        if strategy is Strategy.WRANDOM or not penalties:
            return 0
        return member.penalty

    if strategy is Strategy.RINGALL:
        best = min(tier(member) for member, _ in ordered)
        return tuple(agent for member, agent in ordered if tier(member) == best)

    metric = _metric(queue, members, ordered, caller, rng, memory, penalties)
    keyed = [
        (tier(member), -match_score(agent.skills, wanted), metric(member, agent), i)
        for i, (member, agent) in enumerate(ordered)
    ]
    return (ordered[min(keyed)[3]][1],)


def _metric(
    queue: QueueConfig,
    members: Sequence[Member],
    ordered: Sequence[tuple[Member, Agent]],
    caller: Caller,
    rng: random.Random,
    memory: Memory,
    penalties: bool,
) -> Callable[[Member, Agent], tuple[float, ...]]:
    strategy = queue.strategy
    name = queue.name
    if strategy is Strategy.LEASTRECENT:
        return lambda _m, a: (
            (0.0, 0.0) if name not in a.last_call_end else (1.0, a.last_call_end[name])
        )
    if strategy is Strategy.FEWESTCALLS:
        return lambda _m, a: (float(a.calls_taken.get(name, 0)),)
    if strategy in (Strategy.RANDOM, Strategy.WRANDOM):
        draws: dict[str, float] = {}
        for member, agent in ordered:
            if strategy is Strategy.RANDOM:
                draws[agent.name] = float(rng.randrange(WRANDOM_RANGE))
            else:
                penalty = member.penalty if penalties else 0
                draws[agent.name] = float(rng.randrange((1 + max(penalty, 0)) * WRANDOM_RANGE))
        return lambda _m, a: (draws[a.name],)
    if strategy in (Strategy.RRMEMORY, Strategy.RRORDERED, Strategy.LINEAR):
        order = [member.agent for member in configured_order(members)]
        if strategy is Strategy.LINEAR:
            last = memory.linear_last.get(caller.call_id)
        else:
            last = memory.last_offered.get(name)
        distance = _after(order, last)
        return lambda m, _a: (float(distance(m.agent)),)
    if strategy is Strategy.LONGEST_IDLE:
        return lambda _m, a: (
            max(a.state_since, a.wrapup_until),
            max(a.last_call_end.values(), default=float("-inf")),
        )
    log.warning("queue %s: strategy %s has no metric, using configured order", name, strategy)
    return lambda _m, _a: ()


# -- dispatch ---------------------------------------------------------------------


def caller_order(
    queues: Mapping[str, QueueConfig], caller: Caller
) -> tuple[int, int, float, int, str]:
    """Sort key of waiting callers: queue weight (desc), priority (desc), joined (asc)."""
    weight = queues[caller.queue].weight if caller.queue in queues else 0
    return (-weight, -caller.priority, caller.joined, caller.entry_position, caller.call_id)


def eligible(
    now: float,
    queue: QueueConfig,
    members: Sequence[Member],
    agents: Mapping[str, Agent],
    caller: Caller,
    unavailable: Collection[str],
) -> list[tuple[Member, Agent]]:
    """The members that may be offered `caller` now, none of `unavailable`."""
    requirements = requirements_at(queue, caller, now)
    out = []
    seen: set[str] = set()
    for member in members:
        agent = agents.get(member.agent)
        if agent is None or member.agent in seen:
            continue
        seen.add(member.agent)
        if not agent_free(now, queue, agent, unavailable):
            continue
        if qualifies(agent.skills, requirements):
            out.append((member, agent))
    return out


def dispatch(
    now: float,
    queues: Mapping[str, QueueConfig],
    members: Mapping[str, Sequence[Member]],  # queue -> members
    agents: Mapping[str, Agent],
    waiting: Sequence[Caller],  # every queue's callers, any order
    busy_offers: Collection[str],  # agents with an offer ringing already
    rng: random.Random,
    memory: Memory,
) -> list[Offer]:
    """The offers to make now: callers in order (queue weight, then priority, then
    joined), each to the agents its queue's strategy picks among those free for it,
    at most one offer per agent across all queues, callers already offered are in
    `waiting` only if they need a new offer (the engine filters).

    1. Greedy pass, callers in `caller_order`: each gets `rank`'s pick among its
       eligible agents not promised to an earlier caller, so a later caller of the
       same queue never jumps the line for an agent the earlier one could take,
       while a later caller whose needs are met by an agent the earlier one cannot
       use (skills, other queue) gets it: no head-of-line blocking.
    2. Sparing pass, only when some free agent is still unpromised: a caller left
       without an agent takes agent X from an earlier single-agent offer (not
       ringall) when that earlier caller can be given another free agent Y
       instead (its strategy's pick among the agents still free, whatever Y's
       penalty). So a generalist call does not use up the only specialist a later
       call needs; every earlier caller keeps an offer, so nobody loses its turn.
       Each swap serves one more caller, so the pass is bounded.
    Offers come back in caller order; `memory` records the final offers.
    A caller of an unknown queue is skipped (logged); a duplicate call id counts once.
    """
    promised: set[str] = set(busy_offers)
    order: list[Caller] = []
    seen: set[str] = set()
    for caller in sorted(waiting, key=lambda c: caller_order(queues, c)):
        if caller.call_id in seen:
            continue
        seen.add(caller.call_id)
        if caller.queue not in queues:
            log.warning("call %s waits in unknown queue %s", caller.call_id, caller.queue)
            continue
        order.append(caller)

    assigned: dict[str, tuple[str, ...]] = {}
    holder: dict[str, Caller] = {}  # agent -> caller of a swappable (single) offer
    free = _free_anywhere(now, agents, busy_offers)
    unserved: set[tuple[str, frozenset[tuple[str, int]]]] = set()  # promised only grows
    for caller in order:
        if free <= promised:
            break  # nobody left to offer: the remaining callers wait
        queue = queues[caller.queue]
        needs = (caller.queue, frozenset(requirements_at(queue, caller, now).items()))
        if needs in unserved:
            continue
        queue_members = members.get(caller.queue, ())
        candidates = eligible(now, queue, queue_members, agents, caller, promised)
        picked = rank(now, queue, queue_members, candidates, caller, rng, memory)
        if not picked:
            unserved.add(needs)
            continue
        names = tuple(agent.name for agent in picked)
        promised.update(names)
        assigned[caller.call_id] = names
        if queue.strategy is not Strategy.RINGALL:
            holder[names[0]] = caller
            _remember(memory, queue, caller, names[0])

    if len(assigned) < len(order) and holder and not free <= promised:
        _spare_specialists(
            now,
            queues,
            members,
            agents,
            order,
            busy_offers,
            promised,
            assigned,
            holder,
            rng,
            memory,
        )

    offers = []
    for caller in order:
        names = assigned.get(caller.call_id, ())
        if names:
            offers.append(Offer(caller=caller.call_id, queue=caller.queue, agents=names))
            if len(names) == 1:
                _remember(memory, queues[caller.queue], caller, names[0])
    return offers


def _remember(memory: Memory, queue: QueueConfig, caller: Caller, agent: str) -> None:
    if queue.strategy in (Strategy.RRMEMORY, Strategy.RRORDERED):
        memory.last_offered[queue.name] = agent
    elif queue.strategy is Strategy.LINEAR:
        memory.remember_linear(caller.call_id, agent)


_ANY_QUEUE = QueueConfig(name="", number="", ring_in_use=True)


def _free_anywhere(
    now: float, agents: Mapping[str, Agent], busy_offers: Collection[str]
) -> set[str]:
    """The agents some queue could offer a call now (a superset of every eligible set)."""
    return {
        name for name, agent in agents.items() if agent_free(now, _ANY_QUEUE, agent, busy_offers)
    }


def _spare_specialists(
    now: float,
    queues: Mapping[str, QueueConfig],
    members: Mapping[str, Sequence[Member]],
    agents: Mapping[str, Agent],
    order: Sequence[Caller],
    busy_offers: Collection[str],
    promised: set[str],
    assigned: dict[str, tuple[str, ...]],
    holder: dict[str, Caller],
    rng: random.Random,
    memory: Memory,
) -> None:
    """The sparing pass of `dispatch` (its doc): mutates promised/assigned/holder."""

    cache: dict[str, Agent | None] = {}  # valid until the next swap

    def alternative(other: Caller) -> Agent | None:
        if other.call_id not in cache:
            queue = queues[other.queue]
            queue_members = members.get(other.queue, ())
            candidates = eligible(now, queue, queue_members, agents, other, promised)
            picked = rank(now, queue, queue_members, candidates, other, rng, memory)
            cache[other.call_id] = picked[0] if picked else None
        return cache[other.call_id]

    hopeless: set[tuple[str, frozenset[tuple[str, int]]]] = set()  # until the next swap
    for caller in order:
        if caller.call_id in assigned:
            continue
        queue = queues[caller.queue]
        needs = (caller.queue, frozenset(requirements_at(queue, caller, now).items()))
        if needs in hopeless:
            continue  # a caller with the same queue and needs found no swap
        queue_members = members.get(caller.queue, ())
        wanted = eligible(now, queue, queue_members, agents, caller, busy_offers)
        swaps: dict[str, Agent] = {}
        for _member, agent in wanted:
            other = holder.get(agent.name)
            if other is None or other.call_id in swaps:
                continue
            spare = alternative(other)
            if spare is not None:
                swaps[other.call_id] = spare
        if not swaps:
            hopeless.add(needs)
            continue
        swappable = [
            (member, agent)
            for member, agent in wanted
            if agent.name in holder and holder[agent.name].call_id in swaps
        ]
        taken = rank(now, queue, queue_members, swappable, caller, rng, memory)[0]
        other = holder.pop(taken.name)
        spare = swaps[other.call_id]
        assigned[other.call_id] = (spare.name,)
        holder[spare.name] = other
        promised.add(spare.name)
        assigned[caller.call_id] = (taken.name,)
        if queue.strategy is not Strategy.RINGALL:
            holder[taken.name] = caller
        cache.clear()
        hopeless.clear()
        log.debug(
            "call %s: %s spared for it, call %s gets %s",
            caller.call_id,
            taken.name,
            other.call_id,
            spare.name,
        )


__all__ = [
    "EMPTY_CONDITIONS",
    "Memory",
    "agent_free",
    "caller_order",
    "can_offer",
    "configured_order",
    "dispatch",
    "eligible",
    "in_wrapup",
    "is_member",
    "next_dispatch_at",
    "queue_is_empty",
    "rank",
    "uses_penalty",
    "wrapup_seconds",
]
