"""What the ACD engine asks its shell to do: frozen action records.

`acd.engine.AcdEngine` is pure; every input returns a list of these, in order,
and the asyncio shell (`acd.app`, `acd.shell_calls`) carries them out. Queue events
are actions too (`Emit`), so the shell writes them in the same transaction as the
agent states (`AgentChanged`) the same input changed, and with the callback rows
(`CallbackSaved`/`CallbackDeleted`, stored with their own CALLBACK* events).

| action          | the shell ...                                                        |
|-----------------|----------------------------------------------------------------------|
| Ring            | dials every agent in `agents` at once (Switch.dial) for `seconds`;  |
|                 | reports offer_answered / offer_failed per agent                     |
| RingCallback    | the same for a stored callback: the agent hears "callback for       |
|                 | NUMBER" on answer; no caller leg exists yet                         |
| CancelRing      | hangs up the ringing legs of `agents` (or an agent leg that         |
|                 | answered an offer that no longer exists: a lost race)               |
|                 | `offer_id` (Ring, RingCallback, CancelRing) names one offer: the    |
|                 | shell passes it back so a late answer to an older offer of the same |
|                 | caller and agent is never taken for the current one                 |
| Bridge          | bridges the caller's leg with the agent's answered leg              |
| DialCallback    | dials `number` for the callback, the agent's leg on hold/ringback;  |
|                 | reports callback_result                                             |
| Announce        | plays "you are number `position`" (+ "about `wait` s" when known)   |
| Play            | plays the prompt to the waiting caller (music resumes after)        |
| Overflow        | moves the caller to `target` (queue:NAME, vm:BOX, ivr:MENU, ext,    |
|                 | trunk:NAME/NUMBER); the engine has forgotten the caller             |
| Voicemail       | sends the caller to the queue's mailbox (voicemail key)             |
| Exit            | ends the caller's stay (`reason` below); for "callback" it plays    |
|                 | the confirmation and hangs up; otherwise the dialplan goes on       |
| Requeue         | splits the caller from `agent` (hangs up the agent's leg) and puts  |
|                 | the caller back on music in `queue` (an escalation)                 |
| Handoff         | splits the caller from `agent` (hangs up the agent's leg) and sends |
|                 | the caller to `target` outside the queues (an agent's transfer)     |
| Emit            | writes the queue event and publishes it on the bus                  |
| AgentChanged    | persists the agent's snapshot (state, pause reason, counters) and   |
|                 | the queues it is logged into (None: all its queues)                 |
| CallbackSaved   | stores (or updates) the callback row: it survives a restart         |
| CallbackDeleted | deletes the callback row (connected, dropped or cancelled)          |

`Exit.reason` values: "no-queue" (unknown queue), "full" (max_callers),
"joinempty", "empty" (leave-when-empty), "timeout" (max wait, no overflow
target), "callback" (callback requested), "queue-removed" (config reload removed
the queue), "agent-lost" (the agent's leg vanished mid-call: the shell hangs the
caller up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from acd.model import Agent, Caller, QueueEvent


@dataclass(frozen=True, slots=True)
class Ring:
    """Offer `caller` by ringing `agents` together for `seconds`."""

    caller: str
    queue: str
    agents: tuple[str, ...]
    seconds: float
    notes: tuple[str, ...] = ()  # what escalating agents noted, shown to the specialist
    offer_id: int = field(default=0, compare=False)  # echo it in offer_answered/_failed


@dataclass(frozen=True, slots=True)
class RingCallback:
    """Offer a stored callback: ring `agents`, who will call `number` back."""

    caller: str
    queue: str
    agents: tuple[str, ...]
    number: str
    seconds: float
    notes: tuple[str, ...] = ()
    offer_id: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class CancelRing:
    """Hang up the ringing (or too late answered) legs of `agents` for `caller`."""

    caller: str
    agents: tuple[str, ...]
    offer_id: int = field(default=0, compare=False)  # the offer whose legs these are


@dataclass(frozen=True, slots=True)
class Bridge:
    """Connect the caller's leg with the agent's answered leg."""

    caller: str
    agent: str


@dataclass(frozen=True, slots=True)
class DialCallback:
    """The agent answered a callback offer: dial the customer (`attempt` from 1)."""

    caller: str
    agent: str
    number: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell a waiting caller its position and the estimated wait (None: unknown)."""

    caller: str
    position: int
    wait: float | None


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt (periodic announcement) to a waiting caller."""

    caller: str
    prompt: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """Send the caller to the queue's overflow target."""

    caller: str
    target: str


@dataclass(frozen=True, slots=True)
class Voicemail:
    """The caller pressed the voicemail key: leave a message for `queue`."""

    caller: str
    queue: str


@dataclass(frozen=True, slots=True)
class Exit:
    """The caller leaves the queue's hands (see the module doc for `reason`)."""

    caller: str
    reason: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Split `caller` from `agent` and put it back on music in `queue`."""

    caller: str
    queue: str
    agent: str


@dataclass(frozen=True, slots=True)
class Handoff:
    """Split `caller` from `agent` (whose leg is hung up) and send the caller to `target`
    outside the queues (an extension, a mailbox, a trunk number): an agent's transfer."""

    caller: str
    target: str
    agent: str


@dataclass(frozen=True, slots=True)
class Emit:
    """Write (and publish) one queue event."""

    event: QueueEvent


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """Persist the agent's new snapshot and its logged-in queues (None: all)."""

    agent: Agent
    queues: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class CallbackSaved:
    """Store or update a pending callback and its attempts so far."""

    caller: Caller
    attempts: int


@dataclass(frozen=True, slots=True)
class CallbackDeleted:
    """Forget a stored callback."""

    caller: str


Action = (
    Ring
    | RingCallback
    | CancelRing
    | Bridge
    | DialCallback
    | Announce
    | Play
    | Overflow
    | Voicemail
    | Exit
    | Requeue
    | Handoff
    | Emit
    | AgentChanged
    | CallbackSaved
    | CallbackDeleted
)
