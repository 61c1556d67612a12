"""`pbx moh`: the music callers hear while on hold.

The music is every WAV file in the data directory's `moh/`, played in name order
in a loop; `add NAME FILE.wav` imports any WAV (converted to 8 kHz mono, through
`ivr.prompts.PromptStore`, which stores prompts the same way), `del` removes one,
`list` shows them. With none, callers hear the built-in music (soft generated
tones). The running server picks up a change at the next hold, without a restart.
Errors end in one `pbx: error: …` line with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, require_database
from ivr.prompts import RATE, PromptError, PromptStore, check_name
from media.moh import MOH_DIR
from pbx.errors import ConfigError, NotFoundError

moh_app = typer.Typer(
    name="moh",
    help="Manage the music on hold (WAV files in the data directory, played in a loop).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="Music name: 1-64 of a-z, 0-9, - and _.")
]


def moh_store(data_dir: Path | None, *, write: bool = False) -> PromptStore:
    """The music files of a data directory (the default one when None).

    Raises: ConfigError when `write` is set and the directory has no database (a typo
    would otherwise create a new directory that no server reads).
    """
    directory = data_dir_of(data_dir)
    return PromptStore((require_database(directory) if write else directory) / MOH_DIR)


def _checked(name: str) -> str:
    try:
        return check_name(name)
    except PromptError:
        raise ConfigError(
            f"bad music name {name!r}: use 1-64 characters of a-z, 0-9, - and _"
        ) from None


def _seconds(store: PromptStore, name: str) -> str:
    try:
        return f"{store.duration(name):.2f}"
    except PromptError:
        return "unreadable"


@moh_app.command("list")
def list_command(data_dir: DataDirOption = None) -> None:
    """List the music on hold, in the order it plays, with lengths in seconds."""
    store = moh_store(data_dir)
    names = store.names()
    if not names:
        typer.echo("no music on hold files; callers hear the built-in music")
        return
    width = max(len("NAME"), *(len(n) for n in names))
    typer.echo(f"{'NAME'.ljust(width)}  SECONDS")
    for name in names:
        typer.echo(f"{name.ljust(width)}  {_seconds(store, name)}")


@moh_app.command("add")
def add_command(
    name: NameArgument,
    file: Annotated[Path, typer.Argument(metavar="FILE.wav", help="Any WAV file.")],
    data_dir: DataDirOption = None,
) -> None:
    """Import a WAV file as music on hold, converted to 8 kHz mono (replaces one)."""
    store = moh_store(data_dir, write=True)
    store.add(_checked(name), file)
    typer.echo(f"saved music on hold {name} ({len(store.load(name)) / RATE:.2f} s)")


@moh_app.command("del")
def del_command(name: NameArgument, data_dir: DataDirOption = None) -> None:
    """Delete a music on hold file."""
    store = moh_store(data_dir, write=True)
    if not store.exists(_checked(name)):
        raise NotFoundError(f"no music on hold {name!r} in {store.root}")
    store.delete(name)
    typer.echo(f"deleted music on hold {name}")
