"""AMD on live calls: the switch dials the PSTN simulator through a trunk (real SIP and
RTP over loopback) and `detect_machine` listens to `Call.audio()`.

One callee is a person (espeak-ng says a name, then waits), the other an answering
machine (espeak-ng's greeting, then the simulator's 1 kHz beep). The beep's place is
known: the simulator starts speaking as it answers, so the beep starts the greeting's
length after the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.amd import Result
from media.endpoint import RATE
from media.ports import PortAllocator
from pbx.api import detect_machine
from pbx.server import PbxServer
from pbx.sim.script import parse_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from pbx.store.trunks import Trunk
from tests.interop.phones import running_server
from tests.tools import need

PERSON, MACHINE = "0100123456", "0500123456"
SCRIPT = f"""
seed = 3
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "{PERSON}"
behaviour = "live"
ring_seconds = 0.2
listen_seconds = 15.0
greeting = "Hello, Anna Schmidt speaking."

[[numbers]]
pattern = "{MACHINE}"
behaviour = "machine"
ring_seconds = 0.2
listen_seconds = 25.0
"""


def machine_text(number: str) -> str:
    """What pbx.sim.server says for a machine (its greeting before the beep)."""
    return (
        f"Hello, you have reached {' '.join(number)}. Nobody can take your call"
        " right now. Please leave a message after the tone."
    )


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[PstnSimulator]:
    need("espeak-ng")
    simulator = PstnSimulator(
        parse_script(SCRIPT),
        tmp_path / "sim",
        voice=Voice(),
        ports=PortAllocator("127.0.0.1", 46400, 46500),
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def server(tmp_path: Path, sim: PstnSimulator) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path / "pbx") as pbx:
        assert pbx._store is not None
        await pbx._store.trunks.add(
            Trunk("prov", host="127.0.0.1", port=sim.port, username="trunk1",
                  password="s3cret-trunk", from_domain="pstn.test")
        )  # fmt: skip
        yield pbx


async def test_person_and_machine_on_live_calls(server: PbxServer, sim: PstnSimulator) -> None:
    switch = server.switch
    assert switch is not None
    # Synthesize both greetings before dialling, so the simulator speaks on answering.
    await sim.voice.say("Hello, Anna Schmidt speaking.", 0.7)
    greeting = await sim.voice.say(machine_text(MACHINE), 4.0)
    assert sim.voice.speaks

    person = await switch.dial(f"trunk:prov/{PERSON}", caller_id="1001", timeout=10)
    found = await detect_machine(person)
    await person.hangup()
    assert found.result is Result.HUMAN, found
    assert found.beep_ms is None and found.message_ms is None and not found.call_ended

    machine = await switch.dial(f"trunk:prov/{MACHINE}", caller_id="1001", timeout=10)
    found = await detect_machine(machine)
    await machine.hangup()
    assert found.result is Result.MACHINE, found
    beep_ms = 1000 * greeting.size / RATE
    assert found.beep_ms is not None, found
    assert abs(found.beep_ms - beep_ms) <= 100, (found, beep_ms)
    assert found.message_ms is not None and found.message_ms >= found.beep_ms + 400  # 0.5 s beep
    assert found.decision_ms <= found.beep_ms + 300
