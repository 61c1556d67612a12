"""The dialer's keys on SIP (issue 17): people of the PSTN simulator press keys as RFC
4733 telephone-events (`keys` in its script) during the switch's messages. Agentless
mode: 1 reaches an agent (a baresip phone), 9 puts the number on the do-not-call list,
nothing hears the message to its end. Safe harbour: 9 during the message opts out, and
the number is never dialled again. The switch is in-process with the ACD and the dialer
(as in tests/interop/test_dialer.py), its trunk on the simulator over loopback; what
the callee heard comes from the simulator's recordings, what it pressed and who was
dialled from its attempts log, what the dialer decided from its attempt rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt

from acd.campaign import as_attempt
from ivr.prompts import PromptStore
from media.wav import load_mono, write_wav
from pbx.events import CampaignEvent
from pbx.server import PbxServer
from pbx.store import Campaign, NewContact
from tests.interop.baresip import Baresip
from tests.interop.ear import peak_hz, sine
from tests.interop.peers import pbx_cli
from tests.interop.phones import PASSWORDS, in_thread
from tests.interop.test_api_bridge import Phone
from tests.interop.test_dialer import (
    AGENT_HZ,
    BARESIP_HZ,
    RATE,
    attempts,
    dialer_setup,
    first_tone,
    onset,
    sim_log,
    until,
    zone_at,
)
from tests.tools import need

#: The agentless message: a tone the callee's recording can be searched for.
OFFER_HZ = 1800
OFFER_SECONDS = 3.0

PRESS_1, SILENT, PRESS_9 = "+442079464000", "+442079464001", "+442079464002"
AGENTLESS_SCRIPT = f"""
seed = 21
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "{PRESS_1}"
behaviour = "live"
ring_seconds = 0.3
listen_seconds = 12.0
keys = [{{ after = 1.0, digits = "1" }}]

[[numbers]]
pattern = "{SILENT}"
behaviour = "live"
ring_seconds = 0.3
listen_seconds = 20.0

