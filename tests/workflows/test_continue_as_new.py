"""A long revision loop continues as new when Temporal suggests it, and the task state carries over."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from testbed.llm_server import FakeLlmServer
from tests.gateway.support import ALICE, Reader, live_server, make_app, numbered, parse_sse, wait_for_status
from tests.support import product_worker, start_task, wait_for_state, wait_until
from workflows.coding_task import CodingTask
from workflows.models import STREAM_TOPICS, EventType, FeedbackInput, TaskEvent, TaskStatus


async def test_revision_loop_continues_as_new_with_its_state(
    short_history_env: WorkflowEnvironment, task_queue: str, memory_api_url: str
) -> None:
    client = short_history_env.client
    settings = WorkerSettings(
        _env_file=None, llm_mode="offline", temporal_task_queue=task_queue, memory_api_url=memory_api_url
    )
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, max_revisions=2)
        watched = asyncio.create_task(watch(client, handle.id))  # a watcher from the first event to the end
        first_run = (await handle.describe()).run_id
        await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
        await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="add validation"))

        latest = client.get_workflow_handle_for(CodingTask.run, handle.id)  # follows the newest run
        state = await wait_for_state(
            latest, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1, within=90
        )
        assert (await latest.describe()).run_id != first_run  # a new run carries the task on
        assert state.plan and state.results.code_generation and state.results.code_generation.revision == 1
        assert state.results.documentation and state.results.documentation.code_revision == 1
        assert [f.rating for f in state.feedback] == [1]
        assert any("continuing as a new run" in line for line in state.logs)

        await latest.signal(CodingTask.feedback, FeedbackInput(rating=5))
        final = await latest.result()
        events = await asyncio.wait_for(watched, 30)
        # the stream went on across continue-as-new: every offset once, in order, and ids = offset + 1
        assert [offset for offset, _ in events] == list(range(len(events)))
        # ids = offset + 1 (the workflow's own events; a delta's id is the subscriber's to give, as the gateway does)
        assert all(event.id == offset + 1 for offset, event in events if event.type != EventType.LLM_DELTA)
        kinds = [event.type for _, event in events]
        assert kinds.index(EventType.CONTINUE_AS_NEW) + 1 == kinds.index(EventType.RESUMED)
        # a client resuming across it, after the continue-as-new event, misses nothing and sees nothing twice
        resumed_at = kinds.index(EventType.CONTINUE_AS_NEW) + 1
        assert await watch(client, handle.id, resumed_at) == events[resumed_at:]
    assert final.task_status == TaskStatus.COMPLETED and [f.rating for f in final.feedback] == [1, 5]
    assert final.created_at == state.created_at and final.session_id == handle.id


async def watch(client: Client, workflow_id: str, after: int = 0) -> list[tuple[int, TaskEvent]]:
    """The task's stream (its events and deltas) from offset `after` until the workflow ends (the subscription
    follows new runs)."""
    stream = WorkflowStreamClient.create(client, workflow_id)
    return [(item.offset, item.data) async for item in stream.subscribe(STREAM_TOPICS, after, result_type=TaskEvent)]


async def test_an_open_sse_stream_follows_the_new_run_and_a_resume_across_it_is_exact(
    short_history_env: WorkflowEnvironment, worker_settings: WorkerSettings, fake_llm: FakeLlmServer
) -> None:
    """A client watching through the gateway when the run continues as new keeps receiving (ids go on, no gap,
    nothing twice); one reconnecting with Last-Event-ID, or ?after=, from before the boundary gets the rest exactly."""
    client = short_history_env.client
    session_id = f"can-{uuid.uuid4().hex[:12]}"
    app = make_app(worker_settings.temporal_task_queue, client)
    async with (
        product_worker(client, worker_settings),
        live_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        body = {"task_description": "write an add function", "max_revisions": 2, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        await wait_for_status(http, session_id, {"awaiting_feedback"}, ALICE)
        first_run = (await client.get_workflow_handle(session_id).describe()).run_id

        fake_llm.hold_after = fake_llm.total_served  # the revision's first model call waits: the stream is opened
        feedback = {"rating": 1, "comment": "add validation"}  # before the run can continue as new
        assert (await http.post(f"/feedback/{session_id}", json=feedback, headers=ALICE)).status_code == 202
        await wait_until(lambda: fake_llm.held >= 1, within=30)
        async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
            assert response.status_code == 200
            reader = Reader(response)
            before = await reader.until(lambda e: e.event == "revision")  # caught up to the revision: live now
            fake_llm.hold_after = None
            fake_llm.release()  # the held call fails (503) and its retry goes on
            live = await reader.until()
        assert (await client.get_workflow_handle(session_id).describe()).run_id != first_run

        seen = before + live
        kinds = [e.event for e in seen]
        assert "continue_as_new" in [e.event for e in live]  # a boundary came while the stream was open
        boundaries = [i for i, kind in enumerate(kinds) if kind == "continue_as_new"]
        assert [kinds[i + 1] for i in boundaries] == ["resumed"] * len(boundaries)
        assert "gap" not in kinds and "error" not in kinds and kinds[-1] == "end"
        assert seen[-1].json()["task_status"] == "awaiting_feedback" and seen[-1].json()["revisions"] == 1
        ids = numbered(seen)
        assert ids == list(range(1, len(ids) + 1))  # from the first run's first event to the new run's last
        assert any(e.event == "llm_delta" for e in live)  # the revision's text, streamed as it was written

        sent = [(e.id, e.event, e.data) for e in seen if e.id is not None]
        boundary = max(e.id or 0 for e in live if e.event == "continue_as_new")  # the one the open stream crossed
        for position in (boundary - 5, boundary, boundary + 1):  # before it, on it, just after it
            for query, headers in (("", {**ALICE, "Last-Event-ID": str(position)}), (f"?after={position}", ALICE)):
                again = parse_sse((await http.get(f"/events/{session_id}{query}", headers=headers)).text)
                resent = [(e.id, e.event, e.data) for e in again if e.id is not None]
                assert resent == [event for event in sent if event[0] > position], (position, query)
                assert not [e for e in again if e.event in ("gap", "error")]

        assert (await http.post(f"/feedback/{session_id}", json={"rating": 5}, headers=ALICE)).status_code == 202
        await wait_for_status(http, session_id, {"completed"}, ALICE)
