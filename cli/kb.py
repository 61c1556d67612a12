"""`pbx kb import|list|search|del`: the knowledge base agents search from the desktop.

`pbx kb import FILE.md|DIR` reads one article per Markdown file (see pbx.store.kb_files);
an article with the same title is replaced. A file that cannot be read is reported and
skipped (exit 1), the others are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx.errors import ConfigError
from pbx.store import Article
from pbx.store.kb_files import ArticleText, parse_article

kb_app = typer.Typer(
    name="kb",
    help="The knowledge base: articles agents search and link to tickets.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

MAX_FILE = 1024 * 1024


def _read(paths: list[Path]) -> tuple[list[tuple[Path, ArticleText]], list[str]]:
    articles: list[tuple[Path, ArticleText]] = []
    errors: list[str] = []
    for path in paths:
        try:
            if path.stat().st_size > MAX_FILE:
                raise ConfigError(f"larger than {MAX_FILE // 1024} KB")
            text = path.read_text(encoding="utf-8")
            articles.append((path, parse_article(text, path.stem.replace("-", " "))))
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            errors.append(f"{path}: {exc}")
    return articles, errors


async def _store(data_dir: Path, articles: list[tuple[Path, ArticleText]]) -> list[str]:
    lines = []
    async with await open_existing(data_dir) as store:
        for path, a in articles:
            stored, created = await store.kb.put(a.title, a.body, a.tags, author="import")
            verb = "added" if created else "replaced"
            lines.append(f"{verb} article {stored.id} {stored.title!r} from {path.name}")
    return lines


@kb_app.command("import")
def kb_import(
    path: Annotated[Path, typer.Argument(help="A Markdown file, or a directory of *.md.")],
    data_dir: DataDirOption = None,
) -> None:
    """Import articles from Markdown files."""
    if path.is_dir():
        paths = sorted(p for p in path.glob("*.md") if p.is_file())
        if not paths:
            raise ConfigError(f"no *.md file in {path}")
    elif path.is_file():
        paths = [path]
    else:
        raise ConfigError(f"{path} is neither a file nor a directory")
    articles, errors = _read(paths)
    for line in run(_store(data_dir_of(data_dir), articles)):
        typer.echo(line)
    for error in errors:
        typer.echo(error, err=True)
    if errors:
        raise typer.Exit(1)


async def _list(data_dir: Path, text: str | None) -> list[Article]:
    async with await open_existing(data_dir) as store:
        return await (store.kb.search(text) if text is not None else store.kb.all())


def _table(articles: list[Article]) -> str:
    rows = [(str(a.id), a.title, " ".join(a.tags)) for a in articles]
    return format_table(("ID", "TITLE", "TAGS"), rows)


@kb_app.command("list")
def kb_list(data_dir: DataDirOption = None) -> None:
    """List the articles."""
    articles = run(_list(data_dir_of(data_dir), None))
    typer.echo(_table(articles) if articles else "no articles")


@kb_app.command("search")
def kb_search(
    text: Annotated[str, typer.Argument(help="Words the articles must contain.")],
    data_dir: DataDirOption = None,
) -> None:
    """Full-text search of the articles, best first."""
    articles = run(_list(data_dir_of(data_dir), text))
    typer.echo(_table(articles) if articles else "no article matches")


async def _delete(data_dir: Path, id_: int) -> None:
    async with await open_existing(data_dir) as store:
        await store.kb.delete(id_)


@kb_app.command("del")
def kb_del(
    id_: Annotated[int, typer.Argument(metavar="ID", help="The article's id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete an article."""
    run(_delete(data_dir_of(data_dir), id_))
    typer.echo(f"deleted article {id_}")
