"""Tasks: start one (SSE or JSON), stream its events, read its state, send feedback, cancel it."""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sse_starlette import EventSourceResponse
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ErrorOut
from api.schema import OptionalQueryBool
from orchestrator.codec import encrypting_for
from workflows.coding_task import CodingTask
from workflows.models import (
    DESCRIPTION_MEMO,
    DESCRIPTION_MEMO_CHARS,
    MAX_CODE_CONTEXT,
    MAX_INLINE_CODE_CONTEXT,
    OWNER_MEMO,
    STREAM_END_STATUSES,
    BudgetRaise,
    CodingTaskInput,
    FeedbackInput,
    TaskEvent,
    TaskState,
    TaskStatus,
    start_search_attributes,
)

from ..connection import TemporalConnection
from ..deps import Connection, GatewaySettings, Owned, OwnedRun, Tenant, not_found
from ..metrics import GatewayMetrics
from ..models import (
    BudgetRaised,
    CancelResult,
    FeedbackAccepted,
    InvokeAccepted,
    InvokeRequest,
    StreamGap,
    error_responses,
)
from ..settings import Settings
from ..state import read_state
from ..streams import GATEWAY_EVENTS, Catchup, Feed, Place, StreamHub, Watcher, catch_up, sse
from ..updates import update_task

logger = logging.getLogger(__name__)
router = APIRouter(tags=["tasks"])

DELTAS_HELP = "false: leave out the `llm_delta` events (the model's text as it is written); default true"
_REF = "#/components/schemas/{model}"
_refs, _defs = models_json_schema(
    [(model, "serialization") for model in (InvokeAccepted, TaskEvent, TaskState, StreamGap, ErrorOut)],
    ref_template=_REF,
)
EVENT_SCHEMAS: dict[str, Any] = _defs["$defs"]  # main.py adds them to the OpenAPI components


def _event(kind: dict[str, Any], data: type[BaseModel], numbered: bool = False) -> dict[str, Any]:
    """One kind of event: its `event`, `data` (JSON, of `data`'s schema) and `id` fields."""
    content = {"type": "string", "contentMediaType": "application/json", "contentSchema": _refs[data, "serialization"]}
    return {
        "properties": {"event": kind, "data": content, "id": {"type": "string", "pattern": "^[0-9]+$"}},
        "required": ["event", "data", "id"] if numbered else ["event", "data"],
    }


def _stream_response(description: str, session_first: bool) -> dict[int | str, dict[str, Any]]:
    kinds = [
        _event({"not": {"enum": list(GATEWAY_EVENTS)}}, TaskEvent, numbered=True),  # `id:` = the event's id
        _event({"const": "end"}, TaskState),
        _event({"const": "gap"}, StreamGap),
        _event({"enum": ["error", "timeout"]}, ErrorOut),
    ]
    if session_first:
        kinds.insert(0, _event({"const": "session"}, InvokeAccepted))
    # OpenAPI 3.1 has no `itemSchema` (3.2 does): a `text/event-stream` schema describes each event, as tools read it
    return {200: {"description": description, "content": {"text/event-stream": {"schema": {"oneOf": kinds}}}}}


INVOKE_STREAM = _stream_response(
    "Server-Sent Events: `session` first, then one event per workflow progress event (`id:` = event id, "
    "`event:` = its type, `data:` = the TaskEvent), then `end` with the TaskState; `gap`, `error` or `timeout` "
    "when something goes wrong",
    session_first=True,
)


def _session_links(session_id: str) -> dict[str, Any]:
    """OpenAPI links from a started task to the routes that take its session id."""
    return {
        name: {"operationId": name, "parameters": {"session_id": session_id}}
        for name in ("events", "get_status", "feedback", "cancel", "raise_budget")
    }


