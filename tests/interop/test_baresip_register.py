"""baresip registers with `pbx serve`, and the binding survives a server restart.

baresip 1.0.0 (libre 1.1.0) gives up on a 401 that also offers SHA-256; the server's
default offer is MD5 alone, so it registers directly.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.baresip import Baresip
from tests.interop.peers import PbxProcess, add_users, need, pbx_cli, running_pbx

PASSWORD = "Xk3-secret-pass"
REGINT = 600
REGISTERED = r"200 OK .*\[1 binding\]"


def registrations(data_dir: Path) -> list[dict[str, str]]:
    """The rows of `pbx status`, keyed by its column headers."""
    result = pbx_cli(data_dir, "status")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("up ")]
    if lines == ["no registrations"]:
        return []
    head, *rows = (re.split(r" {2,}", line.strip()) for line in lines)
    return [dict(zip(head, row, strict=True)) for row in rows]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, {"1001": PASSWORD})
    with running_pbx(data_dir) as server:
        yield server


@pytest.fixture
def phone(tmp_path: Path, server: PbxProcess) -> Iterator[Baresip]:
    need("baresip")
    with Baresip(
        tmp_path / "phone",
        user="1001",
        password=PASSWORD,
        registrar_port=server.port,
        regint=REGINT,
        control=False,
    ) as phone:
        yield phone


def test_baresip_binding_is_listed_and_survives_restart(server: PbxProcess, phone: Baresip) -> None:
    phone.wait_for_output(REGISTERED, 10)

    [before] = registrations(server.data_dir)
    assert before["AOR"] == "1001"
    assert re.fullmatch(
        rf"<?sip:1001-0x[0-9a-f]+@127\.0\.0\.1:{phone.sip_port}>?", before["CONTACT"]
    )
    assert before["USER AGENT"].startswith("baresip v1.0.0")
    assert REGINT - 10 <= int(before["EXPIRES IN (S)"]) <= REGINT

    server.stop(signal.SIGTERM)
    server.start()

    assert ", 1 bindings restored" in server.log()
    [after] = registrations(server.data_dir)
    assert {k: after[k] for k in ("AOR", "CONTACT", "USER AGENT")} == {
        k: before[k] for k in ("AOR", "CONTACT", "USER AGENT")
    }
    assert int(after["EXPIRES IN (S)"]) <= int(before["EXPIRES IN (S)"])
    # The listed binding is the restored one: the phone has not registered again.
    assert phone.count_output(REGISTERED) == 1
