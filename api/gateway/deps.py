"""`Annotated` dependencies: the Temporal client, the tenant behind X-API-KEY, the caller's own task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import APIKeyHeader
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ApiKeyRegistry
from workflows.models import SESSION_ID_PATTERN

from .connection import TemporalConnection
from .ratelimit import KeyRateLimiter
from .settings import Settings

api_key_header = APIKeyHeader(
    name="X-API-KEY", auto_error=False, description="a key from ORCHESTRATOR_API_KEY / ORCHESTRATOR_API_KEYS(_FILE)"
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_connection(request: Request) -> TemporalConnection:
    connection: TemporalConnection = request.app.state.temporal
    return connection


async def get_client(connection: Annotated[TemporalConnection, Depends(get_connection)]) -> Client:
    return await connection.get()


def get_tenant(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> str:
    registry: ApiKeyRegistry = request.app.state.registry
    tenant = registry.tenant_for(key)
    if tenant is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-API-KEY header")
    return tenant


async def get_limited_tenant(request: Request, tenant: Annotated[str, Depends(get_tenant)]) -> str:
    """The tenant, after counting this request against its rate limit (429 past it)."""
    limiter: KeyRateLimiter = request.app.state.limiter
    await limiter.check(tenant)
    return tenant


GatewaySettings = Annotated[Settings, Depends(get_settings)]
Connection = Annotated[TemporalConnection, Depends(get_connection)]
TemporalClient = Annotated[Client, Depends(get_client)]
Tenant = Annotated[str, Depends(get_limited_tenant)]
SessionId = Annotated[
    str, Path(pattern=SESSION_ID_PATTERN, description="the session id (workflow id) the task was started with")
]


@dataclass
class OwnedTask:
    session_id: str
    handle: WorkflowHandle
    description: WorkflowExecutionDescription

    @property
    def running(self) -> bool:
        return self.description.status == WorkflowExecutionStatus.RUNNING


def not_found(session_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no task with session id {session_id!r}")


async def get_owned_task(session_id: SessionId, tenant: Tenant, client: TemporalClient) -> OwnedTask:
    """The caller's task; 404 for an unknown id and, indistinguishably, for another tenant's task."""
    handle = client.get_workflow_handle(session_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_found(session_id) from None
        raise
    if await description.memo_value("owner", default=None) != tenant:
        raise not_found(session_id)
    return OwnedTask(session_id, handle, description)


Owned = Annotated[OwnedTask, Depends(get_owned_task)]
