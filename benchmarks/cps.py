"""Calls per second through the switch: sipp UAC -> server -> sipp UAS, aiopbx beside Kamailio.

Each call: INVITE -> 401 -> ACK -> INVITE with digest -> 180 -> 200 -> ACK -> BYE -> 200
on the caller's side, INVITE -> 180 -> 200 -> ACK -> BYE -> 200 on the callee's. For each
rate the run lasts `--seconds`; a rate is sustained when every call of the run completed
and none failed. The servers run one at a time, each through the same ladder; the table
shows the best sustained rate, the rate sipp measured, and the server's CPU (user+system,
all its processes and threads) per successful call.

Like for like where possible: both servers challenge the first INVITE and check the
caller's MD5 digest (qop=auth, the same single password), both record the dialog route
so ACK and BYE pass through them, and when `rtpengine` is installed both anchor media
(aiopbx with its own relay ports, Kamailio through rtpengine, started userspace with one
thread, `--table=-1`): the SDP each side sees points at the anchor. sipp sends no RTP, so
this measures signalling plus relay set-up and tear-down, not packet forwarding.

What differs: aiopbx is a B2BUA: it looks the callee up in its registrar (1002 registers
first), runs two dialogs per call with their own transactions, and writes a CDR to SQLite.
Kamailio is a stateful proxy (tm): it forwards the INVITE to the UAS's fixed address ($du,
no location lookup), keeps transaction state but no dialog state, and writes nothing.
Kamailio runs `--kamailio-children` UDP workers (default 1, as aiopbx runs one asyncio
loop) plus its timer processes, which are all counted.

    python benchmarks/cps.py
    python benchmarks/cps.py --rates 20,50,100 --seconds 5 --no-kamailio
    python benchmarks/cps.py --rates 20 --seconds 2 --keep /tmp/cpsdbg

Not a test: it asserts nothing, it prints. Needs sipp; Kamailio and rtpengine when installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
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
    udp_bound,
    wait_for,
)
from benchmarks.common import start_aiopbx as start_aiopbx_server

SIPP = ROOT / "tests" / "data" / "sipp"
PASSWORD = {"1001": "Bench-pass-Ax1", "1002": "Bench-pass-Bx2"}
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

# pv_www_authenticate flags "0": the password argument is plain text (flag 1 would mean
# it is already an HA1 hash, and every digest would fail). www_challenge flags "1": qop=auth.
KAMAILIO_CFG = """#!KAMAILIO
debug=0
log_stderror=yes
children={children}
listen=udp:127.0.0.1:{port}
auto_aliases=no
mpath="{modules}"
loadmodule "tm.so"
loadmodule "tmx.so"
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
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    # Retransmissions: absorbed by their transaction before auth and rtpengine see them.
    if (!is_method("ACK")) {{
        if (t_precheck_trans()) {{ t_check_trans(); exit; }}
        t_check_trans();
    }}
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
    if (is_method("INVITE")) {{
        if (!pv_www_authenticate("$fd", "{password}", "0")) {{
            www_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
        record_route();
        {rtpengine_offer}
        $du = "sip:127.0.0.1:{callee_port}";
        t_on_reply("REPLY");
        t_on_failure("FAIL");
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
onreply_route[REPLY] {{
    {rtpengine_answer}
}}
failure_route[FAIL] {{
    {rtpengine_failed}
}}
"""

RTPENGINE_LOAD = 'loadmodule "rtpengine.so"\nmodparam("rtpengine", "rtpengine_sock", "udp:{sock}")'


NG_PING = b"cpsprobe d7:command4:pinge"  # ng protocol: cookie, bencoded {"command": "ping"}


@dataclass(frozen=True, slots=True)
class Server:
    """One system under test: where it listens, whose CPU to count, where its callee is."""

    name: str
    port: int
    roots: tuple[int, ...]  # the processes started; their children are counted too
    callee_port: int | None  # fixed UAS port (Kamailio); None: 1002 registers per run

    def pids(self) -> list[int]:
        """Every process whose CPU is the server's: the roots and their children."""
        return [*self.roots, *(c for r in self.roots for c in children(r))]


@dataclass(frozen=True, slots=True)
class Row:
    server: str
    rate: int
    achieved: float
    ok: int
    failed: int
    cpu_ms: float
    calls: int

    @property
    def sustained(self) -> bool:
        """Every call of the run completed, none failed, and sipp kept up with the rate.

        sipp's cumulative rate counts the last calls' tail (ring time and signalling,
        about 0.3 s) too, so a run that kept pace shows 0.9-0.96 of the rate; a server
        that fell behind shows much less."""
        return self.failed == 0 and self.ok == self.calls and self.achieved >= 0.85 * self.rate


def stat_counts(workdir: Path) -> tuple[int, int, float]:
    """(successful, failed, calls/s as sipp measured it) from sipp's -trace_stat file."""
    for stat in workdir.glob("*_.csv"):
        lines = [x for x in stat.read_text().splitlines() if x.strip()]
        if len(lines) < 2:
            continue
        row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
        return (
            int(row.get("SuccessfulCall(C)", 0) or 0),
            int(row.get("FailedCall(C)", 0) or 0),
            float(row.get("CallRate(C)", 0) or 0),
        )
    return 0, 0, 0.0


def patched(name: str, pattern: str, replacement: str, count: int, work: Path) -> Path:
    """A copy of tests/data/sipp/`name` in `work` with `pattern` (a regex) replaced.

    Raises:
        SystemExit: the scenario no longer has `count` places to patch.
    """
    source = SIPP / name
    text, found = re.subn(pattern, replacement, source.read_text(encoding="iso-8859-1"))
    if found != count:
        raise SystemExit(f"{source}: expected {count} places to patch, found {found}")
    path = work / name.replace(".xml", "_routed.xml")
    path.write_text(text, encoding="iso-8859-1")
    return path


def routed_scenarios(work: Path) -> tuple[Path, Path]:
    """(UAC, UAS) scenarios that honour a record-routing proxy (RFC 3261 §12).

    The shared uac_call.xml / uas_answer.xml ignore Record-Route, which only works when
    the server is each UA's dialog peer itself (aiopbx, a B2BUA, does not record-route).
    Through Kamailio the UAS "MUST copy all Record-Route header field values from the
    request into the response" (§12.1.1) and the UAC MUST send its ACK and BYE with the
    route set (§12.2.1.1), else loose_route() cannot find the dialog's path. Both servers
    get these copies; with no Record-Route sipp drops the empty lines, so aiopbx sees the
    same messages as before.
    """
    uac = patched(
        "uac_call.xml",
        r"(\[next_url\] SIP/2\.0\n(?:.*\n)*?([ \t]*)Call-ID: \[call_id\]\n)",
        r"\1\2[routes]\n",
        2,  # the ACK and the BYE of the dialog
        work,
    )
    uas = patched(
        "uas_answer.xml",
        r"(\n([ \t]*)SIP/2\.0 (?:180|200) .*\n[ \t]*\[last_Via:\]\n)",
        r"\1\2[last_Record-Route:]\n",
        3,  # 180, 200 to the INVITE, and 200 to the BYE (no Record-Route there: dropped)
        work,
    )
    return uac, uas


def register_callee(server_port: int, callee_port: int, work: Path) -> None:
    """Register 1002 at aiopbx from the port the UAS will listen on."""
    inf = work / "reg.csv"
    inf.write_text(f"SEQUENTIAL\n1002;[authentication username=1002 password={PASSWORD['1002']}]\n")
    args = ["sipp", f"127.0.0.1:{server_port}", "-sf", str(SIPP / "register_auth.xml")]
    args += ["-inf", str(inf), "-i", "127.0.0.1", "-p", str(callee_port), "-m", "1"]
    args += ["-nostdin", "-timeout", "10s"]
    subprocess.run(args, cwd=work, capture_output=True, check=True, timeout=30)


def run_rate(server: Server, rate: int, seconds: float, work: Path) -> Row:
    """One step of the ladder: `rate` calls/s for `seconds` through `server`."""
    calls = max(1, int(rate * seconds))
    run = work / f"{server.name}-{rate}"
    run.mkdir()
    callee_port = server.callee_port or free_port()
    uac_xml, uas_xml = routed_scenarios(run)
    if server.callee_port is None:
        register_callee(server.port, callee_port, run)
    timeout = f"{int(seconds) + 60}s"
    uas_args = ["sipp", "-sf", str(uas_xml), "-i", "127.0.0.1"]
    uas_args += ["-p", str(callee_port), "-m", str(calls), "-timeout", timeout]
    uas_args += ["-nostdin", "-trace_err"]
    uas_args += ["-mi", "127.0.0.1", "-mp", str(free_port() & ~1)]
    uas = spawn(uas_args, run / "uas.log", cwd=run)
    try:
        wait_for(lambda: udp_bound(callee_port), "sipp UAS", uas, run / "uas.log")
        inf = run / "uac.csv"
        auth = f"[authentication username=1001 password={PASSWORD['1001']}]"
        inf.write_text(f"SEQUENTIAL\n1001;{auth};1002\n")
        uac_args = ["sipp", f"127.0.0.1:{server.port}", "-sf", str(uac_xml)]
        uac_args += ["-inf", str(inf), "-i", "127.0.0.1", "-p", str(free_port())]
        uac_args += ["-m", str(calls), "-r", str(rate), "-l", str(rate * 4), "-d", "0"]
        uac_args += ["-nostdin", "-trace_stat", "-fd", "1", "-trace_err", "-timeout", timeout]
        uac_args += ["-auth_uri", f"1002@127.0.0.1:{server.port}"]
        uac_args += ["-mi", "127.0.0.1", "-mp", str(free_port() & ~1)]
        pids = server.pids()
        before = sum(sum(cpu_times(p)) for p in pids)
        subprocess.run(uac_args, cwd=run, capture_output=True, timeout=seconds + 120)
        cpu = sum(sum(cpu_times(p)) for p in pids) - before
    finally:
        stop(uas, signal.SIGINT)
    ok, failed, achieved = stat_counts(run)  # sipp's own rate excludes its start-up
    row = Row(server.name, rate, achieved, ok, failed, cpu / ok * 1e3 if ok else 0.0, calls)
    print(
        f"  {server.name:9} rate {rate:5}/s  achieved {row.achieved:7.1f}/s  ok {ok:6}  "
        f"failed {failed:5}  cpu {row.cpu_ms:6.2f} ms/call",
        flush=True,
    )
    return row


def start_aiopbx(work: Path) -> tuple[list[Popen], Server]:
    """`pbx serve` on a free port, ready when it answers an OPTIONS."""
    proc, port = start_aiopbx_server(work, PASSWORD)
    return [proc], Server("aiopbx", port, (proc.pid,), None)


def start_kamailio(work: Path, children_count: int) -> tuple[list[Popen], Server]:
    """rtpengine (when installed) then Kamailio, each waited for until it answers."""
    procs: list[Popen] = []
    try:
        load = offer = answer = delete = failed = ""
        if shutil.which("rtpengine"):
            ng = free_port()
            log = work / "rtpengine.log"
            args = ["rtpengine", "--config-file=none", "--table=-1", "--interface=127.0.0.1"]
            args += [f"--listen-ng=127.0.0.1:{ng}", f"--listen-cli=127.0.0.1:{free_port()}"]
            args += ["--port-min=40000", "--port-max=50000", "--num-threads=1"]
            args += ["--foreground", "--log-stderr", "--log-level=4"]
            procs.append(spawn(args, log))
            wait_for(lambda: udp_answers(ng, NG_PING, b"pong"), "rtpengine", procs[-1], log)
            load = RTPENGINE_LOAD.format(sock=f"127.0.0.1:{ng}")
            offer = "rtpengine_manage();"
            answer = 'if (has_body("application/sdp")) rtpengine_manage();'
            delete = 'if (is_method("BYE")) rtpengine_delete();'
            failed = "rtpengine_delete();"
        port, callee_port = free_port(), free_port()
        cfg = work / "kamailio.cfg"
        cfg.write_text(
            KAMAILIO_CFG.format(
                children=children_count,
                port=port,
                modules=MODULES,
                password=PASSWORD["1001"],
                callee_port=callee_port,
                rtpengine_load=load,
                rtpengine_offer=offer,
                rtpengine_answer=answer,
                rtpengine_delete=delete,
                rtpengine_failed=failed,
            )
        )
        args = ["kamailio", "-f", str(cfg), "-DD", "-E", "-P", str(work / "kam.pid")]
        args += ["-m", "128", "-M", "16"]
        log = work / "kamailio.log"
        procs.append(spawn(args, log))
        kamailio = procs[-1]
        # Ready when it answers an OPTIONS (405 from the route above).
        wait_for(lambda: udp_answers(port, SIP_OPTIONS, b"SIP/2.0 "), "kamailio", kamailio, log)
    except BaseException:
        for p in reversed(procs):
            stop(p)
        raise
    return procs, Server("kamailio", port, tuple(p.pid for p in procs), callee_port)


def ladder(server: Server, rates: list[int], seconds: float, work: Path) -> list[Row]:
    """Climb the rates until one is not sustained."""
    rows = []
    for rate in rates:
        row = run_rate(server, rate, seconds, work)
        rows.append(row)
        if not row.sustained:
            break
    return rows


def best(rows: list[Row]) -> Row | None:
    good = [r for r in rows if r.sustained]
    return max(good, key=lambda r: r.rate) if good else None


def run_ladder(
    procs: list[Popen],
    server: Server,
    rates: list[int],
    seconds: float,
    work: Path,
) -> Row | None:
    """Run the ladder against a started server, then stop its processes; the best row."""
    try:
        return best(ladder(server, rates, seconds, work))
    finally:
        for p in reversed(procs):
            stop(p)


def print_table(results: dict[str, Row | None]) -> None:
    print()
    print(f"{'server':10}{'best rate':>10}{'sipp cps':>10}{'cpu ms/call':>13}")
    for name, row in results.items():
        if row is None:
            print(f"{name:10}{'none':>10}")
        else:
            print(f"{name:10}{row.rate:10d}{row.achieved:10.1f}{row.cpu_ms:13.2f}")
    a, k = results.get("aiopbx"), results.get("kamailio")
    if a and k:
        rtpe = "+rtpengine" if shutil.which("rtpengine") else ""
        print(
            f"\naiopbx / kamailio{rtpe}: sustained rate {a.rate / k.rate:.2f}x, "
            f"CPU per call {a.cpu_ms / k.cpu_ms:.2f}x "
            "(ladder-capped; kamailio is a proxy, aiopbx a B2BUA)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default="10,25,50,100,150,200,300,400,600")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-kamailio", action="store_true")
    parser.add_argument("--kamailio-children", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Keep logs and sipp files in this directory.")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Row | None] = {}
    with tempfile.TemporaryDirectory(prefix="pbx-cps-") as tmp:
        work: Path = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"calls/second ladder, {args.seconds:g} s per rate (sipp UAC -> server -> sipp UAS)")
        procs, server = start_aiopbx(work)
        results["aiopbx"] = run_ladder(procs, server, rates, args.seconds, work)
        if not args.no_kamailio and shutil.which("kamailio"):
            procs, server = start_kamailio(work, args.kamailio_children)
            results["kamailio"] = run_ladder(procs, server, rates, args.seconds, work)
    print_table(results)


if __name__ == "__main__":
    main()
