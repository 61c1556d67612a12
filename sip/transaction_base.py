"""What the client and server transaction machines share: timers, states, actions.

The transaction layer (`sip.transaction`) is sans-I/O: every input carries `now`, every
output is an *action* for the caller to carry out. The four actions are:

- `Send`: pass a message to the transport (RFC 3261 §18) for a peer;
- `Deliver`: pass a message up to the transaction user (TU), with its transaction;
- `TimedOut`: Timer B, F or H fired; the TU answers itself with a 408 (§8.1.3.1);
- `TransportFailed`: the transport could not deliver (§17.1.4, §17.2.4).

Timer values (RFC 3261 Table 4; L and M from RFC 6026):

    A  T1, doubling     INVITE request retransmit, unreliable only
    C  > 3 min          INVITE server transaction without a final response (restarted
                        by each provisional; every server transaction ends, see
                        `sip.transaction_server`)
    B  64*T1            INVITE transaction timeout
    D  >= 32 s / 0      wait for response retransmits (unreliable / reliable)
    E  T1, doubling     non-INVITE request retransmit, capped at T2, unreliable only
    F  64*T1            non-INVITE transaction timeout
    G  T1, doubling     INVITE final response retransmit, capped at T2, unreliable only
    H  64*T1            wait for ACK
    I  T4 / 0           wait for ACK retransmits
    J  64*T1 / 0        wait for non-INVITE request retransmits
    K  T4 / 0           wait for non-INVITE response retransmits
    L  64*T1            RFC 6026: wait for INVITE retransmits after a 2xx (server)
    M  64*T1            RFC 6026: wait for 2xx retransmits (client)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from sip.message import Message, Request, Response
from sip.peer import Peer

if TYPE_CHECKING:
    from sip.transaction_client import ClientTransaction
    from sip.transaction_server import ServerTransaction

#: RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this
#: specification MUST always begin with the characters "z9hG4bK"."
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Timers:
    """The RFC 3261 timer base values (seconds) and the timers derived from them.

    `d` is its own value because RFC 3261 only asks for "at least 32 seconds";
    `trying` is the §17.2.1 delay after which an INVITE server transaction sends
    100 (Trying) itself; `c` bounds how long an INVITE server transaction waits in
    Proceeding for the TU's final response (restarted by each provisional, as proxies
    run Timer C, RFC 3261 §16.6: "greater than 3 minutes"). A non-INVITE server
    transaction waits at most 64*T1 for its answer, when the client's Timer F has given
    up. Tests pass small values to run the machines fast.

    Raises:
        ValueError: a value is not positive, or T2 is below T1.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0
    trying: float = 0.2
    c: float = 185.0

    def __post_init__(self) -> None:
        if min(self.t1, self.t2, self.t4, self.trying, self.c) <= 0 or self.d < 0:
            raise ValueError(f"timer values must be positive: {self}")
        if self.t2 < self.t1:
            raise ValueError(f"T2 ({self.t2}) must not be below T1 ({self.t1})")

    @property
    def a(self) -> float:
        """Timer A: first INVITE retransmission interval."""
        return self.t1

    @property
    def b(self) -> float:
        """Timer B: INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def e(self) -> float:
        """Timer E: first non-INVITE retransmission interval."""
        return self.t1

    @property
    def f(self) -> float:
        """Timer F: non-INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """Timer G: first INVITE final response retransmission interval."""
        return self.t1

    @property
    def h(self) -> float:
        """Timer H: how long an INVITE server transaction waits for the ACK."""
        return 64 * self.t1

    @property
    def i(self) -> float:
        """Timer I over an unreliable transport (0 over a reliable one)."""
        return self.t4

    @property
    def j(self) -> float:
        """Timer J over an unreliable transport (0 over a reliable one)."""
        return 64 * self.t1

    @property
    def k(self) -> float:
        """Timer K over an unreliable transport (0 over a reliable one)."""
        return self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC's name
        """Timer L (RFC 6026): INVITE server transaction lingers in Accepted."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """Timer M (RFC 6026): INVITE client transaction lingers in Accepted."""
        return 64 * self.t1


class State(enum.Enum):
    """Transaction states of RFC 3261 §17 Figures 5-8 and RFC 6026 ("Accepted")."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


@dataclass(frozen=True, slots=True)
class Send:
    """Pass `message` to the transport layer for `peer`."""

    message: Message
    peer: Peer


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass `message` (received from `peer`) up to the TU.

    `transaction` is the server transaction a request created or matched, the client
    transaction a response matched, or None for an ACK or a 2xx outside any transaction.
    """

    message: Message
    peer: Peer
    transaction: ClientTransaction | ServerTransaction | None


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B, F (client) or H (server) fired; the transaction is terminated."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport failed for this transaction's peer (RFC 3261 §17.1.4, §17.2.4)."""

    transaction: ClientTransaction | ServerTransaction


Action: TypeAlias = Send | Deliver | TimedOut | TransportFailed

#: A transaction's key in the layer's tables (see `sip.transaction`).
Key: TypeAlias = tuple[object, ...]


class Transaction:
    """State common to client and server transactions.

    A transaction keeps at most two timers: `retransmit_at` (A, E, G, or the 100 Trying
    delay) and `expire_at` (B, D, F, H, I, J, K, L, M). The layer keeps one heap entry per
    transaction, at the earlier of the two; `_seq` names the live entry (lazy deletion).
    """

    __slots__ = (
        "_seq",
        "_wake",
        "expire_at",
        "interval",
        "key",
        "last_response",
        "peer",
        "reliable",
        "request",
        "retransmit_at",
        "state",
        "timers",
    )

    def __init__(
        self, request: Request, peer: Peer, timers: Timers, key: Key, state: State
    ) -> None:
        self.request = request
        self.peer = peer
        self.timers = timers
        self.key = key
        self.state = state
        self.reliable = peer.transport != "UDP"
        self.last_response: Response | None = None
        self.retransmit_at: float | None = None
        self.expire_at: float | None = None
        self.interval = timers.t1
        self._seq = -1
        self._wake: float | None = None

    @property
    def is_invite(self) -> bool:
        """True for an INVITE transaction."""
        return self.request.method == "INVITE"

    @property
    def terminated(self) -> bool:
        """True once the transaction has reached "Terminated" and left the layer."""
        return self.state is State.TERMINATED

    def on_timer(self, now: float) -> list[Action]:
        """Fire whichever of this transaction's timers are due at `now`."""
        raise NotImplementedError

    def on_transport_error(self) -> list[Action]:
        """The transport failed to reach this transaction's peer."""
        raise NotImplementedError

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self.retransmit_at = None
        self.expire_at = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.request.method} {self.state.value}"
            f" Call-ID {self.request.call_id}>"
        )
