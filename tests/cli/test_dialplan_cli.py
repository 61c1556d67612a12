"""`pbx user forward` and `pbx ringgroup add|list|del`, with their one-line errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import Forwarding, Store

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")
            await store.users.add("1001", "Aa-secret-xyz1", "aiopbx")
            await store.users.add("1002", "Aa-secret-xyz2", "aiopbx")

    asyncio.run(fill())
    return tmp_path


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _forwarding(data_dir: Path, name: str) -> Forwarding:
    async def read() -> Forwarding:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.dialplan.forwarding(name)

    return asyncio.run(read())


def test_forwarding_is_set_shown_and_cleared(data_dir: Path) -> None:
    code, out, _ = _run(data_dir, "user", "forward", "1001", "--busy", "1002", "--after", "12")
    assert code == 0 and "busy       1002" in out
    assert _forwarding(data_dir, "1001") == Forwarding("1001", busy="1002", no_answer_seconds=12)
    code, out, _ = _run(data_dir, "user", "forward", "1001", "--clear")
    assert code == 0
    assert _forwarding(data_dir, "1001") == Forwarding("1001")


def test_ring_groups(data_dir: Path) -> None:
    code, out, _ = _run(data_dir, "ringgroup", "add", "600", "-m", "1002,1001", "-m", "1002")
    assert (code, out.strip()) == (0, "added ring group 600: 1002, 1001 (all)")
    code, out, _ = _run(data_dir, "ringgroup", "list")
    assert out.splitlines()[1].split() == ["600", "all", "20", "1002,1001", "-"]
    assert _run(data_dir, "ringgroup", "del", "600")[0] == 0
    assert _run(data_dir, "ringgroup", "list")[1].strip() == "no ring groups"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "forward", "7777", "--busy", "1002"), "no user '7777'"),
        (("user", "forward", "1001", "--always", "1001"), "cannot forward to itself"),
        (("ringgroup", "add", "601", "-m", "9999"), "no user '9999'"),
        (("ringgroup", "add", "1001", "-m", "1002"), "number 1001 is already taken by user 1001"),
        (("ringgroup", "add", "602", "-m", "1001", "--strategy", "random"), "choose all or"),
        (("ringgroup", "del", "603"), "no ring group '603'"),
    ],
)
def test_errors_are_one_line(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = _run(data_dir, *args)
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("pbx: error: ") and message in line
