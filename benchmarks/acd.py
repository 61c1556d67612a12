"""The ACD under load: queued sipp callers and sipp agent phones through `pbx serve`.

`--callers` (200) callers wait in one queue (leastrecent, 30 s position announcements,
music) while `--agents` (50) agents, logged in before the start, take calls: each agent's
sipp answers an offer, talks `--talk` seconds and hangs up, which frees it; the ACD then
offers it the next caller at once (wrap-up 0). sipp keeps callers + agents calls up
(`-l`), so the queue stays full for the whole run.

Measured:
- offer latency: from the agent's BYE leaving its phone to the next INVITE reaching it
  (both stamped by the same sipp, in ms: its `[clock_tick]`), over the steady window;
  every such gap has a waiting caller, so it is the switch's own work (BYE in,
  completion, queue event written, next dispatch, dial with its INVITE out);
- the server's CPU (user + system, all threads) over the window, per queued caller;
- RTP the whole machine sent per second over the window (/proc/net/snmp), against
  50 packets a second for each leg the switch holds (queued callers hear music, talking
  pairs are bridged): sipp sends no RTP here, so nearly all of it is the switch's.

No peer runs beside it: app_queue and mod_callcenter need a whole Asterisk or
FreeSWITCH, which Debian does not ship; ../shared/peers/callcentre.md has what is known
of their figures. Not a test: it asserts nothing, it prints.

    python benchmarks/acd.py
    python benchmarks/acd.py --callers 50 --agents 10 --seconds 20 --keep /tmp/acdbench
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    SIP_OPTIONS,
    Popen,
    cpu_times,
    free_port,
    spawn,
    stop,
    udp_answers,
    udp_bound,
    wait_for,
)
from pbx.config import Settings
from pbx.store import Store
from pbx.store.queues import Queue

SCENARIOS = Path(__file__).resolve().parent / "sipp"
CALLER = "2000"
PASSWORD = "Bench-acd-secret-7"
QUEUE_NUMBER = "700"


def agent_names(count: int) -> list[str]:
    return [f"{1001 + i}" for i in range(count)]


async def prepare(data: Path, agents: list[str]) -> None:
    """Users (agents and one caller account), the queue with every agent a member, and
    each agent logged in (restored by the server at start)."""
    store = await Store.open(data / "pbx.sqlite3")
    try:
        await store.settings.set_default("realm", "aiopbx")
        for user in [*agents, CALLER]:
            await store.users.add(user, PASSWORD, "aiopbx")
        queue = Queue(
            "bench",
            QUEUE_NUMBER,
            strategy="leastrecent",
            ring_seconds=15.0,
            wrapup_seconds=0.0,
            announce_frequency=30.0,
        )
        await store.queues.add(queue)
        now = time.time()
        for agent in agents:
            await store.queues.add_member("bench", agent)
            await store.agents.login(agent, now)
    finally:
        await store.close()


def start_server(data: Path, work: Path) -> tuple[Popen, int]:
    port = free_port()
    args = [sys.executable, "-m", "cli", "serve", "--data-dir", str(data), "--port", str(port)]
    # Capacity, not policy: every caller is the one account 2000.
    args += ["--no-tcp", "--max-calls-per-user", "0", "--log-level", "WARNING"]
    log = work / "aiopbx.log"
    proc = spawn(args, log, cwd=ROOT)
    wait_for(lambda: udp_answers(port, SIP_OPTIONS, b"SIP/2.0 "), "aiopbx", proc, log)
    wait_for(lambda: Settings(data_dir=data).control_file.exists(), "control API", proc, log)
    return proc, port


def auth_line(user: str) -> str:
    return f"[authentication username={user} password={PASSWORD}]"


def register(server_port: int, user: str, port: int, work: Path) -> None:
    csv = work / f"reg-{user}.csv"
    csv.write_text(f"SEQUENTIAL\n{user};{auth_line(user)}\n")
    args = [
        "sipp",
        f"127.0.0.1:{server_port}",
        "-sf",
        str(ROOT / "tests/data/sipp/register_auth.xml"),
    ]
    args += ["-inf", str(csv), "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-timeout", "10s"]
    done = subprocess.run(args, cwd=work, capture_output=True, timeout=30)
    if done.returncode != 0:
        raise SystemExit(f"sipp could not register {user}: exit {done.returncode}")


def media_ports(index: int) -> list[str]:
    """sipp binds media sockets (audio and video, 4 ports) from 6000 up unless told: 51
    of them collide. Each gets its own, under the ephemeral range and above the
    switch's RTP ports (10000-20000)."""
    return ["-mi", "127.0.0.1", "-mp", str(22000 + 4 * index)]


