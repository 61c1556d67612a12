"""`pbx did add|list|del`: inbound DIDs, the numbers providers' calls come in on.

They live in the database (`pbx.store.dids`); the running server reads them per call.
Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.store import Did

did_app = typer.Typer(
    name="did",
    help="Inbound DIDs: what a provider's call to each number reaches.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


async def _add(data_dir: Path, number: str, target: str) -> Did:
    async with await open_existing(data_dir) as store:
        return await store.dids.add(number, target)


async def _all(data_dir: Path) -> list[Did]:
    async with await open_existing(data_dir) as store:
        return await store.dids.all()


async def _delete(data_dir: Path, number: str) -> None:
    async with await open_existing(data_dir) as store:
        await store.dids.delete(number)


@did_app.command("add")
def did_add(
    number: Annotated[
        str, typer.Argument(help="The DID: digits with an optional leading +, as sent.")
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help=(
                "ext:1001, group:600, ivr:MENU, conf:8000, vm:1001, trunk:NAME/NUMBER"
                " or queue:NAME."
            ),
        ),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Add a DID leading to an existing extension, group, menu, room, mailbox or trunk."""
    did = run(_add(data_dir_of(data_dir), number, to))
    typer.echo(f"added DID {did.number} -> {did.target}")


@did_app.command("list")
def did_list(data_dir: DataDirOption = None) -> None:
    """List the DIDs and their targets."""
    dids = run(_all(data_dir_of(data_dir)))
    if not dids:
        typer.echo("no DIDs")
        return
    rows = [
        (d.number, d.target, time.strftime("%Y-%m-%d %H:%M", time.localtime(d.created)))
        for d in dids
    ]
    typer.echo(format_table(("DID", "TARGET", "ADDED"), rows))


@did_app.command("del")
def did_del(
    number: Annotated[str, typer.Argument(help="The DID.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a DID (its calls are then refused 404)."""
    run(_delete(data_dir_of(data_dir), number))
    typer.echo(f"deleted DID {number}")
