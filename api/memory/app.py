"""The memory API: FastAPI over the knowledge base.

Run it with ``python -m api.memory serve``. Every route but ``/health`` needs a registered ``X-API-KEY``
(any tenant: the knowledge base is shared).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.auth import ApiKeyRegistry, request_tenant

from .kb import KnowledgeBase, VectorFiller, open_knowledge_base
from .models import (
    DeleteOut,
    DocumentOut,
    DocumentsIn,
    DocumentsOut,
    ErrorOut,
    Health,
    RagQuery,
    RagResponse,
    RagResult,
    Stats,
)
from .settings import MemorySettings
from .store import StoreBusyError, StoreError

log = logging.getLogger(__name__)


def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.kb
    return kb


Tenant = Annotated[str, Depends(request_tenant)]
KB = Annotated[KnowledgeBase, Depends(_kb)]


def create_app(
    settings: MemorySettings | None = None,
    registry: ApiKeyRegistry | None = None,
    kb: KnowledgeBase | None = None,
) -> FastAPI:
    """The app; refuses (ApiKeyConfigError) when no API key is configured."""
    settings = settings or MemorySettings()
    registry = registry or ApiKeyRegistry.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = kb is None
        app.state.kb = kb or open_knowledge_base(settings)
        log.info("memory API on %s (embeddings: %s)", settings.memory_db_path, app.state.kb.model or "none, BM25 only")
        filler = VectorFiller(app.state.kb)
        filler.start()
        try:
            yield
        finally:
            filler.stop()
            if owned:
                app.state.kb.store.close()

    app = FastAPI(
        title="Memory API",
        summary="Knowledge base of code and text for the agents' search_knowledge tool",
        version="1.0",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorOut, "description": "missing or unknown X-API-KEY"},
            503: {"model": ErrorOut, "description": "database locked or unusable; see detail"},
        },
    )
    app.state.registry = registry

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": "1"} if isinstance(exc, StoreBusyError) else None
        return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Like FastAPI's default 422, minus the echoed input (which may be undecodable bytes).
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    @app.get("/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        return Health(status="ok")

    @app.get("/stats", response_model=Stats, tags=["ops"])
    def stats(_: Tenant, kb: KB) -> Stats:
        s = kb.store.stats(kb.model)
        return Stats(
            documents=s.documents,
            chunks=s.chunks,
            vectors=s.vectors,
            embedding_model=kb.model,
            db_path=str(settings.memory_db_path),
            db_bytes=s.db_bytes,
            vectors_pending=kb.pending_vectors(),
            warnings=kb.warnings,
        )

    @app.post("/rag_query", response_model=RagResponse, tags=["search"])
    def rag_query(body: RagQuery, who: Tenant, kb: KB) -> RagResponse:
        started = time.perf_counter()
        found = kb.search(body.query, body.top_k)
        results = [
            RagResult(
                content=h.chunk.content,
                source=h.chunk.source,
                score=round(h.score, 6),
                name=h.chunk.name,
                kind=h.chunk.kind,
                start_line=h.chunk.start_line,
                end_line=h.chunk.end_line,
                bm25_rank=h.bm25_rank,
                vector_rank=h.vector_rank,
                literal_rank=h.literal_rank,
            )
            for h in found.hits
        ]
        took = round(1000 * (time.perf_counter() - started), 3)
        log.info("rag_query tenant=%s top_k=%d hits=%d mode=%s %.1fms", who, body.top_k, len(results), found.mode, took)
        return RagResponse(results=results, mode=found.mode, warnings=found.warnings, took_ms=took)

    @app.post("/documents", response_model=DocumentsOut, tags=["documents"])
    def add_documents(body: DocumentsIn, who: Tenant, kb: KB) -> DocumentsOut:
        results = []
        for doc in body.documents:
            r = kb.add(doc.source, doc.content, doc.kind)
            results.append(
                DocumentOut(source=r.source, status=r.status, chunks=r.chunks, embedded=r.embedded, warning=r.warning)
            )
            log.info("document %s %s by %s (%d chunks)", r.source, r.status, who, r.chunks)
        return DocumentsOut(results=results)

    @app.delete(
        "/documents",
        response_model=DeleteOut,
        tags=["documents"],
        responses={404: {"model": ErrorOut, "description": "no such source"}},
    )
    def delete_document(
        who: Tenant, kb: KB, source: Annotated[str, Query(min_length=1, max_length=1_000)]
    ) -> DeleteOut:
        count = kb.delete(source)
        if count is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with source {source!r}")
        log.info("document %s deleted by %s", source, who)
        return DeleteOut(source=source, deleted_chunks=count)

    return app
