"""The `run_tests` activity: a request's files in a fresh directory, pytest on them in the sandbox, a TestReport.

The request carries everything (code, tests, files, limits), so a retry on another worker needs no shared disk.
What is a result and what is an error:

* a test failure, a limit hit, a run that never got to pytest's report: a TestReport (`failed`, `timed_out`,
  `killed`): Temporal does not retry what the code did;
* a sandbox that cannot be set up here (bubblewrap or util-linux missing, namespaces refused): a TestReport with
  outcome `unavailable` and the reason; nothing of the request ran, and nothing is retried (the next run probes
  again, cheaply: the tools are looked up, and a run that never printed the start marker is `unavailable`);
* a bad request (two files at one path, files larger than the sandbox's disk): `InvalidRequest`, not retried;
* the worker failing to start a process at all (out of memory, of pids): an error, retried by Temporal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from activities.sandbox._command import SANDBOX_DIR, STARTED, Interpreter, SandboxCommand, find_interpreter
from activities.sandbox._process import run_bounded
from activities.sandbox._report import build_report
from workflows.models import RUN_TESTS_ACTIVITY, RunTestsRequest, SandboxLimits, TestReport

logger = logging.getLogger(__name__)

MAX_JUNIT = 4 * 2**20  # bytes of pytest's report read back
OUTPUT_HARD_CAP = 10  # times limits.output_bytes: past this much output the run is stopped
_PROBE_LIMITS = SandboxLimits(wall_seconds=30)


class SandboxUnavailable(Exception):
    """The sandbox cannot be set up here; the message says why."""


def unavailable(reason: str) -> TestReport:
    return TestReport(outcome="unavailable", error=f"sandbox unavailable: {reason}")


class SandboxActivities:
    def __init__(self, settings: WorkerSettings) -> None:
        self._bwrap = settings.sandbox_bwrap
        self._python = settings.sandbox_python or sys.executable
        self._uid = settings.sandbox_uid if os.geteuid() == 0 else None
        self._interpreter: Interpreter | None = None

    async def start(self) -> None:
        """Probe once (at worker start): a trivial run that imports pytest. Logs the outcome either way."""
        report = await self.run(RunTestsRequest(code="", tests="", limits=_PROBE_LIMITS), probe=True)
        if report.outcome == "unavailable":
            logger.error("%s: run_tests will report `unavailable` and run nothing", report.error)
        elif report.exit_code != 0:
            logger.error("sandbox probe failed (exit %s): %s", report.exit_code, report.output_tail[-300:])
        else:
            logger.info("sandbox ready (%d ms a run): %s", report.duration_ms, self._describe())

    @activity.defn(name=RUN_TESTS_ACTIVITY)
    async def run_tests(self, request: RunTestsRequest) -> TestReport:
        report = await self.run(request)
        if report.outcome == "unavailable":
            activity.logger.error("run_tests: %s", report.error)
        else:
            activity.logger.info("run_tests: %s (%d ms)", report.summary(0), report.duration_ms)
        return report

    async def run(self, request: RunTestsRequest, probe: bool = False) -> TestReport:
        files = files_of(request)
        try:
            command = await self._command()
        except SandboxUnavailable as exc:
            return unavailable(str(exc))
        limits = request.limits
        with tempfile.TemporaryDirectory(prefix="sandbox-") as base:
            source = Path(base, "src")
            await asyncio.to_thread(write_files, source, files)
            report_fd = os.memfd_create("junit")
            try:
                inside = (
                    [command.interpreter.executable, "-c", "import pytest"]
                    if probe
                    else pytest_argv(command.interpreter.executable, request.tests_file, report_fd)
                )
                try:
                    run = await run_bounded(
                        command.argv(str(source), inside, limits),
                        wall_seconds=limits.wall_seconds,
                        keep=limits.output_bytes // 2,
                        hard_cap=OUTPUT_HARD_CAP * limits.output_bytes,
                        pass_fds=(report_fd,),
                        heartbeat=_heartbeat,
                    )
                except (FileNotFoundError, PermissionError) as exc:
                    return unavailable(f"cannot start {command.bwrap}: {exc.strerror}")
                junit = os.pread(report_fd, MAX_JUNIT, 0)
            finally:
                os.close(report_fd)
        started = run.capture.head.startswith(STARTED)
        if not started and run.stopped_by is None:
            output = bytes(run.capture.head + run.capture.tail).decode("utf-8", "replace").strip()
            return unavailable(" / ".join(output.splitlines()[-3:]) or f"exit code {run.exit_code}")
        return build_report(run, junit, started)

    async def _command(self) -> SandboxCommand:
        tools = [shutil.which(name) for name in (self._bwrap, "setpriv", "prlimit")]
        missing = [name for name, path in zip((self._bwrap, "setpriv", "prlimit"), tools, strict=True) if not path]
        if missing:
            raise SandboxUnavailable(f"{', '.join(missing)} not found (install bubblewrap and util-linux)")
        if self._interpreter is None:
            try:
                self._interpreter = await asyncio.to_thread(find_interpreter, self._python)
            except (OSError, ValueError) as exc:
                raise SandboxUnavailable(f"cannot run the sandbox's python {self._python}: {exc}") from exc
        bwrap, setpriv, prlimit = (str(t) for t in tools)
        return SandboxCommand(bwrap, setpriv, prlimit, self._interpreter, self._uid)

    def _describe(self) -> str:
        who = f"uid {self._uid}" if self._uid is not None else f"uid {os.geteuid()} in a user namespace"
        return f"bubblewrap {self._bwrap}, python {self._python}, code runs as {who}"


def pytest_argv(python: str, tests_file: str, report_fd: int) -> list[str]:
    return [
        python,
        "-m",
        "pytest",
        "-q",
        "--color=no",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        "-o",
        "junit_family=xunit1",
        f"--junitxml=/proc/self/fd/{report_fd}",
        f"--rootdir={SANDBOX_DIR}",
        "--",
        tests_file,
    ]


def files_of(request: RunTestsRequest) -> dict[str, str]:
    """The request's files by path: the module, the tests, the task's files. InvalidRequest when two share a
    path, one is another's directory, or they cannot fit the sandbox's disk."""
    files: dict[str, str] = {}
    for path, content in [
        (request.module, request.code),
        (request.tests_file, request.tests),
        *((f.path, f.content) for f in request.files),
    ]:
        if path in files:
            raise _invalid(f"two files at {path!r}")
        files[path] = content
    for path in files:
        for parent in PurePosixPath(path).parents:
            if str(parent) in files:
                raise _invalid(f"{str(parent)!r} is a file and a directory")
    size = sum(len(content.encode("utf-8", "replace")) for content in files.values())
    if size > request.limits.disk_bytes:
        raise _invalid(f"the files ({size} bytes) do not fit the sandbox's disk ({request.limits.disk_bytes} bytes)")
    return files


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write the files under `root`, readable by the sandbox's uid; a path that leaves `root` is refused."""
    root.mkdir(mode=0o755)
    for path, content in files.items():
        target = root.joinpath(path)
        if not target.resolve().is_relative_to(root.resolve()) or PurePosixPath(path).is_absolute():
            raise _invalid(f"{path!r} leaves the sandbox's directory")
        for directory in reversed(target.relative_to(root).parents[:-1]):
            root.joinpath(directory).mkdir(mode=0o755, exist_ok=True)
        target.write_text(content, encoding="utf-8", errors="replace")
        target.chmod(0o644)


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(f"run_tests: {message}", type="InvalidRequest", non_retryable=True)


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()
