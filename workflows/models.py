"""Inputs, outputs and names shared by the workflow, the activities, the worker and the gateway.

This module has no side effects and imports nothing that touches the network, the disk or the clock, so the
workflow sandbox can pass it through. Every workflow, activity, signal and query takes one of these models, so
fields can be added later without breaking running workflows.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TASK_QUEUE = "coding-tasks"
WORKFLOW_TYPE = "CodingTask"
FEEDBACK_SIGNAL = "feedback"
STATUS_QUERY = "status"
EVENTS_QUERY = "events"
LLM_ACTIVITY = "llm_chat"
LINT_ACTIVITY = "lint"
RAG_ACTIVITY = "search_knowledge"

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)

MAX_TASK_DESCRIPTION = 20_000
MAX_CODE_CONTEXT = 100_000
MAX_COMMENT = 4_000
MODEL_PATTERN = r"^(offline|(openai|anthropic):[A-Za-z0-9._:/-]{1,100})$"


class TaskStatus(StrEnum):
    PLANNING = "planning"
    RUNNING = "running"
    AWAITING_FEEDBACK = "awaiting_feedback"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class AgentRole(StrEnum):
    PLANNER = "planner"
    CODE_GENERATION = "code_generation"
    DOCUMENTATION = "documentation"


class ToolName(StrEnum):
    LINT = "lint"
    SEARCH_KNOWLEDGE = "search_knowledge"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- workflow input


class CodingTaskInput(_Strict):
    """The one input of the `CodingTask` workflow. Only model *names* travel here; API keys never do."""

    task_description: str = Field(min_length=1, max_length=MAX_TASK_DESCRIPTION)
    code_context: str | None = Field(default=None, max_length=MAX_CODE_CONTEXT)
    planner_model: str | None = Field(
        default=None, pattern=MODEL_PATTERN, description="provider:model; default PLANNER_MODEL of the worker"
    )
    code_model: str | None = Field(default=None, pattern=MODEL_PATTERN, description="default CODE_MODEL")
    doc_model: str | None = Field(default=None, pattern=MODEL_PATTERN, description="default DOC_MODEL")
    max_agent_steps: int = Field(default=6, ge=1, le=20, description="model calls per agent run")
    max_supervisor_iterations: int = Field(default=6, ge=2, le=20)
    max_revisions: int = Field(default=1, ge=0, le=5, description="revisions triggered by low ratings")
    feedback_window_seconds: float = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    resume: ResumeState | None = Field(
        default=None, description="set by the workflow itself when it continues as new; never by callers"
    )

    @field_validator("task_description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("task_description must not be blank")
        return value

    @property
    def feedback_window(self) -> timedelta:
        return timedelta(seconds=self.feedback_window_seconds)


# --------------------------------------------------------------------------- signal


class FeedbackInput(_Strict):
    """Payload of the `feedback` signal."""

    rating: int = Field(ge=1, le=5, strict=True)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class EventsQueryInput(_Strict):
    after: int = Field(default=0, ge=0)


# --------------------------------------------------------------------------- LLM activity


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None  # set when the model sent arguments that are not a JSON object


class ChatMessage(BaseModel):
    """Provider-neutral chat message; the LLM activity translates it to OpenAI or Anthropic shapes."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    is_error: bool = False


class LlmRequest(BaseModel):
    role: AgentRole
    model: str | None = None  # None: the worker's default for the role
    system: str
    messages: list[ChatMessage]
    tools: list[ToolName] = Field(default_factory=list)
    max_tokens: int = 4096


class LlmResponse(BaseModel):
    model: str  # provider:model that answered
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    warning: str | None = None  # e.g. fell back to the offline model


# --------------------------------------------------------------------------- tool activities


class LintRequest(BaseModel):
    code: str
    filename: str = "draft.py"


class LintMessage(BaseModel):
    line: int
    column: int
    symbol: str
    message_id: str
    type: str
    message: str


