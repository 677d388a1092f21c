"""Split a document into retrievable chunks that keep their source path and line range.

Python source is split with :mod:`ast`: one chunk per function or method (qualified name, decorators and
docstring included), one per class holding its header, docstring and class-level statements, and one for
the module's own top-level code. Anything else (and Python that does not parse) is split by paragraphs,
packed up to a size limit, with the previous chunk's last paragraph repeated as overlap. Whatever the text (a
minified file, a document with no line breaks), no chunk is longer than ``MAX_STORED_CHUNK_CHARS``: a longer one
is cut, at line breaks where it has them.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

MAX_CHUNK_CHARS = 1500
MAX_CHUNK_LINES = 60
MAX_DEF_LINES = 200  # a longer function is split into windows of this many lines
MAX_STORED_CHUNK_CHARS = 6000  # the hard bound of any chunk (a search answers at most top_k of them)
PYTHON_SUFFIXES = (".py", ".pyi")


@dataclass(frozen=True, slots=True)
class Chunk:
    content: str
    start_line: int  # 1-based, inclusive
    end_line: int
    kind: str  # "function", "method", "class", "module", "text"
    name: str = ""  # qualified name for code ("Client.send"), "" for text

    def key(self, source: str) -> str:
        """Identity of this chunk in ``source``: its vector is stored under this key (so an unchanged chunk
        is never embedded twice)."""
        return hashlib.sha256(f"{source}\0{self.kind}\0{self.name}\0{self.content}".encode()).hexdigest()


def chunk_document(source: str, text: str, kind: str | None = None) -> list[Chunk]:
    """Chunks of ``text``; ``kind`` is "python", "text" or None to guess from the ``source`` suffix."""
    is_python = kind == "python" or (kind is None and source.endswith(PYTHON_SUFFIXES))
    chunks = chunk_python(text) if is_python else None
    if chunks is None:
        chunks = chunk_text(text)
    return [piece for chunk in chunks for piece in bounded(chunk)]


def bounded(chunk: Chunk, limit: int = MAX_STORED_CHUNK_CHARS) -> Iterator[Chunk]:
    """``chunk`` in pieces of at most ``limit`` characters, cut after a line break where one is near enough
    (within the piece's last half), else inside the line; each piece keeps the lines it spans."""
    if len(chunk.content) <= limit:
        yield chunk
        return
    text, line, part = chunk.content, chunk.start_line, 0
    while text:
        cut = len(text) if len(text) <= limit else text.rfind("\n", limit // 2, limit) + 1 or limit
        piece, text = text[:cut], text[cut:]
        part += 1
        end = line + piece.count("\n", 0, len(piece) - 1)
        name = chunk.name if part == 1 or not chunk.name else f"{chunk.name} (part {part})"
        if piece.strip():
            yield Chunk(piece.rstrip("\n"), line, end, chunk.kind, name)
        line = end + (1 if piece.endswith("\n") else 0)


def _def_start(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])  # type: ignore[attr-defined]


def _slice(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start - 1 : end])


