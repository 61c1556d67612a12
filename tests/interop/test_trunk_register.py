"""Issue 12, acceptance 1 (the sipp half): `pbx serve` registers to a registrar that
challenges with 401, refreshes before the granted expiry runs out, un-registers at stop;
with a wrong password `pbx trunk status` says `failed: 403` and the retries keep to the
back-off. The registrar is sipp running tests/data/sipp/registrar_401.xml; what it saw
is read from its message log."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pbx import control
from pbx.config import Settings
from tests.interop.peers import DATA, SippUas, free_port, pbx_cli, running_pbx, wait_for
from tests.tools import need

SCENARIO = DATA / "sipp" / "registrar_401.xml"
GRANTED = 4  # seconds, as the scenario's 200 says


@dataclass(frozen=True)
class Seen:
    """One message in sipp's log: when, which way, and its text."""

    at: float
    received: bool
    text: str


_BLOCK = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(UDP|TCP) message (received|sent)"
)


def sipp_messages(workdir: Path) -> list[Seen]:
    logs = list(workdir.glob("registrar_401_*_messages.log"))
    if not logs:
        return []
    out = []
    text = logs[0].read_text(errors="replace")
    for block in re.split(r"\n(?=-{20,} \d{4}-)", text):
        m = _BLOCK.match(block.lstrip("\n"))
        if m is None:
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        body = block.split("\n\n", 1)[1] if "\n\n" in block else ""
        out.append(Seen(at, m.group(3) == "received", body.strip()))
    return out


def registers(workdir: Path) -> list[Seen]:
    return [s for s in sipp_messages(workdir) if s.received and s.text.startswith("REGISTER ")]


def answers(workdir: Path, status: int) -> list[Seen]:
    return [
        s
        for s in sipp_messages(workdir)
        if not s.received and s.text.startswith(f"SIP/2.0 {status} ")
    ]


def read_json_status(data_dir: Path) -> list[dict[str, Any]]:
    """The server's GET /trunks rows, as `pbx trunk status` reads them."""
    rows = control.request(Settings(data_dir=data_dir), "/trunks")["trunks"]
    assert isinstance(rows, list)
    return rows


def trunk_status(data_dir: Path) -> str:
    result = pbx_cli(data_dir, "trunk", "status")
    assert result.returncode == 0, result.stderr
    return result.stdout


