"""`pbx vm`: voicemail boxes and their messages.

`list [BOX]` shows messages (new before old); `play ID` plays one through the
local sound player (aplay, paplay or sox's play) or copies it with `--out FILE`;
`delete ID` removes a message (row and file); `pin BOX` sets a mailbox's PIN
(stored hashed; printed once when generated). After a change the running server
is asked to update the message lights (MWI); when no server runs, that is skipped.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.config import Settings
from pbx.errors import ConfigError, ControlError, NotFoundError
from pbx.store.voicemail import Voicemail, check_pin_format

vm_app = typer.Typer(
    name="vm",
    help="Voicemail: list, play and delete messages; set mailbox PINs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PLAYERS = (("aplay", "-q"), ("paplay",), ("play", "-q"))


async def _messages(data_dir: Path, box: str | None) -> list[Voicemail]:
    async with await open_existing(data_dir) as store:
        if box is not None:
            await store.users.get(box)  # NotFoundError for an unknown box
        return await store.voicemail.messages(box)


async def _message(data_dir: Path, message_id: int) -> Voicemail:
    async with await open_existing(data_dir) as store:
        message = await store.voicemail.get(message_id)
    if message is None:
        raise NotFoundError(f"no voicemail message {message_id}")
    return message


def _announce(data_dir: Path, box: str) -> None:
    """Ask a running server to refresh `box`'s message lights; quiet when none runs."""
    from pbx import control

    settings = Settings(data_dir=data_dir)
    if not settings.control_file.exists():
        return
    try:
        control.mailbox_changed(settings, box)
    except ControlError as exc:
        typer.echo(f"note: message lights not updated: {exc}", err=True)


@vm_app.command("list")
def list_command(
    box: Annotated[str | None, typer.Argument(metavar="[BOX]", help="Only this mailbox.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """List voicemail messages: new ones first, oldest first within a folder."""
    messages = run(_messages(data_dir_of(data_dir), box))
    if not messages:
        typer.echo("no messages")
        return
    rows = [
        (
            str(m.id),
            m.box,
            m.folder,
            m.caller,
            datetime.fromtimestamp(m.created).strftime("%Y-%m-%d %H:%M:%S"),
            f"{m.duration:.1f}",
        )
        for m in messages
    ]
    typer.echo(format_table(("ID", "BOX", "FOLDER", "FROM", "LEFT AT", "SECONDS"), rows))


@vm_app.command("play")
def play_command(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="Message id (pbx vm list).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Copy the WAV here instead of playing it.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Play a message on this machine's sound device, or copy it with --out."""
    message = run(_message(data_dir_of(data_dir), message_id))
    source = Path(message.path)
    if not source.is_file():
        raise ConfigError(f"message {message_id}: its file {source} is missing")
    if out is not None:
        try:
            shutil.copyfile(source, out)
        except OSError as exc:
            raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
        typer.echo(f"message {message_id} copied to {out}")
        return
    for player, *flags in PLAYERS:
        binary = shutil.which(player)
        if binary is not None:
            result = subprocess.run([binary, *flags, str(source)], check=False)
            if result.returncode != 0:
                raise ConfigError(f"{player} could not play {source}")
            return
    raise ConfigError(f"no sound player (aplay, paplay, play) found; the file is {source}")


async def _delete(data_dir: Path, message_id: int) -> Voicemail:
    async with await open_existing(data_dir) as store:
        gone = await store.voicemail.delete(message_id)
    if gone is None:
        raise NotFoundError(f"no voicemail message {message_id}")
    Path(gone.path).unlink(missing_ok=True)
    return gone


@vm_app.command("delete")
def delete_command(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="Message id (pbx vm list).")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a message (its database row and its WAV file)."""
    directory = data_dir_of(data_dir)
    gone = run(_delete(directory, message_id))
    typer.echo(f"deleted message {message_id} of box {gone.box}")
    _announce(directory, gone.box)


async def _set_pin(data_dir: Path, box: str, pin: str) -> None:
    async with await open_existing(data_dir) as store:
        await store.voicemail.set_pin(box, pin)


@vm_app.command("pin")
def pin_command(
    box: Annotated[str, typer.Argument(metavar="BOX", help="Mailbox (the extension).")],
    pin: Annotated[
        str | None,
        typer.Option(
            "--pin",
            help="The PIN, 4-12 digits (it stays in your shell history); default: generate one.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set the PIN that opens a mailbox from a phone (*97); prints a generated one once."""
    if pin is not None:
        check_pin_format(pin)
    secret = pin if pin is not None else f"{secrets.randbelow(10**6):06d}"
    run(_set_pin(data_dir_of(data_dir), box, secret))
    if pin is None:
        typer.echo(f"PIN: {secret}")
    typer.echo(f"PIN of mailbox {box} set")
