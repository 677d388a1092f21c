"""Search: the agents' `search_knowledge` tool calls POST /rag_query."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter

from ..deps import KB, Who
from ..errors import error_responses
from ..models import RagQuery, RagResponse, RagResult

log = logging.getLogger(__name__)
router = APIRouter(tags=["search"])


@router.post(
    "/rag_query",
    response_model=RagResponse,
    summary="The chunks most relevant to a query (BM25, fused with vectors when embeddings are on)",
    description="Searches the shared base and one tenant's documents: the key's own tenant, or with the service key "
    "the `owner` named (none: the shared base alone).",
    responses=error_responses(401, 403, 413, 422, 503),
)
def rag_query(body: RagQuery, who: Who, kb: KB) -> RagResponse:
    started = time.perf_counter()
    tenant = who.search_scope(body.owner)
    found = kb.search(body.query, body.top_k, tenant)
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
    log.info(
        "rag_query by %s for %s: top_k=%d hits=%d mode=%s %.1fms",
        who,
        tenant or "the shared base",
        body.top_k,
        len(results),
        found.mode,
        took,
    )
    return RagResponse(results=results, mode=found.mode, warnings=found.warnings, took_ms=took)