def add_trunk(data_dir: Path, port: int, password: str) -> None:
    assert pbx_cli(data_dir, "init").returncode == 0
    result = pbx_cli(
        data_dir, "trunk", "add", "prov", "--host", f"127.0.0.1:{port}", "--username", "trunk1",
        "--password", password, "--register", "--expires", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_registers_with_digest_refreshes_and_unregisters(tmp_path: Path) -> None:
    data_dir, workdir = tmp_path / "data", tmp_path / "sipp"
    with SippUas(SCENARIO, workdir) as sipp:
        add_trunk(data_dir, sipp.port, "s3cret-pw")
        with running_pbx(data_dir) as server:
            wait_for(lambda: "registered until" in trunk_status(data_dir), 30, "the registration")
            # Four 200s: the first registration and three refreshes, each before the
            # 4 s the previous one granted ran out.
            wait_for(lambda: len(answers(workdir, 200)) >= 4, 60, "three refreshes")
            status = trunk_status(data_dir)
            assert "prov" in status and "registered until" in status, status
            [row] = read_json_status(server.data_dir)
            assert row["service_route"] == ["<sip:edge.sipp.test;lr>"]
            assert row["state"] == "registered" and row["failure"] is None
            assert "s3cret-pw" not in server.log()
        assert "s3cret-pw" not in server.log()
        wait_for(lambda: "Expires: 0" in registers(workdir)[-1].text, 20, "the un-REGISTER")
    seen = registers(workdir)
    oks = answers(workdir, 200)
    # The first REGISTER carries no credentials and is challenged; the answer passes.
    assert "Authorization:" not in seen[0].text and "Authorization: Digest" in seen[1].text
    assert len(answers(workdir, 401)) >= 1 and not answers(workdir, 403)
    # Every refresh went out before the previous grant expired (sipp's own clock).
    refreshes = [s for s in seen[2:] if "Expires: 0" not in s.text]
    for ok, refresh in zip(oks, refreshes, strict=False):
        assert refresh.at < ok.at + GRANTED, (ok.at, refresh.at)
    # The same Call-ID throughout, CSeq rising (RFC 3261 §10.2.4).
    call_ids = {re.search(r"Call-ID: (.*)", s.text).group(1) for s in seen}  # type: ignore[union-attr]
    assert len(call_ids) == 1
    cseqs = [int(re.search(r"CSeq: (\d+)", s.text).group(1)) for s in seen]  # type: ignore[union-attr]
    assert cseqs == sorted(set(cseqs))
    # Stopping the server un-registered with credentials.
    last = seen[-1]
    assert "Expires: 0" in last.text and "Authorization: Digest" in last.text
    assert answers(workdir, 200)[-1].at >= last.at


def test_wrong_password_shows_403_and_retries_at_the_backoff(tmp_path: Path) -> None:
    data_dir, workdir = tmp_path / "data", tmp_path / "sipp"
    backoff = 2.0
    with SippUas(SCENARIO, workdir) as sipp:
        add_trunk(data_dir, sipp.port, "wrong-password")
        with running_pbx(data_dir, None, "--trunk-retry", str(backoff)) as server:
            wait_for(lambda: "failed: 403" in trunk_status(data_dir), 30, "failed: 403")
            assert "next retry" in trunk_status(data_dir)
            # Three refused attempts: the retries must keep to 2 s, then 4 s (doubling).
            wait_for(lambda: len(answers(workdir, 403)) >= 3, 60, "three refused attempts")
            assert "wrong-password" not in server.log()
            assert "trunk prov: registration at" in server.log()
        refused = answers(workdir, 403)
        seen = registers(workdir)
    # Each attempt is one REGISTER answered 403 (after the first, which was challenged
    # first): never more than two REGISTERs per refusal, i.e. no retry storm.
    assert len(seen) <= 2 * len(refused) + 1
    firsts = [r.at for r in refused]
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    # Never faster than the back-off (2 s, then 4 s); slowness only adds.
    assert len(gaps) >= 2
    for n, gap in enumerate(gaps[:2]):
        assert gap >= backoff * 2**n - 0.05, gaps


def test_trunk_added_and_deleted_while_running(tmp_path: Path) -> None:
    """No restart: `pbx trunk add` starts the registration, `del` un-registers."""
    data_dir, workdir = tmp_path / "data", tmp_path / "sipp"
    assert pbx_cli(data_dir, "init").returncode == 0
    with SippUas(SCENARIO, workdir) as sipp, running_pbx(data_dir):
        assert trunk_status(data_dir) == "no trunks\n"
        result = pbx_cli(
            data_dir, "trunk", "add", "prov", "--host", f"127.0.0.1:{sipp.port}",
            "--username", "trunk1", "--password", "s3cret-pw", "--register",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_for(lambda: "registered until" in trunk_status(data_dir), 30, "the registration")
        assert pbx_cli(data_dir, "trunk", "del", "prov").returncode == 0
        wait_for(
            lambda: "Expires: 0" in registers(workdir)[-1].text, 30, "the un-REGISTER after del"
        )
        wait_for(lambda: trunk_status(data_dir) == "no trunks\n", 30, "the trunk to go")


def tcp_listening(port: int) -> bool:
    """Whether something listens on TCP 127.0.0.1:`port` (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(line.split()[1] == want and line.split()[3] == "0A" for line in lines)


def test_registers_over_tcp(tmp_path: Path) -> None:
    data_dir, workdir = tmp_path / "data", tmp_path / "sipp"
    workdir.mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            need("sipp"), "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-t", "t1",
            "-m", "1", "-nostdin", "-trace_msg", "-timeout", "60s",
        ],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: tcp_listening(port), 10, "sipp to listen on TCP")
        add_trunk(data_dir, port, "s3cret-pw")
        assert pbx_cli(data_dir, "trunk", "set", "prov", "--transport", "tcp").returncode == 0
        with running_pbx(data_dir):
            wait_for(lambda: "registered until" in trunk_status(data_dir), 30, "the registration")
        wait_for(lambda: "Expires: 0" in registers(workdir)[-1].text, 20, "the un-REGISTER")
    finally:
        proc.kill()
        proc.wait(5)
    seen = registers(workdir)
    assert all("transport=tcp SIP/2.0" in s.text.split("\n", 1)[0] for s in seen)
    assert "Via: SIP/2.0/TCP " in seen[0].text and "Authorization: Digest" in seen[-1].text
