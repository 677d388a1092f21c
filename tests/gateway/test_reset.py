"""`temporal workflow reset` as docs/operations.md shows it, seen through the gateway: the new run's stream holds
none of the replaced run's model text, gives no id twice, and a reader resuming with the replaced run's last id
gets the new run's code and docs; `GET /tasks` lists the session once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.config import WorkerSettings
from testbed.llm_server import FakeLlmServer
from tests.gateway.support import ALICE, asgi_client, make_app, parse_sse, wait_for_status
from tests.support import ROOT, binary, product_worker


@pytest.fixture
async def http(client: Client, task_queue: str) -> Any:
    async with asgi_client(make_app(task_queue, client)) as http:
        yield http


def temporal(client: Client, *args: str) -> str:
    address = client.service_client.config.target_host
    done = subprocess.run([binary("temporal"), *args, "--address", address], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reset_as_the_docs_show(client: Client, session: str) -> str:
    """docs/operations.md: the event before the code agent's first activity, then `temporal workflow reset`."""
    shown = temporal(client, "workflow", "show", "--workflow-id", session, "-o", "json")
    point = subprocess.run(
        ["python3", str(ROOT / "scripts" / "reset_point.py"), "code_generation"],
        input=shown, capture_output=True, text=True, check=True,
    )  # fmt: skip
    reset = ["workflow", "reset", "--workflow-id", session, "--event-id", point.stdout.strip(), "--reason", "test"]
    run_id: str = json.loads(temporal(client, *reset, "-o", "json"))["runId"]
    return run_id


async def test_a_reset_run_shows_no_old_text_reuses_no_id_and_resumes_from_an_old_id(
    http: httpx.AsyncClient, client: Client, worker_settings: WorkerSettings, fake_llm: FakeLlmServer
) -> None:
    fake_llm.piece_chars, fake_llm.chunk_delay = 6, 0.03  # model text in pieces: several llm_delta events a call
    async with product_worker(client, worker_settings):
        session, streamed = await reset_and_read(http, client, fake_llm)
    # a worker restarted with no cache replays the reset run from its history: the same stream, id for id
    async with product_worker(client, worker_settings, max_cached_workflows=0):
        again = parse_sse((await http.get(f"/events/{session}", headers=ALICE)).text)
    assert [(e.id, e.data) for e in again if e.id is not None] == streamed


async def read_through_the_stream(client: Client, session: str) -> None:
    """Until the task's stream has taken a reader's poll (an update it accepted)."""
    for _ in range(600):
        async for event in client.get_workflow_handle(session).fetch_history_events():
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                return
        await asyncio.sleep(0.05)
    pytest.fail(f"nobody polled the stream of {session}")


async def reset_and_read(
    http: httpx.AsyncClient, client: Client, fake_llm: FakeLlmServer
) -> tuple[str, list[tuple[int | None, str]]]:
    """Run a task to awaiting_feedback, reset it as the docs show, check its stream; its session and events."""
    session = f"reset-{uuid.uuid4().hex[:10]}"
    body = {"task_description": "write an add function", "session_id": session, "feedback_window_seconds": 600}
    fake_llm.hold_after = 0  # the first model call waits until the task is watched (then fails once, and is retried)
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    watcher = asyncio.create_task(http.get(f"/events/{session}", headers=ALICE))  # watched: its model text streams
    await read_through_the_stream(client, session)
    fake_llm.release()
    fake_llm.hold_after = None
    await wait_for_status(http, session, {"awaiting_feedback"}, ALICE)
    await watcher
    old = parse_sse((await http.get(f"/events/{session}", headers=ALICE)).text)
    old_by_id: dict[int | None, str] = {e.id: e.data for e in old if e.id is not None}
    old_text = {e.json()["at"] for e in old if e.event == "llm_delta"}
    assert old_text, "the old run streamed model text"

    reset_at = datetime.now().astimezone()
    new_run = await asyncio.to_thread(reset_as_the_docs_show, client, session)
    watcher = asyncio.create_task(http.get(f"/events/{session}", headers=ALICE))  # the new run is watched too
    for _ in range(600):
        state = await wait_for_status(http, session, {"awaiting_feedback"}, ALICE)
        if (await client.get_workflow_handle(session).describe()).run_id == new_run and any(
            "the task was reset" in line for line in state["logs"]
        ):
            break
        await asyncio.sleep(0.1)
    await watcher
    new = parse_sse((await http.get(f"/events/{session}", headers=ALICE)).text)
    numbered = [e for e in new if e.id is not None]
    assert all(old_by_id.get(e.id, e.data) == e.data for e in numbered)  # no id given twice, to other content
    new_text = [e.json() for e in numbered if e.event == "llm_delta"]
    assert new_text and not {d["at"] for d in new_text} & old_text  # none of the old run's live output
    assert all(datetime.fromisoformat(d["at"]) > reset_at for d in new_text)

    # a reader that had read the old run to its end resumes with its last id: it gets the new run's code and docs
    last_old = max(e.id for e in old if e.id is not None)
    resumed = parse_sse((await http.get(f"/events/{session}", headers={**ALICE, "Last-Event-ID": str(last_old)})).text)
    kinds = [e.event for e in resumed if e.id is not None]
    assert {"code_ready", "docs_ready"} <= set(kinds), kinds
    assert resumed[-1].event == "end" and resumed[-1].json()["task_status"] == "awaiting_feedback"

    # the task list shows the session once: its current run
    for _ in range(100):  # visibility is eventually consistent: wait until it knows the new run
        listed = [t for t in (await http.get("/tasks", headers=ALICE)).json()["tasks"] if t["session_id"] == session]
        if any(t["run_id"] == new_run for t in listed):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # and the old run's end
    listed = [t for t in (await http.get("/tasks", headers=ALICE)).json()["tasks"] if t["session_id"] == session]
    assert [t["run_id"] for t in listed] == [new_run], listed
    return session, [(e.id, e.data) for e in numbered]
