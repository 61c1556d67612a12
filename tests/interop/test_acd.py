"""The ACD application end to end (issue 13 point 3): sipp agent phones logged in by
`*50`, callers (the test's own SIP clients) queued with music and announcements,
offers distributed by the queue's strategy, wrap-up honoured, pause, callbacks.

Who got which call is read from the queue events the application stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from acd.app import LOGIN_CODE, LOGOUT_CODE, PAUSE_CODE, AcdApplication
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from ivr.runner import IvrApplication
from ivr.voicemail import VoicemailApplication
from media.wav import write_wav
from pbx.calls import CallState
from pbx.config import Settings
from pbx.events import QueueOffered
from pbx.server import PbxServer
from pbx.store import Store
from pbx.store.dialplan import Forwarding
from pbx.store.queue_events import QueueEventRecord
from pbx.store.queues import Queue
from sip.message import Request, Response, make_response, parse_message
from tests.interop.ear import listening, sine
from tests.interop.peers import free_port, pbx_cli
from tests.interop.phones import PASSWORDS, dial, phone
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_api_bridge import Phone

AGENTS = ("1001", "1002", "1003")
CALLERS = tuple(f"200{i}" for i in range(6))  # a user has 4 calls at most
MUSIC_HZ = 700
#: Prompts replaced by pure tones, so that what a caller heard reads back in order.
TONES = {
    "music": MUSIC_HZ,
    "queue-you-are": 900,
    "queue-in-line": 1100,
    "digit-1": 1300,
    "digit-2": 1500,
    "queue-callback-offer": 1700,
    "queue-callback-saved": 1900,
    "agent-logged-in": 500,
    "agent-logged-out": 600,
    "agent-paused": 2100,
    "agent-unpaused": 2300,
    "agent-not-member": 2500,
    "vm-beep": 2700,
    "queue-unavailable": 2900,
}


@pytest.fixture(autouse=True)
def _caller_user(monkeypatch: pytest.MonkeyPatch) -> None:
    for caller in CALLERS:
        monkeypatch.setitem(PASSWORDS, caller, "Ck3-secret-pass-" + "abcdef"[int(caller[-1])])


@contextlib.asynccontextmanager
async def acd_server(
    tmp_path: Path,
    queue: Queue,
    members: tuple[str, ...] = AGENTS,
    skills: dict[str, dict[str, int]] | None = None,
    voicemail: bool = False,
    menu: str = "",
    others: tuple[tuple[Queue, tuple[str, ...]], ...] = (),
    media_timeout: float = 60.0,
) -> AsyncIterator[tuple[PbxServer, AcdApplication]]:
    """An in-process switch with users 1001-1003 (agents) and 2000-2005 (callers), `queue`
    with `members` (and `others`, queues with their members), tone prompts, and the ACD
    application as a service."""
    prompts = PromptStore(tmp_path / "prompts")
    t = np.arange(int(8000 * 0.3)) / 8000
    (tmp_path / "moh").mkdir()
    write_wav(tmp_path / "moh" / "tone.wav", sine(MUSIC_HZ, 2.0), 8000)
    for name, hz in TONES.items():
        if name == "music":
            continue
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), 8000)
        prompts.add(name, wav)
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.queues.add(queue)
    for agent in members:
        await store.queues.add_member(queue.name, agent)
    for other, other_members in others:
        await store.queues.add(other)
        for agent in other_members:
            await store.queues.add_member(other.name, agent)
    for agent, levels in (skills or {}).items():
        await store.agents.set_skills(agent, levels)
    if menu:
        await store.ivr.put(menu)
    await store.close()
    app = AcdApplication(PromptPlayer(prompts))
    mailboxes = VoicemailApplication(tmp_path, player=PromptPlayer(prompts)) if voicemail else None
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port(), media_timeout=media_timeout),
        applications=[IvrApplication(tmp_path), app] if menu else [app],
        voicemail=mailboxes,
    )
    await server.start()
    try:
        yield server, app
    finally:
        await server.stop()


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `condition` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def answer_bye(ua: SipClient, timeout: float = 15.0) -> None:
    """Wait for the switch's BYE and answer it 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        raw = await ua.receive(timeout=deadline - loop.time())
        if raw is None:
            break
        message = parse_message(raw)
        if isinstance(message, Request) and message.method != "ACK":
            ua.send(bytes(make_response(message, 200, to_tag=None)))
            if message.method == "BYE":
                return
    raise AssertionError("no BYE from the switch")


