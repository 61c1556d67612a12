"""`pbx serve` starts the dialer beside the ACD: `pbx campaign start|pause|stats` reach
it through the control API, and `GET /dialer` (the wallboard's campaign figures)
answers. A contact outside its calling window keeps the running campaign from dialling."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pbx import control
from pbx.config import Settings
from tests.interop.peers import pbx_cli, running_pbx


def zone_at(local_hour: int) -> str:
    offset = (local_hour - datetime.now(UTC).hour + 12) % 24 - 12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def ok(data_dir: Path, *args: str) -> str:
    result = pbx_cli(data_dir, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_campaign_commands_reach_the_running_dialer(tmp_path: Path) -> None:
    data = tmp_path / "pbx"
    ok(data, "init")
    ok(data, "campaign", "create", "night", "--caller-id", "+442071230000", "--queue", "sales")
    contacts = tmp_path / "list.csv"
    contacts.write_text(f"number,zone,name\n+442079460001,{zone_at(3)},Ann\n")
    ok(data, "campaign", "import", "night", str(contacts))
    with running_pbx(data) as server:
        assert ok(data, "campaign", "start", "night") == (
            "campaign night: running (the running dialer follows)\n"
        )
        figures = json.loads(ok(data, "campaign", "stats", "night", "--json"))
        assert figures["state"] == "running" and figures["mode"] == "progressive"
        assert figures["contacts"]["pending"] == 1 and figures["dialled"] == 0
        board = control.request(Settings(data_dir=data), "/dialer")
        assert [c["name"] for c in board["campaigns"]] == ["night"]
        assert ok(data, "campaign", "pause", "night").startswith("campaign night: paused")
        missing = pbx_cli(data, "campaign", "stats", "nope")
        assert missing.returncode == 1
        assert (
            missing.stderr
            == "pbx: error: server refused /dialer/stats?campaign=nope: no campaign 'nope'\n"
        )
        assert "Traceback" not in server.log()
    assert "state: paused" in ok(data, "campaign", "show", "night")
