"""Issue 11, acceptance 3: a conference on the switch-wide mixer with real SIP and RTP.

Four phones (the test's own UAS: SIP over UDP, PCMU RTP each sending its own tone every
20 ms) are called by the switch (`Switch.dial`) and put in one room through the API.
What each phone receives is checked by frequency analysis: each speaker hears the other
two and not itself; a listen-only party hears all three and nobody hears it; turned into
a whisperer, it is heard by its one named party only. Each phone's received stream stays
one RTP stream (one SSRC, sequence numbers +1) from before the room to after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.conference import ConferenceApplication
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from media.endpoint import MediaEndpoint
from media.g711 import ulaw_decode
from media.mixer import Law
from media.mixer_clock import MixerClock
from media.ports import PortAllocator
from media.sdp import AudioStream, Codec
from media.wav import write_wav
from pbx.api import Call, Role, Switch
from pbx.errors import PbxError
from pbx.server import PbxServer
from sip.message import Request, Response, make_response, parse_message
from tests.interop.ear import Ear, listening, sine
from tests.interop.peers import free_port, pbx_cli
from tests.interop.phones import closed_cdrs, dial, running_server
from tests.interop.sipclient import SipClient, media_address
from tests.interop.test_api_bridge import Phone

WINDOW = 25  # packets analysed (500 ms)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PbxServer]:
    async with running_server(tmp_path) as pbx:
        yield pbx


def _switch(server: PbxServer) -> Switch:
    assert server.b2bua is not None and isinstance(server.b2bua.frontend, Switch)
    return server.b2bua.frontend


def level(samples: npt.NDArray[np.int16], hz: float) -> float:
    """The amplitude of `hz` in `samples` (a windowed DFT at that frequency)."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    t = np.arange(len(samples)) / 8000
    return float(2 * abs(np.sum(x * np.exp(-2j * np.pi * hz * t))) / np.sum(np.hanning(len(x))))


class Party(Phone):
    """A `Phone` that keeps the audio it receives and the RTP headers it came with; with
    `register` False it is reached by its URI (the store has three users)."""

    def __init__(self, server: PbxServer, user: str, hz: int, *, register: bool = True) -> None:
        super().__init__(server, user, hz)
        self.register = register
        self.frames: list[npt.NDArray[np.int16]] = []
        self.headers: list[tuple[int, int]] = []  # (SSRC, sequence number)

    async def __aenter__(self) -> Party:
        if self.register:
            await super().__aenter__()
            return self
        await self.ua.__aenter__()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sip()), loop.create_task(self._listen())]
        return self

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.ua.port}"

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.rtp, 2048)
            if len(data) > 12 and data[1] & 0x7F == 0:
                _, _, seq, _, ssrc = struct.unpack("!BBHII", data[:12])
                self.headers.append((ssrc, seq))
                self.frames.append(ulaw_decode(data[12:]))

    def hears(self, hz: float) -> bool:
        """Whether `hz` is loud in the last `WINDOW` packets."""
        return self.level(hz) > 1000

    def level(self, hz: float) -> float:
        if len(self.frames) < WINDOW:
            return 0.0
        return level(np.concatenate(self.frames[-WINDOW:]), hz)

    def hears_only(self, tones: set[int], every: set[int]) -> bool:
        return all(self.hears(hz) for hz in tones) and all(
            self.level(hz) < 100 for hz in every - tones
        )


async def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def _settled(condition: Callable[[], bool], what: str) -> None:
    """`condition` holds, and still holds a full analysis window later."""
    await _until(condition, what)
    loop = asyncio.get_running_loop()
    end = loop.time() + WINDOW * 0.02
    while loop.time() < end:
        await asyncio.sleep(0.05)
    assert condition(), f"not stable: {what}"


TONES = {"1001": 500, "1002": 900, "1003": 1300, "1004": 1700}