async def feature_code(server: PbxServer, agent: str, code: str) -> None:
    """The agent dials `code`: answered, a confirmation, the switch hangs up."""
    async with SipClient(server.sip_port) as ua:
        _, ok = await dial(ua, server, code, caller=agent)
        assert ok.status == 200
        await answer_bye(ua)


def talking(app: AcdApplication) -> set[str]:
    """The numbers of the callers bridged to an agent now."""
    callers = [app.engine.caller(c) for c in app.engine.calls().values()]
    return {c.number for c in callers if c is not None}


async def events(server: PbxServer, *names: str) -> list[QueueEventRecord]:
    assert server._store is not None
    rows = await server._store.queue_events.between(0, 1e12)
    return [e for e in rows if not names or e.event in names]


async def test_callers_wait_and_are_distributed_round_robin_with_wrap_up(
    tmp_path: Path,
) -> None:
    """6 callers, 3 agents logged in by *50 (rrmemory, wrap-up 1 s): the first three go
    to 1001, 1002, 1003 in turn, the others wait until an agent has wrapped up; every
    agent takes two calls and is never offered one before its wrap-up ended."""
    queue = Queue("sales", "700", strategy="rrmemory", wrapup_seconds=1.0, ring_seconds=10)
    async with acd_server(tmp_path, queue) as (server, app):
        phones = [await phone(server, a, "uas_answer.xml", tmp_path / a, "-m", "2") for a in AGENTS]
        try:
            for agent in AGENTS:
                await feature_code(server, agent, LOGIN_CODE)
            assert [a["state"] for a in app.snapshot()["agents"]] == ["available"] * 3
            async with contextlib.AsyncExitStack() as stack:
                uas = [
                    await stack.enter_async_context(SipClient(server.sip_port)) for _ in range(6)
                ]
                calls = []
                for i, ua in enumerate(uas):
                    invite, ok = await dial(ua, server, "700", caller=CALLERS[i])
                    assert ok.status == 200
                    calls.append((invite, ok))
                    if i < 3:  # each of the first three is bridged before the next comes
                        await until(lambda n=i: CALLERS[n] in talking(app))
                await until(lambda: len(app.snapshot()["queues"][0]["waiting"]) == 3)
                for i in range(6):  # callers hang up in turn; a waiting one takes the agent
                    invite, ok = calls[i]
                    await until(lambda n=i: CALLERS[n] in talking(app))
                    bye = await uas[i].exchange(uas[i].in_dialog(invite, ok, "BYE", 3), timeout=10)
                    assert bye.status == 200
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            for p in phones:
                p.kill()
        connects = await events(server, "CONNECT")
        completes = await events(server, "COMPLETECALLER", "COMPLETEAGENT")
    assert [c.agent for c in connects[:3]] == ["1001", "1002", "1003"]
    assert sorted(c.agent or "" for c in connects) == [
        "1001",
        "1001",
        "1002",
        "1002",
        "1003",
        "1003",
    ]
    assert len(completes) == 6
    for agent in AGENTS:  # wrap-up honoured: the second offer rang after the first's end + 1 s
        first_end = min(c.time for c in completes if c.agent == agent)
        second = max((c for c in connects if c.agent == agent), key=lambda c: c.time)
        offered = second.time - float(second.data["ring"])
        assert offered >= first_end + 1.0 - 1e-6, (agent, offered, first_end)


