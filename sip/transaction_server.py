"""Server transactions: RFC 3261 §17.2 as amended by RFC 6026 (§7.1 and its §17.2.1 text).

INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 7)::

    Proceeding --INVITE--> Proceeding          (resend last provisional, or send 100)
    Proceeding --Trying delay, TU silent--> Proceeding        (send 100 Trying)
    Proceeding --1xx from TU--> Proceeding     (send)
    Proceeding --2xx from TU--> Accepted       (send, Timer L)
    Proceeding --300-699 from TU--> Completed  (send, Timer G if unreliable, Timer H)
    Completed --INVITE or Timer G--> Completed (resend final; G doubles up to T2)
    Completed --ACK--> Confirmed               (Timer I: T4 / 0)
    Completed --Timer H--> Terminated          (TimedOut)
    Confirmed --ACK--> Confirmed (absorb);  Confirmed --Timer I--> Terminated
    Accepted --INVITE--> Accepted (absorb);  Accepted --ACK--> Accepted (pass to TU)
    Accepted --2xx from TU--> Accepted (send);  Accepted --Timer L--> Terminated
    Proceeding/Completed/Accepted --transport error--> same state (TransportFailed)
    Proceeding --Timer C, no final from TU--> Terminated   (nothing sent)

non-INVITE server transaction (RFC 3261 Figure 8)::

    Trying --request--> Trying (absorb)
    Trying/Proceeding --1xx from TU--> Proceeding           (send)
    Proceeding --request--> Proceeding         (resend last provisional)
    Trying/Proceeding --200-699 from TU--> Completed        (send, Timer J: 64*T1 / 0)
    Completed --request--> Completed           (resend final); other finals discarded
    Completed --Timer J--> Terminated
    Proceeding/Completed --transport error--> Terminated (TransportFailed)
    Trying/Proceeding --64..128*T1, no final from TU--> Terminated   (layer's sweep)

The two "no final from TU" ends are this library's, not the RFC's: every state ends
(a TU that never answers, or a request that is not worth answering, must not hold
memory for ever). After 64*T1 the client's Timer F has given up on a non-INVITE
request (the layer's sweep ends it between 64*T1 and 128*T1); an INVITE gets Timer C.
"""

from __future__ import annotations

import logging

