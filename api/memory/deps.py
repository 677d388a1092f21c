"""`Annotated` dependencies: the knowledge base, the settings, the tenant behind X-API-KEY."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import request_tenant

from .kb import KnowledgeBase
from .settings import MemorySettings


async def get_kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.kb
    return kb


async def get_settings(request: Request) -> MemorySettings:
    settings: MemorySettings = request.app.state.settings
    return settings


KB = Annotated[KnowledgeBase, Depends(get_kb)]
Settings = Annotated[MemorySettings, Depends(get_settings)]
Tenant = Annotated[str, Depends(request_tenant)]  # any tenant: the knowledge base is shared
