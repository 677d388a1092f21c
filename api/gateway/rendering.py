"""Model output as HTML the console can show: Markdown rendered, code highlighted, everything sanitised.

Plans, code and documentation come from a model, and a model's output can hold anything a prompt led it to write,
`<script>` included. So they are rendered here, on the server, by libraries built for it, and the console never
has to parse them: Markdown by markdown-it-py with raw HTML off (a tag in the text stays text), code by Pygments
(which escapes every token), and the result of both through nh3 (the Ammonia sanitiser) with a short allow-list
of tags and attributes, no event handlers, no styles, links to http(s) and mailto only. Images are not allowed:
a model's Markdown must not make the reader's browser fetch anything.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from workflows.models import LintMessage

HIGHLIGHT_CLASS = "hl"  # the container class the Pygments stylesheet is scoped to (highlight_css)
_INLINE = {"a", "code", "em", "strong", "del", "span", "br", "sub", "sup", "kbd"}
_BLOCKS = {"div", "p", "pre", "blockquote", "ul", "ol", "li", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
_TABLES = {"table", "thead", "tbody", "tr", "th", "td"}
ALLOWED_TAGS = _INLINE | _BLOCKS | _TABLES
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "div": {"class"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "ol": {"class", "start"},
    "ul": {"class"},
    "li": {"class", "id", "data-line"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_FORMATTER = HtmlFormatter(nowrap=True)


def sanitize(fragment: str) -> str:
    """The one gate every HTML fragment passes before it leaves the gateway."""
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _highlight_fence(code: str, language: str, _attrs: str) -> str:
    """A fenced block's body as highlighted spans; markdown-it wraps it in <pre><code>."""
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the block itself
    return highlight(code, lexer, _FORMATTER)


_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "highlight": _highlight_fence})
    .enable("table")
    .enable("strikethrough")
)


def render_markdown(text: str) -> str:
    """Markdown (CommonMark, tables, strikethrough) as sanitised HTML; raw HTML in the text shows as text."""
    rendered = _MARKDOWN.render(text)
    return sanitize(f'<div class="markdown {HIGHLIGHT_CLASS}">{rendered}</div>' if rendered else "")


def _message_item(message: LintMessage) -> str:
    kind = message.type if message.type.isalpha() else "other"
    return (
        f'<li class="lint lint-{html.escape(kind)}"><span class="lint-id">{html.escape(message.message_id)}</span> '
        f'<span class="lint-symbol">{html.escape(message.symbol)}</span> {html.escape(message.message)}'
        f'<span class="lint-col"> (column {message.column})</span></li>'
    )


def render_code(code: str, messages: Iterable[LintMessage] = ()) -> str:
    """Python code as a numbered list of highlighted lines, each followed by its pylint messages.

    Messages that name no line of the code (line 0, or past the end) are listed above it.
    """
    lines = highlight(code, PythonLexer(stripnl=False, ensurenl=False), _FORMATTER).split("\n")
    if lines and lines[-1] == "" and code.endswith("\n"):
        lines.pop()
    by_line: dict[int, list[LintMessage]] = defaultdict(list)
    for message in messages:
        by_line[message.line if 1 <= message.line <= len(lines) else 0].append(message)
    parts = []
    if by_line.get(0):
        parts.append('<ul class="lint-messages lint-file">' + "".join(map(_message_item, by_line[0])) + "</ul>")
    parts.append(f'<ol class="code {HIGHLIGHT_CLASS}">')
    for number, line in enumerate(lines, start=1):
        found = by_line.get(number, [])
        flagged = " flagged" if found else ""
        parts.append(f'<li id="code-line-{number}" class="code-line{flagged}" data-line="{number}">')
        parts.append(f'<code class="code-text">{line or " "}</code>')
        if found:
            parts.append('<ul class="lint-messages">' + "".join(map(_message_item, found)) + "</ul>")
        parts.append("</li>")
    parts.append("</ol>")
    return sanitize("".join(parts))


def highlight_css() -> str:
    """Pygments' stylesheet for the classes render_code and fenced blocks use, scoped to `.hl`."""
    return _FORMATTER.get_style_defs(f".{HIGHLIGHT_CLASS}")
