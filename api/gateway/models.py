"""Request and response bodies of the gateway (what /docs shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from api.errors import ErrorDocs
from api.schema import NOT_BLANK, SchemaStrict
from workflows.models import SESSION_ID_PATTERN, CodingTaskInput, FeedbackInput


def _invoke_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["task_description"]["pattern"] = NOT_BLANK  # what CodingTaskInput's validator checks
    schema["examples"] = [{"task_description": "write a function that parses ISO-8601 durations"}]


class InvokeRequest(SchemaStrict, CodingTaskInput):
    """A `CodingTask` input plus the session id to use (a new UUID when omitted)."""

    model_config = ConfigDict(json_schema_extra=_invoke_schema)

    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="workflow id; letters, digits, '.', '_' and '-', at most 128 characters; never reused",
    )
    resume: SkipJsonSchema[None] = None  # internal to the workflow (continue-as-new): not accepted here

    def task_input(self) -> CodingTaskInput:
        return CodingTaskInput.model_validate(self.model_dump(exclude={"session_id"}))


class FeedbackRequest(SchemaStrict, FeedbackInput):
    """The `feedback` signal's payload as the gateway takes it: `{"rating": 3.0}` is a rating of 3, as in JSON."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"rating": 5, "comment": "works"}]})


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
        429: "rate limit of this API key exceeded; see Retry-After",
        502: "Temporal refused the request",
        503: "Temporal is unreachable or did not answer in time; retry later",
    }
)
