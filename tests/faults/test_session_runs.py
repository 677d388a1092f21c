"""A session followed through the gateway across continue-as-new and across `temporal workflow reset`:
`/status`, `/events`, `/feedback` and `/cancel` act on the current run of the session's workflow."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from orchestrator.temporal import data_converter
from tests.faults.stack import ProcessStack, end_state, sse
from tests.support import binary


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {
        # continue-as-new is suggested after 40 history events (the default is thousands)
        "temporal_args": ("--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"),
        "worker_env": {"LLM_MODE": "offline"},
    }


def event_ids(stack: ProcessStack, session: str, after: int = 0) -> tuple[list[int], dict[str, object]]:
    events = list(sse(f"{stack.url}/events/{session}?deltas=false", {"Last-Event-ID": str(after)}))
    return [e.id for e in events if e.id is not None], end_state(events)


@pytest.mark.timeout(300)
async def test_the_gateway_follows_a_session_across_continue_as_new_and_reset(stack: ProcessStack) -> None:
    client = await Client.connect(stack.address, data_converter=data_converter())
    session = stack.invoke(max_revisions=3, feedback_window_seconds=600)
    stack.wait_for_status(session, {"awaiting_feedback"})
    first_run = (await client.get_workflow_handle(session).describe()).run_id
    before, _ = event_ids(stack, session)

    # continue-as-new: the revision asked for by /feedback runs in a new run
    assert stack.post(f"/feedback/{session}", {"rating": 1, "comment": "add validation"})["accepted"]
    state = stack.wait_for_status(session, {"awaiting_feedback"}, revisions=1)
    continued = (await client.get_workflow_handle(session).describe()).run_id
    assert continued != first_run and any("continuing as a new run" in line for line in state["logs"])
    first = await client.get_workflow_handle(session, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    ids, end = event_ids(stack, session)
    assert ids[: len(before)] == before and ids == sorted(set(ids)), ids  # one log, in order, none twice
    assert end["revisions"] == 1 and end["task_status"] == "awaiting_feedback"
    later, _ = event_ids(stack, session, after=before[-1])
    assert later == ids[len(before) :]  # Last-Event-ID across the runs

    # reset to the current run's first workflow task: the run is replaced by a new one, replaying to there
    reset = await asyncio.to_thread(
        subprocess.run,
        [binary("temporal"), "workflow", "reset", "--workflow-id", session, "--type", "FirstWorkflowTask",
         "--reason", "fault test", "--address", stack.address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    state = stack.wait_for_status(session, {"awaiting_feedback"}, revisions=1)
    current = (await client.get_workflow_handle(session).describe()).run_id
    assert current not in (first_run, continued)
    old = await client.get_workflow_handle(session, run_id=continued).describe()
    assert old.status == WorkflowExecutionStatus.TERMINATED  # the reset ended the run it replaced
    ids, end = event_ids(stack, session)
    assert ids == sorted(set(ids)) and end["revisions"] == 1, ids

    assert stack.post(f"/feedback/{session}", {"rating": 2, "comment": "and a docstring"})["accepted"]
    state = stack.wait_for_status(session, {"awaiting_feedback"}, revisions=2)
    assert [f["rating"] for f in state["feedback"]] == [1, 2]
    now = (await client.get_workflow_handle(session).describe()).run_id  # (maybe continued as new again)

    cancelled = stack.post(f"/cancel/{session}")
    assert cancelled["outcome"] == "cancel_requested", cancelled
    assert stack.wait_for_status(session, {"cancelled"})["revisions"] == 2
    latest = await client.get_workflow_handle(session).describe()
    assert latest.run_id == now and latest.status == WorkflowExecutionStatus.CANCELED
