"""The `CodingTask` workflow: the supervisor that plans a task and routes it through the agents.

Workflows decide, activities do: every model call, lint and knowledge-base query is an activity, so the
workflow history is the checkpoint. A crashed worker resumes from the last completed activity and never
pays for a finished model call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.search_attributes import SEARCH_ATTRIBUTES_ACTIVITY, SearchAttributesCheck
    from workflows import prompts
    from workflows.models import (
        EVENTS_QUERY,
        FEEDBACK_SIGNAL,
        LINT_ACTIVITY,
        LLM_ACTIVITY,
        OWNER_MEMO,
        RAG_ACTIVITY,
        SA_AGENT,
        SA_CODE_MODEL,
        SA_DOC_MODEL,
        SA_FEEDBACK_RATING,
        SA_LINT_SCORE,
        SA_OWNER,
        SA_TASK_STATUS,
        SA_TOTAL_TOKENS,
        SEARCH_ATTRIBUTES,
        STATUS_QUERY,
        WORKFLOW_TYPE,
        AgentRole,
        ChatMessage,
        CodeResult,
        CodingTaskInput,
        DocResult,
        EventsPage,
        EventsQueryInput,
        Feedback,
        FeedbackInput,
        LintRequest,
        LintResult,
        LlmRequest,
        LlmResponse,
        ModelUsage,
        RagQuery,
        RagResult,
        ResumeState,
        TaskEvent,
        TaskState,
        TaskStatus,
        ToolCall,
        ToolName,
    )

T = TypeVar("T")


@dataclass(frozen=True)
class ActivityOptions:
    start_to_close: timedelta
    schedule_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None


# Activity options, named so they can be read in one place. Temporal owns every retry: the SDKs' own are off.
LLM_OPTIONS = ActivityOptions(
    start_to_close=timedelta(minutes=3),
    schedule_to_close=timedelta(minutes=15),
    heartbeat=timedelta(seconds=15),  # a crashed worker's call is retried after this, not after 3 minutes
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=6,
    ),
)
LINT_OPTIONS = ActivityOptions(
    start_to_close=timedelta(seconds=60),
    schedule_to_close=timedelta(minutes=5),
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
)
RAG_OPTIONS = ActivityOptions(
    start_to_close=timedelta(seconds=15),
    schedule_to_close=timedelta(seconds=45),
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=3),
)

MAX_LOGS = 200
MAX_EVENTS = 500
MAX_TOOL_CODE = 100_000
MAX_RAG_TOP_K = 10
RAG_SNIPPET_CHARS = 1_500
_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

TOOLS = [ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]
# Histories from before search attributes replay without them; v1 histories replay with one upsert per change,
# v2 (current) sends the changes of a workflow task as one upsert, only the values that changed.
SEARCH_ATTRIBUTES_PATCH = "search-attributes-v1"
COALESCED_SEARCH_ATTRIBUTES_PATCH = "search-attributes-v2"
# Progress figures that are not worth an upsert of their own: they go along with the next change of phase.
LAZY_SEARCH_ATTRIBUTES = frozenset(key.name for key in (SA_TOTAL_TOKENS, SA_CODE_MODEL, SA_DOC_MODEL))


class TaskFailed(Exception):
    """An agent could not finish; the task ends `failed`."""


class ActivityFailed(Exception):
    """An activity failed for good (its retries are spent); the message is the activity's own error."""


def split_code_answer(answer: str) -> tuple[str, str]:
    """Split a code agent's final answer into (code, explanation): the longest fenced block is the code."""
    blocks = _CODE_BLOCK.findall(answer)
    if not blocks:
        return answer.strip(), ""
    code = max(blocks, key=len)
    explanation = _CODE_BLOCK.sub("", answer).strip()
    return code.strip() + "\n", explanation


