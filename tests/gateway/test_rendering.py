"""Model output rendered for the console: Markdown and code come out as HTML with nothing that can run or fetch."""

from __future__ import annotations

import re

import pytest

from api.gateway.rendering import highlight_css, render_code, render_markdown, sanitize
from tests.gateway.support import assert_inert
from workflows.models import LintMessage

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[click](javascript:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](https://tracker.example/p.png)",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<div style="background:url(https://evil.example)">x</div>',
    "<form action=https://evil.example><input name=k></form>",
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
    "``` onerror=alert(1)\ncode\n```",
    "<!-- <script>alert(1)</script> -->",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_as_inert_html(text: str) -> None:
    html = render_markdown(f"# Title\n\n{text}\n")
    assert_inert(html)
    assert "<h1>Title</h1>" in html


def test_markdown_keeps_its_structure_and_shows_raw_html_as_text() -> None:
    html = render_markdown(
        "Intro with `code` and **bold**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```python\ndef f():\n    return 1\n```\n\n[docs](https://docs.example/x) <b>not bold</b>\n"
    )
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<span class="k">def</span>' in html  # the fenced block is highlighted
    assert '<a href="https://docs.example/x" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html


def test_code_lines_carry_their_pylint_messages_escaped() -> None:
    code = 'x = "<script>alert(1)</script>"\n\n\ndef f():\n    """Doc\n    string."""\n'
    messages = [
        LintMessage(
            line=1,
            column=0,
            symbol="invalid-name",
            message_id="C0103",
            type="convention",
            message='Constant name "x" <img src=x onerror=alert(1)>',
        ),
        LintMessage(line=4, column=0, symbol="missing-return", message_id="R1710", type="refactor", message="r"),
        LintMessage(
            line=0,
            column=0,
            symbol="missing-module-docstring",
            message_id="C0114",
            type="convention",
            message="Missing module docstring",
        ),
        LintMessage(line=99, column=0, symbol="x", message_id="W0001", type="warning", message="past the end"),
    ]
    html = render_code(code, messages)
    parsed = assert_inert(html)
    assert '"<script>alert(1)</script>"' in "".join(parsed.text)  # shown, as text
    lines = re.findall(r'<li id="code-line-(\d+)" class="code-line( flagged)?"', html)
    assert [int(n) for n, _ in lines] == [1, 2, 3, 4, 5, 6]
    assert [n for n, flagged in lines if flagged] == ["1", "4"]
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    file_level = html[: html.index('<ol class="code hl">')]
    assert "C0114" in file_level and "W0001" in file_level  # no line of its own: listed above the code
    # a multi-line docstring is highlighted line by line, each line's spans closed on that line
    assert all(line.count("<span") == line.count("</span>") for line in re.findall(r"<code[^>]*>(.*?)</code>", html))


def test_the_sanitizer_is_the_last_word() -> None:
    assert sanitize('<p onclick="x()">a</p><script>b</script>') == "<p>a</p>"
    assert "hl" in highlight_css() and "{" in highlight_css()
