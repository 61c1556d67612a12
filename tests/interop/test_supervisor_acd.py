"""Issue 13, acceptance 4 with the real ACD application (`acd.app.AcdApplication`).

A caller (1001, the test's own client) dials queue 700; the agent (1002, a registered
phone of the test's own that answers) is logged in and gets the call; the supervisor
(1003) dials `*2221002` from their phone and listens, then presses 5 (whisper) and 6
(barge). What each side receives is checked by frequency analysis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acd import app as acd_app
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Queue, Store
from tests.interop.ear import Ear, listening, sine
from tests.interop.peers import free_port
from tests.interop.phones import PASSWORDS, dial
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_conference import (
    Party,
    _bye_from_switch,
    _hears_only,
    _settled,
    _until,
)

CALLER, AGENT, SUPERVISOR = "1001", "1002", "1003"
# Away from the prompts' stand-in tones (440-740 Hz, 480 Hz) and from each other.
HZ = {CALLER: 1100, AGENT: 1500, SUPERVISOR: 1900}
EVERY = set(HZ.values())


@pytest.fixture
async def acd(tmp_path: Path) -> AsyncIterator[tuple[PbxServer, acd_app.AcdApplication]]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.users.set_role(SUPERVISOR, "supervisor")
    await store.queues.add(Queue("sales", "700", ring_seconds=20.0))
    await store.queues.add_member("sales", AGENT)
    await store.close()
    player = PromptPlayer(PromptStore(tmp_path / "prompts"))
    player._defaults_ready = True  # no synthesis: missing prompts play a short tone
    app = acd_app.AcdApplication(player)
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port(), control_port=0), applications=[app]
    )
    await server.start()
    try:
        yield server, app
    finally:
        await server.stop()


def _only(ear: Ear, tones: set[int]) -> bool:
    """`ear` hears exactly `tones` among this test's parties' tones."""
    return _hears_only(ear, tones, EVERY)


async def test_a_supervisor_listens_whispers_and_barges_on_a_queue_call(
    acd: tuple[PbxServer, acd_app.AcdApplication],
) -> None:
    server, app = acd
    loop = asyncio.get_running_loop()
    async with (
        Party(server, AGENT, HZ[AGENT]) as agent,
        listening({}) as caller,
        SipClient(server.sip_port) as caller_ua,
        listening({}) as supervisor,
        SipClient(server.sip_port) as supervisor_ua,
    ):
        await app.agent_command(AGENT, "login")  # once its phone is registered
        _, ok = await dial(caller_ua, server, "700", caller=CALLER, rtp_port=caller.port)
        assert ok.status == 200
        caller.remote = media_address(ok.body)
        talking = [loop.create_task(caller.talk(sine(HZ[CALLER], 120.0)))]
        try:
            await _until(lambda: app.bridge_of(AGENT) is not None, "the agent gets the call")
            await _until(
                lambda: _only(caller, {HZ[AGENT]}) and agent.hears(HZ[CALLER]),
                "caller and agent talk",
            )
            _, ok = await dial(
                supervisor_ua,
                server,
                f"*222{AGENT}",
                caller=SUPERVISOR,
                rtp_port=supervisor.port,
                events=True,
            )
            assert ok.status == 200
            supervisor.remote = media_address(ok.body)
            talking.append(loop.create_task(supervisor.talk(sine(HZ[SUPERVISOR], 120.0))))
            both = {HZ[CALLER], HZ[AGENT]}
            await _settled(
                lambda: (
                    _only(supervisor, both)
                    and _only(caller, {HZ[AGENT]})
                    and agent.hears_only({HZ[CALLER]}, EVERY)
                ),
                "listen",
            )
            supervisor.press("5")
            await _settled(
                lambda: (
                    _only(supervisor, both)
                    and _only(caller, {HZ[AGENT]})
                    and agent.hears_only({HZ[CALLER], HZ[SUPERVISOR]}, EVERY)
                ),
                "whisper",
            )
            supervisor.press("6")
            await _settled(
                lambda: (
                    _only(supervisor, both)
                    and _only(caller, {HZ[AGENT], HZ[SUPERVISOR]})
                    and agent.hears_only({HZ[CALLER], HZ[SUPERVISOR]}, EVERY)
                ),
                "barge",
            )
            snapshot = app.snapshot()
            on_call = [a for a in snapshot["agents"] if a["name"] == AGENT]
            assert on_call and on_call[0]["call"] is not None
            # The agent hangs up: the switch hangs up the caller and the supervisor.
            await agent.hang_up()
            assert await _bye_from_switch(caller_ua)
            assert await _bye_from_switch(supervisor_ua)
            await _until(
                lambda: (bridge := app.bridge_of(AGENT)) is None or not bridge.active,
                "the queue call ends",
            )
        finally:
            for task in talking:
                task.cancel()
            await asyncio.gather(*talking, return_exceptions=True)
