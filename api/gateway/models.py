"""Request and response bodies of the gateway (what /docs shows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from api.errors import ErrorDocs
from workflows.models import SESSION_ID_PATTERN, Budget, CodingTaskInput


class InvokeRequest(CodingTaskInput):
    """A `CodingTask` input plus the session id to use (a new UUID when omitted)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_description": "write a function that parses ISO-8601 durations"}]}
    )

    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="workflow id; letters, digits, '.', '_' and '-', at most 128 characters; never reused",
    )
    resume: SkipJsonSchema[None] = None  # internal to the workflow (continue-as-new): not accepted here

    def task_input(self, default_budget_usd: float | None = None) -> CodingTaskInput:
        """The workflow's input; `default_budget_usd` (DEFAULT_BUDGET_USD) applies when the body names no
        `budget_usd` (an explicit null keeps the task without one)."""
        values = self.model_dump(exclude={"session_id"})
        if default_budget_usd is not None and "budget_usd" not in self.model_fields_set:
            values["budget_usd"] = default_budget_usd
        return CodingTaskInput.model_validate(values)


class InvokeAccepted(BaseModel):
    session_id: str
    status_url: str = Field(description="GET it for the task state")
    events_url: str = Field(description="GET it for the progress events as Server-Sent Events")


class FeedbackAccepted(BaseModel):
    session_id: str
    accepted: Literal[True] = True


class CancelResult(BaseModel):
    session_id: str
    outcome: Literal["cancel_requested", "already_closed"]
    workflow_status: str = Field(description="Temporal's execution status when the request arrived, e.g. RUNNING")


class BudgetRaised(Budget):
    """The task's budget after the raise."""

    warning: str | None = Field(
        default=None,
        description="set when a model call is waiting for budget and the new limits are still below what it needs "
        "(`needed_usd`, `needed_tokens`): the task stays `awaiting_budget` until a raise covers it",
    )


class StreamGap(BaseModel):
    """Data of a `gap` event: the workflow's event buffer dropped these before the stream could read them."""

    missed_from: int
    missed_to: int


class HealthOut(BaseModel):
    status: Literal["healthy", "degraded"]
    temporal: bool = Field(description="Temporal answered a health check")
    worker: bool = Field(description="a worker polled the task queue recently")
    task_queue: str
    reasons: list[str] = Field(default_factory=list)


error_responses = ErrorDocs(
    {
        401: "missing or unknown X-API-KEY",
        404: "no task with this session id for this API key",
        409: "conflict; see detail",
        413: "request body too large",
        422: "invalid input; `errors` names each field and reason",
        429: "rate limit of this API key exceeded, or too many missing or unknown keys from this address; see "
        "Retry-After",
        502: "Temporal refused the request",
        503: "Temporal is unreachable or did not answer in time; retry later",
    }
)
