"""Every error answers JSON (`ErrorOut`): 4xx name the problem, 503 says Temporal is unreachable, no tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from temporalio.service import RPCError, RPCStatusCode

from .connection import TemporalUnavailable
from .models import ErrorOut, FieldError
from .ratelimit import RateLimitExceeded

logger = logging.getLogger(__name__)

UNAVAILABLE_CODES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


def error_response(status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(detail=detail).model_dump(exclude_none=True), status_code, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    """One entry per field and reason (a path parameter shared by a route and its dependencies counts once)."""
    found: dict[tuple[str, str], FieldError] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ())) or "body"
        reason = str(error.get("msg", "invalid"))
        kind = str(error.get("type", "value_error"))
        found.setdefault((field, reason), FieldError(field=field, reason=reason, type=kind))
    return list(found.values())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The submitted values are not echoed back: they may be large, odd unicode or secrets.
        errors = _field_errors(exc)
        detail = "invalid request: " + "; ".join(f"{e.field}: {e.reason}" for e in errors)
        body = ErrorOut(detail=detail[:2000], errors=errors)
        return JSONResponse(body.model_dump(), status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(RateLimitExceeded)
    async def _limited(request: Request, exc: RateLimitExceeded) -> JSONResponse:
        return error_response(429, str(exc), headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(request: Request, exc: TemporalUnavailable) -> JSONResponse:
        return error_response(503, str(exc), headers={"Retry-After": "2"})

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, exc: RPCError) -> JSONResponse:
        return temporal_error_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the gateway log")


def temporal_error_response(request: Request, exc: RPCError) -> JSONResponse:
    if exc.status in UNAVAILABLE_CODES:
        logger.warning("%s %s: Temporal unavailable: %s", request.method, request.url.path, exc)
        return error_response(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "2"})
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:  # e.g. a query while no worker polls the task queue
        logger.warning("%s %s: Temporal cannot answer now: %s", request.method, request.url.path, exc)
        return error_response(503, f"Temporal cannot answer now: {exc.message}", headers={"Retry-After": "5"})
    logger.error("%s %s: Temporal error %s: %s", request.method, request.url.path, exc.status, exc)
    return error_response(502, f"Temporal refused the request ({exc.status.name if exc.status else 'error'})")
