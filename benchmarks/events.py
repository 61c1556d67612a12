"""Event fan-out: calls through `pbx serve` with WebSocket subscribers on GET /events.

sipp places calls (1001 -> 1002, answered at once, hung up at once) at `--rate` calls/s
for `--seconds`; meanwhile `--subscribers` WebSocket clients (aiohttp, in this process)
read the event stream. Each event carries `at`, the server's wall time when it was
published; its latency is this process's wall time when the client got it minus `at`
(one machine, one clock). The table shows, per subscriber count, the events each
subscriber got, the latency percentiles over all of them, how many subscribers the
server dropped, and the server's CPU (user+system) per call. The run with 0 subscribers
is the baseline in the same run: the ratio says what the fan-out costs the switch.

Caveat: the clients share one Python loop (this process) and the machine's CPU with the
server and sipp, so the latency includes the clients' own queueing.

    python benchmarks/events.py
    python benchmarks/events.py --rate 100 --seconds 10 --subscribers 0,10

Not a test: it asserts nothing, it prints. Needs sipp.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    SIP_OPTIONS,
    Popen,
    cpu_times,
    free_port,
    make_users,
    spawn,
    stop,
    udp_answers,
    udp_bound,
    wait_for,
)
from benchmarks.cps import PASSWORD, register_callee, routed_scenarios, stat_counts
from pbx.config import Settings
from pbx.control import stream_events
from pbx.errors import ControlError


@dataclass
class Listener:
    latencies: list[float] = field(default_factory=list)
    dropped: bool = False


async def listen(settings: Settings, listener: Listener, ready: asyncio.Event) -> None:
    try:
        stream = stream_events(settings)
        first = asyncio.ensure_future(anext(stream))
        ready.set()
        event = await first
        while True:
            listener.latencies.append(time.time() - float(event["at"]))
            event = await anext(stream)
    except ControlError:
        listener.dropped = True
    except StopAsyncIteration:
        pass


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


@dataclass
class Row:
    subscribers: int
    calls_ok: int
    achieved: float
    events_each: float
    p50: float
    p99: float
    worst: float
    dropped: int
    cpu_ms: float


async def run_once(
    pid: int, port: int, settings: Settings, subscribers: int, rate: int, seconds: float, work: Path
) -> Row:
    calls = max(1, int(rate * seconds))
    run = work / f"sub{subscribers}"
    run.mkdir()
    listeners = [Listener() for _ in range(subscribers)]
    tasks = []
    for listener in listeners:
        ready = asyncio.Event()
        tasks.append(asyncio.ensure_future(listen(settings, listener, ready)))
        await ready.wait()
    await asyncio.sleep(0.5)  # the WebSocket upgrades complete (not a measurement)
    callee_port = free_port()
    uac_xml, uas_xml = routed_scenarios(run)
    await asyncio.to_thread(register_callee, port, callee_port, run)
    timeout = f"{int(seconds) + 60}s"
    uas_args = ["sipp", "-sf", str(uas_xml), "-i", "127.0.0.1", "-p", str(callee_port)]
    uas_args += ["-m", str(calls), "-timeout", timeout, "-nostdin", "-trace_err"]
    uas = spawn(uas_args, run / "uas.log", cwd=run)
    try:
        wait_for(lambda: udp_bound(callee_port), "sipp UAS", uas, run / "uas.log")
        inf = run / "uac.csv"
        auth = f"[authentication username=1001 password={PASSWORD['1001']}]"
        inf.write_text(f"SEQUENTIAL\n1001;{auth};1002\n")
        uac_args = ["sipp", f"127.0.0.1:{port}", "-sf", str(uac_xml)]
        uac_args += ["-inf", str(inf), "-i", "127.0.0.1", "-p", str(free_port())]
        uac_args += ["-m", str(calls), "-r", str(rate), "-l", str(rate * 4), "-d", "0"]
        uac_args += ["-nostdin", "-trace_stat", "-fd", "1", "-trace_err", "-timeout", timeout]
        uac_args += ["-auth_uri", f"1002@127.0.0.1:{port}"]
        before = sum(cpu_times(pid))
        uac = await asyncio.create_subprocess_exec(
            *uac_args,
            cwd=run,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(uac.wait(), seconds + 120)
        cpu = sum(cpu_times(pid)) - before
    finally:
        stop(uas, signal.SIGINT)
    await asyncio.sleep(1.0)  # the last calls' events arrive (not a measurement)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ok, _failed, achieved = stat_counts(run)
    every = [x for listener in listeners for x in listener.latencies]
    return Row(
        subscribers,
        ok,
        achieved,
        len(every) / subscribers if subscribers else 0.0,
        percentile(every, 50) * 1e3,
        percentile(every, 99) * 1e3,
        max(every, default=0.0) * 1e3,
        sum(listener.dropped for listener in listeners),
        cpu / ok * 1e3 if ok else 0.0,
    )


def start_aiopbx(work: Path) -> tuple[Popen, int]:
    """`pbx serve` (UDP only, no per-user call limit: 1001 places every call) on a free
    port, ready when it answers OPTIONS."""
    data = work / "aiopbx"
    data.mkdir()
    asyncio.run(make_users(data, PASSWORD))
    port = free_port()
    args = [sys.executable, "-m", "cli", "serve", "--data-dir", str(data), "--port", str(port)]
    args += ["--no-tcp", "--max-calls-per-user", "0"]
    log = work / "aiopbx.log"
    proc = spawn(args, log, cwd=ROOT)
    try:
        wait_for(lambda: udp_answers(port, SIP_OPTIONS, b"SIP/2.0 "), "aiopbx", proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, port


async def main_async(args: argparse.Namespace, work: Path, proc: Popen, port: int) -> list[Row]:
    try:
        settings = Settings(data_dir=work / "aiopbx")
        rows = []
        for count in args.subscribers:
            row = await run_once(proc.pid, port, settings, count, args.rate, args.seconds, work)
            print(
                f"  {count:3} subscribers: {row.calls_ok} calls, p99 {row.p99:.1f} ms",
                flush=True,
            )
            rows.append(row)
        return rows
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=100, help="Calls per second.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each run.")
    parser.add_argument(
        "--subscribers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[0, 10],
        help="Comma-separated subscriber counts, one run each (default 0,10).",
    )
    parser.add_argument("--keep", type=Path, help="Keep logs and sipp files in this directory.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        print(f"event fan-out: {args.rate} calls/s for {args.seconds:g} s per run")
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        proc, port = start_aiopbx(work)
        rows = asyncio.run(main_async(args, work, proc, port))
    base = next((r.cpu_ms for r in rows if r.subscribers == 0), 0.0)
    print(
        f"{'subs':>4}{'calls':>7}{'cps':>7}{'events/sub':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'dropped':>8}{'cpu ms/call':>12}{'x base':>8}"
    )
    for r in rows:
        ratio = f"{r.cpu_ms / base:.2f}" if base else "-"
        print(
            f"{r.subscribers:>4}{r.calls_ok:>7}{r.achieved:>7.1f}{r.events_each:>11.0f}"
            f"{r.p50:>8.1f}{r.p99:>8.1f}{r.worst:>8.1f}{r.dropped:>8}{r.cpu_ms:>12.2f}{ratio:>8}"
        )


if __name__ == "__main__":
    main()
