"""`pbx ivr`: IVR menus and time conditions, kept as one TOML document in the database.

`import FILE.toml` validates the file (`ivr.menu.parse_toml`), checks its numbers
against the numbering plan and replaces the whole configuration (naming what it
replaces, and only with `--replace` when menus are stored); it warns about
references to prompts, extensions and mailboxes that do not exist; `export`
writes it back (normalized through `to_toml`) to stdout or `--output FILE`;
`list` shows the menus and schedules; `clear` removes them. A bad file ends in
one `pbx: error: …` line naming the menu and field, exit status 1, and leaves
the stored configuration as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from cli.common import DataDirOption, data_dir_of, open_existing
from cli.common import run as _run
from ivr.menu import Menu, Schedule, parse_toml, to_toml
from ivr.menu_check import answered_numbers, extension_targets, problems
from ivr.prompts import DEFAULT_PROMPTS, PromptStore
from pbx.errors import ConfigError
from pbx.store import Store
from pbx.store.numbering import IVR_KINDS

T = TypeVar("T")

ivr_app = typer.Typer(
    name="ivr",
    help="IVR menus and time conditions (import/export as TOML).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


async def _open(data_dir: Path | None) -> Store:
    return await open_existing(data_dir_of(data_dir))


async def _get(data_dir: Path | None) -> tuple[tuple[Menu, ...], tuple[Schedule, ...]]:
    async with await _open(data_dir) as store:
        text = await store.ivr.get()
    return parse_toml(text)


async def _put(
    data_dir: Path | None, text: str, numbers: list[str], replace: bool
) -> tuple[tuple[Menu, ...], tuple[Schedule, ...]]:
    """Store the new document unless it would silently replace one; return the old one.

    Raises: ConfigError (menus exist and `replace` is not set), AlreadyExistsError (a
    number belongs to a user, ring group or feature code).
    """
    async with await _open(data_dir) as store:
        old = parse_toml(await store.ivr.get())
        if (old[0] or old[1]) and not replace:
            raise ConfigError(
                f"this would replace the stored IVR configuration ({_names(*old)});"
                " run again with --replace"
            )
        await store.ivr.put(text, numbers)
    return old


def _names(menus: Sequence[Menu], schedules: Sequence[Schedule]) -> str:
    parts = []
    if menus:
        parts.append(f"{_counted(len(menus), 'menu')}: {', '.join(m.name for m in menus)}")
    if schedules:
        parts.append(
            f"{_counted(len(schedules), 'schedule')}: {', '.join(s.name for s in schedules)}"
        )
    return "; ".join(parts) or "nothing"


async def _problems(
    data_dir: Path | None, menus: Sequence[Menu], schedules: Sequence[Schedule]
) -> list[str]:
    """References the new menus make to things that do not exist (yet): prompts,
    extensions and ring groups, mailboxes."""
    directory = data_dir_of(data_dir)
    prompts = set(PromptStore(directory / "prompts").names()) | set(DEFAULT_PROMPTS)
    async with await _open(data_dir) as store:
        users = {u.username for u in await store.users.list()}
        owned = [
            number
            for number in extension_targets(menus, schedules)
            if await store.numbering.owner(number, ignore=IVR_KINDS) is not None
        ]
    return problems(menus, schedules, prompts=prompts, mailboxes=users, owned=owned)


async def _clear(data_dir: Path | None) -> bool:
    async with await _open(data_dir) as store:
        return await store.ivr.clear()


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def references(text: str, number: str) -> list[str]:
    """Where the stored IVR document (`text`) still sends callers to `number`: one
    "IVR menu 'main' key 1" per option or fallback (unreadable text: none)."""
    try:
        menus, _ = parse_toml(text)
    except ConfigError:
        return []
    found: list[str] = []
    for menu in menus:
        actions = [(f"key {k}", a) for k, a in menu.options.items()]
        for where, action in [*actions, ("fallback", menu.fallback)]:
            if action.kind in ("extension", "voicemail") and action.target == number:
                found.append(f"IVR menu {menu.name!r} {where} ({action})")
    return found


@ivr_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(metavar="FILE.toml", help="The IVR configuration.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the menus and schedules stored now.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Validate FILE.toml and make it the whole IVR configuration.

    Stored menus are replaced only with --replace (and are named). Numbers taken by a
    user, ring group or feature code are refused; references to prompts, extensions,
    ring groups or mailboxes that do not exist are reported (one warning line each).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{file}: {reason}") from None
    try:
        menus, schedules = parse_toml(text)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    numbers = answered_numbers(menus, schedules)
    old = _run(_put(data_dir, to_toml(menus, schedules), numbers, replace))
    typer.echo(
        f"imported {_counted(len(menus), 'menu')} and {_counted(len(schedules), 'schedule')}"
    )
    if old[0] or old[1]:
        typer.echo(f"replaced {_names(*old)}")
    for problem in _run(_problems(data_dir, menus, schedules)):
        typer.echo(f"pbx: warning: {problem}", err=True)


@ivr_app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write the IVR configuration as TOML (empty when there is none)."""
    text = to_toml(*_run(_get(data_dir)))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{output}: {exc.strerror or exc}") from None


def _options(menu: Menu) -> str:
    parts = [f"{key}={action}" for key, action in menu.options.items()]
    if menu.dial_by_extension:
        parts.append(f"ext({menu.extension_digits})")
    return " ".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    )


@ivr_app.command("list")
def list_command(data_dir: DataDirOption = None) -> None:
    """List the menus (name, number, greeting, options) and the schedules."""
    menus, schedules = _run(_get(data_dir))
    if not menus:
        typer.echo("no IVR menus; load some with `pbx ivr import FILE.toml`")
        return
    rows = [(m.name, m.number or "-", m.greeting, _options(m)) for m in menus]
    typer.echo(_table(("NAME", "NUMBER", "GREETING", "OPTIONS"), rows))
    if schedules:
        typer.echo("")
        timed = [
            (s.name, s.number or "-", s.open_menu, s.closed_menu, str(len(s.holidays)))
            for s in schedules
        ]
        typer.echo(_table(("SCHEDULE", "NUMBER", "OPEN", "CLOSED", "HOLIDAYS"), timed))


@ivr_app.command("clear")
def clear_command(data_dir: DataDirOption = None) -> None:
    """Remove every IVR menu and schedule."""
    removed = _run(_clear(data_dir))
    typer.echo("cleared the IVR configuration" if removed else "no IVR configuration to clear")
