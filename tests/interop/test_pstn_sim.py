"""`pbx sim pstn` against sipp as the caller/registering UA, all on 127.0.0.1: digest
(REGISTER 401 then 200, wrong password 403; INVITE 407), busy 486, invalid 404,
congestion 503, and an answered call ended by the caller's BYE, with the attempts log
naming each outcome; sipp's RTP echo of our greeting is in the call's WAV. (That the
WAV holds what the caller sent is also checked with an RTP socket of the test's own
in tests/sim/test_pstn_sim.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from media.wav import load_mono
from tests.interop.ear import tones_in
from tests.interop.peers import DATA, ROOT, free_port, run_sipp, udp_bound, wait_for

SCRIPT = DATA / "sim" / "basic.toml"
SIPP = DATA / "sipp"
ACCOUNT = ("trunk1", "[authentication username=trunk1 password=s3cret-trunk]")


@dataclass
class Sim:
    port: int
    out: Path
    proc: subprocess.Popen[bytes]

    def attempts(self) -> list[dict[str, object]]:
        path = self.out / "attempts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    port = free_port()
    out = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "pstn", "--port", str(port),
         "--script", str(SCRIPT), "--out", str(out), "--tones"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: udp_bound(port) or proc.poll() is not None, 30, "the simulator")
        assert proc.poll() is None, "pbx sim pstn exited at start"
        yield Sim(port, out, proc)
    finally:
        proc.terminate()
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_register_with_digest_then_wrong_password(sim: Sim, tmp_path: Path) -> None:
    ok = run_sipp(SIPP / "register_auth.xml", sim.port, workdir=tmp_path / "ok", inf=[ACCOUNT])
    assert (ok.successful, ok.failed) == (1, 0), ok.output
    wrong = ("trunk1", "[authentication username=trunk1 password=nope]")
    bad = run_sipp(
        SIPP / "sim_register_forbidden.xml", sim.port, workdir=tmp_path / "bad", inf=[wrong]
    )
    assert (bad.successful, bad.failed) == (1, 0), bad.output


@pytest.mark.parametrize(
    ("number", "status"), [("0800123456", 486), ("555", 404), ("0900123456", 503)]
)
def test_refused_calls(sim: Sim, tmp_path: Path, number: str, status: int) -> None:
    scenario = tmp_path / "final.xml"
    text = (SIPP / "sim_uac_final.xml").read_text().replace("@STATUS@", str(status))
    scenario.write_text(text)
    result = run_sipp(scenario, sim.port, workdir=tmp_path / "run", inf=[(*ACCOUNT, number)])
    assert (result.successful, result.failed) == (1, 0), result.output
    [entry] = sim.attempts()
    assert (entry["number"], entry["status"], entry["account"]) == (number, status, "trunk1")


def test_live_person_answers_and_the_caller_hangs_up(sim: Sim, tmp_path: Path) -> None:
    result = run_sipp(
        SIPP / "sim_uac_answer.xml",
        sim.port,
        workdir=tmp_path / "run",
        inf=[(*ACCOUNT, "0100123456")],
        extra=("-d", "1500", "-rtp_echo"),
    )
    assert (result.successful, result.failed) == (1, 0), result.output
    wait_for(lambda: bool(sim.attempts()), 30, "the call's line in attempts.jsonl")
    [entry] = sim.attempts()
    assert (entry["status"], entry["behaviour"], entry["ended_by"]) == (200, "live", "caller")
    # sipp echoed our greeting (two tones, pbx.sim.voice.FALLBACK_HZ): we recorded it.
    heard = load_mono(str(entry["wav"]))
    assert tones_in(heard, {"g1": 440, "g2": 550})[:2] == ["g1", "g2"]


def test_the_simulator_places_calls_to_another_one(sim: Sim, tmp_path: Path) -> None:
    """`pbx sim pstn --call`: the second simulator dials the first at a rate (the way it
    will dial a switch's DIDs), answers its 407 and reports each outcome."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "sim", "pstn", "--port", "0", "--script", str(SCRIPT),
         "--out", str(tmp_path / "caller"), "--tones", "--call", f"127.0.0.1:{sim.port}",
         "--number", "0800123456,0100123456", "--calls", "2", "--rate", "5", "--talk", "1",
         "--call-user", "trunk1", "--call-password", "s3cret-trunk"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["0800123456: 486", "0100123456: 200 simulator"]
