"""`pbx serve` start-up errors are one line and a non-zero exit; the first server survives.

Real processes (`python -m cli serve`) on 127.0.0.1: a second server on a port in
use or on a data directory in use is refused while the first keeps serving, bad
or non-local --host values are refused, and a control.json left by kill -9 is
recognised by its dead PID.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sip.digest import Credentials
from tests.interop.peers import ROOT, PbxProcess, add_users, free_port, pbx_cli, wait_for
from tests.interop.sipclient import SipClient

# A pbx serve process, sipp and wall-clock waits: with the interop tests, one at a time.
pytestmark = pytest.mark.xdist_group("serial")

PASSWORD = "Correct-Horse-77"


def serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pbx: error: ")
    return lines[0]


@pytest.fixture
def first(tmp_path: Path) -> Iterator[PbxProcess]:
    server = PbxProcess(tmp_path / "first", free_port())
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def still_serving(server: PbxProcess) -> None:
    assert server.proc is not None and server.proc.poll() is None
    status = pbx_cli(server.data_dir, "status")
    assert status.returncode == 0, status.stderr
    first_line = status.stdout.splitlines()[0]
    assert re.fullmatch(
        rf"up \d+ s, listening on udp 127\.0\.0\.1:{server.port}, tcp 127\.0\.0\.1:{server.port}",
        first_line,
    ), first_line


def test_second_server_on_a_used_port(first: PbxProcess, tmp_path: Path) -> None:
    line = one_error_line(serve(tmp_path / "second", "--port", str(first.port)))
    assert line == (
        f"pbx: error: cannot listen for SIP on 127.0.0.1:{first.port}:"
        " the address is already in use (another server?)"
    )
    still_serving(first)


def test_second_server_on_a_used_data_directory(first: PbxProcess) -> None:
    control = (first.data_dir / "control.json").read_bytes()
    line = one_error_line(serve(first.data_dir, "--port", str(free_port())))
    assert line.startswith("pbx: error: another pbx server (PID ")
    assert f"is already serving {first.data_dir}" in line
    assert (first.data_dir / "control.json").read_bytes() == control  # not stolen
    still_serving(first)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("999.1.1.1", "pbx: error: --host '999.1.1.1' is not an IP address"),
        ("192.0.2.1", "pbx: error: cannot listen for SIP on 192.0.2.1:{port}: that address"),
    ],
)
def test_bad_or_foreign_host(tmp_path: Path, host: str, message: str) -> None:
    port = free_port()
    line = one_error_line(serve(tmp_path, "--host", host, "--port", str(port)))
    assert line.startswith(message.format(port=port)), line


def test_stale_control_file_after_kill_9(first: PbxProcess) -> None:
    assert first.proc is not None
    pid = first.proc.pid
    first.stop(signal.SIGKILL)
    assert (first.data_dir / "control.json").exists()  # nobody removed it
    status = pbx_cli(first.data_dir, "status")
    assert status.returncode == 1
    assert status.stderr.strip() == (
        f"pbx: error: the server is not running (control.json in {first.data_dir} is left"
        f" from PID {pid}, which has ended); start it with 'pbx serve'"
    )
    first.start()  # the kernel dropped the lock with the process: a restart works
    still_serving(first)


def _register(port: int, times: int = 1) -> tuple[int, Credentials]:
    """Register 1001 through a challenge (then refresh it); returns our port and the
    credentials sent first."""

    async def go() -> tuple[int, Credentials]:
        async with SipClient(port) as ua:
            challenge = ua.challenge(await ua.exchange(ua.register("1001")), "MD5")
            sent = [ua.answer(challenge, "1001", PASSWORD, nc=n) for n in range(1, times + 1)]
            for creds in sent:
                ok = await ua.exchange(ua.register("1001", authorization=str(creds)))
                assert ok.status == 200
            return ua.port, sent[0]

    return asyncio.run(go())


def test_sip_trace_masks_credentials(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD})
    server = PbxProcess(tmp_path, free_port(), extra=("--sip-trace", "--log-level", "WARNING"))
    server.start()
    try:
        port, creds = _register(server.port)
    finally:
        server.stop()
    log = server.log()
    assert creds.response not in log and str(creds.cnonce) not in log
    assert f"<<< from udp:127.0.0.1:{port} (" in log
    assert 'response="***"' in log
    assert f">>> to udp:127.0.0.1:{port} (" in log and "SIP/2.0 200 OK" in log
    # --log-level WARNING hides the INFO lines but not the trace asked for.
    assert "register 1001:" not in log and "aiopbx listening" not in log


def test_registration_change_and_prompt_summary_at_info(tmp_path: Path) -> None:
    add_users(tmp_path, {"1001": PASSWORD})
    server = PbxProcess(tmp_path, free_port())
    server.start()
    try:
        port, _ = _register(server.port, times=2)  # a new binding, then a refresh
        wait_for(lambda: "default prompts" in server.log(), 60, "the default prompts")
    finally:
        server.stop()
    log = server.log()
    line = f"INFO pbx.registrar: register 1001: <sip:1001@127.0.0.1:{port}> for 3600 s"
    assert log.count(line) == 1, log  # the refresh is no change: DEBUG only
    assert "<<< from" not in log  # no trace unless asked
    prompt_lines = [line for line in log.splitlines() if "prompt" in line]
    assert len(prompt_lines) == 1, prompt_lines  # one summary, not one per prompt
