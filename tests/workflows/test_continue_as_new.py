"""A long revision loop continues as new when Temporal suggests it, and the task state carries over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from orchestrator.temporal import data_converter
from tests.support import SecretScan, binary, product_worker, start_task, wait_for_state
from workflows.coding_task import CodingTask
from workflows.models import SEARCH_ATTRIBUTES, STREAM_TOPICS, EventType, FeedbackInput, TaskEvent, TaskStatus


@pytest.fixture(scope="module")
async def short_history_env(secret_scan: SecretScan) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 40 history events (the default is thousands)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    async with env:
        yield env
        await secret_scan.scan(env.client)


async def test_revision_loop_continues_as_new_with_its_state(
    short_history_env: WorkflowEnvironment, task_queue: str, memory_api_url: str
) -> None:
    client = short_history_env.client
    settings = WorkerSettings(
        _env_file=None, llm_mode="offline", temporal_task_queue=task_queue, memory_api_url=memory_api_url
    )
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, max_revisions=2)
        watched = asyncio.create_task(watch(client, handle.id))  # a watcher from the first event to the end
        first_run = (await handle.describe()).run_id
        await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
        await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="add validation"))

        latest = client.get_workflow_handle_for(CodingTask.run, handle.id)  # follows the newest run
        state = await wait_for_state(
            latest, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1, within=90
        )
        assert (await latest.describe()).run_id != first_run  # a new run carries the task on
        assert state.plan and state.results.code_generation and state.results.code_generation.revision == 1
        assert state.results.documentation and state.results.documentation.code_revision == 1
        assert [f.rating for f in state.feedback] == [1]
        assert any("continuing as a new run" in line for line in state.logs)

        await latest.signal(CodingTask.feedback, FeedbackInput(rating=5))
        final = await latest.result()
        events = await asyncio.wait_for(watched, 30)
        # the stream went on across continue-as-new: every offset once, in order, and ids = offset + 1
        assert [offset for offset, _ in events] == list(range(len(events)))
        # ids = offset + 1 (the workflow's own events; a delta's id is the subscriber's to give, as the gateway does)
        assert all(event.id == offset + 1 for offset, event in events if event.type != EventType.LLM_DELTA)
        kinds = [event.type for _, event in events]
        assert kinds.index(EventType.CONTINUE_AS_NEW) + 1 == kinds.index(EventType.RESUMED)
        # a client resuming across it, after the continue-as-new event, misses nothing and sees nothing twice
        resumed_at = kinds.index(EventType.CONTINUE_AS_NEW) + 1
        assert await watch(client, handle.id, resumed_at) == events[resumed_at:]
    assert final.task_status == TaskStatus.COMPLETED and [f.rating for f in final.feedback] == [1, 5]
    assert final.created_at == state.created_at and final.session_id == handle.id


async def watch(client: Client, workflow_id: str, after: int = 0) -> list[tuple[int, TaskEvent]]:
    """The task's stream (its events and deltas) from offset `after` until the workflow ends (the subscription
    follows new runs)."""
    stream = WorkflowStreamClient.create(client, workflow_id)
    return [(item.offset, item.data) async for item in stream.subscribe(STREAM_TOPICS, after, result_type=TaskEvent)]
