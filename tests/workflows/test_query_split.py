"""A query that reaches a workflow task while a local activity runs in it: the worker answers the query at once
and completes the task with the local result's marker only, asking for a new task, where the workflow goes on.
On replay the marker resolves the local activity a task early, before the patch markers of the next task are
announced: a `workflow.patched(...)` decided right after it would read False and the replay would fail (this
happened to the `lint-gate` patch, decided after the final lint). Histories recorded this way must replay."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, Worker

from orchestrator.plugin import OrchestratorPlugin
from tests.support import start_task
from tests.workflows.stubs import StubActivities
from workflows.coding_task import CodingTask
from workflows.models import AgentRole, TaskStatus


def worker(client: Client, task_queue: str, stubs: StubActivities, **options: Any) -> Worker:
    activities: list[Callable[..., Any]] = [stubs.chat, stubs.lint, stubs.search_knowledge, stubs.run_tests]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CodingTask],
        activities=activities,
        graceful_shutdown_timeout=timedelta(seconds=30),  # a held call finishes as its worker stops
        **options,
    )


def split_tasks(history: WorkflowHistory) -> int:
    """Workflow tasks that ended with a local activity's marker and asked for the next task at once."""
    events = list(history.events)
    return sum(
        1
        for marker, scheduled in itertools.pairwise(events)
        if marker.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and marker.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and scheduled.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )


async def test_a_query_during_the_final_lint_leaves_a_history_that_replays(client: Client, task_queue: str) -> None:
    answer = asyncio.Event()  # the code model's answer waits until it is set
    stubs = StubActivities(hold=answer, hold_role=AgentRole.CODE_GENERATION)
    # no workflow cache, so no sticky queue: the next workflow task waits on the task queue itself
    first = worker(client, task_queue, stubs, max_cached_workflows=0)
    running = asyncio.create_task(first.run())
    try:
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        await asyncio.wait_for(stubs.held.wait(), 60)
        # No worker polls workflow tasks while the code model answers: the next task waits on the server, and a
        # query sent now goes out with it. The next worker runs the final lint (local) and answers the query.
        stopping = asyncio.create_task(first.shutdown())
        await asyncio.sleep(1)  # its pollers stop at once; the held call still runs
    finally:
        answer.set()
        await first.shutdown()
        await running
    await stopping
    query = asyncio.create_task(handle.query(CodingTask.status))
    await asyncio.sleep(1)  # the query waits on the server with the workflow task
    async with worker(client, task_queue, stubs):
        await query
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.errors == []

    history = await handle.fetch_history()
    assert split_tasks(history) >= 1, "the query did not split a workflow task: the test proves nothing"
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
