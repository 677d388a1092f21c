"""The test gate's decisions, with stub activities under the real names (`run_tests` answers scripted reports; the
real sandbox runs in test_test_gate_sandbox.py)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from tests.support import start_task, wait_for_state
from tests.workflows.stubs import StubActivities, calls
from workflows import prompts
from workflows.coding_task import CodingTask
from workflows.models import (
    RUN_TESTS_ACTIVITY,
    SA_TEST_GATE,
    WORKFLOW_TYPE,
    AgentRole,
    CodingTaskInput,
    EventsQueryInput,
    EventType,
    FeedbackInput,
    LintResult,
    LlmResponse,
    TaskState,
    TaskStatus,
    TestFailure,
    TestGate,
    TestReport,
    TestRound,
    ToolCall,
    ToolName,
)

CODE = AgentRole.CODE_GENERATION
TESTS = "from solution import product\n\n\ndef test_product():\n    assert product(2, 3) == 6\n"
FAILING = TestReport(
    outcome="failed",
    passed=0,
    failed=1,
    exit_code=1,
    failures=[TestFailure(test="test_solution.py::test_product", message="assert 9 == 6")],
)


def answer(code: str, tests: str | None = None) -> LlmResponse:
    text = f"```python\n{code}```\n" + (f"```python\n{tests}```\n" if tests else "") + "Done."
    return LlmResponse(model="stub:model", content=text, input_tokens=10, output_tokens=5)


WRONG = '"""Product."""\n\n\ndef product(a: int, b: int) -> int:\n    """Product."""\n    return a * b + a + 1\n'
RIGHT = '"""Product."""\n\n\ndef product(a: int, b: int) -> int:\n    """Product."""\n    return a * b\n'


async def run(client: Client, worker: Worker, **fields: Any) -> tuple[WorkflowHandle[CodingTask, TaskState], TaskState]:
    handle = await start_task(client, worker.task_queue, feedback_window_seconds=0, **fields)
    return handle, await handle.result()


async def scheduled(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def events(handle: WorkflowHandle[CodingTask, TaskState], type: EventType) -> list[Any]:
    page = await handle.query(CodingTask.events, EventsQueryInput())
    return [e for e in page.events if e.type == type]


async def test_failing_user_tests_go_back_with_the_failures_and_pass_in_round_one(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.script(CODE, answer(WRONG), answer(RIGHT))
    stubs.test_reports = [FAILING, stubs.passing()]
    handle, final = await run(client, stub_worker, tests=TESTS)
    code = final.results.code_generation
    assert code is not None and code.code == RIGHT and code.test_gate == TestGate.PASSED and code.tests_by == "user"
    assert code.tests == stubs.passing()
    assert code.test_rounds == [TestRound(round=1, passed_before=0, failed_before=1, passed_after=1, failed_after=0)]
    assert [r.code for r in stubs.test_runs] == [WRONG, RIGHT] and {r.tests for r in stubs.test_runs} == {TESTS}
    assert all(r.module == "solution.py" and r.tests_file == "test_solution.py" for r in stubs.test_runs)
    first, fix = (r for r in stubs.requests if r.role == CODE)
    assert first.system == prompts.code_system(True) and ToolName.RUN_TESTS in first.tools
    assert f"import `solution`, which is your module)\n```python\n{TESTS}```" in first.messages[0].content
    verdict = fix.messages[-1].content
    assert verdict.startswith("The tests did not pass:\nrun_tests · 0 passed, 1 failed\n")
    assert "test_solution.py::test_product: assert 9 == 6" in verdict and "task's and are right" in verdict
    assert [e.message for e in await events(handle, EventType.TESTS)] == FAILING_THEN_PASSING
    [gate_round] = await events(handle, EventType.TEST_GATE)
    assert gate_round.data == code.test_rounds[0].model_dump()
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "passed"
    assert final.warnings == [] and code.lint_rounds[0].round == 1  # the round is shared: pylint judged it too
    assert [r.step for r in stubs.requests if r.role == CODE] == [1, 2]  # steps go on through the round


FAILING_THEN_PASSING = ["run_tests · 0 passed, 1 failed", "run_tests · 1 passed, 0 failed"]


async def test_tests_still_failing_after_the_rounds_warn_and_mark_the_gate_failed(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.test_reports = [FAILING] * 3
    handle, final = await run(client, stub_worker, tests=TESTS, max_fix_rounds=2)
    assert final.task_status == TaskStatus.COMPLETED and final.results.documentation is not None
    code = final.results.code_generation
    assert code is not None and code.test_gate == TestGate.FAILED and len(code.test_rounds) == 2
    assert code.tests == FAILING and len(stubs.test_runs) == 3
    assert final.warnings == ["test gate failed after 2 fix round(s): run_tests · 0 passed, 1 failed\n"
                              "test_solution.py::test_product: assert 9 == 6"]  # fmt: skip
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "failed"


async def test_advisory_tests_get_the_same_rounds_but_no_warning(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.test_reports = [FAILING] * 2
    _, final = await run(client, stub_worker, tests=TESTS, test_gate="advisory", max_fix_rounds=1)
    code = final.results.code_generation
    assert code is not None and code.test_gate == TestGate.FAILED and len(code.test_rounds) == 1
    assert final.warnings == [] and len(stubs.test_runs) == 2


async def test_a_gate_turned_off_runs_nothing_and_says_so(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    handle, final = await run(client, stub_worker, tests=TESTS, test_gate="off")
    code = final.results.code_generation
    assert code is not None and code.test_gate == TestGate.OFF and code.tests is None and code.tests_by is None
    assert stubs.test_runs == [] and RUN_TESTS_ACTIVITY not in await scheduled(handle)
    assert ToolName.RUN_TESTS not in next(r for r in stubs.requests if r.role == CODE).tools
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "off"


async def test_a_task_without_tests_behaves_as_before(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    handle, final = await run(client, stub_worker)
    code = final.results.code_generation
    assert code is not None and code.test_gate is None and code.tests is None and code.tests_by is None
    assert RUN_TESTS_ACTIVITY not in await scheduled(handle) and stubs.test_runs == []
    first = next(r for r in stubs.requests if r.role == CODE)
    assert first.system == prompts.CODE_SYSTEM and first.tools == [ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]
    assert "## Tests" not in first.messages[0].content
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) is None


async def test_the_model_writes_its_own_tests_which_only_advise(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    model_tests = TESTS.replace("== 6", "== 7")  # a wrong test: the model's tests can be wrong too
    stubs.script(CODE, answer(WRONG), answer(RIGHT, model_tests), answer(RIGHT, model_tests))
    stubs.test_reports = [FAILING, FAILING]
    handle, final = await run(client, stub_worker, test_gate="required", max_fix_rounds=2)
    code = final.results.code_generation
    assert code is not None and code.tests_by == "model" and code.test_gate == TestGate.FAILED
    assert final.warnings == []  # advice, not a verdict
    first, ask, fix = (r for r in stubs.requests if r.role == CODE)
    asked = "add a second ```python block of pytest tests for it (`from solution import ...`)"
    assert asked in first.messages[0].content
    assert ask.messages[-1].content.startswith("Your answer held no tests.")  # the first answer had none: nothing ran
    assert "(or a test, if the test is wrong)" in fix.messages[-1].content
    assert [r.tests for r in stubs.test_runs] == [model_tests, model_tests] and stubs.test_runs[0].code == RIGHT
    assert code.test_rounds[0] == TestRound(round=1, passed_before=0, failed_before=0, passed_after=0, failed_after=1)
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "failed"


async def test_an_unavailable_sandbox_is_reported_once_and_the_task_goes_on(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    """The sandbox could not be set up: the code was never run, `TestGate=unavailable` with a warning; a lint
    round still happens, without asking the sandbox again."""
    stubs.test_reports = [TestReport(outcome="unavailable", error="sandbox unavailable: no user namespaces")]
    stubs.lint_result = lambda code: LintResult(score=5.0) if len(stubs.lints) == 1 else LintResult(score=10.0)
    handle, final = await run(client, stub_worker, tests=TESTS)
    code = final.results.code_generation
    assert final.task_status == TaskStatus.COMPLETED and code is not None
    assert code.test_gate == TestGate.UNAVAILABLE and code.tests is not None and code.tests.outcome == "unavailable"
    assert len(stubs.test_runs) == 1 and len(code.lint_rounds) == 1
    assert final.warnings == ["test gate: the code was never run (sandbox unavailable: no user namespaces)"]
    fix = [r for r in stubs.requests if r.role == CODE][1]
    assert "tests did not pass" not in fix.messages[-1].content  # only pylint's verdict went back
    assert (await handle.describe()).typed_search_attributes.get(SA_TEST_GATE) == "unavailable"


async def test_the_run_tests_tool_runs_the_tasks_tests_on_the_models_draft(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.script(
        CODE,
        calls(
            ToolCall(id="t1", name="run_tests", arguments={"code": WRONG, "tests": "def test_x():\n    pass\n"}),
            ToolCall(id="t2", name="run_tests", arguments={"tests": TESTS}),
        ),
        answer(RIGHT),
    )
    stubs.test_reports = [FAILING]
    handle, final = await run(client, stub_worker, tests=TESTS)
    assert final.task_status == TaskStatus.COMPLETED
    assert [(r.code, r.tests) for r in stubs.test_runs] == [(WRONG, TESTS), (RIGHT, TESTS)]  # the task's tests
    follow_up = [r for r in stubs.requests if r.role == CODE][1]
    results = {m.tool_call_id: (m.content, m.is_error) for m in follow_up.messages if m.role == "tool"}
    assert results["t1"] == ("run_tests · 0 passed, 1 failed\ntest_solution.py::test_product: assert 9 == 6", False)
    assert results["t2"] == ("invalid arguments for run_tests: code: Field required", True)
    tool_events = await events(handle, EventType.TOOL_CALL)
    assert [e.data["tool"] for e in tool_events] == ["run_tests", "run_tests"]


async def test_the_run_tests_tool_without_any_tests_says_what_is_missing(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.script(CODE, calls(ToolCall(id="t1", name="run_tests", arguments={"code": WRONG})), answer(RIGHT, TESTS))
    _, final = await run(client, stub_worker, test_gate="advisory")
    follow_up = [r for r in stubs.requests if r.role == CODE][1]
    [result] = [m for m in follow_up.messages if m.role == "tool"]
    assert result.is_error and result.content.startswith("no tests to run: give `tests`")
    assert [r.tests for r in stubs.test_runs] == [TESTS]  # the answer's own tests ran
    assert final.results.code_generation is not None and final.results.code_generation.test_gate == TestGate.PASSED


async def test_run_tests_is_refused_when_the_gate_is_off(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    """A model that calls a tool it was not offered gets told so; nothing runs."""
    stubs.script(CODE, calls(ToolCall(id="t1", name="run_tests", arguments={"code": WRONG, "tests": TESTS})))
    handle, _ = await run(client, stub_worker)
    follow_up = [r for r in stubs.requests if r.role == CODE][1]
    [result] = [m for m in follow_up.messages if m.role == "tool"]
    assert result.is_error and "its test gate is off" in result.content
    assert RUN_TESTS_ACTIVITY not in await scheduled(handle)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tests": "x" * 200_001}, "String should have at most 200000 characters"),
        ({"tests": "   "}, "must not be blank"),
        ({"module": "my-module.py"}, "must be an importable Python file"),
        ({"module": "../solution.py"}, "must not have a '..' part"),
        ({"module": "test_solution.py"}, "is where the tests are written"),
        ({"module": "src/a.py", "files": [{"path": "src/a.py", "content": ""}]}, "is also the path of one of `files`"),
        ({"module": "src/a.py", "files": [{"path": "src", "content": ""}]}, "cannot both exist"),
        ({"files": [{"path": "test_solution.py", "content": ""}], "tests": TESTS}, "is where the tests are written"),
        ({"test_gate": "strict"}, "Input should be 'off', 'advisory' or 'required'"),
    ],
)
async def test_a_bad_test_input_fails_the_task_at_once_naming_the_field(
    client: Client, stub_worker: Worker, stubs: StubActivities, fields: dict[str, Any], named: str
) -> None:
    """A start that bypasses the gateway (any client, the CLI) fails at once with the field and the reason."""
    body = {"task_description": "write a product function", **fields}
    with pytest.raises(ValueError, match=re.escape(named)):
        CodingTaskInput.model_validate(body)
    handle = await client.start_workflow(
        WORKFLOW_TYPE, body, id=f"bad-{uuid.uuid4().hex[:10]}", task_queue=stub_worker.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert named in str(failure.value.cause) and next(iter(fields)) in str(failure.value.cause)
    assert stubs.requests == [] and stubs.test_runs == []


async def test_a_revision_goes_through_the_same_test_gate(
    client: Client, stub_worker: Worker, stubs: StubActivities
) -> None:
    stubs.script(CODE, answer(RIGHT), answer(WRONG), answer(RIGHT))
    stubs.test_reports = [stubs.passing(), FAILING, stubs.passing()]
    handle = await start_task(client, stub_worker.task_queue, tests=TESTS, max_revisions=1)
    await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="name the parameters better"))
    state = await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1)
    await handle.terminate("test over")
    code = state.results.code_generation
    assert code is not None and code.revision == 1 and code.code == RIGHT and code.test_gate == TestGate.PASSED
    assert len(code.test_rounds) == 1 and [r.code for r in stubs.test_runs] == [RIGHT, WRONG, RIGHT]
    revision = [r for r in stubs.requests if r.role == CODE][1].messages[0].content
    assert "name the parameters better" in revision and TESTS in revision  # the tests are in the revision's prompt
