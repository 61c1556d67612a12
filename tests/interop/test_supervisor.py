"""Issue 13, acceptance 4: supervisor listen, whisper and barge reach exactly the right
sides, on real SIP and RTP.

The agent's queue call is built without the ACD: the switch dials the caller (1001,
500 Hz) and the agent (1002, 900 Hz) and bridges them, and a stand-in ACD returns that
bridge for agent 1002 (`SupervisedAcd`). The stand-in is an application and a service
like the ACD's: it hands the supervision codes to `Supervision.handle_code` and serves
`POST /acd/supervise` through `Supervision.register_routes`. The supervisor (1003,
1300 Hz) dials in by feature code, or is rung by `pbx agent spy|whisper|barge`. What
each side receives is checked by frequency analysis (a windowed DFT per tone).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from acd.supervisor import Supervision, parse_code
from media.wav import write_wav
from pbx.api import Bridge, Call, Switch
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from tests.interop.baresip import Baresip
from tests.interop.ear import Ear, listening, sine
from tests.interop.peers import free_port, pbx_cli
from tests.interop.phones import PASSWORDS, closed_cdrs, dial
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_conference import (
    Party,
    _bye_from_switch,
    _hears_only,
    _settled,
    _until,
    level,
)

CALLER, AGENT, SUPERVISOR = "1001", "1002", "1003"
HZ = {CALLER: 500, AGENT: 900, SUPERVISOR: 1300}
EVERY = set(HZ.values())
#: The prompts' tone patterns (acd.supervisor plays them when it has no prompt player).
PROMPT_TONES = {"low": 440, "high": 620}


@dataclass
class StandInAcd:
    """The ACD as supervision sees it (`SupervisedAcd`), and its hand-over of the codes
    and its control route, as `acd.app.AcdApplication` does."""

    bridges: dict[str, Bridge] = field(default_factory=dict)
    supervision: Supervision | None = None

    def bridge_of(self, agent: str) -> Bridge | None:
        return self.bridges.get(agent)

    async def start(self, switch: Switch) -> None:
        self.supervision = Supervision(self, switch)
        self.supervision.register_routes(switch)

    async def close(self) -> None:
        if self.supervision is not None:
            await self.supervision.close()

    async def handles(self, number: str, switch: Switch) -> bool:
        return parse_code(number) is not None

    async def run(self, call: Call, switch: Switch) -> str:
        assert self.supervision is not None
        return await self.supervision.handle_code(call, call.callee)


@pytest.fixture
async def acd(tmp_path: Path) -> AsyncIterator[tuple[PbxServer, StandInAcd]]:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORDS.items():
        await store.users.add(user, password, "aiopbx")
    await store.users.set_role(SUPERVISOR, "supervisor")
    await store.close()
    stand_in = StandInAcd()
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port(), control_port=0),
        applications=[stand_in],
    )
    await server.start()
    try:
        yield server, stand_in
    finally:
        await server.stop()


def _switch(server: PbxServer) -> Switch:
    assert server.b2bua is not None and isinstance(server.b2bua.frontend, Switch)
    return server.b2bua.frontend


def _ear_hears_only(ear: Ear, tones: set[int]) -> bool:
    """`ear` hears exactly `tones` among this test's parties' tones."""
    return _hears_only(ear, tones, EVERY)


@contextlib.asynccontextmanager
async def queue_call(server: PbxServer, acd: StandInAcd) -> AsyncIterator[tuple[Party, Party]]:
    """The caller and the agent phones, bridged by the switch as the ACD would, and the
    bridge's owner waiting on it (ending the other call when one ends)."""
    switch = _switch(server)
    async with (
        Party(server, CALLER, HZ[CALLER]) as caller,
        Party(server, AGENT, HZ[AGENT]) as agent,
    ):
        a = await switch.dial(CALLER, caller_id="queue", timeout=10)
        b = await switch.dial(AGENT, caller_id=CALLER, timeout=10)
        bridge = acd.bridges[AGENT] = switch.bridge(a, b)
        owner = asyncio.ensure_future(bridge.wait())
        try:
            await _until(lambda: caller.hears(900) and agent.hears(500), "the queue call")
            yield caller, agent
        finally:
            if not owner.done():
                await a.hangup()
            await asyncio.wait_for(owner, 15)


