"""The live agent commands and wallboard against a real `pbx serve` (a child process) with
the real ACD application (`acd.app.AcdApplication`, added by `serve`).

The running ACD takes the state changes
(and writes their queue events itself), `list`/`show`/`queue show --once` read its
snapshot, and once the server stops the commands write the database again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pbx.store import Queue, Store
from tests.interop.peers import PbxProcess, add_users, free_port, pbx_cli, run_sipp, wait_for

# A pbx serve process, sipp and wall-clock waits: with the interop tests, one at a time.
pytestmark = pytest.mark.xdist_group("serial")

SCENARIOS = Path(__file__).parent.parent / "data" / "sipp"


async def _setup(data_dir: Path) -> None:
    async with await Store.open(data_dir / "pbx.sqlite3") as store:
        await store.queues.add(Queue("sales", "700"))
        await store.queues.add_member("sales", "1001")
        await store.queues.add_member("sales", "1002")


async def _events(data_dir: Path) -> list[tuple[str, str | None]]:
    async with await Store.open(data_dir / "pbx.sqlite3") as store:
        return [(e.event, e.agent) for e in await store.queue_events.between(0, 1e12)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxProcess]:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    add_users(data_dir, {"1001": "Aa-secret-xyz1", "1002": "Aa-secret-xyz2"})
    asyncio.run(_setup(data_dir))
    process = PbxProcess(data_dir, free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _ok(data_dir: Path, *args: str) -> str:
    done = pbx_cli(data_dir, *args, timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stderr == ""
    return done.stdout


def test_agent_commands_and_board_through_the_running_acd(server: PbxProcess) -> None:
    data_dir = server.data_dir
    assert _ok(data_dir, "agent", "login", "1001").startswith("1001 logged in: now available")
    assert _ok(data_dir, "agent", "pause", "1001", "--reason", "lunch").startswith(
        "1001 paused: now paused (lunch)"
    )
    rows = [line.split() for line in _ok(data_dir, "agent", "list").splitlines()]
    assert rows[0] == ["AGENT", "STATE", "FOR", "REASON", "CALL", "QUEUES", "SKILLS"]
    assert rows[1][0:2] == ["1001", "paused"] and rows[1][3:5] == ["lunch", "-"]
    assert rows[2][0:2] == ["1002", "logged-out"]
    shown = _ok(data_dir, "agent", "show", "1001").splitlines()
    assert shown[1].startswith("state         paused for 0:00:")
    board = _ok(data_dir, "queue", "show", "sales", "--once").splitlines()
    assert board[0].endswith("(live)")
    assert board[2:4] == ["queue sales (700) ringall", "  waiting 0  longest wait 0:00:00"]
    # The board of a queue lists the agents logged in to it.
    agents = [line.split() for line in board[board.index("agents") + 2 :]]
    assert [(a[0], a[1], a[3], a[4]) for a in agents] == [("1001", "paused", "lunch", "-")]
    assert _ok(data_dir, "agent", "unpause", "1001").startswith("1001 unpaused: now available")
    assert _ok(data_dir, "agent", "logout", "1001").startswith("1001 logged out: now logged-out")
    # The server wrote the events with the state changes (the CLI wrote nothing itself).
    assert [e for e in asyncio.run(_events(data_dir)) if e[1] == "1001"] == [
        ("AGENTLOGIN", "1001"),
        ("PAUSE", "1001"),
        ("UNPAUSE", "1001"),
        ("AGENTLOGOFF", "1001"),
    ]
    refused = pbx_cli(data_dir, "agent", "pause", "nosuch")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("pbx: error: ") and refused.stderr.count("\n") == 1
    server.stop()
    assert _ok(data_dir, "agent", "login", "1002") == "1002 logged in to queue(s) sales\n"


def test_a_waiting_caller_on_the_board_then_in_the_figures(
    server: PbxProcess, tmp_path: Path
) -> None:
    """A sipp caller waits in the queue (nobody logged in) for 6 s and hangs up: the board
    shows it waiting, then today's figures count it offered and abandoned."""
    data_dir = server.data_dir

    def board() -> list[str]:
        return _ok(data_dir, "queue", "show", "sales", "--once").splitlines()

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(
            run_sipp,
            SCENARIOS / "uac_call.xml",
            server.port,
            workdir=tmp_path / "caller",
            inf=[("1002", "[authentication username=1002 password=Aa-secret-xyz2]", "700")],
            timeout=60,
            extra=("-d", "6000", "-auth_uri", f"700@127.0.0.1:{server.port}"),
        )
        seen: list[list[str]] = []  # the board that showed the caller (a later one may
        # come after its 6 s when each `pbx` run takes seconds on a loaded machine)

        def showing() -> bool:
            seen[:] = [board()]
            return "  waiting 1  longest wait" in "\n".join(seen[0])

        wait_for(showing, 30, "the caller")
        waiting = seen[0]
        [row] = [line.split() for line in waiting if line.startswith("  1    ")]
        assert row[:2] == ["1", "1002"], waiting
        result = caller.result(90)
    assert (result.returncode, result.successful) == (0, 1), result.output
    wait_for(lambda: "  waiting 0  longest wait" in "\n".join(board()), 30, "the caller to go")
    assert board()[4] == (
        "  today: offered 1  answered 0  abandoned 1  SL - (within 20 s)  ASA -  AHT -"
    )
    [sales] = json.loads(_ok(data_dir, "queue", "report", "sales", "--format", "json"))
    assert (sales["offered"], sales["abandoned"], sales["waiting"]) == (1, 1, 0)
    assert 5.0 <= sales["longest_wait"] < 60.0
