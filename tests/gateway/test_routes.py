"""End-to-end tests of the REST gateway: HTTP → gateway → real Temporal dev server → real worker → fake LLMs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.config import WorkerSettings
from api.gateway.state import read_state, task_handle
from testbed.llm_server import FakeLlmServer
from testbed.product import product_worker
from tests.gateway.support import (
    ALICE,
    QUICK_TASK,
    asgi_client,
    live_server,
    make_app,
    parse_sse,
    read_sse,
    wait_for_status,
)
from tests.support import local_activity_types
from workflows.coding_task import CodingTask
from workflows.models import LINT_ACTIVITY, RAG_ACTIVITY, TaskStatus


def new_id() -> str:
    return f"gw-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- start, stream, status


async def test_invoke_streams_progress_until_the_task_stops(http: httpx.AsyncClient, worker: Worker) -> None:
    session_id = new_id()
    response = await http.post("/invoke", json={**QUICK_TASK, "session_id": session_id}, headers=ALICE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-session-id"] == session_id
    events = parse_sse(response.text)

    assert events[0].event == "session"
    assert events[0].json()["session_id"] == session_id
    numbered = [e for e in events if e.id is not None]
    assert [e.id for e in numbered] == list(range(1, len(numbered) + 1))  # every event once, in order
    kinds = {e.event for e in numbered}
    assert {"started", "plan", "route", "llm_call", "tool_call", "lint", "code_ready", "docs_ready"} <= kinds
    lint = next(e.json() for e in numbered if e.event == "lint")
    assert lint["data"]["score"] is not None
    assert events[-1].event == "end"
    final = events[-1].json()
    assert final["session_id"] == session_id
    assert final["task_status"] == "completed"  # no feedback window: the task ends right after the docs
    assert final["results"]["code_generation"]["code"]


async def test_stream_resumes_after_disconnect_without_repeats(
    client: Client, task_queue: str, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    fake_llm.hold_after = 1  # the planner answers, then the code agent's first model call waits
    session_id = new_id()
    async with live_server(make_app(task_queue, client)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = {**QUICK_TASK, "session_id": session_id}
        async with http.stream("POST", "/invoke", json=body, headers=ALICE) as response:
            assert response.status_code == 200
            first = await read_sse(response, stop=lambda e: e.event == "plan")
        seen = [e.id for e in first if e.id is not None]
        assert seen and first[-1].event == "plan"

        fake_llm.hold_after = None
        fake_llm.release()  # the held call fails once (503) and Temporal retries it
        headers = {**ALICE, "Last-Event-ID": str(seen[-1])}
        async with http.stream("GET", f"/events/{session_id}", headers=headers) as response:
            assert response.status_code == 200
            rest = await read_sse(response)
        resumed = [e.id for e in rest if e.id is not None]
        assert resumed[0] == seen[-1] + 1
        assert seen + resumed == list(range(1, len(seen) + len(resumed) + 1))
        assert rest[-1].event == "end"

        # ?after=N replays from N, and the stream of a stopped task ends at once
        replay = parse_sse((await http.get(f"/events/{session_id}?after=2", headers=ALICE)).text)
        assert next(e.id for e in replay if e.id is not None) == 3
        assert replay[-1].event == "end"


async def test_json_mode_status_and_duplicate_start(http: httpx.AsyncClient, client: Client, worker: Worker) -> None:
    session_id = new_id()
    body = {**QUICK_TASK, "session_id": session_id}
    response = await http.post("/invoke", json=body, headers={**ALICE, "Accept": "application/json"})
    assert response.status_code == 202
    assert response.json() == {
        "session_id": session_id,
        "status_url": f"/status/{session_id}",
        "events_url": f"/events/{session_id}",
    }

    duplicate = await http.post("/invoke?stream=false", json=body, headers=ALICE)
    assert duplicate.status_code == 409
    assert "already in use" in duplicate.json()["detail"]

    state = await wait_for_status(http, session_id, {"completed"}, ALICE)
    assert state["results"]["documentation"]["documentation"]
    # the server has every search attribute: the task starts with TaskStatus and Owner, and skips its own check
    history = await client.get_workflow_handle(session_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.search_attributes.indexed_fields
    assert {"TaskStatus", "Owner"} <= set(started)
    local = local_activity_types(history)
    assert set(local) <= {LINT_ACTIVITY, RAG_ACTIVITY}, local  # the short steps run locally; no check of its own
    # a finished task stays readable, and its id is still refused
    assert (await http.get(f"/status/{session_id}", headers=ALICE)).json()["task_status"] == "completed"
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 409

    generated = await http.post("/invoke?stream=false", json=QUICK_TASK, headers=ALICE)
    assert generated.status_code == 202
    generated_id = generated.json()["session_id"]
    assert uuid.UUID(generated_id)
    assert (await http.post(f"/cancel/{generated_id}", headers=ALICE)).status_code == 202

    metrics = (await http.get("/metrics", headers=ALICE)).text
    assert "gateway_tasks_started_total 2.0" in metrics
    assert 'gateway_requests_total{method="POST",route="/invoke",status="409"} 2.0' in metrics
    assert 'gateway_request_duration_seconds_count{method="GET",route="/status/{session_id}"}' in metrics


async def test_a_completed_task_is_read_from_its_result_with_no_worker_polling(
    http: httpx.AsyncClient, client: Client, worker_settings: WorkerSettings
) -> None:
    """A query on a closed workflow needs a worker to replay its whole history; a completed task's state is its
    result, which the server reads from the history's last event."""
    session_id = new_id()
    async with product_worker(client, worker_settings):
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        state = await wait_for_status(http, session_id, {"completed"}, ALICE)
        await client.get_workflow_handle(session_id).result()
    # the worker has stopped: nobody could answer a query now
    status = await http.get(f"/status/{session_id}", headers=ALICE)
    assert status.status_code == 200 and status.json() == state
    view = await http.get(f"/tasks/{session_id}/view", headers=ALICE)
    assert view.status_code == 200 and view.json()["state"] == state and view.json()["workflow_status"] == "COMPLETED"


