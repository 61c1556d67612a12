"""The dialer end to end on SIP (issue 17, acceptance 1 and 2): an in-process switch with
the ACD and the dialer, a trunk to the PSTN simulator (real SIP and RTP on loopback),
agents that are baresip phones sending a tone. What the callee heard is read from the
simulator's recordings; who was dialled from its attempts log; what the dialer decided
from its attempt rows."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from acd.app import AcdApplication
from acd.campaign import as_attempt
from acd.dialer import Dialer
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from media.ports import PortAllocator
from media.wav import load_mono, write_wav
from pbx.config import Settings
from pbx.events import CampaignEvent
from pbx.server import PbxServer
from pbx.sim.script import parse_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from pbx.store import Campaign, DialAttempt, NewContact, Store
from pbx.store.queues import Queue
from pbx.store.trunks import Trunk
from tests.interop.baresip import Baresip, registered
from tests.interop.ear import peak_hz, sine
from tests.interop.peers import free_port, pbx_cli
from tests.interop.phones import PASSWORDS, in_thread
from tests.tools import need

RATE = 8000
AGENT_HZ = 600
#: The tone baresip's ausine sends (tests.interop.baresip's agents' voice).
BARESIP_HZ = 440


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


@contextlib.asynccontextmanager
async def baresip_agents(
    tmp_path: Path, server: PbxServer, tones: Mapping[str, int], *, dump_calls: bool = False
) -> AsyncIterator[dict[str, Baresip]]:
    """The agents' phones as baresip (`tones`: user to the Hz its ausine sends), each
    answering every call at once; registered on the way in, stopped on the way out."""
    phones: dict[str, Baresip] = {}
    for user, hz in tones.items():
        phones[user] = Baresip(
            tmp_path / f"agent-{user}", user=user, password=PASSWORDS[user],
            registrar_port=server.sip_port, auto_answer=True, tone_hz=hz, dump_calls=dump_calls,
        )  # fmt: skip
    async with registered(list(phones.values())):
        yield phones


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
        async with baresip_agents(tmp_path, server, {"1001": AGENT_HZ}):
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


def tone_share(samples: npt.NDArray[np.int16], hz: float, start: float = 0.0) -> float:
    """The share of loud 20 ms frames from `start` (s) whose peak is `hz`."""
    frames = samples[int(start * RATE) :]
    loud = hits = 0
    for i in range(0, len(frames) - 160, 160):
        chunk = frames[i : i + 160]
        if np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) < 300:
            continue
        loud += 1
        hits += abs(peak_hz(chunk) - hz) < 60
    return hits / loud if loud else 0.0


def loud_peaks(samples: npt.NDArray[np.int16]) -> list[tuple[float, float]]:
    """(start in seconds, peak Hz) of each loud 20 ms frame, in order."""
    peaks: list[tuple[float, float]] = []
    for i in range(0, len(samples) - 160, 160):
        chunk = samples[i : i + 160]
        if np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) >= 300:
            peaks.append((i / RATE, peak_hz(chunk)))
    return peaks


def first_tone(samples: npt.NDArray[np.int16], hz: float, *, tolerance: float = 60) -> float | None:
    """Where `hz` is first the peak of 5 loud frames in a row (seconds), or None."""
    run = 0
    for i in range(0, len(samples) - 160, 160):
        chunk = samples[i : i + 160]
        loud = np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) >= 300
        run = run + 1 if loud and abs(peak_hz(chunk) - hz) < tolerance else 0
        if run == 5:
            return (i - 4 * 160) / RATE
    return None


MESSAGE_HZ = 1800
HUMANS = [f"+4420794620{i:02d}" for i in range(8)]
MACHINES = [f"+4420794621{i:02d}" for i in range(6)]
BUSY = [f"+4420794622{i:02d}" for i in range(4)]
NO_ANSWER = [f"+4420794623{i:02d}" for i in range(4)]
INVALID = [f"+4420794624{i:02d}" for i in range(3)]
ON_DNC = [f"+4420794625{i:02d}" for i in range(3)]  # would be people: never rung
LATE = [f"+4420794626{i:02d}" for i in range(2)]  # 03:00 where they live: never rung
FULL_SCRIPT = """
seed = 9
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "_+4420794620XX"
behaviour = "live"
ring_seconds = 0.5
listen_seconds = 4.0
greeting = "Hello?"

[[numbers]]
pattern = "_+4420794621XX"
behaviour = "machine"
ring_seconds = 0.5
listen_seconds = 12.0

[[numbers]]
pattern = "_+4420794622XX"
behaviour = "busy"

