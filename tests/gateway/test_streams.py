"""The SSE stream pushed from the workflow stream: one subscription per task, `?deltas=`, bounds and clear 422s."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamItem
from temporalio.worker import Worker

from api.gateway.streams import POLL_QUERY, Catchup, Closed, StreamHub
from testbed.llm_server import FakeLlmServer
from tests.gateway.support import (
    ALICE,
    QUICK_TASK,
    Reader,
    asgi_client,
    counting_queries,
    live_server,
    make_app,
    numbered,
    parse_sse,
)
from tests.support import wait_until
from workflows.models import DELTA_TOPIC, EVENTS_QUERY, AgentRole, EventType, TaskEvent, TaskStatus


def new_id() -> str:
    return f"st-{uuid.uuid4().hex[:12]}"


def delta(text: str) -> TaskEvent:
    """An `llm_delta` as an activity publishes it on the task's stream (its id is the stream's to give)."""
    data = {"role": AgentRole.CODE_GENERATION.value, "step": 1, "attempt": 1, "text": text}
    return TaskEvent(id=0, at="2026-01-01T00:00:00+00:00", type=EventType.LLM_DELTA, message="", data=data)


async def publish_deltas(client: Client, session_id: str, *texts: str) -> None:
    stream = WorkflowStreamClient.create(client, session_id)
    topic = stream.topic(DELTA_TOPIC, type=TaskEvent)
    async with stream:
        for text in texts:
            topic.publish(delta(text))


async def test_watchers_share_one_subscription_deltas_filter_and_a_disconnect_frees_its_slot(
    client: Client, task_queue: str, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    fake_llm.hold_after = 1  # the planner answers, then the code agent's first model call waits
    session_id = new_id()
    app = make_app(task_queue, client)
    hub: StreamHub = app.state.streams
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        async with contextlib.AsyncExitStack() as stack:
            streams = {}
            for name, query in (("all", ""), ("steps", "?deltas=false"), ("leaver", "")):
                request = http.stream("GET", f"/events/{session_id}{query}", headers=ALICE)
                streams[name] = await stack.enter_async_context(request)
                assert streams[name].status_code == 200
            readers = {name: Reader(response) for name, response in streams.items()}
            heads = {name: await r.until(lambda e: e.event == "plan") for name, r in readers.items()}
            await wait_until(lambda: hub.watchers(session_id) == 3, within=5)
            assert hub.subscriptions == 1  # three clients, one long-poll on the workflow

            readers.pop("leaver")
            await streams.pop("leaver").aclose()  # a client that goes away frees its slot at once
            await wait_until(lambda: hub.watchers(session_id) == 2, within=2)

            fake_llm.hold_after = None
            fake_llm.release()
            rests = {name: await r.until() for name, r in readers.items()}
        await wait_until(lambda: hub.subscriptions == 0, within=2)

    every = heads["all"] + rests["all"]
    assert numbered(every) == list(range(1, len(numbered(every)) + 1))  # deltas have ids like every event
    deltas = [e.json() for e in every if e.event == "llm_delta"]  # what llm_chat published as the models wrote
    plan = next(e.json() for e in every if e.event == "plan")["data"]["plan"]
    # The planner's call may have ended before the first watcher came (then it published nothing: its text is the
    # plan event's); the agents' calls come after, each streamed whole.
    assert "".join(d["data"]["text"] for d in deltas if d["data"]["role"] == "planner").strip() in ("", plan)
    assert {d["data"]["role"] for d in deltas} >= {"code_generation", "documentation"}
    assert all(d["data"]["attempt"] == 1 for d in deltas)
    assert all(d["id"] == e.id for d, e in zip(deltas, [e for e in every if e.event == "llm_delta"], strict=True))

    steps = heads["steps"] + rests["steps"]
    assert not [e for e in steps if e.event in ("llm_delta", "gap")]
    delta_ids = {e.id for e in every if e.event == "llm_delta"}
    assert numbered(steps) == [i for i in numbered(every) if i not in delta_ids]  # the same events, deltas left out
    assert every[-1].event == steps[-1].event == "end"
    assert steps[-1].json()["task_status"] == "completed"


async def test_watchers_that_come_and_go_on_a_quiet_task_leave_its_updates_free(
    client: Client, task_queue: str, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    """A leaving watcher's long-poll stays in flight until the task publishes; a task that publishes nothing for a
    while must not collect one per watcher, or past ten the server refuses its every update (`raise_budget`)."""
    fake_llm.hold_after = 1  # the planner answers, then the code agent's first model call waits: nothing is published
    session_id = new_id()
    app = make_app(task_queue, client)
    hub: StreamHub = app.state.streams
    try:
        async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = {**QUICK_TASK, "session_id": session_id}
            assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
            for _ in range(12):
                async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
                    await Reader(response).until(lambda e: e.event == "plan")
                    await wait_until(lambda: hub.subscriptions == 1, within=5)
                await wait_until(lambda: hub.subscriptions == 0, within=5)
            raised = await http.post(f"/budget/{session_id}", json={"budget_usd": 50}, headers=ALICE)
            assert raised.status_code == 200, raised.text
            assert raised.json()["budget_usd"] == 50
    finally:
        fake_llm.release()


async def test_a_slow_client_is_dropped_with_an_error_past_its_bound(
    client: Client, task_queue: str, worker: Worker, fake_llm: FakeLlmServer
) -> None:
    """The bound is the hub's: a client that stops reading stops taking its queue's items (an HTTP client's socket
    buffers would hide that for hundreds of kilobytes), so the test drives the hub's watcher directly."""
    fake_llm.hold_after = 1
    session_id = new_id()
    app = make_app(task_queue, client, gateway_stream_queue_size=3)
    hub: StreamHub = app.state.streams
    async with asgi_client(app) as http:
        started = await http.post("/invoke?stream=false", json={**QUICK_TASK, "session_id": session_id}, headers=ALICE)
        assert started.status_code == 202
        handle = client.get_workflow_handle(session_id)
        await wait_until_offset(client, session_id, 3)
        offset = await WorkflowStreamClient(handle, client=client).get_offset()
        running = Catchup(items=[], next_offset=offset, task_status=TaskStatus.RUNNING)
        feed, watcher = hub.join(client, session_id, running)
        try:
            await publish_deltas(client, session_id, *(f"chunk {i}" for i in range(6)))
            await wait_until(lambda: watcher.dropped, within=10)
            assert hub.watchers(session_id) == 0  # dropped at once: its slot is free
            got = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
            assert [item.data.data["text"] for item in got[:-1] if isinstance(item, WorkflowStreamItem)] == [
                "chunk 0",
                "chunk 1",
                "chunk 2",
            ]
            assert isinstance(got[-1], Closed) and "too slow" in (got[-1].error or "")
            assert "Last-Event-ID" in (got[-1].error or "")
        finally:
            hub.leave(feed, watcher)
            fake_llm.release()
    await wait_until(lambda: hub.subscriptions == 0, within=2)


