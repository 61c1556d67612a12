"""The dialer end to end on SIP (issue 17, acceptance 1 and 2): an in-process switch with
the ACD and the dialer, a trunk to the PSTN simulator (real SIP and RTP on loopback),
agents that are SIP phones sending a tone. What the callee heard is read from the
simulator's recordings; who was dialled from its attempts log; what the dialer decided
from its attempt rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from acd.app import AcdApplication
from acd.campaign import as_attempt
from acd.dialer import Dialer
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from media.ports import PortAllocator
from media.wav import load_mono
from pbx.config import Settings
from pbx.events import CampaignEvent
from pbx.server import PbxServer
from pbx.sim.script import parse_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from pbx.store import Campaign, DialAttempt, NewContact, Store
from pbx.store.queues import Queue
from pbx.store.trunks import Trunk
from tests.interop.peers import free_port, pbx_cli
from tests.interop.phones import PASSWORDS, in_thread
from tests.interop.test_api_bridge import Phone
from tests.tools import need

RATE = 8000
AGENT_HZ = 600


def zone_at(local_hour: int) -> str:
    """An Etc/GMT zone where it is about `local_hour` o'clock now (Etc signs are inverted)."""
    offset = (local_hour - datetime.now(UTC).hour + 12) % 24 - 12  # -12 .. 11
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _truth(condition()):
        assert loop.time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.05)


async def _truth(value: Any) -> bool:
    if asyncio.iscoroutine(value):
        value = await value
    return bool(value)


@contextlib.asynccontextmanager
async def dialer_setup(
    tmp_path: Path, script: str, campaign: Campaign, contacts: list[NewContact],
    agents: tuple[str, ...], *, dnc: tuple[str, ...] = (), wrapup: float = 0.5,
) -> AsyncIterator[tuple[PbxServer, AcdApplication, Dialer, PstnSimulator]]:  # fmt: skip
    """Simulator, store (users, queue `sales` with `agents` logged in, trunk `prov`,
    the campaign and its contacts), the switch with the ACD and the dialer."""
    need("espeak-ng")
    sim = PstnSimulator(
        parse_script(script), tmp_path / "sim", voice=Voice(),
        ports=PortAllocator("127.0.0.1", 46600, 46800),
    )  # fmt: skip
    await sim.start()
    store = await Store.open(tmp_path / "pbx.sqlite3")
    try:
        await store.settings.set_default("realm", "aiopbx")
        for user, password in PASSWORDS.items():
            await store.users.add(user, password, "aiopbx")
        await store.queues.add(Queue("sales", "700", wrapup_seconds=wrapup, ring_seconds=10))
        for agent in agents:
            await store.queues.add_member("sales", agent)
            await store.agents.login(agent, time.time())
        await store.trunks.add(
            Trunk("prov", host="127.0.0.1", port=sim.port, username="trunk1",
                  password="s3cret-trunk", from_domain="pstn.test")
        )  # fmt: skip
        await store.campaigns.create(campaign)
        await store.contacts.add_many(campaign.name, contacts)
        for number in dnc:
            await store.dnc.add(number, source="test")
    finally:
        await store.close()
    player = PromptPlayer(PromptStore(tmp_path / "prompts"))
    acd = AcdApplication(player)
    dialer = Dialer(acd, player)
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port()), applications=[acd, dialer]
    )
    await server.start()
    try:
        yield server, acd, dialer, sim
    finally:
        await server.stop()
        await sim.close()


def sim_log(sim: PstnSimulator) -> list[dict[str, Any]]:
    if not sim.attempts_log.exists():
        return []
    return [json.loads(line) for line in sim.attempts_log.read_text().splitlines()]


async def attempts(server: PbxServer, name: str) -> list[DialAttempt]:
    assert server._store is not None
    return await server._store.attempts.of_campaign(name)


def onset(recording: npt.NDArray[np.int16], prompt: npt.NDArray[np.int16]) -> tuple[float, float]:
    """Where `prompt` starts in `recording` (seconds) and how alike they are there (the
    normalised correlation of the prompt's first second with the recording)."""
    piece = prompt[:RATE].astype(np.float64)
    rec = recording.astype(np.float64)
    corr = np.correlate(rec, piece, mode="valid")
    lag = int(np.argmax(corr))
    window = rec[lag : lag + len(piece)]
    alike = float(corr[lag] / (np.linalg.norm(piece) * np.linalg.norm(window) + 1e-9))
    return lag / RATE, alike


HARBOUR_SCRIPT = """
seed = 5
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "+442079460001"
behaviour = "live"
ring_seconds = 1.5
listen_seconds = 12.0
greeting = "Hello?"
"""


async def test_no_free_agent_hears_the_safe_harbour_message_within_2_s(tmp_path: Path) -> None:
    """Acceptance 2: the only agent is free when the dialer dials and paused while the
    number rings; the person who answers hears the safe-harbour message (the seller and
    number, spoken) starting within 2 s of the answer, by the simulator's recording; the
    attempt is a drop and counts as abandoned."""
    campaign = Campaign("spring", "+442071230000", trunk="trunk:prov", queue="sales",
                        mode="progressive", seller="Acme Windows",
                        window_start="00:00", window_end="23:59")  # fmt: skip
    contact = NewContact("+442079460001", zone_at(12))
    async with dialer_setup(tmp_path, HARBOUR_SCRIPT, campaign, [contact], ("1001",)) as (
        server, acd, dialer, sim,
    ):  # fmt: skip
        assert server.switch is not None
        async with Phone(server, "1001", AGENT_HZ):
            await until(lambda: dialer.agent_free("sales"), what="the agent is free")
            events = server.switch.events.subscribe()
            started = await in_thread(pbx_cli, tmp_path, "campaign", "start", "spring")
            assert started.stdout == "campaign spring: running (the running dialer follows)\n"
            async with asyncio.timeout(10):
                async for event in events:
                    if isinstance(event, CampaignEvent) and event.event == "dialled":
                        break
            await acd.agent_command("1001", "pause")  # the agent leaves while it rings
            await until(lambda: attempts(server, "spring"), 30, "the attempt's row")
            await until(lambda: any(e.get("wav") for e in sim_log(sim)), 20, "the recording")
        [row] = await attempts(server, "spring")
        [entry] = [e for e in sim_log(sim) if e.get("wav")]
    assert row.outcome == "dropped" and row.amd == "human" and row.agent is None
    assert row.answered_at is not None and row.amd_ms is not None and row.amd_ms < 2000
    assert as_attempt(row).abandoned
    assert entry["number"] == "+442079460001" and entry["status"] == 200
    recording = load_mono(Path(entry["wav"]), RATE)
    harbour = load_mono(tmp_path / "prompts" / "campaign-spring-harbour.wav", RATE)
    start, alike = onset(recording, harbour)
    assert alike > 0.8, alike  # the message itself (through G.711), not noise
    assert start <= 2.0, start  # from the answer: greeting and AMD included
    text = (tmp_path / "prompts" / "campaign-spring-harbour.txt").read_text()
    assert "Acme Windows" in text and "2 0 7 1 2 3 0 0 0 0" in text and "press 9" in text
