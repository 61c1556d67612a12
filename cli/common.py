"""What the `pbx` sub-commands share: the --data-dir option, running a coroutine,
opening the database of an initialized data directory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from pbx.config import Settings, default_data_dir
from pbx.errors import ConfigError
from pbx.store import Store

T = TypeVar("T")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory [default: $PBX_DATA_DIR, else $XDG_DATA_HOME/aiopbx].",
        show_default=False,
    ),
]


def data_dir_of(data_dir: Path | None) -> Path:
    """The given data directory, else the default one."""
    return data_dir if data_dir is not None else default_data_dir()


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine to completion from a (synchronous) command."""

    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


async def open_existing(data_dir: Path) -> Store:
    """Open the database of an initialized data directory.

    Raises:
        ConfigError: there is no database yet.
    """
    db_path = Settings(data_dir=data_dir).db_path
    if not db_path.is_file():
        raise ConfigError(f"no database in {data_dir}; run `pbx init` first")
    return await Store.open(db_path)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, header first; no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (list(headers), *rows)
    ]
    return "\n".join(lines)