async def wait_until_offset(client: Client, session_id: str, offset: int) -> None:
    stream = WorkflowStreamClient.create(client, session_id)
    for _ in range(200):
        with contextlib.suppress(Exception):
            if await stream.get_offset() >= offset:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the task published nothing")


async def test_bad_deltas_are_422s_and_a_position_past_the_last_event_a_409_naming_it(
    client: Client, task_queue: str, worker: Worker
) -> None:
    session_id = new_id()
    async with asgi_client(make_app(task_queue, client)) as http:
        started = await http.post("/invoke?stream=false", json={**QUICK_TASK, "session_id": session_id}, headers=ALICE)
        assert started.status_code == 202
        for query in ("deltas=yes", "deltas=1", "deltas="):
            response = await http.get(f"/events/{session_id}?{query}", headers=ALICE)
            assert response.status_code == 422, query
            assert response.json()["errors"][0]["field"] == "query.deltas", response.json()
        assert (await http.post("/invoke?deltas=maybe", json=QUICK_TASK, headers=ALICE)).status_code == 422
        done = await http.get(f"/events/{session_id}?deltas=false", headers=ALICE)
        last = max(e.id for e in parse_sse(done.text) if e.id is not None)
        assert (await http.get(f"/events/{session_id}?after={last}", headers=ALICE)).status_code == 200
        beyond_by = {
            "after": (ALICE, f"?after={last + 1}"),
            "Last-Event-ID": ({**ALICE, "Last-Event-ID": str(last + 50)}, ""),
        }
        for named, (headers, query) in beyond_by.items():  # well-formed, but past this task's stream: a 409
            beyond = await http.get(f"/events/{session_id}{query}", headers=headers)
            assert beyond.status_code == 409
            error: dict[str, Any] = beyond.json()
            assert error["detail"].startswith(f"{named} {last + (1 if named == 'after' else 50)} is beyond the stream")
            assert f"the task's last event has id {last}" in error["detail"], error


async def test_a_new_watcher_catches_up_with_one_query_and_a_completed_task_ends_with_none(
    client: Client, task_queue: str, worker: Worker
) -> None:
    """From the start, the stream's items hold the task's status events; a client resuming reads the status first.
    The `end` of a completed task is its result (no worker replays the closed run for a query)."""
    counted, queries = counting_queries(client)
    session_id = new_id()
    async with asgi_client(make_app(task_queue, counted)) as http:
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        await client.get_workflow_handle(session_id).result()
        queries.sent.clear()

        fresh = parse_sse((await http.get(f"/events/{session_id}", headers=ALICE)).text)
        assert fresh[-1].event == "end" and fresh[-1].json()["task_status"] == "completed"
        assert queries.sent == {POLL_QUERY: 1}, queries.sent
        queries.sent.clear()

        last = numbered(fresh)[-1]
        resumed = parse_sse((await http.get(f"/events/{session_id}?after={last}", headers=ALICE)).text)
        assert [e.event for e in resumed] == ["end"] and resumed[-1].json() == fresh[-1].json()
        assert queries.sent == {EVENTS_QUERY: 1, POLL_QUERY: 1}, queries.sent
