"""The knowledge base: articles (title, Markdown body, tags) with an SQLite FTS5 index.

The body is stored as written; rendering it safely is the web console's job. Search
takes what a person types: each word becomes a quoted FTS5 prefix term (`"refund"*`),
so no FTS5 syntax (NEAR, column filters, quotes) from the user reaches the engine, and
all words must match; results are ranked by bm25 with the title weighted most.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = ["Article", "KbRepo", "check_tags", "fts_query"]

TITLE_MAX = 200
BODY_MAX = 100_000
_TAG = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,39}")
_WORD = re.compile(r"\w+")
MAX_TERMS = 16


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    title: str
    body: str
    tags: tuple[str, ...]
    author: str
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "author": self.author,
            "updated": self.updated,
        }


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags lower-cased, unique, in order. Raises: ConfigError for a bad tag."""
    out: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not tag:
            continue
        if _TAG.fullmatch(tag) is None:
            raise ConfigError(f"tag {tag!r}: 1 to 40 of a-z 0-9 _ . : -")
        if tag not in out:
            out.append(tag)
    return tuple(out)


def fts_query(text: str) -> str:
    """What a person typed as a safe FTS5 query ("" when it has no word)."""
    words = _WORD.findall(text.lower())[:MAX_TERMS]
    return " ".join(f'"{w}"*' for w in words)


def _article(row: sqlite3.Row) -> Article:
    tags = tuple(t for t in str(row[3]).split(" ") if t)
    return Article(row[0], row[1], row[2], tags, row[4], row[5], row[6])


_COLUMNS = "id, title, body, tags, author, created, updated"


class KbRepo:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def put(
        self, title: str, body: str, tags: Iterable[str] = (), author: str = ""
    ) -> tuple[Article, bool]:
        """Store an article, replacing the one with the same title; (article, created).

        Raises: ConfigError for an empty or too long title or body, or a bad tag.
        """
        title, body, tag_list = _checked(title, body, tags)
        now = self._clock()
        async with self._db.transaction() as conn:
            async with conn.execute("SELECT id FROM kb_articles WHERE title = ?", (title,)) as c:
                existing = await c.fetchone()
            if existing is None:
                cur = await conn.execute(
                    "INSERT INTO kb_articles (title, body, tags, author, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (title, body, " ".join(tag_list), author, now, now),
                )
                id_ = cur.lastrowid
            else:
                id_ = int(existing[0])
                await conn.execute(
                    "UPDATE kb_articles SET body = ?, tags = ?, author = ?, updated = ?"
                    " WHERE id = ?",
                    (body, " ".join(tag_list), author, now, id_),
                )
        assert id_ is not None
        return await self.get(id_), existing is None

    async def update(
        self, id_: int, title: str, body: str, tags: Iterable[str], author: str
    ) -> Article:
        """Raises: ConfigError (bad fields, a title taken), NotFoundError."""
        title, body, tag_list = _checked(title, body, tags)
        try:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    "UPDATE kb_articles SET title = ?, body = ?, tags = ?, author = ?,"
                    " updated = ? WHERE id = ?",
                    (title, body, " ".join(tag_list), author, self._clock(), id_),
                )
                if cur.rowcount == 0:
                    raise NotFoundError(f"no article {id_}")
        except sqlite3.IntegrityError:
            raise ConfigError(f"an article is titled {title!r} already") from None
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise ConfigError(f"an article is titled {title!r} already") from None
            raise
        return await self.get(id_)

    async def get(self, id_: int) -> Article:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM kb_articles WHERE id = ?", (id_,))
        if row is None:
            raise NotFoundError(f"no article {id_}")
        return _article(row)

    async def all(self) -> list[Article]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM kb_articles ORDER BY title")
        return [_article(r) for r in rows]

    async def delete(self, id_: int) -> None:
        """Raises: NotFoundError."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM kb_articles WHERE id = ?", (id_,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no article {id_}")

    async def search(self, text: str, limit: int = 20) -> list[Article]:
        """Articles matching every word of `text` (prefixes), best first."""
        query = fts_query(text)
        if not query:
            return []
        rows = await self._db.fetchall(
            "SELECT a.id, a.title, a.body, a.tags, a.author, a.created, a.updated"
            " FROM kb_fts JOIN kb_articles a ON a.id = kb_fts.rowid"
            " WHERE kb_fts MATCH ? ORDER BY bm25(kb_fts, 10.0, 1.0, 5.0) LIMIT ?",
            (query, limit),
        )
        return [_article(r) for r in rows]

    async def tagged(self, tags: Iterable[str], limit: int = 10) -> list[Article]:
        """Articles carrying any of `tags` (a queue's name, an IVR choice), newest first."""
        wanted = [t.lower() for t in tags if t]
        if not wanted:
            return []
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM kb_articles ORDER BY updated DESC")
        found = [a for a in map(_article, rows) if set(a.tags) & set(wanted)]
        return found[:limit]


def _checked(title: str, body: str, tags: Iterable[str]) -> tuple[str, str, tuple[str, ...]]:
    title = title.strip()
    if not title or len(title) > TITLE_MAX or not title.isprintable():
        raise ConfigError(f"an article title is 1 to {TITLE_MAX} printable characters")
    if not body.strip() or len(body) > BODY_MAX or "\0" in body:
        raise ConfigError(f"an article body is 1 to {BODY_MAX} characters")
    return title, body, check_tags(tags)
