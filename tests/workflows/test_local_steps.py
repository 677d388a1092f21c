"""The short steps (lint, knowledge search) run as local activities first, and as regular activities when the
local try fails or is slow (`workflows.calls`, patch `local-steps`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.support import start_task
from tests.workflows.stubs import FINAL_CODE, StubActivities, calls
from workflows.calls import RAG
from workflows.coding_task import CodingTask
from workflows.models import (
    LINT_ACTIVITY,
    LLM_ACTIVITY,
    RAG_ACTIVITY,
    AgentRole,
    LintRequest,
    LintResult,
    LlmResponse,
    RagQuery,
    RagResult,
    TaskStatus,
    ToolCall,
)

CODE = AgentRole.CODE_GENERATION
TOOL_CALLS = calls(
    ToolCall(id="s", name="search_knowledge", arguments={"query": "add"}),
    ToolCall(id="l", name="lint", arguments={"code": "def add(a, b): return a + b\n"}),
)


class Tries(StubActivities):
    """The stub activities, each lint and search noting whether it ran local or regular; `local` decides what a
    local try does (None: answers as the stub does)."""

    def __init__(self, local: Callable[[str], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.tries: list[tuple[str, bool]] = []
        self._local = local

    async def _try(self, name: str) -> None:
        is_local = activity.info().is_local
        self.tries.append((name, is_local))
        if is_local and self._local is not None:
            await self._local(name)

    @activity.defn(name=LINT_ACTIVITY)
    async def lint(self, request: LintRequest) -> LintResult:
        await self._try(LINT_ACTIVITY)
        return await super().lint(request)

    @activity.defn(name=RAG_ACTIVITY)
    async def search_knowledge(self, query: RagQuery) -> RagResult:
        await self._try(RAG_ACTIVITY)
        return await super().search_knowledge(query)


async def run_task(client: Client, task_queue: str, stubs: Tries) -> WorkflowHandle[Any, Any]:
    stubs.script(CODE, TOOL_CALLS, LlmResponse(model="stub:model", content=FINAL_CODE))
    activities: list[Callable[..., Any]] = [stubs.chat, stubs.lint, stubs.search_knowledge]
    async with Worker(client, task_queue=task_queue, workflows=[CodingTask], activities=activities):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.errors == [] and final.warnings == []
    code_turn = next(r for r in stubs.requests if r.role == CODE and r.step == 2)
    results = {m.tool_call_id: m for m in code_turn.messages if m.role == "tool"}
    assert "kb/add.py" in results["s"].content and not results["s"].is_error
    assert "10.0" in results["l"].content and not results["l"].is_error
    return handle


async def scheduled_and_marked(handle: WorkflowHandle[Any, Any]) -> tuple[Counter[str], list[str]]:
    """The activity types scheduled on the server, and the patch and local-activity markers in the history."""
    scheduled: Counter[str] = Counter()
    markers = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            markers.append(event.marker_recorded_event_attributes.marker_name)
    return scheduled, markers


async def test_lint_and_search_run_as_local_activities_and_the_model_calls_as_regular_ones(
    client: Client, task_queue: str
) -> None:
    stubs = Tries()
    handle = await run_task(client, task_queue, stubs)
    # the tool round's search and lint, and the final answer's lint: each once, local
    assert stubs.tries == [(RAG_ACTIVITY, True), (LINT_ACTIVITY, True), (LINT_ACTIVITY, True)]
    scheduled, markers = await scheduled_and_marked(handle)
    assert scheduled == Counter({LLM_ACTIVITY: 4})  # planner, two code turns, docs: model calls stay durable
    # lint-gate-at-start and local-steps
    assert markers.count("core_local_activity") == 3 and markers.count("core_patch") == 2


async def test_a_local_try_that_fails_runs_again_as_the_regular_activity(client: Client, task_queue: str) -> None:
    async def fail(_name: str) -> None:
        raise RuntimeError("pool not there")

    stubs = Tries(local=fail)
    handle = await run_task(client, task_queue, stubs)
    # every local try failed and was followed by its regular activity (the tool round's two run concurrently)
    assert Counter(stubs.tries) == {(RAG_ACTIVITY, True): 1, (RAG_ACTIVITY, False): 1, (LINT_ACTIVITY, True): 2,
                                    (LINT_ACTIVITY, False): 2}  # fmt: skip
    assert stubs.tries[-2:] == [(LINT_ACTIVITY, True), (LINT_ACTIVITY, False)]  # the final answer's lint
    scheduled, _ = await scheduled_and_marked(handle)
    assert scheduled == Counter({LLM_ACTIVITY: 4, LINT_ACTIVITY: 2, RAG_ACTIVITY: 1})


async def test_a_slow_local_try_is_cut_at_its_bound_and_runs_as_the_regular_activity(
    client: Client, task_queue: str
) -> None:
    bound = RAG.local["start_to_close_timeout"] if RAG.local else None
    assert bound is not None and bound.total_seconds() <= 5

    async def hang(name: str) -> None:
        if name == RAG_ACTIVITY:  # lint answers at once, locally
            await asyncio.sleep(3600)

    stubs = Tries(local=hang)
    handle = await run_task(client, task_queue, stubs)
    scheduled, _ = await scheduled_and_marked(handle)
    assert scheduled == Counter({LLM_ACTIVITY: 4, RAG_ACTIVITY: 1})
    assert Counter(stubs.tries) == {(RAG_ACTIVITY, True): 1, (RAG_ACTIVITY, False): 1, (LINT_ACTIVITY, True): 2}
