"""`Annotated` dependencies: the knowledge base, the settings, and who calls (a tenant, or the service key)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.auth import API_KEY_HEADER, MIN_KEY_LENGTH, ApiKeyConfigError, ApiKeyRegistry, request_tenant

from .kb import KnowledgeBase
from .settings import MemorySettings
from .store import SHARED


async def get_kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.kb
    return kb


async def get_settings(request: Request) -> MemorySettings:
    settings: MemorySettings = request.app.state.settings
    return settings


@dataclass(frozen=True)
class Caller:
    """A tenant (its own documents plus the shared base), or the service key's holder (``tenant`` None: the worker
    searching for a task's owner, the operator writing the shared base)."""

    tenant: str | None

    @property
    def namespace(self) -> str:
        """Where this caller's writes and deletes go: its own documents, or the shared base."""
        return self.tenant or SHARED

    def search_scope(self, owner: str | None) -> str | None:
        """Whose documents a search covers besides the shared base: any `owner` for the service key, the caller's
        own for a tenant (403 when it names another)."""
        if self.tenant is None:
            return owner
        if owner in (None, self.tenant):
            return self.tenant
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "a tenant's key searches its own documents: omit owner or name the key's tenant"
        )

    def __str__(self) -> str:
        return self.tenant or "the service key"


def service_key(settings: MemorySettings, registry: ApiKeyRegistry) -> str | None:
    """MEMORY_API_KEY, checked like a tenant's key and refused (ApiKeyConfigError) when it is a tenant's too: a
    tenant holding it could read every tenant's documents."""
    key = settings.memory_api_key.get_secret_value().strip() if settings.memory_api_key else ""
    if not key:
        return None
    try:
        ApiKeyRegistry({"service": key})  # the checks of a tenant's key: long enough, not a placeholder
    except ApiKeyConfigError:
        raise ApiKeyConfigError(
            f"MEMORY_API_KEY is shorter than {MIN_KEY_LENGTH} characters or a placeholder"
        ) from None
    if (tenant := registry.tenant_for(key)) is not None:
        raise ApiKeyConfigError(
            f"MEMORY_API_KEY is also the key of tenant {tenant!r}: give the memory API's service key a value of its "
            "own (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return key


async def request_caller(request: Request, key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> Caller:
    """The caller behind X-API-KEY: the service key, a tenant's key, or 401."""
    service: str | None = request.app.state.service_key
    if service and key and hmac.compare_digest(key.encode("utf-8", "surrogateescape"), service.encode()):
        return Caller(None)
    return Caller(await request_tenant(request, key))


KB = Annotated[KnowledgeBase, Depends(get_kb)]
Settings = Annotated[MemorySettings, Depends(get_settings)]
Who = Annotated[Caller, Depends(request_caller)]
