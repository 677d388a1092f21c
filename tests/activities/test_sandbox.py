"""The run_tests activity on ordinary code: counts, failures, files, bad requests, the fail-closed path, a real
worker, heartbeats and cancellation. The attacks are in test_sandbox_attacks.py."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
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
from tests.support import ROOT, wait_until
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


ACTIVITY_WORKER = """
import asyncio, sys
from temporalio.client import Client
from temporalio.worker import Worker
from activities.config import WorkerSettings
from activities.sandbox import SandboxActivities
from orchestrator.temporal import data_converter

async def main():
    client = await Client.connect(sys.argv[1], data_converter=data_converter())
    sandbox = SandboxActivities(WorkerSettings(_env_file=None))
    async with Worker(client, task_queue=sys.argv[2], activities=[sandbox.run_tests]):
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_worker_takes_its_run_along_and_another_worker_reruns_it(client: Client) -> None:
    """SIGKILL of the worker mid-run: nothing of the run outlives it (bubblewrap's --die-with-parent), and after
    the heartbeat timeout another worker runs the request again from the request alone."""
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    tests_file = f"test_{uuid.uuid4().hex}.py"
    tests = "import time\n\n\ndef test_slow():\n    time.sleep(10)\n"  # outlives the check below, unless killed
    first = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", ACTIVITY_WORKER, client.service_client.config.target_host, queue],
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    workflows = Worker(client, task_queue=queue, workflows=[RunTestsOnce], workflow_runner=UnsandboxedWorkflowRunner())
    try:
        assert first.stdout is not None and (await first.stdout.readline()).strip() == b"ready"
        async with workflows:
            handle = await client.start_workflow(
                RunTestsOnce.run,
                RunTestsRequest(code="", tests=tests, tests_file=tests_file),
                id=f"sandbox-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            await wait_until(lambda: bool(processes_mentioning(tests_file)), within=60)
            first.kill()
            await first.wait()
            await wait_until(lambda: not processes_mentioning(tests_file), within=3)
            second = SandboxActivities(settings())
            async with Worker(client, task_queue=queue, activities=[second.run_tests]):
                report = await handle.result()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert (report.outcome, report.passed) == ("passed", 1), report
    attempts = [
        e.activity_task_started_event_attributes.attempt
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [2]


async def test_a_python_without_pytest_is_unavailable(sandbox: Sandbox, tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "venv", "--without-pip", str(venv))
    assert await proc.wait() == 0
    sandbox.activities = SandboxActivities(settings(sandbox_python=str(venv / "bin" / "python")))
    report = await sandbox.run(PASSING_TESTS)
    assert report.outcome == "unavailable" and report.error and "has no pytest" in report.error, report


async def test_a_missing_sandbox_python_is_unavailable(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.activities = SandboxActivities(settings(sandbox_python=str(tmp_path / "no-python")))
    report = await sandbox.run(PASSING_TESTS)
    assert report.outcome == "unavailable" and report.error and "cannot run the sandbox's python" in report.error


async def test_runs_beyond_sandbox_max_runs_wait_their_turn(sandbox: Sandbox) -> None:
    sandbox.activities = SandboxActivities(settings(sandbox_max_runs=1))
    tests = "import time\n\n\ndef test_slow():\n    time.sleep(3)\n"
    began = time.monotonic()
    first, second = await asyncio.gather(sandbox.run(tests), sandbox.run(tests))
    assert first.outcome == second.outcome == "passed", (first, second)
    assert time.monotonic() - began > first.duration_ms / 1000 + second.duration_ms / 1000 - 0.5  # one after the other
