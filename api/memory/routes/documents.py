"""Documents: add or replace them (idempotent per source and content), delete one by source; a tenant's key acts on
that tenant's documents, the service key on the shared base."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from ..deps import KB, Who
from ..errors import error_responses
from ..models import DeleteOut, DocumentOut, DocumentsIn, DocumentsOut

log = logging.getLogger(__name__)
router = APIRouter(tags=["documents"])


@router.post(
    "/documents",
    response_model=DocumentsOut,
    summary="Add or replace documents (unchanged ones are skipped)",
    description="A tenant's key writes that tenant's documents (only its searches see them); the service key "
    "(MEMORY_API_KEY) writes the shared base every tenant searches.",
    responses={
        200: {
            "description": "one result per document, in order",
            "links": {
                "delete_document": {
                    "operationId": "delete_document",
                    "parameters": {"source": "$response.body#/results/0/source"},
                }
            },
        },
        **error_responses(401, 413, 422, 503),
    },
)
def add_documents(body: DocumentsIn, who: Who, kb: KB) -> DocumentsOut:
    results = []
    for doc in body.documents:
        r = kb.add(doc.source, doc.content, doc.kind, tenant=who.namespace)
        results.append(
            DocumentOut(source=r.source, status=r.status, chunks=r.chunks, embedded=r.embedded, warning=r.warning)
        )
        log.info("document %s %s by %s (%d chunks)", r.source, r.status, who, r.chunks)
    return DocumentsOut(results=results)


@router.delete(
    "/documents",
    response_model=DeleteOut,
    summary="Delete a document and its chunks",
    description="A tenant's key deletes that tenant's document; the service key, the shared base's.",
    responses=error_responses(401, 404, 422, 503),
)
def delete_document(who: Who, kb: KB, source: Annotated[str, Query(min_length=1, max_length=1_000)]) -> DeleteOut:
    count = kb.delete(source, who.namespace)
    if count is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with source {source!r}")
    log.info("document %s deleted by %s", source, who)
    return DeleteOut(source=source, deleted_chunks=count)
