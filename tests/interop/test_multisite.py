"""Issue 12, acceptance 4: two `pbx serve` sites trunked to each other; a call to site
A's ring group whose members are busy overflows to site B's extension, audio both ways.
The same trunk target as a busy extension's forwarding and as an IVR key goes there too.

Site B has a user `site-a` (the password site A's trunk `site-b` holds: B challenges A's
INVITE and A answers it) and an extension 2001, a sipp phone answering with its media
on the test's own UDP socket. Site A has a ring group 600 of 1001 and 1002 (sipp phones
answering 486 Busy) overflowing to `trunk:site-b/2001`. The caller is the test's own
SIP client as 1003 on A; each side sends a tone the other must hear (ear.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.interop.ear import Ear, listening, sine
from tests.interop.peers import (
    DATA,
    PbxProcess,
    SippUas,
    add_users,
    free_port,
    pbx_cli,
    run_sipp,
    wait_for,
)
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient, media_address

SCENARIOS = DATA / "sipp"
TRUNK_PASSWORD = "Trunk-between-sites9"
CALLEE_PASSWORD = "Callee-phone-pass9"
TONES = {"caller": 440, "callee": 1000}
IVR = """\
[[menu]]
name = "front"
number = "800"
greeting = "front-greeting"
[menu.options]
"1" = "trunk:site-b/2001"
"""


@dataclass
class Sites:
    a: PbxProcess
    b: PbxProcess
    callee_rtp: socket.socket
    callee_dir: Path
    busy: list[SippUas]


def cli_ok(data_dir: Path, *args: str) -> str:
    result = pbx_cli(data_dir, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sipp_phone(
    port: int, user: str, password: str, scenario: str, workdir: Path, *extra: str
) -> SippUas:
    """A sipp phone registered as `user` at the switch on `port`, then running `scenario`."""
    local = free_port()
    result = run_sipp(
        SCENARIOS / "register_auth.xml",
        port,
        workdir=workdir / "reg",
        inf=[(user, f"[authentication username={user} password={password}]")],
        local_port=local,
        timeout=15,
    )
    assert (result.returncode, result.successful) == (0, 1), result.output
    return SippUas(SCENARIOS / scenario, workdir, port=local, extra=tuple(extra))


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    dir_a, dir_b = tmp_path / "site-a", tmp_path / "site-b"
    port_a, port_b = free_port(), free_port()
    add_users(dir_a, {u: PASSWORDS[u] for u in ("1001", "1002", "1003")})
    add_users(dir_b, {"site-a": TRUNK_PASSWORD, "2001": CALLEE_PASSWORD})
    # Each site has a trunk to the other; A's logs in at B as user site-a, and says so in
    # its From (B lets an authenticated user act only for itself; the caller's own
    # number goes in P-Asserted-Identity).
    cli_ok(dir_a, "trunk", "add", "site-b", "--host", f"127.0.0.1:{port_b}",
           "--username", "site-a", "--from-user", "site-a",
           "--password", TRUNK_PASSWORD)  # fmt: skip
    cli_ok(dir_b, "trunk", "add", "site-a", "--host", f"127.0.0.1:{port_a}")
    cli_ok(dir_a, "ringgroup", "add", "600", "-m", "1001,1002", "--ring-seconds", "10",
           "--overflow", "trunk:site-b/2001")  # fmt: skip
    assert "trunk:site-b/2001" in cli_ok(dir_a, "ringgroup", "list")
    cli_ok(dir_a, "user", "forward", "1002", "--busy", "trunk:site-b/2001")
    menu = tmp_path / "menu.toml"
    menu.write_text(IVR)
    cli_ok(dir_a, "ivr", "import", str(menu))

    callee_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    callee_rtp.bind(("127.0.0.1", 0))
    callee_rtp.setblocking(False)
    with ExitStack() as stack:
        stack.callback(callee_rtp.close)
        a = PbxProcess(dir_a, port_a, ("--sip-trace",))
        b = PbxProcess(dir_b, port_b, ("--sip-trace",))
        for site in (a, b):
            site.start()
            stack.callback(site.stop)
        busy = [
            stack.enter_context(
                sipp_phone(port_a, user, PASSWORDS[user], "uas_busy.xml", tmp_path / user)
            )
            for user in ("1001", "1002")
        ]
        inf = tmp_path / "callee.csv"
        inf.write_text(f"SEQUENTIAL\n{callee_rtp.getsockname()[1]};0;PCMU\n")
        callee_dir = tmp_path / "2001"
        callee = sipp_phone(
            port_b, "2001", CALLEE_PASSWORD, "uas_answer_media.xml", callee_dir,
            "-inf", str(inf),
        )  # fmt: skip
        stack.enter_context(callee)
        try:
            yield Sites(a, b, callee_rtp, callee_dir, busy)
        finally:  # shown by pytest when the test failed
            for name, site in (("A", a), ("B", b)):
                print(f"--- site {name} log ---\n{site.log()[-6000:]}")


def cdrs(site: PbxProcess) -> list[dict[str, Any]]:
    rows = json.loads(cli_ok(site.data_dir, "cdr", "list", "--format", "json"))
    assert isinstance(rows, list)
    return rows


def closed_cdrs(site: PbxProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def closed() -> bool:
        found[:] = cdrs(site)
        return bool(found) and all(r["end"] is not None for r in found)

    wait_for(closed, 20, f"the CDRs of {site.data_dir.name} to close", interval=0.3)
    return found


async def test_ring_group_overflows_to_the_other_site(sites: Sites) -> None:
    async with listening(TONES) as caller, SipClient(sites.a.port) as ua:
        callee = Ear(sites.callee_rtp, TONES)
        try:
            server = SimpleNamespace(sip_port=sites.a.port)
            invite, ok = await dial(ua, server, "600", caller="1003", rtp_port=caller.port)  # type: ignore[arg-type]
            assert ok.status == 200, ok
            caller.remote = media_address(ok.body)
            # Where site B told 2001 to send: the INVITE sipp received.
            [log] = sites.callee_dir.glob("*_messages.log")
            callee.remote = media_address(log.read_bytes().split(b"INVITE sip:", 1)[1])

            # Audio both ways: the caller's tone reaches 2001 at site B through both
            # relays, and 2001's tone comes back to the caller at site A.
            await asyncio.gather(
                caller.talk(sine(TONES["caller"], 2.0)), callee.talk(sine(TONES["callee"], 2.0))
            )
            await callee.wait_for("caller")
            await caller.wait_for("callee")
            assert set(callee.tones()) == {"caller"} and set(caller.tones()) == {"callee"}

            bye = await ua.exchange(ua.bye_for(invite, ok), timeout=10)
            assert bye.status == 200
        finally:
            await callee.stop()

    # Both members of 600 were rung first and answered 486 (each sipp ends after its call).
    assert [await asyncio.to_thread(p.finish) for p in sites.busy] == [0, 0]
    [at_a] = await asyncio.to_thread(closed_cdrs, sites.a)
    assert (at_a["caller"], at_a["callee"], at_a["disposition"]) == ("1003", "600", "ANSWERED")
    assert "forwarded 600 -> trunk:site-b/2001" in at_a["hangup_cause"]
    assert (at_a["trunk"], at_a["trunk_number"]) == ("site-b", "2001")
    [at_b] = await asyncio.to_thread(closed_cdrs, sites.b)
    assert (at_b["caller"], at_b["callee"], at_b["disposition"]) == ("site-a", "2001", "ANSWERED")
    assert at_b["trunk"] is None


async def callee_relay(sites: Sites) -> tuple[str, int]:
    """Where site B told 2001 to send its audio, once sipp has received the INVITE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        for log in sites.callee_dir.glob("*_messages.log"):
            text = log.read_bytes()
            if b"INVITE sip:" in text:
                return media_address(text.split(b"INVITE sip:", 1)[1])
        assert loop.time() < deadline, "2001 at site B never got the INVITE"
        await asyncio.sleep(0.1)


