"""Stub activities registered under the real activity names, for the workflow tests.

The workflow runs on the real dev server, but its activities are scripted here, so a routing, loop or validation
bug shows in milliseconds; the fake-server suite (`test_integration.py`) stays the integration layer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio import activity

from activities.llm import check_allowance, cost_of
from activities.prices import ModelPrice
from workflows.models import (
    LINT_ACTIVITY,
    LLM_ACTIVITY,
    RAG_ACTIVITY,
    RUN_TESTS_ACTIVITY,
    AgentRole,
    LintRequest,
    LintResult,
    LlmRequest,
    LlmResponse,
    RagHit,
    RagQuery,
    RagResult,
    RunTestsRequest,
    TestReport,
    ToolCall,
)

FINAL_CODE = '```python\n"""Add."""\n\n\ndef add(a: int, b: int) -> int:\n    """Sum."""\n    return a + b\n```\nDone.'


STUB_PRICE = ModelPrice(input=1000.0, output=1000.0)  # $0.001 a token: easy sums


@dataclass
class StubActivities:
    """Scripted replies per role (the rest answer plainly); every request is kept for the test to read. The budget
    check is the real one (`check_allowance`), at STUB_PRICE."""

    replies: dict[AgentRole, list[LlmResponse]] = field(default_factory=dict)
    requests: list[LlmRequest] = field(default_factory=list)
    lints: list[str] = field(default_factory=list)
    queries: list[RagQuery] = field(default_factory=list)
    lint_result: Callable[[str], LintResult] = lambda code: LintResult(score=10.0)
    test_runs: list[RunTestsRequest] = field(default_factory=list)
    test_reports: list[TestReport] = field(default_factory=list)  # scripted, in order; then every run passes
    hold: asyncio.Event | None = None  # while set and not yet set free, a model call waits here before its check
    hold_role: AgentRole | None = None  # only this role's calls wait at `hold` (None: every call)
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set when a call waits at `hold`

    def passing(self, passed: int = 1) -> TestReport:
        return TestReport(outcome="passed", passed=passed, exit_code=0)

    def script(self, role: AgentRole, *replies: LlmResponse) -> None:
        self.replies.setdefault(role, []).extend(replies)

    @activity.defn(name=LLM_ACTIVITY)
    async def chat(self, request: LlmRequest) -> LlmResponse:
        held = self.hold_role in (None, request.role)
        if self.hold is not None and not self.hold.is_set() and held:
            self.held.set()
            await self.hold.wait()
        check_allowance(request, "stub:model", STUB_PRICE)
        self.requests.append(request)
        scripted = self.replies.get(request.role)
        if scripted:
            return scripted.pop(0)
        content = {AgentRole.PLANNER: "1. add", AgentRole.CODE_GENERATION: FINAL_CODE}.get(request.role, "# Docs")
        reply = LlmResponse(model="stub:model", content=content, input_tokens=10, output_tokens=5)
        reply.cost_usd = cost_of(reply, STUB_PRICE)
        return reply

    @activity.defn(name=LINT_ACTIVITY)
    async def lint(self, request: LintRequest) -> LintResult:
        self.lints.append(request.code)
        return self.lint_result(request.code)

    @activity.defn(name=RUN_TESTS_ACTIVITY)
    async def run_tests(self, request: RunTestsRequest) -> TestReport:
        """Runs nothing (the real activity is the sandbox's): answers with the scripted reports."""
        self.test_runs.append(request)
        return self.test_reports.pop(0) if self.test_reports else self.passing()

    @activity.defn(name=RAG_ACTIVITY)
    async def search_knowledge(self, query: RagQuery) -> RagResult:
        self.queries.append(query)
        return RagResult(results=[RagHit(content="def add(a, b): ...", source="kb/add.py", score=1.0)])

    def roles(self) -> list[AgentRole]:
        return [r.role for r in self.requests]


def calls(*tool_calls: ToolCall) -> LlmResponse:
    """A model reply that calls tools."""
    return LlmResponse(model="stub:model", tool_calls=list(tool_calls), input_tokens=10, output_tokens=5)
