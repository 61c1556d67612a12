"""RFC 3261 §17 over real UDP against sipp: our client transactions retransmit and time
out, our INVITE server transaction retransmits its final response until the ACK.

Timer values are shortened through `Timers`, so the whole file runs in a few seconds.
What sipp received or sent is read from its own message trace.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from sip.endpoint import Endpoint
from sip.message import Request, parse_message
from sip.peer import Peer
from sip.transaction import Timers
from tests.interop.peers import DATA, SippUas, free_port, need
from tests.interop.phones import in_thread

SCENARIOS = DATA / "sipp"


def _trace(workdir: Path) -> list[tuple[datetime, str, str]]:
    """sipp's -trace_msg log as (time, 'sent'|'received', first line) entries."""
    [log] = workdir.glob("*_messages.log")
    entries = []
    blocks = re.split(r"^-{20,} (\S+ \S+)\n", log.read_text(errors="replace"), flags=re.M)
    for stamp, body in zip(blocks[1::2], blocks[2::2], strict=True):
        kind = "sent" if "message sent" in body.split("\n", 1)[0] else "received"
        lines = [line for line in body.splitlines()[1:] if line.strip()]
        if lines:
            entries.append((datetime.fromisoformat(stamp), kind, lines[0]))
    return entries


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, int]]:
    """An endpoint with T1 = 50 ms on a UDP port of its own, and that port."""
    ep = Endpoint(timers=Timers(t1=0.05, t2=4.0, t4=0.5))
    port = await ep.listen("127.0.0.1", 0, tcp=False)
    try:
        yield ep, port
    finally:
        await ep.close()


def _options(local_port: int, target_port: int, branch: str) -> Request:
    raw = (
        f"OPTIONS sip:sipp@127.0.0.1:{target_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:pbx@127.0.0.1:{local_port}>;tag=t{branch}\r\n"
        f"To: <sip:sipp@127.0.0.1:{target_port}>\r\n"
        f"Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


async def test_client_retransmits_until_answered(
    endpoint: tuple[Endpoint, int], tmp_path: Path
) -> None:
    ep, port = endpoint
    uas = SippUas(SCENARIOS / "uas_slow_options.xml", tmp_path)
    try:
        request = _options(port, uas.port, "slow1")
        response = await ep.request(request, Peer("UDP", "127.0.0.1", uas.port))
        assert response.status == 200
        assert await in_thread(uas.finish) == 0
    finally:
        uas.kill()
    received = [e for e in _trace(tmp_path) if e[1] == "received"]
    # T1 = 50 ms, the answer after 1.3 s: sent at 0, .05, .15, .35, .75 (E doubles).
    assert len(received) >= 4
    assert all(first.startswith("OPTIONS ") for _, _, first in received)


async def test_client_times_out_with_408(endpoint: tuple[Endpoint, int], tmp_path: Path) -> None:
    ep, port = endpoint
    uas = SippUas(SCENARIOS / "uas_silent.xml", tmp_path)
    try:
        request = _options(port, uas.port, "silent1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await ep.request(request, Peer("UDP", "127.0.0.1", uas.port))
        waited = loop.time() - started
    finally:
        uas.kill()
    assert response.status == 408
    # Timer F = 64*T1 = 3.2 s: not before it.
    assert waited >= 3.2
    received = [e for e in _trace(tmp_path) if e[1] == "received"]
    assert len(received) >= 6  # 0, .05, .15, .35, .75, 1.55 (and 3.15)


async def test_invite_error_retransmitted_until_ack(
    endpoint: tuple[Endpoint, int], tmp_path: Path
) -> None:
    need("sipp")
    loop = asyncio.get_running_loop()
    _, port = endpoint

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "uac_invite_late_ack.xml"),
                "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1", "-nostdin",
                "-trace_msg", "-timeout", "20s",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip

    result = await loop.run_in_executor(None, run)
    assert result.returncode == 0, result.stdout[-2000:]
    trace = _trace(tmp_path)
    ack_at = next(t for t, kind, first in trace if kind == "sent" and first.startswith("ACK "))
    errors = [t for t, kind, first in trace if kind == "received" and " 405 " in first]
    # Timer G (T1 = 50 ms, doubling) resent the 405 while the ACK was held back ...
    assert len([t for t in errors if t < ack_at]) >= 3
    # ... and the ACK stopped it (Confirmed): nothing in the second after it.
    assert [t for t in errors if t > ack_at] == []
