"""The memory API's errors, in the shared `ErrorOut` shape: 503 when the database is locked or unusable."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import ErrorDocs, error_response
from api.errors import install_error_handlers as install_shared_handlers

from .store import StoreBusyError, StoreError

logger = logging.getLogger(__name__)

error_responses = ErrorDocs(
    {
        401: "missing or unknown X-API-KEY",
        403: "a tenant's key names another tenant",
        404: "no document with this source",
        413: "request body larger than MEMORY_MAX_BODY_BYTES",
        422: "invalid input; `errors` names each field and reason",
        503: "database locked by another writer (Retry-After) or unusable; see detail",
    }
)


def install_error_handlers(app: FastAPI) -> None:
    install_shared_handlers(app, "memory API")

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": "1"} if isinstance(exc, StoreBusyError) else None
        return error_response(503, str(exc), headers=headers)
