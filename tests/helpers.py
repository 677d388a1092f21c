"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable

from temporalio.client import Client, WorkflowHandle

from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskState


async def start_task(client: Client, task_queue: str, **fields: object) -> WorkflowHandle[CodingTask, TaskState]:
    fields.setdefault("task_description", f"write an add function ({uuid.uuid4().hex[:8]})")
    return await client.start_workflow(
        CodingTask.run,
        CodingTaskInput.model_validate(fields),
        id=f"task-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
    )


async def wait_for_state(
    handle: WorkflowHandle[CodingTask, TaskState],
    predicate: Callable[[TaskState], bool],
    within: float = 60.0,
) -> TaskState:
    """Poll the `status` query until `predicate` holds."""
    deadline = time.monotonic() + within
    while True:
        state = await handle.query(CodingTask.status)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"state never matched; last: {state.task_status} {state.errors} {state.logs[-5:]}")
        await asyncio.sleep(0.1)


async def wait_until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