async def test_three_speakers_a_listener_and_a_whisperer(server: PbxServer) -> None:
    switch = _switch(server)
    every = set(TONES.values())
    async with (
        Party(server, "1001", TONES["1001"]) as p1,
        Party(server, "1002", TONES["1002"]) as p2,
        Party(server, "1003", TONES["1003"]) as p3,
        Party(server, "1004", TONES["1004"], register=False) as p4,
    ):
        calls: list[Call] = []
        for target in ("1001", "1002", "1003", p4.uri):
            calls.append(await switch.dial(target, caller_id="conf", timeout=10))
        c1, c2, c3, c4 = calls
        room = switch.conference("8000")
        for call in (c1, c2, c3):
            room.add(call)
        room.add(c4, Role.LISTEN)
        assert [(m.call, m.role) for m in room.members()] == [
            (c1, Role.SPEAK),
            (c2, Role.SPEAK),
            (c3, Role.SPEAK),
            (c4, Role.LISTEN),
        ]
        # Each speaker hears the other two, not itself and not the listener.
        await _settled(
            lambda: (
                p1.hears_only({900, 1300}, every)
                and p2.hears_only({500, 1300}, every)
                and p3.hears_only({500, 900}, every)
                and p4.hears_only({500, 900, 1300}, every)
            ),
            "speakers hear the other two, the listener hears the three",
        )
        # The listener becomes a whisperer to 1001: only 1001 hears it.
        room.set_role(c4, Role.WHISPER, whisper_to=c1)
        await _settled(
            lambda: (
                p1.hears_only({900, 1300, 1700}, every)
                and p2.hears_only({500, 1300}, every)
                and p3.hears_only({500, 900}, every)
                and p4.hears_only({500, 900, 1300}, every)
            ),
            "the whisper reaches 1001 only",
        )
        assert room.members()[3].whisper_to is c1
        # A party that hangs up leaves the room; the others go on.
        await p3.hang_up()
        await asyncio.wait_for(c3.wait_ended(), 15)
        await _settled(
            lambda: p1.hears_only({900, 1700}, every) and p2.hears_only({500}, every),
            "1003 gone",
        )
        assert [m.call for m in room.members()] == [c1, c2, c4]
        # Taken out of the room, a call hears the switch's own stream (silence) again.
        assert room.remove(c2)
        await _settled(lambda: p2.hears_only(set(), every), "1002 out of the room")
        assert c2.up
        # Each phone received one RTP stream all along: one SSRC, no sequence gap.
        for party in (p1, p2, p4):
            ssrcs = {ssrc for ssrc, _ in party.headers}
            assert len(ssrcs) == 1, party.user
            seqs = [seq for _, seq in party.headers]
            assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        for call in (c1, c2, c4):
            await call.hangup()


async def test_a_bridge_becomes_a_room_when_a_third_call_is_added(server: PbxServer) -> None:
    switch = _switch(server)
    every = {500, 900, 1300}
    async with (
        Party(server, "1001", 500) as p1,
        Party(server, "1002", 900) as p2,
        Party(server, "1003", 1300) as p3,
    ):
        c1 = await switch.dial("1001", caller_id="app", timeout=10)
        c2 = await switch.dial("1002", caller_id="app", timeout=10)
        c3 = await switch.dial("1003", caller_id="app", timeout=10)
        bridge = switch.bridge(c1, c2)
        await _until(lambda: p1.hears(900) and p2.hears(500), "1:1 bridge")
        with pytest.raises(PbxError):
            switch.conference("x").add(c1)  # bridged: not mixable as well
        bridge.add(c3, Role.WHISPER, whisper_to=c1)  # a coach whispering to c1
        await _settled(
            lambda: (
                p1.hears_only({900, 1300}, every)
                and p2.hears_only({500}, every)
                and p3.hears_only({500, 900}, every)
            ),
            "the coach is heard by c1 only, and hears both",
        )
        bridge.split()
        await _settled(
            lambda: all(p.hears_only(set(), every) for p in (p1, p2, p3)), "split: all apart"
        )
        assert c1.up and c2.up and c3.up
        for call in (c1, c2, c3):
            await call.hangup()


# -- the conference application: callers dial the room's number ------------------------

PROMPTS = {"vm-pin": 350, "vm-incorrect": 450, "ivr-goodbye": 300}


@pytest.fixture
async def rooms(tmp_path: Path) -> AsyncIterator[tuple[PbxServer, ConferenceApplication]]:
    prompts = PromptStore(tmp_path / "prompts")
    for name, hz in PROMPTS.items():
        wav = tmp_path / f"{name}.wav"
        write_wav(wav, sine(hz, 0.3), 8000)
        prompts.add(name, wav)
    player = PromptPlayer(prompts)
    player._defaults_ready = True  # the three prompts above are all the room plays
    app = ConferenceApplication(player)
    async with running_server(tmp_path) as pbx:
        assert pbx._store is not None and pbx.b2bua is not None
        await pbx._store.conferences.add("8000", pin="4321", max_members=3)
        pbx.b2bua.applications.append(app)
        yield pbx, app


