"""The memory API: `create_app()` wires the settings, the keys, the knowledge base and the routers.

Run it with ``python -m api.memory serve``. Every route but ``/health`` needs an ``X-API-KEY``: a tenant's (the
gateway's keys: that tenant's documents plus the shared base) or the service key ``MEMORY_API_KEY`` (the worker's:
the shared base, and any tenant's documents in its searches).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import ApiKeyRegistry
from api.body_limit import BodyLimitMiddleware
from api.docs import install_docs
from api.schema import operation_id

from .deps import service_key
from .errors import install_error_handlers
from .kb import KnowledgeBase, VectorFiller, open_knowledge_base
from .routes import documents, ops, search
from .settings import MemorySettings

log = logging.getLogger(__name__)


def create_app(
    settings: MemorySettings | None = None,
    registry: ApiKeyRegistry | None = None,
    kb: KnowledgeBase | None = None,
) -> FastAPI:
    """The app; refuses (ApiKeyConfigError) when no API key is configured. With `kb`, that knowledge base is
    served (and left open); otherwise one is opened in the lifespan from the settings."""
    settings = settings or MemorySettings()
    registry = registry or ApiKeyRegistry.from_env()
    key = service_key(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if kb is None:
            app.state.kb = open_knowledge_base(settings)
        log.info("memory API on %s (embeddings: %s)", settings.memory_db_path, app.state.kb.model or "none, BM25 only")
        filler = VectorFiller(app.state.kb)  # embeds, in the background, chunks stored without a vector
        filler.start()
        try:
            yield
        finally:
            filler.stop()
            if kb is None:
                app.state.kb.store.close()
                # FastAPI's caches keep an app's endpoints, and so the app, after it stopped: let its
                # knowledge base (the model's weights, ~100 MB) go with its lifespan
                del app.state.kb

    app = FastAPI(
        title="Memory API",
        summary="Knowledge base of code and text for the agents' search_knowledge tool",
        version="1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by install_docs, from local files
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.registry = registry
    app.state.service_key = key
    if kb is not None:
        app.state.kb = kb
    install_error_handlers(app)
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(ops.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.memory_max_body_bytes)
    return app
