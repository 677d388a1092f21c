"""Search attributes and readable histories: what the Web UI and `temporal workflow list --query` see."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.search_attributes import start_dev_flags
from orchestrator.temporal import data_converter
from tests.support import ROOT, SecretScan, binary, local_activity_types, product_worker
from workflows.coding_task import CodingTask
from workflows.models import (
    LINT_ACTIVITY,
    OWNER_MEMO,
    RAG_ACTIVITY,
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


async def start(
    client: Client, task_queue: str, owner: str | None = None, attributes: bool = True
) -> WorkflowHandle[CodingTask, TaskState]:
    """A task started as the gateway starts one (`start_search_attributes`), or bare (`attributes=False`)."""
    return await client.start_workflow(
        CodingTask.run,
        CodingTaskInput(task_description="write an add function"),
        id=f"sa-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        memo={OWNER_MEMO: owner} if owner else None,
        search_attributes=start_search_attributes(owner) if attributes else None,
    )


async def test_search_attributes_follow_the_task(client: Client, worker: Worker, task_queue: str) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    handle = await start(client, task_queue, owner=tenant)

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


async def test_a_bare_start_runs_without_search_attributes_and_says_so(
    client: Client, worker: Worker, task_queue: str
) -> None:
    """The rule: only a task started with `TaskStatus` keeps them (it knows the namespace has them)."""
    handle = await start(client, task_queue, attributes=False)
    state = await eventually(lambda: awaiting_state(handle), 60)
    assert state, "a bare start did not reach awaiting_feedback"
    assert any("keeps no search attributes" in w for w in state.warnings), state.warnings
    assert (await handle.describe()).typed_search_attributes.get(SA_TASK_STATUS) is None
    history = await handle.fetch_history()
    upserted = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert all(fields == {"TemporalChangeVersion"} for fields in upserted), upserted  # only the SDK's, for patches
    local = local_activity_types(history)
    assert set(local) <= {LINT_ACTIVITY, RAG_ACTIVITY}, local  # the short steps run locally; no check of its own
    await handle.terminate("test over")


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
        if e.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED)
        and e.user_metadata.HasField("summary")  # a local activity's summary is on its marker
    ]
    flat = [s[0] for s in summaries]
    assert any(s.startswith("planner") for s in flat), flat
    assert any(s.startswith("code_generation · ") and "step" in s for s in flat), flat
    assert any(s.startswith("lint") for s in flat), flat
    # no summary is an unreadable blob
    assert all(len(s) < 200 for s in flat)


async def test_tasks_without_owner_have_no_owner(client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start(client, task_queue)

    async def awaiting() -> bool:
        return (await handle.query(CodingTask.status)).task_status == TaskStatus.AWAITING_FEEDBACK

    assert await eventually(awaiting, 60)
    await handle.terminate("test over")
    assert (await handle.describe()).typed_search_attributes.get(SA_OWNER) is None


async def test_unregistered_server_then_register_command(
    worker_settings: WorkerSettings, task_queue: str, tmp_path: Path, secret_scan: SecretScan
) -> None:
    """A namespace without the attributes refuses a start with them and runs a bare one; `register` (generated from
    the one list, idempotent) registers them, and the attributes come true."""
    async with (
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"), data_converter=data_converter(), dev_server_log_level="error"
        ) as env,
        product_worker(env.client, worker_settings),
    ):
        with pytest.raises(RPCError, match="search attribute"):
            await start(env.client, task_queue)
        bare = await start(env.client, task_queue, attributes=False)
        assert await eventually(lambda: awaiting_state(bare), 60), "a bare task did not run"
        await bare.terminate("test over")

        environ = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host}
        outputs = []
        for _ in range(2):  # idempotent
            run = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "orchestrator.search_attributes", "register"],
                cwd=ROOT,
                env=environ,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, run.stderr
            outputs.append(run.stdout)
        assert outputs[0].startswith("registered: ") and all(key.name in outputs[0] for key in SEARCH_ATTRIBUTES)
        assert outputs[1].startswith("already registered: ")

        registered = await start(env.client, task_queue, owner="tenant-r")
        assert await eventually(lambda: awaiting_state(registered), 60)
        attrs = (await registered.describe()).typed_search_attributes
        assert attrs.get(SA_TASK_STATUS) == "awaiting_feedback" and attrs.get(SA_OWNER) == "tenant-r"
        await registered.terminate("test over")
        await secret_scan.scan(env.client)


def test_start_dev_flags_name_every_search_attribute() -> None:
    flags = start_dev_flags()
    assert flags[::2] == ["--search-attribute"] * len(SEARCH_ATTRIBUTES)
    assert flags[1::2] == [
        "TaskStatus=Keyword",
        "Agent=Keyword",
        "CodeModel=Keyword",
        "DocModel=Keyword",
        "LintScore=Double",
        "FeedbackRating=Int",
        "TotalTokens=Int",
        "Owner=Keyword",
        "CostUsd=Double",
        "LintGate=Keyword",
        "TestGate=Keyword",
    ]


async def awaiting_state(handle: WorkflowHandle[CodingTask, TaskState]) -> TaskState | None:
    state = await handle.query(CodingTask.status)
    return state if state.task_status == TaskStatus.AWAITING_FEEDBACK else None