def _recent(ear: Ear, hz: float) -> float:
    if len(ear.audio) < WINDOW:
        return 0.0
    return level(np.concatenate(ear.audio[-WINDOW:]), hz)


def _hears_only(ear: Ear, tones: set[int], every: set[int]) -> bool:
    return all(_recent(ear, hz) > 1000 for hz in tones) and all(
        _recent(ear, hz) < 100 for hz in every - tones
    )


async def test_callers_dial_the_room_with_its_pin_hear_each_other_and_are_kicked(
    rooms: tuple[PbxServer, ConferenceApplication],
) -> None:
    server, _ = rooms
    switch = _switch(server)
    talk = {"1001": 1200, "1002": 1500, "1003": 1800}
    every = set(talk.values())
    tone_names = {**PROMPTS, "join-low": 660, "join-high": 990}
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        ears: dict[str, Ear] = {}
        dialogs: dict[str, tuple[SipClient, bytes, Response]] = {}
        talking: list[asyncio.Task[None]] = []
        for user in talk:
            ear = ears[user] = await stack.enter_async_context(listening(tone_names))
            ua = await stack.enter_async_context(SipClient(server.sip_port))
            invite, ok = await dial(ua, server, "8000", caller=user, rtp_port=ear.port, events=True)
            assert ok.status == 200
            dialogs[user] = (ua, invite, ok)
            ear.remote = media_address(ok.body)
            await ear.wait_for("vm-pin")
            if user == "1001":  # a wrong PIN first: told so, asked again
                ear.press("1111#")
                await ear.wait_for("vm-pin", "vm-incorrect", "vm-pin")
            joined_at = len(ear.audio)
            ear.press("4321#")
            # The joiner hears the join tone rising (over the others' voices).
            await _until(lambda e=ear, j=joined_at: _rising(e, j, 660, 990), "the join tone")
            task = loop.create_task(ear.talk(sine(talk[user], 120.0)))
            stack.callback(task.cancel)
            talking.append(task)
        room = switch.conference("8000")
        assert [m.call.caller for m in room.members()] == ["1001", "1002", "1003"]
        await _settled(
            lambda: (
                _hears_only(ears["1001"], {1500, 1800}, every)
                and _hears_only(ears["1002"], {1200, 1800}, every)
                and _hears_only(ears["1003"], {1200, 1500}, every)
            ),
            "each caller hears the other two and not itself",
        )
        # A fourth caller finds the room full (3 members): goodbye and BYE.
        async with listening(tone_names) as ear4, SipClient(server.sip_port) as ua4:
            _, ok4 = await dial(ua4, server, "8000", caller="1001", rtp_port=ear4.port, events=True)
            assert ok4.status == 200
            ear4.remote = media_address(ok4.body)
            await ear4.wait_for("vm-pin")
            ear4.press("4321#")
            await ear4.wait_for("ivr-goodbye")
            assert await _bye_from_switch(ua4)
        # The room's owner kicks 1003 (by its number): it gets a BYE, the others hear the
        # leave tone (falling) and no longer hear 1003.
        kicked = room.find("1003")
        assert kicked is not None and room.find(kicked.id) is kicked
        left_at = len(ears["1001"].audio)
        hanging_up = asyncio.ensure_future(kicked.hangup())  # done when 1003 answers the BYE
        assert await _bye_from_switch(dialogs["1003"][0])
        await asyncio.wait_for(hanging_up, 15)
        await _settled(
            lambda: (
                _hears_only(ears["1001"], {1500}, every)
                and _hears_only(ears["1002"], {1200}, every)
            ),
            "1003 gone",
        )
        assert _rising(ears["1001"], left_at, 990, 660)  # the leave tone, falling
        assert [m.call.caller for m in room.members()] == ["1001", "1002"]
        for user in ("1001", "1002"):
            ua, invite, ok = dialogs[user]
            bye = await ua.exchange(ua.in_dialog(invite, ok, "BYE", 3), timeout=10)
            assert bye.status == 200
        await _until(lambda: not room.members(), "the room empties")
    rows = await closed_cdrs(server, 4)
    assert sorted(r.callee for r in rows) == ["8000"] * 4