async def test_paused_agent_never_offered_and_missed_rings_auto_pause(tmp_path: Path) -> None:
    """linear queue 1001, 1002, 1003: 1001 pauses with *52 (never offered), 1002's phone
    rings without answering (RINGNOANSWER, then auto-paused after 1 miss), 1003 takes
    the call; *52 again unpauses 1001, *51 logs 1003 out; the control route answers
    404 / 409 for an unknown agent / a refused change."""
    queue = Queue(
        "sales", "700", strategy="linear", ring_seconds=2.0, retry_seconds=0.5, autopause_after=1
    )
    async with acd_server(tmp_path, queue) as (server, app):
        phones = [
            await phone(server, "1001", "uas_answer.xml", tmp_path / "1001"),
            await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002"),
            await phone(server, "1003", "uas_answer.xml", tmp_path / "1003"),
        ]
        try:
            for agent in AGENTS:
                await feature_code(server, agent, LOGIN_CODE)
            await feature_code(server, "1001", PAUSE_CODE)
            states = {a["name"]: (a["state"], a["reason"]) for a in app.snapshot()["agents"]}
            assert states["1001"] == ("paused", "phone")
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "700", caller=CALLERS[0])
                assert ok.status == 200
                await until(lambda: CALLERS[0] in talking(app))
                # The engine says connected, then the caller's task makes the bridge.
                await until(lambda: app.bridge_of("1003") is not None)
                assert app.bridge_of("1001") is None
                states = {a["name"]: (a["state"], a["reason"]) for a in app.snapshot()["agents"]}
                assert states == {
                    "1001": ("paused", "phone"),
                    "1002": ("paused", "auto-pause"),
                    "1003": ("on-call", None),
                }
                bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
                assert bye.status == 200
            await until(lambda: not app.engine.calls())
            await feature_code(server, "1001", PAUSE_CODE)
            await feature_code(server, "1003", LOGOUT_CODE)
            assert await app._route_agent({"agent": "9999", "action": "pause"}) == (
                404,
                {"error": "no agent '9999'"},
            )
            status, body = await app._route_agent({"agent": "1003", "action": "pause"})
            assert (status, body) == (409, {"error": "1003 is not logged in"})
            status, body = await app._route_agent(
                {"agent": "1002", "action": "unpause", "queue": "sales"}
            )
            assert status == 200 and body["state"] == "available"
            await app.flush()
        finally:
            for p in phones:
                p.kill()
        rows = [(e.agent, e.event, e.data.get("reason")) for e in await events(server)]
    assert not [r for r in rows if r[0] == "1001" and r[1] in ("RINGNOANSWER", "CONNECT")]
    assert ("1002", "RINGNOANSWER", None) in rows
    assert ("1002", "PAUSE", "auto-pause") in rows
    assert ("1001", "PAUSE", "phone") in rows
    assert [r[1] for r in rows if r[0] == "1003"] == [
        "AGENTLOGIN",
        "CONNECT",
        "COMPLETECALLER",
        "AGENTLOGOFF",
    ]
    assert ("1001", "UNPAUSE", None) in rows


async def test_caller_hears_music_and_position_then_keeps_its_place_by_callback(
    tmp_path: Path,
) -> None:
    """A caller alone in a queue with no agent logged in hears music, then "you are
    number 1 in line, press 1 to be called back"; it presses 1, hears the confirmation
    and is hung up; when 1001 logs in, 1001's phone rings first, then the caller's
    number (2000's phone) is dialled and the two are bridged."""
    queue = Queue("sales", "700", announce_frequency=2.0, ring_seconds=5.0)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        customer = await phone(server, CALLERS[0], "uas_answer.xml", tmp_path / "customer")
        try:
            async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
                _, ok = await dial(
                    ua, server, "700", caller=CALLERS[0], rtp_port=ear.port, events=True
                )
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for(
                    "music", "queue-you-are", "digit-1", "queue-in-line", "queue-callback-offer"
                )
                await ear.wait_for("queue-callback-offer", "music")
                ear.press("1")
                await ear.wait_for("queue-callback-saved")
                await answer_bye(ua)
            [row] = app.snapshot()["queues"][0]["waiting"]
            assert (row["caller"], row["callback"]) == (CALLERS[0], True)
            await feature_code(server, "1001", LOGIN_CODE)
            await until(lambda: app.bridge_of("1001") is not None)
            bridge = app.bridge_of("1001")
            assert bridge is not None
            assert {bridge.a.callee, bridge.b.callee} == {"1001", CALLERS[0]}
            await bridge.a.hangup()  # the customer hangs up
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            agent.kill()
            customer.kill()
        rows = [(e.agent, e.event, e.data.get("status")) for e in await events(server)]
        assert server._store is not None
        assert await server._store.callbacks.pending() == []
    assert [r for r in rows if r[1] not in ("AGENTLOGIN", "WRAPUPEND")] == [
        (None, "ENTERQUEUE", None),
        (None, "CALLBACKREQUEST", None),
        ("1001", "CALLBACKATTEMPT", "answered"),
        ("1001", "CONNECT", None),
        ("1001", "COMPLETECALLER", None),
    ]


