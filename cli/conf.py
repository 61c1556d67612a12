"""`pbx conf`: conference rooms.

`add NUMBER [--pin P] [--max N]` creates a room callers reach by dialling its number
(in the same numbering plan as extensions: a taken number is refused, naming its
owner); `list` shows the rooms, `--live` who is in each room of the running server;
`del NUMBER` removes a room; `kick NUMBER PARTY` hangs up a member of a live room
(PARTY: its call id or caller number, as `list --live` shows them). The PIN is stored
hashed. Errors end in one `pbx: error: …` line with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.config import Settings
from pbx.store.conferences import ConferenceRoom

conf_app = typer.Typer(
    name="conf",
    help="Conference rooms: add, list, delete; kick a member of a live room.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NumberArgument = Annotated[
    str, typer.Argument(metavar="NUMBER", help="The room's number (digits).")
]


async def _add(data_dir: Path, number: str, pin: str | None, max_members: int) -> None:
    async with await open_existing(data_dir) as store:
        await store.conferences.add(number, pin=pin, max_members=max_members)


async def _rooms(data_dir: Path) -> list[ConferenceRoom]:
    async with await open_existing(data_dir) as store:
        return await store.conferences.list()


async def _remove(data_dir: Path, number: str) -> None:
    async with await open_existing(data_dir) as store:
        await store.conferences.remove(number)


@conf_app.command("add")
def add_command(
    number: NumberArgument,
    pin: Annotated[
        str | None, typer.Option("--pin", help="PIN callers must enter (4-12 digits).")
    ] = None,
    max_members: Annotated[int, typer.Option("--max", help="Most members at once (2-50).")] = 10,
    data_dir: DataDirOption = None,
) -> None:
    """Create a conference room."""
    run(_add(data_dir_of(data_dir), number, pin, max_members))
    typer.echo(f"conference room {number} added" + (" (with PIN)" if pin else ""))


@conf_app.command("list")
def list_command(
    live: Annotated[
        bool, typer.Option("--live", help="Who is in each room of the running server.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List the conference rooms (with --live: the members of the running server's)."""
    directory = data_dir_of(data_dir)
    if live:
        from pbx import control

        result: Any = control.fetch_conferences(Settings(data_dir=directory))
        rows = [
            (
                str(room.get("room", "")),
                str(m.get("id", "")),
                str(m.get("caller", "")),
                str(m.get("role", "")),
                str(m.get("whisper_to") or ""),
            )
            for room in result.get("conferences", [])
            if isinstance(room, dict)
            for m in room.get("members", [])
            if isinstance(m, dict)
        ]
        if not rows:
            typer.echo("nobody in a conference")
            return
        typer.echo(format_table(("ROOM", "ID", "CALLER", "ROLE", "WHISPERS TO"), rows))
        return
    rooms = run(_rooms(directory))
    if not rooms:
        typer.echo("no conference rooms")
        return
    table = [(r.number, "yes" if r.has_pin else "no", str(r.max_members)) for r in rooms]
    typer.echo(format_table(("NUMBER", "PIN", "MAX"), table))


@conf_app.command("del")
def del_command(number: NumberArgument, data_dir: DataDirOption = None) -> None:
    """Delete a conference room (members of a live room stay until they hang up)."""
    run(_remove(data_dir_of(data_dir), number))
    typer.echo(f"conference room {number} deleted")


@conf_app.command("kick")
def kick_command(
    number: NumberArgument,
    party: Annotated[
        str, typer.Argument(metavar="PARTY", help="Call id or caller number (list --live).")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Hang up a member of a live room of the running server."""
    from pbx import control

    result = control.kick(Settings(data_dir=data_dir_of(data_dir)), number, party)
    typer.echo(f"kicked {result.get('kicked', party)} from conference {number}")
