"""`GET /tasks`: the caller's own tasks, from Temporal visibility (the `Owner` search attribute), a page at a time.

Visibility answers without asking a worker, so the list is cheap and works for ended tasks too. Each item is what
the task's search attributes and memo say; the full state is `GET /status/{session_id}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.auth import OPERATOR_TENANT, ApiKeyRegistry
from api.errors import ErrorDocs
from workflows.models import (
    DESCRIPTION_MEMO,
    DESCRIPTION_MEMO_CHARS,
    SA_COST_USD,
    SA_FEEDBACK_RATING,
    SA_LINT_GATE,
    SA_LINT_SCORE,
    SA_OWNER,
    SA_TASK_STATUS,
    SA_TOTAL_TOKENS,
    WORKFLOW_TYPE,
    LintGate,
    TaskStatus,
)

from ..deps import GatewaySettings, TemporalClient, Tenant, read_memo, task_owner
from ..models import error_responses

logger = logging.getLogger(__name__)
router = APIRouter(tags=["tasks"])

MAX_PAGE_SIZE = 100

_TOKEN_MAC_BYTES = 16
E = TypeVar("E", bound=StrEnum)

responses = ErrorDocs(
    {
        **error_responses.descriptions,
        409: "a next_page_token this gateway did not issue for this key and these filters (a schema-valid string "
        "the listing cannot continue from); start again without it",
        422: "invalid filter",
        501: "the Temporal namespace lacks the search attributes the list needs (`Owner`, `TaskStatus`); run "
        "`python -m orchestrator.search_attributes register`",
    }
)

_EXAMPLE_ITEM: dict[str, JsonValue] = {
    "session_id": "http-1",
    "run_id": "0199c6a2-6f0e-7c1d-9f3e-4b8a2d1e5c77",
    "task_description": "write a function that parses ISO-8601 durations",
    "task_status": "awaiting_feedback",
    "workflow_status": "RUNNING",
    "created_at": "2026-12-02T09:14:03.118Z",
    "closed_at": None,
    "lint_score": 10.0,
    "lint_gate": "passed",
    "feedback_rating": None,
    "total_tokens": 2143,
    "cost_usd": 0.0,
}


class TaskSummary(BaseModel):
    """One task as visibility knows it; null where the task has not got that far (or, for `task_description`,
    was started by something else than this gateway)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_ITEM]})

    session_id: str
    run_id: str
    task_description: str | None = Field(description=f"its first {DESCRIPTION_MEMO_CHARS} characters")
    task_status: TaskStatus | None = Field(description="the `TaskStatus` search attribute")
    workflow_status: str = Field(description="Temporal's execution status: RUNNING, COMPLETED, TERMINATED, ...")
    created_at: datetime
    closed_at: datetime | None = Field(description="when the workflow ended; null while it runs")
    lint_score: float | None
    lint_gate: LintGate | None
    feedback_rating: int | None = Field(description="the last rating received")
    total_tokens: int | None
    cost_usd: float | None = Field(description="null while unknown (no call yet, or a model without a price)")


class TaskPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tasks": [_EXAMPLE_ITEM], "next_page_token": None}]})

    tasks: list[TaskSummary]
    next_page_token: str | None = Field(description="pass it back (same filters) for the next page; null: no more")


