"""`pbx dnc add|del|import|check|list`: do-not-call lists, global or per campaign
(`--campaign`). Numbers are stored in E.164 (a national number is read in `--country`,
else the country customer imports use). The dialer checks the lists at dial time, so a
change takes effect at the next dial, running server or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    DataDirOption,
    data_dir_of,
    format_table,
    open_existing,
    read_import_file,
    run,
)
from pbx.errors import ConfigError
from pbx.store import DncEntry, Store
from pbx.store.e164 import normalise

dnc_app = typer.Typer(
    name="dnc",
    help="Do-not-call lists (global, or one campaign's with --campaign).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NumberArg = Annotated[str, typer.Argument(metavar="NUMBER", help="A phone number.")]
CampaignOption = Annotated[
    str, typer.Option("--campaign", "-c", help="That campaign's list (default: the global one).")
]
CountryOption = Annotated[
    str | None, typer.Option(help="Country of national numbers: ISO code (GB) or +44.")
]
COUNTRY_KEY = "customer_country"


async def _e164(store: Store, number: str, country: str | None) -> str:
    if number.strip().startswith("+"):
        return normalise(number, "1")  # the country is in the number
    country = country or await store.settings.get(COUNTRY_KEY)
    if country is None:
        raise ConfigError(f"{number} has no country code: give --country (e.g. GB)")
    return normalise(number, country)


async def _check_campaign(store: Store, campaign: str) -> None:
    if campaign:
        await store.campaigns.get(campaign)


def _where(campaign: str) -> str:
    return f"campaign {campaign}'s" if campaign else "the global"


async def _add(data_dir: Path, number: str, campaign: str, country: str | None) -> tuple[str, bool]:
    async with await open_existing(data_dir) as store:
        await _check_campaign(store, campaign)
        e164 = await _e164(store, number, country)
        return e164, await store.dnc.add(e164, campaign, "cli")


@dnc_app.command("add")
def dnc_add(
    number: NumberArg,
    campaign: CampaignOption = "",
    country: CountryOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Put a number on a do-not-call list."""
    e164, new = run(_add(data_dir_of(data_dir), number, campaign, country))
    typer.echo(
        f"{e164} {'added to' if new else 'is already on'} {_where(campaign)} do-not-call list"
    )


async def _delete(data_dir: Path, number: str, campaign: str, country: str | None) -> str:
    async with await open_existing(data_dir) as store:
        e164 = await _e164(store, number, country)
        await store.dnc.delete(e164, campaign)
        return e164


@dnc_app.command("del")
def dnc_del(
    number: NumberArg,
    campaign: CampaignOption = "",
    country: CountryOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Take a number off a do-not-call list."""
    e164 = run(_delete(data_dir_of(data_dir), number, campaign, country))
    typer.echo(f"{e164} removed from {_where(campaign)} do-not-call list")


async def _import(
    data_dir: Path, lines: list[tuple[int, str]], campaign: str, country: str | None
) -> tuple[int, int, list[str]]:
    async with await open_existing(data_dir) as store:
        await _check_campaign(store, campaign)
        good: list[str] = []
        errors: list[str] = []
        for line, text in lines:
            try:
                good.append(await _e164(store, text, country))
            except ConfigError as exc:
                errors.append(f"{line}: {exc}")
        new = await store.dnc.add_many(good, campaign, "import")
    return len(good), new, errors


@dnc_app.command("import")
def dnc_import(
    file: Annotated[Path, typer.Argument(help="One number per line (or CSV: the first column).")],
    campaign: CampaignOption = "",
    country: CountryOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add every number of a file; bad lines are reported and left out (exit 1)."""
    text = read_import_file(file)
    lines = []
    for i, raw in enumerate(text.splitlines(), 1):
        cell = raw.split(",")[0].strip().strip('"')
        if not cell or (i == 1 and not any(c.isdigit() for c in cell)):
            continue  # a blank line, or a header
        lines.append((i, cell))
    kept, new, errors = run(_import(data_dir_of(data_dir), lines, campaign, country))
    for error in errors:
        typer.echo(f"{file}:{error}", err=True)
    typer.echo(
        f"{kept} numbers on {_where(campaign)} do-not-call list ({new} new)"
        + (f"; {len(errors)} lines left out" if errors else "")
    )
    if errors:
        raise typer.Exit(1)


async def _check(
    data_dir: Path, number: str, campaign: str, country: str | None
) -> tuple[str, DncEntry | None]:
    async with await open_existing(data_dir) as store:
        e164 = await _e164(store, number, country)
        return e164, await store.dnc.listed(e164, campaign)


@dnc_app.command("check")
def dnc_check(
    number: NumberArg,
    campaign: CampaignOption = "",
    country: CountryOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Say whether a number may be called (for a campaign: its list and the global one)."""
    e164, entry = run(_check(data_dir_of(data_dir), number, campaign, country))
    if entry is None:
        typer.echo(f"{e164}: not listed")
        return
    source = f", {entry.source}" if entry.source else ""
    typer.echo(f"{e164}: do not call ({_where(entry.campaign)} list{source})")


async def _list(data_dir: Path, campaign: str | None) -> list[DncEntry]:
    async with await open_existing(data_dir) as store:
        return await store.dnc.all(campaign)


@dnc_app.command("list")
def dnc_list(
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="Only this campaign's list.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """The numbers on the lists."""
    rows = [
        [e.number, e.campaign or "(global)", e.source]
        for e in run(_list(data_dir_of(data_dir), campaign))
    ]
    typer.echo(format_table(["NUMBER", "LIST", "SOURCE"], rows) if rows else "no numbers listed")
