"""`Annotated` dependencies: the payload codec, the tenant behind X-API-KEY or `Authorization: Bearer`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from api.auth import request_tenant_key_or_bearer
from orchestrator.codec import EncryptionCodec


async def get_codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec = request.app.state.codec
    return codec


async def namespace(
    namespace: Annotated[str, Path(min_length=1, description="the Temporal namespace; payloads do not depend on it")],
) -> str:
    return namespace


Codec = Annotated[EncryptionCodec, Depends(get_codec)]
Tenant = Annotated[str, Depends(request_tenant_key_or_bearer)]
