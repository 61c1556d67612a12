"""Articles' Markdown rendered safely (acd.web.markdown): raw HTML is text, dangerous
links are not links, images fetch nothing."""

from __future__ import annotations

import pytest

from acd.web.markdown import MAX_RENDER, render


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("**bold** and *it*", "<p><strong>bold</strong> and <em>it</em></p>\n"),
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
        ("a <b onclick=x>b</b>", "<p>a &lt;b onclick=x&gt;b&lt;/b&gt;</p>\n"),
        ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"),
        ("[x](JaVaScRiPt:alert(1))", "<p>[x](JaVaScRiPt:alert(1))</p>\n"),
        ("[x](data:text/html,<b>)", "<p>[x](data:text/html,&lt;b&gt;)</p>\n"),
        (
            "[docs](https://example.org/a?b=1&c=2)",
            '<p><a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer"'
            ' target="_blank">docs</a></p>\n',
        ),
        (  # an image is only a link: opening the article fetches nothing
            "![pic](https://evil.example/x.png)",
            '<p>!<a href="https://evil.example/x.png" rel="noopener noreferrer"'
            ' target="_blank">pic</a></p>\n',
        ),
        (
            '`<img src=x onerror="a">`',
            "<p><code>&lt;img src=x onerror=&quot;a&quot;&gt;</code></p>\n",
        ),
        ("# T\n\n- one\n- two", "<h1>T</h1>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"),
    ],
)
def test_render(text: str, html: str) -> None:
    assert render(text) == html


def test_too_long_is_escaped_text() -> None:
    text = "<b>" + "x" * MAX_RENDER
    assert render(text) == f"<pre>&lt;b&gt;{'x' * MAX_RENDER}</pre>"
