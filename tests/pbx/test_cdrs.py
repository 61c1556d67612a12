"""CDR rows: opened at start, closed at end, interrupted calls closed after a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from pbx.store import Disposition, Store
from pbx.store.cdrs import INTERRUPTED

ROOT = Path(__file__).resolve().parents[2]


async def test_open_answer_close_and_list(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "pbx.sqlite3")
    try:
        a = await store.cdrs.open("call-a", "1001", "1002", 100.0)
        await store.cdrs.answered(a, 104.0)
        await store.cdrs.close(a, 164.5, Disposition.ANSWERED, "normal clearing")
        b = await store.cdrs.open("call-b", "1001", "1003", 200.0)
        await store.cdrs.close(b, 230.0, Disposition.NO_ANSWER, "no answer")
        # A closed row is final.
        await store.cdrs.close(b, 999.0, Disposition.BUSY, "late")
        rows = await store.cdrs.list()
        assert [(r.call_id, r.disposition, r.duration, r.billsec) for r in rows] == [
            ("call-a", "ANSWERED", 64.5, 60.5),
            ("call-b", "NO ANSWER", 30.0, 0.0),
        ]
        assert [r.call_id for r in await store.cdrs.list(since=150.0)] == ["call-b"]
    finally:
        await store.close()


async def test_calls_up_at_a_sigkill_are_closed_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "pbx.sqlite3"
    script = textwrap.dedent(
        """
        import asyncio, os, signal, sys
        from pathlib import Path
        from pbx.store import Disposition, Store

        async def main() -> None:
            store = await Store.open(Path(sys.argv[1]))
            done = await store.cdrs.open("done", "1001", "1002", 10.0)
            await store.cdrs.answered(done, 12.0)
            await store.cdrs.close(done, 20.0, Disposition.ANSWERED, "normal clearing")
            up = await store.cdrs.open("up", "1001", "1002", 30.0)
            await store.cdrs.answered(up, 31.0)
            await store.cdrs.open("ringing", "1003", "1002", 40.0)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(db), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 60) == -signal.SIGKILL
    store = await Store.open(db)
    try:
        assert await store.cdrs.close_interrupted(50.0) == 2
        rows = {r.call_id: r for r in await store.cdrs.list()}
        assert (rows["done"].disposition, rows["done"].billsec) == ("ANSWERED", 8.0)
        assert rows["done"].hangup_cause == "normal clearing"
        assert (rows["up"].disposition, rows["up"].billsec) == ("ANSWERED", 19.0)
        assert rows["up"].hangup_cause == INTERRUPTED
        assert (rows["ringing"].disposition, rows["ringing"].end) == ("FAILED", 50.0)
        assert await store.cdrs.close_interrupted(60.0) == 0
    finally:
        await store.close()
