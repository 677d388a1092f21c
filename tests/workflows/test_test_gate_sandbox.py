"""The test gate end to end: the real OpenAI SDK against the fake provider, real pylint, and the tests run by the
real `run_tests` activity in the bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from testbed.llm_server import PRODUCT_TESTS, RIGHT_PRODUCT, WRONG_PRODUCT, WRONG_PRODUCT_FIRST, FakeLlmServer
from tests.support import start_task, wait_until
from workflows.coding_task import CodingTask
from workflows.models import (
    RUN_TESTS_ACTIVITY,
    SA_TEST_GATE,
    EventsQueryInput,
    EventType,
    TaskStatus,
    TestGate,
    TestRound,
)


def code_requests(fake: FakeLlmServer) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["provider"] == "openai" and "senior Python" in json.dumps(r["body"])]


async def test_wrong_but_lint_clean_code_is_caught_by_the_tests_and_fixed_in_round_one(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    """The failure the test gate exists for: a product written `a * b + a + 1`, which pylint scores like correct
    code. The tests run in the sandbox, fail, go back to the model with the failing assertion, and the fixed code
    passes in round 1."""
    handle = await start_task(
        client,
        task_queue,
        feedback_window_seconds=0,
        task_description=f"write a product function {WRONG_PRODUCT_FIRST}",
        tests=PRODUCT_TESTS,
    )
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.warnings == []
    code = final.results.code_generation
    assert code is not None and code.code == RIGHT_PRODUCT and code.tests_by == "user"
    assert code.test_gate == TestGate.PASSED and code.tests is not None and code.tests.outcome == "passed"
    assert (code.tests.passed, code.tests.failed) == (2, 0)
    assert code.test_rounds == [TestRound(round=1, passed_before=1, failed_before=1, passed_after=2, failed_after=0)]
    assert code.lint is not None and code.lint.score == 10.0  # pylint found nothing wrong with either

    # What the model saw: its wrong code's real pytest failure, with the assertion.
    requests = code_requests(fake_llm)
    [fix] = [body for body in requests if "The tests did not pass" in json.dumps(body["messages"][-1])]
    verdict = fix["messages"][-1]["content"]
    assert verdict.startswith("The tests did not pass:\nrun_tests · 1 passed, 1 failed\n"), verdict
    assert "test_product" in verdict and "assert 9 == 6" in verdict, verdict  # 2 * 3 + 2 + 1
    assert any(WRONG_PRODUCT in (m.get("content") or "") for m in fix["messages"])  # the answer it had given
    page = await handle.query(CodingTask.events, EventsQueryInput())
    runs = [e.message for e in page.events if e.type == EventType.TESTS]
    assert runs == ["run_tests · 1 passed, 1 failed", "run_tests · 2 passed, 0 failed"]
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "passed"


async def test_the_models_own_tests_run_in_the_sandbox_and_only_advise(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    """Without `tests`, the gate asks the model for its own, with its code; they run in the sandbox, and their
    failure goes back to it like the user's would."""
    handle = await start_task(
        client,
        task_queue,
        feedback_window_seconds=0,
        task_description=f"write a product function {WRONG_PRODUCT_FIRST}",
        test_gate="advisory",
    )
    final = await handle.result()
    code = final.results.code_generation
    assert code is not None and code.tests_by == "model" and code.test_gate == TestGate.PASSED
    assert code.code == RIGHT_PRODUCT and code.tests is not None and code.tests.passed == 2
    assert len(code.test_rounds) == 1 and final.warnings == []
    first = code_requests(fake_llm)[0]["messages"]
    assert "add a second ```python block of pytest tests" in json.dumps(first)
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "passed"


async def test_advisory_without_tests_from_the_model_ends_failed_without_a_warning(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    """A model that brings no tests is asked once more for them; still none: nothing ran, `TestGate=failed`,
    no warning (the model's tests only advise)."""
    handle = await start_task(
        client, task_queue, feedback_window_seconds=0, task_description="write an add function", test_gate="advisory"
    )
    final = await handle.result()
    code = final.results.code_generation
    assert code is not None and code.tests_by == "model" and code.test_gate == TestGate.FAILED
    assert code.tests is None and final.warnings == []
    assert any("Your answer held no tests" in json.dumps(body["messages"][-1]) for body in code_requests(fake_llm))


SLOW_ADD_TESTS = """import time

from solution import add


def test_add():
    time.sleep(6)
    assert add(1, 2) == 3
"""


def children_named(parent: int, name: str) -> set[int]:
    """The pids of `parent`'s child processes whose command is `name` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            pid, rest = stat.read_text().split(" (", 1)
            comm, fields = rest.rsplit(") ", 1)
            if comm == name and int(fields.split()[1]) == parent:
                found.add(int(pid))
    return found


async def test_a_worker_killed_during_a_test_run_reruns_it_elsewhere_and_repays_no_model_call(
    client: Client, fake_llm: FakeLlmServer, task_queue: str, spawn_worker: Any
) -> None:
    first = spawn_worker()
    handle = await start_task(client, task_queue, feedback_window_seconds=0, tests=SLOW_ADD_TESTS)

    async def running_tests() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(a.activity_type.name == RUN_TESTS_ACTIVITY and a.attempt == 1 for a in pending)

    deadline = time.monotonic() + 60
    while not (await running_tests() and children_named(first.pid, "bwrap")):
        assert time.monotonic() < deadline, "the test run never started"
        await asyncio.sleep(0.1)
    sandboxes = children_named(first.pid, "bwrap")
    served_before = fake_llm.total_served
    first.send_signal(signal.SIGKILL)  # a crash mid-run: no clean-up in the worker
    first.wait(timeout=10)
    await wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in sandboxes), within=10)  # died with it

    spawn_worker()
    final = await asyncio.wait_for(handle.result(), 120)
    code = final.results.code_generation
    assert code is not None and code.test_gate == TestGate.PASSED and code.tests is not None
    assert code.tests.passed == 1
    assert served_before == 3 and fake_llm.total_served == 5  # planner, 2 code turns; then only the 2 doc turns
    assert all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert sorted(attempts)[-1] == 2 and attempts.count(2) == 1  # the test run alone was run again