def chunk_python(text: str) -> list[Chunk] | None:
    """Chunks of Python source, or None if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines = text.splitlines()
    chunks: list[Chunk] = []
    _walk_body(tree.body, lines, prefix="", in_class=False, out=chunks)
    # The module's own code: everything outside the functions and classes.
    covered = {ln for c in chunks for ln in range(c.start_line, c.end_line + 1)}
    module_lines = [i for i in range(1, len(lines) + 1) if i not in covered]
    chunks.extend(_line_runs(lines, module_lines, kind="module"))
    chunks.sort(key=lambda c: (c.start_line, c.end_line))
    return chunks


def _walk_body(body: list[ast.stmt], lines: list[str], prefix: str, in_class: bool, out: list[Chunk]) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start, end = _def_start(node), node.end_lineno or node.lineno
            name = prefix + node.name
            kind = "method" if in_class else "function"
            if end - start + 1 <= MAX_DEF_LINES:
                out.append(Chunk(_slice(lines, start, end), start, end, kind, name))
            else:
                step = MAX_DEF_LINES - 20
                for i, s in enumerate(range(start, end + 1, step)):
                    e = min(s + MAX_DEF_LINES - 1, end)
                    label = name if i == 0 else f"{name} (part {i + 1})"
                    out.append(Chunk(_slice(lines, s, e), s, e, kind, label))
                    if e == end:
                        break
        elif isinstance(node, ast.ClassDef):
            start, end = _def_start(node), node.end_lineno or node.lineno
            name = prefix + node.name
            inner: list[Chunk] = []
            _walk_body(node.body, lines, prefix=name + ".", in_class=True, out=inner)
            covered = {ln for c in inner for ln in range(c.start_line, c.end_line + 1)}
            own = [i for i in range(start, end + 1) if i not in covered]
            for piece in _line_runs(lines, own, kind="class", merge=True):
                out.append(Chunk(piece.content, piece.start_line, piece.end_line, "class", name))
            out.extend(inner)


def _line_runs(lines: list[str], numbers: list[int], kind: str, merge: bool = False) -> Iterator[Chunk]:
    """Chunks from the given (sorted) line numbers, dropping blank runs and capping size.

    With ``merge`` the lines form one logical unit (a class header with its methods cut out) and gaps
    between them are closed; otherwise each contiguous run is its own piece.
    """
    runs: list[list[int]] = []
    for n in numbers:
        if runs and (merge or n == runs[-1][-1] + 1):
            runs[-1].append(n)
        else:
            runs.append([n])
    for run in runs:
        kept = [n for n in run if lines[n - 1].strip()]
        if not kept:
            continue
        for i in range(0, len(kept), MAX_CHUNK_LINES):
            part = kept[i : i + MAX_CHUNK_LINES]
            content = "\n".join(lines[n - 1] for n in part)
            yield Chunk(content, part[0], part[-1], kind)


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Paragraph chunks with a one-paragraph overlap; an over-long paragraph is cut by lines."""
    lines = text.splitlines()
    paragraphs: list[tuple[int, int]] = []  # (start, end) 1-based line numbers
    start: int | None = None
    for i, line in enumerate(lines, start=1):
        if line.strip():
            if start is None:
                start = i
        elif start is not None:
            paragraphs.append((start, i - 1))
            start = None
    if start is not None:
        paragraphs.append((start, len(lines)))
    # Cut paragraphs longer than the limit into line windows.
    pieces: list[tuple[int, int]] = []
    for s, e in paragraphs:
        while e - s + 1 > MAX_CHUNK_LINES or (s < e and len(_slice(lines, s, e)) > max_chars):
            cut = s
            size = 0
            while cut <= e and cut - s < MAX_CHUNK_LINES and size + len(lines[cut - 1]) + 1 <= max_chars:
                size += len(lines[cut - 1]) + 1
                cut += 1
            cut = max(cut, s + 1)
            pieces.append((s, cut - 1))
            s = cut
        pieces.append((s, e))
    chunks: list[Chunk] = []
    group: list[tuple[int, int]] = []
    size = 0
    for piece in pieces:
        piece_size = len(_slice(lines, *piece))
        if group and size + piece_size > max_chars:
            chunks.append(_text_chunk(lines, group))
            overlap = group[-1]
            group = [overlap] if len(_slice(lines, *overlap)) + piece_size <= max_chars else []
            size = sum(len(_slice(lines, *p)) for p in group)
        group.append(piece)
        size += piece_size
    if group:
        chunks.append(_text_chunk(lines, group))
    return chunks


def _text_chunk(lines: list[str], group: list[tuple[int, int]]) -> Chunk:
    start, end = group[0][0], group[-1][1]
    content = "\n\n".join(_slice(lines, s, e) for s, e in group)
    return Chunk(content, start, end, "text")
