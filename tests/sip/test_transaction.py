"""sip.transaction: the four RFC 3261 §17 machines with RFC 6026, matching, timers, link.

Every test drives the pure layer with a fake clock: `now` is whatever the test says.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sip.message import Message, Request, Response, make_response, parse_message
from sip.peer import Peer
from sip.transaction import (
    Action,
    ClientTransaction,
    Deliver,
    Send,
    ServerTransaction,
    State,
    TimedOut,
    Timers,
    TransactionLayer,
    TransportFailed,
    build_ack,
)
from tests.sip.link import Link

UDP = Peer("UDP", "192.0.2.1", 5060)
TCP = Peer("TCP", "192.0.2.1", 5060)
OTHER = Peer("UDP", "192.0.2.9", 5060)
BRANCH = "z9hG4bK776asdhds"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = BRANCH,
    sent_by: str = "192.0.2.1:5060",
    transport: str = "UDP",
    uri: str = "sip:bob@biloxi.example",
    to_tag: str | None = None,
    from_tag: str = "1928301774",
    call_id: str = "a84b4c76e66710@pc33",
    cseq: int = 314159,
    cseq_method: str | None = None,
    extra_via: tuple[str, ...] = (),
    routes: tuple[str, ...] = (),
    timestamp: str | None = None,
) -> Request:
    """A request parsed from text, so tests see what the wire would give."""
    via = f"Via: SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        via,
        *(f"Via: {v}" for v in extra_via),
        "Max-Forwards: 70",
        *(f"Route: {r}" for r in routes),
        f"From: Alice <sip:alice@atlanta.example>;tag={from_tag}",
        "To: Bob <sip:bob@biloxi.example>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        *([f"Timestamp: {timestamp}"] if timestamp else []),
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def answer(req: Request, status: int, to_tag: str | None = "a6c85cf") -> Response:
    return make_response(req, status, to_tag=None if status == 100 else to_tag)


def serve(layer: TransactionLayer, req: Request, peer: Peer = UDP) -> ServerTransaction:
    """Feed a new request at time 0; it must reach the TU with a new server transaction."""
    actions = layer.receive(req, peer, 0.0)
    assert len(actions) == 1
    deliver = actions[0]
    assert isinstance(deliver, Deliver) and deliver.message is req and deliver.peer == peer
    assert isinstance(deliver.transaction, ServerTransaction)
    return deliver.transaction


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, Action]]:
    """Call on_timer at each deadline up to `until`; every action with its time."""
    out: list[tuple[float, Action]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        out.extend((deadline, action) for action in layer.on_timer(deadline))
    return out


def send_times(events: list[tuple[float, Action]]) -> list[float]:
    return [when for when, action in events if isinstance(action, Send)]


# -- Timers -----------------------------------------------------------------------------


def test_timers_defaults_and_derived_values() -> None:
    t = Timers()
    assert (t.t1, t.t2, t.t4, t.d, t.trying) == (0.5, 4.0, 5.0, 32.0, 0.2)
    assert (t.a, t.b, t.e, t.f, t.g, t.h) == (0.5, 32.0, 0.5, 32.0, 0.5, 32.0)
    assert (t.i, t.j, t.k, t.l, t.m) == (5.0, 32.0, 5.0, 32.0, 32.0)


@pytest.mark.parametrize("kwargs", [{"t1": 0.0}, {"t2": 0.1}, {"t4": -1.0}, {"d": -1.0}])
def test_timers_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Timers(**kwargs)


# -- INVITE client transaction ------------------------------------------------------------


def test_invite_client_timer_a_doubles_and_timer_b_times_out() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, actions = layer.send_request(invite, UDP, 0.0)
    assert actions == [Send(invite, UDP)]
    assert tx.state is State.CALLING and tx.is_invite
    assert layer.next_deadline() == 0.5
    events = run_timers(layer, 100.0)
    assert send_times(events) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(a == Send(invite, UDP) for _, a in events[:-1])
    assert events[-1] == (32.0, TimedOut(tx))
    assert tx.state is State.TERMINATED and len(layer) == 0
    assert layer.next_deadline() is None


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    layer = TransactionLayer()
    tx, _ = layer.send_request(request(transport="TCP"), TCP, 10.0)
    assert layer.next_deadline() == 42.0
    assert run_timers(layer, 100.0) == [(42.0, TimedOut(tx))]


def test_invite_client_provisional_stops_retransmission_and_timer_b() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, _ = layer.send_request(invite, UDP, 0.0)
    run_timers(layer, 1.0)
    ringing = answer(invite, 180)
    assert layer.receive(ringing, UDP, 1.0) == [Deliver(ringing, UDP, tx)]
    assert tx.state is State.PROCEEDING and tx.last_response is ringing
    assert layer.next_deadline() is None
    trying = answer(invite, 100)
    assert layer.receive(trying, UDP, 2.0) == [Deliver(trying, UDP, tx)]
    assert tx.state is State.PROCEEDING


def test_invite_client_non_2xx_sends_ack_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, _ = layer.send_request(invite, UDP, 0.0)
    busy = answer(invite, 486)
    actions = layer.receive(busy, UDP, 0.2)
    ack = tx.ack
    assert ack is not None
    assert actions == [Send(ack, UDP), Deliver(busy, UDP, tx)]
    assert tx.state is State.COMPLETED
    # A retransmitted 486 gets the same ACK again and is not passed to the TU.
    assert layer.receive(answer(invite, 486), UDP, 1.0) == [Send(ack, UDP)]
    # Timer D (32 s over UDP) ends it quietly.
    assert layer.next_deadline() == pytest.approx(32.2)
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0


def test_invite_client_non_2xx_over_tcp_terminates_at_once() -> None:
    layer = TransactionLayer()
    invite = request(transport="TCP")
    tx, _ = layer.send_request(invite, TCP, 0.0)
    actions = layer.receive(answer(invite, 603), TCP, 0.1)
    assert [type(a) for a in actions] == [Send, Deliver]
    assert tx.state is State.TERMINATED and len(layer) == 0


def test_ack_for_non_2xx_is_built_per_17_1_1_3() -> None:
    invite = request(
        extra_via=("SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKproxy",),
        routes=("<sip:p1.example;lr>", "<sip:p2.example;lr>"),
    )
    busy = answer(invite, 486, to_tag="xyz")
    ack = build_ack(invite, busy)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.via == (invite.via[0],)
    assert ack.call_id == invite.call_id
    assert ack.from_ == invite.from_
    assert ack.to == busy.to and ack.to.tag == "xyz"
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert ack.headers.get("Max-Forwards") == "70"
    assert ack.body == b""
    # It survives the wire unchanged.
    assert parse_message(bytes(ack)) == ack


def test_invite_client_2xx_enters_accepted_and_passes_every_2xx() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, _ = layer.send_request(invite, UDP, 0.0)
    ok = answer(invite, 200)
    assert layer.receive(ok, UDP, 1.0) == [Deliver(ok, UDP, tx)]
    assert tx.state is State.ACCEPTED
    assert layer.next_deadline() == 33.0  # Timer M = 64*T1, no more Timer A
    again = answer(invite, 200)
    assert layer.receive(again, UDP, 5.0) == [Deliver(again, UDP, tx)]
    # A 2xx from another fork (other To tag) goes up too; non-2xx are absorbed.
    forked = answer(invite, 200, to_tag="fork2")
    assert layer.receive(forked, UDP, 6.0) == [Deliver(forked, UDP, tx)]
    assert layer.receive(answer(invite, 486), UDP, 7.0) == []
    assert layer.receive(answer(invite, 180), UDP, 7.0) == []
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0
    # After Timer M a stray 2xx retransmission goes to the TU with no transaction.
    late = answer(invite, 200)
    assert layer.receive(late, UDP, 40.0) == [Deliver(late, UDP, None)]


# -- non-INVITE client transaction --------------------------------------------------------


def test_non_invite_client_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx, actions = layer.send_request(options, UDP, 0.0)
    assert actions == [Send(options, UDP)]
    assert tx.state is State.TRYING and not tx.is_invite
    events = run_timers(layer, 100.0)
    assert send_times(events) == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert events[-1] == (32.0, TimedOut(tx))
    assert len(layer) == 0


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx, _ = layer.send_request(options, UDP, 0.0)
    assert send_times(run_timers(layer, 1.0)) == [0.5]
    trying = answer(options, 100)
    assert layer.receive(trying, UDP, 1.0) == [Deliver(trying, UDP, tx)]
    assert tx.state is State.PROCEEDING
    events = run_timers(layer, 100.0)
    assert send_times(events) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert events[-1] == (32.0, TimedOut(tx))


def test_non_invite_client_final_then_timer_k() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx, _ = layer.send_request(options, UDP, 0.0)
    ok = answer(options, 200)
    assert layer.receive(ok, UDP, 0.7) == [Deliver(ok, UDP, tx)]
    assert tx.state is State.COMPLETED and tx.last_response is ok
    assert layer.receive(answer(options, 200), UDP, 1.0) == []  # retransmission absorbed
    assert layer.next_deadline() == pytest.approx(5.7)  # Timer K = T4, no Timer E
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0
    # After termination the same response matches nothing and is dropped.
    assert layer.receive(answer(options, 200), UDP, 9.0) == []


def test_non_invite_client_over_tcp_terminates_on_final() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS", transport="TCP")
    tx, _ = layer.send_request(options, TCP, 0.0)
    assert layer.next_deadline() == 32.0
    layer.receive(answer(options, 404), TCP, 0.1)
    assert tx.state is State.TERMINATED and layer.next_deadline() is None


# -- INVITE server transaction ------------------------------------------------------------


def test_invite_server_sends_100_trying_when_tu_is_slow() -> None:
    layer = TransactionLayer()
    invite = request(timestamp="54")
    tx = serve(layer, invite)
    assert tx.state is State.PROCEEDING
    assert layer.next_deadline() == 0.2
    [(when, send)] = run_timers(layer, 1.0)
    assert when == 0.2 and isinstance(send, Send) and send.peer == UDP
    trying = send.message
    assert isinstance(trying, Response)
    assert (trying.status, trying.to.tag) == (100, None)
    assert trying.headers.get("Timestamp") == "54"
    # A retransmitted INVITE gets the same 100 again and does not reach the TU.
    assert layer.receive(request(timestamp="54"), UDP, 0.5) == [Send(trying, UDP)]


def test_invite_server_no_100_when_tu_answers_in_time() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, UDP, 0.0)
    ringing = answer(invite, 180)
    assert layer.send_response(ringing, 0.1) == [Send(ringing, UDP)]
    assert layer.next_deadline() == 0.1 + Timers().c  # no 100; only Timer C runs
    assert layer.receive(request(), UDP, 0.5) == [Send(ringing, UDP)]


def test_invite_server_retransmission_before_any_response_sends_100_at_once() -> None:
    layer = TransactionLayer()
    layer.receive(request(), UDP, 0.0)
    [send] = layer.receive(request(), UDP, 0.1)
    assert isinstance(send, Send) and isinstance(send.message, Response)
    assert send.message.status == 100
    # The delayed 100 is no longer needed; only Timer C runs.
    assert layer.next_deadline() == Timers().c


def test_invite_server_non_2xx_timer_g_and_timer_h() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = serve(layer, invite)
    busy = answer(invite, 486)
    assert layer.send_response(busy, 0.1) == [Send(busy, UDP)]
    assert isinstance(tx, ServerTransaction) and tx.state is State.COMPLETED
    # A retransmitted INVITE gets the final response again.
    assert layer.receive(request(), UDP, 0.3) == [Send(busy, UDP)]
    events = run_timers(layer, 100.0)
    times = [round(t - 0.1, 9) for t in send_times(events)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events[-1] == (pytest.approx(32.1), TimedOut(tx))
    assert len(layer) == 0


def test_invite_server_ack_confirms_then_timer_i() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = serve(layer, invite)
    busy = answer(invite, 486)
    layer.send_response(busy, 0.0)
    ack = build_ack(invite, busy)
    assert layer.receive(ack, UDP, 0.7) == []  # absorbed, not passed to the TU
    assert isinstance(tx, ServerTransaction) and tx.state is State.CONFIRMED
    assert layer.next_deadline() == pytest.approx(5.7)  # Timer I = T4; Timer G stopped
    assert layer.receive(ack, UDP, 1.0) == []  # ACK retransmission absorbed
    assert layer.receive(request(), UDP, 1.0) == []  # so is a late INVITE retransmission
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0


def test_invite_server_over_tcp_no_timer_g_and_ack_ends_it() -> None:
    layer = TransactionLayer()
    invite = request(transport="TCP")
    tx = serve(layer, invite, TCP)
    busy = answer(invite, 404)
    layer.send_response(busy, 0.0)
    assert layer.next_deadline() == 32.0  # Timer H only
    layer.receive(build_ack(invite, busy), TCP, 0.1)
    assert tx.state is State.TERMINATED and len(layer) == 0


def test_invite_server_2xx_enters_accepted() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = serve(layer, invite)
    ok = answer(invite, 200)
    assert layer.send_response(ok, 0.1) == [Send(ok, UDP)]
    assert isinstance(tx, ServerTransaction) and tx.state is State.ACCEPTED
    assert layer.next_deadline() == pytest.approx(32.1)  # Timer L; no Timer G for 2xx
    # INVITE retransmissions are absorbed: not a new transaction, not to the TU.
    assert layer.receive(request(), UDP, 0.5) == []
    # The TU retransmits its 2xx itself, through the transaction.
    assert layer.send_response(ok, 0.6) == [Send(ok, UDP)]
    # Non-2xx from the TU are discarded.
    assert layer.send_response(answer(invite, 500), 0.7) == []
    # An ACK matching the transaction goes to the TU with it.
    ack_same_branch = request("ACK", to_tag="a6c85cf")
    assert layer.receive(ack_same_branch, UDP, 0.8) == [Deliver(ack_same_branch, UDP, tx)]
    # The RFC 3261 ACK for a 2xx has its own branch: delivered with no transaction.
    ack = request("ACK", branch="z9hG4bKnewack", to_tag="a6c85cf")
    assert layer.receive(ack, UDP, 0.9) == [Deliver(ack, UDP, None)]
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0


# -- non-INVITE server transaction --------------------------------------------------------


def test_non_invite_server_trying_proceeding_completed_timer_j() -> None:
    layer = TransactionLayer()
    register = request("REGISTER", uri="sip:registrar.biloxi.example")
    tx = serve(layer, register)
    assert isinstance(tx, ServerTransaction) and tx.state is State.TRYING
    assert layer.next_deadline() == 32.0  # no 100 Trying; 64*T1 until it must be answered
    again = request("REGISTER", uri="sip:registrar.biloxi.example")
    assert layer.receive(again, UDP, 0.5) == []  # Trying absorbs
    trying = answer(register, 100)
    assert layer.send_response(trying, 0.6) == [Send(trying, UDP)]
    assert tx.state is State.PROCEEDING
    assert layer.receive(again, UDP, 1.5) == [Send(trying, UDP)]
    ok = answer(register, 200)
    assert layer.send_response(ok, 2.0) == [Send(ok, UDP)]
    assert tx.state is State.COMPLETED
    assert layer.receive(again, UDP, 3.5) == [Send(ok, UDP)]
    assert layer.send_response(answer(register, 500), 3.6) == []  # later finals discarded
    assert layer.next_deadline() == 34.0  # Timer J = 64*T1
    assert run_timers(layer, 100.0) == []
    assert tx.state is State.TERMINATED and len(layer) == 0
    # The same request now is new.
    [late] = layer.receive(again, UDP, 40.0)
    assert isinstance(late, Deliver) and late.transaction is not tx


def test_non_invite_server_over_tcp_terminates_on_final() -> None:
    layer = TransactionLayer()
    bye = request("BYE", transport="TCP", to_tag="a6c85cf")
    tx = serve(layer, bye, TCP)
    layer.send_response(answer(bye, 200), 0.0)
    assert tx.state is State.TERMINATED and len(layer) == 0
    assert layer.next_deadline() is None


def test_send_response_without_transaction_is_dropped() -> None:
    layer = TransactionLayer()
    assert layer.send_response(answer(request("OPTIONS"), 200), 0.0) == []


# -- matching -----------------------------------------------------------------------------


def test_server_matching_uses_sent_by_and_method() -> None:
    layer = TransactionLayer()
    [first] = layer.receive(request("OPTIONS"), UDP, 0.0)
    [other_host] = layer.receive(request("OPTIONS", sent_by="192.0.2.9:5060"), OTHER, 0.0)
    [other_port] = layer.receive(request("OPTIONS", sent_by="192.0.2.1:5070"), UDP, 0.0)
    assert isinstance(first, Deliver) and isinstance(other_host, Deliver)
    assert isinstance(other_port, Deliver)
    assert len({id(first.transaction), id(other_host.transaction), id(other_port.transaction)}) == 3
    assert len(layer) == 3
    assert layer.receive(request("OPTIONS"), UDP, 0.1) == []  # a retransmission
    # Host names in sent-by compare without case.
    lower = request("OPTIONS", branch="z9hG4bKh", sent_by="pc33.example")
    upper = request("OPTIONS", branch="z9hG4bKh", sent_by="PC33.example")
    serve(layer, lower)
    assert layer.receive(upper, UDP, 0.1) == []


def test_cancel_is_its_own_transaction_and_finds_its_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    invite_tx = serve(layer, invite)
    cancel = request("CANCEL")
    cancel_tx = serve(layer, cancel)
    assert cancel_tx is not invite_tx and cancel_tx.request is cancel
    assert layer.find_invite_for_cancel(cancel) is invite_tx
    assert layer.find_invite_for_cancel(request("CANCEL", branch="z9hG4bKother")) is None
    # The TU answers both: 200 to the CANCEL, 487 to the INVITE.
    ok = answer(cancel, 200)
    assert layer.send_response(ok, 1.1) == [Send(ok, UDP)]
    terminated = answer(invite, 487)
    assert layer.send_response(terminated, 1.1) == [Send(terminated, UDP)]
    assert invite_tx.state is State.COMPLETED and cancel_tx.state is State.COMPLETED


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    old = {"branch": None, "from_tag": "t1"}
    invite = request(**old)  # type: ignore[arg-type]
    tx = serve(layer, invite)
    assert isinstance(tx, ServerTransaction)
    # The same request again is a retransmission.
    layer.send_response(answer(invite, 180), 0.1)
    [resent] = layer.receive(request(**old), UDP, 0.5)  # type: ignore[arg-type]
    assert isinstance(resent, Send) and isinstance(resent.message, Response)
    assert resent.message.status == 180
    # Another Request-URI, To tag, CSeq or Call-ID makes a new transaction.
    for changed in (
        {"uri": "sip:carol@biloxi.example"},
        {"to_tag": "zz"},
        {"cseq": 314160},
        {"call_id": "other@pc33"},
    ):
        [new] = layer.receive(request(**old, **changed), UDP, 0.6)  # type: ignore[arg-type]
        assert isinstance(new, Deliver) and new.transaction is not tx
    # CANCEL lookup without a cookie.
    cancel = request("CANCEL", **old)  # type: ignore[arg-type]
    assert layer.find_invite_for_cancel(cancel) is tx
    other_uri = request("CANCEL", uri="sip:x@y", **old)  # type: ignore[arg-type]
    assert layer.find_invite_for_cancel(other_uri) is None
    # The ACK matches when its To tag is that of the response sent.
    busy = answer(invite, 486, to_tag="srv")
    layer.send_response(busy, 1.0)
    wrong = request("ACK", to_tag="nope", **old)  # type: ignore[arg-type]
    assert layer.receive(wrong, UDP, 1.1) == [Deliver(wrong, UDP, None)]
    assert tx.state is State.COMPLETED
    assert layer.receive(request("ACK", to_tag="srv", **old), UDP, 1.2) == []  # type: ignore[arg-type]
    assert tx.state is State.CONFIRMED


def test_response_matching_needs_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, _ = layer.send_request(invite, UDP, 0.0)
    # Same branch, other CSeq method (the CANCEL's 200): not this transaction.
    cancel_ok = answer(request("CANCEL"), 200)
    assert layer.receive(cancel_ok, UDP, 0.1) == []
    # Other branch: a stray non-2xx is dropped, a stray INVITE 2xx goes up alone.
    stray = answer(request(branch="z9hG4bKelse"), 486)
    assert layer.receive(stray, UDP, 0.1) == []
    stray_ok = answer(request(branch="z9hG4bKelse"), 200)
    assert layer.receive(stray_ok, UDP, 0.1) == [Deliver(stray_ok, UDP, None)]
    assert tx.state is State.CALLING


def test_client_and_server_with_the_same_branch_do_not_mix() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    client, _ = layer.send_request(options, UDP, 0.0)
    serve(layer, options)  # looped back to us: a server transaction beside the client one
    ok = answer(options, 200)
    assert layer.send_response(ok, 0.1) == [Send(ok, UDP)]
    assert layer.receive(ok, UDP, 0.2) == [Deliver(ok, UDP, client)]


def test_send_request_refuses_ack_missing_cookie_and_duplicates() -> None:
    layer = TransactionLayer()
    with pytest.raises(ValueError, match="ACK"):
        layer.send_request(request("ACK"), UDP, 0.0)
    with pytest.raises(ValueError, match="magic cookie"):
        layer.send_request(request(branch="old1"), UDP, 0.0)
    layer.send_request(request(), UDP, 0.0)
    with pytest.raises(ValueError, match="already running"):
        layer.send_request(request(), UDP, 0.0)


def test_unmatched_ack_is_delivered_without_transaction() -> None:
    layer = TransactionLayer()
    ack = request("ACK", to_tag="a6c85cf")
    assert layer.receive(ack, UDP, 0.0) == [Deliver(ack, UDP, None)]
    assert len(layer) == 0


# -- transport errors ---------------------------------------------------------------------


def test_transport_error_fails_client_transactions_of_that_peer() -> None:
    layer = TransactionLayer()
    mine, _ = layer.send_request(request("OPTIONS"), UDP, 0.0)
    theirs, _ = layer.send_request(request("OPTIONS", branch="z9hG4bKb2"), OTHER, 0.0)
    assert layer.transport_error(UDP, 0.1) == [TransportFailed(mine)]
    assert mine.state is State.TERMINATED and theirs.state is State.TRYING
    assert len(layer) == 1


def test_transport_error_on_server_transactions() -> None:
    layer = TransactionLayer()
    invite = request()
    invite_tx = serve(layer, invite)
    register = request("REGISTER", branch="z9hG4bKreg")
    register_tx = serve(layer, register)
    quiet_tx = serve(layer, request("OPTIONS", branch="z9hG4bKquiet"))
    layer.send_response(answer(invite, 486), 0.1)
    layer.send_response(answer(register, 200), 0.1)
    actions = layer.transport_error(UDP, 0.2)
    assert actions == [TransportFailed(invite_tx), TransportFailed(register_tx)]
    # RFC 6026: the INVITE server transaction stays to absorb retransmissions (Timer H
    # still ends it); the non-INVITE one terminates; one that sent nothing is untouched.
    assert invite_tx.state is State.COMPLETED
    assert register_tx.state is State.TERMINATED
    assert quiet_tx.state is State.TRYING


def test_transport_error_on_invite_client_in_accepted_is_ignored() -> None:
    layer = TransactionLayer()
    invite = request()
    tx, _ = layer.send_request(invite, UDP, 0.0)
    layer.receive(answer(invite, 200), UDP, 0.1)
    assert layer.transport_error(UDP, 0.2) == []
    assert tx.state is State.ACCEPTED


# -- the timer heap -----------------------------------------------------------------------


def test_heap_skips_and_compacts_superseded_entries() -> None:
    layer = TransactionLayer(Timers(trying=10.0))
    invites = [request(branch=f"z9hG4bK{n}") for n in range(3000)]
    for invite in invites:
        layer.receive(invite, UDP, 0.0)  # each arms its 100 Trying timer at 10.0
    for invite in invites:
        layer.send_response(answer(invite, 486), 1.0)  # now Timer G at 1.5, H at 33.0
    assert layer.next_deadline() == 1.5
    assert len(layer._heap) == 3000  # compaction dropped the 100 Trying entries
    events = run_timers(layer, 1.5)
    assert len(events) == 3000 and all(isinstance(a, Send) for _, a in events)
    assert layer.next_deadline() == 2.5


def test_many_timers_fire_in_time_order() -> None:
    layer = TransactionLayer()
    txs: list[ClientTransaction] = []
    for n in range(50):
        tx, _ = layer.send_request(request("OPTIONS", branch=f"z9hG4bKo{n}"), UDP, n / 10)
        txs.append(tx)
    events = run_timers(layer, 1000.0)
    timeouts = [(when, a.transaction) for when, a in events if isinstance(a, TimedOut)]
    assert timeouts == [(pytest.approx(32 + n / 10), txs[n]) for n in range(50)]
    whens = [when for when, _ in events]
    assert whens == sorted(whens)


# -- two layers over the in-memory link ---------------------------------------------------


def ok_answer(req: Request, tx: ServerTransaction) -> list[Response]:
    return [make_response(req, 200, to_tag="srv")]


def busy_answer(req: Request, tx: ServerTransaction) -> list[Response]:
    return [make_response(req, 486, to_tag="srv")]


def test_link_without_loss() -> None:
    link = Link()
    link.b.answer = ok_answer
    options = request("OPTIONS", sent_by="192.0.2.1:5060")
    tx = link.send_request(link.a, options)
    link.run()
    assert [r.status for r in link.a.responses()] == [200]
    assert [r.method for r in link.b.requests()] == ["OPTIONS"]
    assert link.sent("a->b", "OPTIONS") == [0.0]
    assert tx.state is State.TERMINATED
    assert len(link.a.layer) == len(link.b.layer) == 0
    assert link.now == pytest.approx(32.01)  # Timer J outlives Timer K


def alternate() -> Callable[[str, Message], bool]:
    """Exactly half the datagrams lost: every other one in each direction, first included."""
    counts: dict[str, int] = {}

    def drop(direction: str, message: Message) -> bool:
        counts[direction] = counts.get(direction, 0) + 1
        return counts[direction] % 2 == 1

    return drop


def test_link_non_invite_completes_with_every_other_datagram_lost() -> None:
    link = Link(drop=alternate())
    link.b.answer = ok_answer
    tx = link.send_request(link.a, request("OPTIONS"))
    link.run()
    # OPTIONS at 0.0 lost, 0.5 arrives; its 200 (0.51) lost; 1.5 lost; 3.5 arrives and
    # the server transaction (not the TU) resends the 200, which gets through.
    assert link.sent("a->b", "OPTIONS") == [0.0, 0.5, 1.5, 3.5]
    assert link.sent("b->a", "200") == [0.51, 3.51]
    assert [r.status for r in link.a.responses()] == [200]
    assert len(link.b.requests()) == 1
    assert tx.state is State.TERMINATED and link.a.timed_out == []
    assert len(link.a.layer) == len(link.b.layer) == 0


def test_link_rejected_invite_completes_with_every_other_datagram_lost() -> None:
    link = Link(drop=alternate())
    link.b.answer = busy_answer
    tx = link.send_request(link.a, request())
    link.run()
    # INVITE 0.0 lost, 0.5 arrives -> 486 at 0.51 lost; Timer G resends at 1.01, which
    # arrives -> ACK 1.02 lost (Timer A stops); Timer G at 2.01 lost, at 4.01 arrives ->
    # the client transaction resends its ACK at 4.02, which arrives and stops Timer G.
    assert link.sent("a->b", "INVITE") == [0.0, 0.5]
    assert link.sent("b->a", "486") == [0.51, 1.01, 2.01, 4.01]
    assert link.sent("a->b", "ACK") == [1.02, 4.02]
    assert [r.status for r in link.a.responses()] == [486]
    assert link.a.timed_out == [] and link.b.timed_out == []
    assert tx.state is State.TERMINATED
    assert len(link.a.layer) == len(link.b.layer) == 0


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_link_with_random_half_loss_completes_or_fails_cleanly(method: str) -> None:
    completed = 0
    for seed in range(200):
        link = Link(loss=0.5, seed=seed)
        link.b.answer = busy_answer
        tx = link.send_request(link.a, request(method))
        link.run()
        finals = [r.status for r in link.a.responses() if r.status >= 200]
        # Either the TU got the final response exactly once, or a clean timeout.
        assert (finals, link.a.timed_out) in (([486], []), ([], [tx]))
        assert len(link.b.requests()) <= 1  # retransmissions never reach the TU
        assert tx.state is State.TERMINATED
        assert len(link.a.layer) == len(link.b.layer) == 0
        completed += finals == [486]
    # Each try gets through both ways with p = 1/4: 11 tries (E) or 7 (A) within 64*T1.
    assert completed >= {"OPTIONS": 180, "INVITE": 160}[method]


def test_link_fails_cleanly_when_everything_is_lost() -> None:
    link = Link(loss=1.0)
    link.b.answer = ok_answer
    tx = link.send_request(link.a, request("OPTIONS"))
    link.run()
    assert link.a.timed_out == [tx] and link.a.responses() == []
    assert link.b.delivered == []
    assert link.sent("a->b", "OPTIONS") == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert link.now == 32.0 and len(link.a.layer) == 0


def test_link_invite_lost_responses_answered_from_the_server_transaction() -> None:
    # The first 200 to the OPTIONS is lost; the retransmitted request is answered by the
    # server transaction, not by the TU a second time.
    seen: list[str] = []

    def drop_first_response(direction: str, message: object) -> bool:
        if direction == "b->a" and not seen:
            seen.append(direction)
            return True
        return False

    link = Link(drop=drop_first_response)
    link.b.answer = ok_answer
    link.send_request(link.a, request("OPTIONS"))
    link.run()
    assert [r.status for r in link.a.responses()] == [200]
    assert len(link.b.requests()) == 1
    assert link.sent("a->b", "OPTIONS") == [0.0, 0.5]
    assert link.sent("b->a", "200") == [0.01, 0.51]


def test_rfc2543_transactions_count_and_fail_by_peer() -> None:
    layer = TransactionLayer()
    old = request("OPTIONS", branch=None)
    first = serve(layer, old)
    # Same Via, Call-ID, CSeq and From tag, other To tag: a second transaction, same key.
    other = serve(layer, request("OPTIONS", branch=None, to_tag="x"))
    assert first is not other and len(layer) == 2
    ok = answer(request("OPTIONS", branch=None, to_tag="x"), 200)  # keeps To tag "x"
    assert layer.send_response(ok, 0.1) == [Send(ok, UDP)]
    assert other.state is State.COMPLETED and first.state is State.TRYING
    assert layer.transport_error(UDP, 0.2) == [TransportFailed(other)]
    assert len(layer) == 1