class PageTokens:
    """Temporal's page tokens, signed for one tenant and one set of filters.

    Temporal gives a token that it alone can read, and a malformed one sends it into retries until the RPC
    times out. So a token goes out with an HMAC (keyed by the tenant's API key, over the query it continues), and
    only a token that verifies goes back to Temporal: anything else is a 409 at once (it has the published shape,
    but no listing of this key and these filters continues from it).
    """

    def __init__(self, key: str, query: str) -> None:
        self._key = hashlib.sha256(b"task-list-page-token\0" + key.encode()).digest()
        self._query = query.encode()

    def _mac(self, token: bytes) -> bytes:
        return hmac.new(self._key, self._query + b"\0" + token, hashlib.sha256).digest()[:_TOKEN_MAC_BYTES]

    def issue(self, token: bytes | None) -> str | None:
        if not token:
            return None
        return base64.urlsafe_b64encode(self._mac(token) + token).decode().rstrip("=")

    def read(self, presented: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(presented + "=" * (-len(presented) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        mac, token = raw[:_TOKEN_MAC_BYTES], raw[_TOKEN_MAC_BYTES:]
        if not token or not hmac.compare_digest(mac, self._mac(token)):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "next_page_token is not a token this gateway issued for this key and these filters; "
                "start again without it",
            )
        return token


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    """What the schema's `date-time` says, nothing else (pydantic alone also takes numbers as Unix times)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def _literal(value: str) -> str:
    """A visibility-query string literal. Tenant names and statuses hold no quotes; anything else is refused."""
    if '"' in value or "\\" in value:
        raise ValueError(f"unexpected character in a query literal: {value!r}")
    return f'"{value}"'


def visibility_query(tenant: str, statuses: list[TaskStatus] | None, since: datetime | None) -> str:
    """The caller's CodingTask runs, the last run of each (a continued-as-new run is not listed twice)."""
    owner = f"{SA_OWNER.name} = {_literal(tenant)}"
    if tenant == OPERATOR_TENANT:  # and the tasks started without an owner (`deps.task_owner`)
        owner = f"({owner} OR {SA_OWNER.name} IS NULL)"
    clauses = [f"WorkflowType = {_literal(WORKFLOW_TYPE)}", owner, 'ExecutionStatus != "ContinuedAsNew"']
    if statuses:
        clauses.append(f"{SA_TASK_STATUS.name} IN ({', '.join(_literal(s.value) for s in sorted(set(statuses)))})")
    if since is not None:
        clauses.append(f"StartTime >= {_literal(since.isoformat())}")
    return " AND ".join(clauses)


def _member(kind: type[E], value: str | None) -> E | None:
    """The enum member of a search attribute's value; None when unset or a value this version does not know."""
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


async def summary(execution: WorkflowExecution) -> TaskSummary:
    attributes = execution.typed_search_attributes
    description = await read_memo(execution, DESCRIPTION_MEMO)  # UNREADABLE is not a str: no description
    return TaskSummary(
        session_id=execution.id,
        run_id=execution.run_id,
        task_description=description[:DESCRIPTION_MEMO_CHARS] if isinstance(description, str) else None,
        task_status=_member(TaskStatus, attributes.get(SA_TASK_STATUS)),
        workflow_status=execution.status.name if execution.status else "UNKNOWN",
        created_at=execution.start_time,
        closed_at=execution.close_time,
        lint_score=attributes.get(SA_LINT_SCORE),
        lint_gate=_member(LintGate, attributes.get(SA_LINT_GATE)),
        feedback_rating=attributes.get(SA_FEEDBACK_RATING),
        total_tokens=attributes.get(SA_TOTAL_TOKENS),
        cost_usd=attributes.get(SA_COST_USD),
    )


@router.get(
    "/tasks",
    response_model=TaskPage,
    summary="The caller's tasks, newest first, a page at a time",
    responses=responses(401, 409, 422, 429, 501, 502, 503),
)
async def list_tasks(
    request: Request,
    tenant: Tenant,
    client: TemporalClient,
    settings: GatewaySettings,
    task_status: Annotated[
        list[TaskStatus] | None,
        Query(alias="status", description="only tasks in one of these statuses (repeat the parameter for several)"),
    ] = None,
    since: Annotated[
        Rfc3339 | None, Query(description="only tasks started at or after this time (RFC 3339, with offset)")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="tasks per page")] = 20,
    next_page_token: Annotated[
        str | None,
        Query(max_length=4096, pattern=r"^[A-Za-z0-9_-]+$", description="from the previous page, same filters"),
    ] = None,
) -> TaskPage:
    """Only the tasks this API key started (the `Owner` search attribute, and the memo checked again), never
    another tenant's. Order: running tasks first, newest start first, then ended ones, most recently ended first
    (the order of Temporal visibility on every store).
    """
    registry: ApiKeyRegistry = request.app.state.registry
    query = visibility_query(tenant, task_status, since)
    tokens = PageTokens(registry.keys_by_tenant[tenant], query)
    listing = client.list_workflows(
        query,
        page_size=page_size,
        next_page_token=tokens.read(next_page_token) if next_page_token else None,
        rpc_timeout=timedelta(seconds=settings.gateway_rpc_timeout),
    )
    try:
        await listing.fetch_next_page()
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in exc.message:
            logger.warning("GET /tasks: the namespace lacks the search attributes: %s", exc.message)
            raise HTTPException(
                status.HTTP_501_NOT_IMPLEMENTED,
                "this Temporal namespace lacks the search attributes the task list needs (Owner, TaskStatus); "
                "an operator runs `python -m orchestrator.search_attributes register` once",
            ) from None
        raise
    timeout = timedelta(seconds=settings.gateway_rpc_timeout)
    mine = [
        execution
        for execution in listing.current_page or ()
        if await _owned_by(execution, tenant) and await _current_run(client, execution, timeout)
    ]
    return TaskPage(tasks=[await summary(e) for e in mine], next_page_token=tokens.issue(listing.next_page_token))


async def _current_run(client: Client, execution: WorkflowExecution, rpc_timeout: timedelta) -> bool:
    """A session is listed once, as its current run: a run a reset replaced (terminated, no longer the session's
    current run) is left out. (A run continued as new is left out by the query.)"""
    if execution.status != WorkflowExecutionStatus.TERMINATED:
        return True
    current = await client.get_workflow_handle(execution.id).describe(rpc_timeout=rpc_timeout)
    return current.run_id == execution.run_id


async def _owned_by(execution: WorkflowExecution, tenant: str) -> bool:
    """The memo's owner agrees with the search attribute (a run whose memo says otherwise is never shown)."""
    return bool(await task_owner(execution) == tenant)