async def test_listen_whisper_barge_by_feature_code_and_keys(
    acd: tuple[PbxServer, StandInAcd],
) -> None:
    server, stand_in = acd
    async with (
        queue_call(server, stand_in) as (caller, agent),
        listening(PROMPT_TONES) as ear,
        SipClient(server.sip_port) as ua,
    ):
        invite, ok = await dial(
            ua, server, f"*222{AGENT}", caller=SUPERVISOR, rtp_port=ear.port, events=True
        )
        assert ok.status == 200
        ear.remote = media_address(ok.body)
        talking = asyncio.ensure_future(ear.talk(sine(HZ[SUPERVISOR], 120.0)))
        try:
            # listen: the supervisor hears both; neither hears the supervisor.
            await _settled(
                lambda: (
                    _ear_hears_only(ear, {500, 900})
                    and caller.hears_only({900}, EVERY)
                    and agent.hears_only({500}, EVERY)
                ),
                "listen",
            )
            ear.press("5")  # whisper: the agent hears the supervisor, the caller does not
            await _settled(
                lambda: (
                    _ear_hears_only(ear, {500, 900})
                    and caller.hears_only({900}, EVERY)
                    and agent.hears_only({500, 1300}, EVERY)
                ),
                "whisper",
            )
            ear.press("6")  # barge: all three hear each other
            await _settled(
                lambda: (
                    _ear_hears_only(ear, {500, 900})
                    and caller.hears_only({900, 1300}, EVERY)
                    and agent.hears_only({500, 1300}, EVERY)
                ),
                "barge",
            )
            ear.press("4")  # back to listen
            await _settled(
                lambda: caller.hears_only({900}, EVERY) and agent.hears_only({500}, EVERY),
                "listen again",
            )
            # The caller hangs up: the bridge is over, the switch hangs up the supervisor.
            await caller.hang_up()
            assert await _bye_from_switch(ua)
        finally:
            talking.cancel()
            await asyncio.gather(talking, return_exceptions=True)
        assert invite  # the supervisor's dialog ended with the switch's BYE
    rows = await closed_cdrs(server, 3)
    supervised = [r for r in rows if r.callee == f"*222{AGENT}"]
    assert len(supervised) == 1
    assert supervised[0].disposition == "ANSWERED"
    assert supervised[0].hangup_cause == f"agent {AGENT}'s call ended (listen)"


async def test_only_supervisors_and_only_agents_on_a_call(
    acd: tuple[PbxServer, StandInAcd],
) -> None:
    server, stand_in = acd
    async with queue_call(server, stand_in):
        # 1001 is an agent, not a supervisor: the refusal prompt, then BYE.
        async with listening(PROMPT_TONES) as ear, SipClient(server.sip_port) as ua:
            _, ok = await dial(ua, server, f"*224{AGENT}", caller=CALLER, rtp_port=ear.port)
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            assert await _bye_from_switch(ua)
            assert ear.tones() == ["high", "low"]  # supervisor-denied's tone pattern
        # 1001 is on no queue call: the supervisor is told so, then BYE.
        async with listening(PROMPT_TONES) as ear, SipClient(server.sip_port) as ua:
            _, ok = await dial(ua, server, f"*223{CALLER}", caller=SUPERVISOR, rtp_port=ear.port)
            assert ok.status == 200
            ear.remote = media_address(ok.body)
            assert await _bye_from_switch(ua)
            assert ear.tones() == ["low", "high"]  # supervisor-no-call's tone pattern
    rows = await closed_cdrs(server, 4)
    causes = {r.callee: r.hangup_cause for r in rows if r.callee.startswith("*")}
    assert causes == {
        f"*224{AGENT}": f"supervision refused: {CALLER} is not a supervisor (role agent)",
        f"*223{CALLER}": f"supervision: agent {CALLER} has no queue call",
    }


#: What each side hears once the supervisor is in, by command.
HEARD = {
    "spy": ({900}, {500}),  # (the caller hears, the agent hears)
    "whisper": ({900}, {500, 1300}),
    "barge": ({900, 1300}, {500, 1300}),
}
DONE = {"spy": "listens to", "whisper": "whispers to", "barge": "barged in on"}
MODES = {"spy": "listen", "whisper": "whisper", "barge": "barge"}


