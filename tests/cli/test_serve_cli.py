"""`pbx serve` start-up errors are one line and a non-zero exit; the first server survives.

Real processes (`python -m cli serve`) on 127.0.0.1: a second server on a port in
use or on a data directory in use is refused while the first keeps serving, bad
or non-local --host values are refused, and a control.json left by kill -9 is
recognised by its dead PID.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.peers import ROOT, PbxProcess, free_port, pbx_cli


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
    assert f"listening on udp 127.0.0.1:{server.port}, tcp 127.0.0.1:{server.port}" in (
        status.stdout
    )


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
