"""Reading a task's state: the workflow's `status` query while it runs, its result once it has completed.

A query on a closed workflow makes a worker replay the whole history to answer it (the run left the worker's
cache when it closed), and fails when no worker polls the task queue or when that history no longer replays. A
completed run's result is the same `TaskState` (`CodingTask.run` returns `status()`), read by the server from the
history's last event. The `status` query is sent with `QueryRejectCondition.NOT_OPEN`, so the server refuses it
for a run that closed meanwhile instead of handing it to a worker: a task with no feedback window stops at
`awaiting_feedback` and completes in the same workflow task, and a stream that ends at that status reads the
state a moment later.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryRejectedError
from temporalio.common import QueryRejectCondition

from workflows.coding_task import CodingTask
from workflows.models import TaskState

TaskHandle = WorkflowHandle[CodingTask, TaskState]


def task_handle(client: Client, session_id: str) -> TaskHandle:
    """A handle on the session's current run (not bound to a run id: continue-as-new and reset go on in another)."""
    return client.get_workflow_handle_for(CodingTask.run, session_id)


async def read_state(handle: TaskHandle, completed: bool, rpc_timeout: timedelta) -> TaskState:
    """The task's state: `completed` (its workflow completed, or its last status event says it did), its result
    (which waits the moment the run takes to close); else the `status` query while the run is open, the result
    when it has completed meanwhile, and for a run that closed otherwise (failed, cancelled, terminated, continued
    as new) the query after all."""
    if not completed:
        try:
            return await handle.query(
                CodingTask.status, reject_condition=QueryRejectCondition.NOT_OPEN, rpc_timeout=rpc_timeout
            )
        except WorkflowQueryRejectedError as exc:
            if exc.status != WorkflowExecutionStatus.COMPLETED:
                return await handle.query(CodingTask.status, rpc_timeout=rpc_timeout)
    return await handle.result(follow_runs=False, rpc_timeout=rpc_timeout)