def start_agent(server_port: int, user: str, index: int, talk_ms: int, work: Path) -> Popen:
    """The agent's phone: registered as `user`, then a sipp UAS on the same port."""
    port = free_port()
    register(server_port, user, port, work)
    args = ["sipp", "-sf", str(SCENARIOS / "acd_agent.xml"), "-i", "127.0.0.1", "-p", str(port)]
    args += ["-d", str(talk_ms), "-trace_logs", "-log_file", str(work / f"agent-{user}.log")]
    args += ["-nostdin", "-aa", *media_ports(index + 1)]
    log = work / f"agent-{user}.out"
    proc = spawn(args, log, cwd=work)
    wait_for(lambda: udp_bound(port), f"agent {user}", proc, log)
    return proc


def start_callers(server_port: int, callers: int, agents: int, work: Path) -> Popen:
    csv = work / "callers.csv"
    csv.write_text(f"SEQUENTIAL\n{CALLER};{auth_line(CALLER)};{QUEUE_NUMBER}\n")
    args = ["sipp", f"127.0.0.1:{server_port}", "-sf", str(SCENARIOS / "acd_caller.xml")]
    args += ["-inf", str(csv), "-i", "127.0.0.1", "-p", str(free_port())]
    # Up to callers + agents calls at once: `callers` wait while `agents` talk.
    args += ["-r", "50", "-l", str(callers + agents), "-m", "1000000", "-nostdin"]
    # sipp's digest-uri is "sip:host:port" unless told; the switch checks it is the R-URI.
    args += ["-auth_uri", f"{QUEUE_NUMBER}@127.0.0.1:{server_port}"]
    args += ["-trace_stat", "-fd", "1", *media_ports(0)]
    return spawn(args, work / "callers.out", cwd=work)


def snapshot(data: Path) -> dict[str, Any]:
    from pbx import control

    return control.request(Settings(data_dir=data), "/acd", 5.0)


def waiting_count(data: Path) -> tuple[int, int]:
    """(callers waiting, agents on call) now."""
    snap = snapshot(data)
    [queue] = snap["queues"]
    on_call = sum(1 for a in snap["agents"] if a["state"] == "on-call")
    return len(queue["waiting"]), on_call


def udp_out() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    names, values = [ln.split() for ln in lines if ln.startswith("Udp:")][:2]
    return int(values[names.index("OutDatagrams")])


class EventLog:
    """The server's event stream (`GET /events`) read in a thread for the window: when
    each agent leg ended (its BYE handled), when the ACD offered that agent the next
    caller (`queue.offer`) and when the switch created the next leg (its INVITE)."""

    def __init__(self, data: Path, agents: list[str]) -> None:
        self.settings = Settings(data_dir=data)
        self.agents = set(agents)
        self.events: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from pbx import control

        async def follow() -> None:
            async for event in control.stream_events(self.settings):
                self.events.append(event)

        self.task = self.loop.create_task(follow())
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the window's figures stand without the breakdown
            print(f"event stream: {exc}", file=sys.stderr)

    def stop(self) -> None:
        task = self.task
        if task is not None:
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(5)

    def breakdown(self) -> tuple[list[float], list[float]]:
        """(agent leg ended -> next offer, offer -> next leg created), in ms."""
        leg_agent: dict[str, str] = {}
        ended: dict[str, float] = {}
        offered: dict[str, float] = {}
        to_offer: list[float] = []
        to_invite: list[float] = []
        for e in self.events:
            kind = e.get("kind")
            if kind == "call.created" and e.get("direction") == "out":
                agent = str(e.get("callee"))
                if agent in self.agents:
                    leg_agent[str(e["call_id"])] = agent
                    if agent in offered:
                        to_invite.append((float(e["at"]) - offered.pop(agent)) * 1000)
            elif kind == "call.ended" and str(e.get("call_id")) in leg_agent:
                ended[leg_agent.pop(str(e["call_id"]))] = float(e["at"])
            elif kind == "queue.offer":
                agent = str(e.get("agent"))
                offered[agent] = float(e["at"])
                if agent in ended:
                    to_offer.append((float(e["at"]) - ended.pop(agent)) * 1000)
        return to_offer, to_invite


