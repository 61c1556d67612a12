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


_global_data_dir: Path | None = None


def set_global_data_dir(data_dir: Path | None) -> None:
    """Remember `pbx --data-dir DIR …` (given before the sub-command) for this run."""
    global _global_data_dir
    _global_data_dir = data_dir


def data_dir_of(data_dir: Path | None) -> Path:
    """The sub-command's --data-dir, else the one given before it, else the default."""
    if data_dir is not None:
        return data_dir
    return _global_data_dir if _global_data_dir is not None else default_data_dir()


def require_database(data_dir: Path) -> Path:
    """Refuse to write into a directory that is not an initialized data directory (a typo
    in --data-dir would otherwise scatter files in a new one).

    Raises:
        ConfigError: there is no database in it.
    """
    if not Settings(data_dir=data_dir).db_path.is_file():
        raise ConfigError(f"no database in {data_dir}; run `pbx init` first")
    return data_dir


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
    return await Store.open(Settings(data_dir=require_database(data_dir)).db_path)


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


#: The largest list a CLI import reads (CSV of customers, contacts, DNC numbers).
MAX_IMPORT_FILE = 64 * 1024 * 1024


def read_import_file(file: Path) -> str:
    """The text of a file to import (UTF-8, a BOM allowed), at most MAX_IMPORT_FILE.

    Raises: ConfigError naming the file and what is wrong with it.
    """
    try:
        if file.stat().st_size > MAX_IMPORT_FILE:
            raise ConfigError(f"{file} is larger than {MAX_IMPORT_FILE // 2**20} MB")
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