async def test_a_state_read_for_a_task_that_completed_meanwhile_needs_no_worker(
    http: httpx.AsyncClient, client: Client, worker_settings: WorkerSettings
) -> None:
    """A stream that ends at `awaiting_feedback` reads the state a moment later, when a task with no feedback
    window has completed meanwhile: the server refuses the `status` query for the closed run (no worker replays
    it), and the state is the result."""
    session_id = new_id()
    async with product_worker(client, worker_settings):
        body = {**QUICK_TASK, "session_id": session_id, "feedback_window_seconds": 0}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        expected = await client.get_workflow_handle_for(CodingTask.run, session_id).result()
    # the worker has stopped: a query handed to a worker would wait out its timeout, then fail
    state = await read_state(task_handle(client, session_id), False, timedelta(seconds=5))
    assert state == expected and state.task_status == TaskStatus.COMPLETED


async def test_health_with_a_worker(http: httpx.AsyncClient, worker: Worker, task_queue: str) -> None:
    for _ in range(50):  # the worker's first poll may take a moment to reach the server
        response = await http.get("/health")
        assert response.status_code == 200
        if response.json()["worker"]:
            break
        await asyncio.sleep(0.2)
    assert response.json() == {
        "status": "healthy",
        "temporal": True,
        "worker": True,
        "task_queue": task_queue,
        "reasons": [],
    }


async def test_status_of_unknown_id_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/status/no-such-task", headers=ALICE)
    assert response.status_code == 404
    assert response.json() == {"detail": "no task with session id 'no-such-task'"}


# ---------------------------------------------------------------- feedback and cancel


async def test_feedback_valid_invalid_and_after_the_end(http: httpx.AsyncClient, worker: Worker) -> None:
    session_id = new_id()
    body = {"task_description": "write an add function", "session_id": session_id, "feedback_window_seconds": 60}
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    await wait_for_status(http, session_id, {"awaiting_feedback"}, ALICE)

    for bad, field in [
        ({"rating": 6}, "body.rating"),
        ({"rating": "5"}, "body.rating"),  # strict: no string coercion
        ({"rating": 4, "comment": "x" * 4001}, "body.comment"),
        ({"rating": 4, "mood": "great"}, "body.mood"),
        ({}, "body.rating"),
    ]:
        response = await http.post(f"/feedback/{session_id}", json=bad, headers=ALICE)
        assert response.status_code == 422, bad
        errors = response.json()["errors"]
        assert errors[0]["field"] == field and errors[0]["reason"], errors

    ok = await http.post(f"/feedback/{session_id}", json={"rating": 5, "comment": "great"}, headers=ALICE)
    assert ok.status_code == 202
    assert ok.json() == {"session_id": session_id, "accepted": True}
    state = await wait_for_status(http, session_id, {"completed"}, ALICE)
    assert state["feedback"][0]["rating"] == 5
    assert state["errors"] == []  # the invalid payloads never reached the workflow

    late = await http.post(f"/feedback/{session_id}", json={"rating": 3}, headers=ALICE)
    assert late.status_code == 409
    assert (await http.post("/feedback/no-such-task", json={"rating": 3}, headers=ALICE)).status_code == 404

    metrics = (await http.get("/metrics", headers=ALICE)).text
    assert 'gateway_feedback_received_total{rating="5"} 1.0' in metrics


