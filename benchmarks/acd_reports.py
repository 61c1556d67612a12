"""How long the ACD's reports take on a big queue log (not a test: it prints).

Fills a fresh data directory with `--days` days of a busy contact centre's queue events
(`--calls` calls a day over 2 queues, 20 agents, about 5 events a call; seeded), then
times, as a user runs them (a `pbx` process each, best of `--repeat`):

- `pbx queue report --since 7d` and `pbx agent report --since 7d` (a week of history),
- `pbx queue show --once` with no server, and in-process one wallboard read of a full
  day's figures (as at the end of a busy day: the live wallboard re-reads them every
  5 s, so this bounds its refresh cost),
- `pbx erlang --queue sales --since 7d`.

    python benchmarks/acd_reports.py
    python benchmarks/acd_reports.py --days 30 --calls 5000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx.store import Queue, QueueEventRecord, Store  # noqa: E402

AGENTS = [f"{1000 + i}" for i in range(1, 21)]


def _day_events(day_start: float, calls: int, rng: random.Random) -> list[QueueEventRecord]:
    events: list[QueueEventRecord] = []
    for agent in AGENTS:
        events.append(QueueEventRecord(day_start + 8 * 3600, "", "", agent, "AGENTLOGIN", {}))
        lunch = day_start + 12 * 3600 + rng.uniform(0, 3600)
        events.append(QueueEventRecord(lunch, "", "", agent, "PAUSE", {"reason": "lunch"}))
        events.append(QueueEventRecord(lunch + 1800, "", "", agent, "UNPAUSE", {"paused": 1800}))
        events.append(
            QueueEventRecord(day_start + 17 * 3600, "", "", agent, "AGENTLOGOFF", {"logged": 32400})
        )
    for n in range(calls):
        queue = "sales" if rng.random() < 0.6 else "support"
        call = f"{int(day_start)}-{n}"
        t = day_start + 8 * 3600 + rng.uniform(0, 9 * 3600 - 900)
        events.append(QueueEventRecord(t, call, queue, None, "ENTERQUEUE", {"position": 1}))
        hold = rng.expovariate(1 / 25)
        if rng.random() < 0.08:
            events.append(QueueEventRecord(t + hold, call, queue, None, "ABANDON", {"wait": hold}))
            continue
        agent = rng.choice(AGENTS)
        talk = rng.expovariate(1 / 180)
        events.append(QueueEventRecord(t + hold, call, queue, agent, "CONNECT", {"hold": hold}))
        done = t + hold + talk
        events.append(
            QueueEventRecord(
                done, call, queue, agent, "COMPLETECALLER", {"hold": hold, "talk": talk}
            )
        )
        events.append(QueueEventRecord(done + 20, call, queue, agent, "WRAPUPEND", {"wrapup": 20}))
    return events


async def _fill(data_dir: Path, days: int, calls: int) -> int:
    rng = random.Random(13)
    today = time.time() - time.time() % 86400
    count = 0
    async with await Store.open(data_dir / "pbx.sqlite3") as store:
        await store.settings.set_default("realm", "aiopbx")
        for agent in AGENTS:
            await store.users.add(agent, "Aa-secret-xyz1", "aiopbx")
        for name, number in (("sales", "700"), ("support", "701")):
            await store.queues.add(Queue(name, number))
            for agent in AGENTS:
                await store.queues.add_member(name, agent)
        for day in range(days, -1, -1):
            events = _day_events(today - day * 86400, calls, rng)
            events = [e for e in events if e.time < time.time()]
            await store.queue_events.append(sorted(events, key=lambda e: e.time))
            count += len(events)
    return count


def _time(data_dir: Path, args: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"pbx {' '.join(args)} failed: {done.stderr}")
    return best


def _wallboard_read(data_dir: Path, repeat: int) -> float:
    """One re-read of today's figures when "today" is the last 24 hours."""
    from cli import reports

    reports.local_midnight = lambda now: now - 86400.0  # type: ignore[assignment]
    best = float("inf")
    for _ in range(repeat):
        board = reports.Wallboard(data_dir, None)
        start = time.perf_counter()
        board.frame()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="calls a day")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        count = asyncio.run(_fill(data_dir, options.days, options.calls))
        baseline = _time(data_dir, ["queue", "list"], options.repeat)
        rows = [
            ("pbx queue list (process start-up, for scale)", baseline),
            ("pbx queue report --since 7d", _time(data_dir, ["queue", "report", "--since", "7d"],
                                                  options.repeat)),
            ("pbx agent report --since 7d", _time(data_dir, ["agent", "report", "--since", "7d"],
                                                  options.repeat)),
            ("pbx queue show --once (no server)", _time(data_dir, ["queue", "show", "--once"],
                                                        options.repeat)),
            ("wallboard: re-read a full day's figures (in process)",
             _wallboard_read(data_dir, options.repeat)),
            ("pbx erlang --queue sales --since 7d",
             _time(data_dir, ["erlang", "--queue", "sales", "--since", "7d"], options.repeat)),
        ]  # fmt: skip
    print(f"queue log: {count} events ({options.days + 1} days, {options.calls} calls a day)")
    width = max(len(name) for name, _ in rows)
    print(f"{'command':<{width}}  best of {options.repeat}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
