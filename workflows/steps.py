"""The task's activity calls and what each one records: a model call (usage, cost, warnings, and the wait for
more budget when the next call could exceed it), a lint, a knowledge-base search, a tool call of an agent (an MCP
tool's after its approval, where its policy asks for one).

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
    McpCallRequest,
    McpListRequest,
    McpTool,
    PendingApproval,
    RagQuery,
    RunTestsRequest,
    TaskStatus,
    TestReport,
    ToolApproval,
    ToolCall,
    ToolUsage,
)

T = TypeVar("T")
# A budget raise that came while the call it was for ran is not waited for again (docs/operations.md: patches).
BUDGET_RAISED_MEANWHILE = "budget-raised-meanwhile"


class Steps:
    def __init__(self, task: CodingTaskInput, journal: Journal) -> None:
        self._task = task
        self._journal = journal
        self._state = journal.state
        self._budget_raises = 0
        # by the name the model calls; listed once per task (a continued-as-new run gets the list it had)
        listed = task.resume.mcp_tools if task.resume else None
        self._mcp_tools = None if listed is None else {tool.model_name: tool for tool in listed}
        self._decisions: dict[str, ToolApproval] = {}  # approve_tool's decisions by call id
        self._approvals_asked = 0
        self._status_before_approval = TaskStatus.RUNNING

    async def _execute(self, activity: calls.Activity[T], arg: Any, summary: str) -> T:
        self._journal.sync()  # the search attributes go out before the workflow waits
        return await calls.execute(activity, arg, summary)

    async def llm(self, request: LlmRequest) -> LlmResponse:
        step = request.step
        doing = f"{request.role} · {request.model or 'default model'} · step {step}"
        while True:
            raises = self._budget_raises  # the raises this call's allowance has seen
            request.allowance = usage.allowance(self._state)
            request.deltas = self._journal.watch.watched()  # unwatched: the call publishes only if someone comes
            self._journal.calling = request.role  # its llm_delta events are taken while it runs
            self._journal.call_deltas = 0
            try:
                reply = await self._execute(calls.LLM, request, doing)
                break
            except ActivityFailed as exc:
                if exc.type != "BudgetExceeded":
                    raise TaskFailed(f"{request.role} model call failed: {exc}") from exc
                usage.record_need(self._state, exc.details[0] if exc.details else None)
                await self._await_budget(str(exc), raises)
            finally:
                self._journal.calling = None
        late = not request.deltas and reply.streams_deltas and not self._journal.call_deltas
        if late and reply.content and self._journal.watch.watched():
            self._journal.late_delta(request.role, step, reply.content)  # a watcher came after the call's last look
        usage.record_need(self._state, None)
        usage.record_reply(self._state, request.role, reply)
        self._journal.details(f"{request.role} · {reply.model} · step {step}")
        for warning in reply.warnings:
            self._journal.warn(warning, request.role)
        with_calls = f" with {len(reply.tool_calls)} tool call(s)" if reply.tool_calls else ""
        data = {"step": step, "model": reply.model, "tool_calls": [c.name for c in reply.tool_calls]}
        message = f"{request.role} step {step}: {reply.model} answered{with_calls}"
        self._journal.event(EventType.LLM_CALL, message, request.role, data)
        return reply

    async def _await_budget(self, reason: str, seen: int) -> None:
        """The next call could exceed the budget: wait for a `raise_budget` after the `seen` first ones (those its
        allowance had), at most the feedback window. One that came while the refused call ran is not waited for
        again: the call is tried at once under it (before the patch, the task waited for yet another raise)."""
        if self._budget_raises > seen and workflow.patched(BUDGET_RAISED_MEANWHILE):
            return
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

    @property
    def listed_mcp_tools(self) -> list[McpTool] | None:
        """The MCP tools as listed, for the next run when the task continues as new (None: not listed yet)."""
        return None if self._mcp_tools is None else list(self._mcp_tools.values())

    async def mcp_tools(self) -> list[McpTool]:
        """The MCP tools the task's `mcp_tools` selects: listed by one activity at the first agent step, then kept
        (no activity at all when the task selects none). What cannot be offered is a warning, not a failure."""
        if self._mcp_tools is None:
            self._mcp_tools = {}
            if selectors := self._task.mcp_tools:
                request = McpListRequest(selectors=selectors)
                try:
                    listed = await self._execute(calls.MCP_LIST, request, "mcp • list tools")
                except ActivityFailed as exc:
                    self._journal.warn(f"MCP tools unavailable: {exc}")
                    return []
                self._mcp_tools = {tool.model_name: tool for tool in listed.tools}
                for selector, reason in listed.unavailable.items():
                    self._journal.warn(f"MCP {selector} unavailable: {reason}")
                names = [tool.name for tool in listed.tools]
                self._journal.event(EventType.TOOL_CALL, f"MCP tools offered: {', '.join(names) or 'none'}",
                                    data={"tool": "mcp_list_tools", "offered": names})  # fmt: skip
        return list(self._mcp_tools.values())

    async def _run_tool(self, role: AgentRole, call: ToolCall, step: int) -> ChatMessage:
        mcp_tool = (self._mcp_tools or {}).get(call.name)
        if mcp_tool is not None:
            text, is_error = await self._mcp_call(role, mcp_tool, call)
            message = f"{role} called {mcp_tool.name}" + (" (error)" if is_error else "")
            data = {"tool": mcp_tool.name, "server": mcp_tool.server, "is_error": is_error, "result": text[:300]}
            self._journal.event(EventType.TOOL_CALL, message, agent=role, data=data)
            return ChatMessage(role="tool", tool_call_id=call.id, content=text, is_error=is_error)
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

    async def _mcp_call(self, role: AgentRole, tool: McpTool, call: ToolCall) -> tuple[str, bool]:
        """One MCP tool call under its policy: `deny` never runs, `ask` waits for `approve_tool`; the result (or
        why there is none) is what the model reads."""
        if call.arguments_error:
            return f"invalid arguments for {tool.name}: {call.arguments_error}", True
        usage = self._state.tool_usage.setdefault(tool.name, ToolUsage())
        if tool.policy == "deny":
            usage.denied += 1
            return f"{tool.name} is denied by the worker's policy: it was not run", True
        if tool.policy == "ask":
            decision = await self._approval(role, tool, call)
            if not decision.approved:
                usage.denied += 1
                return f"denied by the user: {decision.reason or 'no reason given'}", True
        usage.calls += 1
        request = McpCallRequest(server=tool.server, tool=tool.tool, arguments=call.arguments, call_id=call.id)
        try:
            result = await self._execute(calls.MCP_CALL if tool.retryable else calls.MCP_CALL_ONCE, request,
                                         f"mcp • {tool.name}")  # fmt: skip
        except ActivityFailed as exc:
            usage.errors += 1
            return f"{tool.name} failed: {exc}", True
        usage.errors += result.is_error
        return result.text, result.is_error

    async def _approval(self, role: AgentRole, tool: McpTool, call: ToolCall) -> ToolApproval:
        """Wait for the `approve_tool` update on this call, at most the feedback window (then it is denied)."""
        self._approvals_asked += 1
        call_id = f"call-{self._approvals_asked}"
        if self._state.task_status != TaskStatus.AWAITING_APPROVAL:
            self._status_before_approval = self._state.task_status
        pending = PendingApproval(
            call_id=call_id, tool=tool.name, arguments=call.arguments, requested_at=workflow.now().isoformat()
        )
        self._state.pending_approvals.append(pending)
        self._journal.set_status(TaskStatus.AWAITING_APPROVAL, f"awaiting approval of {tool.name} ({call_id})")
        data = {"call_id": call_id, "tool": tool.name, "server": tool.server, "arguments": call.arguments}
        self._journal.event(EventType.APPROVAL_REQUESTED, f"{tool.name} waits for approval ({call_id})", role, data)
        self._journal.sync()
        window = self._task.feedback_window
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: call_id in self._decisions, timeout=window)
        if call_id not in self._decisions:
            self.decide(ToolApproval(call_id=call_id, approved=False, reason=f"no decision within {window}"))
        if not self._state.pending_approvals:
            self._journal.set_status(self._status_before_approval, "approvals decided; going on")
        return self._decisions[call_id]

    def check_decision(self, decision: ToolApproval) -> None:
        """The `approve_tool` validator's rule: a call that waits, decided once."""
        if decision.call_id in self._decisions:
            raise ValueError(f"tool call {decision.call_id!r} was already decided")
        if not any(p.call_id == decision.call_id for p in self._state.pending_approvals):
            raise ValueError(f"no tool call {decision.call_id!r} waits for approval")

    def decide(self, decision: ToolApproval) -> PendingApproval:
        """Apply a validated `approve_tool` (the update's handler), or a wait's end: the call goes on or is refused."""
        pending = next(p for p in self._state.pending_approvals if p.call_id == decision.call_id)
        self._state.pending_approvals.remove(pending)
        self._decisions[decision.call_id] = decision
        verdict = "approved" if decision.approved else "denied"
        data = {"call_id": decision.call_id, "tool": pending.tool, "approved": decision.approved,
                "reason": decision.reason}  # fmt: skip
        self._journal.event(EventType.APPROVAL_DECIDED, f"{pending.tool} {verdict} ({decision.call_id})", data=data)
        return pending

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
        query = RagQuery(query=arguments.query, top_k=arguments.top_k, owner=self._journal.visibility.owner)
        try:
            found = await self._execute(calls.RAG, query, f"rag · {query.query[:60]}")
        except ActivityFailed as exc:
            message = f"knowledge base unavailable: {exc}"
            self._journal.warn(message)
            return message + " (continue without it)", True
        return tools.search_result_text(found), False