async def call_in(server: PbxServer, ua: SipClient, caller: str) -> tuple[bytes, Response]:
    invite, ok = await dial(ua, server, "700", caller=caller)
    assert ok.status == 200
    return invite, ok


async def hang_up(ua: SipClient, call: tuple[bytes, Response]) -> None:
    bye = await ua.exchange(ua.in_dialog(call[0], call[1], "BYE", 3), timeout=10)
    assert bye.status == 200


async def test_ringall_rings_every_free_agent_at_once(tmp_path: Path) -> None:
    """ringall: the caller's offer rings 1001, 1002 and 1003 together; 1001 answers,
    the two others are cancelled (their phones see INVITE then CANCEL)."""
    queue = Queue("sales", "700", strategy="ringall", ring_seconds=10.0)
    async with acd_server(tmp_path, queue) as (server, app):
        phones = [
            await phone(server, "1001", "uas_answer.xml", tmp_path / "1001"),
            await phone(server, "1002", "uas_ring_cancel.xml", tmp_path / "1002"),
            await phone(server, "1003", "uas_ring_cancel.xml", tmp_path / "1003"),
        ]
        try:
            for agent in AGENTS:
                await feature_code(server, agent, LOGIN_CODE)
            async with SipClient(server.sip_port) as ua:
                call = await call_in(server, ua, CALLERS[0])
                await until(lambda: CALLERS[0] in talking(app))
                assert app.engine.calls().keys() == {"1001"}
                for cancelled in phones[1:]:  # INVITE, CANCEL, 487, ACK: one call done
                    assert await asyncio.to_thread(cancelled.finish, 20) == 0
                await hang_up(ua, call)
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            for p in phones:
                p.kill()
        connects = await events(server, "CONNECT")
    assert [c.agent for c in connects] == ["1001"]


async def test_leastrecent_gives_the_call_to_the_agent_idle_longest(tmp_path: Path) -> None:
    """leastrecent (no wrap-up): three calls end in the order 2, 3, 1 of their agents;
    the next two callers go to the agent of call 2, then of call 3."""
    queue = Queue("sales", "700", strategy="leastrecent", ring_seconds=10.0)
    async with acd_server(tmp_path, queue) as (server, app):
        phones = [await phone(server, a, "uas_answer.xml", tmp_path / a, "-m", "2") for a in AGENTS]
        try:
            for agent in AGENTS:
                await feature_code(server, agent, LOGIN_CODE)
            async with contextlib.AsyncExitStack() as stack:
                uas = [
                    await stack.enter_async_context(SipClient(server.sip_port)) for _ in range(5)
                ]
                calls = []
                for i in range(3):
                    calls.append(await call_in(server, uas[i], CALLERS[i]))
                    await until(lambda n=i: CALLERS[n] in talking(app))
                agent_of = {app.engine.caller(c).number: a for a, c in app.engine.calls().items()}  # type: ignore[union-attr]
                for i in (1, 2, 0):
                    await hang_up(uas[i], calls[i])
                    await until(lambda n=i: CALLERS[n] not in talking(app))
                    await asyncio.sleep(0.05)  # distinct end times
                later = [await call_in(server, uas[3], CALLERS[3])]
                await until(lambda: CALLERS[3] in talking(app))
                later.append(await call_in(server, uas[4], CALLERS[4]))
                await until(lambda: CALLERS[4] in talking(app))
                got = {app.engine.caller(c).number: a for a, c in app.engine.calls().items()}  # type: ignore[union-attr]
                assert got[CALLERS[3]] == agent_of[CALLERS[1]]
                assert got[CALLERS[4]] == agent_of[CALLERS[2]]
                await hang_up(uas[3], later[0])
                await hang_up(uas[4], later[1])
            await until(lambda: not app.engine.calls())
        finally:
            for p in phones:
                p.kill()


