"""POST /decode and /encode: what the Web UI and `temporal --codec-endpoint` call (also under /{namespace}/).

Each caller decodes only its own payloads: those encrypted for its tenant (`encryption-tenant`), and, for the
operator (tenant `default`), those encrypted for no tenant. Any other payload comes back as it was sent, in its
place: the Web UI sends a batch and expects as many payloads back, and shows those it cannot read as they are.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status
from temporalio.api.common.v1 import Payload

from api.auth import OPERATOR_TENANT
from orchestrator.codec import DecryptionError, is_encrypted, tenant_of
from orchestrator.payload_store import PayloadStoreError, resolve_references

from ..deps import Codec, Tenant
from ..errors import error_responses
from ..models import PayloadJson, Payloads

logger = logging.getLogger(__name__)
router = APIRouter(tags=["payloads"], responses=error_responses(401, 422))


def readable_by(payload: Payload, sent: Payload, tenant: str) -> bool:
    """May `tenant` see `payload` (`sent`, or the value the store holds for it) in plain?"""
    if payload is sent and not is_encrypted(payload):
        return True  # sent in plain: nothing to hide
    owner = tenant_of(payload)
    return owner == tenant or (owner is None and tenant == OPERATOR_TENANT)


@router.post(
    "/decode",
    response_model=Payloads,
    summary="Decrypt the caller's payloads, reading stored ones from the payload store (others come back as sent)",
)
async def decode(body: Payloads, codec: Codec, request: Request, tenant: Tenant) -> Payloads:
    sent = [p.payload() for p in body.payloads]
    try:
        stored = await resolve_references(request.app.state.storage, sent)
        readable = [readable_by(s, p, tenant) for s, p in zip(stored, sent, strict=True)]
        plain = [codec.decrypt(s) if ok else p for s, p, ok in zip(stored, sent, readable, strict=True)]
    except (DecryptionError, PayloadStoreError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if refused := readable.count(False):
        logger.info("decode for tenant %s: %d of %d payloads are not theirs, left encoded", tenant, refused, len(sent))
    return Payloads(payloads=[PayloadJson.of(p) for p in plain])


@router.post("/encode", response_model=Payloads, summary="Encrypt payloads for the caller's tenant")
async def encode(body: Payloads, codec: Codec, tenant: Tenant) -> Payloads:
    return Payloads(payloads=[PayloadJson.of(codec.encrypt(p.payload(), tenant)) for p in body.payloads])
