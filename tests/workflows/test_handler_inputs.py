"""What any client can send the workflow, the `temporal` CLI included: a start, signal, query or update with no
input or two, feedback before there is a result to rate, a misspelt signal name. None wedges the task; each is
refused or recorded with a message naming what is expected."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.support import ROOT, binary, start_task, wait_for_state
from tests.workflows.stubs import StubActivities
from workflows.coding_task import CodingTask
from workflows.models import (
    LLM_ACTIVITY,
    WORKFLOW_TYPE,
    AgentRole,
    BudgetRaise,
    EventType,
    FeedbackInput,
    LlmRequest,
    LlmResponse,
    TaskStatus,
)


@dataclass
class GatedStubs(StubActivities):
    """The stubs, with every model call waiting until `gate` is open (the test holds the task in a state)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)

    @activity.defn(name=LLM_ACTIVITY)
    async def chat(self, request: LlmRequest) -> LlmResponse:
        await self.gate.wait()
        return await StubActivities.chat(self, request)


@pytest.fixture
def stubs() -> GatedStubs:
    stubs = GatedStubs()
    stubs.gate.set()
    return stubs


def temporal(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `temporal` CLI against the test's dev server."""
    address = client.service_client.config.target_host
    return subprocess.run(
        [binary("temporal"), *args, "--address", address], capture_output=True, text=True, timeout=60, check=False
    )


async def cli(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(temporal, client, *args)


# ---------------------------------------------------------------- item: feedback with no payload or two


async def test_feedback_with_no_payload_or_two_is_recorded_and_the_task_goes_on(
    client: Client, stub_worker: Worker
) -> None:
    handle = await start_task(client, stub_worker.task_queue)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    bare = await cli(client, "workflow", "signal", "--workflow-id", handle.id, "--name", "feedback")
    assert bare.returncode == 0, bare.stderr
    await handle.signal("feedback", args=[{"rating": 5}, {"rating": 4}])
    await handle.signal("feedback")  # the Python client's way of sending none
    state = await wait_for_state(handle, lambda s: len(s.errors) == 3)
    assert state.errors == [
        "invalid feedback ignored: feedback takes one input, a JSON object with rating (required), comment; got 0",
        "invalid feedback ignored: feedback takes one input, a JSON object with rating (required), comment; got 2",
        "invalid feedback ignored: feedback takes one input, a JSON object with rating (required), comment; got 0",
    ]
    page = await handle.query(CodingTask.events)  # answers: no workflow task is failing
    assert [e.type for e in page.events].count(EventType.FEEDBACK_INVALID) == 3
    assert state.task_status == TaskStatus.AWAITING_FEEDBACK and state.feedback == []
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and [f.rating for f in final.feedback] == [5]


async def test_a_reset_as_the_docs_show_replays_the_bad_feedback_harmlessly(
    client: Client, stub_worker: Worker
) -> None:
    """docs/operations.md resets to the code agent's first activity: the bare signal sent before is re-applied to
    the new run, which records it as invalid again and goes on (no `--reapply-exclude Signal` is needed)."""
    handle = await start_task(client, stub_worker.task_queue)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    assert (await cli(client, "workflow", "signal", "--workflow-id", handle.id, "--name", "feedback")).returncode == 0
    await wait_for_state(handle, lambda s: len(s.errors) == 1)
    shown = await cli(client, "workflow", "show", "--workflow-id", handle.id, "-o", "json")
    point = await asyncio.to_thread(
        subprocess.run,
        ["python3", str(ROOT / "scripts" / "reset_point.py"), "code_generation"],
        input=shown.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    event_id = point.stdout.strip()
    reset = await cli(
        client,
        "workflow",
        "reset",
        "--workflow-id",
        handle.id,
        "--event-id",
        event_id,
        "--reason",
        "test",
        "-o",
        "json",
    )
    assert reset.returncode == 0, reset.stderr
    new_run = json.loads(reset.stdout)["runId"]
    latest = client.get_workflow_handle_for(CodingTask.run, handle.id)
    state = await wait_for_state(latest, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and len(s.errors) == 1)
    assert (await latest.describe()).run_id == new_run
    assert "got 0" in state.errors[0]
    await latest.signal(CodingTask.feedback, FeedbackInput(rating=5))
    assert (await latest.result()).task_status == TaskStatus.COMPLETED


# ---------------------------------------------------------------- item: start, query, update with no input or two


@pytest.mark.parametrize("given", [[], ['{"task_description": "a"}', '{"task_description": "b"}']], ids=["none", "two"])
async def test_a_start_with_no_input_or_two_fails_at_once(
    client: Client, stub_worker: Worker, stubs: StubActivities, given: list[str]
) -> None:
    workflow_id = f"bare-{uuid.uuid4().hex[:10]}"
    inputs = [arg for value in given for arg in ("--input", value)]
    start = ["workflow", "start", "--type", WORKFLOW_TYPE, "--task-queue", stub_worker.task_queue]
    started = await cli(client, *start, "--workflow-id", workflow_id, *inputs)
    assert started.returncode == 0, started.stderr
    result = await cli(client, "workflow", "result", "--workflow-id", workflow_id)
    expected = "CodingTask takes one input, a JSON object such as"
    assert result.returncode != 0 and expected in result.stdout + result.stderr, result.stdout + result.stderr
    assert f"got {len(given)}" in result.stdout + result.stderr
    with pytest.raises(WorkflowFailureError) as failure:
        await client.get_workflow_handle(workflow_id).result()
    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "InvalidInput"
    assert stubs.requests == []  # nothing ran


async def test_queries_and_updates_with_no_input_or_two_name_what_they_expect(
    client: Client, stub_worker: Worker
) -> None:
    handle = await start_task(client, stub_worker.task_queue, budget_usd=5.0)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)

    everything = await handle.query("events")  # no input: every event (after 0)
    assert everything["events"][0]["id"] == 1
    queries: list[tuple[str, list[dict[str, int]], str]] = [
        ("status", [{}], "status takes no input; got 1"),
        ("events", [{"after": 0}, {"after": 1}], "events takes one input, a JSON object with after; got 2"),
        ("events", [{"after": -1}], "events: after: Input should be greater than or equal to 0"),
    ]
    for name, args, message in queries:
        with pytest.raises(WorkflowQueryFailedError) as query_failed:
            await handle.query(name, args=args)
        assert message in str(query_failed.value), str(query_failed.value)
    shape = "raise_budget takes one input, a JSON object with budget_usd, budget_tokens"
    for raises in ([], [{"budget_usd": 6.0}, {"budget_usd": 7.0}]):
        with pytest.raises(WorkflowUpdateFailedError) as update_failed:
            await handle.execute_update("raise_budget", args=raises)
        cause = update_failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.message == f"{shape}; got {len(raises)}", cause

    bare = await cli(client, "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "raise_budget")
    assert bare.returncode != 0 and f"{shape}; got 0" in bare.stdout + bare.stderr, bare.stdout + bare.stderr
    queried = await cli(client, "workflow", "query", "--workflow-id", handle.id, "--name", "events", "-o", "json")
    assert queried.returncode == 0 and json.loads(queried.stdout)["queryResult"][0]["events"], queried.stderr
    budget = await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_usd=6.0))
    assert budget.budget_usd == 6.0  # nothing changed before: the one good raise goes through
    assert (await handle.query(CodingTask.status)).budget.budget_usd == 6.0


# ---------------------------------------------------------------- item: early feedback, a misspelt signal name


async def test_feedback_before_there_is_code_is_ignored_not_applied_later(
    client: Client, stub_worker: Worker, stubs: GatedStubs
) -> None:
    stubs.gate.clear()  # the planner's call waits: the task is planning
    handle = await start_task(client, stub_worker.task_queue, max_revisions=2)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.PLANNING)
    early = await cli(
        client, "workflow", "signal", "--workflow-id", handle.id, "--name", "feedback",
        "--input", '{"rating": 1, "comment": "rewrite it"}',
    )  # fmt: skip
    assert early.returncode == 0, early.stderr
    ignored = await wait_for_state(handle, lambda s: any("ignored" in line for line in s.logs))
    assert "feedback (rating 1) ignored: it arrived while the task was planning" in ignored.logs[-1]
    stubs.gate.set()
    state = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    await asyncio.sleep(0.5)  # were it queued, the revision would start now
    state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.AWAITING_FEEDBACK and state.revisions == 0 and state.feedback == []
    assert stubs.roles().count(AgentRole.CODE_GENERATION) == 1

    # during a revision: the rating the user saw is being replaced, so one sent now is ignored too
    stubs.gate.clear()
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="validate the input"))
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.RUNNING and s.revisions == 1)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=2, comment="and a docstring"))
    during = await wait_for_state(handle, lambda s: "feedback (rating 2) ignored" in s.logs[-1])
    assert "it arrived while the task was running" in during.logs[-1]
    stubs.gate.set()
    final = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1)
    await asyncio.sleep(0.5)
    final = await handle.query(CodingTask.status)
    assert final.revisions == 1 and [f.rating for f in final.feedback] == [1]
    assert stubs.roles().count(AgentRole.CODE_GENERATION) == 2