async def test_skills_queue_offers_only_agents_with_the_level(tmp_path: Path) -> None:
    """A queue requiring french >= 5: 1002 (french 7) takes both callers in turn; 1001
    (french 3) and 1003 (no french) are never offered, the second caller waits."""
    queue = Queue("sales", "700", strategy="leastrecent", skills={"french": 5})
    skills = {"1001": {"french": 3}, "1002": {"french": 7}}
    async with acd_server(tmp_path, queue, skills=skills) as (server, app):
        phones = [await phone(server, a, "uas_answer.xml", tmp_path / a, "-m", "2") for a in AGENTS]
        try:
            for agent in AGENTS:
                await feature_code(server, agent, LOGIN_CODE)
            async with SipClient(server.sip_port) as ua1, SipClient(server.sip_port) as ua2:
                first = await call_in(server, ua1, CALLERS[0])
                await until(lambda: CALLERS[0] in talking(app))
                second = await call_in(server, ua2, CALLERS[1])
                await until(lambda: len(app.snapshot()["queues"][0]["waiting"]) == 1)
                assert app.engine.offers() == {}
                await hang_up(ua1, first)
                await until(lambda: CALLERS[1] in talking(app))
                await hang_up(ua2, second)
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            for p in phones:
                p.kill()
        rows = [(e.agent, e.event) for e in await events(server)]
    offered = [a for a, e in rows if e in ("CONNECT", "RINGNOANSWER", "RINGCANCELED")]
    assert offered == ["1002", "1002"]


async def test_an_agent_whose_phone_dies_mid_call_is_never_left_on_call(tmp_path: Path) -> None:
    """1001's sipp is killed (-9) while it talks to a caller: when the caller hangs up the
    agent is free again (no BYE answer needed); the next caller's offer to the dead phone
    ends as a ring-no-answer, never an agent stuck ringing or on call."""
    queue = Queue("sales", "700", ring_seconds=2.0, retry_seconds=0.5)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with SipClient(server.sip_port) as ua, SipClient(server.sip_port) as ua2:
                call = await call_in(server, ua, CALLERS[0])
                await until(lambda: CALLERS[0] in talking(app))
                agent.kill()
                await hang_up(ua, call)
                await until(lambda: not app.engine.calls())
                [row] = app.snapshot()["agents"]
                assert (row["state"], row["call"]) == ("available", None)
                second = await call_in(server, ua2, CALLERS[1])
                await until(
                    lambda: (
                        any(e["state"] == "available" for e in app.snapshot()["agents"])
                        and not app.engine.offers()
                        and bool(app.snapshot()["queues"][0]["waiting"])
                        and app.engine.agent("1001").missed_offers > 0
                    ),  # type: ignore[union-attr]
                    timeout=40,
                )
                await hang_up(ua2, second)
            await app.flush()
        finally:
            agent.kill()
        rows = [(e.agent, e.event) for e in await events(server)]
    assert rows[:4] == [
        ("1001", "AGENTLOGIN"),
        (None, "ENTERQUEUE"),
        ("1001", "CONNECT"),
        ("1001", "COMPLETECALLER"),
    ]
    assert ("1001", "RINGNOANSWER") in rows


async def test_a_forwarding_to_a_queue_target_reaches_the_queue(tmp_path: Path) -> None:
    """1003 forwards always to queue:sales: a call to 1003 is handed to the ACD (no more
    480 "not served"), queued and bridged to the agent."""
    queue = Queue("sales", "700")
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        assert server._store is not None
        await server._store.dialplan.set_forwarding(Forwarding("1003", always="queue:sales"))
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with SipClient(server.sip_port) as ua:
                invite, ok = await dial(ua, server, "1003", caller=CALLERS[0])
                assert ok.status == 200
                await until(lambda: CALLERS[0] in talking(app))
                await hang_up(ua, (invite, ok))
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            agent.kill()
        rows = [(e.queue, e.agent, e.event) for e in await events(server)]
    assert rows == [
        ("", "1001", "AGENTLOGIN"),
        ("sales", None, "ENTERQUEUE"),
        ("sales", "1001", "CONNECT"),
        ("sales", "1001", "COMPLETECALLER"),
    ]


async def test_callback_bridges_agent_and_customer_with_audio_both_ways(tmp_path: Path) -> None:
    """The callback's agent (1001, sending 600 Hz) and customer (2000, sending 1400 Hz)
    hear each other once bridged: a tone each way, by frequency analysis."""
    queue = Queue("sales", "700", ring_seconds=10.0)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        async with Phone(server, "1001", 600) as agent, Phone(server, CALLERS[0], 1400) as customer:
            async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
                port = ear.port
                _, ok = await dial(ua, server, "700", caller=CALLERS[0], rtp_port=port, events=True)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for("music")
                ear.press("1")
                await ear.wait_for("queue-callback-saved")
                await answer_bye(ua)
            await feature_code(server, "1001", LOGIN_CODE)
            await until(lambda: agent.hears(1400) and customer.hears(600))
            bridge = app.bridge_of("1001")
            assert bridge is not None
            await customer.hang_up()
            await until(lambda: not app.engine.calls())
            await app.flush()
        connects = await events(server, "CONNECT")
    assert [c.agent for c in connects] == ["1001"]