INVOKE_STREAM[200]["headers"] = {
    "X-Session-Id": {"description": "the session id of the task started", "schema": {"type": "string"}}
}
INVOKE_STREAM[200]["links"] = _session_links("$response.header.X-Session-Id")
EVENTS_STREAM = _stream_response(
    "Server-Sent Events: one event per workflow progress event after the given position, then `end` with the "
    "TaskState; `gap`, `error` or `timeout` when something goes wrong",
    session_first=False,
)


def _metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


def _rpc_timeout(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.gateway_rpc_timeout)


def _wants_json(request: Request, stream: bool | None) -> bool:
    if stream is not None:
        return not stream
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


async def _catch_up(
    request: Request, handle: WorkflowHandle[Any, Any], after: int, client: Client, settings: Settings, named: str
) -> tuple[Catchup, tuple[Feed, Watcher] | None]:
    """The events before the stream goes live and, unless the task stopped, a place on its feed. Clients arriving
    together read once: the next ones catch up from the feed, with no Temporal call. 409 when `after` (given as
    `named`) is beyond the last event, 503 when the task cannot answer (no worker)."""
    hub: StreamHub = request.app.state.streams
    try:
        async with hub.catching_up(handle.id):
            if (cached := hub.cached(handle.id, after)) is not None:
                return cached, hub.join(client, handle.id, cached)
            # Subscribed before the read: what the task sends after it is never missed.
            async with hub.subscribed(client, handle.id) as subscription:
                catchup = await catch_up(client, handle.id, after, _rpc_timeout(settings))
                if catchup.last_status in STREAM_END_STATUSES:
                    return catchup, None
                return catchup, hub.join(client, handle.id, catchup, subscription)
    except ValueError as exc:  # a well-formed position this task has not reached: its state, not the request
        raise HTTPException(status.HTTP_409_CONFLICT, f"{named} {after} is beyond the stream: {exc}") from None
    except WorkflowQueryFailedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the task could not answer: {exc}") from None


async def _start(
    connection: TemporalConnection, task: CodingTaskInput, session_id: str, tenant: str, settings: Settings
) -> WorkflowHandle[Any, Any]:
    """Start the task with its search attributes (so it keeps them current, and `Owner` is set).

    A namespace that lacks them refuses such a start: the task is then started without them (it runs, and says
    so in its warnings) until this gateway restarts; `python -m orchestrator.search_attributes register` fixes it.
    """
    client = await connection.get()
    with_attributes = connection.search_attributes_registered
    try:
        with encrypting_for(tenant):  # with PAYLOAD_ENCRYPTION_KEYS: the task's payloads are the tenant's
            return await client.start_workflow(
                CodingTask.run,
                task,
                id=session_id,
                task_queue=settings.temporal_task_queue,
                memo={OWNER_MEMO: tenant, DESCRIPTION_MEMO: task.task_description[:DESCRIPTION_MEMO_CHARS]},
                search_attributes=start_search_attributes(owner=tenant) if with_attributes else None,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                rpc_timeout=_rpc_timeout(settings),
            )
    except RPCError as exc:
        if not (with_attributes and exc.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in str(exc)):
            raise
        logger.warning(
            "the namespace lacks the search attributes (%s); tasks start without them: "
            "run `python -m orchestrator.search_attributes register`",
            exc,
        )
    connection.search_attributes_registered = False
    return await _start(connection, task, session_id, tenant, settings)


