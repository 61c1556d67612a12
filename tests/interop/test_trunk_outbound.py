"""Issue 12, acceptance 2 (and the simulator half of acceptance 1), with real peers on
127.0.0.1: `pbx serve` in a child process, two PSTN simulators (`pbx sim pstn`) as
providers A and B, baresip as phone 1001.

The switch registers to provider B (register=yes: the simulator's registrar logs the
binding, `pbx trunk status` says registered). 1001 dials 0123456789: the route
`_0XXXXXXXXX` tries prov-a, whose script answers that number 503, then prov-b, where a
live person answers. Each provider challenges the INVITE with 407 and the switch
answers with the trunk's credentials (the simulators log the account of each attempt,
which they know only from the credentials). Audio both ways: the simulator's WAV of the
call holds baresip's 1000 Hz tone, baresip's decoded dump holds the simulator's
greeting (440/550 Hz tones). The CDR names prov-b and the number.

An unauthenticated INVITE for the same number (the test's own client, never answering
the challenge), and one from a user with a wrong password, reach no provider: both
simulators' attempts logs stay empty."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.wav import load_mono, write_wav
from sip.digest import make_credentials
from tests.interop.baresip import Baresip
from tests.interop.ear import sine, tones_in
from tests.interop.peers import (
    DATA,
    ROOT,
    PbxProcess,
    add_users,
    free_port,
    need,
    pbx_cli,
    running_pbx,
    udp_bound,
    wait_for,
)
from tests.interop.sipclient import SipClient

PASSWORD = "Xk3-secret-pass"
NUMBER = "0123456789"
GREETING = {"g1": 440, "g2": 550}  # pbx.sim.voice.FALLBACK_HZ (--tones)
TONE_HZ = 1000


@dataclass
class Sim:
    port: int
    out: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def attempts(self) -> list[dict[str, Any]]:
        path = self.out / "attempts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def _start_sim(tmp_path: Path, name: str, script: str) -> Sim:
    port = free_port()
    out = tmp_path / name
    out.mkdir()
    log = out / "sim.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "sim", "pstn", "--port", str(port),
             "--script", str(DATA / "sim" / script), "--out", str(out), "--tones", "-v"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    sim = Sim(port, out, log, proc)
    wait_for(lambda: udp_bound(port) or proc.poll() is not None, 30, f"simulator {name}")
    assert proc.poll() is None, f"pbx sim pstn exited at start:\n{log.read_text()}"
    return sim


def _stop_sim(sim: Sim) -> None:
    sim.proc.terminate()
    try:
        sim.proc.wait(15)
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()
            sim.proc.wait(5)


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[tuple[Sim, Sim]]:
    a = _start_sim(tmp_path, "prov-a", "outbound_a.toml")
    try:
        b = _start_sim(tmp_path, "prov-b", "outbound_b.toml")
        try:
            yield a, b
        finally:
            _stop_sim(b)
    finally:
        _stop_sim(a)


def _ok(data_dir: Path, *args: str) -> str:
    done = pbx_cli(data_dir, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path: Path, sims: tuple[Sim, Sim]) -> Iterator[PbxProcess]:
    """`pbx serve` with user 1001, trunks prov-a and prov-b (registering to B), and the
    route _0XXXXXXXXX -> prov-a, prov-b, all configured with the CLI."""
    a, b = sims
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, {"1001": PASSWORD})
    _ok(data_dir, "trunk", "add", "prov-a", "--host", f"127.0.0.1:{a.port}",
        "--username", "acct-a", "--password", "a-secret")  # fmt: skip
    _ok(data_dir, "trunk", "add", "prov-b", "--host", f"127.0.0.1:{b.port}",
        "--username", "acct-b", "--password", "b-secret", "--register",
        "--caller-id", "0987654321")  # fmt: skip
    _ok(data_dir, "route", "add", "national", "--pattern", "_0XXXXXXXXX",
        "--trunk", "prov-a,prov-b")  # fmt: skip
    with running_pbx(data_dir) as pbx:
        yield pbx


def _registered_at_b(server: PbxProcess, b: Sim) -> None:
    wait_for(lambda: "registered acct-b at" in b.log.read_text(), 20, "the REGISTER at prov-b")
    status = _ok(server.data_dir, "trunk", "status")
    [line_b] = [line for line in status.splitlines() if line.startswith("prov-b")]
    assert "registered until" in line_b, status


def test_external_call_fails_over_answers_407_and_carries_audio(
    server: PbxProcess, sims: tuple[Sim, Sim], tmp_path: Path
) -> None:
    need("baresip")
    a, b = sims
    _registered_at_b(server, b)
    source = tmp_path / "tone.wav"
    # 6 s of 1000 Hz after a short pause: baresip hangs up when the file ends.
    write_wav(source, np.concatenate([np.zeros(2400, np.int16), sine(TONE_HZ, 6.0)]), 8000)
    with Baresip(
        tmp_path / "phone",
        user="1001",
        password=PASSWORD,
        registrar_port=server.port,
        source_wav=source,
        dump_calls=True,
    ) as phone:
        phone.wait_for_output(r"200 OK .*\[1 binding\]", 15)
        phone.command("dial", f"sip:{NUMBER}@127.0.0.1:{server.port}")
        phone.wait_for_output(r"Call established", 30)
        during = _ok(server.data_dir, "trunk", "status")
        phone.wait_for_output(r"terminated", 30)
        heard_by_phone = phone.received_audio()
    wait_for(lambda: bool(b.attempts()), 20, "prov-b's line in attempts.jsonl")
    [at_a] = a.attempts()
    [at_b] = b.attempts()
    assert (at_a["number"], at_a["status"], at_a["account"]) == (NUMBER, 503, "acct-a")
    assert (at_b["number"], at_b["status"], at_b["account"]) == (NUMBER, 200, "acct-b")
    assert at_b["ended_by"] == "caller"
    # While the call was up, prov-b carried it (channels in use / max: no limit).
    channels = {line.split()[0]: line.split()[-1] for line in during.splitlines()[1:]}
    assert channels == {"prov-a": "0/-", "prov-b": "1/-"}, during
    # The 407 of each provider was answered: the logs show both challenges' retries.
    log = server.log()
    assert log.count("challenged (407); retried with credentials") >= 2, log
    assert "a-secret" not in log and "b-secret" not in log
    assert f"trunk prov-a: calling {NUMBER}" in log and f"trunk prov-b: calling {NUMBER}" in log
    # Audio both ways.
    heard_by_provider = load_mono(str(at_b["wav"]))
    assert "t" in tones_in(heard_by_provider, {"t": TONE_HZ}), "the provider heard no tone"
    assert tones_in(heard_by_phone, GREETING)[:2] == ["g1", "g2"], "the phone heard no greeting"

    def closed() -> bool:
        rows = json.loads(_ok(server.data_dir, "cdr", "list", "--format", "json"))
        return bool(rows) and all(r["end"] for r in rows)

    wait_for(closed, 20, "the CDR to be closed")
    [cdr] = json.loads(_ok(server.data_dir, "cdr", "list", "--format", "json"))
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", NUMBER, "ANSWERED")
    assert (cdr["trunk"], cdr["trunk_number"]) == ("prov-b", NUMBER)
    assert f"prov-b/{NUMBER}" in _ok(server.data_dir, "cdr", "list")


async def test_unauthenticated_invites_never_reach_a_trunk(
    server: PbxProcess, sims: tuple[Sim, Sim]
) -> None:
    a, b = sims
    async with SipClient(server.port) as ua:
        invite = ua.invite("1001", NUMBER, cseq=1)
        challenged = await ua.exchange(invite)
        assert challenged.status == 401
        ua.send(ua.ack_for(invite, challenged))
        uri = f"sip:{NUMBER}@127.0.0.1:{server.port}"
        challenge = ua.challenge(challenged, "MD5")
        creds = make_credentials(challenge, "1001", "not-the-password", "INVITE", uri)
        wrong = ua.invite("1001", NUMBER, cseq=2, authorization=str(creds))
        refused = await ua.exchange(wrong)
        assert refused.status in (401, 403)
        ua.send(ua.ack_for(wrong, refused))
    # Nothing was sent on: the providers logged no attempt, the switch no trunk call.
    assert a.attempts() == [] and b.attempts() == []
    assert ": calling 0123456789" not in server.log()
