"""The test gate's judgement: which tests judge the code, whether a run asks for a fix, what the code agent is told,
and how the gate ended. Pure functions of the task input and `TestReport`s, so unit tests check them without a server.

The rules (README "Verified code", docs/verified-code.md):
- `tests` given: they judge (`tests_by="user"`). `required` (their default): still failing after the fix rounds, the
  task goes on with a warning and `TestGate=failed`; `advisory`: the same rounds, `TestGate=failed`, no warning.
- no `tests`, `test_gate` `advisory` or `required`: the code agent writes its own tests with its code
  (`tests_by="model"`); they only advise: failures are fed back in the rounds, the gate ends `passed` or `failed`,
  never with a warning. An answer without tests is sent back once asking for them (`failed` if none come).
- The sandbox could not run them: `TestGate=unavailable` with a warning, the code was never run, the task goes on.
- A task that says nothing of tests (neither `tests` nor `test_gate`) runs none and has no `TestGate`: as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workflows.models import (
    CodingTaskInput,
    RunTestsRequest,
    TestGate,
    TestGateMode,
    TestReport,
    TestRound,
)
from workflows.prompts import module_name

MAX_OUTPUT_SHOWN = 2_000  # characters of pytest's output tail the model sees when no failure is itemised

TestsBy = Literal["user", "model"]


@dataclass(frozen=True)
class TestPlan:
    """What the test gate does for one task."""

    __test__ = False

    mode: TestGateMode
    tests: str | None  # the user's; None: the code agent writes its own (when the gate is on)
    module: str
    reported: bool  # the task asked about tests (`tests` or `test_gate`): its result says how the gate ended

    @classmethod
    def of(cls, task: CodingTaskInput) -> TestPlan:
        reported = task.tests is not None or task.test_gate is not None
        return cls(task.test_gate_mode, task.tests, task.module, reported)

    @property
    def on(self) -> bool:
        return self.mode is not TestGateMode.OFF

    @property
    def tests_by(self) -> TestsBy | None:
        if not self.on:
            return None
        return "user" if self.tests is not None else "model"

    def request(self, task: CodingTaskInput, code: str, model_tests: str | None) -> RunTestsRequest | None:
        """The sandbox run for a candidate: the user's tests when given, else the model's; None: nothing to run."""
        tests = self.tests if self.tests is not None else model_tests
        if tests is None:
            return None
        return RunTestsRequest(code=code, tests=tests, module=self.module, files=task.files or [])


def needs_fix(plan: TestPlan, report: TestReport | None) -> bool:
    """Whether a candidate goes back to the code agent: its tests did not pass, or it brought no tests of its own.
    An unavailable sandbox judges nothing."""
    if not plan.on:
        return False
    if report is None:
        return plan.tests_by == "model"
    return report.outcome not in ("passed", "unavailable")


def report_text(report: TestReport) -> str:
    """What the model reads of a run: the summary with each failure, and pytest's output tail when no failure is
    itemised (a collection error, a timeout)."""
    text = report.summary()
    if report.outcome != "passed" and not report.failures and report.output_tail:
        text += "\n" + report.output_tail[-MAX_OUTPUT_SHOWN:]
    return text


def fix_prompt(plan: TestPlan, report: TestReport | None) -> str:
    """The new user turn that sends the tests' verdict back to the code agent."""
    name = module_name(plan.module)
    if report is None:
        return (
            f"Your answer held no tests. Answer with the complete module and, after it, a second ```python block of "
            f"pytest tests that import `{name}`."
        )
    if plan.tests_by == "user":
        ask = "The tests are the task's and are right: fix the code and answer with the complete module."
    else:
        ask = "Fix the code (or a test, if the test is wrong) and answer with the complete module and the tests."
    return f"The tests did not pass:\n{report_text(report)}\n{ask}"


def _failing(report: TestReport | None) -> int:
    return report.failed + report.errors if report is not None else 0


def test_round(number: int, before: TestReport | None, after: TestReport | None) -> TestRound:
    return TestRound(
        round=number,
        passed_before=before.passed if before else 0,
        failed_before=_failing(before),
        passed_after=after.passed if after else 0,
        failed_after=_failing(after),
    )


def round_message(gate_round: TestRound) -> str:
    r = gate_round
    return (
        f"test gate round {r.round}: {r.passed_before} passed, {r.failed_before} failed -> "
        f"{r.passed_after} passed, {r.failed_after} failed"
    )


def run_data(report: TestReport) -> dict[str, Any]:
    """The `tests` event's data: the report's counts and how the run ended."""
    return report.model_dump(include={"outcome", "passed", "failed", "errors", "duration_ms", "timed_out", "killed_by"})


def verdict(plan: TestPlan, report: TestReport | None, rounds: int) -> tuple[TestGate | None, str | None]:
    """How the gate ended for the final candidate, and the warning it raises (None: none)."""
    if not plan.reported:
        return None, None
    if not plan.on:
        return TestGate.OFF, None
    if report is not None and report.outcome == "unavailable":
        return TestGate.UNAVAILABLE, f"test gate: sandbox unavailable, the code was never run: {report.error}"
    if report is not None and report.outcome == "passed":
        return TestGate.PASSED, None
    if plan.tests_by == "user" and plan.mode is TestGateMode.REQUIRED:
        found = report.summary(limit=3) if report is not None else "no run"
        return TestGate.FAILED, f"test gate failed after {rounds} fix round(s): {found}"
    return TestGate.FAILED, None
