"""Knowledge-base Markdown rendered to HTML that is safe to put in a page.

markdown-it-py (CommonMark, maintained by the executable-books project, already installed
with rich) with raw HTML turned off: a `<script>` written in an article comes out as the
text `&lt;script&gt;`; its link validator refuses `javascript:`, `vbscript:`, `file:` and
non-image `data:` URLs. Links open without a referrer. Why a library and not our own:
CommonMark's corner cases (nested emphasis, link references) are many and the library
is already a dependency; what makes it safe here is `html=False` plus the validator,
both tested in tests/web/test_markdown.py.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

__all__ = ["render"]

#: An article longer than this is rendered as plain escaped text (bounded work).
MAX_RENDER = 100_000

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.disable("image")  # no requests to other hosts from an article


def _link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer")
    tokens[idx].attrSet("target", "_blank")
    return str(renderer.renderToken(tokens, idx, options, env))


_md.add_render_rule("link_open", _link_open)


def render(text: str) -> str:
    """`text` (Markdown) as safe HTML."""
    if len(text) > MAX_RENDER:
        from html import escape

        return f"<pre>{escape(text)}</pre>"
    return str(_md.render(text))
