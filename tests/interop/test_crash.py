"""kill -9 during a live call: after a restart the finished calls' CDRs are intact and
the interrupted call is closed with a cause that says so."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.interop.baresip import Baresip
from tests.interop.peers import DATA, PbxProcess, add_users, free_port, need, pbx_cli, wait_for

PASSWORDS = {"1001": "Xk3-secret-pass", "1002": "Yk3-secret-pass"}
SCENARIOS = DATA / "sipp"


def _cdrs(data_dir: Path) -> list[dict[str, object]]:
    out = pbx_cli(data_dir, "cdr", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def _sipp_call(port: int, workdir: Path, talk_ms: int) -> subprocess.Popen[bytes]:
    """A sipp caller (1001 -> 1002) that talks `talk_ms`, in the background."""
    workdir.mkdir(parents=True, exist_ok=True)
    inf = workdir / "users.csv"
    inf.write_text(
        "SEQUENTIAL\n1001;[authentication username=1001 password=Xk3-secret-pass];1002\n"
    )
    return subprocess.Popen(
        [
            need("sipp"), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "uac_call.xml"),
            "-inf", str(inf), "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1",
            "-d", str(talk_ms), "-nostdin", "-auth_uri", f"1002@127.0.0.1:{port}",
            "-timeout", "60s",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_kill_9_during_a_call(tmp_path: Path) -> None:
    need("baresip")
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, PASSWORDS)
    server = PbxProcess(data_dir, free_port())
    server.start()
    try:
        with Baresip(
            tmp_path / "callee",
            user="1002",
            password=PASSWORDS["1002"],
            registrar_port=server.port,
            auto_answer=True,
            regint=600,
            control=False,
        ) as callee:
            callee.wait_for_output(r"200 OK .*\[1 binding\]", 10)
            # One call that finishes normally ...
            first = _sipp_call(server.port, tmp_path / "first", 500)
            assert first.wait(30) == 0
            wait_for(lambda: any(r["end"] for r in _cdrs(data_dir)), 10, "the first call's CDR")
            # ... and one that is up when the server dies.
            second = _sipp_call(server.port, tmp_path / "second", 30_000)
            try:
                wait_for(lambda: callee.count_output(r"Call established") >= 2, 15, "2nd call")
                wait_for(
                    lambda: any(r["answer"] and not r["end"] for r in _cdrs(data_dir)),
                    10,
                    "the second call to be up in the CDRs",
                )
                server.stop(signal.SIGKILL)
            finally:
                second.kill()
                second.wait(10)
            server.start()
            rows = _cdrs(data_dir)
    finally:
        server.stop()
    assert len(rows) == 2
    done, cut = rows
    assert (done["disposition"], done["hangup_cause"]) == ("ANSWERED", "caller hung up")
    assert cut["disposition"] == "ANSWERED"
    assert "interrupted" in str(cut["hangup_cause"])
    assert cut["end"] is not None and float(cut["billsec"]) >= 0  # type: ignore[arg-type]
