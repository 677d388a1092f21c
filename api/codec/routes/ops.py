"""Operations: /health (no key; says which key id encrypts)."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Codec
from ..models import CodecHealth

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=CodecHealth, summary="The codec server answers (no key needed)")
async def health(codec: Codec) -> CodecHealth:
    return CodecHealth(active_key_id=codec.active_key_id)
