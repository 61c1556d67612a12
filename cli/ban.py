"""`pbx ban` and `pbx trust`: who is locked out for failed logins, and who never is.

`ban list` and `ban lift ADDRESS [--user NAME]` ask the running server (its control
API): bans live in its memory only. `trust add/list/del CIDR` edit the trusted networks
in the database; the running server picks a change up within a second or so. A trusted
network is never banned as a whole (a single user failing there is still refused).
Errors end in one `pbx: error: …` line with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx import control
from pbx.config import Settings
from pbx.errors import ControlError, NotFoundError

ban_app = typer.Typer(
    name="ban",
    help="Addresses banned and users refused for failed logins (running server).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
trust_app = typer.Typer(
    name="trust",
    help="Trusted networks: never banned as a whole for failed logins.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NetworkArgument = Annotated[
    str, typer.Argument(metavar="CIDR", help="An address or network, e.g. 192.168.1.0/24.")
]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir_of(data_dir))


def _ban_row(entry: Any) -> tuple[str, str, str, str]:
    if not isinstance(entry, dict):
        raise ControlError("the server sent a ban list this pbx does not understand")
    seconds = entry.get("seconds_left")
    return (
        str(entry.get("address", "")),
        str(entry.get("user") or "* (every user)"),
        str(round(seconds)) if isinstance(seconds, int | float) else "",
        str(entry.get("reason", "")),
    )


@ban_app.command("list")
def ban_list(data_dir: DataDirOption = None) -> None:
    """Show banned addresses and refused (address, user) pairs, with the seconds left."""
    result = control.fetch_bans(_settings(data_dir))
    rows = [_ban_row(entry) for entry in result.get("bans", [])]
    if rows:
        typer.echo(format_table(("ADDRESS", "USER", "SECONDS LEFT", "REASON"), rows))
    else:
        typer.echo("no bans")
    trusted = [str(n) for n in result.get("trusted", [])]
    if trusted:
        typer.echo(f"trusted (never banned as a whole): {', '.join(trusted)}")


@ban_app.command("lift")
def ban_lift(
    address: Annotated[str, typer.Argument(help="The banned source address.")],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Lift only this user's refusal.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Lift the ban of an address and its users' refusals (or one user's with --user)."""
    result = control.lift_ban(_settings(data_dir), address, user)
    typer.echo(f"lifted {result.get('lifted', 0)} ban(s) of {address}")


async def _trust(data_dir: Path, verb: str, network: str) -> list[str]:
    async with await open_existing(data_dir) as store:
        if verb == "add":
            return [await store.trusted.add(network)]
        if verb == "del":
            gone = await store.trusted.delete(network)
            if gone is None:
                raise NotFoundError(f"{network} is not a trusted network")
            return [gone]
        return await store.trusted.all()


@trust_app.command("add")
def trust_add(network: NetworkArgument, data_dir: DataDirOption = None) -> None:
    """Trust a network: failed logins from it never ban it as a whole."""
    (cidr,) = run(_trust(data_dir_of(data_dir), "add", network))
    typer.echo(f"trusted {cidr}")


@trust_app.command("list")
def trust_list(data_dir: DataDirOption = None) -> None:
    """Show the stored trusted networks (`pbx serve --trust` ones are not stored)."""
    networks = run(_trust(data_dir_of(data_dir), "list", ""))
    typer.echo("\n".join(networks) if networks else "no trusted networks")


@trust_app.command("del")
def trust_del(network: NetworkArgument, data_dir: DataDirOption = None) -> None:
    """Stop trusting a network."""
    (cidr,) = run(_trust(data_dir_of(data_dir), "del", network))
    typer.echo(f"no longer trusted: {cidr}")
