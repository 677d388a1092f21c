"""MCP tools in the agent loop, end to end: a real Temporal server, the real OpenAI and Anthropic SDKs against the
fake providers (which script the tool calls: `[tool NAME {args}]` in the description), real MCP servers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import Worker

from orchestrator.plugin import OrchestratorPlugin
from testbed.llm_server import FakeLlmServer
from tests.mcp.conftest import git
from tests.support import start_task, wait_for_state
from workflows.coding_task import CodingTask
from workflows.models import (
    MCP_CALL_TOOL_ACTIVITY,
    MCP_LIST_TOOLS_ACTIVITY,
    EventsQueryInput,
    EventType,
    TaskEvent,
    TaskState,
    TaskStatus,
    ToolApproval,
)


def tool_results(fake: FakeLlmServer) -> dict[str, str]:
    """What the code agent's model read back from each tool call (by the name it called)."""
    for request in reversed(fake.requests):
        messages = request["body"].get("messages", [])
        if request["provider"] == "openai" and any(m["role"] == "tool" for m in messages):
            names = {c["id"]: c["function"]["name"] for m in messages if m["role"] == "assistant"
                     for c in m.get("tool_calls") or []}  # fmt: skip
            return {names[m["tool_call_id"]]: m["content"] for m in messages if m["role"] == "tool"}
    raise AssertionError("no request carried tool results")


async def activities_of(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, int]]:
    """(activity type, attempt) of every activity the task started."""
    scheduled: dict[int, str] = {}
    started = []
    async for event in handle.fetch_history_events():
        if event.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attributes = event.activity_task_started_event_attributes
            started.append((scheduled[attributes.scheduled_event_id], attributes.attempt))
    return started


async def test_read_tools_results_reach_the_model(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str, git_repo: Path
) -> None:
    description = (
        f'log and time [tool git__git_log {{"repo_path": "{git_repo}"}}] '
        '[tool time__get_current_time {"timezone": "Europe/Paris"}] [tool web__pid {}] [tool web__key {}]'
    )
    handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=0,
                              mcp_tools=["git.git_log", "time", "web"])  # fmt: skip
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED, final.errors
    results = tool_results(fake_llm)
    assert "Commit history" in results["git__git_log"] and "first commit" in results["git__git_log"]
    assert json.loads(results["time__get_current_time"])["timezone"] == "Europe/Paris"
    assert results["web__pid"].isdigit()  # over streamable HTTP
    workflow_id, run_id, activity_id = results["web__key"].split("/")  # the idempotency key each call carries
    assert (workflow_id, run_id) == (handle.id, handle.result_run_id) and activity_id.isdigit()
    first_code_turn = next(r["body"] for r in fake_llm.requests if r["provider"] == "openai" and r["body"].get("tools"))
    offered = [t["function"]["name"] for t in first_code_turn["tools"]]
    assert {"git__git_log", "time__get_current_time", "time__convert_time", "web__note"} <= set(offered)
    assert "git__git_commit" not in offered  # only git.git_log was selected
    assert final.tool_usage["git.git_log"].calls == 1 and final.tool_usage["web.pid"].calls == 1
    events = await handle.query(CodingTask.events, EventsQueryInput())
    calls = [e for e in events.events if e.type == EventType.TOOL_CALL and e.data.get("server")]
    assert {(e.data["server"], e.data["tool"]) for e in calls} == {
        ("git", "git.git_log"), ("time", "time.get_current_time"), ("web", "web.pid"), ("web", "web.key")
    }  # fmt: skip
    ran = [name for name, _ in await activities_of(handle)]
    assert ran.count(MCP_LIST_TOOLS_ACTIVITY) == 1  # once per task, though both agents were offered the tools
    assert ran.count(MCP_CALL_TOOL_ACTIVITY) == 4


async def test_a_task_without_mcp_tools_runs_as_before(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.tool_usage == {}
    ran = {name for name, _ in await activities_of(handle)}
    assert ran == {"llm_chat"}  # no MCP activity (lint and search_knowledge run as local activities)
    offered = {t["function"]["name"] for r in fake_llm.requests if r["provider"] == "openai"
               for t in r["body"].get("tools", [])}  # fmt: skip
    assert offered == {"lint", "search_knowledge"}


async def wait_for_event(
    handle: WorkflowHandle[CodingTask, TaskState], predicate: Callable[[TaskEvent], bool]
) -> TaskEvent:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = await handle.query(CodingTask.events, EventsQueryInput())
        if found := [event for event in page.events if predicate(event)]:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no such event")


async def finish(handle: WorkflowHandle[CodingTask, TaskState]) -> TaskState:
    """Rate the task once it waits for feedback, so it completes."""
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    await handle.signal(CodingTask.feedback, {"rating": 5})
    return await handle.result()


async def approval_state(handle: WorkflowHandle[CodingTask, TaskState]) -> TaskState:
    return await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_APPROVAL)


