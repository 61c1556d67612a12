"""--sip-trace: messages are logged whole, with digest response and cnonce masked."""

from __future__ import annotations

import logging

import pytest

from pbx.trace import SipTracer, mask_secrets
from sip.peer import Peer

REGISTER = (
    "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
    "From: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1001@127.0.0.1>\r\n"
    "Call-ID: c1\r\nCSeq: 2 REGISTER\r\n"
    'Authorization: Digest username="1001", realm="aiopbx", nonce="n0nce",'
    ' uri="sip:127.0.0.1", response="6629fae49393a05397450978507c4ef1", algorithm=MD5,'
    ' cnonce="0a4f113b", qop=auth, nc=00000001\r\n'
    'proxy-authorization:Digest username="1001",response=deadbeef,cnonce=abc\r\n'
    'Subject: response="not a credential"\r\n'
    "Content-Length: 0\r\n\r\n"
)


def test_mask_secrets() -> None:
    masked = mask_secrets(REGISTER)
    assert "6629fae49393a05397450978507c4ef1" not in masked
    assert "0a4f113b" not in masked and "deadbeef" not in masked and "abc" not in masked
    assert 'response="***", algorithm=MD5, cnonce="***", qop=auth' in masked
    assert 'proxy-authorization:Digest username="1001",response=***,cnonce=***' in masked
    assert 'username="1001", realm="aiopbx", nonce="n0nce"' in masked  # the rest is kept
    assert 'Subject: response="not a credential"' in masked  # only credential headers
    assert mask_secrets("OPTIONS sip:x SIP/2.0\r\n\r\n") == "OPTIONS sip:x SIP/2.0\r\n\r\n"


def test_tracer_logs_each_message_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pbx.trace")
    tracer = SipTracer()
    tracer("in", REGISTER.encode(), Peer("UDP", "127.0.0.1", 5062))
    tracer("out", b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", Peer("TCP", "::1", 5070))
    first, second = caplog.messages
    assert first.startswith(f"<<< from udp:127.0.0.1:5062 ({len(REGISTER)} bytes)\nREGISTER ")
    assert "6629fae4" not in first and 'response="***"' in first
    assert second == ">>> to tcp:[::1]:5070 (37 bytes)\nSIP/2.0 200 OK\nContent-Length: 0\n"