async def test_feedback_before_there_is_a_result_to_rate_is_refused(
    http: httpx.AsyncClient, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    fake_llm.hold_after = 1  # the planner answered, the code agent's call waits: the task is running
    session_id = new_id()
    body = {**QUICK_TASK, "session_id": session_id}
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    await wait_for_status(http, session_id, {"running"}, ALICE)
    early = await http.post(f"/feedback/{session_id}", json={"rating": 1, "comment": "redo"}, headers=ALICE)
    assert early.status_code == 409
    assert early.json()["detail"].startswith("the task is running: it takes feedback only while it awaits it")
    state = (await http.get(f"/status/{session_id}", headers=ALICE)).json()
    assert state["feedback"] == [] and state["errors"] == []  # nothing was sent to the task
    assert (await http.post(f"/cancel/{session_id}", headers=ALICE)).status_code == 202


async def test_cancel_is_idempotent_and_keeps_the_state_readable(
    http: httpx.AsyncClient, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    fake_llm.hold_after = 1  # keep the task running
    session_id = new_id()
    assert (
        await http.post("/invoke?stream=false", json={**QUICK_TASK, "session_id": session_id}, headers=ALICE)
    ).status_code == 202
    await wait_for_status(http, session_id, {"running"}, ALICE)

    first = await http.post(f"/cancel/{session_id}", headers=ALICE)
    assert first.status_code == 202
    assert first.json() == {"session_id": session_id, "outcome": "cancel_requested", "workflow_status": "RUNNING"}
    second = await http.post(f"/cancel/{session_id}", headers=ALICE)
    assert second.status_code == 202
    state = await wait_for_status(http, session_id, {"cancelled"}, ALICE)
    assert state["plan"]  # partial results kept
    third = await http.post(f"/cancel/{session_id}", headers=ALICE)
    assert third.json()["outcome"] == "already_closed"
    assert third.json()["workflow_status"] == "CANCELED"
    events = parse_sse((await http.get(f"/events/{session_id}", headers=ALICE)).text)
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "cancelled"
    assert (await http.post(f"/feedback/{session_id}", json={"rating": 2}, headers=ALICE)).status_code == 409


# ---------------------------------------------------------------- budget


async def test_a_budget_raise_through_the_gateway(http: httpx.AsyncClient, worker: Worker) -> None:
    session_id = new_id()
    body = {"task_description": "write an add function", "session_id": session_id, "budget_tokens": 4_400}
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    waiting = await wait_for_status(http, session_id, {"awaiting_budget"}, ALICE)
    spent, needed = waiting["budget"]["spent_tokens"], waiting["budget"]["needed_tokens"]
    assert waiting["budget"] == {"budget_usd": None, "budget_tokens": 4_400, "spent_usd": waiting["cost_usd"],
                                 "spent_tokens": spent, "needed_usd": None, "needed_tokens": needed}  # fmt: skip
    assert 0 < spent < 4_400 < needed

    malformed = [
        ({"budget_tokens": "lots"}, "body.budget_tokens"),
        ({"budget_usd": -1}, "body.budget_usd"),
        ({"budget_usd": 10**9}, "body.budget_usd"),
        ({"budget_tokens": 5, "extra": 1}, "body.extra"),
    ]
    for bad, field in malformed:
        refused = await http.post(f"/budget/{session_id}", json=bad, headers=ALICE)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text
    lower = await http.post(f"/budget/{session_id}", json={"budget_tokens": spent}, headers=ALICE)
    assert lower.status_code == 409  # schema-valid; refused for the task's state (its spend)
    assert lower.json()["detail"] == f"budget not raised: budget_tokens must be above what is spent ({spent} tokens)"
    assert (await http.get(f"/status/{session_id}", headers=ALICE)).json()["budget"] == waiting["budget"]

    too_small = await http.post(f"/budget/{session_id}", json={"budget_tokens": needed - 1}, headers=ALICE)
    assert too_small.status_code == 200 and too_small.json()["budget_tokens"] == needed - 1
    assert too_small.json()["warning"] == "the waiting model call still cannot go ahead: " + (
        f"budget_tokens {needed - 1} is below the {needed} tokens it needs"
    )
    raised = await http.post(f"/budget/{session_id}", json={"budget_tokens": 1_000_000}, headers=ALICE)
    assert raised.status_code == 200 and raised.json()["budget_tokens"] == 1_000_000
    assert raised.json()["warning"] is None
    await wait_for_status(http, session_id, {"awaiting_feedback"}, ALICE)
    assert (await http.post(f"/cancel/{session_id}", headers=ALICE)).status_code == 202
    await wait_for_status(http, session_id, {"cancelled"}, ALICE)
    ended = await http.post(f"/budget/{session_id}", json={"budget_tokens": 2_000_000}, headers=ALICE)
    assert ended.status_code == 409 and "has ended" in ended.json()["detail"]


async def test_the_operator_default_budget_applies_unless_the_body_names_one(
    client: Client, task_queue: str, worker: Worker
) -> None:
    async with asgi_client(make_app(task_queue, client, default_budget_usd=3.5)) as http:
        defaulted, opted_out = new_id(), new_id()
        for session_id, extra in ((defaulted, {}), (opted_out, {"budget_usd": None})):
            body = {**QUICK_TASK, "session_id": session_id, **extra}
            assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        assert (await wait_for_status(http, defaulted, {"completed"}, ALICE))["budget"]["budget_usd"] == 3.5
        assert (await wait_for_status(http, opted_out, {"completed"}, ALICE))["budget"]["budget_usd"] is None
