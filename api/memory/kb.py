"""The knowledge base: idempotent add/replace of documents and hybrid (BM25 + vector) search."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .chunking import chunk_document
from .embeddings import Embedder, EmbeddingError, make_embedder
from .settings import MemorySettings
from .store import SQLiteStore, Store, StoredChunk
from .tokens import query_tokens

log = logging.getLogger(__name__)

CHUNKER_VERSION = "2"  # bump when chunking changes, so re-indexing replaces old chunks
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
CANDIDATES = 50  # depth of each ranking fed to the fusion

Status = Literal["added", "replaced", "unchanged"]


@dataclass(frozen=True, slots=True)
class AddResult:
    source: str
    status: Status
    chunks: int
    embedded: int  # chunks embedded by this call (0 for reused vectors or no embedder)
    warning: str | None = None


@dataclass(slots=True)
class Hit:
    chunk: StoredChunk
    score: float
    bm25_rank: int | None = None
    vector_rank: int | None = None


@dataclass(slots=True)
class SearchResult:
    hits: list[Hit]
    mode: Literal["bm25", "hybrid"]
    warnings: list[str] = field(default_factory=list)


def document_hash(content: str, kind: str | None) -> str:
    return hashlib.sha256(f"{CHUNKER_VERSION}\0{kind or ''}\0{content}".encode()).hexdigest()


def clean_text(text: str) -> str:
    """``text`` without lone surrogates (which JSON allows but UTF-8 and SQLite do not) or NUL characters."""
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "")


def embedding_text(source: str, name: str, content: str) -> str:
    """What is embedded for a chunk: where it lives (qualified name, file) and its text."""
    label = f"{name} ({source})" if name else source
    return f"{label}\n{content}"


class KnowledgeBase:
    def __init__(self, store: Store, embedder: Embedder | None = None) -> None:
        self.store = store
        self.embedder = embedder

    @property
    def model(self) -> str | None:
        return self.embedder.name if self.embedder else None

    def add(self, source: str, content: str, kind: str | None = None) -> AddResult:
        """Add or replace ``source``; a no-op when its content (and the chunker) did not change.

        The chunks are stored even if the embedder fails; their vectors are filled in later by
        :meth:`embed_missing` (the CLI's ``index`` calls it), so no document is lost to an outage.
        """
        source, content = clean_text(source), clean_text(content)
        digest = document_hash(content, kind)
        previous = self.store.document(source)
        if previous is not None and previous[0] == digest:
            return AddResult(source, "unchanged", chunks=previous[1], embedded=0)
        chunks = chunk_document(source, content, kind)
        vectors: dict[str, np.ndarray] = {}
        warning = None
        if self.embedder is not None:
            keys = {chunk.key(source): chunk for chunk in chunks}
            needed = self.store.keys_without_vectors(self.embedder.name, list(keys))
            todo = [(key, chunk) for key, chunk in keys.items() if key in needed]
            if todo:
                try:
                    matrix = self.embedder.embed([embedding_text(source, c.name, c.content) for _, c in todo])
                    vectors = {key: matrix[i] for i, (key, _) in enumerate(todo)}
                except EmbeddingError as exc:
                    warning = f"stored without vectors (search falls back to BM25 for it): {exc}"
                    log.warning("%s: %s", source, warning)
        self.store.replace_document(source, digest, chunks, vectors, self.model)
        status: Status = "added" if previous is None else "replaced"
        return AddResult(source, status, chunks=len(chunks), embedded=len(vectors), warning=warning)

    def delete(self, source: str) -> int | None:
        return self.store.delete_document(source)

    def embed_missing(self, batch: int = 256) -> int:
        """Embed every chunk that has no vector for the current model; returns how many were embedded."""
        if self.embedder is None:
            return 0
        done = 0
        while rows := self.store.chunks_without_vectors(self.embedder.name, batch):
            matrix = self.embedder.embed([embedding_text(source, name, text) for _, source, name, text in rows])
            self.store.put_vectors(self.embedder.name, {row[0]: matrix[i] for i, row in enumerate(rows)})
            done += len(rows)
        return done

    def search(self, query: str, top_k: int) -> SearchResult:
        query = clean_text(query)
        started = time.perf_counter()
        tokens = query_tokens(query)
        lexical = self.store.lexical_search(tokens, CANDIDATES) if tokens else []
        warnings: list[str] = []
        vector: list[tuple[int, float]] = []
        if self.embedder is not None:
            try:
                q = self.embedder.embed([query])[0]
                vector = self.store.vector_search(self.embedder.name, q, CANDIDATES)
            except EmbeddingError as exc:
                warnings.append(f"vector search unavailable, BM25 only: {exc}")
                log.warning("query embedding failed: %s", exc)
        ranked: list[tuple[int, float, int | None, int | None]]  # (chunk id, score, bm25 rank, vector rank)
        mode: Literal["bm25", "hybrid"]
        if not vector:
            ranked = [(cid, score, rank, None) for rank, (cid, score) in enumerate(lexical[:top_k], 1)]
            mode = "bm25"
        else:
            bm25_ranks = {cid: rank for rank, (cid, _) in enumerate(lexical, 1)}
            vector_ranks = {cid: rank for rank, (cid, _) in enumerate(vector, 1)}
            fused = []
            for cid in bm25_ranks.keys() | vector_ranks.keys():
                b, v = bm25_ranks.get(cid), vector_ranks.get(cid)
                score = sum(1.0 / (RRF_K + r) for r in (b, v) if r is not None)
                fused.append((cid, score, b, v))
            fused.sort(key=lambda item: (-item[1], item[0]))
            ranked = fused[:top_k]
            mode = "hybrid"
        chunks = self.store.fetch([cid for cid, *_ in ranked])
        # A chunk deleted between the two reads is simply left out.
        result = [Hit(chunks[cid], score, b, v) for cid, score, b, v in ranked if cid in chunks]
        elapsed_ms = 1000 * (time.perf_counter() - started)
        log.debug("query %r: %d hits, %s, %.1f ms", query[:80], len(result), mode, elapsed_ms)
        return SearchResult(hits=result, mode=mode, warnings=warnings)


def open_knowledge_base(settings: MemorySettings) -> KnowledgeBase:
    """The knowledge base the settings describe; raises StoreError/EmbeddingError with a clear message."""
    store = SQLiteStore(settings.memory_db_path, busy_timeout=settings.memory_busy_timeout)
    try:
        return KnowledgeBase(store, make_embedder(settings.embedding_model))
    except Exception:
        store.close()
        raise
