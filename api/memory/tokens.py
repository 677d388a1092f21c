"""Identifier-aware tokenization shared by the indexer and the query side.

``parse_iso_duration``, ``ParseISODuration`` and "parse iso duration" all yield the words ``parse iso duration``;
a compound identifier also yields its joined form (``parseisoduration``) so an exact identifier query ranks its
definition first. Tokens are lightly stemmed lowercase ASCII letters and digits only, so they are always safe
inside an FTS5 string.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD_RE = re.compile(r"[^\W_]+(?:_+[^\W_]+)*")
# Split camelCase / PascalCase / acronyms / digits: "ParseISODuration2" -> Parse, ISO, Duration, 2
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SAFE_RE = re.compile(r"[^a-z0-9]+")

MAX_TOKEN_LENGTH = 64

# Words that carry no meaning in a question about code; dropped from queries only (documents keep them).
QUERY_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "should",
        "that",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "we",
        "you",
        "my",
        "me",
        "our",
        "use",
        "used",
        "using",
        "does",
        "get",
        "gets",
        "into",
        "there",
        "any",
        "all",
        "some",
    ]
)


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def identifier_parts(word: str) -> list[str]:
    """The lowercase sub-words of one identifier, e.g. ``HTTPSConnection_pool`` -> https, connection, pool."""
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(m.group(0).lower() for m in _CAMEL_RE.finditer(piece))
    return parts


def stem(token: str) -> str:
    """A light suffix stripper applied alike to documents and queries (files/file, parsing/parse/parsed)."""
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        token = token[:-3] + "y"
    elif token.endswith("sses"):
        token = token[:-2]
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    if token.endswith("ing") and len(token) > 5:
        token = token[:-3]
    elif token.endswith("ed") and len(token) > 4:
        token = token[:-2]
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


@lru_cache(maxsize=200_000)
def _expand(word: str) -> tuple[str, ...]:
    """One word's stemmed sub-words, plus its joined form if it had several (cached: words repeat a lot)."""
    if not word.isascii():
        word = _ascii_fold(word)
    parts = [p for p in identifier_parts(word) if len(p) <= MAX_TOKEN_LENGTH]
    out = [stem(p) for p in parts]
    if len(parts) > 1:
        joined = _SAFE_RE.sub("", word.lower())
        if len(joined) <= MAX_TOKEN_LENGTH:
            out.append(joined)
    return tuple(out)


def tokenize(text: str) -> list[str]:
    """Expanded tokens of ``text`` in order: each word's sub-words, then its joined form if it had several."""
    out: list[str] = []
    for word in _WORD_RE.findall(text):
        out.extend(_expand(word))
    return out


def index_text(text: str) -> str:
    """The text stored in the FTS5 column: expanded tokens separated by spaces."""
    return " ".join(tokenize(text))


def query_tokens(query: str, max_tokens: int = 32) -> list[str]:
    """Distinct meaningful tokens of a query, in order (stop words dropped unless nothing else is left)."""
    tokens = tokenize(" ".join(w for w in _WORD_RE.findall(query) if w.lower() not in QUERY_STOPWORDS))
    kept = tokens or tokenize(query)
    seen: dict[str, None] = {}
    for token in kept:
        seen.setdefault(token, None)
    return list(seen)[:max_tokens]


# snake_case, _private, camelCase, PascalCase with two capitals, ACRONYMWord, dotted.names
_CODE_WORD_RE = re.compile(
    r"(?:[A-Za-z0-9]+_[A-Za-z0-9_]*|_[A-Za-z0-9_]+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*|[A-Z]{2,}[a-z]\w*|"
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?"
)


def names_code(query: str, max_words: int = 4) -> bool:
    """Whether ``query`` is a short one that spells an identifier (``sync_auth_flow``, ``QueryParams merge``).

    Such a query is answered by the name column of BM25; a sentence embedding of it says little.
    """
    words = query.split()
    return 0 < len(words) <= max_words and any(_CODE_WORD_RE.fullmatch(w.strip(".,:;()")) for w in words)
