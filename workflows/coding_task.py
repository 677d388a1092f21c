"""The `CodingTask` workflow: the supervisor that plans a task and routes it through the agents.

Workflows decide, activities do: every model call, lint and knowledge-base query is an activity, so the
workflow history is the checkpoint. A crashed worker resumes from the last completed activity and never
pays for a finished model call twice. What this class delegates lives beside it: the event log (`events`),
usage accounting (`usage`), search attributes and the details line (`visibility`), activity options
(`calls`) and the tools' argument contracts (`tools`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows import calls, prompts, tools
    from workflows.calls import ActivityFailed
    from workflows.events import EventLog
    from workflows.models import (
        EVENTS_QUERY,
        FEEDBACK_SIGNAL,
        OWNER_MEMO,
        STATUS_QUERY,
        TERMINAL_STATUSES,
        WORKFLOW_TYPE,
        AgentRole,
        ChatMessage,
        CodeResult,
        CodingTaskInput,
        DocResult,
        EventsPage,
        EventsQueryInput,
        EventType,
        Feedback,
        FeedbackInput,
        LintRequest,
        LintResult,
        LlmRequest,
        LlmResponse,
        RagQuery,
        ResumeState,
        TaskState,
        TaskStatus,
        ToolCall,
        ToolName,
    )
    from workflows.usage import record_reply
    from workflows.visibility import SearchAttributeSync, details_line

T = TypeVar("T")
TOOLS = [ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]


class TaskFailed(Exception):
    """An agent could not finish; the task ends `failed`."""


# A start input that does not validate (a misspelt field, a missing task_description, not an object) fails the
# workflow at once with pydantic's message naming each field, instead of a workflow task retried forever.
@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class CodingTask:
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
            )
        )
        self._state = resume.state  # a continued-as-new run picks up where the last one stopped
        self._log = EventLog(resume.events, resume.next_event_id)
        self._pending_feedback = list(resume.pending_feedback)
        self._revision_comment: str | None = None
        owner = workflow.memo_value(OWNER_MEMO, None)  # any JSON: a memo is whatever its starter wrote
        started_with = workflow.info().typed_search_attributes
        self._visibility = SearchAttributeSync(started_with, owner if isinstance(owner, str) else None)

    # ------------------------------------------------------------------ handlers

    @workflow.run
    async def run(self, task: CodingTaskInput) -> TaskState:
        if task.resume is None:
            self._event(EventType.STARTED, f"task started: {task.task_description[:200]}")
        else:
            self._event(EventType.RESUMED, "continued as a new run with the previous run's state")
        if not self._visibility.enabled:
            self._warn("started without the TaskStatus search attribute: this task keeps no search attributes")
        try:
            if task.resume is None:
                await self._plan()
                await self._supervise()
            await self._await_feedback()
            self._set_status(TaskStatus.COMPLETED, "task completed")
        except TaskFailed as exc:
            self._state.errors.append(str(exc))
            self._set_status(TaskStatus.FAILED, f"task failed: {exc}")
            raise ApplicationError(str(exc), type="TaskFailed", non_retryable=True) from None
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._set_status(TaskStatus.CANCELLED, "task cancelled; partial results are kept")
            raise
        finally:
            self._sync()
        return self.status()

    @workflow.signal(name=FEEDBACK_SIGNAL)
    def feedback(self, payload: Any) -> None:
        """Rating 1..5 and an optional comment (`FeedbackInput`).

        The payload is validated here rather than by the SDK, so a malformed one is recorded in `errors`
        (where the user can see it) instead of being dropped silently; it never fails the workflow.
        """
        if self._state.task_status in TERMINAL_STATUSES:
            self._event(EventType.FEEDBACK_IGNORED, "feedback arrived after the task ended and was ignored")
            return
        try:
            feedback = FeedbackInput.model_validate(payload)
        except ValidationError as exc:
            message = f"invalid feedback ignored: {tools.validation_problems(exc)}"
            self._state.errors.append(message)
            self._event(EventType.FEEDBACK_INVALID, message)
            return
        received = Feedback(rating=feedback.rating, comment=feedback.comment, received_at=workflow.now().isoformat())
        self._state.feedback.append(received)
        self._pending_feedback.append(feedback)
        self._event(
            EventType.FEEDBACK, f"feedback received: rating {feedback.rating}", data={"rating": feedback.rating}
        )

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> TaskState:
        return self._state.model_copy(update={"logs": self._log.log_lines()})

    @workflow.query(name=EVENTS_QUERY)
    def events(self, query: EventsQueryInput) -> EventsPage:
        return self._log.page(query.after, self._state.task_status)

    # ------------------------------------------------------------------ supervisor

    async def _plan(self) -> None:
        self._set_status(TaskStatus.PLANNING, "planning")
        prompt = prompts.planner_prompt(self._input.task_description, self._input.code_context)
        request = LlmRequest(
            role=AgentRole.PLANNER,
            model=self._input.planner_model,
            system=prompts.PLANNER_SYSTEM,
            messages=[ChatMessage(role="user", content=prompt)],
        )
        reply = await self._llm(request, step=1)
        self._state.plan = reply.content.strip()
        self._event(EventType.PLAN, "plan ready", agent=AgentRole.PLANNER, data={"plan": self._state.plan})

    def _next_agent(self) -> AgentRole | None:
        results = self._state.results
        if results.code_generation is None or self._revision_comment is not None:
            return AgentRole.CODE_GENERATION
        if results.documentation is None or results.documentation.code_revision != self._state.revisions:
            return AgentRole.DOCUMENTATION
        return None

    async def _supervise(self) -> None:
        """Route to the next agent until none is needed; bounded, never an endless loop."""
        self._set_status(TaskStatus.RUNNING, "running agents")
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
            self._event(EventType.ROUTE, f"supervisor routes to {agent}", agent=agent)
            await agents[agent]()

    async def _await_feedback(self) -> None:
        """Wait for feedback; a low rating with a comment triggers a bounded revision, then docs are refreshed."""
        while True:
            self._continue_as_new_if_suggested()
            self._set_status(TaskStatus.AWAITING_FEEDBACK, "awaiting feedback")
            window = self._input.feedback_window
            self._sync()
            if not self._pending_feedback and window > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: bool(self._pending_feedback), timeout=window)
            if not self._pending_feedback:
                self._event(EventType.FEEDBACK_WINDOW_CLOSED, "feedback window closed without feedback")
                return
            feedback = self._pending_feedback.pop(0)
            if feedback.rating >= 3 or not feedback.comment:
                return
            if self._state.revisions >= self._input.max_revisions:
                limit = self._input.max_revisions
                self._event(EventType.REVISION_LIMIT, f"revision limit ({limit}) reached; finishing")
                return
            self._state.revisions += 1
            self._revision_comment = feedback.comment
            self._event(EventType.REVISION, f"revision {self._state.revisions} requested: {feedback.comment[:200]}")
            await self._supervise()

    def _continue_as_new_if_suggested(self) -> None:
        """When the history grows long (a long revision loop), hand the state to a fresh run of the same id."""
        if not workflow.info().is_continue_as_new_suggested():
            return
        self._event(EventType.CONTINUE_AS_NEW, "history is long: continuing as a new run with the same state")
        resume = ResumeState(
            state=self._state,
            pending_feedback=self._pending_feedback,
            events=self._log.recent(),
            next_event_id=self._log.next_id,
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # ------------------------------------------------------------------ agents

    async def _code_agent(self) -> None:
        previous = self._state.results.code_generation
        prompt = prompts.code_prompt(
            self._input.task_description,
            self._state.plan,
            self._input.code_context,
            previous_code=previous.code if previous and self._revision_comment else None,
            revision_comment=self._revision_comment,
        )
        role = AgentRole.CODE_GENERATION
        reply, steps = await self._agent_loop(role, self._input.code_model, prompts.CODE_SYSTEM, prompt)
        code, explanation = prompts.split_code_answer(reply.content)
        lint = await self._lint(code, step=steps)
        revision = self._state.revisions
        self._state.results.code_generation = CodeResult(
            code=code, explanation=explanation, model=reply.model, lint=lint, steps=steps, revision=revision
        )
        self._revision_comment = None
        message = f"code ready ({len(code.splitlines())} lines, pylint {lint.score})"
        self._event(EventType.CODE_READY, message, agent=role, data={"lint_score": lint.score, "revision": revision})

    async def _doc_agent(self) -> None:
        code = self._state.results.code_generation
        assert code is not None  # the supervisor routes here only after the code agent
        prompt = prompts.doc_prompt(self._input.task_description, self._state.plan, code.code)
        role = AgentRole.DOCUMENTATION
        reply, steps = await self._agent_loop(role, self._input.doc_model, prompts.DOC_SYSTEM, prompt)
        self._state.results.documentation = DocResult(
            documentation=reply.content.strip(), model=reply.model, steps=steps, code_revision=code.revision
        )
        self._event(EventType.DOCS_READY, "documentation ready", agent=role)

    async def _agent_loop(
        self, role: AgentRole, model: str | None, system: str, prompt: str
    ) -> tuple[LlmResponse, int]:
        """Model call → tool calls → model call … until the model answers; the last step offers no tools."""
        messages = [ChatMessage(role="user", content=prompt)]
        max_steps = self._input.max_agent_steps
        for step in range(1, max_steps + 1):
            offered = TOOLS if step < max_steps else []
            request = LlmRequest(role=role, model=model, system=system, messages=messages, tools=offered)
            reply = await self._llm(request, step)
            messages.append(ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            if not reply.tool_calls:
                return reply, step
            if not offered:
                break
            messages += await asyncio.gather(*(self._run_tool(role, call, step) for call in reply.tool_calls))
        raise TaskFailed(f"{role} agent gave no final answer within {max_steps} steps")

    async def _run_tool(self, role: AgentRole, call: ToolCall, step: int) -> ChatMessage:
        arguments = tools.parse_arguments(call)
        if isinstance(arguments, str):
            text, is_error = arguments, True
        elif isinstance(arguments, tools.LintArgs):
            result = await self._lint(arguments.code, step)
            text, is_error = result.summary(), result.error is not None
        else:
            text, is_error = await self._search(arguments)
        message = f"{role} called {call.name}" + (" (error)" if is_error else "")
        data = {"tool": call.name, "is_error": is_error, "result": text[:300]}
        self._event(EventType.TOOL_CALL, message, agent=role, data=data)
        return ChatMessage(role="tool", tool_call_id=call.id, content=text, is_error=is_error)

    # ------------------------------------------------------------------ activities

    async def _execute(self, activity: calls.Activity[T], arg: Any, summary: str) -> T:
        self._sync()  # the search attributes go out before the workflow waits
        return await calls.execute(activity, arg, summary)

    async def _llm(self, request: LlmRequest, step: int) -> LlmResponse:
        doing = f"{request.role} · {request.model or 'default model'} · step {step}"
        try:
            reply = await self._execute(calls.LLM, request, doing)
        except ActivityFailed as exc:
            raise TaskFailed(f"{request.role} model call failed: {exc}") from exc
        record_reply(self._state, request.role, reply)
        workflow.set_current_details(details_line(self._state, f"{request.role} · {reply.model} · step {step}"))
        if reply.warning:
            self._warn(reply.warning, request.role)
        with_calls = f" with {len(reply.tool_calls)} tool call(s)" if reply.tool_calls else ""
        data = {"step": step, "model": reply.model, "tool_calls": [c.name for c in reply.tool_calls]}
        self._event(
            EventType.LLM_CALL, f"{request.role} step {step}: {reply.model} answered{with_calls}", request.role, data
        )
        return reply

    async def _lint(self, code: str, step: int) -> LintResult:
        try:
            result = await self._execute(calls.LINT, LintRequest(code=code), f"lint · step {step}")
        except ActivityFailed as exc:
            result = LintResult(error=f"lint unavailable: {exc}")
        self._event(EventType.LINT, result.summary(limit=0), data={"score": result.score, "error": result.error})
        return result

    async def _search(self, arguments: tools.SearchKnowledgeArgs) -> tuple[str, bool]:
        query = RagQuery(query=arguments.query, top_k=arguments.top_k)
        try:
            found = await self._execute(calls.RAG, query, f"rag · {query.query[:60]}")
        except ActivityFailed as exc:
            message = f"knowledge base unavailable: {exc}"
            self._warn(message)
            return message + " (continue without it)", True
        return tools.search_result_text(found), False

    # ------------------------------------------------------------------ state

    def _set_status(self, status: TaskStatus, message: str) -> None:
        self._state.task_status = status
        workflow.set_current_details(details_line(self._state))
        self._event(EventType.STATUS, message, data={"task_status": status.value})

    def _warn(self, message: str, agent: AgentRole | None = None) -> None:
        if message not in self._state.warnings:
            self._state.warnings.append(message)
            self._event(EventType.WARNING, message, agent)

    def _event(
        self, type: EventType, message: str, agent: AgentRole | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self._state.updated_at = workflow.now().isoformat()
        self._log.emit(self._state.updated_at, type, message, agent, data)

    def _sync(self) -> None:
        """Send the search attributes that changed; called before the workflow waits (one upsert per task)."""
        if updates := self._visibility.updates(self._state):
            workflow.upsert_search_attributes(updates)
