"""Approve or deny an MCP tool call a task waits on (the `approve_tool` update)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from workflows.coding_task import CodingTask
from workflows.models import SA_TASK_STATUS, PendingApproval, TaskStatus, ToolApproval

from ..deps import GatewaySettings, Owned, Tenant
from ..models import error_responses
from ..updates import update_task

logger = logging.getLogger(__name__)
router = APIRouter(tags=["tasks"])


@router.post(
    "/approve/{session_id}",
    response_model=PendingApproval,
    summary="Approve or deny an MCP tool call waiting in `awaiting_approval` (the `approve_tool` update)",
    responses=error_responses(401, 404, 409, 413, 422, 429, 503),
)
async def approve_tool(body: ToolApproval, task: Owned, tenant: Tenant, settings: GatewaySettings) -> PendingApproval:
    """`{"call_id", "approved", "reason"?}` for a call listed in the task's `pending_approvals`; answers the call
    decided. A denied call goes back to the model as "denied by the user: <reason>".

    409 (a state conflict; nothing changes) when no call of that id waits: none was asked, it was decided already,
    or the task has ended."""
    # The task's status as the describe the ownership check made reads it (the server's own record, current): a
    # task that waits for no approval is answered without a call to the workflow, so refused decisions cost it
    # nothing. A task without search attributes is asked (its validator decides).
    waiting = task.description.typed_search_attributes.get(SA_TASK_STATUS)
    if task.running and waiting is not None and waiting != TaskStatus.AWAITING_APPROVAL:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the task waits for no approval ({waiting})")
    ended = "the task has ended; its tool calls can no longer be decided"
    decided = await update_task(task, tenant, settings, CodingTask.approve_tool, body, ended)
    verdict = "approved" if body.approved else "denied"
    logger.info("%s %s of %s: %s", verdict, decided.call_id, task.session_id, decided.tool)
    return decided
