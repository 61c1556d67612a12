"""`pbx route add|list|del`: outbound routes (dial patterns -> ordered trunks).

They live in the database (`pbx.store.routes`). Every trunk name must be a configured
trunk (`pbx trunk add`). Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.store import Route

route_app = typer.Typer(
    name="route",
    help="Outbound routes: dial patterns, digit rewriting, trunks in failover order.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _split(values: list[str]) -> tuple[str, ...]:
    """Repeated options and comma lists alike: `-t a -t b` or `-t a,b`."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


async def _add(data_dir: Path, route: Route) -> Route:
    async with await open_existing(data_dir) as store:
        return await store.routes.add(route)


async def _all(data_dir: Path) -> list[Route]:
    async with await open_existing(data_dir) as store:
        return await store.routes.all()


async def _delete(data_dir: Path, name: str) -> None:
    async with await open_existing(data_dir) as store:
        await store.routes.delete(name)


@route_app.command("add")
def route_add(
    name: Annotated[str, typer.Argument(help="The route's name.")],
    pattern: Annotated[
        list[str],
        typer.Option(
            "--pattern",
            "-p",
            help="Dial pattern(s): _0XXXXXXXXX, _00., prefix:00 or a number; repeat or a,b.",
        ),
    ],
    trunk: Annotated[
        list[str],
        typer.Option("--trunk", "-t", help="Trunk(s) in failover order; repeat or a,b."),
    ],
    strip: Annotated[int, typer.Option(help="Leading digits to remove.")] = 0,
    prepend: Annotated[str, typer.Option(help="Digits to put in front (after strip).")] = "",
    caller_id: Annotated[
        str | None, typer.Option("--caller-id", help="Caller ID to send on this route.")
    ] = None,
    emergency: Annotated[
        bool, typer.Option("--emergency", help="An emergency route: tried before all others.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Add an outbound route after the existing ones."""
    route = Route(
        name=name,
        patterns=_split(pattern),
        trunks=_split(trunk),
        strip=strip,
        prepend=prepend,
        caller_id=caller_id,
        emergency=emergency,
    )
    stored = run(_add(data_dir_of(data_dir), route))
    typer.echo(
        f"added route {stored.name}: {', '.join(stored.patterns)} -> {', '.join(stored.trunks)}"
    )


@route_app.command("list")
def route_list(data_dir: DataDirOption = None) -> None:
    """List outbound routes in the order they are tried (emergency ones first)."""
    routes = run(_all(data_dir_of(data_dir)))
    if not routes:
        typer.echo("no outbound routes")
        return
    rows = [
        (
            r.name,
            " ".join(r.patterns),
            str(r.strip),
            r.prepend or "-",
            r.caller_id or "-",
            ",".join(r.trunks),
            "yes" if r.emergency else "no",
        )
        for r in routes
    ]
    headers = ("NAME", "PATTERNS", "STRIP", "PREPEND", "CALLER ID", "TRUNKS", "EMERGENCY")
    typer.echo(format_table(headers, rows))


@route_app.command("del")
def route_del(
    name: Annotated[str, typer.Argument(help="The route's name.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete an outbound route."""
    run(_delete(data_dir_of(data_dir), name))
    typer.echo(f"deleted route {name}")