class LintResult(BaseModel):
    score: float | None = None
    messages: list[LintMessage] = Field(default_factory=list)
    error: str | None = None  # pylint could not run (timeout, memory, crash)

    def summary(self, limit: int = 20) -> str:
        if self.error:
            return f"lint failed: {self.error}"
        lines = [f"pylint score: {self.score}/10, {len(self.messages)} message(s)"]
        lines += [f"line {m.line}: {m.message_id} ({m.symbol}) {m.message}" for m in self.messages[:limit]]
        return "\n".join(lines)


class RagQuery(BaseModel):
    query: str
    top_k: int = 3


class RagHit(BaseModel):
    content: str
    source: str
    score: float


class RagResult(BaseModel):
    results: list[RagHit] = Field(default_factory=list)


# --------------------------------------------------------------------------- state (the `status` query)


class Feedback(BaseModel):
    rating: int
    comment: str | None = None
    received_at: str


class ModelUsage(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class CodeResult(BaseModel):
    code: str
    explanation: str = ""
    model: str
    lint: LintResult | None = None
    steps: int = 0
    revision: int = 0


class DocResult(BaseModel):
    documentation: str
    model: str
    steps: int = 0
    code_revision: int = 0  # the code revision these docs describe


class TaskResults(BaseModel):
    code_generation: CodeResult | None = None
    documentation: DocResult | None = None


class TaskEvent(BaseModel):
    """One progress event; ids increase by one, so a reader can resume after the last id it saw."""

    id: int
    at: str
    type: str
    message: str
    agent: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class TaskState(BaseModel):
    """What the `status` query returns (and what the workflow returns when it completes)."""

    session_id: str
    task_description: str
    task_status: TaskStatus = TaskStatus.PLANNING
    current_agent: str | None = None
    plan: str | None = None
    results: TaskResults = Field(default_factory=TaskResults)
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    logs: list[str] = Field(default_factory=list)
    feedback: list[Feedback] = Field(default_factory=list)
    revisions: int = 0
    usage: dict[str, ModelUsage] = Field(default_factory=dict)
    created_at: str
    updated_at: str


class EventsPage(BaseModel):
    events: list[TaskEvent]
    task_status: TaskStatus
    last_id: int


# --------------------------------------------------------------------------- search attributes
# Registered on the server (`make run`'s dev server, the compose cluster, scripts/register_search_attributes.sh)
# and kept current by the workflow, so the Web UI and `temporal workflow list --query` can filter on them.

SA_TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
SA_AGENT = SearchAttributeKey.for_keyword("Agent")
SA_CODE_MODEL = SearchAttributeKey.for_keyword("CodeModel")
SA_DOC_MODEL = SearchAttributeKey.for_keyword("DocModel")
SA_LINT_SCORE = SearchAttributeKey.for_float("LintScore")
SA_FEEDBACK_RATING = SearchAttributeKey.for_int("FeedbackRating")
SA_TOTAL_TOKENS = SearchAttributeKey.for_int("TotalTokens")
SA_OWNER = SearchAttributeKey.for_keyword("Owner")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    SA_TASK_STATUS,
    SA_AGENT,
    SA_CODE_MODEL,
    SA_DOC_MODEL,
    SA_LINT_SCORE,
    SA_FEEDBACK_RATING,
    SA_TOTAL_TOKENS,
    SA_OWNER,
)
OWNER_MEMO = "owner"  # memo key the gateway writes ({"owner": tenant}); the workflow copies it into `Owner`


def start_search_attributes(owner: str | None = None) -> TypedSearchAttributes:
    """The search attributes to start a task with, for a starter that has checked every one is registered.

    `TaskStatus` set at start is the starter's word that all of `SEARCH_ATTRIBUTES` are registered: the
    workflow then skips its own check (a local activity and its history marker). A task started without
    it (the `temporal` CLI, a gateway whose server lacks some) checks for itself.
    """
    pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(SA_TASK_STATUS, TaskStatus.PLANNING.value)]
    if owner:
        pairs.append(SearchAttributePair(SA_OWNER, owner[:255]))
    return TypedSearchAttributes(pairs)


class ResumeState(BaseModel):
    """What a run hands to the next one when it continues as new (a long revision loop)."""

    state: TaskState
    pending_feedback: list[FeedbackInput] = Field(default_factory=list)
    next_event_id: int = 1


CodingTaskInput.model_rebuild()