@pytest.mark.parametrize("command", ["spy", "whisper", "barge"])
async def test_pbx_agent_command_rings_the_supervisor_and_joins(
    acd: tuple[PbxServer, StandInAcd], command: str
) -> None:
    server, stand_in = acd
    data_dir = server.settings.data_dir
    async with (
        queue_call(server, stand_in) as (caller, agent),
        Party(server, SUPERVISOR, HZ[SUPERVISOR]) as supervisor,
    ):
        done = await asyncio.to_thread(
            pbx_cli, data_dir, "agent", command, AGENT, "--from", SUPERVISOR
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{SUPERVISOR} {DONE[command]} {AGENT}'s call (")
        to_caller, to_agent = HEARD[command]
        await _settled(
            lambda: (
                supervisor.hears_only({500, 900}, EVERY)
                and caller.hears_only(to_caller, EVERY)
                and agent.hears_only(to_agent, EVERY)
            ),
            f"{command} from the rung phone",
        )
        # The agent hangs up: the caller and the supervisor are hung up by the switch.
        await agent.hang_up()
    rows = await closed_cdrs(server, 3)
    rung = [r for r in rows if r.callee == SUPERVISOR]
    assert len(rung) == 1
    assert rung[0].hangup_cause == (
        "the agent's call ended"
        f" (placed by the switch for supervisor {MODES[command]} of agent {AGENT})"
    )


async def test_pbx_agent_spy_refusals_are_one_line(acd: tuple[PbxServer, StandInAcd]) -> None:
    server, stand_in = acd
    data_dir = server.settings.data_dir
    async with queue_call(server, stand_in):
        for args, error in (
            (("spy", AGENT, "--from", CALLER), f"{CALLER} is not a supervisor (role agent)"),
            (("barge", "4711", "--from", SUPERVISOR), "no such agent '4711'"),
            (("spy", CALLER, "--from", SUPERVISOR), f"agent {CALLER} is not on a queue call"),
            (("spy", AGENT, "--from", "4711"), "no such extension '4711'"),
            # 1003 has no phone registered: nobody answers.
            (("whisper", AGENT, "--from", SUPERVISOR), f"{SUPERVISOR} did not answer: 480"),
        ):
            refused = await asyncio.to_thread(pbx_cli, data_dir, "agent", *args)
            assert refused.returncode == 1, refused.stdout
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert refused.stderr.startswith("pbx: error: ") and error in refused.stderr


# -- a real phone as the supervisor ------------------------------------------------------


def _recent_level(samples: np.ndarray, hz: float, seconds: float = 0.5) -> float:
    tail = samples[-int(8000 * seconds) :]
    return level(tail, hz) if len(tail) == int(8000 * seconds) else 0.0


async def test_baresip_supervisor_listens_then_barges_by_key(
    acd: tuple[PbxServer, StandInAcd], tmp_path: Path
) -> None:
    """The supervisor is baresip (its own RTP stack, RFC 4733 keys): it dials `*222`,
    hears caller and agent, is heard by neither; key 6 makes it heard by both; when the
    agent hangs up the switch ends baresip's call."""
    server, stand_in = acd
    source = tmp_path / "supervisor.wav"
    write_wav(source, sine(HZ[SUPERVISOR], 90.0), 8000)
    phone = Baresip(
        tmp_path / "baresip",
        user=SUPERVISOR,
        password=PASSWORDS[SUPERVISOR],
        registrar_port=server.sip_port,
        source_wav=source,
        dump_calls=True,
    )
    await asyncio.to_thread(phone.start)
    try:
        await asyncio.to_thread(phone.wait_for_output, r"200 OK .*\[1 binding\]", 15)
        async with queue_call(server, stand_in) as (caller, agent):
            await asyncio.to_thread(
                phone.command, "dial", f"sip:*222{AGENT}@127.0.0.1:{server.sip_port}"
            )
            await asyncio.to_thread(phone.wait_for_event, "CALL_ESTABLISHED", 20)

            def heard(hz: int) -> float:
                return _recent_level(phone.received_audio(), hz)

            await _settled(
                lambda: (
                    caller.hears_only({900}, EVERY)
                    and agent.hears_only({500}, EVERY)
                    and heard(500) > 1000
                    and heard(900) > 1000
                    and heard(1300) < 100
                ),
                "baresip listens",
            )
            await asyncio.to_thread(phone.send_digits, "6")
            await _settled(
                lambda: (
                    caller.hears_only({900, 1300}, EVERY)
                    and agent.hears_only({500, 1300}, EVERY)
                    and heard(500) > 1000
                    and heard(900) > 1000
                ),
                "baresip barges in",
            )
            await agent.hang_up()
            await asyncio.to_thread(phone.wait_for_event, "CALL_CLOSED", 20)
    finally:
        await asyncio.to_thread(phone.stop)
    rows = await closed_cdrs(server, 3)
    supervised = [r for r in rows if r.callee == f"*222{AGENT}"]
    assert [r.hangup_cause for r in supervised] == [f"agent {AGENT}'s call ended (barge)"]


async def test_a_split_bridge_ends_the_supervision(acd: tuple[PbxServer, StandInAcd]) -> None:
    """The ACD parts caller and agent (a transfer, an escalation): the supervisor the
    switch rang is hung up, the two calls stay up."""
    server, stand_in = acd
    assert stand_in.supervision is not None
    async with (
        queue_call(server, stand_in) as (caller, agent),
        Party(server, SUPERVISOR, HZ[SUPERVISOR]) as supervisor,
    ):
        result = await stand_in.supervision.supervise(AGENT, "barge", SUPERVISOR)
        assert result["mode"] == "barge"
        await _settled(lambda: caller.hears_only({900, 1300}, EVERY), "barged in")
        bridge = stand_in.bridges[AGENT]
        bridge.split()
        await _settled(
            lambda: caller.hears_only(set(), EVERY) and agent.hears_only(set(), EVERY),
            "split: caller and agent apart, the supervisor gone",
        )
        assert bridge.a.up and bridge.b.up
        store = server._store
        assert store is not None and supervisor.invite is not None

        async def closed() -> list[str]:
            return [r.hangup_cause or "" for r in await store.cdrs.list() if r.end is not None]

        for _ in range(300):  # bounded: 15 s
            if await closed():
                break
            await asyncio.sleep(0.05)
        assert await closed() == [
            f"the agent's call ended (placed by the switch for supervisor barge of agent {AGENT})"
        ]
        for call in (bridge.a, bridge.b):
            await call.hangup()