async def test_an_agent_busy_on_a_non_queue_call_is_not_offered(tmp_path: Path) -> None:
    """1001 calls 1002 directly (not a queue call): while that call lasts a queued caller
    is not offered to 1001 (ring_in_use off); when it ends, the caller gets 1001."""
    queue = Queue("sales", "700", ring_seconds=10.0)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        other = await phone(server, "1002", "uas_answer.xml", tmp_path / "1002")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with SipClient(server.sip_port) as own, SipClient(server.sip_port) as ua:
                private = await dial(own, server, "1002", caller="1001")
                assert private[1].status == 200
                await until(lambda: app.engine.agent("1001").in_use)  # type: ignore[union-attr]
                queued = await call_in(server, ua, CALLERS[0])
                await until(lambda: bool(app.snapshot()["queues"][0]["waiting"]))
                assert app.engine.offers() == {} and not app.engine.calls()
                await hang_up(own, private)
                await until(lambda: CALLERS[0] in talking(app))
                await hang_up(ua, queued)
            await until(lambda: not app.engine.calls())
        finally:
            agent.kill()
            other.kill()


async def test_max_wait_sends_the_caller_to_the_overflow_target(tmp_path: Path) -> None:
    """No agent logged in, max wait 1 s, overflow to extension 1002: the caller leaves
    with EXITWITHTIMEOUT and is connected to 1002's phone."""
    queue = Queue("sales", "700", max_wait_seconds=1.0, overflow="1002")
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        other = await phone(server, "1002", "uas_answer.xml", tmp_path / "1002")
        try:
            async with SipClient(server.sip_port) as ua:
                call = await call_in(server, ua, CALLERS[0])
                assert server.b2bua is not None
                await until(lambda: bool(server.b2bua and server.b2bua.bridges))
                assert app.snapshot()["queues"][0]["waiting"] == []
                await hang_up(ua, call)
            assert await asyncio.to_thread(other.finish, 20) == 0  # 1002 got the BYE
            await app.flush()
        finally:
            other.kill()
        rows = [(e.event, e.data.get("position")) for e in await events(server)]
    assert rows == [("ENTERQUEUE", 1), ("EXITWITHTIMEOUT", 1)]


async def test_the_voicemail_key_leaves_a_message_in_the_queues_mailbox(tmp_path: Path) -> None:
    """voicemail key 2, overflow vm:1002 (the queue's mailbox): the caller presses 2,
    leaves the queue (EXITWITHKEY) and records a message in 1002's box."""
    queue = Queue("sales", "700", voicemail_key="2", overflow="vm:1002", max_wait_seconds=600)
    async with acd_server(tmp_path, queue, members=("1001",), voicemail=True) as (server, app):
        async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
            port = ear.port
            invite, ok = await dial(
                ua, server, "700", caller=CALLERS[0], rtp_port=port, events=True
            )
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            await ear.wait_for("music")
            ear.press("2")
            assert server._store is not None
            await until(lambda: not app.snapshot()["queues"][0]["waiting"])
            await ear.wait_for("vm-beep")
            await ear.talk(sine(800, 1.0))
            await hang_up(ua, (invite, ok))
        await app.flush()
        rows = [(e.event, e.data.get("key")) for e in await events(server)]
        for _ in range(100):
            messages = await server._store.voicemail.messages("1002")
            if messages:
                break
            await asyncio.sleep(0.05)
    assert rows == [("ENTERQUEUE", None), ("EXITWITHKEY", "2")]
    assert [m.caller for m in messages] == [CALLERS[0]]


async def test_a_non_member_dialling_the_login_code_hears_so(tmp_path: Path) -> None:
    """1003 is in no queue: *50 answers, plays "agent-not-member" and hangs up."""
    async with acd_server(tmp_path, Queue("sales", "700"), members=("1001",)) as (server, app):
        async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
            _, ok = await dial(ua, server, LOGIN_CODE, caller="1003", rtp_port=ear.port)
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            await answer_bye(ua)
            await ear.wait_for("agent-not-member")
        assert [a["name"] for a in app.snapshot()["agents"]] == ["1001"]
        assert await events(server) == []


