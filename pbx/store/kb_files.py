"""Knowledge-base articles as Markdown files (`pbx kb import FILE.md|DIR`). Pure.

A file is one article: an optional front matter block (a first line `---`, then
`title: ...` and `tags: a, b` lines, then `---`), the title otherwise taken from the first
`# Heading` line (which then leaves the body), else from the file's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbx.errors import ConfigError
from pbx.store.kb import BODY_MAX, check_tags

__all__ = ["ArticleText", "parse_article"]


@dataclass(frozen=True, slots=True)
class ArticleText:
    title: str
    body: str
    tags: tuple[str, ...]


def parse_article(text: str, fallback_title: str) -> ArticleText:
    """The article a Markdown file holds. Raises: ConfigError (an unclosed front matter,
    an unknown key in it, a bad tag, an empty body, a body too long)."""
    if len(text) > BODY_MAX:
        raise ConfigError(f"longer than {BODY_MAX} characters")
    lines = text.lstrip("\ufeff").splitlines()
    title, tags = "", ""
    if lines and lines[0].strip() == "---":
        try:
            end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
        except StopIteration:
            raise ConfigError("the front matter (---) is not closed") from None
        for line in lines[1:end]:
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if not sep or key not in ("title", "tags"):
                raise ConfigError(f"front matter line {line!r}: only title: and tags:")
            if key == "title":
                title = value.strip()
            else:
                tags = value
        lines = lines[end + 1 :]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not title and lines and lines[0].startswith("# "):
        title = lines.pop(0)[2:].strip()
    body = "\n".join(lines).strip()
    if not body:
        raise ConfigError("the article has no body")
    return ArticleText(title or fallback_title, body + "\n", check_tags(tags.split(",")))