[[numbers]]
pattern = "{PRESS_9}"
behaviour = "live"
ring_seconds = 0.3
listen_seconds = 20.0
keys = [{{ after = 1.0, digits = "9" }}]
"""


def frames_of(samples: npt.NDArray[np.int16], hz: float) -> int:
    """How many loud 20 ms frames of `samples` peak at `hz`."""
    count = 0
    for i in range(0, len(samples) - 160, 160):
        chunk = samples[i : i + 160]
        loud = np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) >= 300
        count += bool(loud and abs(peak_hz(chunk) - hz) < 60)
    return count


async def test_agentless_keys_reach_an_agent_opt_out_or_hear_the_message(tmp_path: Path) -> None:
    """Three people answer an agentless campaign's message (an 1800 Hz tone, 3 s). The one
    who presses 1 one second into it is put through to the free agent (a baresip phone)
    and hears its tone after the message; the one who presses 9 is on the global
    do-not-call list (the store and `pbx dnc check` say so) and the row says opted out;
    the one who presses nothing hears all of the message, then the switch hangs up."""
    need("baresip")
    offer = tmp_path / "offer.wav"
    write_wav(offer, sine(OFFER_HZ, OFFER_SECONDS), RATE)
    PromptStore(tmp_path / "prompts").add("offer", offer)
    campaign = Campaign(
        "keys", "+442071230000", trunk="trunk:prov", queue="sales", mode="agentless",
        agentless_message="offer", window_start="00:00", window_end="23:59", max_lines=3,
    )  # fmt: skip
    contacts = [NewContact(n, zone_at(12)) for n in (PRESS_1, SILENT, PRESS_9)]
    async with dialer_setup(tmp_path, AGENTLESS_SCRIPT, campaign, contacts, ("1001",)) as (
        server, _acd, dialer, sim,
    ):  # fmt: skip
        assert server._store is not None
        store = server._store
        await sim.voice.say("Hello?", 0.7)
        async with Baresip(
            tmp_path / "agent-1001", user="1001", password=PASSWORDS["1001"],
            registrar_port=server.sip_port, auto_answer=True,
        ) as phone:  # fmt: skip
            await asyncio.to_thread(phone.wait_registered)
            await until(lambda: dialer.capacity("sales", ours=True) == 1, what="the agent free")
            response = await dialer._route_campaign({"campaign": "keys", "action": "start"})
            assert response[0] == 200
            await until(lambda: _rows(server, "keys", 3), 40, "three attempt rows")
            await until(lambda: len([e for e in sim_log(sim) if e.get("wav")]) == 3, 20, "wavs")
        rows = {r.number: r for r in await attempts(server, "keys")}
        listed = await store.dnc.listed(PRESS_9)
        spared = [await store.dnc.listed(n) for n in (PRESS_1, SILENT)]
    checked = await in_thread(pbx_cli, tmp_path, "dnc", "check", PRESS_9)
    assert checked.returncode == 0 and "do not call" in checked.stdout, checked
    log = {e["number"]: e for e in sim_log(sim) if e.get("wav")}
    assert [k["digits"] for k in log[PRESS_1]["keys"]] == ["1"]
    assert [k["digits"] for k in log[PRESS_9]["keys"]] == ["9"]
    assert log[SILENT]["keys"] == []

    # 1: the agent, whose tone the callee hears after the message it cut short.
    one = rows[PRESS_1]
    assert one.amd == "human" and one.agent == "1001" and one.connected_at is not None
    assert not one.opted_out
    heard = load_mono(Path(log[PRESS_1]["wav"]), RATE)
    message_at, agent_at = first_tone(heard, OFFER_HZ), first_tone(heard, BARESIP_HZ)
    assert message_at is not None and agent_at is not None and agent_at > message_at
    assert frames_of(heard, OFFER_HZ) < 0.8 * OFFER_SECONDS * 50  # stopped by the key
    assert frames_of(heard[int(agent_at * RATE) :], BARESIP_HZ) >= 100  # 2 s of the agent

    # 9: on the do-not-call list, the row says so, nobody was put through.
    nine = rows[PRESS_9]
    assert nine.opted_out and nine.agent is None and nine.amd == "human"
    assert listed is not None and listed.campaign == "" and "keys" in listed.source
    assert spared == [None, None]

    # Nothing: the whole message, then the end (the switch's BYE, long before the
    # person's own 20 s), no agent.
    silent = rows[SILENT]
    assert silent.agent is None and not silent.opted_out and silent.amd == "human"
    assert log[SILENT]["ended_by"] == "caller" and log[SILENT]["seconds"] < 15
    heard = load_mono(Path(log[SILENT]["wav"]), RATE)
    assert frames_of(heard, OFFER_HZ) >= 0.9 * OFFER_SECONDS * 50
    assert frames_of(heard, BARESIP_HZ) == 0


HARBOUR_NUMBER = "+442079464100"
HARBOUR_SCRIPT = f"""
seed = 22
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "{HARBOUR_NUMBER}"
behaviour = "live"
ring_seconds = 1.0
listen_seconds = 30.0
keys = [{{ after = 1.5, digits = "9" }}]
"""


async def test_opt_out_key_during_the_safe_harbour_message(tmp_path: Path) -> None:
    """No agent is free when the person answers (the only one paused while it rang): the
    safe-harbour message starts, the person presses 9 1.5 s into it; the message stops,
    the call ends, the number is on the do-not-call list and the row says opted out.
    A second campaign with the same number then finishes without dialling it: the
    simulator saw one call to it in all."""
    campaign = Campaign("harbour", "+442071230000", trunk="trunk:prov", queue="sales",
                        mode="progressive", seller="Acme Windows",
                        retries='{"dropped": [0, 3]}',
                        window_start="00:00", window_end="23:59")  # fmt: skip
    contact = NewContact(HARBOUR_NUMBER, zone_at(12))
    async with dialer_setup(tmp_path, HARBOUR_SCRIPT, campaign, [contact], ("1001",)) as (
        server, acd, dialer, sim,
    ):  # fmt: skip
        assert server._store is not None and server.switch is not None
        store = server._store
        await sim.voice.say("Hello?", 0.7)
        async with Phone(server, "1001", AGENT_HZ):
            await until(lambda: dialer.agent_free("sales"), what="the agent is free")
            events = server.switch.events.subscribe()
            assert (await dialer._route_campaign({"campaign": "harbour", "action": "start"}))[
                0
            ] == 200
            async with asyncio.timeout(10):
                async for event in events:
                    if isinstance(event, CampaignEvent) and event.event == "dialled":
                        break
            await acd.agent_command("1001", "pause")  # the agent leaves while it rings
            await until(lambda: _rows(server, "harbour", 1), 30, "the attempt's row")
            await until(lambda: any(e.get("wav") for e in sim_log(sim)), 20, "the recording")
            await until(lambda: _stopped(server, "harbour"), 20, "the campaign finished")
            [row] = await attempts(server, "harbour")
            listed = await store.dnc.listed(HARBOUR_NUMBER)
            [first_contact] = await store.contacts.of_campaign("harbour")
            # Later: another campaign with the same number never dials it.
            again = Campaign(
                "again", "+442071230000", trunk="trunk:prov", queue="sales",
                mode="progressive", window_start="00:00", window_end="23:59",
            )  # fmt: skip
            await store.campaigns.create(again)
            await store.contacts.add_many("again", [NewContact(HARBOUR_NUMBER, zone_at(12))])
            await acd.agent_command("1001", "unpause")
            await until(lambda: dialer.agent_free("sales"), what="the agent is back")
            assert (await dialer._route_campaign({"campaign": "again", "action": "start"}))[
                0
            ] == 200
            await until(lambda: _stopped(server, "again"), 20, "the second campaign finished")
            [second_contact] = await store.contacts.of_campaign("again")
            second_rows = await attempts(server, "again")
    [entry] = [e for e in sim_log(sim) if e["number"] == HARBOUR_NUMBER]  # one call in all
    assert [k["digits"] for k in entry["keys"]] == ["9"]
    assert row.outcome == "dropped" and row.opted_out and row.agent is None
    assert as_attempt(row).abandoned
    assert listed is not None and listed.campaign == "" and "harbour" in listed.source
    assert first_contact.state == "done"  # opted out: no retry despite the dropped rule
    assert second_contact.state == "dnc" and second_contact.attempts == 0
    assert second_rows == []
    # The message began, and the key cut it short: the call ended soon after the key,
    # long before the whole message (and the wait for a key after it) was over.
    recording = load_mono(Path(entry["wav"]), RATE)
    harbour = load_mono(tmp_path / "prompts" / "campaign-harbour-harbour.wav", RATE)
    start, alike = onset(recording, harbour)
    assert alike > 0.8, alike
    assert entry["prompt_at"] is not None and abs(entry["prompt_at"] - start) < 0.3
    assert entry["ended_by"] == "caller"
    pressed = entry["keys"][0]["at"]
    assert entry["seconds"] < start + len(harbour) / RATE, (entry, start)
    assert entry["seconds"] >= pressed


async def _rows(server: PbxServer, name: str, n: int) -> bool:
    return len(await attempts(server, name)) >= n


async def _stopped(server: PbxServer, name: str) -> bool:
    assert server._store is not None
    return (await server._store.campaigns.get(name)).state == "stopped"