_LINE = re.compile(r"^(invite|bye) (\d+)")


def offer_gaps(log: Path, start_ms: float | None = None) -> list[float]:
    """Milliseconds from each BYE the agent sent to the next INVITE it got."""
    gaps: list[float] = []
    bye: int | None = None
    if not log.exists():
        return gaps
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        kind, tick = match.group(1), int(match.group(2))
        if kind == "bye":
            bye = tick
        elif bye is not None:
            gaps.append(float(tick - bye))
            bye = None
    return gaps


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace, work: Path) -> None:
    agents = agent_names(args.agents)
    data = work / "aiopbx"
    data.mkdir()
    asyncio.run(prepare(data, agents))
    procs: list[Popen] = []
    server, port = start_server(data, work)
    try:
        for index, agent in enumerate(agents):
            procs.append(start_agent(port, agent, index, int(args.talk * 1000), work))
        procs.append(start_callers(port, args.callers, args.agents, work))
        deadline = time.monotonic() + 60
        while waiting_count(data)[0] < args.callers * 0.9:  # the queue fills
            if time.monotonic() > deadline:
                raise SystemExit(f"the queue did not fill: see {work}")
            time.sleep(0.5)
        # Steady window: the logs' lines before it are dropped (by count).
        marks = {a: len(offer_gaps(work / f"agent-{a}.log")) for a in agents}
        log = EventLog(data, agents)
        log.start()
        cpu0, out0, t0 = sum(cpu_times(server.pid)), udp_out(), time.monotonic()
        samples: list[tuple[int, int]] = []
        while time.monotonic() - t0 < args.seconds:
            samples.append(waiting_count(data))
            time.sleep(1.0)
        cpu1, out1, t1 = sum(cpu_times(server.pid)), udp_out(), time.monotonic()
        log.stop()
    finally:
        for proc in procs:
            stop(proc)
        stop(server)
    gaps: list[float] = []
    for agent in agents:
        gaps += offer_gaps(work / f"agent-{agent}.log")[marks[agent] :]
    seconds = t1 - t0
    queued = statistics.mean(w for w, _ in samples)
    talking = statistics.mean(c for _, c in samples)
    cpu = (cpu1 - cpu0) / seconds
    pps = (out1 - out0) / seconds
    print(
        f"ACD under load: {args.callers} callers, {args.agents} agents talking {args.talk:g} s,"
        f" {seconds:.0f} s steady window"
    )
    print(f"{'':34}{'value':>12}{'goal':>12}")
    if gaps:
        print(f"{'offers measured':34}{len(gaps):>12}")
        print(f"{'offer latency p50 (ms)':34}{statistics.median(gaps):>12.1f}")
        print(f"{'offer latency p99 (ms)':34}{percentile(gaps, 0.99):>12.1f}{'< 50':>12}")
        print(f"{'offer latency max (ms)':34}{max(gaps):>12.1f}")
    else:
        print("no offer measured: see the agents' logs in", work)
    to_offer, to_invite = log.breakdown()
    if to_offer and to_invite:
        for name, values in (("BYE in -> offer", to_offer), ("offer -> leg made", to_invite)):
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            print(f"{'  switch: ' + name + ' p50, p99':34}{p50:>12.1f}{p99:>12.1f}")
    print(f"{'callers queued (mean)':34}{queued:>12.1f}")
    print(f"{'agents on call (mean)':34}{talking:>12.1f}")
    print(f"{'server CPU (% of a core)':34}{cpu * 100:>12.1f}")
    per = cpu * 100 / queued if queued else float("nan")
    print(f"{'CPU per queued caller (%)':34}{per:>12.3f}{'< 1':>12}")
    legs = queued + 2 * talking
    print(f"{'UDP out (packets/s)':34}{pps:>12.0f}{legs * 50:>12.0f}  (50/s per leg held)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=200, help="Callers kept waiting.")
    parser.add_argument("--agents", type=int, default=50, help="Agent phones (sipp UAS).")
    parser.add_argument("--talk", type=float, default=3.0, help="Seconds an agent talks.")
    parser.add_argument("--seconds", type=float, default=40.0, help="The steady window.")
    parser.add_argument("--keep", type=Path, help="Keep the logs in this directory.")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("needs sipp (Debian package sip-tester)")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="acd-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
