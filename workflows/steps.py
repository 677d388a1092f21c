"""The task's activity calls and what each one records: a model call (usage, cost, warnings, and the wait for
more budget when the next call could exceed it), a lint, a knowledge-base search, a tool call of an agent.

The supervisor (`coding_task.py`) decides what to call; this module calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from temporalio import workflow

from workflows import calls, testing, tools, usage
from workflows.calls import ActivityFailed, TaskFailed
from workflows.journal import Journal
from workflows.models import (
    AgentRole,
    Budget,
    BudgetRaise,
    ChatMessage,
    CodingTaskInput,
    EventType,
    LintRequest,
    LintResult,
    LlmRequest,
    LlmResponse,
    RagQuery,
    RunTestsRequest,
    TaskStatus,
    TestReport,
    ToolCall,
)

T = TypeVar("T")


class Steps:
    def __init__(self, task: CodingTaskInput, journal: Journal) -> None:
        self._task = task
        self._journal = journal
        self._state = journal.state
        self._budget_raises = 0

    async def _execute(self, activity: calls.Activity[T], arg: Any, summary: str) -> T:
        self._journal.sync()  # the search attributes go out before the workflow waits
        return await calls.execute(activity, arg, summary)

    async def llm(self, request: LlmRequest) -> LlmResponse:
        step = request.step
        doing = f"{request.role} · {request.model or 'default model'} · step {step}"
        while True:
            request.allowance = usage.allowance(self._state)
            try:
                reply = await self._execute(calls.LLM, request, doing)
                break
            except ActivityFailed as exc:
                if exc.type != "BudgetExceeded":
                    raise TaskFailed(f"{request.role} model call failed: {exc}") from exc
                await self._await_budget(str(exc))
        usage.record_reply(self._state, request.role, reply)
        self._journal.details(f"{request.role} · {reply.model} · step {step}")
        for warning in reply.warnings:
            self._journal.warn(warning, request.role)
        with_calls = f" with {len(reply.tool_calls)} tool call(s)" if reply.tool_calls else ""
        data = {"step": step, "model": reply.model, "tool_calls": [c.name for c in reply.tool_calls]}
        message = f"{request.role} step {step}: {reply.model} answered{with_calls}"
        self._journal.event(EventType.LLM_CALL, message, request.role, data)
        return reply

    async def _await_budget(self, reason: str) -> None:
        """The next call could exceed the budget: wait for `raise_budget`, at most the feedback window."""
        going_on_as = self._state.task_status
        self._journal.set_status(TaskStatus.AWAITING_BUDGET, f"awaiting budget: {reason}")
        self._journal.event(EventType.BUDGET_EXHAUSTED, reason, data=self._state.budget.model_dump())
        self._journal.sync()
        raises = self._budget_raises
        window = self._task.feedback_window
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._budget_raises > raises, timeout=window)
        if self._budget_raises == raises:
            raise TaskFailed(f"budget exhausted and not raised within {window}: {reason}")
        self._journal.set_status(going_on_as, "budget raised; going on")

    def raise_budget(self, raise_: BudgetRaise) -> Budget:
        """Apply a validated `raise_budget` (the update's handler); a task waiting for it goes on."""
        usage.apply_raise(self._state, raise_)
        self._budget_raises += 1
        self._journal.event(EventType.BUDGET_RAISED, "budget raised", data=self._state.budget.model_dump())
        return self._state.budget

    async def lint(self, code: str, step: int) -> LintResult:
        try:
            result = await self._execute(calls.LINT, LintRequest(code=code), f"lint · step {step}")
        except ActivityFailed as exc:
            result = LintResult(error=f"lint unavailable: {exc}")
        data = {"score": result.score, "error": result.error}
        self._journal.event(EventType.LINT, result.summary(limit=0), data=data)
        return result

    async def run_tests(self, request: RunTestsRequest, step: int) -> TestReport:
        """A sandboxed run of the tests; a run that cannot happen (its retries spent) is reported `unavailable`."""
        summary = f"run_tests · {request.module} · step {step}"
        try:
            report = await self._execute(calls.RUN_TESTS, request, summary)
        except ActivityFailed as exc:
            report = TestReport(outcome="unavailable", error=str(exc))
        head = report.summary(limit=0)
        self._journal.details(head)  # the Web UI's details line: `run_tests · 3 passed, 1 failed`
        self._journal.event(EventType.TESTS, head, data=testing.run_data(report))
        return report

    async def run_tools(self, role: AgentRole, tool_calls: list[ToolCall], step: int) -> list[ChatMessage]:
        """The agent's tool calls, run concurrently; each result (or what was wrong) goes back to the model."""
        return list(await asyncio.gather(*(self._run_tool(role, call, step) for call in tool_calls)))

    async def _run_tool(self, role: AgentRole, call: ToolCall, step: int) -> ChatMessage:
        arguments = tools.parse_arguments(call)
        if isinstance(arguments, str):
            text, is_error = arguments, True
        elif isinstance(arguments, tools.LintArgs):
            result = await self.lint(arguments.code, step)
            text, is_error = result.summary(), result.error is not None
        elif isinstance(arguments, tools.RunTestsArgs):
            text, is_error = await self._run_tests_tool(arguments, step)
        else:
            text, is_error = await self._search(arguments)
        message = f"{role} called {call.name}" + (" (error)" if is_error else "")
        data = {"tool": call.name, "is_error": is_error, "result": text[:300]}
        self._journal.event(EventType.TOOL_CALL, message, agent=role, data=data)
        return ChatMessage(role="tool", tool_call_id=call.id, content=text, is_error=is_error)

    async def _run_tests_tool(self, arguments: tools.RunTestsArgs, step: int) -> tuple[str, bool]:
        plan = testing.TestPlan.of(self._task)
        if not plan.on:
            return "run_tests is not available in this task (its test gate is off)", True
        request = plan.request(self._task, arguments.code, arguments.tests)
        if request is None:
            return "no tests to run: give `tests` (pytest tests that import the module)", True
        report = await self.run_tests(request, step)
        return testing.report_text(report), report.outcome == "unavailable"

    async def _search(self, arguments: tools.SearchKnowledgeArgs) -> tuple[str, bool]:
        query = RagQuery(query=arguments.query, top_k=arguments.top_k)
        try:
            found = await self._execute(calls.RAG, query, f"rag · {query.query[:60]}")
        except ActivityFailed as exc:
            message = f"knowledge base unavailable: {exc}"
            self._journal.warn(message)
            return message + " (continue without it)", True
        return tools.search_result_text(found), False