MENU = """
[[menu]]
name = "main"
number = "800"
greeting = "queue-in-line"
timeout = 10.0
[menu.options]
"1" = "extension:queue:sales"
"""


async def test_an_ivr_choice_naming_a_queue_puts_the_caller_in_it(tmp_path: Path) -> None:
    """The IVR's key 1 is `queue:sales`: the IVR caller is handed to the ACD (no new
    media, no re-INVITE) and bridged to the agent; the offer (the screen pop's cue) says
    what the caller chose in the IVR."""
    async with acd_server(tmp_path, Queue("sales", "700"), members=("1001",), menu=MENU) as (
        server,
        app,
    ):
        offers = server.events.subscribe()
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
                port = ear.port
                invite, ok = await dial(
                    ua, server, "800", caller=CALLERS[0], rtp_port=port, events=True
                )
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await ear.wait_for("queue-in-line")  # the menu's greeting
                ear.press("1")
                await until(lambda: CALLERS[0] in talking(app))
                await hang_up(ua, (invite, ok))
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            agent.kill()
        rows = [(e.queue, e.event) for e in await events(server) if e.call_id]
        popped = [e for e in offers.take() if isinstance(e, QueueOffered)]
    assert rows == [("sales", "ENTERQUEUE"), ("sales", "CONNECT"), ("sales", "COMPLETECALLER")]
    assert [(e.agent, e.caller, e.ivr) for e in popped] == [("1001", CALLERS[0], "main 1")]


async def test_a_full_queue_says_so_and_hangs_up(tmp_path: Path) -> None:
    """max callers 1: the second caller is answered, hears "queue-unavailable" and is hung
    up; no queue event is written for it (app_queue logs no refused join either)."""
    queue = Queue("sales", "700", max_callers=1)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        async with SipClient(server.sip_port) as first, SipClient(server.sip_port) as second:
            call = await call_in(server, first, CALLERS[0])
            await until(lambda: len(app.snapshot()["queues"][0]["waiting"]) == 1)
            async with listening(TONES) as ear:
                _, ok = await dial(second, server, "700", caller=CALLERS[1], rtp_port=ear.port)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                await answer_bye(second)
                await ear.wait_for("queue-unavailable")
            await hang_up(first, call)
        await app.flush()
        rows = [(e.event, e.data.get("caller")) for e in await events(server)]
    assert rows == [("ENTERQUEUE", CALLERS[0]), ("ABANDON", None)]


async def test_an_agent_escalates_its_call_to_the_specialist_queue(tmp_path: Path) -> None:
    """`pbx agent escalate 1001 -q refunds` (through the running ACD's `POST
    /acd/escalate`): 1001's phone gets a BYE, the caller stays up and is offered to 1002
    (refunds), whose phone answers; the queue log says TRANSFER. An agent on no call is
    refused in one line."""
    queue = Queue("sales", "700", ring_seconds=10.0)
    refunds = Queue("refunds", "701", ring_seconds=10.0)
    async with acd_server(tmp_path, queue, members=("1001",), others=((refunds, ("1002",)),)) as (
        server,
        app,
    ):
        first = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        second = await phone(server, "1002", "uas_answer.xml", tmp_path / "1002")
        try:
            for agent in ("1001", "1002"):
                await feature_code(server, agent, LOGIN_CODE)
            async with SipClient(server.sip_port) as ua:
                call = await call_in(server, ua, CALLERS[0])
                await until(lambda: app.engine.calls().keys() == {"1001"})
                refused = await asyncio.to_thread(
                    pbx_cli, tmp_path, "agent", "escalate", "1002", "--queue", "sales"
                )
                assert refused.returncode == 1 and refused.stderr.count("\n") == 1
                assert refused.stderr.startswith("pbx: error: ")
                assert "1002 is on no queue call" in refused.stderr
                args = ("agent", "escalate", "1001", "-q", "refunds", "-n", "order 42")
                done = await asyncio.to_thread(pbx_cli, tmp_path, *args)
                assert done.returncode == 0, done.stderr
                assert done.stdout.startswith("1001's call ")
                assert done.stdout.endswith(" waits in queue refunds\n")
                assert await asyncio.to_thread(first.finish, 20) == 0  # INVITE ... BYE: done
                await until(lambda: app.engine.calls().keys() == {"1002"})
                assert CALLERS[0] in talking(app)
                await hang_up(ua, call)
            assert await asyncio.to_thread(second.finish, 20) == 0
            await until(lambda: not app.engine.calls())
            await app.flush()
        finally:
            first.kill()
            second.kill()
        rows = [(e.queue, e.agent, e.event) for e in await events(server) if e.call_id]
    assert rows == [
        ("sales", None, "ENTERQUEUE"),
        ("sales", "1001", "CONNECT"),
        ("sales", "1001", "TRANSFER"),
        ("refunds", None, "ENTERQUEUE"),
        ("refunds", "1002", "CONNECT"),
        ("refunds", "1002", "COMPLETECALLER"),
    ]


