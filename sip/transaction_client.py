"""Client transactions: RFC 3261 §17.1 as amended by RFC 6026 (§7.2 and its §17.1.1.2 text).

INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 5)::

    Calling --1xx--> Proceeding --1xx--> Proceeding         (pass to TU)
    Calling/Proceeding --2xx--> Accepted                    (pass to TU, Timer M)
    Calling/Proceeding --300-699--> Completed               (send ACK, pass to TU, Timer D)
    Calling --Timer A--> Calling                            (resend, A doubles)
    Calling --Timer B--> Terminated                         (TimedOut)
    Completed --300-699--> Completed                        (resend ACK, not to TU)
    Accepted --2xx--> Accepted                              (pass to TU)
    Completed --Timer D--> Terminated;  Accepted --Timer M--> Terminated
    Calling/Proceeding/Completed --transport error--> Terminated (TransportFailed)

non-INVITE client transaction (RFC 3261 Figure 6)::

    Trying --1xx--> Proceeding --1xx--> Proceeding          (pass to TU)
    Trying/Proceeding --200-699--> Completed                (pass to TU, Timer K)
    Trying --Timer E--> Trying                              (resend, E = min(2E, T2))
    Proceeding --Timer E--> Proceeding                      (resend, E = T2)
    Trying/Proceeding --Timer F or transport error--> Terminated (TimedOut/TransportFailed)
    Completed --Timer K--> Terminated
"""

from __future__ import annotations

import logging

from sip.headers import Headers
from sip.message import Request, Response
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

_CALLING = State.CALLING
_TRYING = State.TRYING
_PROCEEDING = State.PROCEEDING
_COMPLETED = State.COMPLETED
_ACCEPTED = State.ACCEPTED


def build_ack(request: Request, response: Response) -> Request:
    """Build the ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3).

    Not for 2xx: that ACK is the UAC core's, built per §13.2.2.4.
    """
    headers = request.headers
    # "The ACK MUST contain a single Via header field, and this MUST be equal to the
    # top Via header field of the original request."
    fields: list[tuple[str, str]] = [("Via", str(request.via[0])), ("Max-Forwards", "70")]
    # "If the INVITE request whose response is being acknowledged had Route header
    # fields, those header fields MUST appear in the ACK."
    fields.extend(("Route", value) for value in headers.get_all("Route"))
    # "Call-ID, From, and Request-URI ... equal to the values of those header fields in
    # the request"; "The To header field in the ACK MUST equal the To header field in the
    # response being acknowledged"; the CSeq number is the INVITE's, the method "ACK".
    fields.append(("From", headers.get("From") or str(request.from_)))
    fields.append(("To", response.headers.get("To") or str(response.to)))
    fields.append(("Call-ID", request.call_id))
    fields.append(("CSeq", f"{request.cseq.seq} ACK"))
    return Request("ACK", request.uri, Headers(fields))


