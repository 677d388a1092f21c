"""POST /decode and /encode: what the Web UI and `temporal --codec-endpoint` call (also under /{namespace}/)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from orchestrator.codec import DecryptionError
from orchestrator.payload_store import PayloadStoreError, resolve_references

from ..deps import Codec, Tenant
from ..errors import error_responses
from ..models import PayloadJson, Payloads

router = APIRouter(tags=["payloads"], responses=error_responses(401, 422))


@router.post(
    "/decode",
    response_model=Payloads,
    summary="Decrypt payloads, reading stored ones from the payload store (plain ones pass through unchanged)",
)
async def decode(body: Payloads, codec: Codec, request: Request, _: Tenant) -> Payloads:
    try:
        stored = await resolve_references(request.app.state.storage, [p.payload() for p in body.payloads])
        plain = await codec.decode(stored)
    except (DecryptionError, PayloadStoreError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return Payloads(payloads=[PayloadJson.of(p) for p in plain])


@router.post("/encode", response_model=Payloads, summary="Encrypt payloads with the active key")
async def encode(body: Payloads, codec: Codec, _: Tenant) -> Payloads:
    sealed = await codec.encode([p.payload() for p in body.payloads])
    return Payloads(payloads=[PayloadJson.of(p) for p in sealed])