async def test_feedback_sent_with_the_one_that_starts_a_revision_is_ignored(
    client: Client, task_queue: str, stubs: GatedStubs
) -> None:
    """Two ratings the task receives together (here: sent while no worker ran, so one workflow task gets both)
    rate the same code: the first starts the revision, the second is ignored, not applied to the revised code."""
    activities: list[Callable[..., Any]] = [stubs.chat, stubs.lint, stubs.search_knowledge]
    async with Worker(client, task_queue=task_queue, workflows=[CodingTask], activities=activities):
        handle = await start_task(client, task_queue, max_revisions=2)
        await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="validate the input"))
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=2, comment="and a docstring"))
    async with Worker(client, task_queue=task_queue, workflows=[CodingTask], activities=activities):
        final = await wait_for_state(
            handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1
        )
        await asyncio.sleep(0.5)  # were it queued, the second revision would start now
        final = await handle.query(CodingTask.status)
    assert final.revisions == 1 and [f.rating for f in final.feedback] == [1]  # the ignored one is not kept
    assert any("feedback (rating 2) ignored: it rated the code revision 1 replaces" in line for line in final.logs)
    assert stubs.roles().count(AgentRole.CODE_GENERATION) == 2


async def test_a_misspelt_signal_is_recorded_naming_the_known_one(client: Client, stub_worker: Worker) -> None:
    handle = await start_task(client, stub_worker.task_queue)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    sent = await cli(
        client, "workflow", "signal", "--workflow-id", handle.id, "--name", "Feedback", "--input", '{"rating": 5}'
    )
    assert sent.returncode == 0, sent.stderr
    state = await wait_for_state(handle, lambda s: bool(s.warnings))
    assert state.warnings == ["unknown signal 'Feedback' ignored; this task takes the signal 'feedback'"]
    page = await handle.query(CodingTask.events)
    assert page.events[-1].type == EventType.WARNING and "'Feedback'" in page.events[-1].message
    assert state.task_status == TaskStatus.AWAITING_FEEDBACK and state.feedback == []