class ClientTransaction(Transaction):
    """One client transaction: the request sent, its state and its timers.

    Created by `TransactionLayer.send_request`; the TU reads `state`, `request` and
    `last_response`, and hands it to nothing: the layer routes every event.
    """

    __slots__ = ("ack",)

    def __init__(self, request: Request, peer: Peer, timers: Timers, key: Key, now: float) -> None:
        invite = request.method == "INVITE"
        super().__init__(request, peer, timers, key, _CALLING if invite else _TRYING)
        #: The ACK sent for a 300-699 final response (INVITE only).
        self.ack: Request | None = None
        # §17.1.1.2: "If an unreliable transport is being used, the client transaction
        # MUST start timer A with a value of T1. If a reliable transport is being used,
        # the client transaction SHOULD NOT start timer A"; "For any transport, the
        # client transaction MUST start timer B with a value of 64*T1 seconds".
        # §17.1.2.2 says the same of timers E and F.
        if not self.reliable:
            self.retransmit_at = now + timers.t1
        self.expire_at = now + 64 * timers.t1

    def on_response(self, response: Response, peer: Peer, now: float) -> list[Action]:
        """Feed a response matched to this transaction (§17.1.3)."""
        if self.request.method == "INVITE":
            return self._invite_response(response, peer, now)
        return self._non_invite_response(response, peer, now)

    def _invite_response(self, response: Response, peer: Peer, now: float) -> list[Action]:
        status = response.status
        state = self.state
        if state is _CALLING or state is _PROCEEDING:
            self.last_response = response
            self.retransmit_at = None
            if status < 200:
                # §17.1.1.2: on a provisional response the transaction moves to
                # Proceeding and "SHOULD NOT retransmit the request any longer"; Timer B
                # only guards the Calling state.
                self.state = _PROCEEDING
                self.expire_at = None
                return [Deliver(response, peer, self)]
            if status < 300:
                # RFC 6026 §7.2: "If a 2xx response is received while the client INVITE
                # state machine is in the "Calling" or "Proceeding" states, it MUST
                # transition to the "Accepted" state, pass the 2xx response to the TU,
                # and set Timer M to 64*T1."
                self.state = _ACCEPTED
                self.expire_at = now + self.timers.m
                return [Deliver(response, peer, self)]
            # §17.1.1.2: "the client transaction MUST transition to the "Completed"
            # state", "MUST pass the received response up to the TU, and the client
            # transaction MUST generate an ACK request"; Timer D is 0 when reliable.
            self.state = _COMPLETED
            self.ack = build_ack(self.request, response)
            actions: list[Action] = [Send(self.ack, self.peer), Deliver(response, peer, self)]
            if self.reliable or self.timers.d == 0:
                self._terminate()
            else:
                self.expire_at = now + self.timers.d
            return actions
        if state is _COMPLETED and status >= 300 and self.ack is not None:
            # "Any retransmissions of the final response that are received while in the
            # "Completed" state MUST cause the ACK to be re-passed to the transport layer
            # for retransmission, but the newly received response MUST NOT be passed up
            # to the TU."
            return [Send(self.ack, self.peer)]
        if state is _ACCEPTED and 200 <= status < 300:
            # RFC 6026 §7.2: "A 2xx response received while in the "Accepted" state MUST
            # be passed to the TU and the machine remains in the "Accepted" state."
            return [Deliver(response, peer, self)]
        log.debug(
            "INVITE client transaction in %s absorbs %s (Call-ID %s)",
            state.value,
            status,
            response.call_id,
        )
        return []

    def _non_invite_response(self, response: Response, peer: Peer, now: float) -> list[Action]:
        state = self.state
        if state is not _TRYING and state is not _PROCEEDING:
            # §17.1.2.2: "Once the client transaction enters the "Completed" state, it
            # MUST set Timer K"; responses arriving then are retransmissions: absorbed.
            log.debug(
                "%s client transaction in %s absorbs %s (Call-ID %s)",
                self.request.method,
                state.value,
                response.status,
                response.call_id,
            )
            return []
        self.last_response = response
        if response.status < 200:
            # "If a provisional response is received while in the "Trying" state, the
            # response MUST be passed to the TU, and then the client transaction SHOULD
            # move to the "Proceeding" state."
            self.state = _PROCEEDING
            return [Deliver(response, peer, self)]
        # "If a final response (status codes 200-699) is received while in the "Trying"
        # [or "Proceeding"] state, the response MUST be passed to the TU, and the client
        # transaction MUST transition to the "Completed" state."  Timer K: T4 / 0.
        self.state = _COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self.retransmit_at = None
            self.expire_at = now + self.timers.k
        return [Deliver(response, peer, self)]

    def on_timer(self, now: float) -> list[Action]:
        """Fire whichever of this transaction's timers are due at `now`."""
        state = self.state
        if self.expire_at is not None and now >= self.expire_at:
            self._terminate()
            if state is _CALLING or state is _TRYING or state is _PROCEEDING:
                # Timer B: "If the client transaction is still in the "Calling" state
                # when timer B fires, the client transaction SHOULD inform the TU that a
                # timeout has occurred."  Timer F likewise for Trying and Proceeding.
                log.info(
                    "%s client transaction timed out (Call-ID %s)",
                    self.request.method,
                    self.request.call_id,
                )
                return [TimedOut(self)]
            return []  # Timers D, K, M: "transition to the "Terminated" state"
        if self.retransmit_at is None or now < self.retransmit_at:
            return []
        if state is _CALLING:
            # Timer A: "MUST reset the timer with a value of 2*T1" and so on, doubling.
            self.interval *= 2
        elif state is _TRYING:
            # Timer E: "reset with a value of MIN(2*T1, T2)", then MIN(4*T1, T2) ...
            self.interval = min(2 * self.interval, self.timers.t2)
        elif state is _PROCEEDING and self.request.method != "INVITE":
            # "If Timer E fires while in the "Proceeding" state, the request MUST be
            # passed to the transport layer for retransmission, and Timer E MUST be reset
            # with a value of T2 seconds."
            self.interval = self.timers.t2
        else:
            self.retransmit_at = None
            return []
        self.retransmit_at = now + self.interval
        return [Send(self.request, self.peer)]

    def on_transport_error(self) -> list[Action]:
        """The transport failed to reach this transaction's peer (§17.1.4)."""
        state = self.state
        if state is _ACCEPTED or (state is _COMPLETED and self.request.method != "INVITE"):
            return []  # nothing of ours is in flight; let the timer run out
        # "the client transaction SHOULD inform the TU that a transport failure has
        # occurred, and the client transaction SHOULD transition directly to the
        # "Terminated" state."
        self._terminate()
        return [TransportFailed(self)]
