"""The knowledge base: idempotent add/replace of documents and hybrid (BM25 + vector) search."""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .chunking import chunk_document
from .embeddings import Embedder, EmbeddingError, make_embedder
from .messages import Message, best_match, parse_message
from .settings import MemorySettings
from .store import SHARED, SQLiteStore, Store, StoredChunk, StoreError
from .tokens import names_code, query_tokens

log = logging.getLogger(__name__)

CHUNKER_VERSION = "3"  # bump when chunking changes, so re-indexing replaces old chunks
CANDIDATES = 50  # depth of each ranking fed to the fusion
# Threads that embed queries beside the lexical search; daemon-like, they end with the process.
_QUERY_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="query-embedding")

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
    literal_rank: int | None = None  # rank among the chunks whose string literals match a pasted error message


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
    def __init__(self, store: Store, embedder: Embedder | None = None, warnings: Sequence[str] = ()) -> None:
        self.store = store
        self.embedder = embedder
        self.warnings = list(warnings)  # why search is not what the settings asked for (shown by /stats)

    @property
    def model(self) -> str | None:
        return self.embedder.name if self.embedder else None

    def add(
        self,
        source: str,
        content: str,
        kind: str | None = None,
        embed: bool = True,
        tenant: str = SHARED,
        origin: str = "",
    ) -> AddResult:
        """Add or replace ``tenant``'s ``source``; a no-op when its content (and the chunker) did not change.

        ``origin`` is the folder whose indexing stored it ("" for a document added otherwise): pruning that
        folder's index may delete it, nothing else does. An unchanged document takes the new origin.

        The chunks are stored even if the embedder fails (or ``embed`` is False); their vectors are filled in
        later by :meth:`embed_missing` (the CLI's ``index`` and ``serve`` call it), so no document is lost to an
        outage, and bulk indexing embeds in large length-sorted batches.
        """
        source, content = clean_text(source), clean_text(content)
        digest = document_hash(content, kind)
        previous = self.store.document(source, tenant)
        if previous is not None and previous[0] == digest:
            if origin and previous[2] != origin:
                self.store.set_origin(source, tenant, origin)
            return AddResult(source, "unchanged", chunks=previous[1], embedded=0)
        chunks = chunk_document(source, content, kind)
        vectors: dict[str, np.ndarray] = {}
        warning = None
        if self.embedder is not None and embed:
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
        self.store.replace_document(source, digest, chunks, vectors, self.model, tenant, origin)
        status: Status = "added" if previous is None else "replaced"
        return AddResult(source, status, chunks=len(chunks), embedded=len(vectors), warning=warning)

    def delete(self, source: str, tenant: str = SHARED) -> int | None:
        return self.store.delete_document(source, tenant)

    def pending_vectors(self) -> int:
        """How many chunks have no vector for the current model yet."""
        return self.store.count_without_vectors(self.embedder.name) if self.embedder else 0

    def embed_missing(
        self,
        batch: int = 512,
        progress: Callable[[int], object] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Embed every chunk that has no vector for the current model; returns how many were embedded.

        ``progress`` is called with the count of each committed batch; ``stop`` ends the loop between batches.
        """
        if self.embedder is None:
            return 0
        done = 0
        while not (stop and stop.is_set()) and (rows := self.store.chunks_without_vectors(self.embedder.name, batch)):
            matrix = self.embedder.embed([embedding_text(source, name, text) for _, source, name, text in rows])
            self.store.put_vectors(self.embedder.name, {row[0]: matrix[i] for i, row in enumerate(rows)})
            done += len(rows)
            if progress:
                progress(len(rows))
        return done

    def search(self, query: str, top_k: int, tenant: str | None = None) -> SearchResult:
        """The ``top_k`` best chunks for ``query`` among the shared base's and ``tenant``'s: BM25, vectors and,
        for a pasted error message, the string literals it was made from, fused by weighted reciprocal rank
        fusion."""
        query = clean_text(query)
        scope = (SHARED, tenant) if tenant else (SHARED,)
        started = time.perf_counter()
        # The query's embedding (numpy, which releases the GIL) runs while SQLite does the lexical searches.
        embedding = _QUERY_POOL.submit(self.embedder.embed, [query]) if self.embedder is not None else None
        message = parse_message(query)
        # An error message's quoted values and numbers are the user's, not the code's: leave them out.
        tokens = query_tokens(self._lexical_text(query, message))
        lexical = self.store.lexical_search(tokens, CANDIDATES, scope) if tokens else []
        literal = self._literal_ranking(message, scope) if message else []
        warnings: list[str] = []
        vector: list[tuple[int, float]] = []
        if self.embedder is not None and embedding is not None:
            try:
                vector = self.store.vector_search(self.embedder.name, embedding.result()[0], CANDIDATES, scope)
            except EmbeddingError as exc:
                warnings.append(f"vector search unavailable, BM25 only: {exc}")
                log.warning("query embedding failed: %s", exc)
        mode: Literal["bm25", "hybrid"] = "hybrid" if vector else "bm25"
        ranked: list[tuple[int, float, int | None, int | None, int | None]]
        if not vector and not literal:
            ranked = [(cid, score, rank, None, None) for rank, (cid, score) in enumerate(lexical[:top_k], 1)]
        else:
            weights = FUSION_ERROR if message else FUSION_CODE if names_code(query) else FUSION
            ranked = fuse(weights, lexical, vector, literal)[:top_k]
        chunks = self.store.fetch([cid for cid, *_ in ranked])
        # A chunk deleted between the two reads is simply left out.
        result = [Hit(chunks[cid], score, b, v, m) for cid, score, b, v, m in ranked if cid in chunks]
        elapsed_ms = 1000 * (time.perf_counter() - started)
        log.debug("query %r: %d hits, %s, %.1f ms", query[:80], len(result), mode, elapsed_ms)
        return SearchResult(hits=result, mode=mode, warnings=warnings)

    @staticmethod
    def _lexical_text(query: str, message: Message | None) -> str:
        if message is None:
            return query
        exception = message.exception or ""
        # "ValueError" or "Error" says little; "TooManyRedirects" names what the code raises.
        specific = exception if exception not in GENERIC_EXCEPTIONS else ""
        return f"{specific} {message.text}"

    def _literal_ranking(self, message: Message, scope: Sequence[str]) -> list[tuple[int, float]]:
        """Chunks whose string literals the message fills best, best first (weak matches left out)."""
        scored = [
            (cid, score)
            for cid, text in self.store.literal_search(message.words, CANDIDATES, scope)
            if (score := best_match(text, message.words)) >= MIN_LITERAL_SCORE
        ]
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored


@dataclass(frozen=True, slots=True)
class Fusion:
    """Weights of the rankings in reciprocal rank fusion: score = sum of weight / (k + rank)."""

    bm25: float
    vector: float
    literal: float
    k: float = 60.0


FUSION = Fusion(bm25=1.0, vector=1.5, literal=1.0)  # a sentence: its meaning more than its words
FUSION_CODE = Fusion(bm25=1.0, vector=0.5, literal=1.0)  # for a short query that spells an identifier
FUSION_ERROR = Fusion(bm25=1.0, vector=1.0, literal=2.0)  # for a query read as an error message
MIN_LITERAL_SCORE = 2.0  # e.g. two shared words, or one word and its pair with a placeholder, covering the template
GENERIC_EXCEPTIONS = frozenset(name for name in dir(builtins) if name[:1].isupper()) | {"Error", "error", "ERROR"}


def fuse(
    weights: Fusion,
    lexical: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    literal: Sequence[tuple[int, float]],
) -> list[tuple[int, float, int | None, int | None, int | None]]:
    """(chunk id, fused score, bm25 rank, vector rank, literal rank), best first."""
    ranks: dict[int, list[int | None]] = {}
    for position, ranking in enumerate((lexical, vector, literal)):
        for rank, (cid, _) in enumerate(ranking, 1):
            ranks.setdefault(cid, [None, None, None])[position] = rank
    fused = []
    for cid, (b, v, m) in ranks.items():
        score = sum(w / (weights.k + r) for w, r in ((weights.bm25, b), (weights.vector, v), (weights.literal, m)) if r)
        fused.append((cid, score, b, v, m))
    fused.sort(key=lambda item: (-item[1], item[0]))
    return fused


class VectorFiller:
    """Embeds, on a background thread, the chunks that have no vector yet (``serve`` runs one).

    ``index --no-embed``, documents added while the model was failing, or a change of model leave chunks
    without vectors; BM25 finds them meanwhile, and hybrid search covers them as their vectors land. It works in
    small batches, so a shutdown never waits for more than one of them (about a second).
    """

    BATCH = 32

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.kb.embedder is None:
            return
        self._thread = threading.Thread(target=self._run, name="vector-filler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pending = self.kb.pending_vectors()
            if not pending:
                return
            log.info("embedding %d chunks that have no vector yet (%s)", pending, self.kb.model)
            started = time.perf_counter()
            done = self.kb.embed_missing(batch=self.BATCH, stop=self._stop)
            elapsed = time.perf_counter() - started
            log.info("embedded %d chunks in %.1f s (%.1f chunks/s)", done, elapsed, done / elapsed if elapsed else 0)
        except (EmbeddingError, StoreError) as exc:
            warning = f"some chunks have no vector yet (BM25 still finds them): {exc}"
            log.warning("%s", warning)
            self.kb.warnings.append(warning)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def open_knowledge_base(settings: MemorySettings) -> KnowledgeBase:
    """The knowledge base the settings describe; raises StoreError with a clear message.

    A model that cannot be loaded (package missing, file missing or corrupt) leaves search BM25-only with a
    warning in the log and in ``warnings`` (``/stats``) rather than stopping the service: the lexical index
    alone still answers, and a restart loop would answer nothing.
    """
    store = SQLiteStore(settings.memory_db_path, busy_timeout=settings.memory_busy_timeout)
    try:
        embedder = make_embedder(settings.embedding_model, settings.embedding_runtime)
    except EmbeddingError as exc:
        warning = f"vector search is off, BM25 only: {exc}"
        log.warning("%s", warning)
        return KnowledgeBase(store, None, [warning])
    except BaseException:
        store.close()
        raise
    return KnowledgeBase(store, embedder)
