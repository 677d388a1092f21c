"""The gateway app: `create_app()` wires settings, keys, the lazily connected Temporal client and the routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from temporalio.client import Client

from api.auth import ApiKeyRegistry
from api.body_limit import BodyLimitMiddleware
from api.docs import install_docs
from api.schema import operation_id

from .connection import TemporalConnection, TemporalUnavailable
from .describes import Describes
from .errors import install_error_handlers
from .live import LiveChannel
from .metrics import GatewayMetrics, MetricsMiddleware
from .ratelimit import KeyRateLimiter
from .routes import approvals, console, listing, ops, tasks
from .settings import Settings
from .streams import StreamHub

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, client: Client | None = None, registry: ApiKeyRegistry | None = None
) -> FastAPI:
    """The app. Raises ApiKeyConfigError when no safe API key is configured (the gateway must not start).

    With `client`, that client is used; otherwise one is connected in the lifespan (from temporalio.envconfig),
    and again on demand while Temporal is unreachable.
    """
    settings = settings or Settings()
    registry = registry or ApiKeyRegistry.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await app.state.temporal.get()
        except TemporalUnavailable as exc:
            logger.warning("%s; starting anyway, will connect on demand", exc)
        if settings.nats_url:
            app.state.streams.live = await LiveChannel.open(settings.nats_url, settings.gateway_rpc_timeout)
        logger.info(
            "gateway ready: task queue %r, tenants %s, rate limit %s",
            settings.temporal_task_queue,
            ", ".join(sorted(registry.keys_by_tenant)),
            settings.gateway_rate_limit,
        )
        yield
        await app.state.streams.close()
        if app.state.streams.live is not None:
            await app.state.streams.live.close()

    app = FastAPI(
        title="Coding Orchestrator gateway",
        summary="Start, stream, inspect, rate and cancel CodingTask workflows",
        version="1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by install_docs, from local files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.temporal = TemporalConnection(client, reconnect_interval=settings.gateway_reconnect_interval)
    app.state.limiter = KeyRateLimiter(settings.gateway_rate_limit, settings.gateway_rate_limit_storage)
    app.state.metrics = GatewayMetrics()
    app.state.describes = Describes()
    app.state.streams = StreamHub(
        settings.gateway_stream_queue_size,
        settings.gateway_poll_interval,
        settings.gateway_rpc_timeout,
        settings.gateway_stream_max_seconds,
    )

    install_error_handlers(app)
    app.include_router(tasks.router)
    app.include_router(approvals.router)
    app.include_router(listing.router)
    app.include_router(console.router)
    app.include_router(ops.router)
    install_docs(app)
    console.install_console(app)

    # Added last = outermost: metrics see every answer, including 413s and CORS preflights.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.gateway_max_body_bytes)
    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-KEY", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the schemas only the event streams' event schemas refer to (e.g. TaskEvent)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in tasks.EVENT_SCHEMAS.items():
            components.setdefault(name, definition)
        app.openapi_schema = schema
    return app.openapi_schema