async def test_a_denied_call_is_reported_to_the_model_and_a_deny_policy_never_runs(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str, git_repo: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    description = (
        f'[tool web__note {{"path": "{notes}", "text": "hello"}}] [tool git__git_reset {{"repo_path": "{git_repo}"}}]'
    )
    handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=300,
                              mcp_tools=["web", "git"])  # fmt: skip
    waiting = await approval_state(handle)
    [pending] = waiting.pending_approvals
    assert pending.tool == "web.note" and pending.arguments == {"path": str(notes), "text": "hello"}
    events = await handle.query(CodingTask.events, EventsQueryInput())
    [asked] = [e for e in events.events if e.type == EventType.APPROVAL_REQUESTED]
    assert asked.data == {"call_id": pending.call_id, "tool": "web.note", "server": "web",
                          "arguments": pending.arguments}  # fmt: skip
    denial = ToolApproval(call_id=pending.call_id, approved=False, reason="not in this task")
    await handle.execute_update(CodingTask.approve_tool, denial)
    for refused, reason in (
        (denial, "was already decided"),
        (ToolApproval(call_id="call-7", approved=True), "no tool"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(CodingTask.approve_tool, refused)
        assert reason in str(failed.value.cause)
    final = await finish(handle)
    results = tool_results(fake_llm)
    assert results["web__note"] == "denied by the user: not in this task"
    assert results["git__git_reset"] == "git.git_reset is denied by the worker's policy: it was not run"
    assert not notes.exists()
    assert "staged.txt" in git(git_repo, "diff", "--cached", "--name-only")  # git_reset never ran
    assert final.tool_usage["web.note"].denied == 1 and final.tool_usage["web.note"].calls == 0
    assert final.tool_usage["git.git_reset"].denied == 1 and final.pending_approvals == []


async def test_a_killed_server_is_restarted_and_the_call_retried(
    client: Client, mcp_worker: Worker, mcp_plugin: OrchestratorPlugin, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    description = '[tool probe__pid {}] [tool probe__slow {"seconds": 1.5}]'
    handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=0,
                              mcp_tools=["probe"])  # fmt: skip
    pid_call = await wait_for_event(handle, lambda e: e.type == EventType.TOOL_CALL and e.data["tool"] == "probe.pid")
    first_pid = int(pid_call.data["result"])
    assert (await handle.query(CodingTask.status)).task_status == TaskStatus.RUNNING
    os.kill(first_pid, 9)  # while probe.slow runs on it
    final = await handle.result()
    slept = tool_results(fake_llm)["probe__slow"]
    assert slept.startswith("slept 1.5") and int(slept.rsplit(" ", 1)[1]) != first_pid  # in a new process
    attempts = [attempt for name, attempt in await activities_of(handle) if name == MCP_CALL_TOOL_ACTIVITY]
    assert sorted(attempts) == [1, 2]  # pid on its first attempt, slow on its second (history keeps the last)
    assert final.tool_usage["probe.slow"].errors == 0
    assert mcp_plugin.worker_activities is not None and mcp_plugin.worker_activities.mcp.pool.opened == 2


async def test_a_hanging_tool_times_out_and_a_huge_result_is_capped(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    description = '[tool probe__hang {}] [tool probe__huge {"chars": 300000}]'
    handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=0,
                              mcp_tools=["probe"], min_lint_score=None)  # fmt: skip
    final = await handle.result()
    results = tool_results(fake_llm)
    assert results["probe__hang"] == "probe.hang failed: McpError: Request 'tools/call' timed out (JSON-RPC -32001)"
    huge = results["probe__huge"]
    assert huge.startswith("x" * 20_000) and huge.endswith("… (280000 characters cut)")
    assert final.tool_usage["probe.hang"].errors == 1
    attempts = [(n, a) for n, a in await activities_of(handle) if n == MCP_CALL_TOOL_ACTIVITY]
    assert len(attempts) == 2  # a tool that may change things is called once, never retried
