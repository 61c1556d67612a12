"""`pbx ticket list|target`: help-desk tickets opened from the web console.

`pbx ticket target QUEUE 4h` sets the resolution time the desktop's ticket timer counts
against for tickets opened from that queue's calls from now on (default 1 h).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from cli.erlang import parse_duration
from pbx.store import Ticket
from pbx.store.tickets import DEFAULT_TARGET

ticket_app = typer.Typer(
    name="ticket",
    help="Help-desk tickets (opened from the agent desktop).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


async def _recent(data_dir: Path, limit: int) -> tuple[list[Ticket], dict[str, float]]:
    async with await open_existing(data_dir) as store:
        return await store.tickets.recent(limit), await store.tickets.targets()


@ticket_app.command("list")
def ticket_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    data_dir: DataDirOption = None,
) -> None:
    """The newest tickets with their state and time open against their target."""
    tickets, _ = run(_recent(data_dir_of(data_dir), max(1, min(limit, 10_000))))
    if not tickets:
        typer.echo("no tickets")
        return
    now = time.time()
    rows = [
        (str(t.id), t.state, t.agent, t.queue or "-", _clock(t.elapsed(now)), _clock(t.target),
         t.subject)
        for t in tickets
    ]  # fmt: skip
    typer.echo(format_table(("ID", "STATE", "AGENT", "QUEUE", "OPEN", "TARGET", "SUBJECT"), rows))


async def _set_target(data_dir: Path, queue: str, seconds: float) -> None:
    async with await open_existing(data_dir) as store:
        await store.queues.get(queue)  # NotFoundError: one line
        await store.tickets.set_target(queue, seconds)


@ticket_app.command("target")
def ticket_target(
    queue: Annotated[str, typer.Argument(help="The queue whose calls' tickets it is for.")],
    duration: Annotated[str, typer.Argument(help="90m, 4h, 2d or seconds.")],
    data_dir: DataDirOption = None,
) -> None:
    """Set a queue's target resolution time for tickets (default 1 h)."""
    seconds = parse_duration("target", duration)
    run(_set_target(data_dir_of(data_dir), queue, seconds))
    typer.echo(f"tickets from queue {queue} are due within {_clock(seconds)}"
               f" (default {_clock(DEFAULT_TARGET)})")  # fmt: skip