from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.transaction_base import (
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

log = logging.getLogger(__name__)

_TRYING = State.TRYING
_PROCEEDING = State.PROCEEDING
_COMPLETED = State.COMPLETED
_CONFIRMED = State.CONFIRMED
_ACCEPTED = State.ACCEPTED


def make_trying(request: Request) -> Response:
    """The 100 (Trying) an INVITE server transaction sends on its own (§17.2.1, §8.2.6.1).

    No To tag: "the insertion of tags in the To header field of the response (when none
    was present in the request) is downgraded from MAY to SHOULD NOT".
    """
    timestamp = request.headers.get("Timestamp")
    # §8.2.6.1: "If a Timestamp header field is present in the request, the UAS MUST copy
    # it into the 100 (Trying) response."
    extra = [("Timestamp", timestamp)] if timestamp is not None else []
    return make_response(request, 100, "Trying", headers=extra)


class ServerTransaction(Transaction):
    """One server transaction: the request received, its state, timers and last response.

    Created by `TransactionLayer.receive` for a new request and handed to the TU in
    `Deliver`; the TU answers through `TransactionLayer.send_response`.
    """

    __slots__ = ()

    def __init__(self, request: Request, peer: Peer, timers: Timers, key: Key, now: float) -> None:
        invite = request.method == "INVITE"
        super().__init__(request, peer, timers, key, _PROCEEDING if invite else _TRYING)
        if invite:
            # §17.2.1: "The server transaction MUST generate a 100 (Trying) response
            # unless it knows that the TU will generate a provisional or final response
            # within 200 ms".  We give the TU that long, then send it ourselves.
            self.retransmit_at = now + timers.trying
            self.expire_at = now + timers.c
        # A non-INVITE transaction waiting for its answer has no timer of its own: the
        # layer's unanswered-transaction sweep ends it (`TransactionLayer`).

    def on_request(self, request: Request, peer: Peer, now: float) -> list[Action]:
        """Feed a retransmission of the request, or an ACK, matched to this transaction."""
        if request.method == "ACK":
            return self._ack(request, peer, now)
        state = self.state
        last = self.last_response
        if self.request.method == "INVITE":
            if state is _PROCEEDING:
                # "If a request retransmission is received while in the "Proceeding"
                # state, the most recent provisional response that was received from the
                # TU MUST be passed to the transport layer for retransmission."  None yet:
                # the peer is retransmitting, so quench it with 100 Trying now.
                if last is None:
                    last = self.last_response = make_trying(self.request)
                    self.retransmit_at = None
                return [Send(last, self.peer)]
            if state is _COMPLETED and last is not None:
                # "while in the "Completed" state, if a request retransmission is
                # received, the server SHOULD pass the response to the transport for
                # retransmission."
                return [Send(last, self.peer)]
            # Accepted (RFC 6026: "The purpose of the "Accepted" state is to absorb
            # retransmissions of an accepted INVITE request ... They are not passed up to
            # the TU") and Confirmed: absorb.
        elif state is not _TRYING and last is not None:
            # §17.2.2: in Proceeding "the most recently sent provisional response MUST be
            # passed to the transport layer"; in Completed "the server transaction MUST
            # pass the final response to the transport layer for retransmission".
            return [Send(last, self.peer)]
        log.debug(
            "%s server transaction in %s absorbs a retransmission (Call-ID %s)",
            self.request.method,
            state.value,
            request.call_id,
        )
        return []

    def _ack(self, ack: Request, peer: Peer, now: float) -> list[Action]:
        state = self.state
        if state is _COMPLETED:
            # "If an ACK is received while the server transaction is in the "Completed"
            # state, the server transaction MUST transition to the "Confirmed" state."
            # Timer I: "T4 seconds for unreliable transports, and zero seconds for
            # reliable transports".
            self.state = _CONFIRMED
            if self.reliable:
                self._terminate()
            else:
                self.retransmit_at = None
                self.expire_at = now + self.timers.i
            return []
        if state is _ACCEPTED:
            # RFC 6026 Figure 7: "ACK / to TU" in "Accepted" (it acknowledges the 2xx,
            # which is the TU's).
            return [Deliver(ack, peer, self)]
        return []  # Confirmed: ACK retransmissions are absorbed.

    def on_response(self, response: Response, now: float) -> list[Action]:
        """Send a response from the TU through this transaction."""
        status = response.status
        state = self.state
        if self.request.method == "INVITE":
            if state is _PROCEEDING:
                self.last_response = response
                self.retransmit_at = None
                if status >= 300:
                    # "the response MUST be passed to the transport layer for
                    # transmission, and the state machine MUST enter the "Completed"
                    # state.  For unreliable transports, timer G is set to fire in T1
                    # seconds"; "timer H MUST be set to fire in 64*T1 seconds for all
                    # transports."
                    self.state = _COMPLETED
                    if not self.reliable:
                        self.interval = self.timers.t1
                        self.retransmit_at = now + self.interval
                    self.expire_at = now + self.timers.h
                elif status < 200:
                    self.expire_at = now + self.timers.c  # Timer C restarts
                else:
                    # RFC 6026: the 2xx "is not retransmitted by the server transaction;
                    # retransmissions of 2xx responses are handled by the TU. The server
                    # transaction MUST then transition to the "Accepted" state", and
                    # "Timer L MUST be set to fire in 64*T1 for all transports".
                    self.state = _ACCEPTED
                    self.expire_at = now + self.timers.l
                return [Send(response, self.peer)]
            if state is _ACCEPTED and 200 <= status < 300:
                # RFC 6026: "While in the "Accepted" state, if the TU passes a 2xx
                # response, the server transaction MUST pass the response to the
                # transport layer for transmission."
                return [Send(response, self.peer)]
        elif state is _TRYING or state is _PROCEEDING:
            self.last_response = response
            if status < 200:
                self.state = _PROCEEDING
            else:
                # "the server transaction MUST enter the "Completed" state" and "MUST set
                # Timer J to fire in 64*T1 seconds for unreliable transports, and zero
                # seconds for reliable transports."
                self.state = _COMPLETED
                if self.reliable:
                    self._terminate()
                else:
                    self.expire_at = now + self.timers.j
            return [Send(response, self.peer)]
        # "Any other final responses passed by the TU to the server transaction MUST be
        # discarded while in the "Completed" state."
        log.warning(
            "%s server transaction in %s discards a %s from the TU (Call-ID %s)",
            self.request.method,
            state.value,
            status,
            response.call_id,
        )
        return []

    def on_timer(self, now: float) -> list[Action]:
        """Fire whichever of this transaction's timers are due at `now`."""
        state = self.state
        if self.expire_at is not None and now >= self.expire_at:
            self._terminate()
            if state is _COMPLETED and self.request.method == "INVITE":
                # Timer H: "the server transaction MUST transition to the "Terminated"
                # state, and MUST indicate to the TU that a transaction failure has
                # occurred."
                log.info("no ACK for %s (Call-ID %s)", self.last_response, self.request.call_id)
                return [TimedOut(self)]
            if state is _TRYING or state is _PROCEEDING:
                log.debug(
                    "%s server transaction ends unanswered (Call-ID %s)",
                    self.request.method,
                    self.request.call_id,
                )
            return []  # Timers I, J, L, and C or 64*T1 without a final response
        if self.retransmit_at is None or now < self.retransmit_at:
            return []
        if state is _PROCEEDING:
            self.retransmit_at = None
            if self.last_response is not None:
                return []
            self.last_response = make_trying(self.request)
            return [Send(self.last_response, self.peer)]
        if state is _COMPLETED and self.last_response is not None:
            # Timer G: "reset with a value that doubles, unless that value exceeds T2, in
            # which case it is reset with the value of T2."
            self.interval = min(2 * self.interval, self.timers.t2)
            self.retransmit_at = now + self.interval
            return [Send(self.last_response, self.peer)]
        self.retransmit_at = None
        return []

    def on_transport_error(self) -> list[Action]:
        """The transport failed to reach this transaction's peer (§17.2.4, RFC 6026)."""
        state = self.state
        if self.request.method == "INVITE":
            if state is _PROCEEDING or state is _COMPLETED or state is _ACCEPTED:
                # RFC 6026 Figure 7: "Transport Err. / Inform TU" loops back to the same
                # state, so retransmitted INVITEs are still absorbed (RFC 6026 §7.1) and
                # Timers H and L still end the transaction.
                return [TransportFailed(self)]
            return []  # Confirmed: nothing in flight
        if state is _PROCEEDING or state is _COMPLETED:
            # §17.2.4: "the server transaction SHOULD inform the TU that a failure has
            # occurred, and SHOULD transition to the terminated state."
            self._terminate()
            return [TransportFailed(self)]
        return []  # Trying: nothing sent yet
