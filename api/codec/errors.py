"""The codec server's documented errors (shared `ErrorOut` shape)."""

from __future__ import annotations

from api.errors import ErrorDocs

error_responses = ErrorDocs(
    {
        401: "missing or unknown API key (X-API-KEY or Authorization: Bearer)",
        422: "not a payloads document (`errors` names each field and reason), or a payload that cannot be decrypted",
    }
)
