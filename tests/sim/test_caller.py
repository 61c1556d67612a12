"""The simulator placing calls (pbx.sim.caller), tested against a second simulator on
loopback: digest answered once, busy and live outcomes, audio both ways in the WAVs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from media.ports import PortAllocator
from media.wav import load_mono
from pbx.sim.caller import CallPlan, Outcome, place_calls
from pbx.sim.script import load_script, parse_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice
from tests.interop.ear import tones_in

DATA = Path(__file__).parent.parent / "data" / "sim"


async def test_calls_placed_at_a_rate_reach_the_scripted_outcomes(tmp_path: Path) -> None:
    callee = PstnSimulator(
        load_script(DATA / "basic.toml"),
        tmp_path / "callee",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46400, 46500),
    )
    caller = PstnSimulator(
        parse_script(""),
        tmp_path / "caller",
        voice=Voice(use_espeak=False),
        ports=PortAllocator("127.0.0.1", 46600, 46700),
    )
    await callee.start()
    await caller.start()
    try:
        plan = CallPlan(
            "127.0.0.1",
            callee.port,
            ["0800123456", "0100123456"],
            count=2,
            rate=5.0,
            talk_seconds=3.0,
            username="trunk1",
            password="s3cret-trunk",
        )
        busy, live = await place_calls(caller, plan)
        # The callee logs its side once the caller's BYE ended the call (bounded wait).
        log = tmp_path / "callee" / "attempts.jsonl"
        for _ in range(200):
            if log.exists() and len(log.read_text().splitlines()) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await caller.close()
        await callee.close()
    assert busy == Outcome("0800123456", busy.call_id, 486)
    assert (live.number, live.status, live.ended_by) == ("0100123456", 200, "simulator")
    # The caller heard the callee's greeting (tones 440/550 then silence) ...
    assert live.wav is not None
    assert tones_in(load_mono(live.wav), {"g1": 440, "g2": 550})[:2] == ["g1", "g2"]
    # ... and the callee recorded the caller's greeting (the same tone pattern).
    lines = [
        json.loads(x) for x in (tmp_path / "callee" / "attempts.jsonl").read_text().splitlines()
    ]
    answered = [e for e in lines if e["status"] == 200]
    assert [e["number"] for e in answered] == ["0100123456"]
    assert answered[0]["ended_by"] == "caller"
    heard = load_mono(answered[0]["wav"])
    assert tones_in(heard, {"g1": 440, "g2": 550})[:2] == ["g1", "g2"]
    out = [json.loads(x) for x in (tmp_path / "caller" / "attempts.jsonl").read_text().splitlines()]
    assert sorted((e["direction"], e["number"], e["status"]) for e in out) == [
        ("out", "0100123456", 200), ("out", "0800123456", 486),
    ]  # fmt: skip
