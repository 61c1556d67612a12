"""Process and socket helpers the benchmarks share: start a server tied to this
process's life, wait for it by an observable condition, read its CPU from /proc,
stop it; and `pbx serve` started on a free port with given users."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pbx.store import Store  # noqa: E402

Popen = subprocess.Popen[bytes]
START_TIMEOUT = 20.0  # seconds a server or a UAS gets to become ready

SIP_OPTIONS = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:{PROBE_PORT};rport;branch=z9hG4bKprobe{PROBE_PORT}\r\n"
    b"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\n"
    b"Call-ID: bench-probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n"
)


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM the child when this script dies, however it dies,
    so no server outlives the benchmark holding its ports."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], log: Path, cwd: Path | None = None) -> Popen:
    """Start a server or sipp, output to `log`, tied to this process's life."""
    with log.open("wb") as file:
        return subprocess.Popen(
            args, cwd=cwd, stdout=file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def udp_bound(port: int) -> bool:
    """Whether some socket is bound to UDP `port` on 127.0.0.1 (from /proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    text = Path("/proc/net/udp").read_text()
    return any(line.split()[1] == want for line in text.splitlines()[1:])


def wait_for(ready: Callable[[], bool], what: str, proc: Popen, log: Path) -> None:
    """Poll `ready` until it holds; give up after START_TIMEOUT or when `proc` exits.

    Raises:
        SystemExit: `proc` exited or the time ran out (the message names `log`).
    """
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            raise SystemExit(f"{what}: exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not ready after {START_TIMEOUT:.0f} s; see {log}")
        time.sleep(0.02)


def udp_answers(port: int, datagram: bytes, expect: bytes) -> bool:
    """Send one datagram to 127.0.0.1:`port`; whether a reply containing `expect` comes
    back within 0.2 s. `{PROBE_PORT}` in the datagram becomes the probe's own port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(0.2)
        datagram = datagram.replace(b"{PROBE_PORT}", str(probe.getsockname()[1]).encode())
        probe.sendto(datagram, ("127.0.0.1", port))
        try:
            return expect in probe.recv(65535)
        except TimeoutError:
            return False
        except ConnectionRefusedError:  # ICMP port unreachable: nothing bound yet
            return False


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its threads (children not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0, 0.0
    return int(fields[11]) / tick, int(fields[12]) / tick


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def stop(proc: Popen, sig: signal.Signals = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def make_users(data_dir: Path, users: dict[str, str]) -> None:
    """A database in `data_dir` holding `users` (name -> password) in realm aiopbx."""
    store = await Store.open(data_dir / "pbx.sqlite3")
    try:
        await store.settings.set_default("realm", "aiopbx")
        for user, password in users.items():
            await store.users.add(user, password, "aiopbx")
    finally:
        await store.close()


def start_aiopbx(work: Path, users: dict[str, str]) -> tuple[Popen, int]:
    """`pbx serve` (UDP only) on a free port with `users`, ready when it answers OPTIONS."""
    data = work / "aiopbx"
    data.mkdir()
    asyncio.run(make_users(data, users))
    port = free_port()
    args = [sys.executable, "-m", "cli", "serve", "--data-dir", str(data)]
    # Capacity, not policy: the load comes from a few users, so the per-user call limit
    # (default 4, issue 10 §6) would turn most calls into 486s.
    args += ["--port", str(port), "--no-tcp", "--max-calls-per-user", "0"]
    log = work / "aiopbx.log"
    proc = spawn(args, log, cwd=ROOT)
    try:
        wait_for(lambda: udp_answers(port, SIP_OPTIONS, b"SIP/2.0 "), "aiopbx", proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, port
