"""The test gate against a real model: a task with the user's tests, through llama-server serving SmolLM2-135M.

A 135M model seldom writes code that passes, so what is asserted is the product's part: the user's tests ran in
the sandbox on what the model delivered (the `run_tests` activity's input holds them and the delivered code), the
report with its counts is in the result, the gate ended `passed` or `failed` (never `unavailable`: `make install`
sets the sandbox up) with a warning when failed, and the fix rounds stayed within `max_fix_rounds`.
The planner and the documentation agent are the built-in offline model (the other interop tests cover them on
SmolLM2): at temperature 0 SmolLM2 can repeat itself past 1,000 tokens, which on a busy machine outlives a model
call's 3-minute timeout, and every extra call is another chance of that. `make test-interop` runs it; it prints
what the model wrote and what the tests said.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError

from testbed.llama_server import LlamaServer
from tests.interop.support import SpawnWorker, worker_environment
from tests.support import start_task
from workflows.coding_task import CodingTask
from workflows.models import (
    RUN_TESTS_ACTIVITY,
    EventsQueryInput,
    EventType,
    RunTestsRequest,
    TaskStatus,
    TestGate,
)

pytestmark = pytest.mark.interop

TASK_TIMEOUT = 900  # seconds; CPU inference on a shared 2-core machine
TESTS = """from solution import multiply


def test_multiply():
    assert multiply(3, 4) == 12


def test_multiply_by_zero():
    assert multiply(7, 0) == 0
"""


@pytest.mark.timeout(TASK_TIMEOUT)
async def test_a_task_with_tests_runs_the_gate_against_llama_server(
    client: Client, task_queue: str, llama: LlamaServer, memory_api_url: str, spawn_worker: SpawnWorker
) -> None:
    spawn_worker(worker_environment(client, task_queue, llama, memory_api_url))
    handle = await start_task(
        client,
        task_queue,
        # "nothing after it": otherwise SmolLM2 follows its code block with one sentence repeated to max_tokens
        task_description="Write a Python function `multiply(a, b)` that returns the product of a and b. "
        "Answer with one code block and nothing after it.",
        tests=TESTS,
        planner_model="offline",  # only the code agent on SmolLM2: its plan or docs would only add long calls
        doc_model="offline",
        max_agent_steps=3,
        max_fix_rounds=1,
        feedback_window_seconds=0,
    )
    try:
        state = await handle.result()
    except WorkflowFailureError:
        state = await handle.query(CodingTask.status)
    code = state.results.code_generation
    print(f"task {state.task_status}; warnings: {state.warnings}; errors: {state.errors}")
    assert state.task_status == TaskStatus.COMPLETED, state.errors
    assert code is not None and code.tests is not None, "the gate did not run"
    print(f"code:\n{code.code}\n{code.tests.summary()}\ngate {code.test_gate} after {len(code.test_rounds)} round(s)")

    report = code.tests
    assert code.tests_by == "user"
    assert code.test_gate in (TestGate.PASSED, TestGate.FAILED), report.summary()
    assert report.passed + report.failed + report.errors >= 1  # pytest ran something and counted it
    assert (code.test_gate == TestGate.PASSED) == (report.outcome == "passed")
    if code.test_gate == TestGate.FAILED:  # the user's tests judge (test_gate "required"): failing, it warns
        assert any(warning.startswith("test gate failed") for warning in state.warnings), state.warnings
    assert len(code.test_rounds) <= 1

    requests = await run_tests_requests(client, handle.id)
    assert len(requests) >= 1 + len(code.test_rounds)  # the first answer's run and each fix round's
    assert all(request.tests == TESTS and request.module == "solution.py" for request in requests)
    assert requests[-1].code == code.code  # the report is of the code delivered
    events = (await handle.query(CodingTask.events, EventsQueryInput())).events
    assert len([e for e in events if e.type == EventType.TEST_GATE]) == len(code.test_rounds)


async def run_tests_requests(client: Client, workflow_id: str) -> list[RunTestsRequest]:
    """The input of every `run_tests` activity the task scheduled, from its history."""
    requests = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == RUN_TESTS_ACTIVITY:
                requests += await client.data_converter.decode(scheduled.input.payloads, [RunTestsRequest])
    return requests
