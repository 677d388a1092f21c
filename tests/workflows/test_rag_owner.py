"""A task's knowledge searches carry its owner (the tenant in its memo), so the memory API searches that tenant's
documents and the shared base, nobody else's."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from tests.workflows.stubs import StubActivities, calls
from workflows.coding_task import CodingTask
from workflows.models import OWNER_MEMO, AgentRole, CodingTaskInput, TaskStatus, ToolCall, start_search_attributes


async def run_with_a_search(client: Client, worker: Worker, owner: str | None) -> None:
    """A task started as the gateway starts one for `owner` (memo and search attribute), or with neither."""
    handle = await client.start_workflow(
        CodingTask.run,
        CodingTaskInput(task_description="write an add function", feedback_window_seconds=0),
        id=f"task-{uuid.uuid4().hex[:12]}",
        task_queue=worker.task_queue,
        memo={OWNER_MEMO: owner} if owner else None,
        search_attributes=start_search_attributes(owner=owner),
    )
    assert (await handle.result()).task_status == TaskStatus.COMPLETED


async def test_a_tasks_searches_name_its_owner(client: Client, stub_worker: Worker, stubs: StubActivities) -> None:
    search = calls(ToolCall(id="s", name="search_knowledge", arguments={"query": "add two numbers"}))
    stubs.script(AgentRole.CODE_GENERATION, search)
    await run_with_a_search(client, stub_worker, "alice")
    stubs.script(AgentRole.CODE_GENERATION, search)
    await run_with_a_search(client, stub_worker, None)
    assert [q.owner for q in stubs.queries] == ["alice", None]  # no owner: the shared base alone
