"""One error body for the gateway, the memory API and the codec server: `ErrorOut`, and the handlers that make it.

Every error answers JSON `{"detail": "..."}`; a 422 adds `errors`, one entry per field and reason. Submitted values
are never echoed back (they may be large, odd unicode or secrets) and nothing answers a traceback. A body that is
not even UTF-8 is a 422 like any other undecodable JSON (FastAPI would answer a bare 400), and a 405 names every
method of the path in `Allow` (Starlette names only those of the first route with that path).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

logger = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 2000
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class FieldError(BaseModel):
    field: str = Field(description="dotted location, e.g. 'body.rating' or 'path.session_id'")
    reason: str
    type: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="one entry per invalid field (422 only)")


def error_response(status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(detail=detail).model_dump(exclude_none=True), status_code, headers=headers)


def invalid_response(errors: list[FieldError]) -> JSONResponse:
    """The 422 answer: a one-line summary in `detail`, each field and reason in `errors`."""
    detail = "invalid request: " + "; ".join(f"{e.field}: {e.reason}" for e in errors)
    body = ErrorOut(detail=detail[:MAX_DETAIL_CHARS], errors=errors)
    return JSONResponse(body.model_dump(), status.HTTP_422_UNPROCESSABLE_CONTENT)


def field_errors(exc: RequestValidationError) -> list[FieldError]:
    """One entry per field and reason (a path parameter shared by a route and its dependencies counts once)."""
    found: dict[tuple[str, str], FieldError] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ())) or "body"
        reason = str(error.get("msg", "invalid"))
        kind = str(error.get("type", "value_error"))
        if kind == "json_invalid":  # FastAPI puts the character position where a field goes: `body.12`
            position = error.get("loc", ())[-1]
            why = error.get("ctx", {}).get("error", reason)
            field, reason = "body", f"the body is not valid JSON: {why} (at character {position})"
        found.setdefault((field, reason), FieldError(field=field, reason=reason, type=kind))
    return list(found.values())


def allowed_methods(request: Request) -> str:
    """Every method some route of this path answers (asked of the router itself, so included routers count)."""
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI, service: str) -> None:
    """The handlers every app installs; `service` names the log an internal error points to."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body" (no app here raises a 400 of its own)
            cause = exc.__cause__
            why = "it is not UTF-8 text" if isinstance(cause, UnicodeError) else type(cause).__name__
            reason = f"the body is not valid JSON: {why}"
            return invalid_response([FieldError(field="body", reason=reason, type="json_invalid")])
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = allowed_methods(request)
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_response(field_errors(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the {service} log")


AUTH_THROTTLED = "too many missing or unknown API keys from this address (see Retry-After)"


class ErrorDocs:
    """An app's error statuses and what each means; `docs(401, 422)` are the OpenAPI `responses` entries of a
    route that answers them (all `ErrorOut`). A route that answers 401 also answers 429 (`api.auth` throttles
    failed keys)."""

    def __init__(self, descriptions: Mapping[int, str]) -> None:
        self.descriptions = {429: AUTH_THROTTLED, **descriptions}

    def __call__(self, *codes: int) -> dict[int | str, dict[str, object]]:
        if 401 in codes and 429 not in codes:
            codes = (*codes, 429)
        return {code: {"model": ErrorOut, "description": self.descriptions[code]} for code in codes}
