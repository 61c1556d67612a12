"""Calls per second through the switch: sipp UAC -> aiopbx -> sipp UAS, beside Kamailio.

Each call: INVITE -> 401 -> ACK -> INVITE with digest -> 180 -> 200 -> ACK -> BYE -> 200
on the caller's side, INVITE -> 180 -> 200 -> ACK -> BYE -> 200 on the callee's; aiopbx
authenticates, looks the callee up, anchors media (allocates relay ports, rewrites SDP),
writes a CDR and bridges. For each rate the run lasts `--seconds`; a rate is sustained
when sipp reports no failed call and reached the rate.

When `kamailio` is installed it runs in the same ladder as an authenticating stateful
proxy with record-routing (and, when `rtpengine` is installed too, media anchored by
rtpengine, as the anchors note describes): the C equivalent of what aiopbx does, though
a proxy keeps less state than a B2BUA. Prints a table and the ratio.

    python benchmarks/cps.py
    python benchmarks/cps.py --rates 20,50,100 --seconds 5 --no-kamailio
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx.store import Store  # noqa: E402

SIPP = ROOT / "tests" / "data" / "sipp"
PASSWORD = {"1001": "Bench-pass-Ax1", "1002": "Bench-pass-Bx2"}
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

KAMAILIO_CFG = """#!KAMAILIO
debug=0
log_stderror=yes
children={children}
listen=udp:127.0.0.1:{port}
auto_aliases=no
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "siputils.so"
{rtpengine_load}
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{
            {rtpengine_delete}
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{ t_check_trans(); exit; }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    if (is_method("INVITE")) {{
        if (!pv_www_authenticate("$fd", "{password}", "1")) {{
            www_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
        record_route();
        {rtpengine_manage}
        $du = "sip:127.0.0.1:{callee_port}";
        t_on_reply("REPLY");
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
onreply_route[REPLY] {{
    {rtpengine_reply}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads (children not included)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / tick


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@dataclass
class Row:
    server: str
    rate: int
    achieved: float
    ok: int
    failed: int
    cpu_ms: float
    calls: int = 0

    @property
    def sustained(self) -> bool:
        """Every call of the run completed and none failed."""
        return self.failed == 0 and self.ok == self.calls


def stat_counts(workdir: Path) -> tuple[int, int, float]:
    """(successful, failed, calls/s as sipp measured it) from sipp's -trace_stat file."""
    for stat in workdir.glob("*_.csv"):
        lines = [x for x in stat.read_text().splitlines() if x.strip()]
        row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
        return (
            int(row.get("SuccessfulCall(C)", 0) or 0),
            int(row.get("FailedCall(C)", 0) or 0),
            float(row.get("CallRate(C)", 0) or 0),
        )
    return 0, 0, 0.0


def register_callee(server_port: int, callee_port: int, work: Path) -> None:
    """Register 1002 at aiopbx from the port the UAS will listen on."""
    inf = work / "reg.csv"
    inf.write_text(f"SEQUENTIAL\n1002;[authentication username=1002 password={PASSWORD['1002']}]\n")
    subprocess.run(
        ["sipp", f"127.0.0.1:{server_port}", "-sf", str(SIPP / "register_auth.xml"),
         "-inf", str(inf), "-i", "127.0.0.1", "-p", str(callee_port), "-m", "1", "-nostdin",
         "-timeout", "10s"],
        cwd=work, capture_output=True, check=True, timeout=30,
    )  # fmt: skip


def run_rate(
    name: str, server_port: int, pids: list[int], rate: int, seconds: float, work: Path
) -> Row:
    calls = max(1, int(rate * seconds))
    run = work / f"{name}-{rate}"
    run.mkdir()
    callee_port = free_port()
    if name == "aiopbx":
        register_callee(server_port, callee_port, run)
    else:
        callee_port = KAMAILIO_CALLEE_PORT
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SIPP / "uas_answer.xml"), "-i", "127.0.0.1", "-p", str(callee_port),
         "-nostdin", "-m", str(calls), "-timeout", f"{int(seconds) + 60}s",
         "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)],
        cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)  # benchmark only: let the UAS bind before the first INVITE
    inf = run / "uac.csv"
    inf.write_text(
        "SEQUENTIAL\n1001;[authentication username=1001 password=" + PASSWORD["1001"] + "];1002\n"
    )
    before = sum(cpu_seconds(p) for p in pids)
    start = time.monotonic()
    subprocess.run(
        ["sipp", f"127.0.0.1:{server_port}", "-sf", str(SIPP / "uac_call.xml"), "-inf", str(inf),
         "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(calls), "-r", str(rate),
         "-l", str(rate * 4), "-d", "0", "-nostdin", "-trace_stat", "-fd", "1", "-trace_err",
         "-auth_uri", f"1002@127.0.0.1:{server_port}", "-timeout", f"{int(seconds) + 60}s",
         "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)],
        cwd=run, capture_output=True, timeout=seconds + 120,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    cpu = sum(cpu_seconds(p) for p in pids) - before
    ok, failed, achieved = stat_counts(run)
    uas.send_signal(signal.SIGINT)
    try:
        uas.wait(10)
    except subprocess.TimeoutExpired:
        uas.kill()
    del elapsed  # sipp's own rate excludes its start-up
    row = Row(name, rate, achieved, ok, failed, cpu / ok * 1e3 if ok else 0, calls)
    print(
        f"  {name:9} rate {rate:5}/s  achieved {row.achieved:7.1f}/s  ok {ok:6}  "
        f"failed {failed:5}  cpu {row.cpu_ms:6.2f} ms/call",
        flush=True,
    )
    return row


KAMAILIO_CALLEE_PORT = 0


async def make_users(data_dir: Path) -> None:
    store = await Store.open(data_dir / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    for user, password in PASSWORD.items():
        await store.users.add(user, password, "aiopbx")
    await store.close()


def start_aiopbx(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    data = work / "aiopbx"
    data.mkdir()
    asyncio.run(make_users(data))
    port = free_port()
    log = (work / "aiopbx.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--data-dir", str(data), "--port", str(port),
         "--no-tcp"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (data / "control.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"aiopbx did not start; see {work / 'aiopbx.log'}")
        time.sleep(0.05)
    return proc, port


def start_kamailio(work: Path, children_count: int) -> tuple[list[subprocess.Popen[bytes]], int]:
    global KAMAILIO_CALLEE_PORT
    KAMAILIO_CALLEE_PORT = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    rtpe = shutil.which("rtpengine") is not None
    if rtpe:
        procs.append(
            subprocess.Popen(
                [
                    "rtpengine",
                    "--table=-1",
                    "--interface=127.0.0.1",
                    "--listen-ng=127.0.0.1:22230",
                    "--port-min=40000",
                    "--port-max=50000",
                    "--foreground",
                    "--log-stderr",
                    "--log-level=3",
                    "--num-threads=1",
                    f"--pidfile={work / 'rtpe.pid'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
    port = free_port()
    cfg = work / "kamailio.cfg"
    cfg.write_text(
        KAMAILIO_CFG.format(
            children=children_count, port=port, modules=MODULES, password=PASSWORD["1001"],
            callee_port=KAMAILIO_CALLEE_PORT,
            rtpengine_load=('loadmodule "rtpengine.so"\n'
                            'modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:22230")')
            if rtpe else "",
            rtpengine_manage="rtpengine_manage();" if rtpe else "",
            rtpengine_delete="if (is_method(\"BYE\")) rtpengine_delete();" if rtpe else "",
            rtpengine_reply="if (has_body(\"application/sdp\")) rtpengine_manage();" if rtpe else "",
        )
    )  # fmt: skip
    log = (work / "kamailio.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                "kamailio",
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-P",
                str(work / "kam.pid"),
                "-m",
                "128",
                "-M",
                "16",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    )
    time.sleep(1.0)  # benchmark only: let both start
    if procs[-1].poll() is not None:
        raise SystemExit(f"kamailio did not start; see {work / 'kamailio.log'}")
    return procs, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ladder(
    name: str, port: int, pids: list[int], rates: list[int], seconds: float, work: Path
) -> list[Row]:
    rows = []
    for rate in rates:
        row = run_rate(name, port, pids, rate, seconds, work)
        rows.append(row)
        if not row.sustained:
            break
    return rows


def best(rows: list[Row]) -> Row | None:
    good = [r for r in rows if r.sustained]
    return max(good, key=lambda r: r.rate) if good else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,25,50,100,150,200,300,400,600")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-kamailio", action="store_true")
    parser.add_argument("--kamailio-children", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Keep logs and sipp files in this directory.")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    results: dict[str, Row | None] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-cps-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"calls/second ladder, {args.seconds:.0f} s per rate (sipp UAC -> server -> sipp UAS)"
        )
        proc, port = start_aiopbx(work)
        try:
            results["aiopbx"] = best(ladder("aiopbx", port, [proc.pid], rates, args.seconds, work))
        finally:
            stop(proc)
        if not args.no_kamailio and shutil.which("kamailio"):
            procs, kport = start_kamailio(work, args.kamailio_children)
            try:
                pids = [p.pid for p in procs] + [c for p in procs for c in children(p.pid)]
                results["kamailio"] = best(
                    ladder("kamailio", kport, pids, rates, args.seconds, work)
                )
            finally:
                for p in reversed(procs):
                    stop(p)
    print()
    print(f"{'server':10}{'best rate':>10}{'sipp cps':>10}{'cpu ms/call':>13}")
    for name, row in results.items():
        if row is None:
            print(f"{name:10}{'none':>10}")
        else:
            print(f"{name:10}{row.rate:10d}{row.achieved:10.1f}{row.cpu_ms:13.2f}")
    a, k = results.get("aiopbx"), results.get("kamailio")
    if a and k:
        print(
            f"\naiopbx / kamailio{'+rtpengine' if shutil.which('rtpengine') else ''}: "
            f"sustained rate {a.rate / k.rate:.2f}x, CPU per call {a.cpu_ms / k.cpu_ms:.2f}x "
            "(ladder-capped; kamailio is a proxy, aiopbx a B2BUA)"
        )


if __name__ == "__main__":
    main()
