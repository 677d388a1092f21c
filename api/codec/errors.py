"""The codec server's documented errors (shared `ErrorOut` shape)."""

from __future__ import annotations

from api.errors import error_responses as documented_errors

ERRORS = {
    401: "missing or unknown API key (X-API-KEY or Authorization: Bearer)",
    422: "not a payloads document (`errors` names each field and reason), or a payload that cannot be decrypted",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for the given error status codes."""
    return documented_errors(ERRORS, *codes)
