"""Running real programs for interop tests: `pbx serve`, sipp, baresip — all on 127.0.0.1.

Every process started here is stopped by the fixture that started it. Waiting
is always for an observable condition (a file, a log line, an exit) with a
bound on time, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbx.store import Store
from tests.tools import need

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def free_port(span: int = 1) -> int:
    """A port on 127.0.0.1 free for UDP and TCP, with `span - 1` free ports after it.

    A single port comes from the kernel's ephemeral range; a span is looked for below
    it (20000-32000), where busy ephemeral sockets do not fragment the range.
    """
    for _ in range(200):
        if span > 1:
            base = random.randrange(20000, 32000 - span, 2)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", 0))
                base = probe.getsockname()[1]
        if base + span > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + span):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def add_users(data_dir: Path, users: dict[str, str], realm: str = "aiopbx") -> None:
    """Create the database (if needed) and the given users, as `pbx user add` would."""

    async def go() -> None:
        store = await Store.open(data_dir / "pbx.sqlite3")
        try:
            await store.settings.set_default("realm", realm)
            for name, password in users.items():
                await store.users.add(name, password, realm)
        finally:
            await store.close()

    asyncio.run(go())


def pbx_cli(data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `pbx ARGS --data-dir DIR` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@dataclass
class PbxProcess:
    """`pbx serve` in a child process on a free loopback port."""

    data_dir: Path
    port: int
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "serve.log"

    def start(self) -> None:
        control = self.data_dir / "control.json"
        with contextlib.suppress(FileNotFoundError):
            control.unlink()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "cli", "serve", "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", str(self.port), *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )  # fmt: skip
        log.close()
        wait_for(
            lambda: control.exists() or self.proc is None or self.proc.poll() is not None,
            20,
            "pbx serve to start",
        )
        if self.proc.poll() is not None:
            pytest.fail(f"pbx serve exited early:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def status(self) -> dict[str, object]:
        result = pbx_cli(self.data_dir, "status")
        assert result.returncode == 0, result.stderr
        return {"text": result.stdout}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def running_pbx(data_dir: Path, port: int | None = None, *extra: str) -> Iterator[PbxProcess]:
    """A started `pbx serve`, stopped on the way out."""
    server = PbxProcess(data_dir, port or free_port(), tuple(extra))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str


def run_sipp(
    scenario: Path,
    target_port: int,
    *,
    workdir: Path,
    inf: list[tuple[str, ...]] | None = None,
    calls: int = 1,
    rate: float = 10,
    timeout: float = 60,
    extra: tuple[str, ...] = (),
    transport: str = "u1",
    local_port: int | None = None,
) -> SippResult:
    """Run a sipp scenario against 127.0.0.1:target_port and return its statistics."""
    sipp = need("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        sipp, f"127.0.0.1:{target_port}", "-sf", str(scenario), "-i", "127.0.0.1",
        "-p", str(local_port or free_port()), "-m", str(calls), "-r", str(rate), "-t", transport,
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin",
        "-trace_stat", "-stf", str(workdir / "stat.csv"), "-trace_err",
        "-error_file", str(workdir / "sipp_errors.log"), "-trace_msg",
        *extra,
    ]  # fmt: skip
    if inf is not None:
        inf_path = workdir / "users.csv"
        inf_path.write_text("SEQUENTIAL\n" + "".join(";".join(row) + "\n" for row in inf))
        args += ["-inf", str(inf_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 30, cwd=workdir)
    successful, failed = _sipp_counts(workdir / "stat.csv")
    errors = workdir / "sipp_errors.log"
    output = proc.stdout[-3000:] + proc.stderr[-3000:]
    if errors.exists():
        output += "\n--- sipp error log ---\n" + errors.read_text(errors="replace")[-3000:]
    return SippResult(proc.returncode, successful, failed, output)


def udp_bound(port: int) -> bool:
    """Whether some socket is bound to UDP `port` on 127.0.0.1 (from /proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    text = Path("/proc/net/udp").read_text()
    return any(line.split()[1] == want for line in text.splitlines()[1:])


class SippUas:
    """sipp running a UAS scenario in the background (one call) on 127.0.0.1."""

    def __init__(
        self,
        scenario: Path,
        workdir: Path,
        port: int | None = None,
        calls: int = 1,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                need("sipp"), "-sf", str(scenario), "-i", "127.0.0.1",
                "-p", str(self.port), "-m", str(calls), "-nostdin", "-trace_msg",
                "-trace_err", "-timeout", "60s", *extra,
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: udp_bound(self.port), 10, "sipp to bind its port")

    def finish(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> SippUas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _sipp_counts(stat: Path) -> tuple[int, int]:
    """(successful, failed) calls from the last line of sipp's -trace_stat CSV."""
    if not stat.exists():
        return 0, 0
    lines = [line for line in stat.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        return 0, 0
    head = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(head, last, strict=False))
    return int(row.get("SuccessfulCall(C)", 0) or 0), int(row.get("FailedCall(C)", 0) or 0)


def read_json(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data
