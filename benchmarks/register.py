"""Authenticated REGISTER throughput: aiopbx against Kamailio, driven by sipp, on loopback.

Each sipp "call" is one authenticated registration: REGISTER -> 401 challenge ->
REGISTER with MD5 digest (qop=auth) -> 200, for users 1001.. in turn. For each
rate the run lasts `--seconds` seconds; a rate counts as sustained when sipp
reports no failed call and reached the rate. The table shows, per server and
rate: registrations/s achieved, failures, p50/p99 of sipp's response times
(its rtd timer, stopped at the 401 and again at the 200, whole milliseconds),
and the server's CPU (user+system, and user alone) per registration.

    python benchmarks/register.py                # full ladder, aiopbx and Kamailio
    python benchmarks/register.py --rates 1000,3000 --seconds 5

Not a test: it asserts nothing, it prints. Needs sipp; Kamailio when installed.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    SIP_OPTIONS,
    Popen,
    children,
    cpu_times,
    free_port,
    spawn,
    stop,
    udp_answers,
    wait_for,
)
from benchmarks.common import start_aiopbx as start_aiopbx_server


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes together."""
    times = [cpu_times(pid) for pid in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


SCENARIO = ROOT / "tests" / "data" / "sipp" / "register_auth.xml"
PASSWORD = "Bench-pass-2026"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
KAMAILIO_CFG = """#!KAMAILIO
debug=0
log_stderror=yes
children={children}
listen=udp:127.0.0.1:{port}
auto_aliases=no
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "textops.so"
modparam("auth", "nonce_expire", 300)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("REGISTER")) {{
        # same password for every user, given in plain text (flag 0);
        # the challenge asks for qop=auth like aiopbx (www_challenge flag 1)
        if (!pv_www_authenticate("$td", "{password}", "0")) {{
            www_challenge("$td", "1");
            exit;
        }}
        consume_credentials();
        save("location");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


@dataclass
class Row:
    server: str
    rate: int
    achieved: float
    ok: int
    failed: int
    p50_ms: float
    p99_ms: float
    cpu_us: float
    user_us: float


def run_sipp(
    port: int, rate: int, seconds: float, users: int, work: Path
) -> tuple[int, int, float, list[float]]:
    """(successful, failed, elapsed seconds, response times in ms) of one sipp run."""
    calls = int(rate * seconds)
    inf = work / "users.csv"
    inf.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{1001 + i};[authentication username={1001 + i} password={PASSWORD}]\n"
            for i in range(users)
        )
    )
    for old in work.glob("register_auth_*"):
        old.unlink()
    args = [
        "sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-inf", str(inf),
        "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(calls), "-r", str(rate),
        "-l", str(max(rate, 100)), "-nostdin", "-timeout", f"{int(seconds) + 30}s",
        "-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "100",
        "-max_socket", "1000", "-recv_timeout", "4000", "-buff_size", "4194304",
    ]  # fmt: skip
    start = time.monotonic()
    subprocess.run(args, cwd=work, capture_output=True, timeout=seconds + 120)
    elapsed = time.monotonic() - start
    ok = failed = 0
    for stat in work.glob("register_auth_*_.csv"):
        lines = [x for x in stat.read_text().splitlines() if x.strip()]
        head, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(head, last, strict=False))
        ok = int(row.get("SuccessfulCall(C)", 0) or 0)
        failed = int(row.get("FailedCall(C)", 0) or 0)
    times: list[float] = []
    for rtt in work.glob("register_auth_*_rtt.csv"):
        # sipp writes "Date_ms;response_time_ms;rtd_no": the time is the second column
        # (the third is the timer's number, always 1 here), in whole milliseconds.
        lines = rtt.read_text().splitlines()
        if not lines:
            continue
        column = lines[0].split(";").index("response_time_ms")
        for line in lines[1:]:
            parts = line.split(";")
            if len(parts) > column:
                with contextlib.suppress(ValueError):
                    times.append(float(parts[column]))
    return ok, failed, elapsed, times


def measure(
    name: str, port: int, pids: list[int], rates: list[int], seconds: float, users: int, work: Path
) -> list[Row]:
    rows: list[Row] = []
    for rate in rates:
        user_before, system_before = cpu_seconds(pids)
        ok, failed, elapsed, times = run_sipp(port, rate, seconds, users, work)
        user_after, system_after = cpu_seconds(pids)
        user = user_after - user_before
        cpu = user + system_after - system_before
        times.sort()
        p50 = statistics.median(times) if times else float("nan")
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
        row = Row(
            name,
            rate,
            ok / elapsed if elapsed else 0.0,
            ok,
            failed,
            p50,
            p99,
            cpu / ok * 1e6 if ok else float("nan"),
            user / ok * 1e6 if ok else float("nan"),
        )
        rows.append(row)
        print(
            f"  {name:9} rate {rate:6}/s  achieved {row.achieved:8.0f}/s  ok {ok:7}  "
            f"failed {failed:5}  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
            f"cpu {row.cpu_us:7.1f} µs/reg (user {row.user_us:6.1f})",
            flush=True,
        )
        if failed or row.achieved < 0.9 * rate:
            break
    return rows


def start_aiopbx(work: Path, users: int) -> tuple[Popen, int]:
    """`pbx serve` with users 1001.. sharing one password (as Kamailio's config does)."""
    return start_aiopbx_server(work, {str(1001 + i): PASSWORD for i in range(users)})


def start_kamailio(work: Path, children: int) -> tuple[Popen, int] | None:
    if shutil.which("kamailio") is None:
        return None
    port = free_port()
    cfg = work / "kamailio.cfg"
    cfg.write_text(
        KAMAILIO_CFG.format(
            children=children, port=port, modules=KAMAILIO_MODULES, password=PASSWORD
        )
    )
    log = work / "kamailio.log"
    proc = spawn(
        ["kamailio", "-f", str(cfg), "-DD", "-E", "-P", str(work / "kamailio.pid"),
         "-m", "256", "-M", "16"],
        log,
    )  # fmt: skip
    # Ready when it answers an OPTIONS (405 from our route).
    try:
        wait_for(lambda: udp_answers(port, SIP_OPTIONS, b"SIP/2.0 "), "kamailio", proc, log)
    except BaseException:
        stop(proc)  # never leave a Kamailio behind holding its port
        raise
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000,8000,10000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--kamailio-children",
        type=int,
        default=1,
        help="UDP worker processes of Kamailio (1 = one core, like aiopbx)",
    )
    parser.add_argument("--no-kamailio", action="store_true")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    rates = [int(r) for r in args.rates.split(",")]
    results: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-bench-") as tmp:
        work = Path(tmp)
        print(f"authenticated REGISTER ladder, {args.seconds:.0f} s per rate, {args.users} users")
        proc, port = start_aiopbx(work, args.users)
        try:
            results["aiopbx"] = measure(
                "aiopbx", port, [proc.pid], rates, args.seconds, args.users, work
            )
        finally:
            stop(proc)
        if not args.no_kamailio:
            started = start_kamailio(work, args.kamailio_children)
            if started is None:
                print("  kamailio not installed: no ratio")
            else:
                kproc, kport = started
                try:
                    pids = [kproc.pid, *children(kproc.pid)]
                    results["kamailio"] = measure(
                        "kamailio", kport, pids, rates, args.seconds, args.users, work
                    )
                finally:
                    stop(kproc)
    print()
    print(f"{'server':10}{'best rate':>12}{'p50 ms':>9}{'p99 ms':>9}{'cpu µs/reg':>12}")
    best: dict[str, Row] = {}
    for name, rows in results.items():
        good = [r for r in rows if r.failed == 0 and r.achieved >= 0.9 * r.rate]
        if good:
            b = max(good, key=lambda r: r.achieved)
            best[name] = b
            print(f"{name:10}{b.achieved:12.0f}{b.p50_ms:9.2f}{b.p99_ms:9.2f}{b.cpu_us:12.1f}")
        else:
            print(f"{name:10}{'none':>12}")
    if "aiopbx" in best and "kamailio" in best:
        a, k = best["aiopbx"], best["kamailio"]
        print(
            f"\naiopbx / kamailio: sustained rate {a.achieved / k.achieved:.2f}x, "
            f"CPU per registration {a.cpu_us / k.cpu_us:.2f}x "
            f"(kamailio with {args.kamailio_children} worker(s); rates capped by the ladder)"
        )


if __name__ == "__main__":
    main()
