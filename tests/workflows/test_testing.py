"""The test gate's judgement (`workflows/testing.py`) and the answer split (`prompts.split_tested_answer`), without
a server."""

from __future__ import annotations

import pytest

from workflows import prompts, testing
from workflows.models import (
    SA_TEST_GATE,
    CodeResult,
    CodingTaskInput,
    LintResult,
    TaskState,
    TestGate,
    TestGateMode,
    TestReport,
)
from workflows.visibility import details_line, search_attribute_values

TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
PASSED = TestReport(outcome="passed", passed=2)
FAILED = TestReport(outcome="failed", passed=1, failed=1)
UNAVAILABLE = TestReport(outcome="unavailable", error="sandbox unavailable: no bwrap")


def plan(**fields: object) -> testing.TestPlan:
    return testing.TestPlan.of(CodingTaskInput.model_validate({"task_description": "x", **fields}))


def test_the_gate_defaults_to_required_with_tests_and_off_without() -> None:
    assert (plan().mode, plan().tests_by, plan().reported) == (TestGateMode.OFF, None, False)
    assert (plan(tests=TESTS).mode, plan(tests=TESTS).tests_by) == (TestGateMode.REQUIRED, "user")
    assert (plan(test_gate="advisory").mode, plan(test_gate="advisory").tests_by) == (TestGateMode.ADVISORY, "model")
    assert plan(tests=TESTS, test_gate="off").tests_by is None and plan(test_gate="off").reported


@pytest.mark.parametrize(
    ("fields", "report", "expected"),
    [
        ({"tests": TESTS}, FAILED, True),
        ({"tests": TESTS}, TestReport(outcome="timed_out", timed_out=True), True),
        ({"tests": TESTS}, PASSED, False),
        ({"tests": TESTS}, UNAVAILABLE, False),  # nothing ran: nothing to fix
        ({"test_gate": "advisory"}, None, True),  # the model brought no tests: ask for them
        ({}, None, False),
        ({"tests": TESTS, "test_gate": "off"}, None, False),
    ],
)
def test_what_goes_back_to_the_code_agent(fields: dict[str, object], report: TestReport | None, expected: bool) -> None:
    assert testing.needs_fix(plan(**fields), report) is expected


@pytest.mark.parametrize(
    ("fields", "report", "gate", "warns"),
    [
        ({}, None, None, False),  # a task that names no tests: no TestGate, as before
        ({"test_gate": "off"}, None, TestGate.OFF, False),
        ({"tests": TESTS}, PASSED, TestGate.PASSED, False),
        ({"tests": TESTS}, FAILED, TestGate.FAILED, True),
        ({"tests": TESTS, "test_gate": "advisory"}, FAILED, TestGate.FAILED, False),
        ({"test_gate": "required"}, FAILED, TestGate.FAILED, False),  # the model's tests only advise
        ({"test_gate": "required"}, None, TestGate.FAILED, False),
        ({"tests": TESTS}, UNAVAILABLE, TestGate.UNAVAILABLE, True),
    ],
)
def test_how_the_gate_ends(
    fields: dict[str, object], report: TestReport | None, gate: TestGate | None, warns: bool
) -> None:
    verdict, warning = testing.verdict(plan(**fields), report, rounds=2)
    assert verdict == gate and (warning is not None) is warns


def test_the_model_reads_the_output_tail_when_no_failure_is_itemised() -> None:
    broken = TestReport(outcome="failed", errors=1, output_tail="E   ModuleNotFoundError: No module named 'numpy'")
    assert testing.report_text(broken).endswith("\nE   ModuleNotFoundError: No module named 'numpy'")
    assert testing.report_text(FAILED) == FAILED.summary()


def test_the_tests_block_is_the_one_importing_the_module() -> None:
    code = "def add(a, b):\n    return a + b\n"
    long_tests = "import pkg.impl\n\n\n" + "".join(
        f"def test_{i}():\n    assert pkg.impl.add({i}, 0) == {i}\n" for i in range(9)
    )
    answer = f"```python\n{long_tests}```\nThen:\n```python\n{code}```\nDone."
    assert prompts.split_tested_answer(answer, "pkg/impl.py") == (code, long_tests, "Then:\n\nDone.")
    only_code = f"```python\n{code}```"
    assert prompts.split_tested_answer(only_code, "solution.py") == (code, None, "")
    # a block that merely mentions test_ functions without importing the module is code, not tests
    assert prompts.split_tested_answer("```python\ndef test_add():\n    pass\n```", "solution.py")[1] is None


def test_the_details_line_and_the_search_attribute_follow_the_gate() -> None:
    state = TaskState(session_id="s", task_description="x", created_at="t", updated_at="t")
    state.results.code_generation = CodeResult(
        code="", model="m", lint=LintResult(score=9.5), tests=FAILED, test_gate=TestGate.FAILED
    )
    assert " · lint 9.5 · tests 1 passed, 1 failed · " in details_line(state)
    assert search_attribute_values(state)[SA_TEST_GATE] == "failed"
    state.results.code_generation = CodeResult(code="", model="m")
    assert "tests" not in details_line(state) and search_attribute_values(state)[SA_TEST_GATE] is None
