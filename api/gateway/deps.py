"""`Annotated` dependencies: the Temporal client, the tenant behind X-API-KEY, the caller's own task."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, status
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from api.auth import OPERATOR_TENANT, request_tenant
from workflows.models import OWNER_MEMO, SESSION_ID_PATTERN

from .connection import TemporalConnection
from .describes import Describes
from .ratelimit import KeyRateLimiter
from .settings import Settings
from .state import TaskHandle, task_handle

logger = logging.getLogger(__name__)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_connection(request: Request) -> TemporalConnection:
    connection: TemporalConnection = request.app.state.temporal
    return connection


async def get_client(connection: Annotated[TemporalConnection, Depends(get_connection)]) -> Client:
    return await connection.get()


async def get_limited_tenant(request: Request, tenant: Annotated[str, Depends(request_tenant)]) -> str:
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
    handle: TaskHandle
    description: WorkflowExecutionDescription

    @property
    def running(self) -> bool:
        return self.description.status == WorkflowExecutionStatus.RUNNING


UNREADABLE = object()  # a memo value this gateway cannot decode


async def read_memo(execution: WorkflowExecution, key: str) -> Any:
    """A memo value (None: not set), or `UNREADABLE` when it is encrypted with keys this gateway lacks (its
    `PAYLOAD_ENCRYPTION_KEYS` are not the worker's): that task is then nobody's here, never a 500 for a listing."""
    try:
        return await execution.memo_value(key, default=None)
    except (KeyError, ValueError) as exc:  # an unknown encoding (no codec), or a key that does not decrypt it
        logger.warning(
            "cannot read the memo of task %s: %s (is PAYLOAD_ENCRYPTION_KEYS the worker's?)", execution.id, exc
        )
        return UNREADABLE


async def task_owner(execution: WorkflowExecution) -> Any:
    """The tenant a task belongs to: its memo's `owner`; a task started without one (the `temporal` CLI, as the
    README shows) is the operator's (`OPERATOR_TENANT`, the key of ORCHESTRATOR_API_KEY); one whose memo this gateway
    cannot read, nobody's (None)."""
    owner = await read_memo(execution, OWNER_MEMO)
    if owner is UNREADABLE:
        return None
    return OPERATOR_TENANT if owner is None else owner


def not_found(session_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no task with session id {session_id!r}")


async def get_owned_task(request: Request, session_id: SessionId, tenant: Tenant, client: TemporalClient) -> OwnedTask:
    """The caller's task, described now (with the requests on it that came together: api/gateway/describes.py);
    404 for an unknown id and, indistinguishably, for another tenant's."""
    describes: Describes = request.app.state.describes
    try:
        description = await describes.describe(client, session_id)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_found(session_id) from None
        raise
    if await task_owner(description) != tenant:
        raise not_found(session_id)
    # Not bound to the run described: a session is a chain of runs (continue-as-new, `temporal workflow reset`),
    # and reads, streams, signals and cancels act on whichever run is current; the owner was just checked on it.
    return OwnedTask(session_id, task_handle(client, session_id), description)


async def get_owned_run(owned: Annotated[OwnedTask, Depends(get_owned_task)]) -> TaskHandle:
    """A handle on the caller's task, for reads: on its current run, the owner checked on that run now (a handle
    bound to a cached run id would read a run that continued as new or was reset, stale for ever)."""
    return owned.handle


Owned = Annotated[OwnedTask, Depends(get_owned_task)]
OwnedRun = Annotated[TaskHandle, Depends(get_owned_run)]
