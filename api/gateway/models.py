"""Request and response bodies of the gateway (what /docs shows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from workflows.models import SESSION_ID_PATTERN, CodingTaskInput


class InvokeRequest(CodingTaskInput):
    """A `CodingTask` input plus the session id to use (a new UUID when omitted)."""

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


class FieldError(BaseModel):
    field: str = Field(description="dotted location, e.g. 'body.rating' or 'path.session_id'")
    reason: str
    type: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="one entry per invalid field (422 only)")


class HealthOut(BaseModel):
    status: Literal["healthy", "degraded"]
    temporal: bool = Field(description="Temporal answered a health check")
    worker: bool = Field(description="a worker polled the task queue recently")
    task_queue: str
    reasons: list[str] = Field(default_factory=list)


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for the given error status codes."""
    descriptions = {
        401: "missing or unknown X-API-KEY",
        404: "no task with this session id for this API key",
        409: "conflict; see detail",
        413: "request body too large",
        422: "invalid input; `errors` names each field and reason",
        429: "rate limit of this API key exceeded; see Retry-After",
        503: "Temporal is unreachable or did not answer in time; retry later",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}
