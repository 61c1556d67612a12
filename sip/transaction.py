"""The SIP transaction layer, sans-I/O: RFC 3261 §17 with the RFC 6026 corrections.

The layer owns every client and server transaction, matches incoming messages to them,
and runs their timers. It never touches a socket or a clock: each call takes `now` (any
monotonic float, e.g. `loop.time()`) and returns a list of actions (`Send`, `Deliver`,
`TimedOut`, `TransportFailed`) for the caller to carry out in order. After each call the
caller asks `next_deadline()` and calls `on_timer(now)` when it comes.

Matching (the rules the layer's two dictionaries encode):

- A response matches a client transaction when its top Via branch and its CSeq method
  equal the request's (§17.1.3). A response matching nothing is dropped (RFC 6026 on §18.1.2),
  except a 2xx to an INVITE, which is delivered with transaction None so the UAC core can
  still acknowledge a stray 2xx retransmission (§13.2.2.4).
- A request whose top Via branch starts with the magic cookie "z9hG4bK" matches a server
  transaction on branch, sent-by (host and port of the top Via) and method, an ACK
  counting as INVITE (§17.2.3). Without the cookie (RFC 2543 peers) it matches on
  Request-URI, To tag, From tag, Call-ID, CSeq and top Via; an ACK on Request-URI, From
  tag, Call-ID, CSeq number and top Via, with its To tag equal to the To tag of the
  response sent. A CANCEL is a transaction of its own; `find_invite_for_cancel` finds the
  INVITE it refers to (§9.2).
- A request matching nothing creates a server transaction and is delivered with it; an
  ACK matching nothing is delivered with transaction None (it acknowledges a 2xx).

Every transaction ends. A non-INVITE server transaction the TU never answers (Trying or
Proceeding) is swept: new ones join the current generation, a final response takes them
out, and every 64*T1 the previous generation's leftovers are terminated and the current
one becomes the previous; so each ends between 64*T1 and 128*T1, without a heap entry per
request (REGISTER and OPTIONS are most of the traffic, and nearly all are answered at
once). An INVITE server transaction has Timer C (`Timers.c`) in the heap.

Timers live in one heap with lazy deletion: each transaction has at most one live entry
(at its earliest timer); superseded entries are skipped when popped and the heap is
compacted when they come to outnumber the live ones.
"""

from __future__ import annotations

import heapq
import logging

from sip.headers import Via
from sip.message import Message, Request, Response
from sip.peer import Peer
from sip.transaction_base import (
    MAGIC_COOKIE,
    Action,
    Deliver,
    Key,
    Send,
    State,
    TimedOut,
    Timers,
    Transaction,
    TransportFailed,
)
from sip.transaction_client import ClientTransaction, build_ack
from sip.transaction_server import ServerTransaction, make_trying

__all__ = [
    "MAGIC_COOKIE",
    "Action",
    "ClientTransaction",
    "Deliver",
    "Send",
    "ServerTransaction",
    "State",
    "TimedOut",
    "Timers",
    "TransactionLayer",
    "TransportFailed",
    "build_ack",
    "make_trying",
    "server_key",
]

log = logging.getLogger(__name__)

_TERMINATED = State.TERMINATED
_TRYING = State.TRYING
_PROCEEDING = State.PROCEEDING
#: Compact the timer heap once this many stale entries have piled up (and they are half).
_COMPACT_MIN = 1024


def _branch(via: Via) -> str | None:
    """`via.branch` without the generic parameter lookup: this runs twice per transaction."""
    for name, value in via.params:
        if name == "branch" or name.lower() == "branch":
            return value or None
    return None


def server_key(message: Message, method: str | None = None) -> Key:
    """The key of the server transaction `message` belongs to (§17.2.3).

    `method` overrides the method (from the CSeq); an ACK counts as its INVITE. For a
    response the key is that of the request it answers, since a response copies the
    request's Via, From, Call-ID and CSeq (§8.2.6.2).

    Raises:
        IndexError: the message has no Via (the parser never yields one).
    """
    via = message.via[0]
    if method is None:
        method = message.cseq.method
        if method == "ACK":
            method = "INVITE"
    branch = _branch(via)
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        # "the branch parameter in the request is equal to the one in the top Via header
        # field of the request that created the transaction", "the sent-by value in the
        # top Via of the request is equal to the one in the request that created the
        # transaction", and "the method of the request matches the one that created the
        # transaction, except for ACK".
        return (branch, via.host.lower(), via.port, method)
    # RFC 2543 fallback: the parts carried by responses too; Request-URI and To tag are
    # compared on the transactions found under the key (`_matches_2543`).
    return ("", via, message.call_id, message.cseq.seq, method, message.from_.tag)


def _matches_2543(tx: ServerTransaction, request: Request) -> bool:
    """The Request-URI and To tag checks of the RFC 2543 matching rules (§17.2.3)."""
    if request.uri != tx.request.uri:
        return False
    if request.method == "ACK" and tx.request.method == "INVITE":
        # "the To tag of the ACK matches the To tag of the response sent by the server
        # transaction"
        sent = tx.last_response
        return sent is not None and request.to.tag == sent.to.tag
    return request.to.tag == tx.request.to.tag


