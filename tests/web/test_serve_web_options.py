"""`pbx serve --web-host/--web-port/--no-web`: the web console is a service after the
ACD, on the address given; out with --no-web; a bad port is one error line."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    runs: list[list[Any]] = []

    def run(settings: Any, applications: Sequence[object] = (), **_: object) -> None:
        runs.append(list(applications))

    module = types.ModuleType("pbx.server")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pbx.server", module)
    return runs


def serve(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), *args])


def test_web_options(tmp_path: Path, served: list[list[Any]]) -> None:
    assert serve(tmp_path).exit_code == 0
    console = served[-1][-1]
    assert type(console).__name__ == "WebConsole"
    assert (console.host, console.port) == ("127.0.0.1", 8080)
    acd = next(a for a in served[-1] if type(a).__name__ == "AcdApplication")
    assert console.acd is acd and served[-1].index(acd) < served[-1].index(console)
    assert serve(tmp_path, "--web-host", "0.0.0.0", "--web-port", "0").exit_code == 0
    assert (served[-1][-1].host, served[-1][-1].port) == ("0.0.0.0", 0)
    assert serve(tmp_path, "--no-web").exit_code == 0
    assert "WebConsole" not in [type(a).__name__ for a in served[-1]]
    result = serve(tmp_path, "--web-port", "70000")
    assert result.exit_code == 1
    assert result.stderr == "pbx: error: web port 70000 is not between 0 and 65535\n"
