"""A task update sent for its owner: what the routes that change a running task share (`POST /budget`,
`POST /approve`).

The update goes out under the tenant's codec context (with PAYLOAD_ENCRYPTION_KEYS its payload is the tenant's,
like the task's); every way it can be refused is a 409, a state conflict in which nothing changed: the task had
ended before it was sent, ended meanwhile (the server no longer knows the run, or the validator says `TaskEnded`),
or the workflow's validator refused it (its reason is the answer's detail).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from fastapi import HTTPException, status
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from orchestrator.codec import encrypting_for
from workflows.models import TaskEnded

from .deps import OwnedTask
from .settings import Settings

R = TypeVar("R")


async def update_task(
    task: OwnedTask,
    tenant: str,
    settings: Settings,
    update: UpdateMethodMultiParam[..., R],
    body: Any,
    ended: str,
    refused: str = "{}",
) -> R:
    """The update's answer; 409 `ended` when the task has ended, 409 `refused` (`{}` is the validator's reason)
    when the workflow refused it."""
    closed = HTTPException(status.HTTP_409_CONFLICT, ended)
    if not task.running:
        raise closed
    try:
        with encrypting_for(tenant):
            rpc_timeout = timedelta(seconds=settings.gateway_rpc_timeout)
            return await task.handle.execute_update(update, body, rpc_timeout=rpc_timeout)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == TaskEnded.__name__:
            raise closed from None
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise HTTPException(status.HTTP_409_CONFLICT, refused.format(reason)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # it ended between the check and the update
            raise closed from None
        raise
