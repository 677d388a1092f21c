"""The supervisor's decisions, with stub activities under the real names (fast: no fake servers, no pylint)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.support import binary, start_task, wait_for_state
from tests.workflows.conftest import FINAL_CODE, StubActivities, calls
from workflows.coding_task import CodingTask
from workflows.models import (
    TASK_QUEUE,
    WORKFLOW_TYPE,
    AgentRole,
    EventsQueryInput,
    EventType,
    FeedbackInput,
    LlmResponse,
    TaskStatus,
    ToolCall,
)

CODE = AgentRole.CODE_GENERATION


async def test_routes_planner_then_code_then_docs(client: Client, stub_worker: Worker, stubs: StubActivities) -> None:
    handle = await start_task(client, stub_worker.task_queue, feedback_window_seconds=0)
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    assert stubs.roles() == [AgentRole.PLANNER, CODE, AgentRole.DOCUMENTATION]
    assert final.results.code_generation is not None and "def add" in final.results.code_generation.code
    assert stubs.lints == [final.results.code_generation.code]  # the final answer is linted once
    assert final.results.documentation is not None and final.results.documentation.documentation == "# Docs"
    assert final.usage["stub:model"].calls == 3 and final.usage["stub:model"].input_tokens == 30
    assert final.models == {role: "stub:model" for role in AgentRole}
    page = await handle.query(CodingTask.events, EventsQueryInput())
    routes = [e.agent for e in page.events if e.type == EventType.ROUTE]
    assert routes == [CODE, AgentRole.DOCUMENTATION]
    assert [e.id for e in page.events] == list(range(1, page.last_id + 1))
    assert final.logs == [f"{e.at} {e.message}" for e in page.events]  # logs are the events' messages


async def test_the_smallest_supervisor_bound_still_routes_both_agents(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    handle = await start_task(client, stub_worker.task_queue, feedback_window_seconds=0, max_supervisor_iterations=2)
    assert (await handle.result()).task_status == TaskStatus.COMPLETED
    assert stubs.roles() == [AgentRole.PLANNER, CODE, AgentRole.DOCUMENTATION]


async def test_revisions_stop_at_the_limit(client: Client, stub_worker: Worker, stubs: StubActivities) -> None:
    handle = await start_task(client, stub_worker.task_queue, max_revisions=1)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="validate the input"))
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=2, comment="still not right"))
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.revisions == 1
    assert stubs.roles().count(CODE) == 2 and stubs.roles().count(AgentRole.DOCUMENTATION) == 2
    revision_prompt = [r for r in stubs.requests if r.role == CODE][1].messages[0].content
    assert "validate the input" in revision_prompt and "def add" in revision_prompt  # feedback and previous code
    assert any("revision limit (1) reached" in line for line in final.logs)


async def test_unknown_tools_and_malformed_arguments_go_back_to_the_model(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.script(
        CODE,
        calls(
            ToolCall(id="t1", name="rm_rf"),
            ToolCall(id="t2", name="lint", arguments={"code": 3}),
            ToolCall(id="t3", name="search_knowledge", arguments={"query": "add", "top_k": 99}),
            ToolCall(id="t4", name="lint", arguments_error="arguments are not valid JSON (Expecting value)"),
            ToolCall(id="t5", name="search_knowledge", arguments={"query": "add", "extra": 1}),
            ToolCall(id="t6", name="search_knowledge", arguments={"query": "add two numbers"}),
        ),
    )
    handle = await start_task(client, stub_worker.task_queue, feedback_window_seconds=0)
    assert (await handle.result()).task_status == TaskStatus.COMPLETED
    follow_up = [r for r in stubs.requests if r.role == CODE][1]
    results = {m.tool_call_id: (m.content, m.is_error) for m in follow_up.messages if m.role == "tool"}
    assert results["t1"] == ("unknown tool 'rm_rf'; available: lint, search_knowledge", True)
    assert results["t2"] == ("invalid arguments for lint: code: Input should be a valid string", True)
    assert results["t3"][1] and "top_k: Input should be less than or equal to 10" in results["t3"][0]
    assert results["t4"] == ("invalid arguments for lint: arguments are not valid JSON (Expecting value)", True)
    assert results["t5"][1] and "extra: Extra inputs are not permitted" in results["t5"][0]
    assert not results["t6"][1] and json.loads(results["t6"][0])[0]["source"] == "kb/add.py"
    assert [q.query for q in stubs.queries] == ["add two numbers"]  # only the valid call reached the activity
    assert len(stubs.lints) == 1  # only the final answer: the malformed lint calls never ran


async def test_an_agent_that_never_answers_fails_the_task_at_its_step_limit(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    always_a_tool = calls(ToolCall(id="t", name="search_knowledge", arguments={"query": "add"}))
    stubs.script(CODE, *[always_a_tool] * 3)
    handle = await start_task(client, stub_worker.task_queue, max_agent_steps=3)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.message == "code_generation agent gave no final answer within 3 steps"
    code_requests = [r for r in stubs.requests if r.role == CODE]
    assert [bool(r.tools) for r in code_requests] == [True, True, False]  # the last step offers no tools
    state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.FAILED and state.errors == [failure.value.cause.message]


async def test_a_model_warning_is_recorded_once(client: Client, stub_worker: Worker, stubs: StubActivities) -> None:
    warned = LlmResponse(model="offline", content="1. plan", warning="OPENAI_API_KEY is not set: planner used offline")
    stubs.script(AgentRole.PLANNER, warned)
    stubs.script(CODE, LlmResponse(model="offline", content=FINAL_CODE, warning=warned.warning))
    final = await (await start_task(client, stub_worker.task_queue, feedback_window_seconds=0)).result()
    assert final.warnings == [warned.warning]


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ('{"task_descripton": "write an add function"}', ["task_description", "task_descripton"]),
        ('{"task_description": "x", "max_agent_steps": "many"}', ["max_agent_steps"]),
        ('{"task_description": "x", "code_model": "gpt-4o"}', ["code_model"]),
        ('["write an add function"]', ["CodingTaskInput"]),
        ('"write an add function"', ["CodingTaskInput"]),
    ],
)
async def test_a_bad_start_from_the_cli_fails_at_once_naming_each_field(
    client: Client, stub_worker: Worker, stubs: StubActivities, payload: str, named: list[str]
) -> None:
    """The CLI (or the Web UI, or any client) bypasses the gateway's validation: the workflow fails at once with
    pydantic's message, instead of a workflow task that fails to decode its input and is retried forever."""
    workflow_id = f"bad-{uuid.uuid4().hex[:10]}"
    address = client.service_client.config.target_host
    cli = [binary("temporal"), "workflow", "--address", address]
    start = [*cli, "start", "--type", WORKFLOW_TYPE, "--task-queue", stub_worker.task_queue]
    started = await asyncio.to_thread(
        subprocess.run, [*start, "--workflow-id", workflow_id, "--input", payload], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    result = await asyncio.to_thread(
        subprocess.run, [*cli, "result", "--workflow-id", workflow_id], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "validation error" in result.stdout + result.stderr
    with pytest.raises(WorkflowFailureError) as failure:
        await client.get_workflow_handle(workflow_id).result()
    message = str(failure.value.cause)
    assert all(name in message for name in named), message
    assert stubs.requests == []  # nothing ran
    assert stub_worker.task_queue != TASK_QUEUE  # the test's own queue, not production's