@workflow.defn(name=WORKFLOW_TYPE)
class CodingTask:
    @workflow.init
    def __init__(self, task: CodingTaskInput) -> None:
        self._input = task
        now = workflow.now().isoformat()
        self._state = TaskState(
            session_id=workflow.info().workflow_id,
            task_description=task.task_description,
            created_at=now,
            updated_at=now,
        )
        self._events: list[TaskEvent] = []
        self._next_event_id = 1
        self._pending_feedback: list[FeedbackInput] = []
        if task.resume is not None:  # a continued-as-new run picks up where the last one stopped
            self._state = task.resume.state
            self._next_event_id = task.resume.next_event_id
            self._pending_feedback = list(task.resume.pending_feedback)
        self._revision_comment: str | None = None
        self._search_attributes = False  # until `_check_search_attributes` says the server has them
        self._coalesce_upserts = False
        self._staged_attributes: dict[str, SearchAttributeUpdate[Any]] = {}
        self._sent_attributes: dict[str, Any] = {}

    # ------------------------------------------------------------------ handlers

    @workflow.run
    async def run(self, task: CodingTaskInput) -> TaskState:
        if task.resume is None:
            self._event("started", f"task started: {task.task_description[:200]}")
        else:
            self._event("resumed", "continued as a new run with the previous run's state")
        await self._check_search_attributes()
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
            self._flush_search_attributes()
        return self._state

    @workflow.signal(name=FEEDBACK_SIGNAL)
    def feedback(self, payload: Any) -> None:
        """Rating 1..5 and an optional comment (`FeedbackInput`).

        The payload is validated here rather than by the SDK, so a malformed one is recorded in `errors`
        (where the user can see it) instead of being dropped silently; it never fails the workflow.
        """
        if self._state.task_status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
            self._event("feedback_ignored", "feedback arrived after the task ended and was ignored")
            return
        try:
            feedback = FeedbackInput.model_validate(payload)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())
            message = f"invalid feedback ignored: {problems}"
            self._state.errors.append(message)
            self._event("feedback_invalid", message)
            return
        self._state.feedback.append(
            Feedback(rating=feedback.rating, comment=feedback.comment, received_at=workflow.now().isoformat())
        )
        self._pending_feedback.append(feedback)
        self._upsert(SA_FEEDBACK_RATING.value_set(feedback.rating))  # sent when the run next waits or ends
        self._event("feedback", f"feedback received: rating {feedback.rating}", data={"rating": feedback.rating})

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> TaskState:
        return self._state

    @workflow.query(name=EVENTS_QUERY)
    def events(self, query: EventsQueryInput) -> EventsPage:
        return EventsPage(
            events=[e for e in self._events if e.id > query.after],
            task_status=self._state.task_status,
            last_id=self._next_event_id - 1,
        )

    # ------------------------------------------------------------------ supervisor

    async def _plan(self) -> None:
        self._set_status(TaskStatus.PLANNING, "planning")
        request = LlmRequest(
            role=AgentRole.PLANNER,
            model=self._input.planner_model,
            system=prompts.PLANNER_SYSTEM,
            messages=[
                ChatMessage(
                    role="user",
                    content=prompts.planner_prompt(self._input.task_description, self._input.code_context),
                )
            ],
        )
        reply = await self._llm(request, step=1)
        self._state.plan = reply.content.strip()
        self._event("plan", "plan ready", agent=AgentRole.PLANNER, data={"plan": self._state.plan})

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
        for _ in range(self._input.max_supervisor_iterations):
            agent = self._next_agent()
            if agent is None:
                self._state.current_agent = None
                self._upsert(SA_AGENT.value_unset())
                return
            self._state.current_agent = agent
            self._upsert(SA_AGENT.value_set(agent.value))
            self._event("route", f"supervisor routes to {agent}", agent=agent)
            await agents[agent]()
        raise TaskFailed(f"supervisor stopped after {self._input.max_supervisor_iterations} iterations")

    async def _await_feedback(self) -> None:
        """Wait for feedback; a low rating with a comment triggers a bounded revision, then docs are refreshed."""
        while True:
            self._continue_as_new_if_suggested()
            self._set_status(TaskStatus.AWAITING_FEEDBACK, "awaiting feedback")
            window = self._input.feedback_window
            self._flush_search_attributes()
            if not self._pending_feedback and window > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: bool(self._pending_feedback), timeout=window)
            if not self._pending_feedback:
                self._event("feedback_window_closed", "feedback window closed without feedback")
                return
            feedback = self._pending_feedback.pop(0)
            if feedback.rating >= 3 or not feedback.comment:
                return
            if self._state.revisions >= self._input.max_revisions:
                self._event("revision_limit", f"revision limit ({self._input.max_revisions}) reached; finishing")
                return
            self._state.revisions += 1
            self._revision_comment = feedback.comment
            self._event("revision", f"revision {self._state.revisions} requested: {feedback.comment[:200]}")
            await self._supervise()

    def _continue_as_new_if_suggested(self) -> None:
        """When the history grows long (a long revision loop), hand the state to a fresh run of the same id."""
        if not workflow.info().is_continue_as_new_suggested():
            return
        self._event("continue_as_new", "history is long: continuing as a new run with the same state")
        resume = ResumeState(
            state=self._state, pending_feedback=self._pending_feedback, next_event_id=self._next_event_id
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
        reply, steps = await self._agent_loop(
            AgentRole.CODE_GENERATION, self._input.code_model, prompts.CODE_SYSTEM, prompt
        )
        code, explanation = split_code_answer(reply.content)
        lint = await self._lint(code, step=steps)
        if lint.score is not None:
            self._upsert(SA_LINT_SCORE.value_set(float(lint.score)))
        self._state.results.code_generation = CodeResult(
            code=code,
            explanation=explanation,
            model=reply.model,
            lint=lint,
            steps=steps,
            revision=self._state.revisions,
        )
        self._revision_comment = None
        self._event(
            "code_ready",
            f"code ready ({len(code.splitlines())} lines, pylint {lint.score})",
            agent=AgentRole.CODE_GENERATION,
            data={"lint_score": lint.score, "revision": self._state.revisions},
        )

    async def _doc_agent(self) -> None:
        code = self._state.results.code_generation
        assert code is not None  # the supervisor routes here only after the code agent
        prompt = prompts.doc_prompt(self._input.task_description, self._state.plan, code.code)
        reply, steps = await self._agent_loop(
            AgentRole.DOCUMENTATION, self._input.doc_model, prompts.DOC_SYSTEM, prompt
        )
        self._state.results.documentation = DocResult(
            documentation=reply.content.strip(), model=reply.model, steps=steps, code_revision=code.revision
        )
        self._event("docs_ready", "documentation ready", agent=AgentRole.DOCUMENTATION)

    async def _agent_loop(
        self, role: AgentRole, model: str | None, system: str, prompt: str
    ) -> tuple[LlmResponse, int]:
        """Model call → tool calls → model call … until the model answers; the last step offers no tools."""
        messages = [ChatMessage(role="user", content=prompt)]
        max_steps = self._input.max_agent_steps
        for step in range(1, max_steps + 1):
            tools = TOOLS if step < max_steps else []
            request = LlmRequest(role=role, model=model, system=system, messages=messages, tools=tools)
            reply = await self._llm(request, step)
            messages.append(ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            if not reply.tool_calls:
                return reply, step
            if not tools:
                break
            results = await asyncio.gather(*(self._run_tool(role, call, step) for call in reply.tool_calls))
            messages.extend(results)
        raise TaskFailed(f"{role} agent gave no final answer within {max_steps} steps")

    # ------------------------------------------------------------------ activities

    async def _execute(self, name: str, arg: Any, result_type: type[T], options: ActivityOptions, summary: str) -> T:
        """Run an activity with its options; cancellation passes through, a final failure is ActivityFailed."""
        self._flush_search_attributes()
        try:
            return await workflow.execute_activity(
                name,
                arg,
                result_type=result_type,
                start_to_close_timeout=options.start_to_close,
                schedule_to_close_timeout=options.schedule_to_close,
                heartbeat_timeout=options.heartbeat,
                retry_policy=options.retry,
                summary=summary,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            raise ActivityFailed(_root_message(exc)) from exc

    async def _llm(self, request: LlmRequest, step: int) -> LlmResponse:
        summary = f"{request.role} · {request.model or 'default model'} · step {step}"
        try:
            reply = await self._execute(LLM_ACTIVITY, request, LlmResponse, LLM_OPTIONS, summary)
        except ActivityFailed as exc:
            raise TaskFailed(f"{request.role} model call failed: {exc}") from exc
        usage = self._state.usage.setdefault(reply.model, ModelUsage())
        usage.calls += 1
        usage.input_tokens += reply.input_tokens
        usage.output_tokens += reply.output_tokens
        total_tokens = sum(u.input_tokens + u.output_tokens for u in self._state.usage.values())
        model_key = {AgentRole.CODE_GENERATION: SA_CODE_MODEL, AgentRole.DOCUMENTATION: SA_DOC_MODEL}.get(request.role)
        self._upsert(
            SA_TOTAL_TOKENS.value_set(total_tokens),
            *([model_key.value_set(reply.model)] if model_key else []),
        )
        self._details(f"{request.role} · {reply.model} · step {step}")
        if reply.warning and reply.warning not in self._state.warnings:
            self._state.warnings.append(reply.warning)
            self._event("warning", reply.warning, agent=request.role)
        self._event(
            "llm_call",
            f"{request.role} step {step}: {reply.model} answered"
            + (f" with {len(reply.tool_calls)} tool call(s)" if reply.tool_calls else ""),
            agent=request.role,
            data={"step": step, "model": reply.model, "tool_calls": [c.name for c in reply.tool_calls]},
        )
        return reply

    async def _run_tool(self, role: AgentRole, call: ToolCall, step: int) -> ChatMessage:
        if call.arguments_error:
            text, is_error = f"invalid arguments for {call.name}: {call.arguments_error}", True
        elif call.name == ToolName.LINT:
            text, is_error = await self._lint_tool(call.arguments, step)
        elif call.name == ToolName.SEARCH_KNOWLEDGE:
            text, is_error = await self._search_tool(call.arguments)
        else:
            text, is_error = f"unknown tool {call.name!r}; available: lint, search_knowledge", True
        self._event(
            "tool_call",
            f"{role} called {call.name}" + (" (error)" if is_error else ""),
            agent=role,
            data={"tool": call.name, "is_error": is_error, "result": text[:300]},
        )
        return ChatMessage(role="tool", tool_call_id=call.id, content=text, is_error=is_error)

    async def _lint_tool(self, arguments: dict[str, Any], step: int) -> tuple[str, bool]:
        code = arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            return "lint needs a non-empty 'code' string argument", True
        if len(code) > MAX_TOOL_CODE:
            return f"code is too long to lint ({len(code)} > {MAX_TOOL_CODE} characters)", True
        result = await self._lint(code, step)
        return result.summary(), result.error is not None

    async def _lint(self, code: str, step: int) -> LintResult:
        try:
            result = await self._execute(
                LINT_ACTIVITY, LintRequest(code=code), LintResult, LINT_OPTIONS, f"lint · step {step}"
            )
        except ActivityFailed as exc:
            result = LintResult(error=f"lint unavailable: {exc}")
        self._event("lint", result.summary(limit=0), data={"score": result.score, "error": result.error})
        return result

    async def _search_tool(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        query = arguments.get("query")
        top_k = arguments.get("top_k", 3)
        if not isinstance(query, str) or not query.strip():
            return "search_knowledge needs a non-empty 'query' string argument", True
        if not isinstance(top_k, int) or isinstance(top_k, bool):
            top_k = 3
        top_k = max(1, min(top_k, MAX_RAG_TOP_K))
        query = RagQuery(query=query[:2000], top_k=top_k)
        try:
            found = await self._execute(RAG_ACTIVITY, query, RagResult, RAG_OPTIONS, f"rag · {query.query[:60]}")
        except ActivityFailed as exc:
            message = f"knowledge base unavailable: {exc}"
            if message not in self._state.warnings:
                self._state.warnings.append(message)
            self._event("warning", message)
            return message + " (continue without it)", True
        if not found.results:
            return "no matching snippets in the knowledge base", False
        return json.dumps(
            [
                {"source": h.source, "score": round(h.score, 4), "content": h.content[:RAG_SNIPPET_CHARS]}
                for h in found.results
            ],
            indent=1,
        ), False

    # ------------------------------------------------------------------ state

    def _set_status(self, status: TaskStatus, message: str) -> None:
        self._state.task_status = status
        self._upsert(SA_TASK_STATUS.value_set(status.value))
        self._details()
        self._event("status", message, data={"task_status": status.value})

    async def _check_search_attributes(self) -> None:
        """Upsert search attributes only if the server has them registered (else every upsert is rejected).

        A task started with `TaskStatus` set (`start_search_attributes`: the gateway, the benchmark) was started
        by someone who checked; any other asks the `search_attributes_registered` local activity.
        """
        vouched = False
        if workflow.patched(COALESCED_SEARCH_ATTRIBUTES_PATCH):
            self._coalesce_upserts = True
            started_with = workflow.info().typed_search_attributes
            self._sent_attributes = {pair.key.name: pair.value for pair in started_with}
            vouched = started_with.get(SA_TASK_STATUS) is not None
        elif not workflow.patched(SEARCH_ATTRIBUTES_PATCH):
            return
        self._search_attributes = vouched or await self._search_attributes_registered()
        if not self._search_attributes:
            self._event("warning", "search attributes are not registered on the server; this task has none")
            return
        owner = workflow.memo_value(OWNER_MEMO, None, type_hint=str)
        if isinstance(owner, str) and owner:
            self._upsert(SA_OWNER.value_set(owner[:255]))
        if self._state.feedback:  # feedback that arrived before the check
            self._upsert(SA_FEEDBACK_RATING.value_set(self._state.feedback[-1].rating))

    async def _search_attributes_registered(self) -> bool:
        try:
            return await workflow.execute_local_activity(
                SEARCH_ATTRIBUTES_ACTIVITY,
                SearchAttributesCheck(names=[key.name for key in SEARCH_ATTRIBUTES]),
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="check search attributes",
            )
        except ActivityError:
            return False

    def _upsert(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Keep the search attributes current (skipped when replaying a history from before they existed).

        Changes are staged and sent by `_flush_search_attributes` before the workflow waits, so a workflow task
        makes at most one upsert: each upsert is a history event and a visibility write on the server.
        """
        if not (updates and self._search_attributes):
            return
        if not self._coalesce_upserts:  # a search-attributes-v1 history replays as it ran
            workflow.upsert_search_attributes(list(updates))
            return
        for update in updates:
            self._staged_attributes[update.key.name] = update

    def _flush_search_attributes(self) -> None:
        """Send the staged search attributes whose values changed, as one upsert.

        The token total and the models are not worth an upsert after every model call: they go along with the
        next change of status, agent, lint score or rating, so they are current whenever the task changes phase.
        """
        staged = self._staged_attributes
        changed = [u for name, u in staged.items() if self._sent_attributes.get(name) != u.value]
        if all(u.key.name in LAZY_SEARCH_ATTRIBUTES for u in changed):
            return
        staged.clear()
        workflow.upsert_search_attributes(changed)
        self._sent_attributes.update((u.key.name, u.value) for u in changed)

    def _details(self, doing: str | None = None) -> None:
        """The one-line summary the Web UI shows as the workflow's current details."""
        state = self._state
        tokens = sum(u.input_tokens + u.output_tokens for u in state.usage.values())
        parts = [f"**{state.task_status.value}**"]
        if doing or state.current_agent:
            parts.append(doing or f"agent {state.current_agent}")
        code = state.results.code_generation
        if code is not None and code.lint is not None and code.lint.score is not None:
            parts.append(f"lint {code.lint.score}")
        if state.feedback:
            parts.append(f"rating {state.feedback[-1].rating}")
        parts.append(f"{tokens} tokens")
        workflow.set_current_details(" · ".join(parts))

    def _event(
        self, kind: str, message: str, agent: AgentRole | None = None, data: dict[str, Any] | None = None
    ) -> None:
        now = workflow.now().isoformat()
        self._state.updated_at = now
        self._state.logs.append(f"{now} {message}")
        del self._state.logs[:-MAX_LOGS]
        event = TaskEvent(id=self._next_event_id, at=now, type=kind, message=message, agent=agent, data=data or {})
        self._next_event_id += 1
        self._events.append(event)
        del self._events[:-MAX_EVENTS]


def _root_message(exc: BaseException) -> str:
    """The innermost cause's message: the activity's own error rather than Temporal's wrapper."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__
