"""The run_tests activity on ordinary code: counts, failures, files, bad requests, the fail-closed path, a real
worker, heartbeats and cancellation. The attacks are in test_sandbox_attacks.py."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.sandbox import SandboxActivities
from activities.sandbox._report import parse_junit
from orchestrator.plugin import WorkerActivities
from tests.activities.conftest import PASSING_CODE, PASSING_TESTS, Sandbox, processes_mentioning, settings
from workflows.calls import RUN_TESTS, execute
from workflows.models import RUN_TESTS_ACTIVITY, ContextFile, RunTestsRequest, SandboxLimits, TestReport

MIXED_TESTS = (
    "import pytest\nfrom solution import mul\n\n\ndef test_right():\n    assert mul(2, 3) == 6\n\n\n"
    "def test_wrong():\n    assert mul(2, 3) == 7\n\n\nclass TestGroup:\n"
    "    @pytest.mark.parametrize('n', [1, 2])\n    def test_square(self, n):\n        assert mul(n, n) == 1\n\n\n"
    "@pytest.mark.skip\ndef test_skipped():\n    assert False\n"
)


async def test_passing_tests(sandbox: Sandbox) -> None:
    report = await sandbox.run(PASSING_TESTS)
    assert (report.outcome, report.passed, report.failed, report.errors) == ("passed", 1, 0, 0), report
    assert report.exit_code == 0 and report.failures == [] and not report.timed_out and report.killed_by is None
    assert "1 passed" in report.output_head and report.duration_ms > 0
    assert report.summary() == "run_tests · 1 passed, 0 failed"


async def test_failing_tests_name_each_failure_with_its_assertion(sandbox: Sandbox) -> None:
    report = await sandbox.run(MIXED_TESTS)
    assert (report.outcome, report.passed, report.failed, report.errors) == ("failed", 2, 2, 0), report
    assert report.exit_code == 1
    by_test = {f.test.split("::", 1)[1]: f.message for f in report.failures}
    assert set(by_test) == {"test_wrong", "TestGroup::test_square[2]"}
    assert "assert 6 == 7" in by_test["test_wrong"]
    assert "assert 4 == 1" in by_test["TestGroup::test_square[2]"]
    assert report.summary().startswith("run_tests · 2 passed, 2 failed\n")


async def test_files_beside_the_module_and_a_module_name(sandbox: Sandbox) -> None:
    files = [
        ContextFile(path="helpers/__init__.py", content=""),
        ContextFile(path="helpers/numbers.py", content="TWO = 2\n"),
        ContextFile(path="data/input.txt", content="3\n"),
    ]
    code = "from helpers.numbers import TWO\n\n\ndef double(n):\n    return TWO * n\n"
    tests = (
        "from pathlib import Path\nfrom calc import double\n\n\n"
        "def test_double():\n    assert double(int(Path('data/input.txt').read_text())) == 6\n"
    )
    report = await sandbox.run(tests, code=code, module="calc.py", files=files)
    assert (report.outcome, report.passed) == ("passed", 1), report


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"module": "same.py", "tests_file": "same.py"}, "two files at 'same.py'"),
        ({"files": [ContextFile(path="solution.py", content="")]}, "two files at 'solution.py'"),
        ({"files": [ContextFile(path="solution.py/x.py", content="")]}, "is a file and a directory"),
        ({"limits": SandboxLimits(disk_bytes=10)}, "do not fit the sandbox's disk"),
    ],
    ids=["module-is-tests", "file-over-module", "file-under-module", "too-big"],
)
async def test_bad_requests_are_not_retried(sandbox: Sandbox, fields: dict[str, object], reason: str) -> None:
    request = RunTestsRequest(code=PASSING_CODE, tests=PASSING_TESTS, **fields)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(sandbox.activities.run_tests, request)
    assert raised.value.type == "InvalidRequest" and raised.value.non_retryable
    assert reason in str(raised.value)


@pytest.mark.parametrize("bwrap", ["missing", "not-on-path", "refused"])
async def test_fails_closed_when_the_sandbox_cannot_be_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bwrap: str
) -> None:
    """bubblewrap missing, or present but refused its namespaces: `unavailable`, and the code never runs."""
    marker = tmp_path / "ran"
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    name = {"missing": str(tmp_path / "no-such-bwrap"), "not-on-path": "bwrap", "refused": str(fake)}[bwrap]
    if bwrap == "not-on-path":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    activities = SandboxActivities(settings(sandbox_bwrap=name))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    report: TestReport = await ActivityEnvironment().run(
        activities.run_tests, RunTestsRequest(code=code, tests=f"import solution\n{code}")
    )
    assert report.outcome == "unavailable", report
    assert report.error and report.error.startswith("sandbox unavailable: ")
    expected = "No permissions to create new namespace" if bwrap == "refused" else "not found"
    assert expected in report.error
    assert report.summary().startswith("run_tests · sandbox unavailable")
    assert not marker.exists()


async def test_probe_logs_the_outcome(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with caplog.at_level(logging.INFO, logger="activities.sandbox._activity"):
        await SandboxActivities(settings()).start()
        await SandboxActivities(settings(sandbox_bwrap=str(tmp_path / "none"))).start()
    ready, missing = caplog.records[-2:]
    assert ready.levelno == logging.INFO and "sandbox ready" in ready.getMessage()
    assert missing.levelno == logging.ERROR and "sandbox unavailable" in missing.getMessage()


async def test_heartbeats_and_cancellation_kill_the_run(sandbox: Sandbox) -> None:
    tests_file = f"test_{uuid.uuid4().hex}.py"
    request = RunTestsRequest(
        code="", tests="import time\n\ndef test_slow():\n    time.sleep(120)\n", tests_file=tests_file
    )
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    run = asyncio.create_task(env.run(sandbox.activities.run_tests, request))
    for _ in range(200):
        if heartbeats:
            break
        await asyncio.sleep(0.1)
    assert heartbeats, "no heartbeat while the run was going"
    assert processes_mentioning(tests_file), "the run is not going"
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert processes_mentioning(tests_file) == []
    assert list(sandbox.workdir.iterdir()) == []


def test_the_worker_registers_run_tests() -> None:
    names = [getattr(f, "__temporal_activity_definition").name for f in WorkerActivities(settings()).functions]
    assert RUN_TESTS_ACTIVITY in names and RUN_TESTS.name == RUN_TESTS_ACTIVITY
    longest_run = timedelta(seconds=600)  # the bound of SandboxLimits.wall_seconds
    start_to_close = RUN_TESTS.config.get("start_to_close_timeout")
    assert SandboxLimits(wall_seconds=600) and start_to_close is not None and start_to_close > longest_run


@workflow.defn(sandboxed=False)
class RunTestsOnce:
    @workflow.run
    async def run(self, request: RunTestsRequest) -> TestReport:
        return await execute(RUN_TESTS, request, "run_tests")


async def test_through_a_real_worker(client: Client, tmp_path: Path) -> None:
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    activities = SandboxActivities(settings())
    async with Worker(
        client,
        task_queue=queue,
        workflows=[RunTestsOnce],
        activities=[activities.run_tests],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        report = await client.execute_workflow(
            RunTestsOnce.run,
            RunTestsRequest(code=PASSING_CODE, tests=PASSING_TESTS.replace("== 6", "== 5")),
            id=f"sandbox-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    assert (report.outcome, report.failed) == ("failed", 1), report
    assert "assert 6 == 5" in report.failures[0].message


def test_junit_that_is_not_a_report_is_a_failed_run() -> None:
    assert parse_junit(b"not xml") is None
    assert parse_junit(b"<html/>") is None
    counts = parse_junit(
        b'<testsuites><testsuite><testcase file="t.py" classname="t" name="a"/>'
        b'<testcase file="t.py" classname="t" name="b"><error message="boom">E   boom</error></testcase>'
        b"</testsuite></testsuites>"
    )
    assert counts is not None and (counts.passed, counts.failed, counts.errors) == (1, 0, 1)
    assert counts.failures[0].test == "t.py::b" and counts.failures[0].message == "E   boom"