def _rising(ear: Ear, start: int, first: float, then: float) -> bool:
    """Whether, from packet `start` on, `first` was loud in some 60 ms and `then` later."""
    frames = ear.audio[start:]
    loud = [
        {hz for hz in (first, then) if level(np.concatenate(frames[i : i + 3]), hz) > 1500}
        for i in range(len(frames) - 2)
    ]
    at_first = next((i for i, hz in enumerate(loud) if first in hz), None)
    return at_first is not None and any(then in hz for hz in loud[at_first + 1 :])


async def _bye_from_switch(ua: SipClient) -> bool:
    """Wait (bounded) for the switch's BYE on `ua`, answering it 200."""
    for _ in range(50):
        raw = await ua.receive(timeout=0.5)
        if raw is None:
            continue
        message = parse_message(raw)
        if isinstance(message, Request) and message.method == "BYE":
            ua.send(bytes(make_response(message, 200)))
            return True
    return False


async def test_cli_lists_a_live_room_and_kicks_a_member(server: PbxServer) -> None:
    switch = _switch(server)
    data_dir = server.settings.data_dir
    async with Party(server, "1002", 900), Party(server, "1003", 1300) as p3:
        c2 = await switch.dial("1002", caller_id="1002", timeout=10)
        c3 = await switch.dial("1003", caller_id="1003", timeout=10)
        room = switch.conference("8000")
        room.add(c2)
        room.add(c3, Role.LISTEN)
        await _until(lambda: p3.hears(900), "the listener hears 1002")
        live = await asyncio.to_thread(pbx_cli, data_dir, "conf", "list", "--live")
        assert live.returncode == 0, live.stderr
        lines = live.stdout.splitlines()
        assert lines[0].split() == ["ROOM", "ID", "CALLER", "ROLE", "WHISPERS", "TO"]
        assert [line.split()[:4] for line in lines[1:]] == [
            ["8000", c2.id, "1002", "speak"],
            ["8000", c3.id, "1003", "listen"],
        ]
        kicked = await asyncio.to_thread(pbx_cli, data_dir, "conf", "kick", "8000", "1002")
        assert kicked.returncode == 0, kicked.stderr
        assert kicked.stdout.strip() == f"kicked {c2.id} from conference 8000"
        await asyncio.wait_for(c2.wait_ended(), 15)
        assert [m.call for m in room.members()] == [c3]
        again = await asyncio.to_thread(pbx_cli, data_dir, "conf", "kick", "8000", "1002")
        assert again.returncode == 1
        assert "no party '1002' in conference '8000'" in again.stderr
        await c3.hangup()


async def test_a_member_that_changes_law_is_mixed_in_the_new_one() -> None:
    base = free_port(8)
    ports = PortAllocator("127.0.0.1", base, base + 7)
    clock = MixerClock()
    a, b = MediaEndpoint(ports, name="a"), MediaEndpoint(ports, name="b")
    try:
        pcmu, pcma = Codec(0, "PCMU", 8000, 1), Codec(8, "PCMA", 8000, 1)
        a.set_remote(AudioStream("127.0.0.1", 9, 10, pcmu, None, "sendrecv"))
        b.set_remote(AudioStream("127.0.0.1", 11, 12, pcmu, None, "sendrecv"))
        a.mix(clock, "room")
        b.mix(clock, "room", Role.WHISPER, whisper_to=a)
        clock.mixer.set_gain(a, talk=0.5)
        a.set_remote(AudioStream("127.0.0.1", 9, 10, pcma, None, "sendrecv"))  # re-INVITE
        info = clock.mixer.party(a)
        assert info is not None
        assert (info.law, info.role, info.talk_gain) == (Law.PCMA, Role.SPEAK, 0.5)
        whisperer = clock.mixer.party(b)
        assert whisperer is not None and whisperer.whisper_to is a
        assert a.mixer is clock and len(clock.mixer) == 2
        a.close()  # an ended call leaves its room
        assert a.mixer is None and clock.mixer.parties("room") == [b]
    finally:
        a.close()
        b.close()
        clock.close()
