"""Error messages: the string literals of code as templates, and a pasted message matched against them.

A developer pastes what they saw: ``Error: Invalid value for '--count': 'abc' is not a valid integer.``. The code
that produced it holds templates, ``_("{value!r} is not a valid {number_type}.")`` and ``f"Invalid value for
{hint}: {message}"``. The words of a message are mostly common ones (is, not, a, for) that BM25 barely weighs,
and the user's own values (``'abc'``, ``--count``) appear nowhere in the code. So the literals of every code
chunk are kept as word sequences with ``*`` for each placeholder (``{…}``, ``%s``, ``%(name)r``), and a message
is scored against them by its words *in order*: single words and adjacent pairs (a placeholder counts as a word
of the pair), with stop words kept and the quoted values and numbers of the message turned into ``*``.
"""

from __future__ import annotations

import io
import itertools
import re
import tokenize as pytokenize
from dataclasses import dataclass

from .tokens import identifier_parts, stem

WILDCARD = "*"
MAX_TEMPLATES = 64  # literals kept per chunk
MAX_TEMPLATE_WORDS = 40

_WORD = re.compile(r"[^\W_]+(?:_+[^\W_]+)*|\*")
# {name}, {0.url}, {value!r:>10}; {{ and }} are literal braces.
_FORMAT_FIELD = re.compile(r"(?<!\{)\{(?!\{)[^{}]*\}")
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[sdrafgiouxXeEc]")
_STRING_PREFIX = re.compile(r"^[rRbBuUfF]*")
# A quoted value in a message: the quote opens after a non-word character and closes before one, so the
# apostrophe in "couldn't" is not taken for a quote.
_QUOTED = re.compile(r"""(?<!\w)(?:'[^'\n]{0,200}'|"[^"\n]{0,200}"|`[^`\n]{0,200}`)(?!\w)""")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,:]\d+)*(?![\w])")
# "ValueError: ...", "httpx.InvalidURL: ...", "Error: ...", "error: ...", "FATAL: ..." at the start of a line:
# a name ending like an exception, a module-qualified class, or a bare error word.
_PREFIX = re.compile(
    r"^[ \t]*(?:(?:[A-Za-z_]\w*\.)*(?P<name>[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt|Fault))"
    r"|(?:[a-z_]\w*\.)+(?P<qualified>[A-Z]\w*)|(?P<word>[Ee]rror|ERROR|[Ff]atal|FATAL|[Ee]xception))[ \t]*:[ \t]*",
    re.MULTILINE,
)


def words(text: str) -> list[str]:
    """Lowercase stemmed words of ``text`` in order, identifiers split, ``*`` kept; no stop word is dropped."""
    out: list[str] = []
    for word in _WORD.findall(text):
        if word == WILDCARD:
            out.append(word)
        else:
            out.extend(stem(p) for p in identifier_parts(word) if p.isascii())
    return out


def _literal_body(token: str) -> str:
    """The text of one string token without its prefix and quotes, placeholders as ``*``."""
    prefix = _STRING_PREFIX.match(token)
    body = token[prefix.end() if prefix else 0 :]
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    body = body[len(quote) : len(body) - len(quote)]
    body = _FORMAT_FIELD.sub(" * ", body)
    body = _PERCENT_FIELD.sub(" * ", body)
    return body.replace("\\n", " ").replace("\\t", " ")


def _string_runs(code: str) -> list[str]:
    """The string literals of ``code``, adjacent ones (implicit concatenation) joined; [] if it cannot be read."""
    runs: list[str] = []
    current: list[str] = []
    skip = {pytokenize.NL, pytokenize.NEWLINE, pytokenize.COMMENT, pytokenize.INDENT, pytokenize.DEDENT}
    try:
        for tok in pytokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == pytokenize.STRING:
                current.append(_literal_body(tok.string))
            elif tok.type not in skip and current:
                runs.append("".join(current))
                current = []
    except (pytokenize.TokenError, SyntaxError, ValueError):
        pass  # a fragment that does not tokenize to its end: keep what was read
    if current:
        runs.append("".join(current))
    return runs


def templates(code: str) -> list[list[str]]:
    """Message templates of a code chunk: each string literal with two or more words, as :func:`words`.

    Docstrings are literals too; they are kept (a message may quote one) but only their first
    ``MAX_TEMPLATE_WORDS`` words.
    """
    out: list[list[str]] = []
    for run in _string_runs(code):
        w = words(run)[:MAX_TEMPLATE_WORDS]
        if sum(1 for x in w if x != WILDCARD) >= 2:
            out.append(w)
        if len(out) >= MAX_TEMPLATES:
            break
    return out


def template_text(code: str) -> str:
    """What the store keeps for a chunk: one template a line, words separated by spaces."""
    return "\n".join(" ".join(t) for t in templates(code))


@dataclass(frozen=True, slots=True)
class Message:
    """A query read as a pasted error message."""

    exception: str | None  # "ValueError", "InvalidURL", "Error", ...
    words: list[str]  # the message's words, its quoted values and numbers as ``*``
    text: str  # the message with its values removed (what the lexical search gets)


def parse_message(query: str) -> Message | None:
    """The query as an error message, or None if it does not look like one.

    It looks like one when a line starts with an error prefix (``ValueError:``, ``Error:``) or when it
    quotes a value; the last such line of a pasted traceback is the message.
    """
    prefixes = list(_PREFIX.finditer(query))
    if prefixes:
        last = prefixes[-1]
        exception: str | None = last.group("name") or last.group("qualified") or last.group("word")
        body = query[last.end() :].split("\n", 1)[0]
    elif _QUOTED.search(query):
        exception, body = None, query
    else:
        return None
    masked = _NUMBER.sub(" * ", _QUOTED.sub(" * ", body))
    message_words = words(masked)
    if sum(1 for w in message_words if w != WILDCARD) < 2:
        return None
    text = " ".join(w for w in _WORD.findall(masked) if w != WILDCARD)
    return Message(exception, message_words, text)


def _pairs(seq: list[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.pairwise(seq) if not (a == WILDCARD and b == WILDCARD)}


def match_score(template: list[str], message: list[str]) -> float:
    """How well ``message`` fills ``template``: shared words plus shared adjacent pairs, times the share of the
    template's words the message has (a template is matched by a message that contains all of it)."""
    t_words = {w for w in template if w != WILDCARD}
    if not t_words:
        return 0.0
    shared = t_words.intersection(message)
    if not shared:
        return 0.0
    pairs = len(_pairs(template) & _pairs(message))
    return (len(shared) + pairs) * len(shared) / len(t_words)


def best_match(text: str, message: list[str]) -> float:
    """The best :func:`match_score` of ``message`` over the stored templates ``text`` of one chunk."""
    return max((match_score(line.split(), message) for line in text.splitlines()), default=0.0)
