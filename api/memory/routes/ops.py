"""Operations: /health (no key) and /stats."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import KB, Settings, Who
from ..errors import error_responses
from ..models import Health, Stats

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Health, summary="The memory API answers (no key needed)")
async def health() -> Health:
    return Health(status="ok")


@router.get("/stats", response_model=Stats, summary="Counts and size", responses=error_responses(401, 503))
def stats(_: Who, kb: KB, settings: Settings) -> Stats:
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
