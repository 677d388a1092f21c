"""The `CodingTask` workflow: the supervisor that plans a task and routes it through the agents.

Workflows decide, activities do: every model call, lint and knowledge-base query is an activity, so the
workflow history is the checkpoint. A crashed worker resumes from the last completed activity and never
pays for a finished model call twice. What this class delegates lives beside it: the activity calls and
what each records (`steps`, with the options in `calls`), the task's record of events, warnings and status
(`journal`, over `events` and `visibility`), usage and budget (`usage`), the quality gate's judgement
(`quality`) and the tools' argument contracts (`tools`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Self

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    # `import a.b as b`, not `from a import b`: the latter re-imports (and compiles) b in the sandbox at every run
    import workflows.inputs as inputs
    import workflows.prompts as prompts
    import workflows.quality as quality
    import workflows.testing as testing
    import workflows.usage as usage
    from workflows.calls import TaskFailed
    from workflows.events import MAX_EVENTS, EventLog
    from workflows.journal import Journal
    from workflows.models import (
        ACCEPTED_RATING,
        APPROVE_TOOL_UPDATE,
        EVENTS_QUERY,
        FEEDBACK_SIGNAL,
        OWNER_MEMO,
        RAISE_BUDGET_UPDATE,
        STATUS_QUERY,
        TERMINAL_STATUSES,
        WORKFLOW_TYPE,
        AgentRole,
        Budget,
        BudgetRaise,
        ChatMessage,
        CodeResult,
        CodingTaskInput,
        DocResult,
        EventsPage,
        EventsQueryInput,
        EventType,
        Feedback,
        FeedbackInput,
        LlmRequest,
        LlmResponse,
        PendingApproval,
        ResumeState,
        TaskEnded,
        TaskState,
        TaskStatus,
        TestReport,
        ToolApproval,
        ToolName,
    )
    from workflows.quality import Draft, Gates
    from workflows.steps import Steps
    from workflows.visibility import SearchAttributeSync

TOOLS = [ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]
LINT_GATE_PATCH = "lint-gate"  # tasks started before the quality gate replay without it (README: Changing the workflow)
# The same gate, decided as the run starts rather than after the draft's lint (a local activity): a query answered
# during that lint splits its workflow task, and on replay `lint-gate` was then read before it was announced.
# Runs that have the `lint-gate` marker replay with it where it is (tests/workflows/test_query_split.py).
LINT_GATE_AT_START_PATCH = "lint-gate-at-start"
# Feedback is taken only while the task awaits it; tasks started before this rule replay with the old one (queued).
FEEDBACK_AWAITED_PATCH = "feedback-when-awaited"


# A start input that does not validate (a misspelt field, a missing task_description, not an object) fails the
# workflow at once with pydantic's message naming each field, instead of a workflow task retried forever.
@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class CodingTask:
    def __new__(cls, *task: object) -> Self:
        """The SDK builds the workflow with the start's inputs before `__init__` runs: a start with no input or
        several (`temporal workflow start` without `--input`, or with two) fails the workflow at once here, where
        Python's own `TypeError` would fail its first workflow task forever."""
        if len(task) != 1:
            shape = 'one input, a JSON object such as {"task_description": "write a slugify function"}'
            raise inputs.invalid(f"{WORKFLOW_TYPE} takes {shape}; got {len(task)}")
        return super().__new__(cls)

    @workflow.init
    def __init__(self, task: CodingTaskInput) -> None:
        self._input = task
        now = workflow.now().isoformat()
        resume = task.resume or ResumeState(
            state=TaskState(
                session_id=workflow.info().workflow_id,
                task_description=task.task_description,
                created_at=now,
                updated_at=now,
                budget=Budget(budget_usd=task.budget_usd, budget_tokens=task.budget_tokens),
            )
        )
        self._state = resume.state  # a continued-as-new run picks up where the last one stopped
        self._log = EventLog(resume.events, resume.next_event_id)
        # Watchers subscribe to this stream (the gateway's SSE); a run continued from one that had no stream starts
        # its offsets where that run's event ids stopped, so ids go on increasing.
        self._stream = WorkflowStream(
            prior_state=resume.stream or WorkflowStreamState(base_offset=resume.next_event_id - 1)
        )
        self._pending_feedback = list(resume.pending_feedback)
        self._revision_comment: str | None = None
        self._sandbox_down: TestReport | None = None  # the report of a sandbox that could not be set up
        self._lint_gate = workflow.patched(LINT_GATE_AT_START_PATCH)
        owner = workflow.memo_value(OWNER_MEMO, None)  # any JSON: a memo is whatever its starter wrote
        started_with = workflow.info().typed_search_attributes
        visibility = SearchAttributeSync(started_with, owner if isinstance(owner, str) else None)
        self._journal = Journal(self._state, self._log, visibility, self._stream)
        self._steps = Steps(task, self._journal)

    # ------------------------------------------------------------------ handlers

    @workflow.run
    async def run(self, task: CodingTaskInput) -> TaskState:
        if task.resume is None:
            self._journal.event(EventType.STARTED, f"task started: {task.task_description[:200]}")
        else:
            self._journal.event(EventType.RESUMED, "continued as a new run with the previous run's state")
        if not self._journal.visibility.enabled:
            self._journal.warn("started without the TaskStatus search attribute: this task keeps no search attributes")
        try:
            if task.resume is None:
                await self._plan()
                await self._supervise()
            await self._await_feedback()
            self._journal.set_status(TaskStatus.COMPLETED, "task completed")
            await self._release_watchers()
        except TaskFailed as exc:
            self._state.errors.append(str(exc))
            self._journal.set_status(TaskStatus.FAILED, f"task failed: {exc}")
            await self._release_watchers()
            raise ApplicationError(str(exc), type="TaskFailed", non_retryable=True) from None
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._journal.set_status(TaskStatus.CANCELLED, "task cancelled; partial results are kept")
            raise
        finally:
            self._journal.sync()
        return self.status()

    @workflow.signal(name=FEEDBACK_SIGNAL)
    def feedback(self, *payloads: Any) -> None:
        """Rating 1..5 and an optional comment (`FeedbackInput`), taken while the task awaits feedback.

        The payload is checked here rather than by the SDK, so a malformed one, or none, or two, is recorded in
        `errors` (where the user can see it) and never fails a workflow task. Feedback sent while there is no
        result to rate (planning, running, a revision under way) is recorded as ignored, never applied later.
        """
        status = self._state.task_status
        if status in TERMINAL_STATUSES:
            self._journal.event(EventType.FEEDBACK_IGNORED, "feedback arrived after the task ended and was ignored")
            return
        try:
            feedback = inputs.one_input(FEEDBACK_SIGNAL, payloads, FeedbackInput)
        except ApplicationError as exc:
            message = f"invalid feedback ignored: {exc.message}"
            self._state.errors.append(message)
            self._journal.event(EventType.FEEDBACK_INVALID, message)
            return
        if status != TaskStatus.AWAITING_FEEDBACK and workflow.patched(FEEDBACK_AWAITED_PATCH):
            self._ignore_feedback([feedback], f"it arrived while the task was {status}, with no result to rate yet")
            return
        received = Feedback(rating=feedback.rating, comment=feedback.comment, received_at=workflow.now().isoformat())
        self._state.feedback.append(received)
        self._pending_feedback.append(feedback)
        self._journal.event(
            EventType.FEEDBACK, f"feedback received: rating {feedback.rating}", data={"rating": feedback.rating}
        )

    def _ignore_feedback(self, ignored: list[FeedbackInput], reason: str) -> None:
        for feedback in ignored:
            message = f"feedback (rating {feedback.rating}) ignored: {reason}"
            self._journal.event(EventType.FEEDBACK_IGNORED, message, data={"rating": feedback.rating})

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, _payloads: Sequence[RawValue]) -> None:
        """A signal this workflow does not take (`--name Feedback`) is recorded as a warning, not dropped silently.
        Names starting with `__` are Temporal's own (the stream's publish signal before its handler exists)."""
        if not name.startswith("__"):
            self._journal.warn(f"unknown signal {name!r} ignored; this task takes the signal {FEEDBACK_SIGNAL!r}")

    @workflow.query(name=STATUS_QUERY)
    def status(self, *none: Any) -> TaskState:
        inputs.no_input(STATUS_QUERY, none)
        return self._state.model_copy(update={"logs": self._log.log_lines()})

    @workflow.query(name=EVENTS_QUERY)
    def events(self, *query: Any) -> EventsPage:
        """The events after `after`; with no input, all of them (`after` 0)."""
        after = inputs.one_input(EVENTS_QUERY, query, EventsQueryInput, default=EventsQueryInput()).after
        return self._log.page(after, self._state.task_status)

    @workflow.update(name=RAISE_BUDGET_UPDATE)
    def raise_budget(self, *raise_: Any) -> Budget:
        """New limits (each above what is spent); a task waiting in `awaiting_budget` goes on."""
        return self._steps.raise_budget(inputs.one_input(RAISE_BUDGET_UPDATE, raise_, BudgetRaise))

    @raise_budget.validator
    def _validate_raise(self, *raise_: Any) -> None:
        if self._state.task_status in TERMINAL_STATUSES:
            raise TaskEnded(self._state.task_status)
        usage.check_raise(self._state, inputs.one_input(RAISE_BUDGET_UPDATE, raise_, BudgetRaise))

    @workflow.update(name=APPROVE_TOOL_UPDATE)
    def approve_tool(self, *decision: Any) -> PendingApproval:
        """Approve or deny an MCP tool call waiting in `awaiting_approval` (`ToolApproval`); answers the call
        decided."""
        return self._steps.decide(inputs.one_input(APPROVE_TOOL_UPDATE, decision, ToolApproval))

    @approve_tool.validator
    def _validate_approval(self, *decision: Any) -> None:
        if self._state.task_status in TERMINAL_STATUSES:
            raise TaskEnded(self._state.task_status)
        self._steps.check_decision(inputs.one_input(APPROVE_TOOL_UPDATE, decision, ToolApproval))

    async def _release_watchers(self) -> None:
        """Hand the waiting stream polls their last events and let them finish before the run ends (issues no
        command, so histories from before the stream replay unchanged)."""
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)

    # ------------------------------------------------------------------ supervisor

    async def _plan(self) -> None:
        self._journal.set_status(TaskStatus.PLANNING, "planning")
        prompt = prompts.planner_prompt(self._input.task_description, prompts.code_context(self._input))
        request = LlmRequest(
            role=AgentRole.PLANNER,
            model=self._input.planner_model,
            system=prompts.PLANNER_SYSTEM,
            messages=[ChatMessage(role="user", content=prompt)],
        )
        reply = await self._steps.llm(request)
        self._state.plan = reply.content.strip()
        self._journal.event(EventType.PLAN, "plan ready", agent=AgentRole.PLANNER, data={"plan": self._state.plan})

    def _next_agent(self) -> AgentRole | None:
        results = self._state.results
        if results.code_generation is None or self._revision_comment is not None:
            return AgentRole.CODE_GENERATION
        if results.documentation is None or results.documentation.code_revision != self._state.revisions:
            return AgentRole.DOCUMENTATION
        return None

    async def _supervise(self) -> None:
        """Route to the next agent until none is needed; bounded, never an endless loop."""
        self._journal.set_status(TaskStatus.RUNNING, "running agents")
        agents: dict[AgentRole, Callable[[], Awaitable[None]]] = {
            AgentRole.CODE_GENERATION: self._code_agent,
            AgentRole.DOCUMENTATION: self._doc_agent,
        }
        limit = self._input.max_supervisor_iterations
        for routed in range(limit + 1):
            agent = self._state.current_agent = self._next_agent()
            if agent is None:
                return
            if routed == limit:
                raise TaskFailed(f"supervisor stopped after {limit} iterations")
            self._journal.event(EventType.ROUTE, f"supervisor routes to {agent}", agent=agent)
            await agents[agent]()

    async def _await_feedback(self) -> None:
        """Wait for feedback; a low rating with a comment triggers a bounded revision, then docs are refreshed."""
        while True:
            await self._continue_as_new_if_suggested()
            self._journal.set_status(TaskStatus.AWAITING_FEEDBACK, "awaiting feedback")
            window = self._input.feedback_window
            self._journal.sync()
            if not self._pending_feedback and window > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: bool(self._pending_feedback), timeout=window)
            if not self._pending_feedback:
                self._journal.event(EventType.FEEDBACK_WINDOW_CLOSED, "feedback window closed without feedback")
                return
            feedback = self._pending_feedback.pop(0)
            if feedback.rating >= ACCEPTED_RATING or not feedback.comment:
                return
            if self._state.revisions >= self._input.max_revisions:
                limit = self._input.max_revisions
                self._journal.event(EventType.REVISION_LIMIT, f"revision limit ({limit}) reached; finishing")
                return
            self._state.revisions += 1
            if self._pending_feedback and workflow.patched(FEEDBACK_AWAITED_PATCH):  # sent with this one
                stale = len(self._pending_feedback)
                self._ignore_feedback(
                    self._pending_feedback, f"it rated the code revision {self._state.revisions} replaces"
                )
                del self._state.feedback[-stale:]  # received with it, last: the ratings kept are those applied
                self._pending_feedback.clear()
            self._revision_comment = feedback.comment
            self._journal.event(
                EventType.REVISION, f"revision {self._state.revisions} requested: {feedback.comment[:200]}"
            )
            await self._supervise()

    async def _continue_as_new_if_suggested(self) -> None:
        """When the history grows long (a long revision loop), hand the state to a fresh run of the same id.

        The stream goes along (its last `MAX_EVENTS` items and its offsets): a watcher follows the new run from the
        offset it reached, missing nothing and seeing nothing twice."""
        if not workflow.info().is_continue_as_new_suggested():
            return
        self._journal.event(EventType.CONTINUE_AS_NEW, "history is long: continuing as a new run with the same state")
        await self._release_watchers()
        offset = self._journal.stream_offset()
        self._stream.truncate(offset - MAX_EVENTS)
        resume = ResumeState(
            state=self._state,
            pending_feedback=self._pending_feedback,
            events=self._log.recent(),
            next_event_id=offset + 1,
            stream=self._stream.get_state(),
            mcp_tools=self._steps.listed_mcp_tools,
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # ------------------------------------------------------------------ agents

    async def _code_agent(self) -> None:
        previous = self._state.results.code_generation
        plan = testing.TestPlan.of(self._input)
        self._sandbox_down = None
        prompt = prompts.code_prompt(
            self._input.task_description,
            self._state.plan,
            prompts.code_context(self._input),
            previous_code=previous.code if previous and self._revision_comment else None,
            revision_comment=self._revision_comment,
            tests=prompts.tests_section(plan.tests, plan.module) if plan.on else "",
        )
        messages = [ChatMessage(role="user", content=prompt)]
        draft = await self._write_code(messages, plan)
        gates = Gates()
        if self._lint_gate or workflow.patched(LINT_GATE_PATCH):
            draft = await self._fix_rounds(messages, plan, draft, gates)
        revision = self._state.revisions
        test_gate, warning = testing.verdict(plan, draft.report, len(gates.test_rounds))
        if warning:
            self._journal.warn(warning, AgentRole.CODE_GENERATION)
        self._state.results.code_generation = CodeResult(
            code=draft.code,
            explanation=draft.explanation,
            model=draft.model,
            lint=draft.lint,
            steps=draft.steps,
            revision=revision,
            lint_gate=gates.lint,
            lint_rounds=gates.lint_rounds,
            tests=draft.report,
            tests_by=plan.tests_by,
            test_gate=test_gate,
            test_rounds=gates.test_rounds,
        )
        self._revision_comment = None
        message = f"code ready ({len(draft.code.splitlines())} lines, pylint {draft.lint.score})"
        data: dict[str, Any] = {"lint_score": draft.lint.score, "revision": revision, "lint_gate": gates.lint}
        if test_gate:
            data["test_gate"] = test_gate
        self._journal.event(EventType.CODE_READY, message, agent=AgentRole.CODE_GENERATION, data=data)

    async def _write_code(self, messages: list[ChatMessage], plan: testing.TestPlan, first_step: int = 1) -> Draft:
        """One run of the code agent's loop on the conversation, then pylint's verdict on its answer and, with the
        test gate on, its tests' run in the sandbox."""
        role = AgentRole.CODE_GENERATION
        offered = [*TOOLS, ToolName.RUN_TESTS] if plan.on else TOOLS
        reply, steps = await self._agent_loop(
            role, self._input.code_model, prompts.code_system(plan.on), messages, offered, first_step
        )
        model_tests = None
        if plan.on:
            code, model_tests, explanation = prompts.split_tested_answer(reply.content, plan.module)
        else:
            code, explanation = prompts.split_code_answer(reply.content)
        lint = await self._steps.lint(code, step=steps)
        draft = Draft(code=code, explanation=explanation, model=reply.model, lint=lint, steps=steps)
        draft.report = await self._run_tests(plan, draft, model_tests)
        return draft

    async def _run_tests(self, plan: testing.TestPlan, draft: Draft, model_tests: str | None) -> TestReport | None:
        """The candidate's tests in the sandbox; once the sandbox was unavailable in this run, it is not asked again."""
        if self._sandbox_down is not None:
            return self._sandbox_down
        request = plan.request(self._input, draft.code, model_tests) if plan.on else None
        if request is None:
            return None
        report = await self._steps.run_tests(request, step=draft.steps)
        if report.outcome == "unavailable":
            self._sandbox_down = report
        return report

    async def _fix_rounds(
        self, messages: list[ChatMessage], plan: testing.TestPlan, draft: Draft, gates: Gates
    ) -> Draft:
        """The quality gate and the test gate share `max_fix_rounds`: each round sends back whatever failed (pylint's
        messages below the bar, the failing tests) in one turn, and the new answer is judged by both again. After the
        rounds each gate's verdict (`quality.verdict`, `testing.verdict`) says how it ended."""
        bar = self._input.min_lint_score
        for number in range(1, self._input.max_fix_rounds + 1):
            lint_fix = bar is not None and quality.needs_fix(draft.lint, bar)
            tests_fix = testing.needs_fix(plan, draft.report)
            if not (lint_fix or tests_fix):
                break
            verdicts = [quality.fix_prompt(draft.lint, bar)] if lint_fix and bar is not None else []
            if tests_fix:
                verdicts.append(testing.fix_prompt(plan, draft.report))
            messages.append(ChatMessage(role="user", content="\n\n".join(verdicts)))
            fixed = await self._write_code(messages, plan, first_step=draft.steps + 1)
            role = AgentRole.CODE_GENERATION
            if bar is not None:
                lint_round = quality.lint_round(number, draft.lint, fixed.lint)
                text = f"quality gate round {number}: pylint {draft.lint.score} -> {fixed.lint.score}"
                self._journal.event(EventType.LINT_GATE, text, role, lint_round.model_dump())
                gates.lint_rounds.append(lint_round)
            if plan.on:
                test_round = testing.test_round(number, draft.report, fixed.report)
                text = testing.round_message(test_round)
                self._journal.event(EventType.TEST_GATE, text, role, test_round.model_dump())
                gates.test_rounds.append(test_round)
            draft = fixed
        gates.lint, warning = quality.verdict(draft.lint, bar, len(gates.lint_rounds))
        if warning:
            self._journal.warn(warning)
        return draft

    async def _doc_agent(self) -> None:
        code = self._state.results.code_generation
        assert code is not None  # the supervisor routes here only after the code agent
        prompt = prompts.doc_prompt(self._input.task_description, self._state.plan, code.code)
        role = AgentRole.DOCUMENTATION
        messages = [ChatMessage(role="user", content=prompt)]
        reply, steps = await self._agent_loop(role, self._input.doc_model, prompts.DOC_SYSTEM, messages, TOOLS)
        self._state.results.documentation = DocResult(
            documentation=reply.content.strip(), model=reply.model, steps=steps, code_revision=code.revision
        )
        self._journal.event(EventType.DOCS_READY, "documentation ready", agent=role)

    async def _agent_loop(
        self,
        role: AgentRole,
        model: str | None,
        system: str,
        messages: list[ChatMessage],
        tools: list[ToolName],
        first_step: int = 1,
    ) -> tuple[LlmResponse, int]:
        """Model call → tool calls → model call … until the model answers (at most `max_agent_steps` calls; the last
        offers no tools). The conversation grows in `messages`, so a caller can go on with it; a fix round goes on
        numbering the steps from `first_step`, so each call's step is its own. Returns the reply and its step."""
        last = first_step + self._input.max_agent_steps - 1
        mcp_tools = await self._steps.mcp_tools()  # listed once per task; none (and no activity) unless selected
        for step in range(first_step, last + 1):
            offered = tools if step < last else []
            request = LlmRequest(role=role, model=model, system=system, messages=messages, tools=offered, step=step)
            request.mcp_tools = mcp_tools if offered else []
            reply = await self._steps.llm(request)
            messages.append(ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            if not reply.tool_calls:
                return reply, step
            if not offered:
                break
            messages += await self._steps.run_tools(role, reply.tool_calls, step)
        raise TaskFailed(f"{role} agent gave no final answer within {self._input.max_agent_steps} steps")
