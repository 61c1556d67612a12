"""MWI against real peers on 127.0.0.1: a sipp phone subscribed to its mailbox (digest
auth, NOTIFYs as counts change, unsubscription), and our own UDP client for the
refusals (403, 404, 489, 423), expiry, a phone answering 481, and unsolicited NOTIFY
to a registered phone. The switch runs in this process with a real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx import control
from pbx.errors import ControlError
from pbx.mwi import MessageSummary, MwiPolicy
from pbx.server import PbxServer
from sip.digest import make_credentials
from sip.message import Request, Response, make_response, parse_message
from tests.interop.mwi import mwi_subscriber
from tests.interop.phones import PASSWORDS, in_thread, running_server
from tests.interop.sipclient import SipClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path) as pbx:
        yield pbx


async def _leave_message(server: PbxServer, box: str, caller: str = "1003") -> int:
    assert server._store is not None
    return await server._store.voicemail.add(box, caller, time.time(), 4.0, "/dev/null")


# -- a sipp phone ---------------------------------------------------------------------


async def test_sipp_subscriber_follows_its_mailbox(server: PbxServer, tmp_path: Path) -> None:
    store = server._store
    assert store is not None and server.b2bua is not None
    port = server.sip_port
    async with mwi_subscriber("1001", PASSWORDS["1001"], port, tmp_path / "mwi") as phone:
        # SUBSCRIBE -> 401 -> SUBSCRIBE with credentials -> 200, as the phone saw it.
        answers = [m for m in phone.received() if isinstance(m, Response)]
        assert [(r.status, str(r.cseq)) for r in answers] == [
            (401, "1 SUBSCRIBE"),
            (200, "2 SUBSCRIBE"),
        ]
        ok = answers[1]
        assert ok.headers.get("Expires") == "3600"
        assert ok.headers.get("Contact") == f"<sip:1001@127.0.0.1:{port}>"
        assert ok.to.tag

        # At once, a NOTIFY in the new dialog with the box as it is: empty.
        first = phone.initial
        assert first is not None
        notify = first.request
        assert notify.call_id == ok.call_id
        assert notify.from_.tag == ok.to.tag
        assert notify.headers.get("Event") == "message-summary"
        assert notify.headers.get("Content-Type") == "application/simple-message-summary"
        state = notify.headers.get("Subscription-State") or ""
        assert state.startswith("active;expires=")
        assert 3590 <= int(state.rpartition("=")[2]) <= 3600
        assert notify.body == (
            b"Messages-Waiting: no\r\nMessage-Account: sip:1001@127.0.0.1\r\nVoice-Message: 0/0\r\n"
        )
        assert b"\r\nContent-Length: 79\r\n" in first.raw

        # A message arrives: the light goes on.
        message_id = await _leave_message(server, "1001")
        await server.b2bua.mailbox_changed("1001")
        lit = await phone.wait_for(new=1, old=0)
        assert lit.request.body == (
            b"Messages-Waiting: yes\r\nMessage-Account: sip:1001@127.0.0.1\r\n"
            b"Voice-Message: 1/0\r\n"
        )
        assert lit.request.cseq.seq > notify.cseq.seq

        # Heard (now old): the light goes off, the old count shows.
        await store.voicemail.move(message_id, "old")
        await server.b2bua.mailbox_changed("1001")
        heard = await phone.wait_for(new=0, old=1)
        assert heard.summary == MessageSummary(False, 0, 1, "sip:1001@127.0.0.1")

        # Deleted by another process (`pbx vm delete`): it tells the server over the
        # control API.
        await store.voicemail.delete(message_id)
        answer = await in_thread(control.mailbox_changed, server.settings, "1001")
        assert answer == {"box": "1001", "notified": 1}
        await phone.wait_for(new=0, old=0, waiting=False)

        assert server.mwi is not None and len(server.mwi.subscriptions("1001")) == 1
        assert await phone.stop() == 0

    # Unsubscribed: a final NOTIFY said so, and the switch forgot the subscription.
    final = phone.notifies()[-1]
    assert final.state == "terminated;reason=timeout"
    assert final.summary == MessageSummary(False, 0, 0, "sip:1001@127.0.0.1")
    assert server.mwi is not None and server.mwi.subscriptions() == []


async def test_sequence_of_changes_reaches_the_subscriber(
    server: PbxServer, tmp_path: Path
) -> None:
    """Up, up, down, down, up: every state arrives in order (what a voicemail test sees)."""
    assert server.b2bua is not None and server._store is not None
    async with mwi_subscriber("1002", PASSWORDS["1002"], server.sip_port, tmp_path) as phone:
        ids = []
        for new in (1, 2):
            ids.append(await _leave_message(server, "1002"))
            await server.b2bua.mailbox_changed("1002")
            await phone.wait_for(new=new, old=0, waiting=True)
        for new in (1, 0):
            await server._store.voicemail.delete(ids.pop())
            await server.b2bua.mailbox_changed("1002")
            await phone.wait_for(new=new, old=0, waiting=new > 0)
        await _leave_message(server, "1002")
        await server.b2bua.mailbox_changed("1002")
        await phone.wait_for(new=1, old=0, waiting=True)
    assert phone.exit_code == 0


# -- our own client -------------------------------------------------------------------


def _subscribe(
    ua: SipClient,
    user: str,
    box: str,
    *,
    cseq: int,
    event: str = "message-summary",
    expires: int | None = 3600,
    authorization: str | None = None,
    to_tag: str | None = None,
) -> bytes:
    host = f"127.0.0.1:{ua.server_port}"
    lines = [
        f"SUBSCRIBE sip:{box}@{host} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};rport;branch=z9hG4bKs{cseq}x{ua.call_id[:6]}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag={ua.from_tag}",
        f"To: <sip:{box}@{host}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {ua.call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{user}@127.0.0.1:{ua.port}>",
        f"Event: {event}",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _authorized_subscribe(
    ua: SipClient, user: str, box: str, expires: int | None = 3600
) -> tuple[Response, Response]:
    """SUBSCRIBE, answer the 401; returns (the 401, the final answer)."""
    first = await ua.exchange(_subscribe(ua, user, box, cseq=1, expires=expires))
    assert first.status == 401, first
    uri = f"sip:{box}@127.0.0.1:{ua.server_port}"
    creds = make_credentials(ua.challenge(first, "MD5"), user, PASSWORDS[user], "SUBSCRIBE", uri)
    second = _subscribe(ua, user, box, cseq=2, expires=expires, authorization=str(creds))
    return first, await ua.exchange(second)


async def _next_request(ua: SipClient, timeout: float = 5.0) -> Request:
    """The next request the switch sends this client (responses are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        raw = await ua.receive(max(0.0, deadline - loop.time()))
        assert raw is not None, "no request from the switch"
        message = parse_message(raw)
        if isinstance(message, Request):
            return message


async def test_subscribing_to_another_users_box_is_forbidden(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        _, answer = await _authorized_subscribe(ua, "1001", "1002")
    assert (answer.status, answer.reason) == (403, "Not Your Mailbox")
    assert server.mwi is not None and server.mwi.subscriptions() == []


async def test_unknown_box_is_not_found(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        _, answer = await _authorized_subscribe(ua, "1001", "4711")
    assert (answer.status, answer.reason) == (404, "No Such Mailbox")


async def test_other_event_package_is_489_with_allow_events(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        answer = await ua.exchange(_subscribe(ua, "1001", "1001", cseq=1, event="presence"))
    assert (answer.status, answer.reason) == (489, "Bad Event")
    assert answer.headers.get("Allow-Events") == "message-summary"


async def test_too_brief_expires_is_423_with_min_expires(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        _, answer = await _authorized_subscribe(ua, "1001", "1001", expires=10)
    assert answer.status == 423
    assert answer.headers.get("Min-Expires") == "60"


async def test_options_names_subscribe_and_the_package(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        host = f"127.0.0.1:{server.sip_port}"
        options = (
            f"OPTIONS sip:{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bKopt1\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:1001@{host}>;tag=o\r\nTo: <sip:{host}>\r\n"
            f"Call-ID: opt-{ua.call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        answer = await ua.exchange(options)
    assert answer.status == 200
    assert "SUBSCRIBE" in (answer.headers.get("Allow") or "").split(", ")
    assert answer.headers.get("Allow-Events") == "message-summary"


async def test_refresh_unsubscribe_and_stale_dialog(server: PbxServer) -> None:
    async with SipClient(server.sip_port) as ua:
        _, ok = await _authorized_subscribe(ua, "1001", "1001")
        assert ok.status == 200
        tag = ok.to.tag
        first = await _next_request(ua)
        ua.send(bytes(make_response(first, 200)))

        # A refresh in the dialog: 200 with the new Expires and a NOTIFY at once.
        refreshed = await ua.exchange(
            _subscribe(ua, "1001", "1001", cseq=3, expires=600, to_tag=tag)
        )
        assert (refreshed.status, refreshed.headers.get("Expires")) == (200, "600")
        again = await _next_request(ua)
        assert again.headers.get("Subscription-State") in (
            "active;expires=600",
            "active;expires=599",
        )
        assert again.cseq.seq == first.cseq.seq + 1
        ua.send(bytes(make_response(again, 200)))

        # Expires: 0 ends it with a final NOTIFY.
        gone = await ua.exchange(_subscribe(ua, "1001", "1001", cseq=4, expires=0, to_tag=tag))
        assert (gone.status, gone.headers.get("Expires")) == (200, "0")
        final = await _next_request(ua)
        assert final.headers.get("Subscription-State") == "terminated;reason=timeout"
        assert final.body.startswith(b"Messages-Waiting: no\r\n")
        ua.send(bytes(make_response(final, 200)))

        # The dialog is gone.
        stale = await ua.exchange(_subscribe(ua, "1001", "1001", cseq=5, to_tag=tag))
        assert (stale.status, stale.reason) == (481, "Subscription Does Not Exist")
    assert server.mwi is not None and server.mwi.subscriptions() == []


async def test_subscription_expires_with_a_final_notify(server: PbxServer) -> None:
    assert server.mwi is not None
    server.mwi.policy = MwiPolicy(min_expires=1, max_expires=3600, default_expires=3600)
    async with SipClient(server.sip_port) as ua:
        _, ok = await _authorized_subscribe(ua, "1001", "1001", expires=1)
        assert (ok.status, ok.headers.get("Expires")) == (200, "1")
        first = await _next_request(ua)
        assert first.headers.get("Subscription-State") == "active;expires=1"
        ua.send(bytes(make_response(first, 200)))
        final = await _next_request(ua, timeout=10)
        assert final.headers.get("Subscription-State") == "terminated;reason=timeout"
        assert final.call_id == first.call_id
        ua.send(bytes(make_response(final, 200)))
    for _ in range(100):
        if not server.mwi.subscriptions():
            break
        await asyncio.sleep(0.02)
    assert server.mwi.subscriptions() == []


async def test_notify_answered_481_drops_the_subscription(server: PbxServer) -> None:
    assert server.mwi is not None and server.b2bua is not None
    async with SipClient(server.sip_port) as ua:
        _, ok = await _authorized_subscribe(ua, "1001", "1001")
        assert ok.status == 200
        first = await _next_request(ua)
        ua.send(bytes(make_response(first, 481)))
        for _ in range(100):
            if not server.mwi.subscriptions():
                break
            await asyncio.sleep(0.02)
        assert server.mwi.subscriptions() == []
        # With no subscription left, a change goes out unsolicited (no binding: nowhere).
        await _leave_message(server, "1001")
        assert server.mwi.announce("1001") == 0


async def test_unsolicited_notify_reaches_a_registered_phone(server: PbxServer) -> None:
    assert server.b2bua is not None and server.mwi is not None
    async with SipClient(server.sip_port) as ua:
        challenge = await ua.exchange(ua.register("1002"))
        assert challenge.status == 401
        creds = ua.answer(SipClient.challenge(challenge, "MD5"), "1002", PASSWORDS["1002"])
        registered = await ua.exchange(ua.register("1002", authorization=str(creds)))
        assert registered.status == 200

        await _leave_message(server, "1002")
        await server.b2bua.mailbox_changed("1002")
        notify = await _next_request(ua)
        assert notify.method == "NOTIFY"
        assert str(notify.uri) == f"sip:1002@127.0.0.1:{ua.port}"
        assert notify.to.tag is None  # out of any dialog
        assert notify.headers.get("Event") == "message-summary"
        assert notify.headers.get("Subscription-State") == "active"
        assert notify.headers.get("Content-Type") == "application/simple-message-summary"
        assert notify.body == (
            b"Messages-Waiting: yes\r\nMessage-Account: sip:1002@127.0.0.1\r\n"
            b"Voice-Message: 1/0\r\n"
        )
        ua.send(bytes(make_response(notify, 200)))

        # The control API reaches it the same way, and says so.
        answer = await in_thread(control.mailbox_changed, server.settings, "1002")
        assert answer == {"box": "1002", "notified": 1}
        again = await _next_request(ua)
        assert again.body.endswith(b"Voice-Message: 1/0\r\n")
        assert again.call_id != notify.call_id
        ua.send(bytes(make_response(again, 200)))


async def test_unanswered_phones_never_hold_up_the_caller(server: PbxServer) -> None:
    """A phone that never answers: `changed` returns at once, repeated changes while a
    NOTIFY waits are folded into one more (bounded by Timer F, not by callers)."""
    assert server.b2bua is not None and server.mwi is not None
    async with SipClient(server.sip_port) as ua:
        challenge = await ua.exchange(ua.register("1003"))
        creds = ua.answer(SipClient.challenge(challenge, "MD5"), "1003", PASSWORDS["1003"])
        assert (await ua.exchange(ua.register("1003", authorization=str(creds)))).status == 200
        for _ in range(20):
            async with asyncio.timeout(1.0):
                await server.b2bua.mailbox_changed("1003")
        # One NOTIFY in flight (its retransmissions share one branch), never twenty.
        first = await _next_request(ua)
        seen = {first.call_id}
        while (raw := await ua.receive(0.3)) is not None:
            message = parse_message(raw)
            if isinstance(message, Request):
                seen.add(message.call_id)
        assert seen == {first.call_id}


async def test_control_route_refuses_an_unknown_box(server: PbxServer) -> None:
    with pytest.raises(ControlError, match="no mailbox '4711'"):
        await in_thread(control.mailbox_changed, server.settings, "4711")
