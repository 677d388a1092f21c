"""The supervisor's decisions, with stub activities under the real names (fast: no fake servers, no pylint)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.support import binary, start_task, wait_for_state
from tests.workflows.stubs import FINAL_CODE, StubActivities, calls
from workflows.coding_task import CodingTask
from workflows.models import (
    TASK_QUEUE,
    WORKFLOW_TYPE,
    AgentRole,
    Budget,
    BudgetRaise,
    EventsQueryInput,
    EventType,
    FeedbackInput,
    LintGate,
    LintMessage,
    LintResult,
    LintRound,
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


async def test_files_reach_the_planner_and_the_code_agent_under_their_paths(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    files = [
        {"path": "src/shop/cart.py", "content": "def total(items):\n    return sum(items)\n"},
        {"path": "README.md", "content": "# Shop\n```sh\nmake run\n```\n"},
    ]
    handle = await start_task(
        client, stub_worker.task_queue, feedback_window_seconds=0, code_context="uses Python 3.11", files=files
    )
    assert (await handle.result()).task_status == TaskStatus.COMPLETED
    planner, code = (r.messages[0].content for r in stubs.requests[:2])
    for prompt in (planner, code):
        assert "## Existing code\nuses Python 3.11\n\n### File: src/shop/cart.py\n```\ndef total(items):" in prompt
        assert "### File: README.md\n````\n# Shop\n```sh\nmake run\n```\n````" in prompt  # a longer fence
    assert "src/shop/cart.py" not in stubs.requests[2].messages[0].content  # the doc agent gets the code only


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
    assert results["t1"] == ("unknown tool 'rm_rf'; available: lint, search_knowledge, run_tests", True)
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
    warning = "OPENAI_API_KEY is not set: planner used offline"
    stubs.script(AgentRole.PLANNER, LlmResponse(model="offline", content="1. plan", warnings=[warning]))
    stubs.script(CODE, LlmResponse(model="offline", content=FINAL_CODE, warnings=[warning, "cut short"]))
    final = await (await start_task(client, stub_worker.task_queue, feedback_window_seconds=0)).result()
    assert final.warnings == [warning, "cut short"]


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


BAD_CODE = "```python\ndef add(a, b):\n    return a + c\n```"
UNDEFINED = LintMessage(
    line=2, column=15, symbol="undefined-variable", message_id="E0602", type="error", message="Undefined variable 'c'"
)


def _lint_by_code(code: str) -> LintResult:
    """pylint as the stub sees it: code that uses `c` fails with E0602, the rest scores 10."""
    return LintResult(score=3.3, messages=[UNDEFINED]) if "a + c" in code else LintResult(score=10.0)


def _code(content: str) -> LlmResponse:
    return LlmResponse(model="stub:model", content=content, input_tokens=10, output_tokens=5)


async def test_the_quality_gate_sends_pylint_back_and_passes_once_fixed(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.lint_result = _lint_by_code
    stubs.script(CODE, _code(BAD_CODE))  # then the default answer: good code
    handle = await start_task(client, stub_worker.task_queue, feedback_window_seconds=0)
    final = await handle.result()
    code = final.results.code_generation
    assert code is not None and code.lint_gate == LintGate.PASSED and "a + b" in code.code
    assert code.lint_rounds == [LintRound(round=1, score_before=3.3, score_after=10.0, errors_before=1, errors_after=0)]
    fix_request = [r for r in stubs.requests if r.role == CODE][1]
    fix_turn = fix_request.messages[-1]
    assert fix_turn.role == "user" and fix_turn.content.startswith("pylint scored 3.3/10")
    assert "E0602 undefined-variable Undefined variable 'c' (line 2)" in fix_turn.content
    assert fix_request.messages[-2].content == BAD_CODE  # the same conversation: its own answer, then the verdict
    docs_prompt = next(r for r in stubs.requests if r.role == AgentRole.DOCUMENTATION).messages[0].content
    assert "a + b" in docs_prompt and "a + c" not in docs_prompt  # the docs describe the final code
    gate_events = [
        e for e in (await handle.query(CodingTask.events, EventsQueryInput())).events if e.type == "lint_gate"
    ]
    assert [e.data["score_after"] for e in gate_events] == [10.0]
    assert final.warnings == []


async def test_a_model_that_never_fixes_stops_after_the_rounds_with_a_warning(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.lint_result = _lint_by_code
    stubs.script(CODE, *[_code(BAD_CODE)] * 3)
    handle = await start_task(client, stub_worker.task_queue, feedback_window_seconds=0, max_fix_rounds=2)
    final = await handle.result()
    code = final.results.code_generation
    assert code is not None and code.lint_gate == LintGate.FAILED and len(code.lint_rounds) == 2
    assert [r.role for r in stubs.requests].count(CODE) == 3  # the answer and two fix rounds, never more
    assert final.warnings == ["quality gate failed after 2 fix round(s) (bar 8): pylint 3.3/10, 1 error(s)"]
    assert final.results.documentation is not None  # the task still goes on to the docs
    assert final.task_status == TaskStatus.COMPLETED


@pytest.mark.parametrize(
    ("fields", "gate", "lint"),
    [
        ({"min_lint_score": None}, LintGate.OFF, LintResult(score=3.3, messages=[UNDEFINED])),
        ({}, LintGate.FAILED, LintResult(error="pylint timed out after 30s")),
        ({"max_fix_rounds": 0}, LintGate.FAILED, LintResult(score=3.3, messages=[UNDEFINED])),
        ({"min_lint_score": 3.0}, LintGate.FAILED, LintResult(score=3.3, messages=[UNDEFINED])),  # errors fail
    ],
)
async def test_the_gate_off_unjudgeable_or_without_rounds_makes_no_round(
    client: Client, stub_worker: Worker, stubs: StubActivities, fields: dict, gate: LintGate, lint: LintResult
) -> None:
    stubs.lint_result = lambda code: lint
    fields = {"feedback_window_seconds": 0, "max_fix_rounds": fields.pop("max_fix_rounds", 0), **fields}
    final = await (await start_task(client, stub_worker.task_queue, **fields)).result()
    code = final.results.code_generation
    assert code is not None and code.lint_gate == gate and code.lint_rounds == []
    assert [r.role for r in stubs.requests].count(CODE) == 1


async def test_a_budget_that_stops_before_a_call_waits_for_a_raise(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    # each call spends 15 tokens, but its bound is the estimate of its input plus max_tokens (4096): the
    # planner's (a short prompt) fits in 4,250, the code agent's (its system prompt, the plan, tool schemas) does not
    handle = await start_task(client, stub_worker.task_queue, budget_tokens=4_250)
    state = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_BUDGET)
    assert state.budget.budget_tokens == 4_250 and state.budget.spent_tokens == 15  # the planner's call
    assert stubs.roles() == [AgentRole.PLANNER]
    page = await handle.query(CodingTask.events, EventsQueryInput())
    exhausted = [e for e in page.events if e.type == EventType.BUDGET_EXHAUSTED]
    assert len(exhausted) == 1 and "the next code_generation call may use up to" in exhausted[0].message

    # refused raises change nothing
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=15))
    assert "budget_tokens must be above what is spent (15 tokens)" in str(refused.value.cause)
    for payload in (
        {},
        {"budget_usd": None},
        {"budget_tokens": "lots"},
        {"budget_tokens": -5},
        {"budget_usd": 1, "x": 1},
        [3],
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("raise_budget", payload, result_type=Budget)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.message.startswith("raise_budget: "), cause  # field: why
    assert (await handle.query(CodingTask.status)).budget == state.budget

    raised = await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=100_000))
    assert raised.budget_tokens == 100_000 and raised.spent_tokens == 15
    final = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    assert final.results.documentation is not None and final.errors == []
    types = [e.type for e in (await handle.query(CodingTask.events, EventsQueryInput())).events]
    assert types.count(EventType.BUDGET_RAISED) == 1


async def test_a_raise_that_comes_while_the_refused_call_runs_is_not_lost(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    """A raise too small lets the code agent's call try again; a big raise lands while that try runs (with the
    allowance it was given before). The try is refused, and the task goes on under the big raise at once instead
    of waiting for a third."""
    handle = await start_task(client, stub_worker.task_queue, budget_tokens=4_250)
    state = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_BUDGET)
    needed = state.budget.needed_tokens
    assert needed is not None
    stubs.hold = asyncio.Event()
    small = await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=needed - 1))
    assert small.shortfall() is not None
    await asyncio.wait_for(stubs.held.wait(), 30)  # the code agent's call tries again, under the small raise
    await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=100_000))
    stubs.hold.set()
    final = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    assert final.budget.budget_tokens == 100_000 and final.results.documentation is not None
    types = [e.type for e in (await handle.query(CodingTask.events, EventsQueryInput())).events]
    assert types.count(EventType.BUDGET_RAISED) == 2 and types.count(EventType.BUDGET_EXHAUSTED) == 1


async def test_a_budget_not_raised_within_the_window_fails_the_task_and_keeps_what_was_done(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    handle = await start_task(client, stub_worker.task_queue, budget_usd=4.2, feedback_window_seconds=1)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "budget exhausted and not raised within 0:00:01" in str(failure.value.cause)
    state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.FAILED and state.plan == "1. add"  # the partial results stay readable
    assert state.budget.spent_usd == pytest.approx(0.015) and state.cost_usd == pytest.approx(0.015)