[[numbers]]
pattern = "_+4420794623XX"
behaviour = "no_answer"
no_answer_seconds = 1.0

[[numbers]]
pattern = "_+4420794624XX"
behaviour = "invalid"

[[numbers]]
pattern = "_+4420794625XX"
behaviour = "live"

[[numbers]]
pattern = "_+4420794626XX"
behaviour = "live"
"""


def machine_text(number: str) -> str:
    """What pbx.sim.server says for a machine before the beep."""
    return (
        f"Hello, you have reached {' '.join(number)}. Nobody can take your call"
        " right now. Please leave a message after the tone."
    )


async def test_a_30_contact_campaign_runs_to_completion(tmp_path: Path) -> None:
    """Acceptance 1: 30 contacts (8 people, 6 machines, 4 busy, 4 no answer, 3 invalid,
    3 on the DNC list, 2 outside their calling window), 3 agents (baresip phones that
    answer and send a 440 Hz tone), progressive with AMD
    and a message after the beep. DNC and out-of-window numbers never reach the
    simulator; busy and no-answer numbers are tried twice (the campaign's rules), the
    others once; every person hears an agent's tone, every machine records the message
    after its beep; every attempt has a row with its outcome."""
    need("baresip")
    message = tmp_path / "msg.wav"
    write_wav(message, sine(MESSAGE_HZ, 1.5), RATE)
    PromptStore(tmp_path / "prompts").add("leave-msg", message)
    campaign = Campaign(
        "autumn", "+442071230000", trunk="trunk:prov", queue="sales", mode="progressive",
        window_start="09:00", window_end="21:00", max_lines=6, machine_policy="message",
        machine_message="leave-msg", seller="Acme Windows",
        retries=json.dumps({"busy": [1, 2], "no_answer": [1, 2], "machine": [0, 1]}),
    )  # fmt: skip
    noon, night = zone_at(12), zone_at(3)
    contacts = [NewContact(n, noon, {"kind": "person"}) for n in HUMANS]
    contacts += [NewContact(n, noon) for n in MACHINES + BUSY + NO_ANSWER + INVALID + ON_DNC]
    contacts += [NewContact(n, night) for n in LATE]
    assert len(contacts) == 30
    agents = ("1001", "1002", "1003")
    async with dialer_setup(
        tmp_path, FULL_SCRIPT, campaign, contacts, agents, dnc=tuple(ON_DNC)
    ) as (server, _acd, dialer, sim):
        beeps = {n: len(await sim.voice.say(machine_text(n), 4.0)) / RATE for n in MACHINES}
        await sim.voice.say("Hello?", 0.7)
        assert server._store is not None
        store = server._store
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                baresip_agents(tmp_path, server, dict.fromkeys(agents, BARESIP_HZ))
            )
            await until(lambda: dialer.capacity("sales", ours=True) == 3, what="3 agents free")
            seen: list[CampaignEvent] = []
            feed = server.switch.events.subscribe(maxsize=10_000)

            async def collect() -> None:
                async for event in feed:
                    if isinstance(event, CampaignEvent):
                        seen.append(event)

            collector = asyncio.ensure_future(collect())
            stack.callback(collector.cancel)
            response = await dialer._route_campaign({"campaign": "autumn", "action": "start"})
            assert response[0] == 200

            async def settled() -> bool:
                counts = await store.contacts.counts("autumn")
                return counts["pending"] == len(LATE) and counts["dialling"] == 0

            await until(settled, 75, "every contact settled")
            await until(lambda: not dialer.runners["autumn"].calls, 20, "calls over")
        rows = await attempts(server, "autumn")
        contacts_after = {c.number: c for c in await store.contacts.of_campaign("autumn")}
        await until(lambda: len([e for e in sim_log(sim) if e.get("wav")]) == 14, 20, "wavs")
    offered = {e.number: e.data for e in seen if e.event == "offered"}
    assert sorted(offered) == sorted(HUMANS)  # the screen pop's record, before the ring
    assert all(d["record.kind"] == "person" for d in offered.values())
    ended = sorted(e.number for e in seen if e.event == "ended")
    assert ended == sorted(r.number for r in rows)
    log = sim_log(sim)
    rung = [e["number"] for e in log]
    for number in ON_DNC + LATE:
        assert number not in rung
        assert number not in [r.number for r in rows]
    expected: dict[str, list[str]] = {}
    for numbers, outcomes in (
        (HUMANS, ["connected"]),
        (MACHINES, ["machine"]),
        (BUSY, ["busy", "busy"]),
        (NO_ANSWER, ["no_answer", "no_answer"]),
        (INVALID, ["failed"]),
    ):
        expected.update((n, outcomes) for n in numbers)
    got: dict[str, list[str]] = {}
    for row in rows:
        got.setdefault(row.number, []).append(row.outcome)
    assert got == expected
    assert sorted(rung) == sorted(r.number for r in rows)  # one simulator call per row
    for number in BUSY + NO_ANSWER:  # the retry waited its delay after the first's end
        first, second = [r for r in rows if r.number == number]
        assert second.dialed_at >= first.ended_at + 1.0 - 0.05
    for row in rows:
        if row.outcome == "connected":
            assert row.amd == "human" and row.agent in agents
            assert row.wait_to_agent is not None and row.wait_to_agent <= 2.0, row
            assert not as_attempt(row).abandoned
        if row.outcome == "machine":
            assert row.amd == "machine" and row.message_left
    for number in LATE:
        later = contacts_after[number]
        assert later.state == "pending" and later.attempts == 0 and later.next_try > time.time()
    assert {contacts_after[n].state for n in ON_DNC} == {"dnc"}
    wavs = {e["number"]: Path(e["wav"]) for e in log if e.get("wav")}
    for number in HUMANS:
        heard = load_mono(wavs[number], RATE)
        assert tone_share(heard, BARESIP_HZ, start=2.0) > 0.8, number
    for number in MACHINES:
        heard = load_mono(wavs[number], RATE)
        at = first_tone(heard, MESSAGE_HZ)
        assert at is not None, number
        assert at >= beeps[number] + 0.4, (number, at, beeps[number])  # after the 0.5 s beep


PREVIEW_SCRIPT = """
seed = 11
realm = "pstn.test"
default = "invalid"

[accounts]
trunk1 = "s3cret-trunk"

[[numbers]]
pattern = "_+4420794630XX"
behaviour = "live"
ring_seconds = 0.5
listen_seconds = 4.0
greeting = "Hello?"

[[numbers]]
pattern = "_+4420794631XX"
behaviour = "busy"
"""
OTHER_HZ = 1100
#: The ring tone the switch plays to a preview agent while the customer's phone rings.
RING_HZ = 425


async def test_preview_and_a_callback_owned_by_an_agent(tmp_path: Path) -> None:
    """Preview, with the agents' phones baresip: agent 1001 takes the next contact (its
    phone rings first, then the customer's, while 1001 hears the ring tone, read from
    what baresip decoded) and the customer hears 1001's tone. A
    scheduled callback that belongs to 1002 and is due is dialled for 1002 (its phone
    first) while the campaign runs; the customer hears 1002's tone; the callback is done.
    Anyone's callback to a busy line is dialled and due again by the busy rule. Every
    attempt has its row."""
    campaign = Campaign("pv", "+442071230000", trunk="trunk:prov", queue="sales",
                        mode="preview", script="Offer the winter plan.",
                        window_start="00:00", window_end="23:59")  # fmt: skip
    customer, owed = "+442079463000", "+442079463001"
    async with dialer_setup(
        tmp_path, PREVIEW_SCRIPT, campaign, [NewContact(customer, zone_at(12))], ("1001", "1002")
    ) as (server, _acd, dialer, sim):
        assert server._store is not None
        store = server._store
        callback = await store.scheduled_callbacks.add(
            owed, time.time(), "1002", agent="1002", queue="sales", note="wants a quote"
        )
        busy = "+442079463100"  # anyone's callback; the line is busy: due again later
        anyones = await store.scheduled_callbacks.add(busy, time.time(), "1002", queue="sales")
        await sim.voice.say("Hello?", 0.7)
        tones = {"1001": AGENT_HZ, "1002": OTHER_HZ}
        async with baresip_agents(tmp_path, server, tones, dump_calls=True) as phones:
            await until(lambda: dialer.capacity("sales", ours=True) == 2, what="2 agents free")
            assert (await dialer._route_campaign({"campaign": "pv", "action": "start"}))[0] == 200
            await until(lambda: "pv" in dialer.runners, what="the campaign runs")
            status, body = await dialer._route_preview({"campaign": "pv", "agent": "1001"})
            assert status == 200, body
            assert body["contact"]["number"] == customer
            assert body["script"] == "Offer the winter plan."
            again = await dialer._route_preview({"campaign": "pv", "agent": "1001"})
            assert again == (404, {"error": "campaign pv has no contact due"})
            await until(lambda: _rows(store, 3), 30, "the three attempts")
            await until(lambda: len([e for e in sim_log(sim) if e.get("wav")]) == 2, 20, "wavs")
            # While the customer's phone rang, 1001 heard the ring tone (425 Hz; 20 ms
            # frames have 50 Hz bins), then the customer's greeting, from baresip's dump.
            peaks = loud_peaks(phones["1001"].received_audio())
            ring = list(itertools.takewhile(lambda p: abs(p[1] - RING_HZ) < 30, peaks))
            assert len(ring) >= 10, peaks  # the first sound it heard (0.5 s of ringing)
            assert len(peaks) - len(ring) >= 5, peaks  # then the greeting ("Hello?")
        rows = {r.number: r for r in await attempts(server, "pv")}
        done = await store.scheduled_callbacks.get(callback.id)
        [contact] = await store.contacts.of_campaign("pv")
        retried = await store.scheduled_callbacks.get(anyones.id)  # the busy rule: 600 s on
    assert (rows[customer].outcome, rows[customer].agent) == ("connected", "1001")
    assert (rows[owed].outcome, rows[owed].agent) == ("connected", "1002")
    assert done.state == "done" and contact.state == "done"
    assert rows[busy].outcome == "busy" and rows[busy].agent is None
    assert retried.state == "pending" and retried.due >= rows[busy].ended_at + 600 - 1
    wavs = {e["number"]: Path(e["wav"]) for e in sim_log(sim) if e.get("wav")}
    assert tone_share(load_mono(wavs[customer], RATE), AGENT_HZ) > 0.8
    assert tone_share(load_mono(wavs[owed], RATE), OTHER_HZ) > 0.8


async def _rows(store: Store, n: int) -> bool:
    return len(await store.attempts.of_campaign("pv")) >= n


async def test_a_predictive_campaign_on_sip_keeps_the_2_s_rule(tmp_path: Path) -> None:
    """Predictive mode end to end: 10 contacts (6 people, 4 machines), 2 agents (baresip
    phones sending a 600 Hz tone), up to 4 lines. The campaign finishes; each person
    either reached an agent within 2 s of the answer (and hears its tone) or heard the
    safe-harbour message and counts as abandoned; machines are told apart and hung up
    on; while agents were busy the pacer dialled ahead (more calls in progress than free
    agents at some moment)."""
    people, machines = HUMANS[:6], MACHINES[:4]
    campaign = Campaign(
        "pred", "+442071230000", trunk="trunk:prov", queue="sales", mode="predictive",
        window_start="00:00", window_end="23:59", max_lines=4, seller="Acme Windows",
        retries=json.dumps({"dropped": [0, 1], "machine": [0, 1]}),
    )  # fmt: skip
    contacts = [NewContact(n, zone_at(12)) for n in people + machines]
    agents = ("1001", "1002")
    async with dialer_setup(tmp_path, FULL_SCRIPT, campaign, contacts, agents) as (
        server, _acd, dialer, sim,
    ):  # fmt: skip
        for number in machines:
            await sim.voice.say(machine_text(number), 4.0)
        await sim.voice.say("Hello?", 0.7)
        assert server._store is not None
        store = server._store
        ahead = 0
        async with baresip_agents(tmp_path, server, dict.fromkeys(agents, AGENT_HZ)):
            await until(lambda: dialer.capacity("sales", ours=True) == 2, what="2 agents free")
            assert (await dialer._route_campaign({"campaign": "pred", "action": "start"}))[0] == 200
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while (await store.campaigns.get("pred")).state != "stopped":  # finished
                assert loop.time() < deadline, "the campaign did not finish in 60 s"
                runner = dialer.runners.get("pred")
                if runner is not None:
                    ahead = max(ahead, len(runner.calls) - dialer.capacity("sales", ours=True))
                await asyncio.sleep(0.05)
        rows = await attempts(server, "pred")
        await until(lambda: len([e for e in sim_log(sim) if e.get("wav")]) == len(rows), 20)
    assert {r.number for r in rows} == set(people + machines)
    wavs = {e["number"]: Path(e["wav"]) for e in sim_log(sim) if e.get("wav")}
    for row in rows:
        if row.number in machines:
            assert (row.outcome, row.amd) == ("machine", "machine"), row
            continue
        assert row.outcome in ("connected", "dropped"), row
        if row.outcome == "connected":
            assert row.wait_to_agent is not None and row.wait_to_agent <= 2.0, row
            assert tone_share(load_mono(wavs[row.number], RATE), AGENT_HZ, start=2.0) > 0.8
        else:
            assert as_attempt(row).abandoned
    assert any(r.outcome == "connected" for r in rows)
    assert ahead >= 1  # it dialled more lines than agents were free
