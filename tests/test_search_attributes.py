"""Search attributes and readable histories: what the Web UI and `temporal workflow list --query` see."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from tests.conftest import ROOT, SecretScan, binary
from worker import running_worker
from workflows.coding_task import CodingTask
from workflows.models import (
    OWNER_MEMO,
    SA_AGENT,
    SA_CODE_MODEL,
    SA_DOC_MODEL,
    SA_FEEDBACK_RATING,
    SA_LINT_SCORE,
    SA_OWNER,
    SA_TASK_STATUS,
    SA_TOTAL_TOKENS,
    SEARCH_ATTRIBUTES,
    CodingTaskInput,
    FeedbackInput,
    TaskState,
    TaskStatus,
    start_search_attributes,
)


async def eventually(check: Any, limit: float = 20.0) -> Any:
    """Poll an async check until it returns something truthy (visibility is eventually consistent)."""
    deadline = time.monotonic() + limit
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


async def listed(client: Client, query: str) -> list[str]:
    return [execution.id async for execution in client.list_workflows(query)]


async def start(client: Client, task_queue: str, **memo: str) -> WorkflowHandle[CodingTask, TaskState]:
    return await client.start_workflow(
        CodingTask.run,
        CodingTaskInput(task_description="write an add function"),
        id=f"sa-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        memo=memo or None,
    )


async def test_search_attributes_follow_the_task(client: Client, worker: Worker, task_queue: str) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    handle = await start(client, task_queue, **{OWNER_MEMO: tenant})

    async def awaiting() -> bool:
        return (await handle.query(CodingTask.status)).task_status == TaskStatus.AWAITING_FEEDBACK

    assert await eventually(awaiting, 60)
    query = f'TaskStatus="awaiting_feedback" AND Owner="{tenant}"'
    assert await eventually(lambda: listed(client, query)) == [handle.id]

    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(SA_TASK_STATUS) == "awaiting_feedback"
    assert attrs.get(SA_OWNER) == tenant
    assert attrs.get(SA_CODE_MODEL) == "openai:gpt-4o"
    assert (attrs.get(SA_DOC_MODEL) or "").startswith("anthropic:")
    assert attrs.get(SA_LINT_SCORE) == 10.0
    assert (attrs.get(SA_TOTAL_TOKENS) or 0) > 0
    assert attrs.get(SA_AGENT) is None  # no agent is running while the task waits for feedback
    assert attrs.get(SA_FEEDBACK_RATING) is None

    # the Web UI's "current details" line
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("**awaiting_feedback**")
    assert "lint 10.0" in metadata.current_details

    await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
    assert (await handle.result()).task_status == TaskStatus.COMPLETED
    query = f'TaskStatus="completed" AND FeedbackRating>=4 AND Owner="{tenant}"'
    assert await eventually(lambda: listed(client, query)) == [handle.id]
    assert (await handle.describe()).typed_search_attributes.get(SA_FEEDBACK_RATING) == 5

    # each upsert is a history event and a visibility write: a workflow task makes at most one
    upserts_per_task: Counter[int] = Counter()
    task = 0
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if set(fields) != {"TemporalChangeVersion"}:  # the SDK's own, for `workflow.patched`
                upserts_per_task[task] += 1
    assert upserts_per_task and max(upserts_per_task.values()) == 1, upserts_per_task
    assert sum(upserts_per_task.values()) <= 6, upserts_per_task  # status and agent changes, not every model call


async def test_a_task_started_with_the_attributes_skips_its_check(
    client: Client, worker: Worker, task_queue: str
) -> None:
    """`start_search_attributes` (what the gateway sends) vouches for the server: no local-activity check."""
    handle = await client.start_workflow(
        CodingTask.run,
        CodingTaskInput(task_description="write an add function", feedback_window_seconds=0),
        id=f"sa-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        search_attributes=start_search_attributes(owner="tenant-x"),
    )
    assert (await handle.result()).task_status == TaskStatus.COMPLETED
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(SA_TASK_STATUS) == "completed"
    assert attrs.get(SA_OWNER) == "tenant-x"
    assert (attrs.get(SA_TOTAL_TOKENS) or 0) > 0
    history = await handle.fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert "core_local_activity" not in markers, markers


async def test_activities_carry_readable_summaries(client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start(client, task_queue)

    async def awaiting() -> bool:
        return (await handle.query(CodingTask.status)).task_status == TaskStatus.AWAITING_FEEDBACK

    assert await eventually(awaiting, 60)
    await handle.cancel()
    history = await handle.fetch_history()
    summaries = [
        await client.data_converter.decode([e.user_metadata.summary], [str])
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and e.user_metadata.HasField("summary")
    ]
    flat = [s[0] for s in summaries]
    assert any(s.startswith("planner") for s in flat), flat
    assert any(s.startswith("code_generation · ") and "step" in s for s in flat), flat
    assert any(s.startswith("lint") for s in flat), flat
    # no summary is an unreadable blob
    assert all(len(s) < 200 for s in flat)


async def test_tasks_without_owner_memo_have_no_owner(client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start(client, task_queue)

    async def awaiting() -> bool:
        return (await handle.query(CodingTask.status)).task_status == TaskStatus.AWAITING_FEEDBACK

    assert await eventually(awaiting, 60)
    await handle.terminate("test over")
    assert (await handle.describe()).typed_search_attributes.get(SA_OWNER) is None


async def test_unregistered_server_then_register_script(
    worker_settings: WorkerSettings, task_queue: str, tmp_path: Path, secret_scan: SecretScan
) -> None:
    """A server without the attributes still runs tasks (without them); the script registers them (idempotently)."""
    async with (
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        ) as env,
        running_worker(env.client, worker_settings),
    ):
        bare = await start(env.client, task_queue)
        state = await eventually(lambda: awaiting_state(bare), 60)
        assert state, "task did not reach awaiting_feedback on a server without search attributes"
        assert any("search attributes are not registered" in w for w in state.logs)
        await bare.terminate("test over")

        script = ROOT / "scripts" / "register_search_attributes.sh"
        environ = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host}
        environ["TEMPORAL_CLI"] = binary("temporal")
        for _ in range(2):  # idempotent
            run = await asyncio.to_thread(
                subprocess.run, [str(script)], env=environ, capture_output=True, text=True, timeout=60
            )
            assert run.returncode == 0, run.stderr
        assert "already registered" in run.stdout

        registered = await start(env.client, task_queue)
        assert await eventually(lambda: awaiting_state(registered), 60)
        attrs = (await registered.describe()).typed_search_attributes
        assert attrs.get(SA_TASK_STATUS) == "awaiting_feedback"
        await registered.terminate("test over")
        await secret_scan.scan(env.client)


def test_scripts_name_every_search_attribute() -> None:
    expected = {key.name: key.indexed_value_type for key in SEARCH_ATTRIBUTES}
    types = {"Keyword": 2, "Int": 3, "Double": 4}
    flags = subprocess.run(
        [str(ROOT / "scripts" / "search_attribute_flags.sh")], capture_output=True, text=True, check=True
    ).stdout.split()
    pairs = dict(flag.split("=") for flag in flags if flag != "--search-attribute")
    assert {name: types[t] for name, t in pairs.items()} == {k: int(v) for k, v in expected.items()}
    script = (ROOT / "scripts" / "register_search_attributes.sh").read_text()
    for name, value_type in pairs.items():
        assert f'"{name} {value_type}"' in script


async def awaiting_state(handle: WorkflowHandle[CodingTask, TaskState]) -> TaskState | None:
    state = await handle.query(CodingTask.status)
    return state if state.task_status == TaskStatus.AWAITING_FEEDBACK else None
