"""Persistence for the knowledge base: the :class:`Store` protocol and its SQLite + FTS5 implementation.

One SQLite file holds the documents, their chunks, an FTS5 index over identifier-expanded tokens (BM25
ranking) and the chunks' vectors (float32 blobs keyed by chunk key, a hash of source + content, and model, so
an unchanged chunk is never embedded twice). Every document belongs to a tenant's namespace or to the shared base
(:data:`SHARED`), and remembers the folder that indexed it, if any (its ``origin``), so that pruning a folder's index
deletes only what indexing that folder stored. WAL mode lets readers run while one writer commits; writers
wait up to ``busy_timeout`` for each other, across threads and processes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .chunking import Chunk
from .messages import template_text
from .tokens import index_text, tokenize

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6  # 6: documents and chunks per tenant, documents' origin; 5: strings_fts; 4 and 5 upgrade in place
SHARED = ""  # the tenant of the shared base (what the operator indexes); every tenant's search includes it
# Column weights for bm25(): a hit in the qualified name counts most, then the path, then the body.
BM25_WEIGHTS = (4.0, 1.5, 1.0)
ROW_BUDGET = 3000  # at most about this many matching rows are scored per query (see _selective_tokens)


class StoreError(RuntimeError):
    """The store cannot serve the request; the message says why and what to do."""


class StoreBusyError(StoreError):
    """Another writer held the database longer than the busy timeout; retrying later will work."""


class StoreCorruptError(StoreError):
    """The database file is not a usable knowledge base."""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    source: str
    kind: str
    name: str
    start_line: int
    end_line: int
    content: str


@dataclass(frozen=True, slots=True)
class StoreStats:
    documents: int
    chunks: int
    vectors: int
    db_bytes: int


class Store(Protocol):
    """What the knowledge base needs from storage; implement it to move to another engine."""

    def document(self, source: str, tenant: str = SHARED) -> tuple[str, int, str] | None: ...

    def set_origin(self, source: str, tenant: str, origin: str) -> None: ...

    def replace_document(
        self,
        source: str,
        content_hash: str,
        chunks: Sequence[Chunk],
        vectors: Mapping[str, np.ndarray],
        model: str | None,
        tenant: str = SHARED,
        origin: str = "",
    ) -> None: ...

    def delete_document(self, source: str, tenant: str = SHARED) -> int | None: ...

    def sources(self, prefix: str = "", tenant: str = SHARED, origin: str | None = None) -> list[str]: ...

    def keys_without_vectors(self, model: str, hashes: Sequence[str]) -> set[str]: ...

    def chunks_without_vectors(self, model: str, limit: int) -> list[tuple[str, str, str, str]]: ...

    def count_without_vectors(self, model: str) -> int: ...

    def put_vectors(self, model: str, vectors: Mapping[str, np.ndarray]) -> None: ...

    def lexical_search(
        self, tokens: Sequence[str], limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, float]]: ...

    def literal_search(
        self, words: Sequence[str], limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, str]]: ...

    def vector_search(
        self, model: str, query: np.ndarray, limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, float]]: ...

    def fetch(self, ids: Sequence[int]) -> dict[int, StoredChunk]: ...

    def stats(self, model: str | None) -> StoreStats: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


_DOCUMENTS = """CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, source)
)"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', {SCHEMA_VERSION}), ('generation', 0);
{_DOCUMENTS};
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    content TEXT NOT NULL,
    chunk_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source);