async def test_busy_extension_forwards_to_the_other_site(sites: Sites) -> None:
    async with listening(TONES) as caller, SipClient(sites.a.port) as ua:
        callee = Ear(sites.callee_rtp, TONES)
        try:
            server = SimpleNamespace(sip_port=sites.a.port)
            invite, ok = await dial(ua, server, "1002", caller="1003", rtp_port=caller.port)  # type: ignore[arg-type]
            assert ok.status == 200, ok
            caller.remote = media_address(ok.body)
            callee.remote = await callee_relay(sites)
            await asyncio.gather(
                caller.talk(sine(TONES["caller"], 2.0)), callee.talk(sine(TONES["callee"], 2.0))
            )
            await callee.wait_for("caller")
            await caller.wait_for("callee")
            bye = await ua.exchange(ua.bye_for(invite, ok), timeout=10)
            assert bye.status == 200
        finally:
            await callee.stop()
    assert await asyncio.to_thread(sites.busy[1].finish) == 0  # 1002 was rung: 486
    [at_a] = await asyncio.to_thread(closed_cdrs, sites.a)
    assert (at_a["callee"], at_a["disposition"]) == ("1002", "ANSWERED")
    assert "forwarded 1002 -> trunk:site-b/2001" in at_a["hangup_cause"]
    [at_b] = await asyncio.to_thread(closed_cdrs, sites.b)
    assert (at_b["caller"], at_b["callee"], at_b["disposition"]) == ("site-a", "2001", "ANSWERED")


async def test_ivr_key_transfers_to_the_other_site(sites: Sites) -> None:
    async with listening(TONES) as caller, SipClient(sites.a.port) as ua:
        callee = Ear(sites.callee_rtp, TONES)
        try:
            server = SimpleNamespace(sip_port=sites.a.port)
            invite, ok = await dial(
                ua, server, "800", caller="1003", rtp_port=caller.port, events=True
            )  # type: ignore[arg-type]
            assert ok.status == 200, ok  # the IVR answers
            caller.remote = media_address(ok.body)
            caller.press("1")
            callee.remote = await callee_relay(sites)
            # 2001 speaks until the caller hears it (the bridge is up), then the caller.
            speaking = asyncio.create_task(callee.talk(sine(TONES["callee"], 6.0)))
            try:
                await caller.wait_for("callee", timeout=30)
                await caller.talk(sine(TONES["caller"], 1.5))
                await callee.wait_for("caller")
            finally:
                speaking.cancel()
                await asyncio.gather(speaking, return_exceptions=True)
            assert callee.tones() == ["caller"]
            bye = await ua.exchange(ua.bye_for(invite, ok), timeout=10)
            assert bye.status == 200
        finally:
            await callee.stop()
    [at_a] = await asyncio.to_thread(closed_cdrs, sites.a)
    assert (at_a["caller"], at_a["callee"], at_a["disposition"]) == ("1003", "800", "ANSWERED")
    [at_b] = await asyncio.to_thread(closed_cdrs, sites.b)
    assert (at_b["caller"], at_b["callee"], at_b["disposition"]) == ("site-a", "2001", "ANSWERED")