@router.post(
    "/invoke",
    response_model=None,
    response_class=Response,  # the 200 is an event stream (documented below), never JSON
    status_code=status.HTTP_200_OK,
    summary="Start a coding task",
    responses={
        **INVOKE_STREAM,
        202: {
            "model": InvokeAccepted,
            "description": "started (JSON mode: Accept: application/json or ?stream=false)",
            "links": _session_links("$response.body#/session_id"),
        },
        **error_responses(401, 409, 413, 422, 429, 502, 503),
        422: {
            "model": ErrorOut,
            "description": "invalid input (`errors` names each field and reason), also what JSON Schema cannot say: "
            "a `files` path given twice, code_context and the files' contents over "
            f"{MAX_CODE_CONTEXT:,} characters together",
        },
    },
)
async def invoke(
    body: InvokeRequest,
    request: Request,
    tenant: Tenant,
    connection: Connection,
    settings: GatewaySettings,
    stream: Annotated[OptionalQueryBool, Query(description="false: answer 202 JSON at once instead of SSE")] = None,
    deltas: Annotated[OptionalQueryBool, Query(description=DELTAS_HELP)] = None,
) -> Response:
    """Start a `CodingTask` (workflow id = `session_id` or a new UUID) and stream its progress.

    A session id is never reused, even after its task ended: starting it again answers 409.
    """
    session_id = body.session_id or str(uuid.uuid4())
    task = body.task_input(default_budget_usd=settings.default_budget_usd)
    context = task.context_size()
    if context > MAX_INLINE_CODE_CONTEXT and (await connection.get()).data_converter.external_storage is None:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"code_context, files and tests hold {context} characters; without the payload store (PAYLOAD_STORE) "
            f"at most {MAX_INLINE_CODE_CONTEXT} fit in a task's history (with it, {MAX_CODE_CONTEXT})",
        )
    wants_json = _wants_json(request, stream)
    hub: StreamHub = request.app.state.streams
    client = await connection.get()
    # A stream's subscription is made before the start, so that none of the task's first events is missed.
    async with contextlib.nullcontext() if wants_json else hub.subscribed(client, session_id) as subscription:
        try:
            await _start(connection, task, session_id, tenant, settings)
        except WorkflowAlreadyStartedError:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"session id {session_id!r} is already in use; ids are never reused",
            ) from None
        _metrics(request).tasks_started.inc()
        logger.info("task %s started by tenant %s", session_id, tenant)
        accepted = InvokeAccepted(
            session_id=session_id, status_url=f"/status/{session_id}", events_url=f"/events/{session_id}"
        )
        if wants_json:
            return JSONResponse(accepted.model_dump(), status.HTTP_202_ACCEPTED)
        fresh = Catchup(items=[], next_offset=0, task_status=TaskStatus.PLANNING)  # nothing to catch up on yet
        joined = hub.join(client, session_id, fresh, subscription)
    place = Place(session_id, fresh, joined, expected=0, deltas=deltas is not False)
    first = sse("session", accepted.model_dump_json())
    return EventSourceResponse(hub.events(client, place, first), headers={"X-Session-Id": session_id})


@router.get(
    "/events/{session_id}",
    response_model=None,
    response_class=Response,
    summary="Stream a task's progress events (resumable)",
    responses={**EVENTS_STREAM, **error_responses(401, 404, 409, 422, 429, 502, 503)},
)
async def events(
    handle: OwnedRun,
    request: Request,
    connection: Connection,
    settings: GatewaySettings,
    after: Annotated[int, Query(ge=0, le=2**53, description="send only events with a larger id")] = 0,
    last_event_id: Annotated[
        str,  # a header cannot be null: absent or empty means none
        Header(pattern=r"^[0-9]{0,15}$", description="set by SSE clients when they reconnect"),
    ] = "",
    deltas: Annotated[OptionalQueryBool, Query(description=DELTAS_HELP)] = None,
) -> Response:
    """The events after `after` (or `Last-Event-ID`, whichever is larger), then new ones until the task stops.

    409 when that position is beyond the task's last event (the detail names `after` or `Last-Event-ID`)."""
    resume = int(last_event_id or 0)
    start, named = (resume, "Last-Event-ID") if resume > after else (after, "after")
    client = await connection.get()
    catchup, joined = await _catch_up(request, handle, start, client, settings, named)
    place = Place(handle.id, catchup, joined, expected=start, deltas=deltas is not False)
    return EventSourceResponse(request.app.state.streams.events(client, place))