CREATE INDEX IF NOT EXISTS chunks_by_key ON chunks(chunk_key);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(name, path, body, tokenize = 'unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE VIRTUAL TABLE IF NOT EXISTS strings_fts USING fts5(templates, tokenize = 'unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS strings_vocab USING fts5vocab(strings_fts, 'row');
CREATE TABLE IF NOT EXISTS vectors (
    chunk_key TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (chunk_key, model)
) WITHOUT ROWID;
"""


class SQLiteStore:
    """The default :class:`Store`: one SQLite file, FTS5 for BM25, numpy for cosine similarity.

    Each thread gets its own connection. The vector matrix of a model is cached in memory and reloaded when
    the ``generation`` counter (bumped by every write, from any process) moves.
    """

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._matrix_cache: dict[str, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("open"):
            conn = self._conn()
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                log.warning("%s: WAL mode unavailable; readers may wait for writers", self.path)
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            if version == 4:
                version = self._upgrade_from_4()
            if version == 5:
                version = self._upgrade_from_5()
            if version != SCHEMA_VERSION:
                raise StoreCorruptError(
                    f"{self.path} has schema version {version}, this code expects {SCHEMA_VERSION}; "
                    "move the file away and re-index"
                )

    def _upgrade_from_4(self) -> int:
        """Version 4 lacked the string literal index: build it from the stored chunks (nothing else changes)."""
        with self._transaction("upgrade") as conn:
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            if version == 4:  # another process may have upgraded it meanwhile
                rows = conn.execute("SELECT id, content FROM chunks WHERE kind != 'text'").fetchall()
                conn.executemany(
                    "INSERT INTO strings_fts(rowid, templates) VALUES (?, ?)",
                    ((cid, text) for cid, content in rows if (text := template_text(content))),
                )
                conn.execute("UPDATE meta SET value = 5 WHERE key = 'schema_version'")
                log.info("%s: upgraded to schema 5 (%d code chunks)", self.path, len(rows))
        return 5

    def _upgrade_from_5(self) -> int:
        """Version 5 had one namespace: its documents become the shared base's, with no origin (so no index prunes
        them until indexing a folder finds them among its files)."""
        with self._transaction("upgrade") as conn:
            if "tenant" not in {row[1] for row in conn.execute("PRAGMA table_info(chunks)")}:
                conn.execute("ALTER TABLE chunks ADD COLUMN tenant TEXT NOT NULL DEFAULT ''")
            if "tenant" not in {row[1] for row in conn.execute("PRAGMA table_info(documents)")}:
                conn.execute("ALTER TABLE documents RENAME TO documents_5")
                conn.execute(_DOCUMENTS)
                conn.execute(
                    "INSERT INTO documents(source, content_hash, chunks, updated_at) "
                    "SELECT source, content_hash, chunks, updated_at FROM documents_5"
                )
                conn.execute("DROP TABLE documents_5")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
            log.info("%s: upgraded to schema %d (tenants)", self.path, SCHEMA_VERSION)
        return SCHEMA_VERSION

    # -- connections and errors -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreBusyError(
                    f"knowledge base {self.path} is locked by another writer (waited {self.busy_timeout:g}s "
                    f"to {action}); retry later"
                ) from exc
            if "no such module: fts5" in text:
                raise StoreError("this SQLite build lacks FTS5; use a Python built with a current SQLite") from exc
            if "disk is full" in text:
                raise StoreError(
                    f"knowledge base {self.path}: the disk is full (or the database is at its size limit): cannot "
                    f"{action}, nothing was written; free some space and retry"
                ) from exc
            if "readonly" in text or "read-only" in text:
                raise StoreError(
                    f"knowledge base {self.path} is read-only (the file, its directory or its file system): cannot "
                    f"{action}, nothing was written; make it writable and retry"
                ) from exc
            if "malformed" in text or "not a database" in text:
                raise StoreCorruptError(self._corrupt_message(exc)) from exc
            raise StoreError(f"knowledge base {self.path}: cannot {action}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(self._corrupt_message(exc)) from exc

    def _corrupt_message(self, exc: Exception) -> str:
        return (
            f"knowledge base {self.path} is corrupt or not a knowledge base ({exc}); "
            "move it away (or delete it) and re-index: python -m api.memory index PATH"
        )

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._errors(action):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def optimize(self) -> None:
        """Merge the FTS5 index segments (after bulk indexing: faster queries)."""
        with self._transaction("optimize") as conn:
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
            conn.execute("INSERT INTO strings_fts(strings_fts) VALUES ('optimize')")

    # -- documents ------------------------------------------------------------------------------

    def document(self, source: str, tenant: str = SHARED) -> tuple[str, int, str] | None:
        """(content hash, chunk count, origin) of ``tenant``'s ``source``, or None."""
        with self._errors("read"):
            row = (
                self._conn()
                .execute(
                    "SELECT content_hash, chunks, origin FROM documents WHERE tenant = ? AND source = ?",
                    (tenant, source),
                )
                .fetchone()
            )
        return (row[0], int(row[1]), row[2]) if row else None

    def set_origin(self, source: str, tenant: str, origin: str) -> None:
        with self._transaction("write") as conn:
            conn.execute("UPDATE documents SET origin = ? WHERE tenant = ? AND source = ?", (origin, tenant, source))

    def sources(self, prefix: str = "", tenant: str = SHARED, origin: str | None = None) -> list[str]:
        """``tenant``'s sources starting with ``prefix`` (and, unless None, stored by indexing ``origin``)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._errors("read"):
            rows = self._conn().execute(
                "SELECT source FROM documents WHERE tenant = ? AND source LIKE ? ESCAPE '\\' "
                "AND (? IS NULL OR origin = ?) ORDER BY source",
                (tenant, escaped + "%", origin, origin),
            )
            return [r[0] for r in rows]

    def replace_document(
        self,
        source: str,
        content_hash: str,
        chunks: Sequence[Chunk],
        vectors: Mapping[str, np.ndarray],
        model: str | None,
        tenant: str = SHARED,
        origin: str = "",
    ) -> None:
        path_tokens = index_text(source)
        with self._transaction("write") as conn:
            _, old_hashes = self._delete(conn, source, tenant)
            for chunk in chunks:
                cur = conn.execute(
                    "INSERT INTO chunks(tenant, source, kind, name, start_line, end_line, content, chunk_key) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        source,
                        chunk.kind,
                        chunk.name,
                        chunk.start_line,
                        chunk.end_line,
                        chunk.content,
                        chunk.key(source),
                    ),
                )
                conn.execute(
                    "INSERT INTO chunks_fts(rowid, name, path, body) VALUES (?, ?, ?, ?)",
                    (cur.lastrowid, " ".join(tokenize(chunk.name)), path_tokens, index_text(chunk.content)),
                )
                if chunk.kind != "text" and (literals := template_text(chunk.content)):
                    conn.execute("INSERT INTO strings_fts(rowid, templates) VALUES (?, ?)", (cur.lastrowid, literals))
            conn.execute(
                "INSERT INTO documents(tenant, source, content_hash, chunks, updated_at, origin) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, source, content_hash, len(chunks), time.time(), origin),
            )
            if model and vectors:
                self._put_vectors(conn, model, vectors)
            self._drop_unused_vectors(conn, old_hashes)

    def delete_document(self, source: str, tenant: str = SHARED) -> int | None:
        with self._transaction("delete") as conn:
            count, hashes = self._delete(conn, source, tenant)
            self._drop_unused_vectors(conn, hashes)
            return count

    @staticmethod
    def _delete(conn: sqlite3.Connection, source: str, tenant: str) -> tuple[int | None, list[str]]:
        """Remove ``tenant``'s ``source``; returns its chunk count (None if absent) and its chunks' content hashes."""
        key = (tenant, source)
        row = conn.execute("SELECT chunks FROM documents WHERE tenant = ? AND source = ?", key).fetchone()
        if row is None:
            return None, []
        of_it = "SELECT id FROM chunks WHERE tenant = ? AND source = ?"
        hashes = [
            r[0] for r in conn.execute("SELECT DISTINCT chunk_key FROM chunks WHERE tenant = ? AND source = ?", key)
        ]
        conn.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({of_it})", key)
        conn.execute(f"DELETE FROM strings_fts WHERE rowid IN ({of_it})", key)
        conn.execute("DELETE FROM chunks WHERE tenant = ? AND source = ?", key)
        conn.execute("DELETE FROM documents WHERE tenant = ? AND source = ?", key)
        return int(row[0]), hashes

    @staticmethod
    def _drop_unused_vectors(conn: sqlite3.Connection, hashes: Sequence[str]) -> None:
        """Delete the vectors of ``hashes`` that no chunk uses any more."""
        conn.executemany(
            "DELETE FROM vectors WHERE chunk_key = ? AND NOT EXISTS "
            "(SELECT 1 FROM chunks WHERE chunks.chunk_key = vectors.chunk_key)",
            ((h,) for h in hashes),
        )

    # -- vectors --------------------------------------------------------------------------------

    def keys_without_vectors(self, model: str, hashes: Sequence[str]) -> set[str]:
        missing = set(hashes)
        if not missing:
            return missing
        with self._errors("read"):
            conn = self._conn()
            unique = list(missing)
            for i in range(0, len(unique), 500):
                batch = unique[i : i + 500]
                marks = ",".join("?" * len(batch))
                rows = conn.execute(
                    f"SELECT chunk_key FROM vectors WHERE model = ? AND chunk_key IN ({marks})",
                    (model, *batch),
                )
                missing.difference_update(r[0] for r in rows)
        return missing

    def chunks_without_vectors(self, model: str, limit: int) -> list[tuple[str, str, str, str]]:
        """Up to ``limit`` (key, source, name, content) of chunks that have no vector for ``model``."""
        with self._errors("read"):
            rows = self._conn().execute(
                "SELECT c.chunk_key, MIN(c.source), MIN(c.name), MIN(c.content) FROM chunks c "
                "WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.model = ? AND v.chunk_key = c.chunk_key) "
                "GROUP BY c.chunk_key LIMIT ?",
                (model, limit),
            )
            return [(r[0], r[1], r[2], r[3]) for r in rows]

    def count_without_vectors(self, model: str) -> int:
        with self._errors("read"):
            row = (
                self._conn()
                .execute(
                    "SELECT COUNT(DISTINCT c.chunk_key) FROM chunks c WHERE NOT EXISTS "
                    "(SELECT 1 FROM vectors v WHERE v.model = ? AND v.chunk_key = c.chunk_key)",
                    (model,),
                )
                .fetchone()
            )
        return int(row[0])

    def put_vectors(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        with self._transaction("write vectors") as conn:
            self._put_vectors(conn, model, vectors)

    @staticmethod
    def _put_vectors(conn: sqlite3.Connection, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO vectors(chunk_key, model, vector) VALUES (?, ?, ?)",
            ((h, model, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()),
        )

    def _generation(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _matrix(self, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chunk ids, their tenants, unit-norm float32 matrix) of every chunk with a vector for ``model``; cached."""
        conn = self._conn()
        generation = self._generation(conn)
        cached = self._matrix_cache.get(model)
        if cached is not None and cached[0] == generation:
            return cached[1:]
        rows = conn.execute(
            "SELECT c.id, c.tenant, v.vector FROM chunks c JOIN vectors v "
            "ON v.chunk_key = c.chunk_key AND v.model = ? ORDER BY c.id",
            (model,),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        tenants = np.array([r[1] for r in rows], dtype=str)  # compared whole-array per query: fast
        if rows:
            raw = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
            norms = np.linalg.norm(raw, axis=1, keepdims=True)
            matrix = (raw / np.where(norms == 0, 1, norms)).astype(np.float32)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        self._matrix_cache[model] = (generation, ids, tenants, matrix)
        return ids, tenants, matrix

    # -- search ---------------------------------------------------------------------------------

    def _selective_tokens(
        self, conn: sqlite3.Connection, tokens: Sequence[str], vocab: str = "chunks_vocab"
    ) -> list[str]:
        """The query tokens worth matching, rarest first, within a budget of rows to score.

        FTS5 computes bm25() for every row that matches, so a query word found in half the index costs
        far more than it adds (its IDF is near zero). Words absent from the index are dropped; the rest are
        kept from the rarest up while the rows they match stay under ROW_BUDGET (the rarest always stays).
        """
        frequency: dict[str, int] = {}
        for token in tokens:
            row = conn.execute(f"SELECT doc FROM {vocab} WHERE term = ?", (token,)).fetchone()
            if row:
                frequency[token] = int(row[0])
        kept: list[str] = []
        rows = 0
        for token in sorted(frequency, key=frequency.__getitem__):
            if kept and rows + frequency[token] > ROW_BUDGET:
                break
            kept.append(token)
            rows += frequency[token]
        return kept

    def lexical_search(
        self, tokens: Sequence[str], limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score: higher is better) of the best ``limit`` chunks of ``tenants`` matching any of
        ``tokens``.

        ``tokens`` must come from :func:`~.tokens.query_tokens` (``[a-z0-9]`` only); each is quoted, so no
        FTS5 operator can be formed from user input.
        """
        with self._errors("search"):
            conn = self._conn()
            selective = self._selective_tokens(conn, tokens)
            if not selective:
                return []
            expression = " OR ".join(f'"{t}"' for t in selective)
            rows = conn.execute(
                "SELECT chunks_fts.rowid, bm25(chunks_fts, ?, ?, ?) AS rank FROM chunks_fts "
                "JOIN chunks ON chunks.id = chunks_fts.rowid "
                f"WHERE chunks_fts MATCH ? AND chunks.tenant IN ({_marks(tenants)}) ORDER BY rank LIMIT ?",
                (*BM25_WEIGHTS, expression, *tenants, limit),
            )
            return [(int(r[0]), -float(r[1])) for r in rows]

    def literal_search(
        self, words: Sequence[str], limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, str]]:
        """(chunk id, its templates) of the ``limit`` chunks of ``tenants`` whose string literals best match
        ``words`` (BM25).

        ``words`` are :func:`~.messages.words` (``[a-z0-9]`` or ``*``); the wildcards are left out.
        """
        terms = list(dict.fromkeys(w for w in words if w != "*" and w.isalnum() and w.isascii()))
        with self._errors("search"):
            conn = self._conn()
            selective = self._selective_tokens(conn, terms, vocab="strings_vocab")
            if not selective:
                return []
            expression = " OR ".join(f'"{t}"' for t in selective)
            rows = conn.execute(
                "SELECT strings_fts.rowid, templates FROM strings_fts JOIN chunks ON chunks.id = strings_fts.rowid "
                f"WHERE strings_fts MATCH ? AND chunks.tenant IN ({_marks(tenants)}) ORDER BY rank LIMIT ?",
                (expression, *tenants, limit),
            )
            return [(int(r[0]), str(r[1])) for r in rows]

    def vector_search(
        self, model: str, query: np.ndarray, limit: int, tenants: Sequence[str] = (SHARED,)
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the ``limit`` nearest chunks of ``tenants``."""
        with self._errors("search"):
            ids, owners, matrix = self._matrix(model)
        allowed = np.logical_or.reduce([owners == tenant for tenant in tenants])
        if not allowed.any():
            return []
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != matrix.shape[1]:
            raise StoreError(
                f"query vector has {q.shape[0]} dimensions, stored vectors of {model!r} have {matrix.shape[1]}"
            )
        q = q / (np.linalg.norm(q) or 1.0)
        scores = np.where(allowed, matrix @ q, -np.inf)  # other tenants' chunks never rank
        k = min(limit, int(allowed.sum()))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def fetch(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        with self._errors("read"):
            rows = self._conn().execute(
                f"SELECT id, source, kind, name, start_line, end_line, content FROM chunks WHERE id IN ({_marks(ids)})",
                tuple(ids),
            )
            return {r[0]: StoredChunk(*r) for r in rows}

    def stats(self, model: str | None) -> StoreStats:
        with self._errors("read"):
            conn = self._conn()
            documents = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            vectors = (
                conn.execute("SELECT COUNT(*) FROM vectors WHERE model = ?", (model,)).fetchone()[0] if model else 0
            )
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return StoreStats(documents=documents, chunks=chunks, vectors=vectors, db_bytes=size)


def _marks(values: Sequence[object]) -> str:
    """The SQL placeholders of an ``IN (...)`` list of ``values``."""
    return ",".join("?" * len(values))
