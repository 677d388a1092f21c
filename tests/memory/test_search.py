"""Search with the real default model: pasted error messages, behaviour questions, identifiers, BM25-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.memory.embeddings import Embedder
from api.memory.kb import KnowledgeBase
from api.memory.store import SQLiteStore
from api.memory.tokens import names_code

from .samples import FILES

CODECS = '''
class UnknownEncoding(LookupError):
    """Raised for an encoding name that is not registered (unknown encoding)."""


def lookup(name):
    if name not in REGISTRY:
        raise UnknownEncoding(f"unknown encoding {name!r}")
    return REGISTRY[name]


def describe_encoding(name):
    """Unknown encoding names, encoding aliases and the encoding registry, explained for the help page."""
    return f"{name}: see the encoding registry"


def check_option(value, options):
    if value not in options:
        raise ValueError(f"{value!r} is not a valid option")
    return value


def list_options(options):
    """The valid option list: every valid option, one option a line, so a user can choose a valid option."""
    return "\\n".join(sorted(options))


def open_archive(path):
    try:
        return _open(path)
    except OSError as exc:
        raise ArchiveError(_("cannot open {path!r}: {reason}").format(path=path, reason=exc.strerror)) from None
'''


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeBase]:
    store = SQLiteStore(tmp_path / "kb.db")
    kb = KnowledgeBase(store, embedder)
    kb.add("pkg/codecs.py", CODECS)
    kb.add("pkg/files.py", FILES)
    yield kb
    store.close()


def top(kb: KnowledgeBase, query: str) -> str:
    hits = kb.search(query, 3).hits
    assert hits, query
    return hits[0].chunk.name


@pytest.mark.parametrize("hybrid", [True, False], ids=["hybrid", "bm25"])
def test_a_pasted_error_message_finds_the_code_that_raises_it(kb: KnowledgeBase, hybrid: bool) -> None:
    kb = kb if hybrid else KnowledgeBase(kb.store)  # the literal index works without vectors too
    # The class definition says "unknown encoding" too; the message's template is in lookup.
    assert top(kb, "pkg.codecs.UnknownEncoding: unknown encoding 'latin-9'") == "lookup"
    # Stop words are the phrase: "is not a valid option" beats a docstring full of "valid option".
    assert top(kb, "ValueError: 'sizes' is not a valid option") == "check_option"
    # The user's values (a long path, an errno text) do not sink the template.
    query = "ArchiveError: cannot open '/home/me/Downloads/backup-2024-01-01.tar.gz': Permission denied"
    assert top(kb, query) == "open_archive"
    found = kb.search(query, 3).hits[0]
    assert found.literal_rank == 1


def test_a_question_in_other_words_finds_its_code(kb: KnowledgeBase) -> None:
    found = kb.search("how do I avoid half-written output when the process crashes", 3)
    assert found.mode == "hybrid"
    assert found.hits[0].chunk.name == "atomic_write" and found.hits[0].bm25_rank is None
    assert KnowledgeBase(kb.store).search("avoid half-written output when the process crashes", 3).hits == []


def test_identifiers_still_rank_their_definition_first(kb: KnowledgeBase) -> None:
    assert top(kb, "parse_iso_duration") == "parse_iso_duration"
    assert top(kb, "ParseISODuration") == "parse_iso_duration"
    assert names_code("QueryParams merge") and names_code("sync_auth_flow") and names_code("Client.send()")
    assert not names_code("how are retries handled") and not names_code("")
    assert not names_code("read proxy settings from variables such as HTTP_PROXY and NO_PROXY")  # a sentence


def test_indexing_stores_first_and_embeds_in_bulk(tmp_path: Path, embedder: Embedder) -> None:
    store = SQLiteStore(tmp_path / "kb.db")
    kb = KnowledgeBase(store, embedder)
    assert kb.add("pkg/files.py", FILES, embed=False).embedded == 0
    assert kb.pending_vectors() == 3 and kb.search("atomic_write", 1).hits  # BM25 finds it meanwhile
    seen: list[int] = []
    assert kb.embed_missing(batch=2, progress=seen.append) == 3
    assert seen == [2, 1] and kb.pending_vectors() == 0 and store.stats(embedder.name).vectors == 3
    store.close()


class Bar:
    """Records what index_path reports (a tqdm bar in the CLI)."""

    def __init__(self, bars: list[Bar], description: str, total: int) -> None:
        self.description, self.total, self.done, self.closed = description, total, 0, False
        bars.append(self)

    def update(self, n: int = 1) -> None:
        self.done += n

    def close(self) -> None:
        self.closed = True


def test_index_shows_progress_for_files_then_vectors(tmp_path: Path, embedder: Embedder) -> None:
    from api.memory.indexer import index_path

    (tmp_path / "repo").mkdir()
    for i in range(3):
        (tmp_path / "repo" / f"m{i}.py").write_text(FILES.replace("atomic_write", f"atomic_write_{i}"))
    store = SQLiteStore(tmp_path / "kb.db")
    bars: list[Bar] = []
    summary = index_path(KnowledgeBase(store, embedder), tmp_path / "repo", progress=lambda d, t: Bar(bars, d, t))
    assert [(b.description, b.total, b.done, b.closed) for b in bars] == [
        ("indexing", 3, 3, True),
        ("embedding (local:all-MiniLM-L6-v2)", 9, 9, True),
    ]
    assert summary.embedded == 9 and summary.embedding_seconds > 0
    bars.clear()
    index_path(KnowledgeBase(store, embedder), tmp_path / "repo", progress=lambda d, t: Bar(bars, d, t))
    assert [b.description for b in bars] == ["indexing"]  # nothing new: no vector to make, no second bar
    store.close()