async def test_an_agent_whose_phone_vanishes_while_the_caller_stays_is_freed(
    tmp_path: Path,
) -> None:
    """1001's phone (sipp, which sends no RTP) is killed while it talks to a caller who
    goes on talking: after the media timeout (2 s here, 60 s by default) the switch hangs
    up the silent agent leg, the call completes by the agent, the caller gets a BYE and
    1001 is free for the next call: not left "on call" until the caller hangs up."""
    queue = Queue("sales", "700", ring_seconds=10.0)
    async with acd_server(tmp_path, queue, members=("1001",), media_timeout=2.0) as (
        server,
        app,
    ):
        agent = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with listening(TONES) as ear, SipClient(server.sip_port) as ua:
                _, ok = await dial(ua, server, "700", caller=CALLERS[0], rtp_port=ear.port)
                assert ok.status == 200
                ear.remote = media_address(ok.body)
                talking_task = asyncio.ensure_future(ear.talk(sine(400, 20.0)))
                try:
                    await until(lambda: CALLERS[0] in talking(app))
                    agent.kill()
                    await answer_bye(ua, timeout=15)
                finally:
                    talking_task.cancel()
                    await asyncio.gather(talking_task, return_exceptions=True)
            await until(lambda: not app.engine.calls())
            [row] = app.snapshot()["agents"]
            assert row["state"] == "available" and row["call"] is None
            await app.flush()
        finally:
            agent.kill()
        rows = [(e.agent, e.event) for e in await events(server) if e.call_id]
    assert rows == [(None, "ENTERQUEUE"), ("1001", "CONNECT"), ("1001", "COMPLETEAGENT")]


async def test_an_agent_transfers_its_call_to_an_extension(tmp_path: Path) -> None:
    """`pbx agent transfer 1001 1003`: 1001's phone gets a BYE, the caller is put
    through to 1003 (a plain extension, not an agent), whose phone answers; the queue log
    ends with TRANSFER {target: 1003} and 1001 is free again."""
    queue = Queue("sales", "700", ring_seconds=10.0)
    async with acd_server(tmp_path, queue, members=("1001",)) as (server, app):
        first = await phone(server, "1001", "uas_answer.xml", tmp_path / "1001")
        other = await phone(server, "1003", "uas_answer.xml", tmp_path / "1003")
        try:
            await feature_code(server, "1001", LOGIN_CODE)
            async with SipClient(server.sip_port) as ua:
                call = await call_in(server, ua, CALLERS[0])
                await until(lambda: app.engine.calls().keys() == {"1001"})
                done = await asyncio.to_thread(
                    pbx_cli, tmp_path, "agent", "transfer", "1001", "1003"
                )
                assert done.returncode == 0, done.stderr
                assert done.stdout.endswith(" transferred to 1003\n")
                assert await asyncio.to_thread(first.finish, 20) == 0  # INVITE ... BYE: done
                await until(lambda: not app.engine.calls())
                await until(
                    lambda: any(
                        c.callee == "1003" and c.state is CallState.UP
                        for c in server.calls.calls.values()
                    )
                )
                await hang_up(ua, call)
            assert await asyncio.to_thread(other.finish, 20) == 0
            await app.flush()
        finally:
            first.kill()
            other.kill()
        rows = [(e.agent, e.event) for e in await events(server) if e.call_id]
        transfer = (await events(server, "TRANSFER"))[0]
    assert rows == [(None, "ENTERQUEUE"), ("1001", "CONNECT"), ("1001", "TRANSFER")]
    assert transfer.data["target"] == "1003"