@router.get(
    "/status/{session_id}",
    response_model=TaskState,
    summary="The task's state (the workflow's `status` query; a completed task's result)",
    responses=error_responses(401, 404, 422, 429, 502, 503),
)
async def get_status(task: Owned, settings: GatewaySettings) -> TaskState:
    """Readable while the task runs and after it ended: a completed task's state is its result, read from its
    history; any other task answers the `status` query (a worker must be polling the task queue)."""
    completed = task.description.status == WorkflowExecutionStatus.COMPLETED
    try:
        return await read_state(task.handle, completed, _rpc_timeout(settings))
    except WorkflowQueryFailedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the task could not answer: {exc}") from None
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: the task is gone (past retention)
            raise
        raise not_found(task.session_id) from None


@router.post(
    "/feedback/{session_id}",
    response_model=FeedbackAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rate the task's result (1..5) with an optional comment",
    responses=error_responses(401, 404, 409, 413, 422, 429, 502, 503),
)
async def feedback(
    body: FeedbackInput, task: Owned, tenant: Tenant, request: Request, settings: GatewaySettings
) -> FeedbackAccepted:
    """Sends the `feedback` signal. A rating below 3 with a comment asks for a revision (bounded).

    409 unless the task awaits feedback (`task_status` `awaiting_feedback`): while it plans, runs or revises there
    is no result to rate, and after it ended nothing can change."""
    closed = HTTPException(status.HTTP_409_CONFLICT, "the task has ended and no longer accepts feedback")
    if not task.running:
        raise closed
    try:
        state = await task.handle.query(CodingTask.status, rpc_timeout=_rpc_timeout(settings))
    except WorkflowQueryFailedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the task could not answer: {exc}") from None
    if state.task_status != TaskStatus.AWAITING_FEEDBACK:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the task is {state.task_status}: it takes feedback only while it awaits it (awaiting_feedback), "
            "once it has a result to rate; send it then",
        )
    try:
        with encrypting_for(tenant):
            await task.handle.signal(CodingTask.feedback, body, rpc_timeout=_rpc_timeout(settings))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # it ended between the check and the signal
            raise closed from None
        raise
    _metrics(request).feedback_received.labels(str(body.rating)).inc()
    logger.info("feedback %d for %s", body.rating, task.session_id)
    return FeedbackAccepted(session_id=task.session_id)


@router.post(
    "/cancel/{session_id}",
    response_model=CancelResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel the task (idempotent)",
    responses=error_responses(401, 404, 413, 422, 429, 502, 503),
)
async def cancel(task: Owned, settings: GatewaySettings) -> CancelResult:
    """Requests Temporal cancellation; partial results stay readable. Cancelling an ended task changes nothing."""
    workflow_status = task.description.status.name if task.description.status else "UNKNOWN"
    if not task.running:
        return CancelResult(session_id=task.session_id, outcome="already_closed", workflow_status=workflow_status)
    try:
        await task.handle.cancel(rpc_timeout=_rpc_timeout(settings))
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return CancelResult(session_id=task.session_id, outcome="already_closed", workflow_status=workflow_status)
    logger.info("cancel requested for %s", task.session_id)
    return CancelResult(session_id=task.session_id, outcome="cancel_requested", workflow_status=workflow_status)


@router.post(
    "/budget/{session_id}",
    response_model=BudgetRaised,
    summary="Raise the task's budget (the `raise_budget` update)",
    responses=error_responses(401, 404, 409, 413, 422, 429, 503),
)
async def raise_budget(body: BudgetRaise, task: Owned, tenant: Tenant, settings: GatewaySettings) -> BudgetRaised:
    """New limits, each above what the task has spent; a task in `awaiting_budget` goes on. Answers the new budget,
    with a `warning` when the model call waiting for budget needs more than that (the task then stays waiting).

    409 when a limit is not above what the task has spent by now (the workflow's own validator says so, nothing
    changes) and when the task has ended.
    """
    ended = "the task has ended; its budget can no longer change"
    budget = await update_task(task, tenant, settings, CodingTask.raise_budget, body, ended, "budget not raised: {}")
    logger.info("budget of %s raised to %s", task.session_id, budget.model_dump())
    return BudgetRaised(**budget.model_dump(), warning=budget.shortfall())