class TransactionLayer:
    """Every transaction of one SIP element, their matching and their timers."""

    def __init__(self, timers: Timers = Timers()) -> None:  # noqa: B008 - frozen, shared
        self.timers = timers
        self._clients: dict[Key, ClientTransaction] = {}
        self._servers: dict[Key, ServerTransaction] = {}
        # RFC 2543 transactions: several may share a key (they differ in Request-URI or
        # To tag, which responses do not carry), so each key holds a list.
        self._legacy: dict[Key, list[ServerTransaction]] = {}
        # Live transactions by peer, so a transport error does not scan them all.
        self._by_peer: dict[Peer, dict[Transaction, None]] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = 0
        self._stale = 0
        # Unanswered non-INVITE server transactions, current and previous generation,
        # and when the previous one is swept.
        self._waiting: dict[Transaction, None] = {}
        self._waited: dict[Transaction, None] = {}
        self._sweep_at: float | None = None

    def __len__(self) -> int:
        """The number of live (not yet terminated) transactions."""
        return len(self._clients) + len(self._servers) + sum(map(len, self._legacy.values()))

    # -- input from the transport ---------------------------------------------------

    def receive(self, message: Message, peer: Peer, now: float) -> list[Action]:
        """Feed a message the transport received from `peer`."""
        if isinstance(message, Request):
            return self._receive_request(message, peer, now)
        return self._receive_response(message, peer, now)

    def _receive_request(self, request: Request, peer: Peer, now: float) -> list[Action]:
        key = server_key(request)
        tx = self._servers.get(key) if key[0] else self._find_legacy(key, request)
        if tx is not None:
            actions = tx.on_request(request, peer, now)
            self._settle(tx)
            return actions
        if request.method == "ACK":
            # An ACK for a 2xx is its own transaction, owned by the UAS core (§17.2.3).
            return [Deliver(request, peer, None)]
        tx = ServerTransaction(request, peer, self.timers, key, now)
        if key[0]:
            self._servers[key] = tx
        else:
            self._legacy.setdefault(key, []).append(tx)
        self._add_peer(tx)
        if tx.request.method == "INVITE":
            self._schedule(tx)
        else:
            self._waiting[tx] = None
            if self._sweep_at is None:
                self._sweep_at = now + 64 * self.timers.t1
        return [Deliver(request, peer, tx)]

    def _receive_response(self, response: Response, peer: Peer, now: float) -> list[Action]:
        branch = _branch(response.via[0]) if response.via else None
        tx = self._clients.get((branch, response.cseq.method)) if branch else None
        if tx is None:
            if response.cseq.method == "INVITE" and 200 <= response.status < 300:
                return [Deliver(response, peer, None)]
            # RFC 6026, replacing the §18.1.2 text: "any element other than a stateless
            # proxy MUST silently discard the response".
            log.debug("dropping unmatched %s (Call-ID %s)", response.status, response.call_id)
            return []
        actions = tx.on_response(response, peer, now)
        self._settle(tx)
        return actions

    def transport_error(self, peer: Peer, now: float) -> list[Action]:
        """The transport could not send to `peer` (ICMP error, connection refused or reset).

        Every transaction with that peer and a message in flight fails (§17.1.4, §17.2.4).
        """
        actions: list[Action] = []
        for tx in list(self._by_peer.get(peer, ())):
            actions.extend(tx.on_transport_error())
            self._settle(tx)
        return actions

    # -- input from the transaction user --------------------------------------------

    def send_request(
        self, request: Request, peer: Peer, now: float
    ) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction for `request` towards `peer`.

        Raises:
            ValueError: the request is an ACK (an ACK for a 2xx is sent outside any
                transaction, §17), its top Via branch lacks the "z9hG4bK" cookie, or a
                live transaction already has that branch and method.
        """
        if request.method == "ACK":
            raise ValueError("an ACK for a 2xx is sent without a transaction (RFC 3261 §17)")
        branch = request.via[0].branch if request.via else None
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError(f"top Via branch {branch!r} lacks the z9hG4bK magic cookie")
        key: Key = (branch, request.cseq.method)
        if key in self._clients:
            raise ValueError(f"a client transaction with branch {branch} is already running")
        tx = ClientTransaction(request, peer, self.timers, key, now)
        self._clients[key] = tx
        self._add_peer(tx)
        self._schedule(tx)
        return tx, [Send(request, peer)]

    def send_response(self, response: Response, now: float) -> list[Action]:
        """Send a response from the TU through the server transaction it answers.

        A response matching no live transaction is logged and dropped.
        """
        key = server_key(response)
        if key[0]:
            tx = self._servers.get(key)
        else:
            # Responses carry no Request-URI: prefer the request with the response's To
            # tag, then one without a To tag (the TU added one), then the only candidate.
            tx = self._find_legacy_answered(self._legacy.get(key, []), response.to.tag)
        if tx is None:
            log.warning(
                "no server transaction for %s %s (Call-ID %s)",
                response.status,
                response.cseq.method,
                response.call_id,
            )
            return []
        actions = tx.on_response(response, now)
        self._settle(tx)
        return actions

    def discard(self, tx: ServerTransaction) -> None:
        """Forget a server transaction the TU will not answer (nothing is sent).

        A request not worth an answer (from a banned source), or one answered
        statelessly, leaves no state behind: its retransmissions create a transaction
        again and meet the same fate.
        """
        if tx.state is not _TERMINATED:
            tx._terminate()
            self._settle(tx)

    def find_invite_for_cancel(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to, if it is still alive (§9.2).

        "the CANCEL ... matches the transaction to be cancelled" by the §17.2.3 rules with
        the method taken as INVITE.
        """
        key = server_key(cancel, "INVITE")
        tx = self._servers.get(key) if key[0] else self._find_legacy(key, cancel)
        if tx is None or tx.request.method != "INVITE":
            return None
        return tx

    @staticmethod
    def _find_legacy_answered(
        txs: list[ServerTransaction], tag: str | None
    ) -> ServerTransaction | None:
        for wanted in (tag, None):
            for tx in txs:
                if tx.request.to.tag == wanted:
                    return tx
        return txs[0] if len(txs) == 1 else None

    def _find_legacy(self, key: Key, request: Request) -> ServerTransaction | None:
        for tx in self._legacy.get(key, ()):
            if _matches_2543(tx, request):
                return tx
        return None

    # -- timers -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `on_timer` must next be called, or None when no timer runs."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2]._seq:
            heapq.heappop(heap)
            self._stale -= 1
        sweep = self._sweep_at
        if sweep is not None and not self._waiting and not self._waited:
            sweep = self._sweep_at = None  # everything was answered
        if not heap:
            return sweep
        return heap[0][0] if sweep is None or heap[0][0] < sweep else sweep

    def _sweep(self, now: float) -> None:
        """End the previous generation's unanswered transactions; start a new one."""
        for tx in list(self._waited):
            log.debug(
                "%s server transaction ends unanswered (Call-ID %s)",
                tx.request.method,
                tx.request.call_id,
            )
            tx._terminate()
            self._settle(tx)
        self._waited, self._waiting = self._waiting, {}
        self._sweep_at = now + 64 * self.timers.t1 if self._waited else None

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at `now`."""
        if self._sweep_at is not None and now >= self._sweep_at:
            self._sweep(now)
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, tx = heapq.heappop(heap)
            if seq != tx._seq:
                self._stale -= 1
                continue
            tx._seq = -1
            tx._wake = None
            actions.extend(tx.on_timer(now))
            self._settle(tx)
        return actions

    def _settle(self, tx: Transaction) -> None:
        """Forget a terminated transaction, or (re)arm its heap entry."""
        state = tx.state
        # Answered (or ended): no longer the sweep's business. (The value stored is
        # None, so pop answers 0 only when the transaction was not in that generation.)
        if (
            state is not _TRYING
            and state is not _PROCEEDING
            and self._waiting.pop(tx, 0) is not None
        ):
            self._waited.pop(tx, None)
        if state is _TERMINATED:
            # "Once the transaction is in the "Terminated" state, it MUST be destroyed
            # immediately."
            peers = self._by_peer.get(tx.peer)
            if peers is None or peers.pop(tx, True) is not None:
                return  # already forgotten
            if not peers:
                del self._by_peer[tx.peer]
            key = tx.key
            if isinstance(tx, ClientTransaction):
                del self._clients[key]
            elif key[0] or not isinstance(tx, ServerTransaction):
                del self._servers[key]
            else:
                txs = self._legacy[key]
                txs.remove(tx)
                if not txs:
                    del self._legacy[key]
            if tx._wake is not None:
                tx._seq = -1
                tx._wake = None
                self._stale += 1
            return
        self._schedule(tx)

    def _add_peer(self, tx: Transaction) -> None:
        peers = self._by_peer.get(tx.peer)
        if peers is None:
            peers = self._by_peer[tx.peer] = {}
        peers[tx] = None

    def _schedule(self, tx: Transaction) -> None:
        retransmit = tx.retransmit_at
        expire = tx.expire_at
        if retransmit is None:
            wake = expire
        elif expire is None or retransmit < expire:
            wake = retransmit
        else:
            wake = expire
        if wake == tx._wake:
            return
        if tx._wake is not None:
            self._stale += 1
        tx._wake = wake
        if wake is None:
            tx._seq = -1
            return
        self._seq += 1
        tx._seq = self._seq
        heapq.heappush(self._heap, (wake, self._seq, tx))
        if self._stale > _COMPACT_MIN and 2 * self._stale >= len(self._heap):
            self._heap = [entry for entry in self._heap if entry[1] == entry[2]._seq]
            heapq.heapify(self._heap)
            self._stale = 0
