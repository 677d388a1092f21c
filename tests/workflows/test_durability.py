"""Crash a worker process mid-task: a new worker finishes the task and no finished model call is paid twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from temporalio.client import Client

from orchestrator.payload_store import STORE_ENV, THRESHOLD_ENV, store_driver
from orchestrator.temporal import data_converter
from testbed.llm_server import FakeLlmServer
from tests.support import start_task, wait_for_state, wait_until
from workflows.coding_task import CodingTask
from workflows.models import LLM_ACTIVITY, BudgetRaise, TaskStatus


@pytest.mark.parametrize("store_kind", [None, "sqlite", "s3"], ids=["inline", "payload-store", "payload-store-s3"])
async def test_killed_worker_resumes_without_repaying_finished_model_calls(
    client: Client,
    fake_llm: FakeLlmServer,
    task_queue: str,
    spawn_worker,
    worker_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    store_kind: str | None,
) -> None:
    """Also with the payload store on (a low threshold, so every model call's input and reply are stored), in a
    SQLite file or in a bucket of a real S3-compatible server: the new worker reads what the killed one wrote, and
    still no finished call is paid twice."""
    stored = store_kind is not None
    if stored:
        location = (
            request.getfixturevalue("s3_store_env")
            if store_kind == "s3"
            else {STORE_ENV: str(tmp_path / "payloads.sqlite")}
        )
        store = {**location, THRESHOLD_ENV: "1024"}
        worker_env.update(store)
        client = await Client.connect(
            client.service_client.config.target_host, namespace="default", data_converter=data_converter(store)
        )
    fake_llm.hold_after = 2  # planner and the first code turn are served; the second code turn hangs
    first = spawn_worker()
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    await wait_until(lambda: fake_llm.held >= 1, within=60)
    served_before_crash = fake_llm.total_served
    assert served_before_crash == 2

    first.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown, the in-flight call is lost
    first.wait(timeout=10)
    fake_llm.hold_after = None
    fake_llm.release()

    spawn_worker()
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    assert final.results.code_generation is not None and final.results.documentation is not None

    # Every completed call was served exactly once; the lost one was retried, the others came from history.
    assert fake_llm.total_served == 5  # planner + 2 code turns + 2 doc turns
    assert all(r["body"]["stream"] for r in fake_llm.requests)  # every reply was a streamed one
    assert all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    history = (await handle.fetch_history()).to_json_dict()
    scheduled = {
        e["eventId"]: e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in history["events"]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    }
    completed_llm = [
        e
        for e in history["events"]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"
        and scheduled[e["activityTaskCompletedEventAttributes"]["scheduledEventId"]] == LLM_ACTIVITY
    ]
    assert len(completed_llm) == fake_llm.total_served
    retried = [
        e
        for e in history["events"]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"
        and e["activityTaskStartedEventAttributes"]["attempt"] > 1
    ]
    assert len(retried) == 1, json.dumps(retried)[:500]  # only the call that was in flight at the crash
    if stored:
        assert "externalPayloads" in json.dumps(history)
        driver = store_driver(None, store)
        assert driver is not None and set(await driver.tasks()) == {handle.id}  # the workers wrote there


async def test_a_worker_killed_mid_stream_retries_that_call_alone_and_pays_no_finished_one_twice(
    client: Client, fake_llm: FakeLlmServer, task_queue: str, spawn_worker
) -> None:
    """The crash lands while a reply is half streamed (its first text already published as deltas)."""
    fake_llm.hold_after, fake_llm.hold_mid_stream = 4, 6  # the documentation agent's answer stops after 6 events
    first = spawn_worker()
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    await wait_until(lambda: fake_llm.held >= 1, within=60)
    assert fake_llm.total_served == 4

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    fake_llm.hold_after = None
    fake_llm.release()
    spawn_worker()
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.results.documentation is not None
    assert "# add" in final.results.documentation.documentation
    assert fake_llm.total_served == 5 and all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    assert [r["status"] for r in fake_llm.requests].count("cut") == 1  # the half-written reply was never counted


async def test_a_worker_killed_while_the_task_awaits_budget_changes_nothing(
    client: Client, fake_llm: FakeLlmServer, task_queue: str, spawn_worker
) -> None:
    first = spawn_worker()
    handle = await start_task(client, task_queue, budget_tokens=4_400)  # the planner fits, the code agent does not
    waiting = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_BUDGET, within=60)
    assert fake_llm.total_served == 1 and waiting.budget.spent_tokens > 0

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    spawn_worker()
    raised = await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=1_000_000))
    assert raised.budget_tokens == 1_000_000 and raised.spent_tokens == waiting.budget.spent_tokens
    state = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK, within=60)
    assert state.results.documentation is not None and state.errors == []
    assert fake_llm.total_served == 5 and all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    await handle.terminate("test over")
