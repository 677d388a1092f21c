"""A value the payload store no longer has (deleted past retention, another machine's file, a corrupt chunk): the
task fails at once with the store's error naming the task and the key, and nothing retries or hangs.

On the real dev server, with the payload store on at a low threshold so the activities' inputs and results are
stored; the stub activities (`stubs.py`) under the real names; the test deletes one stored value's manifest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from orchestrator.codec import KEYS_ENV
from orchestrator.payload_store import STORE_ENV, THRESHOLD_ENV
from orchestrator.temporal import data_converter
from tests.support import start_task
from tests.workflows.stubs import StubActivities
from workflows.coding_task import CodingTask
from workflows.models import LLM_ACTIVITY, AgentRole, LlmRequest, LlmResponse, TaskState, TaskStatus

CONTEXT = "".join(f"def helper_{i}(value: int) -> int:\n    return value * {i}\n\n" for i in range(300))


@pytest.fixture(params=["plain", "encrypted"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The store's settings, with encryption keys or without (failure messages then are encrypted too)."""
    env = {STORE_ENV: str(tmp_path / "payloads.sqlite"), THRESHOLD_ENV: "1024"}
    if request.param == "encrypted":
        env[KEYS_ENV] = f"k1={base64.b64encode(os.urandom(32)).decode()}"
    return env


@pytest.fixture
async def stored_client(client: Client, store: dict[str, str]) -> Client:
    """A client (and so its workers) with the payload store on."""
    return await Client.connect(
        client.service_client.config.target_host, namespace="default", data_converter=data_converter(store)
    )


def activities(stubs: StubActivities) -> list[Callable[..., Any]]:
    return [stubs.chat, stubs.lint, stubs.search_knowledge]


async def history(handle: WorkflowHandle[CodingTask, TaskState]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await handle.fetch_history()).to_json_dict()["events"]
    return events


async def first_event(handle: WorkflowHandle[CodingTask, TaskState], event_type: str) -> dict[str, Any]:
    """The first history event of `event_type`, once there is one."""
    while True:
        for event in await history(handle):
            if event["eventType"] == event_type:
                return event
        await asyncio.sleep(0.1)


def references(event: dict[str, Any], attributes: str, field: str) -> list[dict[str, Any]]:
    """The payload store's claims of the payloads of `event[attributes][field]`."""
    return [json.loads(base64.b64decode(p["data"]))["claimData"] for p in event[attributes][field]["payloads"]]


def delete_value(store: dict[str, str], claim: dict[str, Any]) -> tuple[Any, ...]:
    """Delete the manifest of a stored value (so the value is missing); the deleted row."""
    with sqlite3.connect(store[STORE_ENV]) as db:
        where = (claim["task"], claim["manifest"])
        row: tuple[Any, ...] = db.execute("SELECT * FROM chunks WHERE task = ? AND key = ?", where).fetchone()
        db.execute("DELETE FROM chunks WHERE task = ? AND key = ?", where)
    return row


async def test_an_activity_input_missing_from_the_store_fails_the_task_after_one_attempt(
    stored_client: Client, task_queue: str, stubs: StubActivities, store: dict[str, str]
) -> None:
    """The planner's call is scheduled while no worker runs activities; its stored input is deleted; then an
    activity worker picks it up: one attempt, the failure names the task and the key, the task is `failed`."""
    async with Worker(stored_client, task_queue=task_queue, workflows=[CodingTask]):
        handle = await start_task(stored_client, task_queue, code_context=CONTEXT, feedback_window_seconds=0)
        event = await asyncio.wait_for(first_event(handle, "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"), 30)
        [claim] = references(event, "activityTaskScheduledEventAttributes", "input")
        delete_value(store, claim)
        async with Worker(stored_client, task_queue=task_queue, activities=activities(stubs)):
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 60)
        state = await handle.query(CodingTask.status)
    message = f"task {handle.id!r}: stored value {claim['manifest']} is missing"
    assert message in str(failed.value.cause), failed.value.cause
    events = await history(handle)
    started = [e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"]
    assert [e["activityTaskStartedEventAttributes"]["attempt"] for e in started] == [1]
    [failure] = [
        e["activityTaskFailedEventAttributes"]["failure"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_FAILED"
    ]
    assert failure["applicationFailureInfo"]["nonRetryable"] is True
    assert failure["applicationFailureInfo"]["type"] == "PayloadStoreError"
    assert message in failure["message"] or (KEYS_ENV in store and failure["message"] == "Encoded failure")
    assert state.task_status == TaskStatus.FAILED and any(message in e for e in state.errors), state.errors
    assert stubs.requests == []  # the activity never ran


async def test_an_activity_result_missing_when_an_evicted_task_replays_fails_its_workflow_task_until_it_is_back(
    stored_client: Client, task_queue: str, stubs: StubActivities, store: dict[str, str]
) -> None:
    """No workflow is cached (every workflow task replays the whole history): the planner's stored reply is
    deleted while the code agent's call runs; when that call returns, the replay cannot read the reply. A replay
    cannot fail the run (a command history does not have is a nondeterminism error), so the workflow task fails
    with the store's error, naming the task and the key, and is retried; once the value is back the task ends."""
    plan = "\n".join(f"{i}. step {i}: do the part number {i} of the work carefully" for i in range(1, 60))
    stubs.script(AgentRole.PLANNER, LlmResponse(model="stub:model", content=plan, input_tokens=10, output_tokens=5))
    release, code_started = asyncio.Event(), asyncio.Event()

    @activity.defn(name=LLM_ACTIVITY)
    async def held_chat(request: LlmRequest) -> LlmResponse:
        if request.role == AgentRole.CODE_GENERATION:
            code_started.set()
            await release.wait()
        return await stubs.chat(request)

    held: list[Callable[..., Any]] = [held_chat, stubs.lint, stubs.search_knowledge]
    async with Worker(
        stored_client, task_queue=task_queue, workflows=[CodingTask], activities=held, max_cached_workflows=0
    ):
        handle = await start_task(stored_client, task_queue, feedback_window_seconds=0)
        await asyncio.wait_for(code_started.wait(), 30)
        [planner_done] = [e for e in await history(handle) if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"]
        [claim] = references(planner_done, "activityTaskCompletedEventAttributes", "result")
        row = delete_value(store, claim)
        release.set()
        failed_task = await asyncio.wait_for(first_event(handle, "EVENT_TYPE_WORKFLOW_TASK_FAILED"), 30)
        failure = failed_task["workflowTaskFailedEventAttributes"]["failure"]
        message = f"task {handle.id!r}: stored value {claim['manifest']} is missing"
        if KEYS_ENV not in store:  # encrypted, the message is in the failure's encoded attributes
            assert message in failure["message"] and "ondetermin" not in failure["message"], failure
        assert failure["applicationFailureInfo"]["type"] == "PayloadStoreError", failure
        await asyncio.sleep(3)  # retried meanwhile, still running: nothing fails the run from a replay
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        with sqlite3.connect(store[STORE_ENV]) as db:
            db.execute("INSERT INTO chunks (task, key, value, created) VALUES (?, ?, ?, ?)", row)
        final = await asyncio.wait_for(handle.result(), 60)  # the next retry reads it
    assert final.task_status == TaskStatus.COMPLETED and final.plan == plan
