"""The gateway's errors, in the shared `ErrorOut` shape: 429 past the rate limit, 503 while Temporal is unreachable,
502 when it refuses a request."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from api.errors import error_response
from api.errors import install_error_handlers as install_shared_handlers

from .connection import TemporalUnavailable
from .ratelimit import RateLimitExceeded

logger = logging.getLogger(__name__)

UNAVAILABLE_CODES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


def install_error_handlers(app: FastAPI) -> None:
    """The shared handlers (`api.errors`), and what only the gateway raises: rate limits and Temporal errors."""
    install_shared_handlers(app, "gateway")

    @app.exception_handler(RateLimitExceeded)
    async def _limited(request: Request, exc: RateLimitExceeded) -> JSONResponse:
        return error_response(429, str(exc), headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(request: Request, exc: TemporalUnavailable) -> JSONResponse:
        return error_response(503, str(exc), headers={"Retry-After": "2"})

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, exc: RPCError) -> JSONResponse:
        return temporal_error_response(request, exc)


def temporal_error_response(request: Request, exc: RPCError) -> JSONResponse:
    if exc.status in UNAVAILABLE_CODES:
        logger.warning("%s %s: Temporal unavailable: %s", request.method, request.url.path, exc)
        return error_response(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "2"})
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:  # e.g. a query while no worker polls the task queue
        logger.warning("%s %s: Temporal cannot answer now: %s", request.method, request.url.path, exc)
        return error_response(503, f"Temporal cannot answer now: {exc.message}", headers={"Retry-After": "5"})
    logger.error("%s %s: Temporal error %s: %s", request.method, request.url.path, exc.status, exc)
    return error_response(502, f"Temporal refused the request ({exc.status.name if exc.status else 'error'})")
