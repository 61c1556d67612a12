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

from cli.common import (
    DataDirOption,
    data_dir_of,
    format_table,
    open_existing,
    read_import_file,
    run,
)
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
    text = read_import_file(file)
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


async def _set(data_dir: Path, values: dict[str, str | None]) -> None:
    async with await open_existing(data_dir) as store:
        for key, value in values.items():
            if value is None:
                await store.settings.delete(key)
            else:
                await store.settings.set(key, value)


@customer_app.command("webhook")
def customer_webhook(
    url: Annotated[
        str | None, typer.Argument(help="http(s) URL the offer/answer/end messages go to.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop sending messages.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Send each queue call's offer, answer and end with its customer to a CRM (JSON,
    HMAC-SHA256 signed; the secret is printed once). Takes effect in the running server."""
    import secrets

    from acd.web.webhook import SECRET_KEY, URL_KEY, check_url

    if clear:
        run(_set(data_dir_of(data_dir), {URL_KEY: None, SECRET_KEY: None}))
        typer.echo("webhook cleared")
        return
    if url is None:
        raise ConfigError("give the webhook's URL, or --clear")
    secret = secrets.token_urlsafe(32)
    run(_set(data_dir_of(data_dir), {URL_KEY: check_url(url), SECRET_KEY: secret}))
    typer.echo(f"webhook: {url}\nsecret (verify X-Pbx-Signature with it; shown once): {secret}")


@customer_app.command("crm-url")
def customer_crm_url(
    template: Annotated[
        str,
        typer.Argument(
            help="The CRM's page of a customer, e.g. https://crm.example/c/{external_id}"
            " ({id}, {number}, {external_id} are filled in); '' removes it."
        ),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """The link from a screen pop to the customer's page in the CRM."""
    from acd.web.api import CRM_URL_KEY, check_crm_template

    value = check_crm_template(template) if template else None
    run(_set(data_dir_of(data_dir), {CRM_URL_KEY: value}))
    typer.echo(f"CRM link: {value}" if value else "CRM link removed")


@customer_app.command("list")
def customer_list(data_dir: DataDirOption = None) -> None:
    """List the customers."""
    customers = run(_all(data_dir_of(data_dir)))
    if not customers:
        typer.echo("no customers")
        return
    rows = [(str(c.id), c.number, c.name, c.company) for c in customers]
    typer.echo(format_table(("ID", "NUMBER", "NAME", "COMPANY"), rows))
