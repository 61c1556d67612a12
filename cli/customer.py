"""`pbx customer import|export|list`: the customers a screen pop shows.

Numbers are stored in E.164; an import reads them in the default country (`--country`,
remembered in the database for the next import and for matching callers' numbers). Bad
rows are reported by their line and left out; the good ones are kept (exit 1 if any row
was bad, so a script notices).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.errors import ConfigError
from pbx.store import Customer
from pbx.store.customer_csv import ImportResult, format_customers, parse_customers, parse_mapping
from pbx.store.e164 import country as parse_country

customer_app = typer.Typer(
    name="customer",
    help="Customers: the records the agent desktop pops up for a caller's number.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

#: The settings key of the default country of customers' numbers.
COUNTRY_KEY = "customer_country"
MAX_FILE = 64 * 1024 * 1024


async def _import(
    data_dir: Path, text: str, country: str | None, mapping: dict[str, str]
) -> tuple[ImportResult, int, str]:
    async with await open_existing(data_dir) as store:
        if country is None:
            country = await store.settings.get(COUNTRY_KEY)
            if country is None:
                raise ConfigError("give the numbers' default country with --country (e.g. GB)")
        parse_country(country)
        result = parse_customers(text, country, mapping)
        _, added = await store.customers.upsert_many([row for _, row in result.rows])
        await store.settings.set(COUNTRY_KEY, country.strip().upper())
    return result, added, country


@customer_app.command("import")
def customer_import(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header line.")],
    country: Annotated[
        str | None,
        typer.Option(help="Default country of national numbers: ISO code (GB) or +44."),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=Header: take FIELD from that column (repeatable)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import customers (a number already stored updates its customer)."""
    try:
        if file.stat().st_size > MAX_FILE:
            raise ConfigError(f"{file} is larger than {MAX_FILE // 2**20} MB")
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    result, added, used = run(
        _import(data_dir_of(data_dir), text, country, parse_mapping(map_ or []))
    )
    for error in result.errors:
        typer.echo(f"{file}:{error.line}: {error.message}", err=True)
    kept = len(result.rows)
    typer.echo(
        f"imported {kept} customers ({added} new, {kept - added} updated) from {file}"
        f" (numbers read as {used.upper()})"
        + (f"; {len(result.errors)} rows left out" if result.errors else "")
    )
    if result.errors:
        raise typer.Exit(1)


async def _all(data_dir: Path) -> list[Customer]:
    async with await open_existing(data_dir) as store:
        return await store.customers.all()


@customer_app.command("export")
def customer_export(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write the CSV [default: stdout].")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export every customer as CSV (what `pbx customer import` reads)."""
    text = format_customers(run(_all(data_dir_of(data_dir))))
    if file is None:
        sys.stdout.write(text)
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {file}: {exc}") from None
    typer.echo(f"exported to {file}")


@customer_app.command("list")
def customer_list(data_dir: DataDirOption = None) -> None:
    """List the customers."""
    customers = run(_all(data_dir_of(data_dir)))
    if not customers:
        typer.echo("no customers")
        return
    rows = [(str(c.id), c.number, c.name, c.company) for c in customers]
    typer.echo(format_table(("ID", "NUMBER", "NAME", "COMPANY"), rows))
